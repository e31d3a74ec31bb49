// Durable spool: a record is appended (and flushed) to a local journal before any sink sees it,
// and forgotten only after the sink confirmed delivery. A restart replays what was never
// confirmed, so a crash, a broker outage or a SIGKILL loses nothing (EVENTS.md, issue 5).
//
// Journal: one JSON document per line, `{"op":"put","id":…,"key":…,"payload":…}` or
// `{"op":"ack","id":…}`. A torn last line (crash mid-write) or any line that is not a valid
// entry is counted, logged with its line number, and skipped; the records around it survive.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "naap/core/error.hpp"

namespace naap::reports {

// One record waiting for delivery.
struct SpoolRecord {
  std::string id;       // unique id (the event envelope's id); duplicates are identified by it
  std::string key;      // message key (keeps a session's events in order on Kafka)
  std::string payload;  // the serialized record
};

struct SpoolOptions {
  std::filesystem::path path;                // journal file; its folder must exist
  std::uint64_t max_bytes = 1ull << 30;      // journal size bound; appends beyond it fail
  bool sync = true;                          // fdatasync after every write
  double compact_when_acked_fraction = 0.5;  // rewrite once this share of bytes is acked
};

class Spool {
 public:
  // Opens (creating if needed) and replays the journal. Fails only when the file cannot be
  // opened or read; corrupt lines are skipped and counted.
  static Result<std::unique_ptr<Spool>> open(SpoolOptions options);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Appends and flushes a record. Fails (nothing recorded) with a `sink` error when the journal
  // would pass max_bytes (logged loudly: the backlog is not draining) or the write fails
  // (disk full, I/O error); an id already pending is rejected as a duplicate.
  Result<void> append(const SpoolRecord& record);
  // Appends several records with one write and one flush (group commit): all or none.
  Result<void> append_batch(const std::vector<SpoolRecord>& records);
  // Marks a record delivered. Unknown ids are ignored (acked twice, or from before a compaction).
  // The ack line is written but not flushed by itself: a crash may resend it once (by id).
  Result<void> ack(std::string_view id);
  // Rewrites the journal with the pending records only (atomic rename).
  Result<void> compact();

  // Pending records in append order.
  std::vector<SpoolRecord> pending() const;
  std::size_t pending_count() const { return pending_.size(); }
  // The pending record appended first, or nullptr when nothing is pending.
  const SpoolRecord* oldest_pending() const {
    return pending_.empty() ? nullptr : &pending_.begin()->second.record;
  }
  std::uint64_t pending_bytes() const { return pending_bytes_; }
  std::uint64_t journal_bytes() const { return journal_bytes_; }
  std::uint64_t corrupt_lines() const { return corrupt_lines_; }
  const std::filesystem::path& path() const { return options_.path; }

 private:
  explicit Spool(SpoolOptions options) : options_(std::move(options)) {}
  Result<void> replay();
  Result<void> write_line(const std::string& line, bool sync);
  Result<void> open_for_append();

  struct Entry {
    SpoolRecord record;            // the record
    std::uint64_t line_bytes = 0;  // size of its put line in the journal
  };
  static std::string put_line(const SpoolRecord& record);
  void add_pending(SpoolRecord record, std::uint64_t line_bytes);

  SpoolOptions options_;
  int fd_ = -1;                                                 // journal, O_APPEND
  int lock_fd_ = -1;                                            // <journal>.lock, flock'ed
  std::uint64_t next_order_ = 0;                                // append order counter
  std::map<std::uint64_t, Entry> pending_;                      // order -> record
  std::map<std::string, std::uint64_t, std::less<>> order_of_;  // id -> order
  std::uint64_t pending_bytes_ = 0;                             // payload bytes pending
  std::uint64_t journal_bytes_ = 0;                             // file size
  std::uint64_t acked_bytes_ = 0;    // journal bytes belonging to acked records
  std::uint64_t corrupt_lines_ = 0;  // lines skipped at replay
};

}  // namespace naap::reports
