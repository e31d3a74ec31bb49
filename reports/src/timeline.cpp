// The session timeline as JSON (what --timeline writes): self-describing, frames as compact rows
// so a long session stays small, everything else as objects.
#include "naap/reports/timeline.hpp"

namespace naap::reports {
namespace {

using nlohmann::json;

// {"columns": [...], "rows": [[...], ...]}: the frame lists, one row per frame.
template <class Frame, class Row>
json table(std::vector<std::string> columns, const std::vector<Frame>& frames, Row row) {
  json rows = json::array();
  for (const auto& f : frames) rows.push_back(row(f));
  return {{"columns", columns}, {"rows", std::move(rows)}};
}

template <class T, class Object>
json objects(const std::vector<T>& items, Object object) {
  json list = json::array();
  for (const auto& item : items) list.push_back(object(item));
  return list;
}

}  // namespace

std::string_view to_string(FrameKind kind) {
  switch (kind) {
    case FrameKind::real:
      return "real";
    case FrameKind::loading:
      return "loading";
    case FrameKind::black:
      return "black";
    case FrameKind::undecodable:
      return "undecodable";
  }
  return "unknown";
}

json to_json(const Timeline& t) {
  json j;
  j["units"] = {{"time",
                 "microseconds of steady_clock since t0 (the first start request); -1 = "
                 "did not happen"},
                {"pts", "90 kHz ticks, unwrapped"}};
  j["input_fps"] = t.input_fps;
  j["runner_fps_cap"] = t.runner_fps_cap;
  j["input_started"] = t.input_started;
  j["input_stopped"] = t.input_stopped;
  j["ended"] = t.ended;
  j["epochs"] = objects(t.epochs, [](const Epoch& e) {
    return json{{"orchestrator", e.orchestrator},
                {"url", e.url},
                {"start_request_sent", e.start_request_sent},
                {"start_response", e.start_response},
                {"start_status", e.start_status},
                {"manifest_id", e.manifest_id}};
  });
  j["calls"] = objects(t.calls, [](const RpcCall& c) {
    return json{{"what", c.what},         {"target", c.target}, {"started", c.started},
                {"finished", c.finished}, {"status", c.status}, {"error", c.error}};
  });
  j["input_segments"] = objects(t.input_segments, [](const InputSegment& s) {
    return json{{"seq", s.seq},
                {"opened", s.opened},
                {"first_byte", s.first_byte},
                {"last_byte", s.last_byte},
                {"completed", s.completed},
                {"bytes", s.bytes},
                {"status", s.status},
                {"epoch", s.epoch}};
  });
  j["input_frames"] =
      table({"pts", "due", "sent", "epoch"}, t.input_frames, [](const InputFrame& f) {
        return json::array({f.pts, f.due, f.sent, f.epoch});
      });
  j["output_segments"] = objects(t.output_segments, [](const OutputSegment& s) {
    return json{{"seq", s.seq},
                {"requested", s.requested},
                {"first_byte", s.first_byte},
                {"last_byte", s.last_byte},
                {"bytes", s.bytes},
                {"epoch", s.epoch}};
  });
  j["output_frames"] = table(
      {"pts", "received", "decoded", "kind", "epoch"}, t.output_frames, [](const OutputFrame& f) {
        return json::array({f.pts, f.received, f.decoded, to_string(f.kind), f.epoch});
      });
  j["loopback_frames"] =
      table({"pts", "received", "epoch"}, t.loopback_frames, [](const LoopbackFrame& f) {
        return json::array({f.pts, f.received, f.epoch});
      });
  j["control"] = objects(t.control, [](const ControlMessage& c) {
    return json{{"written", c.written},
                {"sha256", c.sha256},
                {"keepalive", c.keepalive},
                {"status", c.status}};
  });
  j["prompts"] = objects(t.prompts, [](const PromptSwitch& p) {
    return json{{"index", p.index},
                {"prompt", p.prompt},
                {"params_hash", p.params_hash},
                {"written", p.written},
                {"effect_received", p.effect_received},
                {"effect_pts", p.effect_pts},
                {"detection", p.detection},
                {"epoch", p.epoch}};
  });
  j["events"] = objects(t.events, [](const EventRecord& e) {
    return json{{"received", e.received},
                {"type", e.type},
                {"family", e.family},
                {"epoch", e.epoch},
                {"body", e.body}};
  });
  j["swaps"] = objects(t.swaps, [](const SwapRecord& s) {
    return json{{"at", s.at},
                {"trigger", s.trigger},
                {"cause", s.cause},
                {"from_orchestrator", s.from_orchestrator},
                {"to_orchestrator", s.to_orchestrator},
                {"epoch", s.epoch}};
  });
  return j;
}

}  // namespace naap::reports
