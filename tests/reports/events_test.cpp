// Event builders: go-livepeer's shapes (EVENTS.md §2), our tags on everything (§5.3), the runner's
// own keys untouched when forwarding (PROTOCOL.md §4.3), and the message keys of §5.5.
#include "naap/reports/events.hpp"

#include <gtest/gtest.h>

namespace naap::reports {
namespace {

using json = nlohmann::json;

EventTags tags() {
  EventTags t;
  t.test_run_id = "run-1";
  t.scenario = "sd-smoke";
  t.dataset_id = "naap-default";
  t.dataset_version = "1.0.0";
  t.gateway_id = "naap-lt-fra-1";
  t.region = "FRA";
  t.pipeline = "streamdiffusion";
  t.model_id = "streamdiffusion";
  t.pipeline_id = "syn-sd-smoke";
  t.target_orchestrator_url = "https://orch.example:8935";
  return t;
}

const SessionKeys keys{"syn-2c91b4", "r-5d1e0c7a", "syn-sd-smoke"};
const OrchestratorRef orch{"0x3b2a", "https://orch.example:8935"};

TEST(Events, stream_trace_carries_context_tags_and_one_timestamp) {
  const Envelope e = stream_trace(tags(), keys, trace::receive_first_processed_segment, orch,
                                  1767830402655, 2655.5);
  EXPECT_EQ(e.type, "stream_trace");
  EXPECT_EQ(e.key, "r-5d1e0c7a");
  EXPECT_EQ(e.gateway, "naap-lt-fra-1");
  EXPECT_EQ(e.timestamp_ms, 1767830402655);
  EXPECT_EQ(e.data["type"], "gateway_receive_first_processed_segment");
  EXPECT_EQ(e.data["timestamp"], 1767830402655);
  EXPECT_EQ(e.data["stream_id"], "syn-2c91b4");
  EXPECT_EQ(e.data["request_id"], "r-5d1e0c7a");
  EXPECT_EQ(e.data["pipeline_id"], "syn-sd-smoke");
  EXPECT_EQ(e.data["orchestrator_info"], (json{{"address", "0x3b2a"}, {"url", orch.url}}));
  EXPECT_EQ(e.data["session_elapsed_ms"], 2655.5);
  EXPECT_EQ(e.data["synthetic"], true);
  EXPECT_EQ(e.data["client_source"], "naap-loadtest");
  EXPECT_EQ(e.data["schema_version"], "naap-loadtest/1");
  EXPECT_EQ(e.data["workflow"], "live-video-to-video");
  EXPECT_EQ(e.data["region"], "FRA");
  EXPECT_TRUE(e.data["dataset_sha256"].is_null());
  EXPECT_FALSE(e.data.contains("message"));
}

TEST(Events, swap_names_the_orchestrator_left_and_has_no_data_timestamp) {
  const Envelope e = orchestrator_swap(tags(), keys, orch, "no output for 30 s", 1767830402000, 40);
  EXPECT_EQ(e.type, "stream_trace");
  EXPECT_EQ(e.data["type"], "orchestrator_swap");
  EXPECT_EQ(e.data["message"], "no output for 30 s");
  EXPECT_EQ(e.data["orchestrator_info"]["url"], orch.url);
  EXPECT_FALSE(e.data.contains("timestamp"));
  EXPECT_EQ(e.timestamp_ms, 1767830402000);
}

TEST(Events, runner_status_is_forwarded_as_ai_stream_status_with_its_own_keys_untouched) {
  const json wrapper = {{"event",
                         {{"type", "status"},
                          {"pipeline", "runner-pipeline"},
                          {"timestamp", 1767830410123},
                          {"state", "ONLINE"}}},
                        {"queue_event_type", "ai_stream_events"}};
  auto e = forwarded_runner_event(tags(), keys, orch, wrapper, 1767830410200);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->type, "ai_stream_status");
  EXPECT_EQ(e->timestamp_ms, 1767830410200) << "stamped when read";
  EXPECT_EQ(e->data["pipeline"], "runner-pipeline") << "never overwritten";
  EXPECT_EQ(e->data["timestamp"], 1767830410123) << "the runner's clock stays";
  EXPECT_EQ(e->data["state"], "ONLINE");
  EXPECT_EQ(e->data["stream_id"], "syn-2c91b4");
  EXPECT_EQ(e->data["orchestrator_info"]["address"], "0x3b2a");
  EXPECT_EQ(e->data["synthetic"], true);
  EXPECT_EQ(e->data["model_id"], "streamdiffusion");
}

TEST(Events, runner_traces_keep_their_family_and_bare_events_default_to_ai_stream_events) {
  auto trace_event = forwarded_runner_event(
      tags(), keys, orch,
      {{"event", {{"type", "runner_send_first_processed_segment"}, {"timestamp", 1}}},
       {"queue_event_type", "stream_trace"}},
      5);
  ASSERT_TRUE(trace_event);
  EXPECT_EQ(trace_event->type, "stream_trace");
  EXPECT_EQ(trace_event->data["type"], "runner_send_first_processed_segment");
  auto bare =
      forwarded_runner_event(tags(), keys, orch, {{"type", "error"}, {"message", "boom"}}, 5);
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->type, "ai_stream_events");
  EXPECT_EQ(bare->data["message"], "boom");
  EXPECT_FALSE(forwarded_runner_event(tags(), keys, orch, json("text"), 5));
  EXPECT_FALSE(forwarded_runner_event(tags(), keys, orch, {{"event", 3}}, 5));
}

TEST(Events, gateway_errors_name_an_orchestrator_only_when_charged) {
  const Envelope excused =
      gateway_error(tags(), keys, std::nullopt, "no orchestrators available: 503", 7);
  EXPECT_EQ(excused.type, "ai_stream_events");
  EXPECT_EQ(excused.data["type"], "error");
  EXPECT_EQ(excused.data["capability"], "live-video-to-video");
  EXPECT_EQ(excused.data["pipeline"], "streamdiffusion");
  EXPECT_FALSE(excused.data.contains("orchestrator_info"));
  const Envelope charged = gateway_error(tags(), keys, orch, "start failed: 500", 7);
  EXPECT_EQ(charged.data["orchestrator_info"]["url"], orch.url);
}

TEST(Events, discovery_results_are_strings_per_element_keyed_by_the_run) {
  EXPECT_FALSE(discovery_results(tags(), {}, 1));
  auto e = discovery_results(tags(), {{"0xaa", "https://a:8935", 42}, {"0xbb", "https://b", 7}}, 1);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->type, "discovery_results");
  EXPECT_EQ(e->key, "run-1");
  ASSERT_EQ(e->data.size(), 2u);
  EXPECT_EQ(e->data[0]["latency_ms"], "42");
  EXPECT_EQ(e->data[1]["address"], "0xbb");
  EXPECT_EQ(e->data[1]["synthetic"], true) << "tags in each element";
}

TEST(Events, session_result_flattens_the_record_and_keeps_excused_sessions_anonymous) {
  const json record = {
      {"stream_id", "syn-2c91b4"},
      {"request_id", "r-5d1e0c7a"},
      {"outcome", "excused_no_capacity"},
      {"message", "orchestrator at capacity"},
      {"orchestrator",
       {{"address", "orch.example:8935"}, {"url", orch.url}, {"eth_address", "0x3b2a"}}},
      {"swaps", json::array({{{"trigger", "no_output"}}})},
      {"sla", {{"pass", false}}},
      {"metrics",
       {{"startup_ms", nullptr},
        {"e2e_latency_ms", {{"count", 0}}},
        {"send_lag_ms", {{"count", 3}, {"p95", 1.5}}},
        {"frames_loading", 4},
        {"runner_states", {"LOADING"}}}}};
  const Envelope e = session_result(tags(), record, 99);
  EXPECT_EQ(e.type, "synthetic_test_result");
  EXPECT_EQ(e.key, "r-5d1e0c7a");
  EXPECT_EQ(e.data["type"], "session_result");
  EXPECT_EQ(e.data["orchestrator_info"], (json{{"address", ""}, {"url", ""}}));
  EXPECT_EQ(e.data["excused"], true);
  EXPECT_EQ(e.data["failure_category"], "excused_no_capacity");
  EXPECT_EQ(e.data["failure_reason"], "orchestrator at capacity");
  EXPECT_TRUE(e.data["e2e_latency_ms"].is_null()) << "no samples is null, not zero";
  EXPECT_EQ(e.data["send_lag_p95_ms"], 1.5);
  EXPECT_EQ(e.data["loading_frames"], 4);
  EXPECT_EQ(e.data["swap_count"], 1);
  EXPECT_EQ(e.data["swap_triggers"], json::array({"no_output"}));
  EXPECT_EQ(e.data["runner_states_seen"], json::array({"LOADING"}));
  EXPECT_EQ(e.data["record"], record);

  json served = record;
  served["outcome"] = "ok";
  const Envelope ok = session_result(tags(), served, 99);
  EXPECT_EQ(ok.data["orchestrator_info"], (json{{"address", "0x3b2a"}, {"url", orch.url}}));
  EXPECT_TRUE(ok.data["failure_category"].is_null());
  EXPECT_EQ(ok.data["excused"], false);
}

}  // namespace
}  // namespace naap::reports
