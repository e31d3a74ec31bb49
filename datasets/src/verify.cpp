// Dataset verification: clip hashes, prompt sets, full parameter sets, scenario references.
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <span>

#include "naap/core/sha256.hpp"
#include "naap/datasets/dataset.hpp"

namespace naap::datasets {
namespace {

// Keys a StreamDiffusion run always sends: the pipeline re-validates the whole object on every
// update and falls back to defaults for missing keys (PROTOCOL.md §4.2), so a preset without
// them would measure the runner's defaults, not the preset.
constexpr std::array<const char*, 19> k_streamdiffusion_keys = {
    "model_id",
    "prompt",
    "negative_prompt",
    "num_inference_steps",
    "seed",
    "t_index_list",
    "guidance_scale",
    "delta",
    "width",
    "height",
    "acceleration",
    "use_lcm_lora",
    "lcm_lora_id",
    "use_denoising_batch",
    "do_add_noise",
    "enable_similar_image_filter",
    "similar_image_filter_threshold",
    "similar_image_filter_max_skip_frame",
    "controlnets"};

CheckResult check_clip(const Clip& clip) {
  CheckResult check{.name = "clip " + clip.id};
  if (clip.synthetic()) {
    check.ok = true;
    check.detail =
        "synthetic (videotestsrc pattern " + clip.synthetic_pattern + "), generated at run time";
    return check;
  }
  check.name += " sha256";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(clip.path, ec)) {
    check.detail = "missing file " + clip.path.string();
    return check;
  }
  auto actual = sha256_file(clip.path);
  if (!actual) {
    check.detail = actual.error().describe();
    return check;
  }
  if (*actual != clip.sha256) {
    check.detail = "sha256 mismatch for " + clip.path.string() + ": manifest " + clip.sha256 +
                   ", file " + *actual;
    return check;
  }
  check.ok = true;
  check.detail = clip.file + ", " + std::to_string(std::filesystem::file_size(clip.path, ec)) +
                 " bytes, " + clip.licence;
  return check;
}

CheckResult check_prompts(const Dataset& d, const std::string& pipeline) {
  CheckResult check{.name = "prompts " + pipeline};
  auto set = d.prompts(pipeline);
  if (!set) {
    check.detail = "no prompt set for this preset";
    return check;
  }
  const auto& s = **set;
  check.detail = "good " + std::to_string(s.good.size()) + ", random " +
                 std::to_string(s.random.size()) + ", bad " + std::to_string(s.bad.size());
  check.ok = !s.good.empty() && !s.bad.empty();
  if (!check.ok) check.detail += " (good and bad must not be empty)";
  return check;
}

CheckResult check_params(const Preset& preset) {
  CheckResult check{.name = "preset " + preset.pipeline + " params"};
  const auto& params = preset.params;
  std::vector<std::string> missing;
  if (preset.pipeline.starts_with("streamdiffusion")) {
    for (const char* key : k_streamdiffusion_keys) {
      if (!params.contains(key)) missing.emplace_back(key);
    }
  } else if (preset.pipeline.starts_with("comfyui")) {
    // The prompt is a whole ComfyUI API workflow: node id → {class_type, inputs}.
    const auto it = params.find("prompt");
    if (it == params.end() || !it->is_object() || it->empty()) {
      check.detail = "params.prompt must be a non-empty ComfyUI API workflow object";
      return check;
    }
    for (const auto& [node_id, node] : it->items()) {
      if (!node.is_object() || !node.contains("class_type") || !node["class_type"].is_string() ||
          !node.contains("inputs") || !node["inputs"].is_object()) {
        check.detail = "workflow node '" + node_id + "' needs class_type (string) and inputs";
        return check;
      }
    }
  } else {
    for (const char* key : {"width", "height"}) {
      if (!params.contains(key)) missing.emplace_back(key);
    }
  }
  if (!missing.empty()) {
    check.detail = "missing params:";
    for (const auto& key : missing) check.detail += " " + key;
    return check;
  }
  check.ok = true;
  check.detail = std::to_string(params.size()) + " keys, model_id " + preset.model_id;
  return check;
}

CheckResult check_scenario(const Dataset& d, const Scenario& s) {
  CheckResult check{.name = "scenario " + s.id};
  if (auto preset = d.preset(s.pipeline); !preset) {
    check.detail = preset.error().message;
    return check;
  }
  if (auto clip = d.clip(s.clip); !clip) {
    check.detail = clip.error().message;
    return check;
  }
  auto set = d.prompts(s.pipeline);
  if (!set) {
    check.detail = set.error().message;
    return check;
  }
  const auto count = (*set)->of(s.prompt_type).size();
  if (count == 0) {
    check.detail = "the " + std::string(to_string(s.prompt_type)) + " prompt set of " + s.pipeline +
                   " is empty";
    return check;
  }
  check.ok = true;
  check.detail = s.pipeline + ", clip " + s.clip + ", " + std::to_string(count) + " " +
                 std::string(to_string(s.prompt_type)) + " prompts";
  return check;
}

}  // namespace

bool VerifyReport::ok() const {
  return failures() == 0;
}

std::size_t VerifyReport::failures() const {
  std::size_t n = 0;
  for (const auto& check : checks) n += check.ok ? 0 : 1;
  return n;
}

Result<std::string> sha256_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fail(Error(ErrorCategory::media, std::string("cannot open: ") + std::strerror(errno))
                    .with("file", path.string()));
  }
  Sha256 hash;
  std::array<char, 64 * 1024> buffer;
  while (in) {
    in.read(buffer.data(), buffer.size());
    const auto n = in.gcount();
    if (n > 0) hash.update(std::string_view(buffer.data(), static_cast<std::size_t>(n)));
  }
  if (in.bad()) {
    return fail(Error(ErrorCategory::media, "read failed").with("file", path.string()));
  }
  return hash.hex_digest();
}

VerifyReport verify(const Dataset& dataset) {
  VerifyReport report;
  for (const auto& clip : dataset.clips) report.checks.push_back(check_clip(clip));
  for (const auto& [pipeline, preset] : dataset.presets) {
    report.checks.push_back(check_prompts(dataset, pipeline));
    report.checks.push_back(check_params(preset));
  }
  for (const auto& scenario : dataset.scenarios) {
    report.checks.push_back(check_scenario(dataset, scenario));
  }
  return report;
}

}  // namespace naap::datasets
