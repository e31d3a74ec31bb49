// Trickle publisher: preconnected POSTs, zero-byte retry, DELETE after a mid-segment failure.
#include "naap/transport/trickle_publisher.hpp"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>

#include "naap/core/log.hpp"
#include "naap/transport/trickle_url.hpp"

namespace naap::trickle {

namespace asio = boost::asio;

constexpr std::int64_t k_ring_slots = 5;  // go-livepeer's maxSegmentsPerStream

std::string_view to_string(PublisherEnd end) {
  switch (end) {
    case PublisherEnd::closed_by_us:
      return "closed_by_us";
    case PublisherEnd::channel_closed:
      return "channel_closed";
    case PublisherEnd::channel_not_found:
      return "channel_not_found";
    case PublisherEnd::failed:
      return "failed";
  }
  return "failed";
}

struct PublisherTimers {
  asio::steady_timer close_timer;   // bounds close()'s wait for in-flight segments
  asio::steady_timer reopen_timer;  // delays re-opening a failed preconnected POST
  bool reopen_pending = false;      // reopen_timer is armed
  explicit PublisherTimers(asio::io_context& io) : close_timer(io), reopen_timer(io) {}
};

struct TricklePublisher::Post {
  std::int64_t seq = 0;                       // segment seq this POST carries
  int attempt = 1;                            // 1 for the first POST of this seq
  std::shared_ptr<http::BodyStream> body;     // streamed body
  std::shared_ptr<http::Transfer> transfer;   // the POST (null until started)
  std::shared_ptr<SegmentWriter> writer;      // null while the POST is an idle preconnect
  int status = 0;                             // final status, once the head arrived
  bool closed_header = false;                 // the response carried Lp-Trickle-Closed
  std::unique_ptr<asio::steady_timer> delay;  // retry delay before the POST starts
  bool send_reset = false;                    // carry Lp-Trickle-Reset
  bool waited_for_slot = false;               // held back by slot_busy() at least once
};

// --- SegmentWriter ----------------------------------------------------------------------------

bool SegmentWriter::write(std::string_view bytes) {
  if (finished_ || dropped_) return false;
  auto pub = publisher_.lock();
  TricklePublisher::Post* post = pub ? pub->post_for_writer(*this) : nullptr;
  if (post == nullptr) {
    dropped_ = true;
    return false;
  }
  post->body->write(std::string(bytes));
  return true;
}

void SegmentWriter::finish() {
  if (finished_) return;
  finished_ = true;
  auto pub = publisher_.lock();
  if (TricklePublisher::Post* post = pub ? pub->post_for_writer(*this) : nullptr) {
    post->body->finish();
  }
}

std::size_t SegmentWriter::buffered_bytes() const {
  auto pub = publisher_.lock();
  TricklePublisher::Post* post = pub ? pub->post_for_writer(*this) : nullptr;
  return post ? post->body->buffered_bytes() : 0;
}

void SegmentWriter::set_on_drain(std::function<void()> callback, std::size_t low_water_bytes) {
  on_drain_ = std::move(callback);
  low_water_ = low_water_bytes;
  auto pub = publisher_.lock();
  if (TricklePublisher::Post* post = pub ? pub->post_for_writer(*this) : nullptr) {
    post->body->set_on_drain(on_drain_, low_water_);
  }
}

// --- TricklePublisher -------------------------------------------------------------------------

Result<std::shared_ptr<TricklePublisher>> TricklePublisher::create(http::Engine& engine,
                                                                   std::string channel_url,
                                                                   PublisherOptions options,
                                                                   PublisherCallbacks callbacks) {
  auto url = validate_channel_url(channel_url);
  if (!url) return fail(url.error());
  if (options.start_seq && *options.start_seq < 0) {
    return fail(Error(ErrorCategory::config, "publisher start seq must be >= 0")
                    .with("url", *url)
                    .with("seq", std::to_string(*options.start_seq)));
  }
  return std::shared_ptr<TricklePublisher>(
      new TricklePublisher(engine, std::move(*url), std::move(options), std::move(callbacks)));
}

TricklePublisher::TricklePublisher(http::Engine& engine, std::string url, PublisherOptions options,
                                   PublisherCallbacks callbacks)
    : engine_(engine),
      url_(std::move(url)),
      options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      timers_(std::make_unique<PublisherTimers>(engine.io())) {
  next_seq_ = options_.start_seq.value_or(0);
}

TricklePublisher::~TricklePublisher() {
  if (preconnected_ && preconnected_->transfer) preconnected_->transfer->cancel();
  for (auto& post : active_) {
    if (post->transfer) post->transfer->cancel();
  }
  if (control_request_) control_request_->cancel();
}

void TricklePublisher::start() {
  if (started_) return;
  started_ = true;
  if (!options_.start_seq) {
    join();
    return;
  }
  open_preconnect();
  ready_ = true;
  if (callbacks_.on_ready) callbacks_.on_ready(next_seq_);
}

void TricklePublisher::join() {
  auto body = std::make_shared<std::string>();
  http::Request req;
  req.url = url_ + "/next";
  req.tls = options_.tls;
  req.connect_timeout = options_.connect_timeout;
  req.total_timeout = std::chrono::milliseconds(10'000);
  http::Handlers h;
  h.on_data = [body](std::string_view piece) {
    if (body->size() < 64) body->append(piece);
    return http::DataAction::proceed;
  };
  auto head = std::make_shared<http::ResponseHead>();
  h.on_head = [head](const http::ResponseHead& r) { *head = r; };
  h.on_complete = [weak = weak_from_this(), body, head](const http::Outcome& out) {
    auto self = weak.lock();
    if (!self || self->ended_) return;
    self->control_request_.reset();
    if (!out.ok()) {
      Error e = out.error ? *out.error : Error(ErrorCategory::network, "join cancelled");
      self->end(PublisherEnd::failed, e.with("step", "GET /next"));
      return;
    }
    if (head->header(k_header_closed)) {
      self->end(PublisherEnd::channel_closed, std::nullopt);
      return;
    }
    if (out.status == 404) {
      self->end(PublisherEnd::channel_not_found,
                Error(ErrorCategory::protocol, "channel does not exist").with("url", self->url_));
      return;
    }
    if (out.status != 200) {
      self->end(PublisherEnd::failed,
                Error(ErrorCategory::protocol,
                      "GET /next failed (servers before May 2026 answer 400: use an explicit "
                      "start seq)")
                    .with("url", self->url_ + "/next")
                    .with("status", std::to_string(out.status)));
      return;
    }
    const std::string* latest = head->header(k_header_latest);
    auto seq = parse_seq(latest ? std::string_view(*latest) : std::string_view(*body));
    if (!seq || *seq < 0) {
      Error e = seq ? Error(ErrorCategory::protocol, "negative next seq") : seq.error();
      self->end(PublisherEnd::failed, e.with("url", self->url_ + "/next"));
      return;
    }
    self->next_seq_ = *seq;
    self->open_preconnect();
    self->ready_ = true;
    if (self->callbacks_.on_ready) self->callbacks_.on_ready(self->next_seq_);
  };
  control_request_ = engine_.start(std::move(req), std::move(h));
}

void TricklePublisher::start_post(const std::shared_ptr<Post>& post, bool fresh_connection,
                                  bool send_reset) {
  http::Request req;
  req.method = "POST";
  req.url = segment_url(url_, post->seq);
  req.stream_body = post->body;
  req.tls = options_.tls;
  req.connect_timeout = options_.connect_timeout;
  req.fresh_connection = fresh_connection;
  req.headers.emplace_back("Content-Type", options_.content_type);
  if (send_reset) req.headers.emplace_back(k_header_reset, "1");
  http::Handlers h;
  h.on_head = [wp = std::weak_ptr<Post>(post)](const http::ResponseHead& head) {
    if (auto p = wp.lock()) {
      p->status = head.status;
      p->closed_header = head.header(k_header_closed) != nullptr;
    }
  };
  h.on_interim = [weak = weak_from_this()](int) {
    if (auto self = weak.lock()) ++self->stats_.interim_responses;
  };
  h.on_complete = [weak = weak_from_this(),
                   wp = std::weak_ptr<Post>(post)](const http::Outcome& out) {
    auto self = weak.lock();
    auto p = wp.lock();
    if (self && p) self->on_post_complete(p, out);
  };
  post->transfer = engine_.start(std::move(req), std::move(h));
}

bool TricklePublisher::slot_busy(std::int64_t seq) const {
  return std::any_of(active_.begin(), active_.end(), [seq](const std::shared_ptr<Post>& p) {
    return p->seq != seq && (p->seq - seq) % k_ring_slots == 0;
  });
}

void TricklePublisher::open_preconnect() {
  if (ended_ || closing_ || preconnected_) return;
  preconnected_ = std::make_shared<Post>();
  preconnected_->seq = next_seq_;
  preconnected_->body = std::make_shared<http::BodyStream>();
  preconnected_->send_reset = first_post_pending_ && options_.reset;
  first_post_pending_ = false;
  start_if_slot_free(preconnected_);
}

void TricklePublisher::start_if_slot_free(const std::shared_ptr<Post>& post) {
  if (post->transfer || post->delay) return;  // started, or a retry waiting for its timer
  if (slot_busy(post->seq)) {
    // Opening seq N takes the server's ring slot of seq N-5: while that segment is unanswered
    // (still uploading), the server would close it and drop its remaining bytes. Hold the POST
    // (its writer buffers) until the slot's segment is done.
    if (!post->waited_for_slot) ++stats_.slot_waits;
    post->waited_for_slot = true;
    return;
  }
  start_post(post, false, post->send_reset);
}

void TricklePublisher::start_waiting_posts() {
  if (ended_) return;
  for (const auto& post : active_) start_if_slot_free(post);
  if (preconnected_) start_if_slot_free(preconnected_);
}

std::shared_ptr<SegmentWriter> TricklePublisher::next_segment() {
  if (ended_ || closing_ || !ready_) return nullptr;
  if (auto previous = last_writer_.lock(); previous && !previous->finished()) previous->finish();
  if (!preconnected_) {
    // The idle POST failed and its re-open is pending: open it now, the caller has data.
    timers_->reopen_timer.cancel();
    timers_->reopen_pending = false;
    open_preconnect();
  }
  std::shared_ptr<Post> post = std::move(preconnected_);
  auto writer = std::shared_ptr<SegmentWriter>(new SegmentWriter());
  writer->publisher_ = weak_from_this();
  writer->seq_ = post->seq;
  post->writer = writer;
  active_.push_back(post);
  next_seq_ = post->seq + 1;
  last_writer_ = writer;
  ++stats_.segments_started;
  open_preconnect();
  return writer;
}

TricklePublisher::Post* TricklePublisher::post_for_writer(const SegmentWriter& writer) const {
  for (const auto& post : active_) {
    if (post->writer.get() == &writer) return post.get();
  }
  return nullptr;
}

std::size_t TricklePublisher::in_flight() const {
  return active_.size();
}

void TricklePublisher::on_post_complete(const std::shared_ptr<Post>& post,
                                        const http::Outcome& out) {
  stats_.bytes_sent += out.bytes_sent;
  if (ended_) return;
  const bool idle = post == preconnected_;
  const bool carrying = std::find(active_.begin(), active_.end(), post) != active_.end();
  if (!idle && !carrying) return;  // superseded (cancelled during close or retry)
  if (out.cancelled) return;

  auto context = [&](Error e) {
    return std::move(
        e.with("url", segment_url(url_, post->seq)).with("seq", std::to_string(post->seq)));
  };

  if (post->closed_header) {
    if (carrying)
      segment_done(post, false, context(Error(ErrorCategory::protocol, "channel closed")), out);
    end(PublisherEnd::channel_closed, std::nullopt);
    return;
  }
  if (out.status == 404) {
    Error e = context(
        Error(ErrorCategory::orchestrator, "channel no longer exists (stream gone on the server)"));
    if (carrying) segment_done(post, false, e, out);
    end(PublisherEnd::channel_not_found, e);
    return;
  }
  if (out.ok() && out.status == 200) {
    consecutive_errors_ = 0;
    if (idle) {
      // The server released the idle POST (its slot was closed); open a new one.
      preconnected_.reset();
      open_preconnect();
      return;
    }
    if (post->writer->finished() && post->body->buffered_bytes() == 0) {
      segment_done(post, true, std::nullopt, out);
    } else {
      segment_done(post, false,
                   context(Error(ErrorCategory::protocol,
                                 "server ended the segment before its body was complete")),
                   out);
    }
    return;
  }

  Error cause = out.error ? Error(*out.error).with("seq", std::to_string(post->seq))
                          : context(Error(ErrorCategory::protocol,
                                          "unexpected POST status " + std::to_string(out.status)));
  if (!out.error) cause.with("status", std::to_string(out.status));
  ++consecutive_errors_;
  const bool give_up = consecutive_errors_ >= options_.max_consecutive_errors;

  if (idle) {
    preconnected_.reset();
    if (give_up) {
      end(PublisherEnd::failed, cause);
      return;
    }
    timers_->reopen_pending = true;
    timers_->reopen_timer.expires_after(options_.retry_delay);
    timers_->reopen_timer.async_wait(
        [weak = weak_from_this()](const boost::system::error_code& ec) {
          auto self = weak.lock();
          if (ec || !self) return;
          self->timers_->reopen_pending = false;
          self->open_preconnect();
        });
    return;
  }

  if (out.bytes_sent == 0 && post->attempt < options_.max_attempts_per_seq && !give_up) {
    retry_segment(post, cause);
    return;
  }
  // Bytes reached the server (or retries ran out): release the segment's readers.
  send_segment_delete(post->seq);
  segment_done(post, false, cause, out);
  if (give_up) end(PublisherEnd::failed, cause);
}

void TricklePublisher::retry_segment(const std::shared_ptr<Post>& old, Error cause) {
  ++stats_.retries;
  log::debug("trickle_publish_retry", {{"url", url_},
                                       {"seq", old->seq},
                                       {"attempt", old->attempt + 1},
                                       {"cause", cause.describe()}});
  auto post = std::make_shared<Post>();
  post->seq = old->seq;
  post->attempt = old->attempt + 1;
  post->writer = old->writer;
  post->body = std::make_shared<http::BodyStream>();
  for (auto& chunk : old->body->take_unsent()) post->body->write(std::move(chunk));
  if (post->writer->finished()) post->body->finish();
  if (post->writer->on_drain_)
    post->body->set_on_drain(post->writer->on_drain_, post->writer->low_water_);
  std::replace(active_.begin(), active_.end(), old, post);

  post->delay = std::make_unique<asio::steady_timer>(engine_.io(), options_.retry_delay);
  post->delay->async_wait([weak = weak_from_this(),
                           wp = std::weak_ptr<Post>(post)](const boost::system::error_code& ec) {
    auto self = weak.lock();
    auto p = wp.lock();
    if (ec || !self || !p || self->ended_) return;
    self->start_post(p, /*fresh_connection=*/true, /*send_reset=*/false);  // old one may be broken
  });
}

void TricklePublisher::segment_done(const std::shared_ptr<Post>& post, bool complete,
                                    std::optional<Error> error, const http::Outcome& out) {
  auto it = std::find(active_.begin(), active_.end(), post);
  if (it == active_.end()) return;
  std::shared_ptr<Post> keep = post;
  active_.erase(it);
  if (post->writer) post->writer->dropped_ = !complete;
  SegmentOutcome so;
  so.seq = post->seq;
  so.bytes = post->body->bytes_sent();
  so.attempts = post->attempt;
  so.complete = complete;
  so.deleted = !complete && so.bytes > 0;
  so.error = std::move(error);
  so.timings = out.timings;
  if (complete) {
    ++stats_.segments_completed;
  } else {
    ++stats_.segments_failed;
    log::warn("trickle_publish_segment_failed",
              {{"url", url_},
               {"seq", so.seq},
               {"bytes", so.bytes},
               {"error", so.error ? so.error->describe() : std::string("unknown")}});
  }
  if (callbacks_.on_segment) callbacks_.on_segment(so);
  start_waiting_posts();
  maybe_finish_close();
}

void TricklePublisher::send_segment_delete(std::int64_t seq) {
  ++stats_.deletes_sent;
  http::Request req;
  req.method = "DELETE";
  req.url = segment_url(url_, seq);
  req.tls = options_.tls;
  req.connect_timeout = options_.connect_timeout;
  req.total_timeout = std::chrono::milliseconds(10'000);
  req.fresh_connection = true;
  http::Handlers h;
  h.on_complete = [url = req.url](const http::Outcome& out) {
    if (!out.ok() || (out.status != 200 && out.status != 400 && out.status != 404)) {
      log::warn("trickle_segment_delete_failed",
                {{"url", url},
                 {"status", out.status},
                 {"error", out.error ? out.error->describe() : std::string("-")}});
    }
  };
  engine_.start(std::move(req), std::move(h));
}

void TricklePublisher::close() {
  if (closing_ || ended_) return;
  closing_ = true;
  if (auto w = last_writer_.lock(); w && !w->finished()) w->finish();
  timers_->reopen_timer.cancel();
  if (control_request_) {  // a join still pending: nothing was published
    control_request_->cancel();
    control_request_.reset();
  }
  timers_->close_timer.expires_after(options_.close_timeout);
  timers_->close_timer.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->ended_) return;
    // In-flight segments did not finish in time: stop waiting for them.
    for (auto& post : self->active_) {
      if (post->transfer) post->transfer->cancel();
    }
    auto stuck = std::move(self->active_);
    for (auto& post : stuck) {
      self->active_.push_back(post);
      self->segment_done(post, false,
                         Error(ErrorCategory::network, "segment still in flight at close")
                             .with("url", segment_url(self->url_, post->seq))
                             .with("seq", std::to_string(post->seq)),
                         http::Outcome{});
    }
    self->maybe_finish_close();
  });
  maybe_finish_close();
}

void TricklePublisher::maybe_finish_close() {
  if (!closing_ || ended_ || !active_.empty() || control_request_) return;
  timers_->close_timer.cancel();
  if (preconnected_) {
    auto idle = std::move(preconnected_);
    if (idle->transfer) idle->transfer->cancel();
  }
  send_channel_delete();
}

void TricklePublisher::send_channel_delete() {
  http::Request req;
  req.method = "DELETE";
  req.url = url_;
  req.tls = options_.tls;
  req.connect_timeout = options_.connect_timeout;
  req.total_timeout = std::chrono::milliseconds(10'000);
  req.fresh_connection = true;
  http::Handlers h;
  h.on_complete = [weak = weak_from_this()](const http::Outcome& out) {
    auto self = weak.lock();
    if (!self) return;
    self->control_request_.reset();
    // 400 "Invalid stream" and 404 mean the orchestrator already tore the channel down.
    if (!out.ok()) {
      log::warn("trickle_channel_delete_failed",
                {{"url", self->url_},
                 {"error", out.error ? out.error->describe() : std::string("cancelled")}});
    }
    self->end(PublisherEnd::closed_by_us, std::nullopt);
  };
  control_request_ = engine_.start(std::move(req), std::move(h));
}

void TricklePublisher::end(PublisherEnd how, std::optional<Error> error) {
  if (ended_) return;
  ended_ = true;
  timers_->close_timer.cancel();
  timers_->reopen_timer.cancel();
  if (preconnected_ && preconnected_->transfer) preconnected_->transfer->cancel();
  preconnected_.reset();
  auto remaining = std::move(active_);
  for (auto& post : remaining) {
    if (post->transfer) post->transfer->cancel();
    if (post->writer) post->writer->dropped_ = true;
    ++stats_.segments_failed;
    if (callbacks_.on_segment) {
      SegmentOutcome so;
      so.seq = post->seq;
      so.bytes = post->body->bytes_sent();
      so.attempts = post->attempt;
      so.error = Error(ErrorCategory::network,
                       std::string("publisher ended: ") + std::string(to_string(how)))
                     .with("url", segment_url(url_, post->seq))
                     .with("seq", std::to_string(post->seq));
      callbacks_.on_segment(so);
    }
  }
  if (how != PublisherEnd::closed_by_us) {
    log::info("trickle_publisher_end", {{"url", url_},
                                        {"reason", to_string(how)},
                                        {"error", error ? error->describe() : std::string("-")}});
  }
  auto on_end = std::move(callbacks_.on_end);
  callbacks_ = PublisherCallbacks{};
  if (on_end) on_end(how, error);
}

}  // namespace naap::trickle
