// Fault profiles: parsing (flags and JSON), layering and reporting.
#include "naap/emulator/faults.hpp"

#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>

namespace naap::emulator {
namespace {

using json = nlohmann::json;

Error bad(const std::string& where, std::string_view key, const std::string& why) {
  return Error(ErrorCategory::config, "fault '" + std::string(key) + "': " + why)
      .with("where", where);
}

Result<double> to_number(std::string_view text, std::string_view key) {
  double value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || ptr != text.data() + text.size() || !std::isfinite(value)) {
    return fail(bad("--fault", key, "'" + std::string(text) + "' is not a number"));
  }
  return value;
}

Result<bool> to_bool(std::string_view text, std::string_view key) {
  if (text == "true" || text == "1" || text == "yes" || text.empty()) return true;
  if (text == "false" || text == "0" || text == "no") return false;
  return fail(bad("--fault", key, "'" + std::string(text) + "' is not true or false"));
}

// "200", "uniform:100:300", "normal:200:20", "lognormal:200:0.3"
Result<LatencySpec> parse_latency(std::string_view text, const std::string& where) {
  LatencySpec spec;
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    auto colon = text.find(':', start);
    parts.push_back(text.substr(start, colon == std::string_view::npos ? colon : colon - start));
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  auto number = [&](std::string_view part) { return to_number(part, "latency_ms"); };
  if (parts.size() == 1) {
    auto v = number(parts[0]);
    if (!v) return fail(v.error().with("where", where));
    spec.a_ms = *v;
  } else if (parts.size() == 3) {
    if (parts[0] == "uniform") {
      spec.kind = LatencySpec::Kind::uniform;
    } else if (parts[0] == "normal") {
      spec.kind = LatencySpec::Kind::normal;
    } else if (parts[0] == "lognormal") {
      spec.kind = LatencySpec::Kind::lognormal;
    } else {
      return fail(bad(where, "latency_ms",
                      "unknown distribution '" + std::string(parts[0]) +
                          "' (fixed number, uniform:MIN:MAX, normal:MEAN:SD, "
                          "lognormal:MEDIAN:SIGMA)"));
    }
    auto a = number(parts[1]);
    auto b = number(parts[2]);
    if (!a || !b) return fail(bad(where, "latency_ms", "distribution parameters must be numbers"));
    spec.a_ms = *a;
    spec.b_ms = *b;
  } else {
    return fail(
        bad(where, "latency_ms", "expected MS or DIST:A:B, got '" + std::string(text) + "'"));
  }
  if (spec.a_ms < 0 || spec.b_ms < 0) return fail(bad(where, "latency_ms", "must not be negative"));
  if (spec.kind == LatencySpec::Kind::uniform && spec.b_ms < spec.a_ms) {
    return fail(bad(where, "latency_ms", "uniform max is below min"));
  }
  return spec;
}

}  // namespace

double LatencySpec::sample_ms(std::mt19937_64& rng) const {
  double v = a_ms;
  switch (kind) {
    case Kind::fixed:
      break;
    case Kind::uniform:
      v = std::uniform_real_distribution<double>(a_ms, b_ms)(rng);
      break;
    case Kind::normal:
      v = std::normal_distribution<double>(a_ms, b_ms)(rng);
      break;
    case Kind::lognormal:
      v = a_ms > 0 ? std::lognormal_distribution<double>(std::log(a_ms), b_ms)(rng) : 0;
      break;
  }
  return std::max(0.0, v);
}

json LatencySpec::to_json() const {
  switch (kind) {
    case Kind::fixed:
      return a_ms;
    case Kind::uniform:
      return json{{"dist", "uniform"}, {"min", a_ms}, {"max", b_ms}};
    case Kind::normal:
      return json{{"dist", "normal"}, {"mean", a_ms}, {"stddev", b_ms}};
    case Kind::lognormal:
      return json{{"dist", "lognormal"}, {"median", a_ms}, {"sigma", b_ms}};
  }
  return a_ms;
}

FaultProfile FaultProfile::merged(const FaultProfile& over) const {
  FaultProfile out = *this;
  auto take = [](auto& dst, const auto& src) {
    if (src) dst = src;
  };
  take(out.latency, over.latency);
  take(out.fps_cap, over.fps_cap);
  take(out.load_time_s, over.load_time_s);
  take(out.reload_time_s, over.reload_time_s);
  take(out.stall_after_s, over.stall_after_s);
  take(out.crash_after_s, over.crash_after_s);
  take(out.start_status, over.start_status);
  take(out.bandwidth_kbps, over.bandwidth_kbps);
  take(out.drop_every_n, over.drop_every_n);
  take(out.pts_shift_ms, over.pts_shift_ms);
  take(out.pts_jump_back_after_s, over.pts_jump_back_after_s);
  take(out.pts_jump_back_ms, over.pts_jump_back_ms);
  take(out.corrupt_segment_every_n, over.corrupt_segment_every_n);
  take(out.no_events, over.no_events);
  take(out.passthrough, over.passthrough);
  take(out.stop_on_error, over.stop_on_error);
  take(out.show_reloading_frame, over.show_reloading_frame);
  return out;
}

json FaultProfile::to_json() const {
  json out = json::object();
  if (latency) out["latency_ms"] = latency->to_json();
  auto put = [&out](const char* key, const auto& value) {
    if (value) out[key] = *value;
  };
  put("fps_cap", fps_cap);
  put("load_time_s", load_time_s);
  put("reload_time_s", reload_time_s);
  put("stall_after_s", stall_after_s);
  put("crash_after_s", crash_after_s);
  put("start_status", start_status);
  put("bandwidth_kbps", bandwidth_kbps);
  put("drop_every_n", drop_every_n);
  put("pts_shift_ms", pts_shift_ms);
  put("pts_jump_back_after_s", pts_jump_back_after_s);
  put("pts_jump_back_ms", pts_jump_back_ms);
  put("corrupt_segment_every_n", corrupt_segment_every_n);
  put("no_events", no_events);
  put("passthrough", passthrough);
  put("stop_on_error", stop_on_error);
  put("show_reloading_frame", show_reloading_frame);
  return out;
}

Result<void> FaultProfile::set(std::string_view key, std::string_view value) {
  const std::string where = "--fault " + std::string(key);
  auto number = [&](std::optional<double>& dst, double min) -> Result<void> {
    auto v = to_number(value, key);
    if (!v) return fail(v.error());
    if (*v < min) return fail(bad(where, key, "must be at least " + std::to_string(min)));
    dst = *v;
    return {};
  };
  auto integer = [&](std::optional<int>& dst, int min) -> Result<void> {
    auto v = to_number(value, key);
    if (!v) return fail(v.error());
    if (*v != std::floor(*v) || *v < min || *v > 1e9) {
      return fail(bad(where, key, "must be a whole number >= " + std::to_string(min)));
    }
    dst = static_cast<int>(*v);
    return {};
  };
  auto flag = [&](std::optional<bool>& dst) -> Result<void> {
    auto v = to_bool(value, key);
    if (!v) return fail(v.error());
    dst = *v;
    return {};
  };
  if (key == "latency_ms") {
    auto spec = parse_latency(value, where);
    if (!spec) return fail(spec.error());
    latency = *spec;
    return {};
  }
  if (key == "fps_cap") return number(fps_cap, 0.1);
  if (key == "load_time_s") return number(load_time_s, 0);
  if (key == "reload_time_s") return number(reload_time_s, 0);
  if (key == "stall_after_s") return number(stall_after_s, 0);
  if (key == "crash_after_s") return number(crash_after_s, 0);
  if (key == "bandwidth_kbps") return number(bandwidth_kbps, 1);
  if (key == "pts_shift_ms") {
    auto v = to_number(value, key);
    if (!v) return fail(v.error());
    pts_shift_ms = *v;
    return {};
  }
  if (key == "pts_jump_back_after_s") return number(pts_jump_back_after_s, 0);
  if (key == "pts_jump_back_ms") return number(pts_jump_back_ms, 1);
  if (key == "start_status") {
    auto r = integer(start_status, 100);
    if (r && *start_status != 503 && *start_status != 500) {
      start_status.reset();
      return fail(bad(where, key, "must be 503 or 500"));
    }
    return r;
  }
  if (key == "drop_every_n") return integer(drop_every_n, 2);
  if (key == "corrupt_segment_every_n") return integer(corrupt_segment_every_n, 1);
  if (key == "no_events") return flag(no_events);
  if (key == "passthrough") return flag(passthrough);
  if (key == "stop_on_error") return flag(stop_on_error);
  if (key == "show_reloading_frame") return flag(show_reloading_frame);
  return fail(bad(where, key,
                  "unknown fault (known: latency_ms fps_cap load_time_s reload_time_s "
                  "stall_after_s crash_after_s start_status bandwidth_kbps drop_every_n "
                  "pts_shift_ms pts_jump_back_after_s pts_jump_back_ms corrupt_segment_every_n "
                  "no_events passthrough stop_on_error show_reloading_frame)"));
}

Result<FaultProfile> FaultProfile::from_json(const json& object, const std::string& where) {
  if (!object.is_object()) {
    return fail(
        Error(ErrorCategory::config, "a fault profile must be a JSON object").with("where", where));
  }
  FaultProfile profile;
  for (const auto& [key, value] : object.items()) {
    std::string text;
    if (key == "latency_ms" && value.is_object()) {
      const std::string dist = value.value("dist", "");
      auto num = [&](const char* k) { return value.contains(k) ? value[k].dump() : ""; };
      if (dist == "uniform") {
        text = "uniform:" + num("min") + ":" + num("max");
      } else if (dist == "normal") {
        text = "normal:" + num("mean") + ":" + num("stddev");
      } else if (dist == "lognormal") {
        text = "lognormal:" + num("median") + ":" + num("sigma");
      } else {
        return fail(bad(where, key, "dist must be uniform, normal or lognormal"));
      }
    } else if (value.is_boolean()) {
      text = value.get<bool>() ? "true" : "false";
    } else if (value.is_number()) {
      text = value.dump();
    } else {
      return fail(bad(where, key, "expected a number or boolean, got " + value.dump()));
    }
    auto set_result = profile.set(key, text);
    if (!set_result) {
      Error e = set_result.error();
      return fail(Error(e.category, e.message).with("where", where + "." + key));
    }
  }
  return profile;
}

FaultProfile FaultPlan::for_stream(const std::string& model_id,
                                   const std::string& stream_id) const {
  FaultProfile out = defaults;
  if (auto it = models.find(model_id); it != models.end()) out = out.merged(it->second);
  if (auto it = streams.find(stream_id); it != streams.end()) out = out.merged(it->second);
  return out;
}

Result<FaultPlan> FaultPlan::from_json(const json& document, const std::string& where) {
  if (!document.is_object()) {
    return fail(
        Error(ErrorCategory::config, "the fault plan must be a JSON object").with("where", where));
  }
  FaultPlan plan;
  for (const auto& [key, value] : document.items()) {
    if (key == "default") {
      auto p = FaultProfile::from_json(value, where + ":default");
      if (!p) return fail(p.error());
      plan.defaults = *p;
    } else if (key == "models" || key == "streams") {
      if (!value.is_object()) {
        return fail(Error(ErrorCategory::config, "'" + key + "' must map ids to fault profiles")
                        .with("where", where));
      }
      for (const auto& [id, profile_json] : value.items()) {
        auto p = FaultProfile::from_json(profile_json, where + ":" + key + "." + id);
        if (!p) return fail(p.error());
        (key == "models" ? plan.models : plan.streams)[id] = *p;
      }
    } else {
      return fail(Error(ErrorCategory::config,
                        "unknown key '" + key + "' (expected default, models, streams)")
                      .with("where", where));
    }
  }
  return plan;
}

Result<FaultPlan> FaultPlan::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return fail(Error(ErrorCategory::config, "cannot open the fault file").with("path", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  json document = json::parse(text.str(), nullptr, false);
  if (document.is_discarded()) {
    return fail(
        Error(ErrorCategory::config, "the fault file is not valid JSON").with("path", path));
  }
  return from_json(document, path);
}

json FaultPlan::to_json() const {
  json out{
      {"default", defaults.to_json()}, {"models", json::object()}, {"streams", json::object()}};
  for (const auto& [id, p] : models) out["models"][id] = p.to_json();
  for (const auto& [id, p] : streams) out["streams"][id] = p.to_json();
  return out;
}

}  // namespace naap::emulator
