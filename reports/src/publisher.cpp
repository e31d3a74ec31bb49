// The results pipeline's thread (see publisher.hpp).
#include "naap/reports/publisher.hpp"

#include "naap/core/clock.hpp"
#include "naap/core/log.hpp"

namespace naap::reports {

using Clock = std::chrono::steady_clock;

std::unique_ptr<Publisher> Publisher::start(std::unique_ptr<Spool> spool,
                                            std::unique_ptr<Sink> sink, PublisherOptions options) {
  std::unique_ptr<Publisher> p(new Publisher(std::move(spool), std::move(sink), options));
  {
    std::lock_guard lock(p->mutex_);
    const std::size_t replayed = p->delivery_->retry_pending();
    if (replayed > 0)
      log::info("results_replay", {{"sink", p->sink_->name()},
                                   {"records", replayed},
                                   {"spool", p->spool_->path().string()}});
  }
  p->thread_ = std::thread([raw = p.get()] { raw->run(); });
  return p;
}

Publisher::Publisher(std::unique_ptr<Spool> spool, std::unique_ptr<Sink> sink,
                     PublisherOptions options)
    : options_(options),
      spool_(std::move(spool)),
      sink_(std::move(sink)),
      delivery_(std::make_unique<Delivery>(*spool_, *sink_)),
      last_retry_(Clock::now()),
      last_backlog_log_(Clock::now()) {}

Publisher::~Publisher() {
  if (!stopped_) shutdown(std::chrono::seconds(5));
}

Result<void> Publisher::publish(const Envelope& envelope) {
  return publish_batch(std::vector<Envelope>{envelope});
}

Result<void> Publisher::publish_batch(const std::vector<Envelope>& envelopes) {
  if (envelopes.empty()) return {};
  std::lock_guard lock(mutex_);
  // Keep publish order: while earlier events are held, new ones queue behind them.
  if (held_.empty()) {
    auto r = delivery_->publish_batch(envelopes);
    if (r) {
      refusing_ = false;
      return r;
    }
    last_error_ = r.error().describe();
  }
  const bool first = !refusing_;
  refusing_ = true;
  for (const auto& e : envelopes) held_.push_back(e);
  if (first)
    log::error("results_spool_refusing",
               {{"spool", spool_->path().string()},
                {"held_in_memory", held_.size()},
                {"backlog", delivery_->backlog()},
                {"error", last_error_},
                {"hint", "the sink is not draining or the disk is full: no new sessions start"}});
  return fail(
      Error(ErrorCategory::sink, "results spool refused the event (held in memory): " + last_error_)
          .with("spool", spool_->path().string()));
}

Publisher::Snapshot Publisher::snapshot() const {
  std::lock_guard lock(mutex_);
  Snapshot s;
  const auto& stats = delivery_->stats();
  s.published = stats.published;
  s.delivered = stats.delivered;
  s.failed_attempts = stats.failed_attempts;
  s.backlog = delivery_->backlog();
  s.in_flight = delivery_->in_flight();
  s.held = held_.size();
  s.oldest_pending_age_s = oldest_age_locked();
  s.journal_bytes = spool_->journal_bytes();
  s.spool_refusing = refusing_;
  s.last_error = last_error_;
  if (s.last_error.empty() && delivery_->last_error())
    s.last_error = delivery_->last_error()->describe();
  s.sink = std::string(sink_->name());
  return s;
}

bool Publisher::refusing() const {
  std::lock_guard lock(mutex_);
  return refusing_;
}

double Publisher::oldest_age_locked() const {
  double age = 0;
  const std::int64_t now = unix_millis_now();
  if (const SpoolRecord* oldest = spool_->oldest_pending()) {
    if (auto e = parse_envelope(oldest->payload))
      age = static_cast<double>(now - e->timestamp_ms) / 1000.0;
  }
  if (!held_.empty())
    age = std::max(age, static_cast<double>(now - held_.front().timestamp_ms) / 1000.0);
  return std::max(age, 0.0);
}

void Publisher::service_locked(bool force_retry) {
  sink_->poll();
  const auto now = Clock::now();
  if (force_retry || now - last_retry_ >= options_.retry_interval) {
    last_retry_ = now;
    if (delivery_->backlog() > delivery_->in_flight()) delivery_->retry_pending();
    while (!held_.empty()) {
      auto r = delivery_->publish(held_.front());
      if (!r) {
        last_error_ = r.error().describe();
        break;
      }
      held_.pop_front();
    }
    if (held_.empty() && refusing_) {
      refusing_ = false;
      log::info("results_spool_accepting", {{"backlog", delivery_->backlog()}});
    }
  }
  if (now - last_backlog_log_ >= options_.backlog_log_interval) {
    last_backlog_log_ = now;
    log_backlog_locked();
  }
}

void Publisher::log_backlog_locked() {
  const std::size_t backlog = delivery_->backlog() + held_.size();
  if (backlog == 0) return;
  std::string error = last_error_;
  if (error.empty() && delivery_->last_error()) error = delivery_->last_error()->describe();
  log::warn("results_backlog", {{"sink", sink_->name()},
                                {"backlog", backlog},
                                {"in_flight", delivery_->in_flight()},
                                {"held_in_memory", held_.size()},
                                {"oldest_age_s", static_cast<std::int64_t>(oldest_age_locked())},
                                {"last_error", error.empty() ? "-" : error}});
}

void Publisher::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    service_locked(false);
    wake_.wait_for(lock, options_.poll_interval, [this] { return stopping_; });
  }
}

std::size_t Publisher::shutdown(std::chrono::milliseconds deadline) {
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return delivery_->backlog() + held_.size();
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  const auto until = Clock::now() + deadline;
  std::unique_lock lock(mutex_);
  bool first = true;
  while (delivery_->backlog() + held_.size() > 0 && Clock::now() < until) {
    service_locked(first);
    first = false;
    if (delivery_->backlog() + held_.size() == 0) break;
    lock.unlock();
    std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(
        options_.poll_interval, std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::max(until - Clock::now(), Clock::duration::zero()))));
    lock.lock();
    if (delivery_->in_flight() == 0 && delivery_->backlog() > 0) last_retry_ = {};
  }
  const auto remaining =
      std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
  (void)sink_->flush(std::max(remaining, std::chrono::milliseconds(0)));
  sink_->poll();
  stopped_ = true;
  if (delivery_->backlog() == 0 && held_.empty() && spool_->journal_bytes() > 0) {
    if (auto r = spool_->compact(); !r)
      log::warn("spool_compact_failed", {{"error", r.error().describe()}});
  }
  // Refused by the spool to the end: the log is the last place they can be recovered from.
  for (const auto& e : held_)
    log::error("results_event_not_spooled", {{"id", e.id}, {"event", serialize(e)}});
  const std::size_t left = delivery_->backlog() + held_.size();
  if (left == 0)
    log::info("results_flushed",
              {{"sink", sink_->name()}, {"delivered", delivery_->stats().delivered}});
  else
    log::warn("results_left_spooled",
              {{"sink", sink_->name()},
               {"spooled", delivery_->backlog()},
               {"held_in_memory", held_.size()},
               {"spool", spool_->path().string()},
               {"hint", held_.empty() ? "delivered on the next start"
                                      : "events the spool refused are in the log above "
                                        "(results_event_not_spooled)"}});
  return left;
}

}  // namespace naap::reports

namespace naap::reports {

Result<ResultsOptions::SinkKind> parse_sink_kind(std::string_view text, std::string* jsonl_path) {
  using Kind = ResultsOptions::SinkKind;
  if (text == "stdout") return Kind::stdout_lines;
  if (text == "kafka") return Kind::kafka;
  if (text == "none") return Kind::none;
  if (text == "jsonl") return Kind::jsonl;
  if (text.starts_with("jsonl:") && text.size() > 6) {
    if (jsonl_path) *jsonl_path = std::string(text.substr(6));
    return Kind::jsonl;
  }
  return fail(Error(ErrorCategory::config, "unknown results sink '" + std::string(text) +
                                               "': use jsonl[:PATH], stdout, kafka or none"));
}

std::filesystem::path default_state_dir() {
  if (const char* dir = std::getenv("NAAP_STATE_DIR"); dir && *dir) return dir;
  if (const char* dir = std::getenv("XDG_STATE_HOME"); dir && *dir)
    return std::filesystem::path(dir) / "naap-loadtest";
  if (const char* home = std::getenv("HOME"); home && *home)
    return std::filesystem::path(home) / ".local/state/naap-loadtest";
  return ".naap-loadtest-state";
}

Result<std::unique_ptr<Publisher>> open_results(const ResultsOptions& options) {
  using Kind = ResultsOptions::SinkKind;
  if (options.sink == Kind::none) return std::unique_ptr<Publisher>();
  std::filesystem::path spool_path = options.spool_path;
  if (spool_path.empty()) {
    if (options.sink == Kind::jsonl)
      spool_path = options.jsonl_path.string() + ".spool";
    else
      spool_path =
          default_state_dir() /
          ("spool-" + (options.sink == Kind::kafka ? options.kafka.topic : "stdout") + ".jsonl");
  }
  std::error_code ec;
  if (spool_path.has_parent_path())
    std::filesystem::create_directories(spool_path.parent_path(), ec);
  if (ec)
    return fail(Error(ErrorCategory::config, "cannot create the spool folder: " + ec.message())
                    .with("path", spool_path.parent_path().string()));
  SpoolOptions spool_options;
  spool_options.path = spool_path;
  spool_options.max_bytes = options.spool_max_bytes;
  auto spool = Spool::open(spool_options);
  if (!spool) return fail(spool.error());
  std::unique_ptr<Sink> sink;
  switch (options.sink) {
    case Kind::jsonl: {
      auto s = JsonlSink::open(options.jsonl_path);
      if (!s) return fail(s.error());
      sink = std::move(*s);
      break;
    }
    case Kind::stdout_lines:
      sink = std::make_unique<StreamSink>(stdout);
      break;
    case Kind::kafka: {
      auto s = KafkaSink::create(options.kafka);
      if (!s) return fail(s.error());
      sink = std::move(*s);
      break;
    }
    case Kind::none:
      break;
  }
  log::info("results_pipeline", {{"sink", sink->name()},
                                 {"spool", spool_path.string()},
                                 {"pending", (*spool)->pending_count()}});
  return Publisher::start(std::move(*spool), std::move(sink), options.publisher);
}

}  // namespace naap::reports
