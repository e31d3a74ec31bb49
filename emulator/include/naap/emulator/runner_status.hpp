// ai-runner v0.14.1's status reporting as pure logic: the state rules of its process guardian,
// the 10 s status event, and the error / restart / stream_trace event documents (PROTOCOL.md §4.3).
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace naap::emulator {

// One instant on both clocks: steady time drives the rules, wall time stamps the events.
struct Now {
  std::chrono::steady_clock::time_point mono;  // steady clock, for thresholds and intervals
  std::int64_t wall_ms = 0;                    // Unix epoch milliseconds, for event stamps
};

// The runner's pipeline family; ComfyUI has its own thresholds and is never restarted.
enum class RunnerKind { comfyui, other };

// PipelineState values as ai-runner reports them (status.py).
enum class RunnerState { offline, loading, online, degraded_input, degraded_inference, error };

// "OFFLINE", "LOADING", "ONLINE", "DEGRADED_INPUT", "DEGRADED_INFERENCE", "ERROR".
std::string_view to_string(RunnerState state);

struct RunnerStatusConfig {
  // The guardian's fps windows run from its process start, so their phase against the stream is
  // arbitrary: this says how long after the stream start the first 10 s window closes.
  std::chrono::seconds fps_phase{10};  // seconds, 1..10 (clamped)
  // Lines reported as restart_logs when the runner restarts its pipeline process after ERROR.
  std::vector<std::string> restart_logs;  // log lines, oldest first
  // streamer.py stores last_status_timestamp as time.time() after serialisation, i.e. float
  // seconds; PROTOCOL.md's example shows int ms. false follows the source.
  bool last_status_timestamp_ms = false;  // true: int epoch ms; false: float epoch seconds
};

// The status of one stream on one pipeline, as the real runner tracks it. Every call takes the
// current time; the guardian's 1 s evaluation loop (and its 10 s fps windows) is replayed up to
// that time before the call acts, so state changes carry the instant the runner would give them.
// Times must not go backwards (earlier times are treated as the latest one seen).
// On ERROR the runner stops the stream; unless it is ComfyUI or has restarted 3 times it then
// restarts its pipeline process at once, so the state reads LOADING (not ERROR) and a restart
// event is queued; call loading_finished() when the emulated process is ready again.
class RunnerStatus {
 public:
  RunnerStatus(std::string pipeline, RunnerKind kind, RunnerStatusConfig config = {});

  // Observations, in the order they happen.
  void stream_started(const Now& now, nlohmann::ordered_json params);  // reset_stream + params
  void input_frame(const Now& now);  // a frame handed to the pipeline, after the 24 fps cap
  void output_frame(const Now& now, bool loading_frame);  // loading frames do not count
  void params_updated(const Now& now, nlohmann::ordered_json params, bool needs_reload);
  void loading_started(const Now& now);             // pipeline not ready (first load or reload)
  void loading_finished(const Now& now);            // pipeline ready again
  void error(const Now& now, std::string message);  // a pipeline error; reported at the next poll
  // The pipeline process was restarted (as the guardian does after ERROR): the inference status
  // starts over with restart_count + 1, the restart time and logs, and the pipeline loads again.
  void restarted(const Now& now, std::vector<std::string> logs);
  void process_dead(const Now& now);    // the pipeline process exited
  void stream_stopped(const Now& now);  // the streamer's tasks ended (no more status events)

  // The state the runner holds now (what the next status event would carry).
  RunnerState state(const Now& now);

  // The status event as ai-runner emits it (bare, without the wrapper). Marks the report as sent:
  // last_params and last_restart_logs are null in the next one until they change again.
  nlohmann::ordered_json status_event(const Now& now);

  // The wrapped error / restart events the runner has emitted since the last call, oldest first.
  std::vector<nlohmann::ordered_json> take_events(const Now& now);

  // True once the runner has asked its streamer to stop: ERROR, or more than 60 s without input
  // (it then reports DEGRADED_INPUT until 90 s and ERROR after, if the stream does not end).
  bool should_stop(const Now& now);

  // 10 s between status events.
  static constexpr std::chrono::milliseconds status_interval() {
    return std::chrono::milliseconds(10'000);
  }
  // The first status is due one interval after the stream start; then every interval.
  std::chrono::steady_clock::time_point first_status_due() const;
  std::chrono::steady_clock::time_point next_status_due() const;

  int restart_count() const { return restart_count_; }
  const std::string& pipeline() const { return pipeline_; }

 private:
  // A moment on both clocks.
  struct Stamp {
    std::chrono::steady_clock::time_point mono;  // steady clock
    std::int64_t wall_ms = 0;                    // Unix epoch ms
  };
  // ai-runner's FPSCounter: the first frame of a stream only opens the window.
  struct FpsCounter {
    std::optional<std::chrono::steady_clock::time_point> start;  // window start, steady clock
    std::int64_t frames = 0;                                     // frames counted in the window
  };
  // Result of one evaluation of the state rules.
  struct Evaluation {
    RunnerState state = RunnerState::online;  // the computed state
    bool stop_stream = false;                 // the idle-input rule asked to stop the stream
  };

  void advance(const Now& now);
  void monitor_tick(std::chrono::steady_clock::time_point at);
  Evaluation evaluate(std::chrono::steady_clock::time_point at) const;
  void set_state(RunnerState state, std::chrono::steady_clock::time_point at);
  void restart_process(std::chrono::steady_clock::time_point at, std::vector<std::string> logs);
  void set_params(std::chrono::steady_clock::time_point at, nlohmann::ordered_json params);
  Stamp stamp(std::chrono::steady_clock::time_point at) const;
  static double take_fps(FpsCounter& counter, std::chrono::steady_clock::time_point at);

  std::string pipeline_;       // pipeline name reported in every event
  RunnerKind kind_;            // comfyui or other
  RunnerStatusConfig config_;  // phases and overrides

  // Clock bookkeeping.
  std::optional<std::chrono::steady_clock::time_point> latest_;  // latest steady time seen
  std::int64_t wall_offset_ms_ = 0;                  // wall_ms - steady ms, from the latest call
  std::chrono::steady_clock::time_point next_tick_;  // next 1 s guardian evaluation
  std::int64_t tick_index_ = 0;                      // evaluations since the stream start

  // Process and stream.
  bool process_alive_ = true;                                           // pipeline process alive
  std::optional<std::chrono::steady_clock::time_point> process_start_;  // set by a restart
  bool pipeline_ready_ = true;                                          // false while loading
  std::optional<std::chrono::steady_clock::time_point> loading_since_;  // last loading start
  std::optional<std::chrono::steady_clock::time_point> ready_time_;     // when loading finished
  bool stream_running_ = false;                                         // streamer tasks alive
  bool stop_requested_ = false;  // trigger_stop_stream was called
  std::optional<Stamp> start_;   // stream start

  // PipelineStatus.
  RunnerState state_ = RunnerState::offline;           // state last set by the guardian
  std::optional<Stamp> state_time_;                    // last_state_update_time
  std::optional<Stamp> last_input_;                    // last_input_time
  double input_fps_ = 0.0;                             // input_status.fps, frames per second
  std::optional<Stamp> last_output_;                   // last_output_time (loading frames excluded)
  double output_fps_ = 0.0;                            // inference_status.fps, frames per second
  std::optional<Stamp> params_time_;                   // last_params_update_time
  std::optional<nlohmann::ordered_json> last_params_;  // sent once after a change
  std::optional<std::string> params_hash_;             // last_params_hash (md5 hex)
  std::optional<Stamp> error_time_;                    // last_error_time
  std::optional<std::string> last_error_;              // last_error
  std::optional<Stamp> restart_time_;                  // last_restart_time
  std::optional<std::vector<std::string>> restart_logs_;  // sent once after a restart
  int restart_count_ = 0;                                 // restarts of the pipeline process

  FpsCounter input_counter_;   // input frames since the last fps window
  FpsCounter output_counter_;  // non-loading output frames since the last fps window

  std::optional<std::pair<std::string, Stamp>> pending_error_;  // polled at the next tick
  std::vector<nlohmann::ordered_json> events_;                  // emitted, not yet taken

  // Status report schedule.
  std::chrono::steady_clock::time_point next_report_;  // next status due
  std::optional<Stamp> last_report_;                   // previous report (or the loop start)
};

// md5 hex of json.dumps(params, sort_keys=True), ai-runner's last_params_hash.
std::string params_hash(const nlohmann::json& params);
std::string params_hash(const nlohmann::ordered_json& params);

// Python's json.dumps(value) byte for byte: ", " and ": " separators, ASCII-only output with
// lowercase \uXXXX escapes (surrogate pairs above the BMP), float repr, NaN / Infinity. The runner
// writes every event segment this way (json.dumps of the wrapper, insertion order kept).
std::string python_json_dumps(const nlohmann::json& value, bool sort_keys = false);
std::string python_json_dumps(const nlohmann::ordered_json& value, bool sort_keys = false);

// {"event": event, "queue_event_type": queue_event_type}, the events-channel wrapper.
nlohmann::ordered_json wrap_event(nlohmann::ordered_json event, std::string_view queue_event_type);

// Trace events (queue stream_trace): runner_receive_stream_request,
// runner_receive_first_ingest_segment, runner_send_first_processed_segment.
nlohmann::ordered_json stream_trace_event(std::string_view type, std::int64_t timestamp_ms);

// Wrapped `error` event: {type, pipeline, message, time (float epoch s), timestamp (ms)}.
nlohmann::ordered_json error_event(std::string_view pipeline, std::string_view message,
                                   double time_s, std::int64_t timestamp_ms);

// Wrapped `restart` event: {type, pipeline, restart_count, restart_time (float epoch s),
// restart_logs, timestamp (ms)}.
nlohmann::ordered_json restart_event(std::string_view pipeline, int restart_count,
                                     double restart_time_s, const std::vector<std::string>& logs,
                                     std::int64_t timestamp_ms);

}  // namespace naap::emulator
