// The results pipeline as the rest of the program sees it: publish() from any thread makes an
// event durable in the spool and hands it to the sink; a background thread serves delivery
// reports, resends what failed, and reports the backlog (a log line and a snapshot for
// /metrics). Nothing is dropped: when the spool refuses a record (size bound, full disk) the
// event is held in memory, retried, and the refusal is reported loudly so the caller can stop
// starting new sessions. shutdown() flushes with a deadline and leaves the rest spooled for
// the next start (EVENTS.md §5.6).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "naap/core/error.hpp"
#include "naap/reports/delivery.hpp"
#include "naap/reports/envelope.hpp"
#include "naap/reports/kafka_sink.hpp"
#include "naap/reports/sink.hpp"
#include "naap/reports/spool.hpp"

namespace naap::reports {

struct PublisherOptions {
  std::chrono::milliseconds poll_interval{50};             // delivery reports are served this often
  std::chrono::milliseconds retry_interval{2'000};         // failed records go out again this often
  std::chrono::milliseconds backlog_log_interval{30'000};  // `results_backlog` line cadence
};

class Publisher {
 public:
  // Takes the spool and the sink, resends what an earlier run left spooled, starts the thread.
  static std::unique_ptr<Publisher> start(std::unique_ptr<Spool> spool, std::unique_ptr<Sink> sink,
                                          PublisherOptions options = {});
  // Shuts down with a 5 s deadline if shutdown() was not called.
  ~Publisher();
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  // Thread-safe. Ok: the events are in the spool (durable). An error means the spool refused
  // them: they are held in memory and retried (never dropped) and the caller should stop
  // starting new work until `refusing()` clears.
  Result<void> publish(const Envelope& envelope);
  Result<void> publish_batch(const std::vector<Envelope>& envelopes);

  struct Snapshot {
    std::uint64_t published = 0;        // events accepted into the spool
    std::uint64_t delivered = 0;        // positive delivery reports
    std::uint64_t failed_attempts = 0;  // negative reports (the event stays spooled)
    std::size_t backlog = 0;            // spooled without a positive report
    std::size_t in_flight = 0;          // handed to the sink, report pending
    std::size_t held = 0;               // refused by the spool, held in memory
    double oldest_pending_age_s = 0;    // age of the oldest undelivered event (0: none)
    std::uint64_t journal_bytes = 0;    // the spool's journal size
    bool spool_refusing = false;        // the last append was refused
    std::string last_error;             // most recent delivery or spool error ("" none)
    std::string sink;                   // sink name
  };
  Snapshot snapshot() const;
  // Whether the spool refuses events now (Snapshot::spool_refusing without the rest of the
  // snapshot, which reads the oldest pending event): cheap enough for every scheduler tick.
  bool refusing() const;

  // Stops the thread, then keeps serving reports and resending until nothing is pending or
  // `deadline` passed. Returns how many events are left spooled (delivered on the next start)
  // plus those held in memory (logged as lost only if the process then exits).
  std::size_t shutdown(std::chrono::milliseconds deadline);

 private:
  Publisher(std::unique_ptr<Spool> spool, std::unique_ptr<Sink> sink, PublisherOptions options);
  void run();
  void service_locked(bool force_retry);  // poll, resend, re-offer held events
  void log_backlog_locked();
  double oldest_age_locked() const;

  PublisherOptions options_;
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<Sink> sink_;
  std::unique_ptr<Delivery> delivery_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Envelope> held_;  // refused by the spool, in publish order
  bool stopping_ = false;
  bool stopped_ = false;
  bool refusing_ = false;
  std::string last_error_;
  std::chrono::steady_clock::time_point last_retry_;
  std::chrono::steady_clock::time_point last_backlog_log_;
  std::thread thread_;
};

}  // namespace naap::reports

namespace naap::reports {

// Where results go, as configured (`bench` flags, the daemon's `sinks:` section).
struct ResultsOptions {
  enum class SinkKind { jsonl, stdout_lines, kafka, none };
  SinkKind sink = SinkKind::jsonl;
  std::filesystem::path jsonl_path = "naap-events.jsonl";  // the JSONL sink's file
  KafkaOptions kafka;                                      // the Kafka sink
  std::filesystem::path spool_path;  // journal; empty = next to the JSONL file, or the state dir
  std::uint64_t spool_max_bytes = 1ull << 30;        // size bound (loud refusal beyond)
  std::chrono::milliseconds flush_deadline{10'000};  // graceful flush at shutdown
  PublisherOptions publisher;
};

// Parses "jsonl:PATH", "jsonl" (default path), "stdout", "kafka" or "none".
Result<ResultsOptions::SinkKind> parse_sink_kind(std::string_view text, std::string* jsonl_path);

// The default spool for a Kafka sink: $NAAP_STATE_DIR, else $XDG_STATE_HOME/naap-loadtest, else
// ~/.local/state/naap-loadtest; the file is spool-<topic>.jsonl.
std::filesystem::path default_state_dir();

// Opens the spool (creating its folder), the sink, and starts the publisher. Nothing to open
// for SinkKind::none (returns nullptr). Errors name the file or the Kafka property.
Result<std::unique_ptr<Publisher>> open_results(const ResultsOptions& options);

}  // namespace naap::reports
