// plan_session (see session_plan.hpp).
#include "naap/workloads/session_plan.hpp"

#include <cmath>

#include "naap/datasets/dataset.hpp"

namespace naap::workloads {

namespace {

double preset_dimension(const datasets::Preset& preset, const char* key) {
  const auto it = preset.params.find(key);
  return it != preset.params.end() && it->is_number() ? it->get<double>() : 512.0;
}

Error config_error(const Error& e) {
  Error out = e;
  out.category = ErrorCategory::config;
  return out;
}

}  // namespace

Result<SessionPlan> plan_session(const PlanRequest& request, media::ClipCache& cache) {
  auto manifest = datasets::find_dataset(request.dataset);
  if (!manifest) return fail(config_error(manifest.error()));
  auto dataset = datasets::load_dataset(*manifest);
  if (!dataset) return fail(config_error(dataset.error()));
  auto preset = dataset->preset(request.pipeline);
  if (!preset) return fail(config_error(preset.error()));
  const datasets::Scenario* scenario = nullptr;
  if (!request.scenario.empty()) {
    auto s = dataset->scenario(request.scenario);
    if (!s) return fail(config_error(s.error()));
    scenario = *s;
    if (scenario->pipeline != request.pipeline)
      return fail(Error(ErrorCategory::config, "scenario '" + request.scenario +
                                                   "' is for pipeline '" + scenario->pipeline +
                                                   "', not '" + request.pipeline + "'"));
  } else {
    for (const auto& s : dataset->scenarios)
      if (s.pipeline == request.pipeline) {
        scenario = &s;
        break;
      }
    if (!scenario)
      return fail(Error(ErrorCategory::config, "dataset '" + dataset->id +
                                                   "' has no scenario for pipeline '" +
                                                   request.pipeline + "'; name a scenario"));
  }
  auto clip = dataset->clip(scenario->clip);
  if (!clip) return fail(config_error(clip.error()));
  const double duration_s = request.duration_s.value_or(scenario->duration_s);
  const double interval_s = request.prompt_interval_s.value_or(scenario->prompt_interval_s);
  if (!(duration_s > 0) || duration_s > 24 * 3600)
    return fail(Error(ErrorCategory::config, "--duration must be in (0, 86400] seconds"));
  if (interval_s < 0) return fail(Error(ErrorCategory::config, "--prompt-interval must be >= 0"));
  const std::string& decoder = request.decoder;
  if (decoder != "auto" && decoder != "software" && decoder != "nvdec" && decoder != "none")
    return fail(Error(ErrorCategory::config, "--decoder must be auto, software, nvdec or none"));

  SessionPlan plan;
  SessionConfig& config = plan.config;
  config.model_id = (*preset)->model_id;
  config.params = (*preset)->params;
  config.duration = std::chrono::milliseconds(static_cast<std::int64_t>(duration_s * 1000));
  config.prompt_interval = std::chrono::milliseconds(static_cast<std::int64_t>(interval_s * 1000));
  auto picker = datasets::PromptPicker::for_scenario(*dataset, *scenario, request.seed);
  if (!picker) return fail(config_error(picker.error()));
  const std::size_t steps =
      1 + (interval_s > 0 ? static_cast<std::size_t>(duration_s / interval_s) : 0);
  for (std::size_t i = 0; i < steps; ++i) {
    const std::string prompt = picker->next();
    auto params = (*preset)->params_with_prompt(prompt);
    if (!params) return fail(config_error(params.error()));
    config.prompts.push_back({prompt, std::move(*params)});
  }
  config.decode = decoder != "none";
  config.decoder.backend = decoder == "software" ? media::DecoderOptions::Backend::software
                           : decoder == "nvdec"  ? media::DecoderOptions::Backend::nvdec
                                                 : media::DecoderOptions::Backend::automatic;
  const auto& th = (*preset)->thresholds;
  if (th.max_jitter_fps_cv > 0) config.sla.max_jitter_fps_cv = th.max_jitter_fps_cv;
  if (th.max_e2e_p95_ms > 0) config.sla.max_e2e_p95_ms = th.max_e2e_p95_ms;
  if (th.min_output_fps > 0) config.sla.min_output_fps = th.min_output_fps;
  if (th.max_startup_ms > 0) config.sla.max_startup_ms = th.max_startup_ms;

  RunContext& context = plan.context;
  context.scenario = scenario->id;
  context.dataset_id = dataset->id;
  context.dataset_version = dataset->version;
  if (auto hash = datasets::sha256_file(dataset->manifest_path)) context.dataset_sha256 = *hash;
  context.pipeline = request.pipeline;
  context.clip_id = (*clip)->id;
  context.clip_sha256 = (*clip)->sha256;

  // Input: the clip encoded once (scaled to the preset's size), replayed for the whole run.
  media::IngestSource source;
  if ((*clip)->synthetic()) {
    source.pattern = (*clip)->synthetic_pattern;
    source.duration_s = (*clip)->duration_s;
  } else {
    source.path = (*clip)->path.string();
  }
  media::IngestOptions ingest;
  ingest.width = static_cast<int>(preset_dimension(**preset, "width"));
  ingest.height = static_cast<int>(preset_dimension(**preset, "height"));
  ingest.fps = static_cast<int>(std::lround((*clip)->fps > 0 ? (*clip)->fps : 24));
  ingest.gop_seconds = 1.0;
  auto encoded = cache.get(source, ingest);
  if (!encoded) {
    Error e = encoded.error();
    e.message = "input clip " + (*clip)->id + ": " + e.message;
    if (e.category == ErrorCategory::config) e.category = ErrorCategory::internal;
    return fail(e);
  }
  plan.input = *encoded;
  return plan;
}

}  // namespace naap::workloads
