// Spool-first delivery with acks on positive reports and resend of what stayed spooled.
#include "naap/reports/delivery.hpp"

#include "naap/core/log.hpp"

namespace naap::reports {

Result<void> Delivery::publish(const Envelope& envelope) {
  return publish_batch(std::vector<Envelope>{envelope});
}

Result<void> Delivery::publish_batch(const std::vector<Envelope>& envelopes) {
  std::vector<SpoolRecord> records;
  records.reserve(envelopes.size());
  for (const Envelope& e : envelopes) records.push_back(SpoolRecord{e.id, e.key, serialize(e)});
  if (auto r = spool_.append_batch(records); !r) {
    last_error_ = r.error();
    return r;
  }
  stats_.published += records.size();
  for (const SpoolRecord& record : records) hand_over(record);
  return {};
}

std::size_t Delivery::retry_pending() {
  std::size_t handed = 0;
  for (const SpoolRecord& record : spool_.pending()) {
    if (in_flight_.contains(record.id)) continue;
    ++stats_.resent;
    ++handed;
    hand_over(record);
  }
  return handed;
}

void Delivery::hand_over(const SpoolRecord& record) {
  in_flight_.insert(record.id);
  sink_.deliver(record, [this, id = record.id](const std::optional<Error>& error) {
    in_flight_.erase(id);
    if (error) {
      ++stats_.failed_attempts;
      last_error_ = error;
      log::warn("delivery_failed", {{"sink", sink_.name()},
                                    {"id", id},
                                    {"backlog", spool_.pending_count()},
                                    {"error", error->describe()}});
      return;
    }
    ++stats_.delivered;
    if (auto r = spool_.ack(id); !r) {
      // Delivered but not forgotten: a restart resends it once more (a duplicate by id).
      last_error_ = r.error();
      log::error("spool_ack_failed", {{"id", id}, {"error", r.error().describe()}});
    }
  });
}

}  // namespace naap::reports
