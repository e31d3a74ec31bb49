// Session metrics from a Timeline: PTS calibration and matching, the measurement window, frame
// accounting, and the per-session SLA check (definitions in docs/METRICS.md).
#include "naap/reports/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <unordered_map>
#include <utility>

namespace naap::reports {
namespace {

constexpr Micros k_us_per_ms = 1000;
constexpr Micros k_us_per_s = 1'000'000;
constexpr double k_ticks_per_ms = 90.0;
constexpr double k_ticks_per_s = 90'000.0;
constexpr std::size_t k_none = std::numeric_limits<std::size_t>::max();

double to_ms(Micros us) {
  return static_cast<double>(us) / 1000.0;
}
double round3(double v) {
  return std::round(v * 1000.0) / 1000.0;
}
std::optional<double> ms_or_null(Micros us) {
  if (us == k_never) return std::nullopt;
  return to_ms(us);
}

// σ/μ with the population σ; nullopt when μ is not positive.
template <class T>
std::optional<double> coefficient_of_variation(const std::vector<T>& values) {
  if (values.empty()) return std::nullopt;
  double sum = 0;
  for (T v : values) sum += static_cast<double>(v);
  const double mean = sum / static_cast<double>(values.size());
  if (mean <= 0) return std::nullopt;
  double squares = 0;
  for (T v : values) squares += (static_cast<double>(v) - mean) * (static_cast<double>(v) - mean);
  return std::sqrt(squares / static_cast<double>(values.size())) / mean;
}

// Length of the union of the [first_byte, last_byte] intervals of the segments that have both.
template <class Segment>
Micros active_time_us(const std::vector<Segment>& segments) {
  std::vector<std::pair<Micros, Micros>> spans;
  for (const auto& s : segments) {
    if (s.first_byte != k_never && s.last_byte != k_never && s.last_byte >= s.first_byte) {
      spans.emplace_back(s.first_byte, s.last_byte);
    }
  }
  std::sort(spans.begin(), spans.end());
  Micros total = 0;
  Micros open = 0;
  Micros close = -1;  // the merged span being built; empty before the first
  for (const auto& [from, to] : spans) {
    if (close < 0 || from > close) {
      if (close >= 0) total += close - open;
      open = from;
      close = to;
    } else {
      close = std::max(close, to);
    }
  }
  if (close >= 0) total += close - open;
  return total;
}

template <class Segment>
std::optional<double> mbps(const std::vector<Segment>& segments, std::uint64_t bytes) {
  const Micros active = active_time_us(segments);
  if (active <= 0) return std::nullopt;
  return static_cast<double>(bytes) * 8.0 / static_cast<double>(active);  // bits/µs = Mbit/s
}

// The input frames of one epoch that were sent, as (sent, pts), sorted by send time.
using SentInputs = std::vector<std::pair<Micros, std::int64_t>>;

// Candidate offsets and their scores for one epoch (see PtsCalibration). `outputs` are the
// epoch's output frames sorted by receipt.
std::optional<PtsCalibration> calibrate(int epoch, const std::vector<const OutputFrame*>& outputs,
                                        const SentInputs& inputs, const MetricsOptions& options) {
  if (outputs.empty() || inputs.empty()) return std::nullopt;
  const Micros window_end = outputs.front()->received + options.calibration_window_ms * k_us_per_ms;
  const Micros lookback = options.calibration_lookback_ms * k_us_per_ms;
  std::unordered_map<std::int64_t, std::uint64_t> score;  // offset -> output frames it matches
  std::vector<std::int64_t> offsets;                      // of one output frame, deduplicated
  std::uint64_t frames = 0;
  for (const OutputFrame* out : outputs) {
    if (out->received > window_end) break;
    ++frames;
    auto from = std::lower_bound(inputs.begin(), inputs.end(),
                                 std::pair{out->received - lookback, std::int64_t{0}},
                                 [](const auto& a, const auto& b) { return a.first < b.first; });
    offsets.clear();
    for (auto it = from; it != inputs.end() && it->first <= out->received; ++it) {
      offsets.push_back(out->pts - it->second);
    }
    std::sort(offsets.begin(), offsets.end());
    offsets.erase(std::unique(offsets.begin(), offsets.end()), offsets.end());
    for (std::int64_t d : offsets) ++score[d];
  }
  if (score.empty()) return std::nullopt;
  std::int64_t best = 0;
  std::uint64_t best_score = 0;
  for (const auto& [d, n] : score) {
    if (n > best_score || (n == best_score && d > best)) {
      best = d;
      best_score = n;
    }
  }
  std::uint64_t tied = 0;
  for (const auto& [d, n] : score) tied += (n == best_score && d != best) ? 1 : 0;
  return PtsCalibration{.epoch = epoch,
                        .offset_ticks = best,
                        .offset_ms = static_cast<double>(best) / k_ticks_per_ms,
                        .frames = frames,
                        .matches = best_score,
                        .tied_offsets = tied};
}

// The runner's fps cap over one epoch's input frames (sorted by PTS): which ones it keeps.
std::vector<bool> runner_keeps(const std::vector<const InputFrame*>& frames, double cap_fps) {
  std::vector<bool> keep(frames.size(), true);
  if (cap_fps <= 0) return keep;
  const double interval_s = 1.0 / cap_fps;
  double next_s = -std::numeric_limits<double>::infinity();
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const double pts_s = static_cast<double>(frames[i]->pts) / k_ticks_per_s;
    keep[i] = pts_s >= next_s - 1e-6;
    if (keep[i]) next_s = pts_s > next_s + interval_s ? pts_s + interval_s : next_s + interval_s;
  }
  return keep;
}

nlohmann::json summary_json(const Histogram& histogram_us) {
  const auto s = summarize(histogram_us);
  if (!s) return nullptr;
  return {{"count", s->count}, {"min", s->min_ms}, {"p50", s->p50_ms}, {"p90", s->p90_ms},
          {"p95", s->p95_ms},  {"p99", s->p99_ms}, {"max", s->max_ms}, {"mean", s->mean_ms}};
}

// The summary plus the histogram itself (`buckets_us`: [[upper bound µs, count], …]) for the
// SLA figures that are aggregated across sessions: merged buckets give exact merged
// percentiles, which averaged per-session percentiles do not (METRICS.md).
nlohmann::json mergeable_summary_json(const Histogram& histogram_us) {
  nlohmann::json j = summary_json(histogram_us);
  if (j.is_null()) return j;
  nlohmann::json buckets = nlohmann::json::array();
  for (const auto& [upper_us, count] : histogram_us.buckets()) buckets.push_back({upper_us, count});
  j["buckets_us"] = std::move(buckets);
  return j;
}

template <class T>
nlohmann::json or_null(const std::optional<T>& value) {
  if (!value) return nullptr;
  return *value;
}

std::string format_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

}  // namespace

std::optional<LatencySummary> summarize(const Histogram& h) {
  if (h.count() == 0) return std::nullopt;
  return LatencySummary{.count = h.count(),
                        .min_ms = to_ms(h.min()),
                        .p50_ms = to_ms(h.percentile(50)),
                        .p90_ms = to_ms(h.percentile(90)),
                        .p95_ms = to_ms(h.percentile(95)),
                        .p99_ms = to_ms(h.percentile(99)),
                        .max_ms = to_ms(h.max()),
                        .mean_ms = round3(h.mean() / 1000.0)};
}

SessionMetrics compute_metrics(const Timeline& t, const MetricsOptions& options) {
  SessionMetrics m;
  m.epochs = t.epochs.size();
  m.swaps = t.swaps.size();

  // Startup.
  if (!t.epochs.empty()) m.job_accept_ms = ms_or_null(t.epochs.front().start_response);
  Micros first_byte = k_never;
  for (const auto& s : t.output_segments) {
    if (s.first_byte != k_never && (first_byte == k_never || s.first_byte < first_byte)) {
      first_byte = s.first_byte;
    }
  }
  m.first_output_byte_ms = ms_or_null(first_byte);
  Micros first_any = k_never;
  Micros first_real = k_never;
  for (const auto& f : t.output_frames) {
    ++m.output_frames_total;
    switch (f.kind) {
      case FrameKind::real:
        ++m.frames_real;
        break;
      case FrameKind::loading:
        ++m.frames_loading;
        break;
      case FrameKind::black:
        ++m.frames_black;
        break;
      case FrameKind::undecodable:
        ++m.frames_undecodable;
        break;
    }
    if (f.received == k_never || f.kind == FrameKind::undecodable) continue;
    if (first_any == k_never || f.received < first_any) first_any = f.received;
    if (f.kind == FrameKind::real && (first_real == k_never || f.received < first_real)) {
      first_real = f.received;
    }
  }
  m.first_frame_any_ms = ms_or_null(first_any);
  m.startup_ms = ms_or_null(first_real);

  // Prompt switches.
  for (const auto& p : t.prompts) {
    if (p.written == k_never || p.effect_received == k_never) {
      ++m.prompt_switches_without_effect;
      continue;
    }
    m.prompt_to_first_frame_ms.push_back(to_ms(p.effect_received - p.written));
    m.prompt_to_first_frame_us.record(p.effect_received - p.written);
  }

  // Input: per-epoch PTS index and send order; send lag.
  std::map<int, std::unordered_map<std::int64_t, std::size_t>> input_by_pts;  // epoch -> pts -> i
  std::map<int, SentInputs> sent_by_epoch;
  const double late_us = options.late_threshold_ms * 1000.0;
  for (std::size_t i = 0; i < t.input_frames.size(); ++i) {
    const InputFrame& f = t.input_frames[i];
    input_by_pts[f.epoch].emplace(f.pts, i);
    if (f.sent == k_never) {
      ++m.frames_unsent;
      continue;
    }
    ++m.frames_sent;
    sent_by_epoch[f.epoch].emplace_back(f.sent, f.pts);
    m.send_lag_us.record(f.sent - f.due);
    if (static_cast<double>(f.sent - f.due) > late_us) ++m.frames_late;
  }
  for (auto& [epoch, sent] : sent_by_epoch) std::sort(sent.begin(), sent.end());
  if (m.frames_sent > 0) {
    m.late_fraction = static_cast<double>(m.frames_late) / static_cast<double>(m.frames_sent);
    m.gateway_overloaded = *m.late_fraction > options.gateway_overload_late_fraction;
  }

  // PTS offset per epoch.
  std::map<int, std::vector<const OutputFrame*>> output_by_epoch;
  for (const auto& f : t.output_frames) {
    if (f.received != k_never) output_by_epoch[f.epoch].push_back(&f);
  }
  std::map<int, std::int64_t> offset_by_epoch;
  for (auto& [epoch, frames] : output_by_epoch) {
    std::stable_sort(frames.begin(), frames.end(),
                     [](const auto* a, const auto* b) { return a->received < b->received; });
    auto it = sent_by_epoch.find(epoch);
    if (it == sent_by_epoch.end()) continue;
    if (auto c = calibrate(epoch, frames, it->second, options)) {
      offset_by_epoch[epoch] = c->offset_ticks;
      m.pts_calibrations.push_back(*c);
    }
  }
  if (!m.pts_calibrations.empty()) m.pts_offset_ms = m.pts_calibrations.front().offset_ms;

  // Matching: output frame -> input frame at pts - offset of the same epoch.
  std::vector<std::size_t> match(t.output_frames.size(), k_none);
  std::vector<bool> input_returned(t.input_frames.size(), false);
  for (std::size_t i = 0; i < t.output_frames.size(); ++i) {
    const OutputFrame& f = t.output_frames[i];
    auto offset = offset_by_epoch.find(f.epoch);
    auto index = input_by_pts.find(f.epoch);
    if (f.received != k_never && offset != offset_by_epoch.end() && index != input_by_pts.end()) {
      if (auto in = index->second.find(f.pts - offset->second); in != index->second.end()) {
        match[i] = in->second;
      }
    }
    if (match[i] == k_none) {
      ++m.frames_unmatched;
      continue;
    }
    input_returned[match[i]] = true;
    if (f.kind != FrameKind::undecodable) {
      m.e2e_latency_all_us.record(f.received - t.input_frames[match[i]].due);
    }
  }
  for (const auto& f : t.loopback_frames) {
    auto index = input_by_pts.find(f.epoch);
    if (f.received == k_never || index == input_by_pts.end()) continue;
    if (auto in = index->second.find(f.pts); in != index->second.end()) {
      m.transport_rtt_us.record(f.received - t.input_frames[in->second].due);
    }
  }
  for (const auto& f : t.output_frames) {
    if (f.received != k_never && f.decoded != k_never)
      m.decode_delay_us.record(f.decoded - f.received);
  }

  // Bandwidth.
  for (const auto& s : t.input_segments) m.up_bytes += s.bytes;
  for (const auto& s : t.output_segments) m.down_bytes += s.bytes;
  m.up_mbps = mbps(t.input_segments, m.up_bytes);
  m.down_mbps = mbps(t.output_segments, m.down_bytes);

  // Runner states (whole session).
  for (const auto& e : t.events) {
    if (e.type != "status" || !e.body.is_object()) continue;
    auto state = e.body.find("state");
    if (state == e.body.end() || !state->is_string()) continue;
    const auto s = state->get<std::string>();
    if (std::find(m.runner_states.begin(), m.runner_states.end(), s) == m.runner_states.end()) {
      m.runner_states.push_back(s);
    }
  }

  // Measurement window.
  const Micros end = t.input_stopped != k_never ? t.input_stopped : t.ended;
  if (first_real == k_never) {
    m.unmeasured_reason = "no real output frame";
    return m;
  }
  if (end == k_never) {
    m.unmeasured_reason = "the session has neither an input stop nor an end time";
    return m;
  }
  const Micros start = first_real + options.warmup_after_first_real_ms * k_us_per_ms;
  if (end <= start) {
    m.unmeasured_reason = "no measurement window: input stopped " +
                          format_number(to_ms(start - end)) + " ms before the warm-up ended";
    return m;
  }
  const Micros duration = end - start;
  m.window_start_us = start;
  m.window_end_us = end;
  m.measurement_window_ms = to_ms(duration);
  auto in_window = [&](Micros at) { return at >= start && at < end; };

  // Real frames received in the window: rate, regularity, freezes, latency.
  std::vector<Micros> received;
  for (std::size_t i = 0; i < t.output_frames.size(); ++i) {
    const OutputFrame& f = t.output_frames[i];
    if (f.kind != FrameKind::real || !in_window(f.received)) continue;
    received.push_back(f.received);
    if (match[i] != k_none) m.e2e_latency_us.record(f.received - t.input_frames[match[i]].due);
  }
  std::sort(received.begin(), received.end());
  m.output_fps = static_cast<double>(received.size()) * 1e6 / static_cast<double>(duration);
  m.output_fps_series.assign(static_cast<std::size_t>(duration / k_us_per_s), 0);
  for (Micros at : received) {
    const auto bucket = static_cast<std::size_t>((at - start) / k_us_per_s);
    if (bucket < m.output_fps_series.size()) ++m.output_fps_series[bucket];
  }
  if (m.output_fps_series.size() >= 2)
    m.jitter_fps_cv = coefficient_of_variation(m.output_fps_series);
  std::vector<Micros> intervals;
  for (std::size_t i = 1; i < received.size(); ++i)
    intervals.push_back(received[i] - received[i - 1]);
  if (intervals.size() >= 2) m.frame_interval_cv = coefficient_of_variation(intervals);
  if (!intervals.empty()) {
    double sum = 0;
    for (Micros d : intervals) sum += static_cast<double>(d);
    const double mean = sum / static_cast<double>(intervals.size());
    const double threshold =
        std::max(options.freeze_mean_multiple * mean, mean + options.freeze_min_excess_ms * 1000.0);
    std::uint64_t count = 0;
    Micros frozen = 0;
    for (Micros d : intervals) {
      if (static_cast<double>(d) >= threshold) {
        ++count;
        frozen += d;
      }
    }
    m.freeze_count = count;
    m.freeze_ms = to_ms(frozen);
  }

  // Expected frames: after the runner's cap, due in the window, not still in flight at the end.
  Micros tail = options.expected_tail_min_ms * k_us_per_ms;
  const Histogram& latency = m.e2e_latency_us.count() ? m.e2e_latency_us : m.e2e_latency_all_us;
  if (latency.count()) tail = std::max(tail, latency.percentile(99));
  const Micros cutoff = (t.input_stopped != k_never ? t.input_stopped : end) - tail;
  std::map<int, std::vector<const InputFrame*>> sent_frames;
  for (const auto& f : t.input_frames) {
    if (f.sent != k_never) sent_frames[f.epoch].push_back(&f);
  }
  std::uint64_t expected = 0;
  std::uint64_t dropped = 0;
  for (auto& [epoch, frames] : sent_frames) {
    std::stable_sort(frames.begin(), frames.end(),
                     [](const auto* a, const auto* b) { return a->pts < b->pts; });
    const std::vector<bool> keep = runner_keeps(frames, t.runner_fps_cap);
    for (std::size_t i = 0; i < frames.size(); ++i) {
      const InputFrame& f = *frames[i];
      if (!keep[i] || !in_window(f.due) || f.due >= cutoff) continue;
      ++expected;
      if (!input_returned[static_cast<std::size_t>(&f - t.input_frames.data())]) ++dropped;
    }
  }
  m.frames_expected = expected;
  m.frames_dropped = dropped;
  // Returned and dropped split the same set, so expected = returned + dropped always holds.
  m.frames_returned = expected - dropped;

  // The runner's reported fps over the window.
  double fps_sum = 0;
  std::uint64_t fps_count = 0;
  for (const auto& e : t.events) {
    if (e.type != "status" || !in_window(e.received) || !e.body.is_object()) continue;
    auto status = e.body.find("inference_status");
    if (status == e.body.end() || !status->is_object()) continue;
    auto fps = status->find("fps");
    if (fps == status->end() || !fps->is_number()) continue;
    fps_sum += fps->get<double>();
    ++fps_count;
  }
  if (fps_count) m.runner_output_fps_mean = fps_sum / static_cast<double>(fps_count);
  return m;
}

nlohmann::json to_json(const SessionMetrics& m) {
  nlohmann::json j;
  j["job_accept_ms"] = or_null(m.job_accept_ms);
  j["first_output_byte_ms"] = or_null(m.first_output_byte_ms);
  j["first_frame_any_ms"] = or_null(m.first_frame_any_ms);
  j["startup_ms"] = or_null(m.startup_ms);

  nlohmann::json prompt = mergeable_summary_json(m.prompt_to_first_frame_us);
  if (!prompt.is_null()) {
    prompt["samples"] = nlohmann::json::array();
    for (double v : m.prompt_to_first_frame_ms) prompt["samples"].push_back(round3(v));
  }
  j["prompt_to_first_frame_ms"] = prompt;
  j["prompt_switches_without_effect"] = m.prompt_switches_without_effect;

  j["pts_offset_ms"] = or_null(m.pts_offset_ms);
  j["pts_calibrations"] = nlohmann::json::array();
  for (const auto& c : m.pts_calibrations) {
    j["pts_calibrations"].push_back({{"epoch", c.epoch},
                                     {"offset_ticks", c.offset_ticks},
                                     {"offset_ms", round3(c.offset_ms)},
                                     {"frames", c.frames},
                                     {"matches", c.matches},
                                     {"tied_offsets", c.tied_offsets}});
  }
  j["e2e_latency_ms"] = mergeable_summary_json(m.e2e_latency_us);
  j["e2e_latency_all_ms"] = summary_json(m.e2e_latency_all_us);
  j["frames_unmatched"] = m.frames_unmatched;
  j["transport_rtt_ms"] = summary_json(m.transport_rtt_us);
  j["decode_delay_ms"] = summary_json(m.decode_delay_us);

  if (m.window_start_us && m.window_end_us) {
    j["measurement_window"] = {{"start_ms", to_ms(*m.window_start_us)},
                               {"end_ms", to_ms(*m.window_end_us)}};
  } else {
    j["measurement_window"] = nullptr;
  }
  j["measurement_window_ms"] = or_null(m.measurement_window_ms);
  j["unmeasured_reason"] =
      m.unmeasured_reason.empty() ? nlohmann::json(nullptr) : nlohmann::json(m.unmeasured_reason);
  j["output_fps"] = or_null(m.output_fps);
  j["output_fps_series"] = m.output_fps_series;
  j["jitter_fps_cv"] = or_null(m.jitter_fps_cv);
  j["frame_interval_cv"] = or_null(m.frame_interval_cv);
  j["freeze_count"] = or_null(m.freeze_count);
  j["freeze_ms"] = or_null(m.freeze_ms);

  j["send_lag_ms"] = summary_json(m.send_lag_us);
  j["frames_late"] = m.frames_late;
  j["late_fraction"] = or_null(m.late_fraction);
  j["gateway_overloaded"] = m.gateway_overloaded;

  j["up_bytes"] = m.up_bytes;
  j["down_bytes"] = m.down_bytes;
  j["up_mbps"] = or_null(m.up_mbps);
  j["down_mbps"] = or_null(m.down_mbps);

  j["frames_sent"] = m.frames_sent;
  j["frames_unsent"] = m.frames_unsent;
  j["frames_expected"] = or_null(m.frames_expected);
  j["frames_returned"] = or_null(m.frames_returned);
  j["frames_dropped"] = or_null(m.frames_dropped);
  j["frames_real"] = m.frames_real;
  j["frames_loading"] = m.frames_loading;
  j["frames_black"] = m.frames_black;
  j["frames_undecodable"] = m.frames_undecodable;
  j["output_frames_total"] = m.output_frames_total;

  j["runner_output_fps_mean"] = or_null(m.runner_output_fps_mean);
  j["runner_states"] = m.runner_states;
  j["swaps"] = m.swaps;
  j["epochs"] = m.epochs;
  return j;
}

std::vector<SlaBreach> evaluate_sla(const SessionMetrics& m, const SlaTargets& targets) {
  std::vector<SlaBreach> breaches;
  auto breach = [&](std::string metric, double value, double target, const char* relation) {
    std::string message =
        metric + " " + format_number(value) + " " + relation + " target " + format_number(target);
    breaches.push_back({std::move(metric), value, target, std::move(message)});
  };
  if (m.jitter_fps_cv && *m.jitter_fps_cv > targets.max_jitter_fps_cv) {
    breach("jitter_fps_cv", *m.jitter_fps_cv, targets.max_jitter_fps_cv, "above");
  }
  if (targets.min_output_fps && m.output_fps && *m.output_fps < *targets.min_output_fps) {
    breach("output_fps", *m.output_fps, *targets.min_output_fps, "below");
  }
  if (auto e2e = summarize(m.e2e_latency_us); e2e && e2e->p95_ms > targets.max_e2e_p95_ms) {
    breach("e2e_latency_p95_ms", e2e->p95_ms, targets.max_e2e_p95_ms, "above");
  }
  if (targets.max_startup_ms && m.startup_ms && *m.startup_ms > *targets.max_startup_ms) {
    breach("startup_ms", *m.startup_ms, *targets.max_startup_ms, "above");
  }
  return breaches;
}

std::vector<std::string> sla_unmeasured(const SessionMetrics& m, const SlaTargets& targets) {
  std::vector<std::string> names;
  if (!m.jitter_fps_cv) names.emplace_back("jitter_fps_cv");
  if (targets.min_output_fps && !m.output_fps) names.emplace_back("output_fps");
  if (m.e2e_latency_us.count() == 0) names.emplace_back("e2e_latency_p95_ms");
  if (targets.max_startup_ms && !m.startup_ms) names.emplace_back("startup_ms");
  return names;
}

nlohmann::json to_json(const SlaBreach& b) {
  return {{"metric", b.metric}, {"value", b.value}, {"target", b.target}, {"message", b.message}};
}

}  // namespace naap::reports
