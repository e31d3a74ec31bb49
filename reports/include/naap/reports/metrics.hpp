// Per-session metrics (docs/METRICS.md, "Definitions") computed from a finished session's
// Timeline, their JSON form, and the per-session SLA check.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "naap/core/histogram.hpp"
#include "naap/reports/timeline.hpp"

namespace naap::reports {

struct MetricsOptions {
  std::int64_t warmup_after_first_real_ms = 2000;  // measurement window opens this long after
                                                   // the first real frame's receipt
  std::int64_t calibration_window_ms = 5000;       // PTS offset: output frames received this long
                                                   // after an epoch's first output frame
  std::int64_t calibration_lookback_ms = 10000;    // PTS offset: input frames sent at most this
                                                   // long before the output frame arrived
  double late_threshold_ms = 20;                   // send lag above which an input frame is late
  double gateway_overload_late_fraction = 0.01;    // late fraction above which the gateway is
                                                   // overloaded (its numbers are not the orch's)
  double freeze_mean_multiple = 3;                 // freeze: interval >= this x mean interval
  double freeze_min_excess_ms = 150;               // ... and >= mean + this (WebRTC's rule)
  std::int64_t expected_tail_min_ms = 1000;  // frames due in the last max(e2e p99, this) before
                                             // input stopped are in flight, not expected
};

// A latency histogram read out in milliseconds (from integer µs; percentiles as the Histogram
// reports them: 3 significant figures, never above the exact max).
struct LatencySummary {
  std::uint64_t count = 0;  // samples
  double min_ms = 0;        // exact
  double p50_ms = 0;
  double p90_ms = 0;
  double p95_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;   // exact
  double mean_ms = 0;  // exact (of the values as recorded: negatives count as 0)
};
// nullopt when the histogram is empty ("no data" is not zero).
std::optional<LatencySummary> summarize(const Histogram& histogram_us);

// The constant PTS offset of one epoch: out.pts - in.pts.
//
// Candidates are the differences between the PTS of each output frame received within
// calibration_window_ms of the epoch's first output frame (any kind: loading overlays carry
// input PTS too) and the PTS of each input frame of the epoch sent in the calibration_lookback_ms
// before that output frame arrived. The offset is the candidate matching the most of those
// output frames. On a regular input grid PTS alone cannot tell an offset from whole frame
// intervals of latency: offset - k x interval matches every frame as well for every k with
// k x interval < latency, because those later input frames were also sent before the output
// arrived. Ties are therefore broken towards the LARGEST offset, the one pairing each output
// frame with the earliest input frame consistent with every match; it is exact when the
// runner's first output frames carry the epoch's first input PTS (as the loading overlays do) and
// otherwise overstates latency by the frames the runner swallowed without output - never
// understates it. `tied_offsets` reports how ambiguous the choice was.
struct PtsCalibration {
  int epoch = 0;
  std::int64_t offset_ticks = 0;   // 90 kHz
  double offset_ms = 0;            // offset_ticks / 90
  std::uint64_t frames = 0;        // output frames in the calibration window
  std::uint64_t matches = 0;       // of those, matched at this offset
  std::uint64_t tied_offsets = 0;  // other candidates matching as many frames
};

// Every number of one session. Optional values are null when the thing did not happen or there
// was no data; steady-state values (from the measurement window) are null together, with
// `unmeasured_reason` saying why. Times "_ms" from t0 unless the name is a duration.
struct SessionMetrics {
  // Startup, from t0 (the first start request).
  std::optional<double> job_accept_ms;         // epochs[0].start_response
  std::optional<double> first_output_byte_ms;  // first byte of any output segment
  std::optional<double> first_frame_any_ms;    // first decoded frame of any kind (received)
  std::optional<double> startup_ms;            // first real output frame (received)

  // Prompt switches: written (0 for the start request's prompt) -> effect received.
  std::vector<double> prompt_to_first_frame_ms;  // one per switch with an effect, in order
  Histogram prompt_to_first_frame_us;            // the same samples
  std::uint64_t prompt_switches_without_effect = 0;

  // PTS matching and latency.
  std::optional<double> pts_offset_ms;           // of the first epoch that had output
  std::vector<PtsCalibration> pts_calibrations;  // one per epoch that had output, by epoch
  Histogram e2e_latency_us;      // due -> received, matched real frames received in the window
  Histogram e2e_latency_all_us;  // the same over every matched decoded frame (any kind, any
                                 // time): latency for sessions without a measurement window
  std::uint64_t frames_unmatched = 0;  // output frames (any kind) with no input frame at pts-d
  Histogram transport_rtt_us;          // due -> loopback received, offset 0, whole session
  Histogram decode_delay_us;           // received -> decoded, every decoded frame

  // Measurement window: [first real frame + warm-up, input_stopped (ended if never stopped)).
  std::optional<Micros> window_start_us;
  std::optional<Micros> window_end_us;
  std::optional<double> measurement_window_ms;  // duration
  std::string unmeasured_reason;                // empty when the window exists

  // Steady state: real output frames received in the window.
  std::optional<double> output_fps;
  std::vector<std::uint32_t> output_fps_series;  // frames per whole second from window start
  std::optional<double> jitter_fps_cv;           // σ/μ of the series (population σ), >= 2 s
  std::optional<double> frame_interval_cv;       // σ/μ of receive intervals, >= 2 intervals
  std::optional<std::uint64_t> freeze_count;
  std::optional<double> freeze_ms;  // sum of the freezing intervals

  // Our own sending, whole session: due -> sent of every input frame that was sent.
  Histogram send_lag_us;
  std::uint64_t frames_late = 0;        // send lag > late_threshold_ms
  std::optional<double> late_fraction;  // frames_late / frames_sent
  bool gateway_overloaded = false;      // late_fraction > gateway_overload_late_fraction

  // Bandwidth: bytes / union of the segments' [first_byte, last_byte] intervals.
  std::uint64_t up_bytes = 0;
  std::uint64_t down_bytes = 0;
  std::optional<double> up_mbps;
  std::optional<double> down_mbps;

  // Frames. Totals are whole-session; the expected/returned/dropped set is the window's.
  std::uint64_t frames_sent = 0;                 // input frames with a send time
  std::uint64_t frames_unsent = 0;               // input frames scheduled but never sent
  std::optional<std::uint64_t> frames_expected;  // sent frames the runner's fps cap keeps, due in
                                                 // the window and before input_stopped -
                                                 // max(e2e p99, expected_tail_min_ms)
  std::optional<std::uint64_t> frames_returned;  // expected frames with a matched output frame
  std::optional<std::uint64_t> frames_dropped;   // expected frames with no matched output frame
  std::uint64_t frames_real = 0;
  std::uint64_t frames_loading = 0;
  std::uint64_t frames_black = 0;
  std::uint64_t frames_undecodable = 0;
  std::uint64_t output_frames_total = 0;

  // The runner's own view, from its status events.
  std::optional<double> runner_output_fps_mean;  // inference_status.fps, events in the window
  std::vector<std::string> runner_states;        // status `state` values, first-seen order

  std::uint64_t swaps = 0;   // swap records
  std::uint64_t epochs = 0;  // orchestrator epochs
};

SessionMetrics compute_metrics(const Timeline& timeline, const MetricsOptions& options = {});

// One object; histograms as LatencySummary objects in ms (null when empty), nulls for "no data".
nlohmann::json to_json(const SessionMetrics& metrics);

// Per-session SLA targets (METRICS.md, "Aggregation and SLA"). An unset target is not checked.
struct SlaTargets {
  double max_jitter_fps_cv = 0.1;
  std::optional<double> min_output_fps;  // the pipeline's target (dataset preset); set it
  double max_e2e_p95_ms = 3000;          // of e2e_latency_us (the window's real frames)
  std::optional<double> max_startup_ms;  // the preset's threshold
};

struct SlaBreach {
  std::string metric;  // the SessionMetrics name: "jitter_fps_cv", "output_fps", ...
  double value = 0;    // what was measured
  double target = 0;   // the bound it crossed
  std::string message;
};

// Breaches only: a value exactly at its bound passes, and a metric with no data (null) is never
// a breach - it is listed by sla_unmeasured instead. A gateway_overloaded session's breaches are
// still listed; charging them to the orchestrator is the outcome classifier's decision.
std::vector<SlaBreach> evaluate_sla(const SessionMetrics& metrics, const SlaTargets& targets);
// Names of the metrics that have a target but no data in this session.
std::vector<std::string> sla_unmeasured(const SessionMetrics& metrics, const SlaTargets& targets);
nlohmann::json to_json(const SlaBreach& breach);

}  // namespace naap::reports
