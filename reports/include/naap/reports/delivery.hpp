// Spool-first delivery (EVENTS.md §5.6): publish() makes the envelope durable in the spool, then
// hands it to the sink; the spool forgets it only on the sink's positive report. Failed
// deliveries stay in the spool and go out again on the next retry_pending(), with the same id
// and timestamp, so a consumer can drop duplicates by id. Not thread-safe: one owner thread.
// The sink's reports refer to this object: flush the sink before destroying it.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "naap/core/error.hpp"
#include "naap/reports/envelope.hpp"
#include "naap/reports/sink.hpp"
#include "naap/reports/spool.hpp"

namespace naap::reports {

class Delivery {
 public:
  Delivery(Spool& spool, Sink& sink) : spool_(spool), sink_(sink) {}

  // Fails only when the spool refuses the record (full, disk error): nothing was recorded and
  // the caller still holds it. A sink failure is not an error here: the record waits in the
  // spool for retry_pending().
  Result<void> publish(const Envelope& envelope);
  // Spools several envelopes with one flush (group commit), then hands each to the sink.
  Result<void> publish_batch(const std::vector<Envelope>& envelopes);
  // Hands every spooled record that is not already in flight to the sink (a restart's replay,
  // or a retry after failures). Returns how many were handed over.
  std::size_t retry_pending();

  struct Stats {
    std::uint64_t published = 0;        // accepted by publish()
    std::uint64_t delivered = 0;        // positive reports
    std::uint64_t failed_attempts = 0;  // negative reports (the record stays spooled)
    std::uint64_t resent = 0;           // handed over again by retry_pending()
  };
  const Stats& stats() const { return stats_; }
  std::size_t backlog() const { return spool_.pending_count(); }
  std::size_t in_flight() const { return in_flight_.size(); }
  const std::optional<Error>& last_error() const { return last_error_; }

 private:
  void hand_over(const SpoolRecord& record);

  Spool& spool_;
  Sink& sink_;
  std::set<std::string, std::less<>> in_flight_;  // ids handed to the sink, no report yet
  Stats stats_;
  std::optional<Error> last_error_;  // most recent delivery or spool error
};

}  // namespace naap::reports
