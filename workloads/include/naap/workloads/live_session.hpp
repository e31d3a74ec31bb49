// One live-video-to-video session run the way a Livepeer gateway runs it (PROTOCOL.md): learn
// the orchestrator (GetOrchestrator), start the job, wire the four trickle channels, publish the
// input open-loop, switch prompts with full parameter sets, read output and events, watch
// go-livepeer's swap triggers, pay a priced orchestrator, stop cleanly — and record everything
// on a measurement timeline (METRICS.md). Given several orchestrators (pool mode) a trigger
// moves the session to the next one as go-livepeer swaps.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "naap/core/worker_pool.hpp"
#include "naap/media/decoder.hpp"
#include "naap/reports/metrics.hpp"
#include "naap/reports/timeline.hpp"
#include "naap/transport/http_engine.hpp"
#include "naap/transport/orchestrator_client.hpp"
#include "naap/workloads/input_source.hpp"

namespace naap::workloads {

// go-livepeer's gateway failure triggers (PROTOCOL.md §5.2) with its thresholds.
struct SwapRules {
  std::chrono::milliseconds output_timeout{30'000};  // no output segment while input is recent
  std::chrono::milliseconds events_timeout{30'000};  // no event on the events channel
  std::chrono::milliseconds events_check{10'000};    // how often the events watchdog looks
  std::size_t max_in_flight_segments = 3;            // input POSTs not yet answered
  int max_bad_events = 5;                            // consecutive non-JSON events
  int max_swaps = 2;                                 // swaps allowed within swap_window
  std::chrono::milliseconds swap_window{180'000};    // go-livepeer's recentSwapInterval
};

// One prompt of the session: its text (for the record) and the full parameter set carrying it
// (what goes on the wire: never a delta, PROTOCOL.md §4.2).
struct PromptStep {
  std::string prompt;     // the prompt text, or a summary of a structured prompt
  nlohmann::json params;  // the complete params object
};

// What a session reports as it happens, for the events of EVENTS.md §5.2 (session_events.hpp
// turns them into go-livepeer-shaped envelopes). Delivered on the io thread.
struct SessionSignal {
  enum class Kind {
    stream_request,           // the session begins (before GetOrchestrator)
    start_failed,             // one orchestrator refused or failed the start (not capacity)
    no_orchestrators,         // no orchestrator would take the job (capacity / price)
    params_update,            // a parameter set was written to the control channel
    first_ingest_segment,     // the first input segment POST completed (per orchestrator)
    first_processed_segment,  // the first output segment was read to its end
    few_processed_segments,   // the third output segment was read to its end
    runner_event,             // an event read from the events channel (`body`: as read)
    gateway_error,            // a swap trigger fired (`message`: the cause)
    swap,                     // the session moves on (`message`: cause; orchestrator: the one left)
    ingest_closed,            // the input ended (end of scenario, failure or abort)
  };
  Kind kind = Kind::stream_request;
  std::int64_t wall_ms = 0;          // Unix ms when observed
  double elapsed_ms = 0;             // steady-clock ms since the session began
  std::string orchestrator_address;  // 0x-hex, or host:port without one; empty: none yet
  std::string orchestrator_url;      // its transcoder URL; empty: none yet
  std::string target;                // the orchestrator aimed at (host:port)
  std::string message;               // cause or error text
  nlohmann::json body;               // params (params_update) or the event (runner_event)
};

struct SessionConfig {
  std::vector<std::string> orchestrators;        // host:port; more than one = pool mode
  std::string model_id;                          // pipeline / model id sent as model_id
  nlohmann::json params;                         // full parameter set used when `prompts` is empty
  std::vector<PromptStep> prompts;               // [0] goes with the start request, then in turn
  std::chrono::milliseconds duration{60'000};    // input time, from the first frame
  std::chrono::milliseconds prompt_interval{0};  // between prompt switches; 0 = none
  std::chrono::milliseconds keepalive_interval{10'000};   // {"keep":"alive"} on the control channel
  std::chrono::milliseconds first_frame_timeout{60'000};  // no real output by then: give up
  std::chrono::milliseconds drain{3'000};  // after the input stops, keep reading output this long
  std::chrono::milliseconds rpc_deadline{5'000};      // GetOrchestrator and job start
  std::chrono::milliseconds channel_end_grace{500};   // wait for the runner's last events
                                                      // before judging a closed channel
  std::chrono::milliseconds payment_interval{5'000};  // /payment cadence on priced orchestrators
  bool decode = true;               // false: demux-only frame accounting (no pixels)
  media::DecoderOptions decoder;    // backend selection for full decode
  bool loopback = false;            // also read our own input channel (transport RTT)
  std::string stream_id;            // ours; kept across swaps
  std::string request_id;           // ours; kept across swaps
  std::string signer_url;           // remote signer; empty = off-chain
  std::string certificate_pin;      // expected "sha256//..." for every orchestrator
  SwapRules swap;                   // trigger thresholds
  reports::MetricsOptions metrics;  // warm-up, calibration, lateness
  reports::SlaTargets sla;          // per-session SLA (degraded when breached)
  std::function<void(const SessionSignal&)> on_signal;  // events as they happen (may be empty)
};

// What one orchestrator said about itself (GetOrchestrator), as the run record keeps it.
struct OrchestratorSeen {
  std::string address;      // host:port as configured
  std::string url;          // transcoder URL it advertised
  std::string eth_address;  // 0x-hex, empty off-chain
  std::string pin;          // its certificate's SPKI pin
  double latency_ms = 0;    // GetOrchestrator round trip, dial included
  nlohmann::json model;     // {warm, capacity, capacity_in_use, runner_version} for our model
  std::int64_t price_per_unit = 0;   // wei per pixels_per_unit
  std::int64_t pixels_per_unit = 0;  // pixels
};

struct SessionResult {
  reports::Timeline timeline;                        // everything measured
  reports::SessionMetrics metrics;                   // computed from the timeline
  std::vector<reports::SlaBreach> breaches;          // per-session SLA
  std::string outcome;                               // METRICS.md category
  std::string message;                               // why, for an operator
  std::string trigger;                               // the swap trigger that ended it, if any
  std::string decode_backend;                        // "software", "nvdec", or "none" (demux only)
  std::vector<OrchestratorSeen> orchestrators;       // in the order they served
  std::string manifest_id;                           // of the last job
  std::uint64_t output_segments_corrupt = 0;         // output segments that were not clean TS/H.264
  std::uint64_t output_pts_regressions = 0;          // output frames whose PTS did not increase
  double output_pts_max_regression_ms = 0;           // the largest step back, ms
  std::chrono::system_clock::time_point started_at;  // wall clock of t0, for the record
  std::chrono::steady_clock::time_point t0;          // t0 itself: timeline times count from it
  std::chrono::system_clock::time_point ended_at;    // wall clock at the end
};

// A snapshot for the live progress line.
struct Progress {
  double elapsed_s = 0;      // since t0
  double fps = 0;            // real output frames in the last second
  double latency_ms = -1;    // E2E of the last matched frame (-1 none yet)
  std::string state;         // phase, and the runner's last status state
  std::string orchestrator;  // serving now
};

// What a session runs on, shared by every session of a process.
struct SessionServices {
  http::Engine& engine;              // io thread: every network call, every timer
  WorkerPool& pool;                  // decoding
  orch::OrchestratorClient& probes;  // GetOrchestrator off the io thread
};

class LiveSession {
 public:
  using DoneCallback = std::function<void(SessionResult&&)>;

  // Everything happens on the engine's io thread (decoding on the pool); on_done is called
  // there exactly once.
  static std::shared_ptr<LiveSession> create(SessionServices services,
                                             std::shared_ptr<InputSource> input,
                                             SessionConfig config, DoneCallback on_done);
  ~LiveSession();

  void start();                    // io thread
  void abort(std::string reason);  // io thread: ends now with outcome "aborted"
  Progress progress() const;       // io thread

  struct Impl;

 private:
  explicit LiveSession(std::unique_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

// The exit-code family of an outcome for `bench`: 0 pass, 1 SLA breached or the orchestrator
// failed the session, 3 unreachable / start failed, 4 our own error or aborted.
int exit_code_for(std::string_view outcome);

}  // namespace naap::workloads
