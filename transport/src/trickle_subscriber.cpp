// Trickle subscriber: seq tracking, 470 jump/wait, preconnected GETs, refresh and give-up rules.
#include "naap/transport/trickle_subscriber.hpp"

#include <boost/asio/steady_timer.hpp>

#include "naap/core/clock.hpp"
#include "naap/core/log.hpp"
#include "naap/transport/trickle_url.hpp"

namespace naap::trickle {

namespace asio = boost::asio;

std::string_view to_string(SubscriberEnd end) {
  switch (end) {
    case SubscriberEnd::channel_closed:
      return "channel_closed";
    case SubscriberEnd::channel_not_found:
      return "channel_not_found";
    case SubscriberEnd::too_many_errors:
      return "too_many_errors";
    case SubscriberEnd::stopped:
      return "stopped";
  }
  return "stopped";
}

struct SubscriberTimers {
  asio::steady_timer retry;  // delay before re-requesting the current seq
  explicit SubscriberTimers(asio::io_context& io) : retry(io) {}
};

struct TrickleSubscriber::Get {
  std::int64_t requested = 0;                // seq in the URL
  std::int64_t served = 0;                   // Lp-Trickle-Seq (or requested)
  std::shared_ptr<http::Transfer> transfer;  // the GET
  std::optional<http::ResponseHead> head;    // final head, once received
  std::optional<http::Outcome> outcome;      // completion, once received
  SteadyTime sent_at;                        // when the GET was issued
  std::int64_t wait_us = 0;                  // issue → head
  std::uint64_t bytes = 0;                   // body bytes delivered
  bool is_segment = false;                   // 200 carrying a segment body
  bool head_handled = false;                 // on_head processing done
  bool abandoned = false;                    // cancelled by us (refresh, jump, stop)
  asio::steady_timer refresh;                // fires when no head after pending_refresh
  explicit Get(asio::io_context& io) : refresh(io) {}
};

Result<std::shared_ptr<TrickleSubscriber>> TrickleSubscriber::create(
    http::Engine& engine, std::string channel_url, SubscriberOptions options,
    SubscriberCallbacks callbacks) {
  auto url = validate_channel_url(channel_url);
  if (!url) return fail(url.error());
  if (options.start_seq < k_seq_current) {
    return fail(Error(ErrorCategory::config,
                      "subscriber start seq must be -2, -1 or >= 0 (other negative seqs crash "
                      "go-livepeer's server handler)")
                    .with("url", *url)
                    .with("seq", std::to_string(options.start_seq)));
  }
  return std::shared_ptr<TrickleSubscriber>(
      new TrickleSubscriber(engine, std::move(*url), std::move(options), std::move(callbacks)));
}

TrickleSubscriber::TrickleSubscriber(http::Engine& engine, std::string url,
                                     SubscriberOptions options, SubscriberCallbacks callbacks)
    : engine_(engine),
      url_(std::move(url)),
      options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      timers_(std::make_unique<SubscriberTimers>(engine.io())) {
  next_seq_ = options_.start_seq;
}

TrickleSubscriber::~TrickleSubscriber() {
  for (auto* g : {&current_, &next_}) {
    if (*g && (*g)->transfer) (*g)->transfer->cancel();
  }
}

void TrickleSubscriber::start() {
  if (started_) return;
  started_ = true;
  request_current(next_seq_, std::chrono::milliseconds(0));
}

void TrickleSubscriber::stop() {
  end(SubscriberEnd::stopped, std::nullopt);
}

std::shared_ptr<TrickleSubscriber::Get> TrickleSubscriber::issue(std::int64_t seq, bool current) {
  auto get = std::make_shared<Get>(engine_.io());
  get->requested = seq;
  get->served = seq;
  get->sent_at = SteadyClock::now();
  (current ? current_ : next_) = get;

  http::Request req;
  req.url = segment_url(url_, seq);
  req.tls = options_.tls;
  req.connect_timeout = options_.connect_timeout;
  http::Handlers h;
  std::weak_ptr<Get> wg = get;
  h.on_head = [weak = weak_from_this(), wg](const http::ResponseHead& head) {
    auto self = weak.lock();
    auto g = wg.lock();
    if (!self || !g || g->abandoned) return;
    g->head = head;
    g->wait_us = micros_between(g->sent_at, SteadyClock::now());
    g->refresh.cancel();
    if (g == self->current_) self->on_head(g);
  };
  h.on_data = [weak = weak_from_this(), wg](std::string_view piece) {
    auto self = weak.lock();
    auto g = wg.lock();
    if (!self || !g || g->abandoned || self->ended_) return http::DataAction::proceed;
    if (g != self->current_) return http::DataAction::pause;  // wait for our turn
    if (!g->is_segment) return http::DataAction::proceed;     // 470 / error text: ignore
    g->bytes += piece.size();
    self->stats_.bytes += piece.size();
    if (self->callbacks_.on_data) self->callbacks_.on_data(g->served, piece);
    return http::DataAction::proceed;
  };
  h.on_complete = [weak = weak_from_this(), wg](const http::Outcome& out) {
    auto self = weak.lock();
    auto g = wg.lock();
    if (!self || !g || g->abandoned || self->ended_) return;
    g->outcome = out;
    g->refresh.cancel();
    if (g == self->current_) self->on_complete(g);
  };
  get->transfer = engine_.start(std::move(req), std::move(h));

  get->refresh.expires_after(options_.pending_refresh);
  get->refresh.async_wait([weak = weak_from_this(), wg](const boost::system::error_code& ec) {
    auto self = weak.lock();
    auto g = wg.lock();
    if (ec || !self || !g || g->abandoned || g->head || g->outcome || self->ended_) return;
    // No head for pending_refresh: the server has nothing yet. Re-issue the same seq, as
    // go-livepeer does, so that a silently dead connection cannot hold us forever.
    g->abandoned = true;
    g->transfer->cancel();
    ++self->stats_.refreshes;
    const bool was_current = g == self->current_;
    self->issue(g->requested, was_current);
  });
  return get;
}

void TrickleSubscriber::on_head(const std::shared_ptr<Get>& get) {
  if (get->head_handled || ended_) return;
  get->head_handled = true;
  const http::ResponseHead& head = *get->head;
  if (const std::string* latest = head.header(k_header_latest)) {
    if (auto v = parse_seq(*latest)) last_latest_ = *v;
  }
  if (head.header(k_header_closed) != nullptr) {
    end(SubscriberEnd::channel_closed, std::nullopt);
    return;
  }
  if (head.status == 404) {
    end(SubscriberEnd::channel_not_found, Error(ErrorCategory::protocol, "channel does not exist")
                                              .with("url", segment_url(url_, get->requested)));
    return;
  }
  if (head.status != 200) return;  // 470 and errors are handled when the response completes

  if (const std::string* seq = head.header(k_header_seq)) {
    auto v = parse_seq(*seq);
    if (!v || *v < 0) {
      get->is_segment = false;
      get->transfer->cancel();
      get->abandoned = true;
      Error e = (v ? Error(ErrorCategory::protocol, "negative Lp-Trickle-Seq") : v.error())
                    .with("url", segment_url(url_, get->requested))
                    .with("seq", std::to_string(get->requested));
      current_.reset();
      count_error(std::move(e), get->requested);
      return;
    }
    get->served = *v;
  } else if (get->requested < 0) {
    get->transfer->cancel();
    get->abandoned = true;
    current_.reset();
    count_error(Error(ErrorCategory::protocol,
                      "200 for a relative seq without Lp-Trickle-Seq: cannot track the stream")
                    .with("url", segment_url(url_, get->requested)),
                get->requested);
    return;
  }
  get->is_segment = true;
  next_seq_ = get->served + 1;
  if (callbacks_.on_segment_start) {
    SegmentHead sh;
    sh.seq = get->served;
    sh.requested = get->requested;
    const std::string* latest = head.header(k_header_latest);
    sh.latest = latest ? parse_seq(*latest).value_or(-1) : -1;
    if (const std::string* ct = head.header("Content-Type")) sh.content_type = *ct;
    sh.wait_us = get->wait_us;
    callbacks_.on_segment_start(sh);
    if (ended_) return;
  }
  if (options_.preconnect && !next_) issue(next_seq_, false);
}

void TrickleSubscriber::on_complete(const std::shared_ptr<Get>& get) {
  if (ended_) return;
  const http::Outcome& out = *get->outcome;
  if (get->head && !get->head_handled) {
    on_head(get);
    if (ended_ || get != current_) return;
  }
  const std::string where = segment_url(url_, get->requested);

  if (get->is_segment) {
    SegmentEnd se;
    se.seq = get->served;
    se.bytes = get->bytes;
    se.complete = out.ok();
    if (!out.ok()) {
      se.error = out.error
                     ? *out.error
                     : Error(ErrorCategory::network, "segment read cancelled").with("url", where);
      se.error->with("seq", std::to_string(get->served));
      ++stats_.cut_segments;
    } else {
      consecutive_errors_ = 0;
      ++stats_.segments;
      if (get->bytes == 0) ++stats_.empty_segments;
    }
    current_.reset();
    if (callbacks_.on_segment_end) callbacks_.on_segment_end(se);
    if (ended_) return;
    if (se.error) {
      // The rest of this segment is lost; carry on with the next one, but count the failure.
      ++stats_.errors;
      if (++consecutive_errors_ >= options_.max_consecutive_errors) {
        end(SubscriberEnd::too_many_errors, se.error);
        return;
      }
    }
    promote_next();
    return;
  }

  current_.reset();
  if (!get->head) {
    Error e = out.error ? *out.error : Error(ErrorCategory::network, "no response");
    e.with("seq", std::to_string(get->requested));
    count_error(std::move(e), get->requested);
    return;
  }
  const http::ResponseHead& head = *get->head;
  if (head.status == 470) {
    const std::string* latest_text = head.header(k_header_latest);
    auto latest =
        latest_text
            ? parse_seq(*latest_text)
            : Result<std::int64_t>(fail(ErrorCategory::protocol, "470 without Lp-Trickle-Latest"));
    if (!latest || *latest < 0) {
      Error e =
          latest ? Error(ErrorCategory::protocol, "negative Lp-Trickle-Latest") : latest.error();
      count_error(std::move(e.with("url", where).with("seq", std::to_string(get->requested))),
                  get->requested);
      return;
    }
    consecutive_errors_ = 0;
    if (get->requested >= 0 && *latest < get->requested) {
      ++stats_.ahead_waits;  // we are ahead of the writer: wait and ask again
      request_current(get->requested, options_.ahead_wait);
      return;
    }
    ++stats_.jumps;
    if (get->requested >= 0)
      stats_.skipped_segments += static_cast<std::uint64_t>(*latest - get->requested);
    log::debug("trickle_subscribe_jump",
               {{"url", url_}, {"from", get->requested}, {"to", *latest}});
    request_current(*latest, std::chrono::milliseconds(0));
    return;
  }
  Error e = out.error ? *out.error
                      : Error(ErrorCategory::protocol,
                              "unexpected GET status " + std::to_string(head.status));
  e.with("url", where)
      .with("seq", std::to_string(get->requested))
      .with("status", std::to_string(head.status));
  count_error(std::move(e), get->requested);
}

void TrickleSubscriber::promote_next() {
  if (next_ && next_->requested == next_seq_) {
    std::shared_ptr<Get> g = std::move(next_);
    current_ = g;
    if (g->head) {
      on_head(g);
      if (ended_ || g != current_) return;
    }
    if (g->outcome) {
      on_complete(g);
      return;
    }
    g->transfer->resume_receive();
    return;
  }
  request_current(next_seq_, std::chrono::milliseconds(0));
}

void TrickleSubscriber::request_current(std::int64_t seq, std::chrono::milliseconds delay) {
  if (ended_) return;
  if (next_ && next_->requested != seq) {
    next_->abandoned = true;
    next_->transfer->cancel();
    next_.reset();
  }
  if (next_ && next_->requested == seq) {  // already preconnected: use it
    next_seq_ = seq;
    promote_next();
    return;
  }
  next_seq_ = seq;
  if (delay.count() == 0) {
    issue(seq, true);
    return;
  }
  timers_->retry.expires_after(delay);
  timers_->retry.async_wait([weak = weak_from_this(), seq](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->ended_) return;
    self->issue(seq, true);
  });
}

void TrickleSubscriber::count_error(Error error, std::int64_t retry_seq) {
  ++stats_.errors;
  if (++consecutive_errors_ >= options_.max_consecutive_errors) {
    end(SubscriberEnd::too_many_errors, std::move(error));
    return;
  }
  log::debug("trickle_subscribe_retry", {{"url", url_},
                                         {"seq", retry_seq},
                                         {"attempt", consecutive_errors_},
                                         {"error", error.describe()}});
  request_current(retry_seq, options_.retry_delay);
}

void TrickleSubscriber::end(SubscriberEnd how, std::optional<Error> error) {
  if (ended_) return;
  ended_ = true;
  timers_->retry.cancel();
  for (auto* g : {&current_, &next_}) {
    if (*g) {
      (*g)->abandoned = true;
      (*g)->refresh.cancel();
      if ((*g)->transfer) (*g)->transfer->cancel();
      g->reset();
    }
  }
  if (how == SubscriberEnd::too_many_errors) {
    log::warn("trickle_subscriber_gave_up",
              {{"url", url_}, {"error", error ? error->describe() : std::string("-")}});
  }
  auto on_end = std::move(callbacks_.on_end);
  callbacks_ = SubscriberCallbacks{};
  if (on_end) on_end(how, error);
}

}  // namespace naap::trickle
