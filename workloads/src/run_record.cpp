// make_run_record (see run_record.hpp).
#include "naap/workloads/run_record.hpp"

#include <ctime>

namespace naap::workloads {

using json = nlohmann::json;

std::string iso8601(std::chrono::system_clock::time_point t) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

namespace {

json orchestrator_json(const OrchestratorSeen& o) {
  return {{"address", o.address},
          {"url", o.url},
          {"eth_address", o.eth_address.empty() ? json() : json(o.eth_address)},
          {"certificate_pin", o.pin},
          {"get_orchestrator_ms", o.latency_ms},
          {"model", o.model.is_null() ? json() : o.model},
          {"price_per_unit", o.price_per_unit},
          {"pixels_per_unit", o.pixels_per_unit}};
}

json optional_number(double v, bool present) {
  return present ? json(v) : json();
}

}  // namespace

json make_run_record(const RunContext& context, const SessionConfig& config,
                     const SessionResult& result) {
  json swaps = json::array();
  for (const auto& s : result.timeline.swaps)
    swaps.push_back(
        {{"at_ms", static_cast<double>(s.at) / 1000.0},
         {"trigger", s.trigger},
         {"cause", s.cause},
         {"from_orchestrator", s.from_orchestrator},
         {"to_orchestrator", s.to_orchestrator.empty() ? json() : json(s.to_orchestrator)},
         {"epoch", s.epoch}});
  json prompts = json::array();
  for (const auto& p : result.timeline.prompts) {
    const bool effect = p.effect_received != reports::k_never;
    const bool written = p.written != reports::k_never;
    prompts.push_back(
        {{"index", p.index},
         {"prompt", p.prompt},
         {"written_ms", optional_number(static_cast<double>(p.written) / 1000.0, written)},
         {"effect_ms", optional_number(static_cast<double>(p.effect_received) / 1000.0, effect)},
         {"effect_pts", effect ? json(p.effect_pts) : json()},
         {"prompt_to_first_frame_ms",
          optional_number(static_cast<double>(p.effect_received - p.written) / 1000.0,
                          effect && written)},
         {"detection", p.detection.empty() ? json("none") : json(p.detection)},
         {"epoch", p.epoch}});
  }
  json breaches = json::array();
  for (const auto& b : result.breaches)
    breaches.push_back(
        {{"metric", b.metric}, {"value", b.value}, {"target", b.target}, {"message", b.message}});
  json orchestrators = json::array();
  for (const auto& o : result.orchestrators) orchestrators.push_back(orchestrator_json(o));
  const json serving =
      result.orchestrators.empty() ? json() : orchestrator_json(result.orchestrators.back());
  json sla = {
      {"max_jitter_fps_cv", config.sla.max_jitter_fps_cv},
      {"max_e2e_p95_ms", config.sla.max_e2e_p95_ms},
      {"min_output_fps", config.sla.min_output_fps ? json(*config.sla.min_output_fps) : json()},
      {"max_startup_ms", config.sla.max_startup_ms ? json(*config.sla.max_startup_ms) : json()}};
  return {
      {"schema_version", k_run_record_schema_version},
      {"synthetic", true},
      {"client_source", context.client_source},
      {"test_run_id", context.test_run_id},
      {"gateway_id", context.gateway_id},
      {"region", context.region},
      {"scenario", context.scenario},
      {"dataset",
       {{"id", context.dataset_id},
        {"version", context.dataset_version},
        {"sha256", context.dataset_sha256.empty() ? json() : json(context.dataset_sha256)}}},
      {"workflow", "live-video-to-video"},
      {"pipeline_id", "syn-" + context.scenario},
      {"target_orchestrator",
       config.orchestrators.empty() ? json() : json(config.orchestrators.front())},
      {"clip",
       {{"id", context.clip_id},
        {"sha256", context.clip_sha256.empty() ? json() : json(context.clip_sha256)}}},
      {"pipeline", context.pipeline},
      {"model_id", config.model_id},
      {"stream_id", config.stream_id},
      {"request_id", config.request_id},
      {"manifest_id", result.manifest_id},
      {"software_version", context.software_version},
      {"decode_backend", result.decode_backend},
      {"started_at", iso8601(result.started_at)},
      {"ended_at", iso8601(result.ended_at)},
      {"duration_planned_ms", config.duration.count()},
      {"orchestrator", serving},
      {"orchestrators", orchestrators},
      {"pool_mode", config.orchestrators.size() > 1},
      {"outcome", result.outcome},
      {"message", result.message},
      {"trigger", result.trigger.empty() ? json() : json(result.trigger)},
      {"output_segments_corrupt", result.output_segments_corrupt},
      {"output_pts_regressions", result.output_pts_regressions},
      {"swaps", swaps},
      {"prompts", prompts},
      {"metrics", reports::to_json(result.metrics)},
      {"sla", {{"targets", sla}, {"breaches", breaches}, {"pass", result.outcome == "ok"}}},
  };
}

}  // namespace naap::workloads
