// Session metrics on synthetic timelines with known answers: latency, PTS offsets, the fps cap,
// freezes, gateway overload, startup, prompt switches, swaps, bandwidth, SLA and empty sessions.
#include "naap/reports/metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>

namespace naap::reports {
namespace {

// One run of input frames and the runner's answers to them.
struct Stream {
  int epoch = 0;
  double fps = 24;                // input frame rate
  Micros first_due_us = 500'000;  // due time of the first frame
  double seconds = 20;            // input length
  Micros latency_us = 200'000;    // due -> output received, for every returned frame
  std::int64_t pts_offset = 0;    // 90 kHz ticks the output adds to the input PTS
  Micros send_lag_us = 1'000;     // due -> sent
  std::function<bool(int)> returned = [](int) { return true; };  // by input frame index
};

std::int64_t pts_of(int i, double fps) {
  return std::llround(i * 90'000.0 / fps);
}
Micros due_of(const Stream& s, int i) {
  return s.first_due_us + std::llround(static_cast<double>(pts_of(i, s.fps)) / 0.09);
}

void add_stream(Timeline& t, const Stream& s) {
  const int frames = static_cast<int>(std::lround(s.fps * s.seconds));
  for (int i = 0; i < frames; ++i) {
    const Micros due = due_of(s, i);
    t.input_frames.push_back(
        {.pts = pts_of(i, s.fps), .due = due, .sent = due + s.send_lag_us, .epoch = s.epoch});
    if (!s.returned(i)) continue;
    t.output_frames.push_back({.pts = pts_of(i, s.fps) + s.pts_offset,
                               .received = due + s.latency_us,
                               .decoded = due + s.latency_us + 5'000,
                               .kind = FrameKind::real,
                               .epoch = s.epoch});
  }
}

// A session of one stream: start request at 0, accepted at 50 ms, input stops after the stream.
Timeline session(const Stream& s) {
  Timeline t;
  t.input_fps = s.fps;
  t.epochs.push_back(
      {.orchestrator = "o1:8935", .start_request_sent = 0, .start_response = 50'000});
  t.input_started = s.first_due_us;
  t.input_stopped = s.first_due_us + static_cast<Micros>(s.seconds * 1e6);
  t.ended = t.input_stopped + 2'000'000;
  add_stream(t, s);
  return t;
}

TEST(ReportsMetrics, reports_a_constant_latency_exactly_with_steady_rate_and_no_freezes) {
  Timeline t = session({});
  for (const auto& f : t.input_frames) {
    t.loopback_frames.push_back({.pts = f.pts, .received = f.due + 30'000, .epoch = 0});
  }
  const SessionMetrics m = compute_metrics(t);

  const auto e2e = summarize(m.e2e_latency_us);
  ASSERT_TRUE(e2e);
  EXPECT_EQ(e2e->p50_ms, 200.0);
  EXPECT_EQ(e2e->p99_ms, 200.0);
  EXPECT_EQ(e2e->max_ms, 200.0);
  EXPECT_EQ(e2e->min_ms, 200.0);
  ASSERT_TRUE(m.pts_offset_ms);
  EXPECT_EQ(*m.pts_offset_ms, 0.0);
  EXPECT_EQ(m.frames_unmatched, 0u);
  EXPECT_EQ(summarize(m.transport_rtt_us)->p50_ms, 30.0);
  EXPECT_EQ(summarize(m.decode_delay_us)->p50_ms, 5.0);
  EXPECT_EQ(summarize(m.send_lag_us)->max_ms, 1.0);

  // Window: first real frame at 0.7 s + 2 s warm-up, to input stop at 20.5 s.
  ASSERT_TRUE(m.measurement_window_ms);
  EXPECT_EQ(*m.window_start_us, 2'700'000);
  EXPECT_EQ(*m.measurement_window_ms, 17'800.0);
  EXPECT_TRUE(m.unmeasured_reason.empty());
  EXPECT_NEAR(*m.output_fps, 24.0, 0.05);
  EXPECT_EQ(m.output_fps_series, std::vector<std::uint32_t>(17, 24));
  EXPECT_NEAR(*m.jitter_fps_cv, 0.0, 1e-12);
  EXPECT_LT(*m.frame_interval_cv, 1e-4);
  EXPECT_EQ(*m.freeze_count, 0u);
  EXPECT_EQ(*m.freeze_ms, 0.0);
  EXPECT_FALSE(m.gateway_overloaded);
  EXPECT_EQ(m.frames_late, 0u);

  // Expected: due in [2.7 s, 20.5 s - max(p99 0.2 s, 1 s)) -> frames 53..455.
  EXPECT_EQ(*m.frames_expected, 403u);
  EXPECT_EQ(*m.frames_dropped, 0u);
  EXPECT_EQ(m.frames_sent, 480u);
  EXPECT_EQ(m.frames_real, 480u);
  EXPECT_EQ(m.output_frames_total, 480u);
  EXPECT_EQ(*m.startup_ms, 700.0);
  EXPECT_EQ(*m.job_accept_ms, 50.0);
}

TEST(ReportsMetrics, recovers_a_constant_pts_offset_exactly) {
  Stream s;
  s.pts_offset = 126'000;  // ffmpeg's mpegts muxer: +1.4 s
  const SessionMetrics m = compute_metrics(session(s));
  ASSERT_TRUE(m.pts_offset_ms);
  EXPECT_EQ(*m.pts_offset_ms, 1400.0);
  ASSERT_EQ(m.pts_calibrations.size(), 1u);
  EXPECT_EQ(m.pts_calibrations[0].offset_ticks, 126'000);
  EXPECT_EQ(m.pts_calibrations[0].matches, m.pts_calibrations[0].frames);
  // offset - k x 3750 ticks also matches every frame for k x 41.7 ms < 200 ms latency (k = 1..4):
  // the tie goes to the largest offset, the exact one.
  EXPECT_EQ(m.pts_calibrations[0].tied_offsets, 4u);
  EXPECT_EQ(summarize(m.e2e_latency_us)->p50_ms, 200.0);
  EXPECT_EQ(m.frames_unmatched, 0u);
}

TEST(ReportsMetrics, counts_expected_frames_after_the_runner_fps_cap_when_input_is_faster) {
  Stream s;
  s.fps = 30;
  s.returned = [](int i) { return i % 5 != 1; };  // the runner's 24 fps cap drops 1 in 5
  const Timeline t = session(s);
  const SessionMetrics m = compute_metrics(t);

  // Due in [2.7 s, 19.5 s) and kept by the cap.
  std::uint64_t due_in_range = 0;
  std::uint64_t kept_in_range = 0;
  for (int i = 0; i < 600; ++i) {
    const Micros due = due_of(s, i);
    if (due < 2'700'000 || due >= 19'500'000) continue;
    ++due_in_range;
    if (i % 5 != 1) ++kept_in_range;
  }
  EXPECT_EQ(*m.frames_expected, kept_in_range);
  EXPECT_NEAR(static_cast<double>(*m.frames_expected), 0.8 * static_cast<double>(due_in_range), 1);
  EXPECT_EQ(*m.frames_dropped, 0u);
  EXPECT_NEAR(*m.output_fps, 24.0, 0.1);
  EXPECT_EQ(summarize(m.e2e_latency_us)->p50_ms, 200.0);
}

TEST(ReportsMetrics, reports_one_freeze_for_a_one_second_gap) {
  Stream s;
  s.returned = [](int i) { return i < 230 || i > 252; };  // frames 229 -> 253: 24 intervals
  const SessionMetrics m = compute_metrics(session(s));
  ASSERT_TRUE(m.freeze_count);
  EXPECT_EQ(*m.freeze_count, 1u);
  EXPECT_NEAR(*m.freeze_ms, 1000.0, 0.002);
  EXPECT_EQ(*m.frames_dropped, 23u);
  EXPECT_GT(*m.jitter_fps_cv, 0.1);
  EXPECT_GT(*m.frame_interval_cv, 1.0);
}

TEST(ReportsMetrics, marks_the_gateway_overloaded_when_it_sends_late) {
  Timeline t = session({});
  for (std::size_t i = 0; i < t.input_frames.size(); i += 20) t.input_frames[i].sent += 50'000;
  t.input_frames.push_back({.pts = 99'000'000, .due = 19'000'000, .sent = k_never, .epoch = 0});
  const SessionMetrics m = compute_metrics(t);
  EXPECT_EQ(m.frames_late, 24u);
  EXPECT_EQ(m.frames_sent, 480u);
  EXPECT_EQ(m.frames_unsent, 1u);
  EXPECT_DOUBLE_EQ(*m.late_fraction, 0.05);
  EXPECT_TRUE(m.gateway_overloaded);
  EXPECT_EQ(summarize(m.send_lag_us)->max_ms, 51.0);

  const SessionMetrics ok = compute_metrics(session({}));
  EXPECT_FALSE(ok.gateway_overloaded);
}

TEST(ReportsMetrics, starts_up_at_the_first_real_frame_not_the_loading_overlay) {
  Timeline t = session({});
  for (auto& f : t.output_frames) {
    if (f.received < 2'000'000) f.kind = FrameKind::loading;
  }
  t.output_segments.push_back({.seq = 0,
                               .requested = 60'000,
                               .first_byte = 650'000,
                               .last_byte = 1'650'000,
                               .bytes = 1000});
  const SessionMetrics m = compute_metrics(t);
  EXPECT_EQ(*m.first_frame_any_ms, 700.0);
  EXPECT_EQ(*m.first_output_byte_ms, 650.0);
  // Real frames start at the first frame received at or after 2 s: frame 32, due 1.8333 s.
  ASSERT_TRUE(m.startup_ms);
  EXPECT_NEAR(*m.startup_ms, 2033.333, 0.001);
  EXPECT_EQ(m.frames_loading, 32u);
  EXPECT_EQ(m.frames_real, 448u);
  EXPECT_EQ(*m.window_start_us, std::llround(*m.startup_ms * 1000) + 2'000'000);
  // Loading frames carry input PTS: matched, in e2e_latency_all but not the window's e2e.
  EXPECT_EQ(m.frames_unmatched, 0u);
  EXPECT_EQ(m.e2e_latency_all_us.count(), 480u);
  EXPECT_LT(m.e2e_latency_us.count(), 448u);
}

TEST(ReportsMetrics, measures_prompt_switches_from_write_to_effect) {
  Timeline t = session({});
  t.prompts.push_back({.index = 0, .written = 0, .effect_received = 700'000});
  t.prompts.push_back({.index = 1, .written = 5'000'000, .effect_received = 5'350'000});
  t.prompts.push_back({.index = 2, .written = 8'000'000, .effect_received = k_never});
  const SessionMetrics m = compute_metrics(t);
  EXPECT_EQ(m.prompt_to_first_frame_ms, (std::vector<double>{700.0, 350.0}));
  EXPECT_EQ(m.prompt_switches_without_effect, 1u);
  const auto s = summarize(m.prompt_to_first_frame_us);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->count, 2u);
  EXPECT_EQ(s->min_ms, 350.0);
  EXPECT_EQ(s->max_ms, 700.0);
  EXPECT_EQ(to_json(m)["prompt_to_first_frame_ms"]["samples"], nlohmann::json({700.0, 350.0}));
}

TEST(ReportsMetrics, calibrates_each_epoch_of_a_swap_separately) {
  Stream first;
  first.seconds = 10;
  Stream second;
  second.epoch = 1;
  second.first_due_us = 11'000'000;
  second.seconds = 10;
  second.latency_us = 300'000;
  second.pts_offset = 126'000;
  Timeline t = session(first);
  t.epochs.push_back(
      {.orchestrator = "o2:8935", .start_request_sent = 10'600'000, .start_response = 10'700'000});
  t.swaps.push_back({.at = 10'500'000, .trigger = "output_timeout", .epoch = 0});
  add_stream(t, second);
  t.input_stopped = 21'000'000;
  const SessionMetrics m = compute_metrics(t);

  ASSERT_EQ(m.pts_calibrations.size(), 2u);
  EXPECT_EQ(m.pts_calibrations[0].epoch, 0);
  EXPECT_EQ(m.pts_calibrations[0].offset_ms, 0.0);
  EXPECT_EQ(m.pts_calibrations[1].epoch, 1);
  EXPECT_EQ(m.pts_calibrations[1].offset_ms, 1400.0);
  EXPECT_EQ(*m.pts_offset_ms, 0.0);
  EXPECT_EQ(m.frames_unmatched, 0u);
  EXPECT_EQ(m.e2e_latency_all_us.min(), 200'000);
  EXPECT_EQ(m.e2e_latency_all_us.max(), 300'000);
  EXPECT_EQ(m.swaps, 1u);
  EXPECT_EQ(m.epochs, 2u);
}

TEST(ReportsMetrics, reports_nulls_without_crashing_when_the_start_failed) {
  Timeline t;
  t.epochs.push_back({.orchestrator = "o1:8935",
                      .start_request_sent = 0,
                      .start_response = 30'000,
                      .start_status = 503});
  t.ended = 40'000;
  for (const Timeline& timeline : {t, Timeline{}}) {
    const SessionMetrics m = compute_metrics(timeline);
    EXPECT_FALSE(m.startup_ms);
    EXPECT_FALSE(m.first_frame_any_ms);
    EXPECT_FALSE(m.pts_offset_ms);
    EXPECT_FALSE(m.output_fps);
    EXPECT_FALSE(m.jitter_fps_cv);
    EXPECT_FALSE(m.frames_expected);
    EXPECT_FALSE(m.up_mbps);
    EXPECT_FALSE(m.late_fraction);
    EXPECT_FALSE(summarize(m.e2e_latency_us));
    EXPECT_FALSE(m.unmeasured_reason.empty());
    const nlohmann::json j = to_json(m);
    EXPECT_TRUE(j["startup_ms"].is_null());
    EXPECT_TRUE(j["e2e_latency_ms"].is_null());
    EXPECT_TRUE(j["output_fps"].is_null());
    EXPECT_EQ(j["unmeasured_reason"], "no real output frame");
    SlaTargets targets;
    targets.min_output_fps = 24;
    targets.max_startup_ms = 5000;
    EXPECT_TRUE(evaluate_sla(m, targets).empty());
    EXPECT_EQ(sla_unmeasured(m, targets),
              (std::vector<std::string>{"jitter_fps_cv", "output_fps", "e2e_latency_p95_ms",
                                        "startup_ms"}));
  }
  EXPECT_EQ(*compute_metrics(t).job_accept_ms, 30.0);
}

TEST(ReportsMetrics, explains_a_session_too_short_for_a_measurement_window) {
  Stream s;
  s.seconds = 2;
  const SessionMetrics m = compute_metrics(session(s));
  EXPECT_TRUE(m.startup_ms);
  EXPECT_FALSE(m.measurement_window_ms);
  EXPECT_FALSE(m.output_fps);
  EXPECT_NE(m.unmeasured_reason.find("warm-up"), std::string::npos);
  EXPECT_EQ(summarize(m.e2e_latency_all_us)->p50_ms, 200.0);
}

TEST(ReportsMetrics, divides_bytes_by_the_union_of_overlapping_transfer_intervals) {
  Timeline t;
  t.input_segments.push_back(
      {.seq = 0, .first_byte = 1'000'000, .last_byte = 2'000'000, .bytes = 400'000});
  t.input_segments.push_back(
      {.seq = 1, .first_byte = 1'500'000, .last_byte = 2'500'000, .bytes = 400'000});
  t.input_segments.push_back(
      {.seq = 2, .first_byte = 3'000'000, .last_byte = 3'500'000, .bytes = 200'000});
  t.input_segments.push_back({.seq = 3, .first_byte = 4'000'000, .last_byte = k_never, .bytes = 0});
  const SessionMetrics m = compute_metrics(t);
  EXPECT_EQ(m.up_bytes, 1'000'000u);
  ASSERT_TRUE(m.up_mbps);
  EXPECT_DOUBLE_EQ(*m.up_mbps, 4.0);  // 8 Mbit over 1.5 s + 0.5 s
  EXPECT_EQ(m.down_bytes, 0u);
  EXPECT_FALSE(m.down_mbps);
}

TEST(ReportsMetrics, averages_the_runner_fps_over_the_window_and_lists_its_states) {
  Timeline t = session({});
  auto status = [](Micros at, const char* state, double fps) {
    return EventRecord{
        .received = at,
        .type = "status",
        .body = {{"type", "status"}, {"state", state}, {"inference_status", {{"fps", fps}}}}};
  };
  t.events.push_back(status(300'000, "LOADING", 0));
  t.events.push_back(status(5'000'000, "ONLINE", 23));
  t.events.push_back(status(10'000'000, "ONLINE", 24));
  t.events.push_back({.received = 11'000'000, .type = "", .body = nullptr});
  const SessionMetrics m = compute_metrics(t);
  ASSERT_TRUE(m.runner_output_fps_mean);
  EXPECT_DOUBLE_EQ(*m.runner_output_fps_mean, 23.5);
  EXPECT_EQ(m.runner_states, (std::vector<std::string>{"LOADING", "ONLINE"}));
}

TEST(ReportsMetrics, lists_sla_breaches_and_never_breaches_on_missing_data) {
  SessionMetrics m;
  m.jitter_fps_cv = 0.25;
  m.output_fps = 20;
  m.e2e_latency_us.record(3'500'000);
  m.startup_ms = 9000;
  SlaTargets targets;
  targets.min_output_fps = 24;
  targets.max_startup_ms = 6000;
  const auto breaches = evaluate_sla(m, targets);
  ASSERT_EQ(breaches.size(), 4u);
  EXPECT_EQ(breaches[0].metric, "jitter_fps_cv");
  EXPECT_EQ(breaches[0].value, 0.25);
  EXPECT_EQ(breaches[0].target, 0.1);
  EXPECT_EQ(breaches[1].metric, "output_fps");
  EXPECT_EQ(breaches[2].metric, "e2e_latency_p95_ms");
  EXPECT_EQ(breaches[2].value, 3500.0);
  EXPECT_EQ(breaches[3].metric, "startup_ms");
  EXPECT_FALSE(breaches[3].message.empty());
  EXPECT_TRUE(sla_unmeasured(m, targets).empty());

  // At the bound passes; an unset target is not checked.
  SessionMetrics at_bound;
  at_bound.jitter_fps_cv = 0.1;
  at_bound.output_fps = 24;
  at_bound.e2e_latency_us.record(3'000'000);
  at_bound.startup_ms = 6000;
  EXPECT_TRUE(evaluate_sla(at_bound, targets).empty());
  EXPECT_TRUE(evaluate_sla(m, SlaTargets{.max_jitter_fps_cv = 1, .max_e2e_p95_ms = 4000}).empty());

  // Steady metrics null: only what has data can breach.
  SessionMetrics partial;
  partial.startup_ms = 9000;
  const auto only = evaluate_sla(partial, targets);
  ASSERT_EQ(only.size(), 1u);
  EXPECT_EQ(only[0].metric, "startup_ms");
}

TEST(ReportsMetrics, dumps_the_timeline_as_self_describing_json) {
  Timeline t = session({});
  t.output_frames[0].kind = FrameKind::loading;
  t.events.push_back({.received = 1, .type = "status", .body = {{"state", "ONLINE"}}});
  const nlohmann::json j = to_json(t);
  EXPECT_EQ(j["input_frames"]["columns"], nlohmann::json({"pts", "due", "sent", "epoch"}));
  ASSERT_EQ(j["input_frames"]["rows"].size(), 480u);
  EXPECT_EQ(j["input_frames"]["rows"][1], nlohmann::json({3750, 541'667, 542'667, 0}));
  EXPECT_EQ(j["output_frames"]["columns"][3], "kind");
  EXPECT_EQ(j["output_frames"]["rows"][0][3], "loading");
  EXPECT_EQ(j["output_frames"]["rows"][1][3], "real");
  EXPECT_EQ(j["events"][0]["body"]["state"], "ONLINE");
  EXPECT_EQ(j["epochs"][0]["start_response"], 50'000);
  EXPECT_EQ(j["loopback_frames"]["rows"].size(), 0u);
  EXPECT_EQ(to_string(FrameKind::undecodable), "undecodable");

  const nlohmann::json mj = to_json(compute_metrics(t));
  EXPECT_EQ(mj["e2e_latency_ms"]["p95"], 200.0);
  EXPECT_EQ(mj["frames_returned"].get<std::uint64_t>() + mj["frames_dropped"].get<std::uint64_t>(),
            mj["frames_expected"].get<std::uint64_t>());
  EXPECT_EQ(mj["pts_calibrations"][0]["offset_ticks"], 0);
}

}  // namespace
}  // namespace naap::reports
