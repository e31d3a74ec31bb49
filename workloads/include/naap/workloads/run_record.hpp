// The run record of one session: the synthetic tags every published result carries, what the
// orchestrator advertised, the outcome, every metric and the SLA verdict (docs/results.md).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "naap/workloads/live_session.hpp"

namespace naap::workloads {

inline constexpr int k_run_record_schema_version = 1;

// Who ran the test and with what: the tags of EVENTS.md's synthetic traffic.
struct RunContext {
  std::string test_run_id;                      // one per bench invocation / scheduler round
  std::string client_source = "naap-loadtest";  // who generated the traffic
  std::string gateway_id;                       // this gateway (config; hostname by default)
  std::string region;                           // where it runs
  std::string scenario;                         // scenario id
  std::string dataset_id;                       // dataset manifest id
  std::string dataset_version;                  // its semantic version
  std::string dataset_sha256;                   // SHA-256 of its manifest (empty: unknown)
  std::string pipeline;                         // preset / pipeline name
  std::string software_version;                 // naap-loadtest version
  std::string clip_id;                          // input clip id
  std::string clip_sha256;                      // its SHA-256 (empty for synthetic clips)
};

// ISO-8601 UTC with milliseconds, e.g. "2026-11-27T23:58:34.123Z".
std::string iso8601(std::chrono::system_clock::time_point t);

nlohmann::json make_run_record(const RunContext& context, const SessionConfig& config,
                               const SessionResult& result);

}  // namespace naap::workloads
