// Datasets: versioned manifests of prompt sets, full parameter presets, clips (identified by
// SHA-256) and scenarios that a load test draws its inputs from (datasets/data/*/manifest.json).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "naap/core/error.hpp"

namespace naap::datasets {

// The manifest format this library reads (`schema_version`).
inline constexpr int k_schema_version = 1;

// The prompt sets of a pipeline, as the RFC's `/datasets` API names them.
enum class PromptType {
  good,    // ordinary prompts that should work and visibly change the output
  random,  // a pool drawn from with a seeded RNG (PromptPicker)
  bad,     // stress prompts: empty, very long, unicode, special characters
};

std::string_view to_string(PromptType type);
// "good" | "random" | "bad"; a config error otherwise.
Result<PromptType> parse_prompt_type(std::string_view text);

// A pipeline's prompts, one list per type.
struct PromptSet {
  std::vector<std::string> good;    // used in order, cycling
  std::vector<std::string> random;  // drawn from with a seeded RNG
  std::vector<std::string> bad;     // used in order, cycling

  const std::vector<std::string>& of(PromptType type) const;
};

// Per-pipeline SLA thresholds a session is judged against (METRICS.md).
struct Thresholds {
  double max_startup_ms = 0;                // start request → first real output frame, ms
  double max_e2e_p95_ms = 0;                // p95 of input due → output receipt, ms
  double max_jitter_fps_cv = 0;             // σ/μ of 1-second output fps, ratio
  double min_output_fps = 0;                // real output frames per second
  double max_prompt_to_first_frame_ms = 0;  // control write → first frame showing it, ms
};

// Everything needed to start and drive a job on one pipeline.
struct Preset {
  std::string pipeline;   // preset name = pipeline, e.g. "streamdiffusion"
  std::string model_id;   // `model_id` of the start request (the pipeline's capability name)
  nlohmann::json params;  // the full parameter set: sent whole at start and with every update
  std::string prompt_pointer = "/prompt";  // JSON pointer into params where a prompt text goes
  double target_fps = 0;                   // output frames per second the pipeline should reach
  Thresholds thresholds;                   // SLA thresholds for this pipeline
  std::vector<std::string> reload_keys;    // params keys whose change reloads the pipeline

  // `params` with `prompt` written at prompt_pointer: the object to send for that prompt.
  Result<nlohmann::json> params_with_prompt(std::string_view prompt) const;
};

// One input clip: a file identified by its SHA-256, or a pattern generated at run time.
struct Clip {
  std::string id;                 // unique within the dataset
  std::string file;               // path relative to the manifest, as written; empty = synthetic
  std::filesystem::path path;     // `file` resolved against the manifest's folder
  std::string sha256;             // lowercase hex of the file's bytes; empty for synthetic
  std::string synthetic_pattern;  // GStreamer videotestsrc pattern nick; empty for files
  int width = 0;                  // pixels
  int height = 0;                 // pixels
  double fps = 0;                 // frames per second
  double duration_s = 0;          // seconds
  std::string source;             // where the clip comes from (tool and command, or URL)
  std::string licence;            // SPDX licence identifier, e.g. "CC0-1.0"

  bool synthetic() const { return file.empty(); }
};

// A named load pattern: which pipeline, which clip, how long, how often the prompt changes.
struct Scenario {
  std::string id;                             // unique within the dataset
  std::string pipeline;                       // a key of Dataset::presets
  std::string clip;                           // a Clip::id
  double duration_s = 0;                      // session length, seconds
  double prompt_interval_s = 0;               // seconds between prompt changes; 0 = never change
  PromptType prompt_type = PromptType::good;  // which prompt set the changes draw from
  std::string description;                    // one line for people
};

// A loaded and validated manifest.
struct Dataset {
  std::filesystem::path manifest_path;  // absolute path of manifest.json
  int schema_version = k_schema_version;
  std::string id;                                // e.g. "naap-default"
  std::string version;                           // semantic version of the data, e.g. "1.0.0"
  std::string description;                       // one paragraph for people
  std::map<std::string, PromptSet> prompt_sets;  // by pipeline
  std::map<std::string, Preset> presets;         // by pipeline
  std::vector<Clip> clips;                       // in manifest order
  std::vector<Scenario> scenarios;               // in manifest order

  // Lookups; a config error naming the dataset and the ids it does have when missing.
  Result<const Preset*> preset(std::string_view pipeline) const;
  Result<const PromptSet*> prompts(std::string_view pipeline) const;
  Result<const Clip*> clip(std::string_view id) const;
  Result<const Scenario*> scenario(std::string_view id) const;
  std::vector<std::string> pipelines() const;  // preset names, sorted
};

// Reads and validates a manifest. Strict: unknown keys, wrong types, missing fields, duplicate
// keys or ids, a bad schema_version and dangling references all fail with a config error whose
// message names the file and the JSON path (e.g. `presets.streamdiffusion.target_fps`).
// Does not read clip files: verify() does.
Result<Dataset> load_dataset(const std::filesystem::path& manifest);

// Where datasets are looked up by id, in order: $NAAP_DATASETS_DIR; the installed
// `<exe dir>/../share/naap-loadtest/datasets`; the source tree's `datasets/data`. Only folders
// that exist are returned.
std::vector<std::filesystem::path> dataset_dirs();

// The manifest for an id or a path. A path (an existing file or folder, or anything containing
// '/' or ending in ".json") is used as is, a folder meaning its manifest.json; an id is looked
// up as `<dir>/<id>/manifest.json` in dataset_dirs() order. Config error listing where it
// looked when not found.
Result<std::filesystem::path> find_dataset(std::string_view id_or_path);

// One line of `datasets list`.
struct DatasetSummary {
  std::string id;                       // manifest id (the folder name when it did not load)
  std::string version;                  // semantic version
  std::string description;              // manifest description
  std::vector<std::string> pipelines;   // preset names, sorted
  std::size_t clips = 0;                // number of clips
  std::size_t scenarios = 0;            // number of scenarios
  std::filesystem::path manifest_path;  // where it was found
  std::string error;                    // load error; empty when the manifest is valid
};

// Every dataset in dataset_dirs(), sorted by id; an id found in an earlier folder hides the
// same id in later ones. Manifests that fail to load are listed with their error.
std::vector<DatasetSummary> list_datasets();

// One verification check and its outcome.
struct CheckResult {
  std::string name;    // what was checked, e.g. "clip testsrc2-512 sha256"
  bool ok = false;     // passed
  std::string detail;  // why it failed, or a short note when it passed
};

// The outcome of verify(): one entry per check, in a stable order.
struct VerifyReport {
  std::vector<CheckResult> checks;  // every check run

  bool ok() const;
  std::size_t failures() const;
};

// Checks what loading does not: each clip file exists and its SHA-256 matches (a mismatch shows
// both hashes); every preset pipeline has non-empty good and bad prompt sets; StreamDiffusion
// and ComfyUI presets carry a full parameter set; every scenario resolves to a preset, a clip
// and a non-empty prompt set.
VerifyReport verify(const Dataset& dataset);

// SHA-256 of a file, streamed; lowercase hex. Media error when it cannot be read.
Result<std::string> sha256_file(const std::filesystem::path& path);

// Deterministic prompt selection for a scenario. good and bad: in manifest order, cycling.
// random: a splitmix64 sequence from `seed`, each value x mapped to index (x * n) >> 64 (the
// same on every platform), skipping a draw equal to the previous prompt when n > 1 so every
// change is a visible change. The same (prompts, type, seed) always gives the same sequence.
class PromptPicker {
 public:
  // An empty list picks the empty prompt every time.
  PromptPicker(std::vector<std::string> prompts, PromptType type, std::uint64_t seed);

  // A picker for the scenario's pipeline and prompt type; config error when that set is empty.
  static Result<PromptPicker> for_scenario(const Dataset& dataset, const Scenario& scenario,
                                           std::uint64_t seed);

  // The next prompt: the first call gives the prompt for the start request.
  const std::string& next();
  std::size_t size() const { return prompts_.size(); }
  PromptType type() const { return type_; }

 private:
  std::uint64_t draw();

  std::vector<std::string> prompts_;  // the set drawn from, never empty
  PromptType type_;                   // selection rule
  std::uint64_t state_;               // splitmix64 state (random only)
  std::size_t index_ = 0;             // next index (good, bad)
  std::size_t last_ = SIZE_MAX;       // index returned last; SIZE_MAX before the first call
};

}  // namespace naap::datasets
