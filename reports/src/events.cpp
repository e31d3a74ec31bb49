// Event builders (see events.hpp and docs/events.md).
#include "naap/reports/events.hpp"

#include "naap/core/ids.hpp"

namespace naap::reports {

using json = nlohmann::json;

namespace {

json null_if_empty(const std::string& s) {
  return s.empty() ? json() : json(s);
}

Envelope envelope(const EventTags& tags, std::string type, json data, std::string key,
                  std::int64_t observed_ms) {
  Envelope e;
  e.id = uuid_v4();
  e.type = std::move(type);
  e.timestamp_ms = observed_ms;
  e.gateway = tags.gateway_id;
  e.data = std::move(data);
  e.key = std::move(key);
  return e;
}

// The four context keys go-livepeer sets on everything about a stream.
void add_context(json& data, const SessionKeys& keys) {
  data["stream_id"] = keys.stream_id;
  data["request_id"] = keys.request_id;
  data["pipeline_id"] = keys.pipeline_id;
}

// A value from the run record, or null.
json at(const json& object, std::string_view key) {
  if (!object.is_object()) return json();
  auto it = object.find(key);
  return it == object.end() ? json() : *it;
}

json histogram_subset(const json& histogram, std::initializer_list<std::string_view> fields) {
  if (!histogram.is_object() || at(histogram, "count").is_null() ||
      at(histogram, "count").get<std::int64_t>() == 0)
    return json();
  json out = json::object();
  out["count"] = histogram["count"];
  for (auto f : fields) out[std::string(f)] = at(histogram, f);
  return out;
}

}  // namespace

json EventTags::to_json(bool with_pipeline) const {
  json j = {{"synthetic", true},
            {"client_source", client_source},
            {"schema_version", k_event_schema_version},
            {"test_run_id", test_run_id},
            {"scenario", scenario},
            {"dataset_id", dataset_id},
            {"dataset_version", dataset_version},
            {"dataset_sha256", null_if_empty(dataset_sha256)},
            {"gateway_id", gateway_id},
            {"region", region},
            {"workflow", k_workflow},
            {"model_id", model_id},
            {"pipeline_id", pipeline_id},
            {"target_orchestrator_url", target_orchestrator_url}};
  if (with_pipeline) j["pipeline"] = pipeline;
  return j;
}

void EventTags::apply(json& data) const {
  const json tags = to_json();
  for (const auto& [k, v] : tags.items())
    if (!data.contains(k)) data[k] = v;
}

bool outcome_is_excused(std::string_view outcome) {
  return outcome == "excused_no_capacity" || outcome == "gateway_error" || outcome == "aborted";
}

Envelope stream_trace(const EventTags& tags, const SessionKeys& keys, std::string_view subtype,
                      const OrchestratorRef& orchestrator, std::int64_t observed_ms,
                      double session_elapsed_ms, std::string_view message) {
  json data = {{"type", subtype}, {"timestamp", observed_ms}};
  add_context(data, keys);
  data["orchestrator_info"] = orchestrator.to_json();
  data["pipeline"] = tags.pipeline;
  data["session_elapsed_ms"] = session_elapsed_ms;
  if (!message.empty()) data["message"] = message;
  tags.apply(data);
  return envelope(tags, "stream_trace", std::move(data), keys.request_id, observed_ms);
}

Envelope orchestrator_swap(const EventTags& tags, const SessionKeys& keys,
                           const OrchestratorRef& left, std::string_view cause,
                           std::int64_t observed_ms, double session_elapsed_ms) {
  json data = {{"type", trace::orchestrator_swap}};
  add_context(data, keys);
  data["orchestrator_info"] = left.to_json();
  data["pipeline"] = tags.pipeline;
  data["message"] = cause;
  data["session_elapsed_ms"] = session_elapsed_ms;
  tags.apply(data);
  return envelope(tags, "stream_trace", std::move(data), keys.request_id, observed_ms);
}

std::optional<Envelope> forwarded_runner_event(const EventTags& tags, const SessionKeys& keys,
                                               const OrchestratorRef& orchestrator,
                                               const json& body, std::int64_t read_ms) {
  if (!body.is_object()) return std::nullopt;
  std::string family = "ai_stream_events";
  json event;
  const auto wrapped = body.find("event");
  if (wrapped != body.end()) {
    if (!wrapped->is_object()) return std::nullopt;
    event = *wrapped;
    const auto q = body.find("queue_event_type");
    if (q != body.end() && q->is_string() && !q->get<std::string>().empty()) family = *q;
  } else {
    event = body;
  }
  if (event.value("type", json()).is_string() && event["type"] == "status")
    family = "ai_stream_status";
  add_context(event, keys);
  event["orchestrator_info"] = orchestrator.to_json();
  const json tag_values = tags.to_json(false);
  for (const auto& [k, v] : tag_values.items())
    if (!event.contains(k)) event[k] = v;
  return envelope(tags, std::move(family), std::move(event), keys.request_id, read_ms);
}

Envelope gateway_error(const EventTags& tags, const SessionKeys& keys,
                       const std::optional<OrchestratorRef>& charged, std::string_view message,
                       std::int64_t observed_ms) {
  json data = {{"type", "error"}};
  add_context(data, keys);
  data["pipeline"] = tags.pipeline;
  data["capability"] = k_workflow;
  data["message"] = message;
  if (charged) data["orchestrator_info"] = charged->to_json();
  tags.apply(data);
  return envelope(tags, "ai_stream_events", std::move(data), keys.request_id, observed_ms);
}

Envelope params_update(const EventTags& tags, const SessionKeys& keys,
                       const OrchestratorRef& orchestrator, const json& params,
                       std::int64_t observed_ms) {
  json data = {{"type", "params_update"}};
  add_context(data, keys);
  data["pipeline"] = tags.pipeline;
  data["params"] = params;
  data["orchestrator_info"] = orchestrator.to_json();
  tags.apply(data);
  return envelope(tags, "ai_stream_events", std::move(data), keys.request_id, observed_ms);
}

std::optional<Envelope> discovery_results(const EventTags& tags,
                                          const std::vector<DiscoveredEntry>& found,
                                          std::int64_t observed_ms) {
  if (found.empty()) return std::nullopt;
  json list = json::array();
  for (const auto& f : found) {
    json item = {
        {"address", f.address}, {"url", f.url}, {"latency_ms", std::to_string(f.latency_ms)}};
    tags.apply(item);
    list.push_back(std::move(item));
  }
  return envelope(tags, "discovery_results", std::move(list), tags.test_run_id, observed_ms);
}

Envelope network_capabilities(const EventTags& tags, json entry, std::int64_t observed_ms) {
  const std::string key = entry.value("orch_uri", std::string());
  tags.apply(entry);
  return envelope(tags, "network_capabilities", json::array({std::move(entry)}), key, observed_ms);
}

Envelope session_result(const EventTags& tags, const json& record, std::int64_t observed_ms) {
  const json metrics = at(record, "metrics");
  const std::string outcome = at(record, "outcome").is_string() ? record["outcome"] : "";
  const bool excused_capacity = outcome == "excused_no_capacity";
  OrchestratorRef orchestrator;
  if (const json o = at(record, "orchestrator"); o.is_object() && !excused_capacity) {
    orchestrator.address = at(o, "eth_address").is_string() ? o["eth_address"] : o["address"];
    orchestrator.url = at(o, "url").is_string() ? o["url"].get<std::string>() : "";
  }
  json swap_triggers = json::array();
  if (at(record, "swaps").is_array())
    for (const auto& s : record["swaps"]) swap_triggers.push_back(at(s, "trigger"));
  json states = at(metrics, "runner_states");
  if (!states.is_array()) states = json::array();
  const std::string message = at(record, "message").is_string() ? record["message"] : "";
  const json send_lag = at(metrics, "send_lag_ms");

  json data = {{"type", "session_result"}};
  data["stream_id"] = at(record, "stream_id");
  data["request_id"] = at(record, "request_id");
  data["pipeline_id"] = tags.pipeline_id;
  data["orchestrator_info"] = orchestrator.to_json();
  data["outcome"] = outcome;
  data["failure_category"] = outcome == "ok" ? json() : json(outcome);
  data["failure_reason"] = outcome == "ok" || message.empty() ? json() : json(message);
  data["excused"] = outcome_is_excused(outcome);
  data["started_at"] = at(record, "started_at");
  data["ended_at"] = at(record, "ended_at");
  data["measure_window_ms"] = at(metrics, "measurement_window_ms");
  data["job_accept_ms"] = at(metrics, "job_accept_ms");
  data["first_output_byte_ms"] = at(metrics, "first_output_byte_ms");
  data["startup_ms"] = at(metrics, "startup_ms");
  data["prompt_to_first_frame_ms"] = histogram_subset(at(metrics, "prompt_to_first_frame_ms"),
                                                      {"p50", "p95", "max", "buckets_us"});
  data["e2e_latency_ms"] = histogram_subset(at(metrics, "e2e_latency_ms"),
                                            {"p50", "p90", "p95", "p99", "max", "buckets_us"});
  data["pts_offset_ms"] = at(metrics, "pts_offset_ms");
  data["output_fps"] = at(metrics, "output_fps");
  data["runner_output_fps"] = at(metrics, "runner_output_fps_mean");
  data["jitter_fps_cv"] = at(metrics, "jitter_fps_cv");
  data["frame_interval_cv"] = at(metrics, "frame_interval_cv");
  data["freeze_count"] = at(metrics, "freeze_count");
  data["freeze_ms"] = at(metrics, "freeze_ms");
  data["frames_sent"] = at(metrics, "frames_sent");
  data["frames_expected"] = at(metrics, "frames_expected");
  data["frames_returned"] = at(metrics, "frames_returned");
  data["frames_dropped"] = at(metrics, "frames_dropped");
  data["loading_frames"] = at(metrics, "frames_loading");
  data["send_lag_p95_ms"] = at(send_lag, "p95");
  data["up_mbps"] = at(metrics, "up_mbps");
  data["down_mbps"] = at(metrics, "down_mbps");
  data["swap_count"] = swap_triggers.size();
  data["swap_triggers"] = std::move(swap_triggers);
  data["runner_states_seen"] = std::move(states);
  data["sla_pass"] = at(at(record, "sla"), "pass").is_boolean() ? record["sla"]["pass"] : json();
  data["decode_backend"] = at(record, "decode_backend");
  data["software_version"] = at(record, "software_version");
  data["record"] = record;
  tags.apply(data);
  const std::string key = data["request_id"].is_string() ? data["request_id"] : "";
  return envelope(tags, "synthetic_test_result", std::move(data), key, observed_ms);
}

Envelope run_summary(const EventTags& tags, json summary, std::int64_t observed_ms) {
  summary["type"] = "run_summary";
  tags.apply(summary);
  return envelope(tags, "synthetic_test_result", std::move(summary), tags.test_run_id, observed_ms);
}

}  // namespace naap::reports
