// Ground truth: what the emulator actually did to one stream, for accuracy tests and operators
// (GET /debug/streams/{manifest_id} and one log line per stream). Times are steady-clock
// microseconds (CLOCK_MONOTONIC: one clock for every process on the host, never stepped or
// slewed by time sync), so a gateway on the same host compares them with its own steady
// stamps; `wall_minus_steady_us` converts them to wall-clock time for people.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace naap::emulator {

// Wall clock now, epoch microseconds (the runner's events, which carry wall time).
std::int64_t wall_us();
// Steady clock now, microseconds since its epoch (boot on Linux): every ground-truth time.
std::int64_t steady_us();

struct FrameTruth {
  std::int64_t pts_in = 0;      // input PTS, 90 kHz
  std::int64_t pts_out = 0;     // output PTS, 90 kHz (differs only with PTS faults)
  std::int64_t arrived_us = 0;  // last byte of the frame's input data received
  std::int64_t emitted_us = 0;  // its output bytes handed to the output channel
  double injected_ms = 0;       // added processing latency drawn for it
  bool loading = false;         // a loading-overlay frame
};

struct PromptTruth {
  std::string params_hash;                    // md5 of the params (ai-runner's last_params_hash)
  std::string prompt;                         // prompt text the style derives from
  bool reload = false;                        // the update forced a reload
  std::int64_t received_us = 0;               // control message read
  std::optional<std::int64_t> effective_pts;  // first output frame showing it (input PTS)
  std::optional<std::int64_t> effective_us;   // when that frame was emitted
};

struct LoadingTruth {
  std::string reason;         // "startup" or "reload"
  std::int64_t start_us = 0;  // LOADING began
  std::int64_t end_us = 0;    // LOADING ended (0 while still loading)
};

struct FaultTruth {
  std::string kind;        // fault name (stall, crash, pts_jump, corrupt_segment, ...)
  std::int64_t at_us = 0;  // when it fired
  std::string detail;      // what exactly happened
};

// Per-frame records kept per stream (24 fps for 25 minutes); older ones are counted, not kept.
inline constexpr std::size_t k_max_truth_frames = 36'000;

class StreamTruth {
 public:
  std::mutex mutex;  // guards everything below; writers are the io thread and one codec worker

  std::string manifest_id;                      // the job's mid
  std::string stream_id;                        // gateway's stream_id
  std::string request_id;                       // gateway's gateway_request_id
  std::string model_id;                         // pipeline / model
  nlohmann::json faults;                        // active fault profile
  bool passthrough = false;                     // no decode/encode
  std::int64_t started_us = 0;                  // start request accepted
  std::int64_t wall_minus_steady_us = 0;        // wall_us() − steady_us() when it started
  std::optional<std::int64_t> first_input_us;   // first input byte
  std::optional<std::int64_t> first_output_us;  // first output byte
  std::optional<std::int64_t> ended_us;         // stream stopped
  std::string end_reason;                       // why it stopped

  std::uint64_t input_segments = 0;      // input segments read
  std::uint64_t input_bytes = 0;         // input bytes read
  std::uint64_t input_frames = 0;        // frames demuxed from the input
  std::uint64_t frames_capped = 0;       // dropped by the 24 fps input cap
  std::uint64_t frames_fps_fault = 0;    // dropped by the fps_cap fault
  std::uint64_t frames_dropped_nth = 0;  // dropped by drop_every_n
  std::uint64_t frames_stalled = 0;      // swallowed by a stall
  std::uint64_t frames_undecodable = 0;  // input frames the decoder rejected
  std::uint64_t output_frames = 0;       // frames emitted (real + loading)
  std::uint64_t loading_frames = 0;      // of which loading overlays
  std::uint64_t output_segments = 0;     // output segments started
  std::uint64_t output_bytes = 0;        // output bytes written
  std::uint64_t control_messages = 0;    // control segments read (keepalives included)
  std::uint64_t keepalives = 0;          // {"keep":"alive"} messages
  std::uint64_t bad_control = 0;         // control segments that were not valid params
  std::uint64_t events_sent = 0;         // events published
  std::uint64_t frames_forgotten = 0;    // frame records dropped to bound memory

  std::vector<LoadingTruth> loading;  // LOADING periods
  std::vector<PromptTruth> prompts;   // params applied, in order
  std::vector<FaultTruth> fault_log;  // faults that fired
  std::deque<FrameTruth> frames;      // last k_max_truth_frames emitted frames

  // Callers hold `mutex`.
  void add_frame(const FrameTruth& frame);
  void add_fault(std::string kind, std::string detail);
  // Everything, optionally without the per-frame list. Takes the lock.
  nlohmann::json to_json(bool with_frames);
};

}  // namespace naap::emulator
