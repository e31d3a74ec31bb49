// The events we publish, in go-livepeer's envelope (EVENTS.md §2, §5): stream_trace subtypes,
// forwarded runner events, gateway errors and parameter updates, orchestrator swaps, discovery
// results, network capabilities, and our own synthetic_test_result family. Every builder puts
// the synthetic tags (EVENTS.md §5.3) into `data` (into each element for arrays) and picks the
// message key of EVENTS.md §5.5. JSON Schemas for each: reports/schemas/, docs/events.md.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "naap/reports/envelope.hpp"

namespace naap::reports {

// `data.schema_version` of every event we produce or forward.
inline constexpr std::string_view k_event_schema_version = "naap-loadtest/1";
// The capability we test.
inline constexpr std::string_view k_workflow = "live-video-to-video";

// The tags every event carries (EVENTS.md §5.3).
struct EventTags {
  std::string test_run_id;                      // one per bench invocation / scheduler round
  std::string client_source = "naap-loadtest";  // never "scope"
  std::string scenario;                         // scenario id
  std::string dataset_id;                       // dataset manifest id
  std::string dataset_version;                  // its version
  std::string dataset_sha256;                   // manifest hash; empty = null
  std::string gateway_id;                       // also the envelope `gateway` (never empty)
  std::string region;                           // where the gateway runs
  std::string pipeline;                         // model id, as go-livepeer's `pipeline`
  std::string model_id;                         // explicit model id
  std::string pipeline_id;                      // stable per-scenario id, "syn-" prefixed
  std::string target_orchestrator_url;          // the orchestrator aimed at (may be empty)

  // The tag object; `pipeline` is left out when `with_pipeline` is false (forwarded runner
  // events keep their own).
  nlohmann::json to_json(bool with_pipeline = true) const;
  // Adds the tags to `data` without overwriting a key it already has.
  void apply(nlohmann::json& data) const;
};

// Which orchestrator an event is about: both strings empty before one is chosen (and on
// excused sessions, EVENTS.md §5.2).
struct OrchestratorRef {
  std::string address;  // 0x-hex Ethereum address (lower case), or the configured host:port
  std::string url;      // its transcoder URL
  nlohmann::json to_json() const { return {{"address", address}, {"url", url}}; }
};

// One session's identity: the NaaP session key is stream_id|request_id (EVENTS.md §3).
struct SessionKeys {
  std::string stream_id;
  std::string request_id;
  std::string pipeline_id;
};

// The stream_trace subtypes NaaP accepts that we emit ourselves.
namespace trace {
inline constexpr std::string_view receive_stream_request = "gateway_receive_stream_request";
inline constexpr std::string_view send_first_ingest_segment = "gateway_send_first_ingest_segment";
inline constexpr std::string_view receive_first_processed_segment =
    "gateway_receive_first_processed_segment";
inline constexpr std::string_view receive_few_processed_segments =
    "gateway_receive_few_processed_segments";
inline constexpr std::string_view ingest_stream_closed = "gateway_ingest_stream_closed";
inline constexpr std::string_view no_orchestrators_available = "gateway_no_orchestrators_available";
inline constexpr std::string_view orchestrator_swap = "orchestrator_swap";
}  // namespace trace

// `stream_trace` with data {type, timestamp (ms), stream_id, request_id, pipeline_id,
// orchestrator_info, pipeline, session_elapsed_ms, message?}. `observed_ms` (Unix ms) is both
// data.timestamp and the envelope timestamp.
Envelope stream_trace(const EventTags& tags, const SessionKeys& keys, std::string_view subtype,
                      const OrchestratorRef& orchestrator, std::int64_t observed_ms,
                      double session_elapsed_ms, std::string_view message = {});

// `stream_trace` / `orchestrator_swap`: message = the cause, orchestrator_info = the one left;
// no data.timestamp, as go-livepeer sends it.
Envelope orchestrator_swap(const EventTags& tags, const SessionKeys& keys,
                           const OrchestratorRef& left, std::string_view cause,
                           std::int64_t observed_ms, double session_elapsed_ms);

// A runner event read from the events channel, forwarded as go-livepeer does (PROTOCOL.md
// §4.3): `body` is the wrapper {event, queue_event_type} or a bare event. The family is the
// wrapper's queue_event_type (ai_stream_events for a bare event) and `status` events go out as
// ai_stream_status. The four context keys and our tags are added; the runner's own keys
// (pipeline, timestamp, …) are never touched. `read_ms` is when we read it. Returns nothing
// for a body that is not a JSON object or whose event is not one.
std::optional<Envelope> forwarded_runner_event(const EventTags& tags, const SessionKeys& keys,
                                               const OrchestratorRef& orchestrator,
                                               const nlohmann::json& body, std::int64_t read_ms);

// `ai_stream_events` / `error` raised by the gateway: {type, stream_id, request_id,
// pipeline_id, pipeline, capability, message}; orchestrator_info only when the failure is
// charged to that orchestrator (EVENTS.md §5.2).
Envelope gateway_error(const EventTags& tags, const SessionKeys& keys,
                       const std::optional<OrchestratorRef>& charged, std::string_view message,
                       std::int64_t observed_ms);

// `ai_stream_events` / `params_update`: the full parameter set written to the control channel.
Envelope params_update(const EventTags& tags, const SessionKeys& keys,
                       const OrchestratorRef& orchestrator, const nlohmann::json& params,
                       std::int64_t observed_ms);

// One orchestrator found by a discovery round, as go-livepeer reports it: every value a string.
struct DiscoveredEntry {
  std::string address;      // 0x-hex Ethereum address
  std::string url;          // transcoder URL
  std::int64_t latency_ms;  // GetOrchestrator round trip, dial included
};
// `discovery_results`: a non-empty array, one element per orchestrator that answered; keyed by
// the test run. Returns nothing for an empty list (go-livepeer sends none).
std::optional<Envelope> discovery_results(const EventTags& tags,
                                          const std::vector<DiscoveredEntry>& found,
                                          std::int64_t observed_ms);

// `network_capabilities`: an array holding one orchestrator's entry {address, local_address,
// orch_uri, capabilities, capabilities_prices, hardware} (build it with
// orch::network_capabilities_entry), keyed by its URL.
Envelope network_capabilities(const EventTags& tags, nlohmann::json entry,
                              std::int64_t observed_ms);

// `synthetic_test_result` / `session_result`: EVENTS.md §5.4's flat keys derived from the run
// record, plus the whole record under `record`. Keyed by the session's request_id.
Envelope session_result(const EventTags& tags, const nlohmann::json& run_record,
                        std::int64_t observed_ms);

// `synthetic_test_result` / `run_summary`: `summary` holds run_started_ms, run_ended_ms,
// sessions_planned, sessions_started, outcomes, orchestrators_tested, orchestrators_excused,
// config_sha256, datasets, software_version. Keyed by the test run.
Envelope run_summary(const EventTags& tags, nlohmann::json summary, std::int64_t observed_ms);

// Outcomes that are not charged to the orchestrator in failure rates.
bool outcome_is_excused(std::string_view outcome);

}  // namespace naap::reports
