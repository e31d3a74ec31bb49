// Ground truth records and their JSON form (docs/emulator.md describes every field).
#include "naap/emulator/ground_truth.hpp"

#include <chrono>

namespace naap::emulator {

std::int64_t wall_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t steady_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void StreamTruth::add_frame(const FrameTruth& frame) {
  if (frames.size() >= k_max_truth_frames) {
    frames.pop_front();
    ++frames_forgotten;
  }
  frames.push_back(frame);
}

void StreamTruth::add_fault(std::string kind, std::string detail) {
  fault_log.push_back(FaultTruth{std::move(kind), steady_us(), std::move(detail)});
}

nlohmann::json StreamTruth::to_json(bool with_frames) {
  using json = nlohmann::json;
  std::lock_guard lock(mutex);
  auto opt = [](const std::optional<std::int64_t>& v) { return v ? json(*v) : json(nullptr); };
  json out{{"manifest_id", manifest_id},
           {"stream_id", stream_id},
           {"request_id", request_id},
           {"model_id", model_id},
           {"passthrough", passthrough},
           {"faults", faults},
           {"clock", "steady"},
           {"wall_minus_steady_us", wall_minus_steady_us},
           {"started_us", started_us},
           {"first_input_us", opt(first_input_us)},
           {"first_output_us", opt(first_output_us)},
           {"ended_us", opt(ended_us)},
           {"end_reason", end_reason}};
  out["counts"] =
      json{{"input_segments", input_segments},     {"input_bytes", input_bytes},
           {"input_frames", input_frames},         {"frames_capped", frames_capped},
           {"frames_fps_fault", frames_fps_fault}, {"frames_dropped_nth", frames_dropped_nth},
           {"frames_stalled", frames_stalled},     {"frames_undecodable", frames_undecodable},
           {"output_frames", output_frames},       {"loading_frames", loading_frames},
           {"output_segments", output_segments},   {"output_bytes", output_bytes},
           {"control_messages", control_messages}, {"keepalives", keepalives},
           {"bad_control", bad_control},           {"events_sent", events_sent},
           {"frames_forgotten", frames_forgotten}};
  json loads = json::array();
  for (const auto& l : loading) {
    loads.push_back({{"reason", l.reason},
                     {"start_us", l.start_us},
                     {"end_us", l.end_us ? json(l.end_us) : json(nullptr)}});
  }
  out["loading"] = std::move(loads);
  json prompt_list = json::array();
  for (const auto& p : prompts) {
    prompt_list.push_back({{"params_hash", p.params_hash},
                           {"prompt", p.prompt},
                           {"reload", p.reload},
                           {"received_us", p.received_us},
                           {"effective_pts", opt(p.effective_pts)},
                           {"effective_us", opt(p.effective_us)}});
  }
  out["prompts"] = std::move(prompt_list);
  json fault_list = json::array();
  for (const auto& f : fault_log) {
    fault_list.push_back({{"kind", f.kind}, {"at_us", f.at_us}, {"detail", f.detail}});
  }
  out["fault_log"] = std::move(fault_list);
  if (with_frames) {
    // Compact rows: [pts_in, pts_out, arrived_us, emitted_us, injected_ms, loading].
    json rows = json::array();
    for (const auto& f : frames) {
      rows.push_back(
          json::array({f.pts_in, f.pts_out, f.arrived_us, f.emitted_us, f.injected_ms, f.loading}));
    }
    out["frame_columns"] =
        json::array({"pts_in", "pts_out", "arrived_us", "emitted_us", "injected_ms", "loading"});
    out["frames"] = std::move(rows);
  }
  return out;
}

}  // namespace naap::emulator
