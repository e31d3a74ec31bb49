// Manifest loading and strict validation: every error names the file (context) and the JSON
// path (message prefix) of what is wrong.
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <set>
#include <sstream>

#include "naap/core/key_path.hpp"
#include "naap/datasets/dataset.hpp"

namespace naap::datasets {
namespace {

using json = nlohmann::json;

// What a field must be.
enum class Kind { object, array, string, number, integer, boolean };

std::string_view kind_name(Kind kind) {
  switch (kind) {
    case Kind::object:
      return "an object";
    case Kind::array:
      return "an array";
    case Kind::string:
      return "a string";
    case Kind::number:
      return "a number";
    case Kind::integer:
      return "an integer";
    case Kind::boolean:
      return "a boolean";
  }
  return "a value";
}

std::string_view type_name(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    case json::value_t::string:
      return "a string";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a fractional number";
    default:
      return "an unsupported value";
  }
}

bool is_kind(const json& value, Kind kind) {
  switch (kind) {
    case Kind::object:
      return value.is_object();
    case Kind::array:
      return value.is_array();
    case Kind::string:
      return value.is_string();
    case Kind::number:
      return value.is_number();
    case Kind::integer:
      return value.is_number_integer();
    case Kind::boolean:
      return value.is_boolean();
  }
  return false;
}

std::string list_names(const std::vector<std::string>& names) {
  if (names.empty()) return "none";
  std::string out;
  for (const auto& name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

template <typename Map>
std::vector<std::string> keys_of(const Map& map) {
  std::vector<std::string> out;
  for (const auto& [key, value] : map) out.push_back(key);
  return out;
}

// Ids, pipeline names: lowercase letters, digits, '.', '_', '-'; starting with a letter or digit.
bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front())) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return alnum(c) || c == '.' || c == '_' || c == '-'; });
}

// MAJOR.MINOR.PATCH without leading zeros, then optional -prerelease and +build (semver.org).
bool valid_semver(std::string_view version) {
  const auto plus = version.find('+');
  const std::string_view build = plus == std::string_view::npos ? "" : version.substr(plus + 1);
  version = version.substr(0, plus);
  const auto dash = version.find('-');
  const std::string_view pre = dash == std::string_view::npos ? "" : version.substr(dash + 1);
  const std::string_view core = version.substr(0, dash);
  auto identifiers_ok = [](std::string_view s) {
    if (s.empty()) return false;
    std::size_t start = 0;
    while (start <= s.size()) {
      const auto dot = s.find('.', start);
      const auto part = s.substr(start, dot == std::string_view::npos ? s.npos : dot - start);
      if (part.empty()) return false;
      for (char c : part) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '-')) {
          return false;
        }
      }
      if (dot == std::string_view::npos) break;
      start = dot + 1;
    }
    return true;
  };
  if ((plus != std::string_view::npos && !identifiers_ok(build)) ||
      (dash != std::string_view::npos && !identifiers_ok(pre))) {
    return false;
  }
  int parts = 0;
  std::size_t start = 0;
  while (true) {
    const auto dot = core.find('.', start);
    const auto part = core.substr(start, dot == std::string_view::npos ? core.npos : dot - start);
    if (part.empty() || (part.size() > 1 && part.front() == '0')) return false;
    if (!std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return false;
    }
    ++parts;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return parts == 3;
}

bool valid_sha256(std::string_view hex) {
  return hex.size() == 64 && std::all_of(hex.begin(), hex.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// GStreamer videotestsrc pattern nicks (what media::IngestSource::pattern accepts).
constexpr std::array<std::string_view, 25> k_patterns = {"smpte",
                                                         "snow",
                                                         "black",
                                                         "white",
                                                         "red",
                                                         "green",
                                                         "blue",
                                                         "checkers-1",
                                                         "checkers-2",
                                                         "checkers-4",
                                                         "checkers-8",
                                                         "circular",
                                                         "blink",
                                                         "smpte75",
                                                         "zone-plate",
                                                         "gamut",
                                                         "chroma-zone-plate",
                                                         "solid-color",
                                                         "ball",
                                                         "smpte100",
                                                         "bar",
                                                         "pinwheel",
                                                         "spokes",
                                                         "gradient",
                                                         "colors"};

// Reads typed fields out of the parsed manifest; every failure names the JSON path.
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  std::unexpected<Error> error(const std::string& path, const std::string& what) const {
    return fail(Error(ErrorCategory::config, (path.empty() ? "(root)" : path) + ": " + what)
                    .with("file", file_));
  }

  Result<void> expect(const json& value, const std::string& path, Kind kind) const {
    if (is_kind(value, kind)) return {};
    return error(path, "expected " + std::string(kind_name(kind)) + ", found " +
                           std::string(type_name(value)));
  }

  // `object` must be an object holding every required key and nothing outside required+optional.
  Result<void> keys(const json& object, const std::string& path,
                    std::initializer_list<std::string_view> required,
                    std::initializer_list<std::string_view> optional = {}) const {
    if (auto ok = expect(object, path, Kind::object); !ok) return ok;
    for (auto it = object.begin(); it != object.end(); ++it) {
      const bool known = std::find(required.begin(), required.end(), it.key()) != required.end() ||
                         std::find(optional.begin(), optional.end(), it.key()) != optional.end();
      if (!known) {
        std::vector<std::string> allowed(required.begin(), required.end());
        allowed.insert(allowed.end(), optional.begin(), optional.end());
        return error(join_key(path, it.key()),
                     "unknown key (allowed here: " + list_names(allowed) + ")");
      }
    }
    for (auto key : required) {
      if (!object.contains(std::string(key)))
        return error(join_key(path, key), "missing required field");
    }
    return {};
  }

  Result<std::string> text(const json& object, const std::string& path, std::string_view key,
                           bool allow_empty = false) const {
    const std::string where = join_key(path, key);
    const json& value = object.at(std::string(key));
    if (auto ok = expect(value, where, Kind::string); !ok) return fail(ok.error());
    std::string out = value.get<std::string>();
    if (!allow_empty && out.empty()) return error(where, "must not be empty");
    return out;
  }

  Result<std::string> name(const json& object, const std::string& path,
                           std::string_view key) const {
    auto out = text(object, path, key);
    if (out && !valid_name(*out)) return bad_name(join_key(path, key), *out);
    return out;
  }

  std::unexpected<Error> bad_name(const std::string& path, const std::string& value) const {
    return error(path, "'" + value +
                           "' is not a valid name (lowercase letters, digits, '.', '_', '-'; "
                           "starting with a letter or digit)");
  }

  // A number in [min, max].
  Result<double> number(const json& object, const std::string& path, std::string_view key,
                        double min, double max, bool min_exclusive = false) const {
    const std::string where = join_key(path, key);
    const json& value = object.at(std::string(key));
    if (auto ok = expect(value, where, Kind::number); !ok) return fail(ok.error());
    const double out = value.get<double>();
    if (out < min || out > max || (min_exclusive && out == min)) {
      std::ostringstream range;
      range << (min_exclusive ? "must be > " : "must be >= ") << min << " and <= " << max
            << ", found " << out;
      return error(where, range.str());
    }
    return out;
  }

  Result<int> integer(const json& object, const std::string& path, std::string_view key, int min,
                      int max) const {
    const std::string where = join_key(path, key);
    const json& value = object.at(std::string(key));
    if (auto ok = expect(value, where, Kind::integer); !ok) return fail(ok.error());
    const auto out = value.get<std::int64_t>();
    if (out < min || out > max) {
      return error(where, "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                              ", found " + std::to_string(out));
    }
    return static_cast<int>(out);
  }

  Result<std::vector<std::string>> strings(const json& object, const std::string& path,
                                           std::string_view key) const {
    const std::string where = join_key(path, key);
    const json& value = object.at(std::string(key));
    if (auto ok = expect(value, where, Kind::array); !ok) return fail(ok.error());
    std::vector<std::string> out;
    for (std::size_t i = 0; i < value.size(); ++i) {
      if (auto ok = expect(value[i], index_key(where, i), Kind::string); !ok) {
        return fail(ok.error());
      }
      out.push_back(value[i].get<std::string>());
    }
    return out;
  }

  const std::string& file() const { return file_; }

 private:
  std::string file_;  // the manifest's path, put in every error's context
};

// Parses JSON, failing on a key repeated within one object (nlohmann keeps the last silently).
Result<json> parse_strict(const std::string& text, const Reader& reader) {
  struct Frame {
    bool array = false;          // array or object
    std::string key;             // object: current key
    long index = -1;             // array: current element
    std::set<std::string> keys;  // object: keys seen
  };
  std::vector<Frame> stack;
  std::string duplicate;  // JSON path of the first repeated key
  auto path = [&] {
    std::string out;
    for (const auto& frame : stack) {
      if (frame.array) {
        out = index_key(out, static_cast<std::size_t>(frame.index));
      } else if (!frame.key.empty()) {
        out = join_key(out, frame.key);
      }
    }
    return out;
  };
  auto element = [&] {
    if (!stack.empty() && stack.back().array) ++stack.back().index;
  };
  json::parser_callback_t callback = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        element();
        stack.push_back(Frame{.array = false});
        break;
      case json::parse_event_t::array_start:
        element();
        stack.push_back(Frame{.array = true});
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!stack.empty()) stack.pop_back();
        break;
      case json::parse_event_t::key:
        if (!stack.empty()) {
          auto& frame = stack.back();
          frame.key = parsed.get<std::string>();
          if (!frame.keys.insert(frame.key).second && duplicate.empty()) duplicate = path();
        }
        break;
      case json::parse_event_t::value:
        element();
        break;
    }
    return true;
  };
  json doc;
  try {
    doc = json::parse(text, callback, /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const json::exception& e) {
    return reader.error("", std::string("not valid JSON: ") + e.what());
  }
  if (!duplicate.empty()) return reader.error(duplicate, "key appears more than once");
  return doc;
}

Result<std::string> read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fail(Error(ErrorCategory::config,
                      std::string("cannot read dataset manifest: ") + std::strerror(errno))
                    .with("file", path.string()));
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

Result<PromptSet> read_prompt_set(const Reader& r, const json& value, const std::string& path) {
  if (auto ok = r.keys(value, path, {"good", "random", "bad"}); !ok) return fail(ok.error());
  PromptSet set;
  auto good = r.strings(value, path, "good");
  if (!good) return fail(good.error());
  auto random = r.strings(value, path, "random");
  if (!random) return fail(random.error());
  auto bad = r.strings(value, path, "bad");
  if (!bad) return fail(bad.error());
  set.good = std::move(*good);
  set.random = std::move(*random);
  set.bad = std::move(*bad);
  return set;
}

Result<Thresholds> read_thresholds(const Reader& r, const json& value, const std::string& path) {
  if (auto ok = r.keys(value, path,
                       {"max_startup_ms", "max_e2e_p95_ms", "max_jitter_fps_cv", "min_output_fps",
                        "max_prompt_to_first_frame_ms"});
      !ok) {
    return fail(ok.error());
  }
  constexpr double k_hour_ms = 3600.0 * 1000.0;
  Thresholds t;
  auto startup = r.number(value, path, "max_startup_ms", 0, k_hour_ms, true);
  if (!startup) return fail(startup.error());
  auto e2e = r.number(value, path, "max_e2e_p95_ms", 0, k_hour_ms, true);
  if (!e2e) return fail(e2e.error());
  auto jitter = r.number(value, path, "max_jitter_fps_cv", 0, 10);
  if (!jitter) return fail(jitter.error());
  auto min_fps = r.number(value, path, "min_output_fps", 0, 240);
  if (!min_fps) return fail(min_fps.error());
  auto p2f = r.number(value, path, "max_prompt_to_first_frame_ms", 0, k_hour_ms, true);
  if (!p2f) return fail(p2f.error());
  t.max_startup_ms = *startup;
  t.max_e2e_p95_ms = *e2e;
  t.max_jitter_fps_cv = *jitter;
  t.min_output_fps = *min_fps;
  t.max_prompt_to_first_frame_ms = *p2f;
  return t;
}

// BaseParams (every pipeline): width and height 384..1024, multiples of 64.
Result<void> check_dimensions(const Reader& r, const json& params, const std::string& path) {
  for (const char* key : {"width", "height"}) {
    if (!params.contains(key)) continue;
    auto value = r.integer(params, path, key, 384, 1024);
    if (!value) return fail(value.error());
    if (*value % 64 != 0) {
      return r.error(join_key(path, key),
                     "must be a multiple of 64, found " + std::to_string(*value));
    }
  }
  return {};
}

Result<Preset> read_preset(const Reader& r, const json& value, const std::string& path,
                           const std::string& pipeline) {
  if (auto ok = r.keys(value, path, {"model_id", "params", "target_fps", "thresholds"},
                       {"reload_keys", "prompt_pointer"});
      !ok) {
    return fail(ok.error());
  }
  Preset preset;
  preset.pipeline = pipeline;
  auto model_id = r.text(value, path, "model_id");
  if (!model_id) return fail(model_id.error());
  preset.model_id = *model_id;
  const std::string params_path = join_key(path, "params");
  if (auto ok = r.expect(value.at("params"), params_path, Kind::object); !ok) {
    return fail(ok.error());
  }
  preset.params = value.at("params");
  if (auto ok = check_dimensions(r, preset.params, params_path); !ok) return fail(ok.error());
  auto fps = r.number(value, path, "target_fps", 0, 240, true);
  if (!fps) return fail(fps.error());
  preset.target_fps = *fps;
  const std::string thresholds_path = join_key(path, "thresholds");
  auto thresholds = read_thresholds(r, value.at("thresholds"), thresholds_path);
  if (!thresholds) return fail(thresholds.error());
  if (thresholds->min_output_fps > preset.target_fps) {
    return r.error(join_key(thresholds_path, "min_output_fps"),
                   "exceeds the preset's target_fps (" + std::to_string(preset.target_fps) + ")");
  }
  preset.thresholds = *thresholds;
  if (value.contains("reload_keys")) {
    auto keys = r.strings(value, path, "reload_keys");
    if (!keys) return fail(keys.error());
    preset.reload_keys = std::move(*keys);
  }
  const std::string pointer_path = join_key(path, "prompt_pointer");
  if (value.contains("prompt_pointer")) {
    auto pointer = r.text(value, path, "prompt_pointer");
    if (!pointer) return fail(pointer.error());
    preset.prompt_pointer = *pointer;
  }
  // The pointer must name a string inside params: that is where prompts are written.
  try {
    const json::json_pointer pointer(preset.prompt_pointer);
    if (!preset.params.contains(pointer) || !preset.params.at(pointer).is_string()) {
      return r.error(value.contains("prompt_pointer") ? pointer_path : params_path + ".prompt",
                     "'" + preset.prompt_pointer +
                         "' does not name a string in params (the prompt is written there)");
    }
  } catch (const json::exception& e) {
    return r.error(pointer_path, std::string("not a JSON pointer: ") + e.what());
  }
  return preset;
}

Result<Clip> read_clip(const Reader& r, const json& value, const std::string& path,
                       const std::filesystem::path& root) {
  if (auto ok =
          r.keys(value, path, {"id", "width", "height", "fps", "duration_s", "source", "licence"},
                 {"file", "sha256", "synthetic"});
      !ok) {
    return fail(ok.error());
  }
  Clip clip;
  auto id = r.name(value, path, "id");
  if (!id) return fail(id.error());
  clip.id = *id;
  const bool has_file = value.contains("file");
  const bool has_synthetic = value.contains("synthetic");
  if (has_file == has_synthetic) {
    return r.error(path, has_file ? "has both file and synthetic (a clip is one or the other)"
                                  : "needs either file (with sha256) or synthetic");
  }
  if (has_file) {
    auto file = r.text(value, path, "file");
    if (!file) return fail(file.error());
    const std::filesystem::path relative(*file);
    if (relative.is_absolute()) {
      return r.error(join_key(path, "file"), "must be relative to the manifest's folder");
    }
    clip.file = *file;
    clip.path = (root / relative).lexically_normal();
    if (!value.contains("sha256")) {
      return r.error(join_key(path, "sha256"),
                     "missing required field (a clip file needs its hash)");
    }
    auto sha = r.text(value, path, "sha256");
    if (!sha) return fail(sha.error());
    if (!valid_sha256(*sha)) {
      return r.error(join_key(path, "sha256"),
                     "expected 64 lowercase hex digits, found '" + *sha + "'");
    }
    clip.sha256 = *sha;
  } else {
    if (value.contains("sha256")) {
      return r.error(join_key(path, "sha256"), "a synthetic clip has no file to hash");
    }
    const std::string synthetic_path = join_key(path, "synthetic");
    const json& synthetic = value.at("synthetic");
    if (auto ok = r.keys(synthetic, synthetic_path, {"pattern"}); !ok) return fail(ok.error());
    auto pattern = r.text(synthetic, synthetic_path, "pattern");
    if (!pattern) return fail(pattern.error());
    if (std::find(k_patterns.begin(), k_patterns.end(), *pattern) == k_patterns.end()) {
      return r.error(join_key(synthetic_path, "pattern"),
                     "unknown videotestsrc pattern '" + *pattern + "' (e.g. smpte, ball, snow)");
    }
    clip.synthetic_pattern = *pattern;
  }
  auto width = r.integer(value, path, "width", 16, 7680);
  if (!width) return fail(width.error());
  auto height = r.integer(value, path, "height", 16, 4320);
  if (!height) return fail(height.error());
  auto fps = r.number(value, path, "fps", 0, 240, true);
  if (!fps) return fail(fps.error());
  auto duration = r.number(value, path, "duration_s", 0, 24 * 3600, true);
  if (!duration) return fail(duration.error());
  auto source = r.text(value, path, "source");
  if (!source) return fail(source.error());
  auto licence = r.text(value, path, "licence");
  if (!licence) return fail(licence.error());
  clip.width = *width;
  clip.height = *height;
  clip.fps = *fps;
  clip.duration_s = *duration;
  clip.source = *source;
  clip.licence = *licence;
  return clip;
}

Result<Scenario> read_scenario(const Reader& r, const json& value, const std::string& path,
                               const Dataset& dataset) {
  if (auto ok = r.keys(value, path,
                       {"id", "pipeline", "clip", "duration_s", "prompt_interval_s", "prompt_type",
                        "description"});
      !ok) {
    return fail(ok.error());
  }
  Scenario s;
  auto id = r.name(value, path, "id");
  if (!id) return fail(id.error());
  s.id = *id;
  auto pipeline = r.text(value, path, "pipeline");
  if (!pipeline) return fail(pipeline.error());
  if (!dataset.presets.contains(*pipeline)) {
    return r.error(join_key(path, "pipeline"), "unknown pipeline '" + *pipeline + "' (presets: " +
                                                   list_names(keys_of(dataset.presets)) + ")");
  }
  s.pipeline = *pipeline;
  auto clip = r.text(value, path, "clip");
  if (!clip) return fail(clip.error());
  const bool clip_known = std::any_of(dataset.clips.begin(), dataset.clips.end(),
                                      [&](const Clip& c) { return c.id == *clip; });
  if (!clip_known) {
    std::vector<std::string> ids;
    for (const auto& c : dataset.clips) ids.push_back(c.id);
    return r.error(join_key(path, "clip"),
                   "no clip '" + *clip + "' in clips (clips: " + list_names(ids) + ")");
  }
  s.clip = *clip;
  auto duration = r.number(value, path, "duration_s", 0, 7 * 24 * 3600, true);
  if (!duration) return fail(duration.error());
  s.duration_s = *duration;
  auto interval = r.number(value, path, "prompt_interval_s", 0, 7 * 24 * 3600);
  if (!interval) return fail(interval.error());
  s.prompt_interval_s = *interval;
  auto type_text = r.text(value, path, "prompt_type");
  if (!type_text) return fail(type_text.error());
  auto type = parse_prompt_type(*type_text);
  if (!type) return r.error(join_key(path, "prompt_type"), type.error().message);
  s.prompt_type = *type;
  auto description = r.text(value, path, "description");
  if (!description) return fail(description.error());
  s.description = *description;
  return s;
}

Result<Dataset> read_dataset(const Reader& r, const json& doc,
                             const std::filesystem::path& manifest) {
  if (auto ok = r.expect(doc, "", Kind::object); !ok) return fail(ok.error());
  // The schema version first: a newer manifest should say so, not trip over its new keys.
  if (!doc.contains("schema_version")) return r.error("schema_version", "missing required field");
  auto schema = r.integer(doc, "", "schema_version", 0, 1 << 30);
  if (!schema) return fail(schema.error());
  if (*schema != k_schema_version) {
    return r.error("schema_version", "unsupported schema version " + std::to_string(*schema) +
                                         " (this build reads version " +
                                         std::to_string(k_schema_version) + ")");
  }
  if (auto ok = r.keys(doc, "",
                       {"schema_version", "id", "version", "description", "prompt_sets", "presets",
                        "clips", "scenarios"});
      !ok) {
    return fail(ok.error());
  }
  Dataset d;
  d.manifest_path = manifest;
  d.schema_version = *schema;
  auto id = r.name(doc, "", "id");
  if (!id) return fail(id.error());
  d.id = *id;
  auto version = r.text(doc, "", "version");
  if (!version) return fail(version.error());
  if (!valid_semver(*version)) {
    return r.error("version", "'" + *version + "' is not a semantic version (MAJOR.MINOR.PATCH)");
  }
  d.version = *version;
  auto description = r.text(doc, "", "description");
  if (!description) return fail(description.error());
  d.description = *description;

  const json& presets = doc.at("presets");
  if (auto ok = r.expect(presets, "presets", Kind::object); !ok) return fail(ok.error());
  for (auto it = presets.begin(); it != presets.end(); ++it) {
    const std::string path = join_key("presets", it.key());
    if (!valid_name(it.key())) return r.bad_name(path, it.key());
    auto preset = read_preset(r, it.value(), path, it.key());
    if (!preset) return fail(preset.error());
    d.presets.emplace(it.key(), std::move(*preset));
  }

  const json& prompt_sets = doc.at("prompt_sets");
  if (auto ok = r.expect(prompt_sets, "prompt_sets", Kind::object); !ok) return fail(ok.error());
  for (auto it = prompt_sets.begin(); it != prompt_sets.end(); ++it) {
    const std::string path = join_key("prompt_sets", it.key());
    if (!d.presets.contains(it.key())) {
      return r.error(path, "no preset for pipeline '" + it.key() +
                               "' (presets: " + list_names(keys_of(d.presets)) + ")");
    }
    auto set = read_prompt_set(r, it.value(), path);
    if (!set) return fail(set.error());
    d.prompt_sets.emplace(it.key(), std::move(*set));
  }

  const std::filesystem::path root = manifest.parent_path();
  const json& clips = doc.at("clips");
  if (auto ok = r.expect(clips, "clips", Kind::array); !ok) return fail(ok.error());
  for (std::size_t i = 0; i < clips.size(); ++i) {
    const std::string path = index_key("clips", i);
    auto clip = read_clip(r, clips[i], path, root);
    if (!clip) return fail(clip.error());
    for (std::size_t j = 0; j < d.clips.size(); ++j) {
      if (d.clips[j].id == clip->id) {
        return r.error(join_key(path, "id"),
                       "duplicate clip id '" + clip->id + "' (also " + index_key("clips", j) + ")");
      }
    }
    d.clips.push_back(std::move(*clip));
  }

  const json& scenarios = doc.at("scenarios");
  if (auto ok = r.expect(scenarios, "scenarios", Kind::array); !ok) return fail(ok.error());
  for (std::size_t i = 0; i < scenarios.size(); ++i) {
    const std::string path = index_key("scenarios", i);
    auto scenario = read_scenario(r, scenarios[i], path, d);
    if (!scenario) return fail(scenario.error());
    for (std::size_t j = 0; j < d.scenarios.size(); ++j) {
      if (d.scenarios[j].id == scenario->id) {
        return r.error(join_key(path, "id"), "duplicate scenario id '" + scenario->id + "' (also " +
                                                 index_key("scenarios", j) + ")");
      }
    }
    d.scenarios.push_back(std::move(*scenario));
  }
  return d;
}

template <typename T>
Result<const T*> find_in(const std::vector<T>& items, std::string_view id, const Dataset& d,
                         std::string_view what) {
  std::vector<std::string> ids;
  for (const auto& item : items) {
    if (item.id == id) return &item;
    ids.push_back(item.id);
  }
  return fail(Error(ErrorCategory::config, "dataset " + d.id + " has no " + std::string(what) +
                                               " '" + std::string(id) + "' (" + std::string(what) +
                                               "s: " + list_names(ids) + ")")
                  .with("file", d.manifest_path.string()));
}

}  // namespace

std::string_view to_string(PromptType type) {
  switch (type) {
    case PromptType::good:
      return "good";
    case PromptType::random:
      return "random";
    case PromptType::bad:
      return "bad";
  }
  return "good";
}

Result<PromptType> parse_prompt_type(std::string_view text) {
  if (text == "good") return PromptType::good;
  if (text == "random") return PromptType::random;
  if (text == "bad") return PromptType::bad;
  return fail(ErrorCategory::config,
              "unknown prompt type '" + std::string(text) + "' (good, random, bad)");
}

const std::vector<std::string>& PromptSet::of(PromptType type) const {
  switch (type) {
    case PromptType::good:
      return good;
    case PromptType::random:
      return random;
    case PromptType::bad:
      return bad;
  }
  return good;
}

Result<nlohmann::json> Preset::params_with_prompt(std::string_view prompt) const {
  nlohmann::json out = params;
  try {
    const nlohmann::json::json_pointer pointer(prompt_pointer);
    auto& slot = out.at(pointer);
    if (!slot.is_string()) throw std::out_of_range("not a string");
    slot = std::string(prompt);
  } catch (const std::exception&) {
    return fail(Error(ErrorCategory::config, "preset " + pipeline + ": prompt_pointer '" +
                                                 prompt_pointer +
                                                 "' does not name a string in params"));
  }
  return out;
}

Result<const Preset*> Dataset::preset(std::string_view pipeline) const {
  if (auto it = presets.find(std::string(pipeline)); it != presets.end()) return &it->second;
  return fail(Error(ErrorCategory::config, "dataset " + id + " has no preset for pipeline '" +
                                               std::string(pipeline) +
                                               "' (presets: " + list_names(pipelines()) + ")")
                  .with("file", manifest_path.string()));
}

Result<const PromptSet*> Dataset::prompts(std::string_view pipeline) const {
  if (auto it = prompt_sets.find(std::string(pipeline)); it != prompt_sets.end()) {
    return &it->second;
  }
  return fail(Error(ErrorCategory::config,
                    "dataset " + id + " has no prompt set for pipeline '" + std::string(pipeline) +
                        "' (prompt sets: " + list_names(keys_of(prompt_sets)) + ")")
                  .with("file", manifest_path.string()));
}

Result<const Clip*> Dataset::clip(std::string_view clip_id) const {
  return find_in(clips, clip_id, *this, "clip");
}

Result<const Scenario*> Dataset::scenario(std::string_view scenario_id) const {
  return find_in(scenarios, scenario_id, *this, "scenario");
}

std::vector<std::string> Dataset::pipelines() const {
  return keys_of(presets);
}

Result<Dataset> load_dataset(const std::filesystem::path& manifest) {
  std::error_code ec;
  std::filesystem::path path = std::filesystem::absolute(manifest, ec);
  if (ec) path = manifest;
  path = path.lexically_normal();
  auto text = read_text(path);
  if (!text) return fail(text.error());
  const Reader reader(path.string());
  auto doc = parse_strict(*text, reader);
  if (!doc) return fail(doc.error());
  return read_dataset(reader, *doc, path);
}

}  // namespace naap::datasets
