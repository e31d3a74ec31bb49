// One session's events (EVENTS.md §5.2): its signals become go-livepeer-shaped envelopes —
// stream_trace subtypes at go-livepeer's trigger points, forwarded runner events, gateway errors,
// parameter updates, swaps — and its run record becomes the synthetic_test_result /
// session_result. Everything is handed to `publish` (normally reports::Publisher::publish).
#pragma once

#include <functional>
#include <nlohmann/json.hpp>

#include "naap/reports/events.hpp"
#include "naap/workloads/live_session.hpp"
#include "naap/workloads/run_record.hpp"

namespace naap::workloads {

// The tags of every event of a session run with `context` and `config`.
reports::EventTags event_tags(const RunContext& context, const SessionConfig& config);

// The stable per-scenario pipeline id: "syn-" + scenario id.
std::string pipeline_id_for(std::string_view scenario);

class SessionEvents {
 public:
  using Publish = std::function<void(reports::Envelope&&)>;

  SessionEvents(reports::EventTags tags, const SessionConfig& config, Publish publish);

  // Turns one signal into its envelope(s); io thread (not thread-safe).
  void on_signal(const SessionSignal& signal);
  // The session_result carrying the run record.
  void on_result(const nlohmann::json& run_record);

  std::uint64_t published() const { return published_; }

 private:
  void emit(reports::Envelope&& envelope);

  reports::EventTags tags_;
  reports::SessionKeys keys_;
  Publish publish_;
  nlohmann::json last_status_;  // previous status event (refill of last_params / restart logs)
  std::uint64_t published_ = 0;
};

}  // namespace naap::workloads
