// Signals and run records to envelopes (see session_events.hpp).
#include "naap/workloads/session_events.hpp"

#include "naap/core/clock.hpp"

namespace naap::workloads {

using json = nlohmann::json;
using Kind = SessionSignal::Kind;

std::string pipeline_id_for(std::string_view scenario) {
  return "syn-" + std::string(scenario);
}

reports::EventTags event_tags(const RunContext& context, const SessionConfig& config) {
  reports::EventTags t;
  t.test_run_id = context.test_run_id;
  t.client_source = context.client_source;
  t.scenario = context.scenario;
  t.dataset_id = context.dataset_id;
  t.dataset_version = context.dataset_version;
  t.dataset_sha256 = context.dataset_sha256;
  t.gateway_id = context.gateway_id;
  t.region = context.region;
  t.pipeline = config.model_id;
  t.model_id = config.model_id;
  t.pipeline_id = pipeline_id_for(context.scenario);
  if (!config.orchestrators.empty())
    t.target_orchestrator_url = "https://" + config.orchestrators[0];
  return t;
}

SessionEvents::SessionEvents(reports::EventTags tags, const SessionConfig& config, Publish publish)
    : tags_(std::move(tags)),
      keys_{config.stream_id, config.request_id, tags_.pipeline_id},
      publish_(std::move(publish)) {}

void SessionEvents::emit(reports::Envelope&& envelope) {
  ++published_;
  publish_(std::move(envelope));
}

void SessionEvents::on_signal(const SessionSignal& s) {
  namespace trace = reports::trace;
  const reports::OrchestratorRef orchestrator{s.orchestrator_address, s.orchestrator_url};
  reports::EventTags tags = tags_;
  if (!s.target.empty()) tags.target_orchestrator_url = "https://" + s.target;
  switch (s.kind) {
    case Kind::stream_request:
      return emit(reports::stream_trace(tags, keys_, trace::receive_stream_request, {}, s.wall_ms,
                                        s.elapsed_ms));
    case Kind::start_failed:
      return emit(reports::gateway_error(
          tags, keys_, orchestrator, "live-video-to-video start failed: " + s.message, s.wall_ms));
    case Kind::no_orchestrators:
      // Excused: neither event names an orchestrator (EVENTS.md §5.2).
      emit(reports::stream_trace(tags, keys_, trace::no_orchestrators_available, {}, s.wall_ms,
                                 s.elapsed_ms, s.message));
      return emit(reports::gateway_error(tags, keys_, std::nullopt,
                                         "no orchestrators available: " + s.message, s.wall_ms));
    case Kind::params_update:
      return emit(reports::params_update(tags, keys_, orchestrator, s.body, s.wall_ms));
    case Kind::first_ingest_segment:
      return emit(reports::stream_trace(tags, keys_, trace::send_first_ingest_segment, orchestrator,
                                        s.wall_ms, s.elapsed_ms));
    case Kind::first_processed_segment:
      return emit(reports::stream_trace(tags, keys_, trace::receive_first_processed_segment,
                                        orchestrator, s.wall_ms, s.elapsed_ms));
    case Kind::few_processed_segments:
      return emit(reports::stream_trace(tags, keys_, trace::receive_few_processed_segments,
                                        orchestrator, s.wall_ms, s.elapsed_ms));
    case Kind::runner_event: {
      json body = s.body;
      // go-livepeer refills last_params / last_restart_logs from the previous status: the
      // runner sends them only once after a change (PROTOCOL.md §4.3).
      json* event = body.contains("event") ? &body["event"] : &body;
      if (event->is_object() && event->value("type", json()) == "status") {
        if (last_status_.is_object() && (*event)["inference_status"].is_object()) {
          auto& now = (*event)["inference_status"];
          const auto& before = last_status_["inference_status"];
          for (const char* key : {"last_params", "last_restart_logs"})
            if ((!now.contains(key) || now[key].is_null()) && before.is_object() &&
                before.contains(key))
              now[key] = before[key];
        }
        last_status_ = *event;
      }
      if (auto e = reports::forwarded_runner_event(tags, keys_, orchestrator, body, s.wall_ms))
        emit(std::move(*e));
      return;
    }
    case Kind::gateway_error:
      return emit(reports::gateway_error(tags, keys_, orchestrator, s.message, s.wall_ms));
    case Kind::swap:
      return emit(reports::orchestrator_swap(tags, keys_, orchestrator, s.message, s.wall_ms,
                                             s.elapsed_ms));
    case Kind::ingest_closed:
      return emit(reports::stream_trace(tags, keys_, trace::ingest_stream_closed, orchestrator,
                                        s.wall_ms, s.elapsed_ms, s.message));
  }
}

void SessionEvents::on_result(const json& run_record) {
  emit(reports::session_result(tags_, run_record, unix_millis_now()));
}

}  // namespace naap::workloads
