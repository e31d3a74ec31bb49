// Fault injection for the emulated orchestrator and runner: one profile per model or stream,
// read from `--fault KEY=VALUE` flags or a JSON file (docs/emulator.md lists every knob).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "naap/core/error.hpp"

namespace naap::emulator {

// Added processing latency per frame: fixed, or drawn from a distribution (milliseconds).
struct LatencySpec {
  enum class Kind { fixed, uniform, normal, lognormal };
  Kind kind = Kind::fixed;  // distribution
  double a_ms = 0;          // fixed value, uniform min, normal mean, lognormal median
  double b_ms = 0;          // uniform max, normal stddev, lognormal sigma (unitless)

  // One draw, never negative.
  double sample_ms(std::mt19937_64& rng) const;
  bool zero() const { return kind == Kind::fixed && a_ms <= 0; }
  nlohmann::json to_json() const;
};

// Every knob is optional so profiles can be layered: default < model < stream.
struct FaultProfile {
  std::optional<LatencySpec> latency;           // added processing latency per frame
  std::optional<double> fps_cap;                // output frames per second at most
  std::optional<double> load_time_s;            // LOADING phase at stream start, seconds
  std::optional<double> reload_time_s;          // LOADING phase after a reload, seconds
  std::optional<double> stall_after_s;          // output stops this long after the start
  std::optional<double> crash_after_s;          // error event then all channels closed
  std::optional<int> start_status;              // answer the job start with 503 or 500
  std::optional<double> bandwidth_kbps;         // output trickle rate cap, kilobits/s
  std::optional<int> drop_every_n;              // drop every Nth frame after the fps cap
  std::optional<double> pts_shift_ms;           // constant offset added to output PTS
  std::optional<double> pts_jump_back_after_s;  // output PTS jump backwards once, at a GOP
  std::optional<double> pts_jump_back_ms;       // size of that jump (default 1000 ms)
  std::optional<int> corrupt_segment_every_n;   // every Nth output segment is garbage
  std::optional<bool> no_events;                // publish nothing on the events channel
  std::optional<bool> passthrough;              // forward input segments without decoding
  std::optional<bool> stop_on_error;            // runner stops the stream in ERROR state
  std::optional<bool> show_reloading_frame;     // loading-overlay frames while loading

  // `over`'s set fields replace this profile's.
  FaultProfile merged(const FaultProfile& over) const;
  // The active faults only, for logs and the ground-truth endpoint.
  nlohmann::json to_json() const;
  // Sets one knob from "key=value" (a flag); errors name the key and the bad value.
  Result<void> set(std::string_view key, std::string_view value);
  // Builds a profile from a JSON object; unknown keys and wrong types are errors naming `where`.
  static Result<FaultProfile> from_json(const nlohmann::json& object, const std::string& where);
};

// Profiles for the whole emulator: a default, per model and per stream id.
struct FaultPlan {
  FaultProfile defaults;                        // applies to every stream
  std::map<std::string, FaultProfile> models;   // by model_id
  std::map<std::string, FaultProfile> streams;  // by the gateway's stream_id

  FaultProfile for_stream(const std::string& model_id, const std::string& stream_id) const;
  // {"default": {...}, "models": {"<id>": {...}}, "streams": {"<stream_id>": {...}}}
  static Result<FaultPlan> from_json(const nlohmann::json& document, const std::string& where);
  static Result<FaultPlan> load(const std::string& path);
  nlohmann::json to_json() const;
};

}  // namespace naap::emulator
