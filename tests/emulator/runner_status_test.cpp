// RunnerStatus on a simulated clock: ai-runner's state rules, fps windows, the status schema and
// the params hash, checked against values produced by python3's json/hashlib on this machine.
#include "naap/emulator/runner_status.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace naap::emulator {
namespace {

using std::chrono::milliseconds;
using Json = nlohmann::ordered_json;

constexpr std::int64_t k_wall0_ms = 1767830400123;  // wall clock at the stream start

// Simulated time: ms since the stream start on both clocks.
Now at_ms(std::int64_t ms) {
  const auto base = std::chrono::steady_clock::time_point{} + std::chrono::hours(1000);
  return Now{base + milliseconds(ms), k_wall0_ms + ms};
}
Now at_s(double s) {
  return at_ms(static_cast<std::int64_t>(s * 1000.0));
}

// Frame k of a stream at `fps` frames per second, in ms since the start.
std::int64_t frame_ms(std::int64_t k, int fps) {
  return k * 1000 / fps;
}

struct Feed {
  int input_fps = 24;            // input frames per second (after the 24 fps cap)
  int output_every = 1;          // one output per this many inputs; 0: no output
  int loading_every = 0;         // every n-th output is a loading frame; 0: none
  bool outputs_loading = false;  // every output is a loading frame
};

// Feeds frames in [from_s, to_s) in time order: the input, then its output.
void feed(RunnerStatus& status, double from_s, double to_s, Feed f = {}) {
  const auto from = static_cast<std::int64_t>(from_s * f.input_fps);
  const auto to = static_cast<std::int64_t>(to_s * f.input_fps);
  std::int64_t outputs = 0;
  for (std::int64_t k = from; k < to; ++k) {
    const Now now = at_ms(frame_ms(k, f.input_fps));
    status.input_frame(now);
    if (f.output_every > 0 && k % f.output_every == 0) {
      ++outputs;
      const bool loading =
          f.outputs_loading || (f.loading_every > 0 && outputs % f.loading_every == 0);
      status.output_frame(now, loading);
    }
  }
}

Json params_a() {
  return Json::parse(R"({"prompt":"a cat","seed":42})");
}

RunnerStatus started(RunnerKind kind = RunnerKind::other, RunnerStatusConfig config = {}) {
  RunnerStatus status(kind == RunnerKind::comfyui ? "comfyui" : "streamdiffusion", kind,
                      std::move(config));
  status.stream_started(at_ms(0), params_a());
  return status;
}

TEST(RunnerStatus, reports_online_when_stream_starts) {
  RunnerStatus status = started();
  EXPECT_EQ(status.state(at_ms(0)), RunnerState::online);
  EXPECT_EQ(status.state(at_ms(1500)), RunnerState::online);
  EXPECT_FALSE(status.should_stop(at_ms(1500)));
}

TEST(RunnerStatus, reports_online_with_steady_24fps_input_and_output) {
  RunnerStatus status = started();
  feed(status, 0, 40);
  EXPECT_EQ(status.state(at_s(40)), RunnerState::online);
  EXPECT_FALSE(status.should_stop(at_s(40)));
}

TEST(RunnerStatus, reports_degraded_input_until_first_fps_window_when_window_closes_late) {
  // The stream's input fps starts at 0 and is only measured when the guardian's 10 s fps window
  // closes, so a healthy stream reads DEGRADED_INPUT until then (the real phase is arbitrary).
  RunnerStatus late = started(RunnerKind::other, {.fps_phase = std::chrono::seconds(10)});
  feed(late, 0, 12);
  EXPECT_EQ(late.state(at_s(12)), RunnerState::online);
  RunnerStatus late_probe = started(RunnerKind::other, {.fps_phase = std::chrono::seconds(10)});
  feed(late_probe, 0, 6);
  EXPECT_EQ(late_probe.state(at_s(6)), RunnerState::degraded_input);

  RunnerStatus early = started(RunnerKind::other, {.fps_phase = std::chrono::seconds(1)});
  feed(early, 0, 6);
  EXPECT_EQ(early.state(at_s(6)), RunnerState::online);
}

TEST(RunnerStatus, reports_degraded_input_after_2s_without_input) {
  RunnerStatus status = started();
  feed(status, 0, 20);
  EXPECT_EQ(status.state(at_s(21)), RunnerState::online);
  EXPECT_EQ(status.state(at_s(23)), RunnerState::degraded_input);
  EXPECT_FALSE(status.should_stop(at_s(23)));
}

TEST(RunnerStatus, reports_degraded_input_when_input_fps_below_15) {
  RunnerStatus status = started();
  feed(status, 0, 25, {.input_fps = 12});
  EXPECT_EQ(status.state(at_s(25)), RunnerState::degraded_input);
  const Json event = status.status_event(at_s(25));
  EXPECT_NEAR(event["input_status"]["fps"].get<double>(), 12.0, 0.01);
}

TEST(RunnerStatus, reports_degraded_inference_for_15s_after_an_error) {
  RunnerStatus probe = started();
  feed(probe, 0, 20);
  probe.error(at_s(20), "Error processing output frame: boom");
  feed(probe, 20, 22);
  EXPECT_EQ(probe.state(at_s(22)), RunnerState::degraded_inference);
  feed(probe, 22, 34.5);
  EXPECT_EQ(probe.state(at_s(34.5)), RunnerState::degraded_inference);
  feed(probe, 34.5, 35.5);
  EXPECT_EQ(probe.state(at_s(35.5)), RunnerState::online);
  feed(probe, 35.5, 36);

  // One error event at the guardian's next 1 s poll, `time` = when the error happened.
  const auto events = probe.take_events(at_s(36));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["queue_event_type"], "ai_stream_events");
  EXPECT_EQ(events[0]["event"]["type"], "error");
  EXPECT_EQ(events[0]["event"]["message"], "Error processing output frame: boom");
  EXPECT_DOUBLE_EQ(events[0]["event"]["time"].get<double>(), (k_wall0_ms + 20000) / 1000.0);
  EXPECT_EQ(events[0]["event"]["timestamp"].get<std::int64_t>(), k_wall0_ms + 21000);
  EXPECT_TRUE(probe.take_events(at_s(36)).empty());

  const Json event = probe.status_event(at_s(36));
  EXPECT_EQ(event["inference_status"]["last_error"], "Error processing output frame: boom");
  EXPECT_EQ(event["inference_status"]["last_error_time"].get<std::int64_t>(), k_wall0_ms + 20000);
}

TEST(RunnerStatus, reports_only_the_latest_error_of_one_poll) {
  RunnerStatus status = started();
  status.error(at_ms(1100), "first");
  status.error(at_ms(1200), "second");
  const auto events = status.take_events(at_ms(2000));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["event"]["message"], "second");
}

TEST(RunnerStatus, reports_degraded_inference_for_60s_after_a_restart) {
  RunnerStatus status = started();
  feed(status, 0, 20);
  status.restarted(at_s(20), {"line 1", "line 2"});
  EXPECT_EQ(status.state(at_s(20)), RunnerState::loading);
  EXPECT_EQ(status.restart_count(), 1);
  feed(status, 20, 21, {.outputs_loading = true});
  status.loading_finished(at_s(21));
  feed(status, 21, 25);
  EXPECT_EQ(status.state(at_s(25)), RunnerState::degraded_inference);
  feed(status, 25, 79);
  EXPECT_EQ(status.state(at_s(79)), RunnerState::degraded_inference);
  feed(status, 79, 81);
  EXPECT_EQ(status.state(at_s(81)), RunnerState::online);

  const auto events = status.take_events(at_s(81));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(python_json_dumps(events[0]),
            R"({"event": {"type": "restart", "pipeline": "streamdiffusion", "restart_count": 1, )"
            R"("restart_time": 1767830420.123, "restart_logs": ["line 1", "line 2"], )"
            R"("timestamp": 1767830420123}, "queue_event_type": "ai_stream_events"})");
}

TEST(RunnerStatus, sends_restart_logs_once_and_clears_inference_status_on_restart) {
  RunnerStatus status = started();
  feed(status, 0, 5);
  status.restarted(at_s(5), {"oom"});
  const Json first = status.status_event(at_s(10));
  const Json& inference = first["inference_status"];
  EXPECT_EQ(inference["restart_count"], 1);
  EXPECT_EQ(inference["last_restart_time"].get<std::int64_t>(), k_wall0_ms + 5000);
  EXPECT_EQ(inference["last_restart_logs"], Json::array({"oom"}));
  EXPECT_TRUE(inference["last_params"].is_null());
  EXPECT_TRUE(inference["last_params_hash"].is_null());
  EXPECT_TRUE(inference["last_params_update_time"].is_null());
  EXPECT_TRUE(inference["last_output_time"].is_null());
  const Json second = status.status_event(at_s(20));
  EXPECT_TRUE(second["inference_status"]["last_restart_logs"].is_null());
  EXPECT_EQ(second["inference_status"]["restart_count"], 1);
}

TEST(RunnerStatus, reports_degraded_inference_when_output_fps_below_min_10_and_80pct_input) {
  RunnerStatus status = started();
  feed(status, 0, 25, {.output_every = 3});  // 8 fps out of 24 in
  EXPECT_EQ(status.state(at_s(25)), RunnerState::degraded_inference);
  const Json event = status.status_event(at_s(25));
  EXPECT_NEAR(event["inference_status"]["fps"].get<double>(), 8.0, 0.01);
}

TEST(RunnerStatus, reports_loading_during_reload_and_error_after_180s_of_loading) {
  RunnerStatus status = started(RunnerKind::comfyui);
  feed(status, 0, 20);
  status.params_updated(at_s(20), params_a(), true);
  feed(status, 20, 30, {.outputs_loading = true});
  EXPECT_EQ(status.state(at_s(30)), RunnerState::loading);
  feed(status, 30, 201, {.outputs_loading = true});
  EXPECT_EQ(status.state(at_s(201)), RunnerState::loading);
  EXPECT_FALSE(status.should_stop(at_s(201)));
  feed(status, 201, 204, {.outputs_loading = true});
  EXPECT_EQ(status.state(at_s(204)), RunnerState::error);
  EXPECT_TRUE(status.should_stop(at_s(204)));
}

TEST(RunnerStatus, returns_to_online_when_reload_finishes_and_output_resumes) {
  RunnerStatus status = started();
  feed(status, 0, 20);
  status.params_updated(at_s(20), params_a(), true);
  feed(status, 20, 30, {.outputs_loading = true});
  status.loading_finished(at_s(30));
  feed(status, 30, 45);
  EXPECT_EQ(status.state(at_s(45)), RunnerState::online);
}

TEST(RunnerStatus, restarts_process_instead_of_reporting_error_when_restarts_remain) {
  RunnerStatus status = started(RunnerKind::other, {.restart_logs = {"pipeline hung"}});
  feed(status, 0, 20);
  status.process_dead(at_s(20));
  EXPECT_EQ(status.state(at_s(22)), RunnerState::loading);
  EXPECT_TRUE(status.should_stop(at_s(22)));
  EXPECT_EQ(status.restart_count(), 1);
  const auto events = status.take_events(at_s(22));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["event"]["restart_logs"], Json::array({"pipeline hung"}));
}

TEST(RunnerStatus, reports_error_when_process_dies_after_three_restarts) {
  RunnerStatus status = started();
  for (int i = 0; i < 3; ++i) status.restarted(at_s(1 + i), {});
  status.loading_finished(at_s(4));
  status.process_dead(at_s(10));
  EXPECT_EQ(status.state(at_s(12)), RunnerState::error);
  EXPECT_TRUE(status.should_stop(at_s(12)));
  EXPECT_EQ(status.restart_count(), 3);
}

TEST(RunnerStatus, reports_error_when_output_stalls_over_5s_while_input_flows) {
  RunnerStatus status = started(RunnerKind::comfyui);
  feed(status, 0, 20);
  feed(status, 20, 24, {.output_every = 0});
  EXPECT_EQ(status.state(at_s(24)), RunnerState::degraded_inference);
  EXPECT_FALSE(status.should_stop(at_s(24)));
  feed(status, 24, 27, {.output_every = 0});
  EXPECT_EQ(status.state(at_s(27)), RunnerState::error);
  EXPECT_TRUE(status.should_stop(at_s(27)));
}

TEST(RunnerStatus, stops_when_no_output_12s_after_start_while_input_flows) {
  RunnerStatus status = started();
  feed(status, 0, 11.5, {.output_every = 0});
  EXPECT_EQ(status.state(at_s(11.5)), RunnerState::degraded_inference);
  EXPECT_FALSE(status.should_stop(at_s(11.5)));
  feed(status, 11.5, 12.5, {.output_every = 0});
  EXPECT_TRUE(status.should_stop(at_s(12.5)));  // ERROR: stopped, process restarted
  EXPECT_EQ(status.restart_count(), 1);
}

TEST(RunnerStatus, reports_error_when_comfyui_has_no_output_32s_after_start) {
  RunnerStatus status = started(RunnerKind::comfyui);
  feed(status, 0, 31.5, {.output_every = 0});
  EXPECT_EQ(status.state(at_s(31.5)), RunnerState::degraded_inference);
  feed(status, 31.5, 32.5, {.output_every = 0});
  EXPECT_EQ(status.state(at_s(32.5)), RunnerState::error);
}

TEST(RunnerStatus, stops_when_no_output_12s_after_param_update_while_input_flows) {
  RunnerStatus status = started(RunnerKind::other);
  feed(status, 0, 20);
  status.params_updated(at_s(20), Json::parse(R"({"prompt":"a dog","seed":42})"), false);
  feed(status, 20, 23, {.output_every = 0});
  EXPECT_EQ(status.state(at_s(23)), RunnerState::online);  // 2 s grace
  feed(status, 23, 31.5, {.output_every = 0});
  EXPECT_EQ(status.state(at_s(31.5)), RunnerState::degraded_inference);
  EXPECT_FALSE(status.should_stop(at_s(31.5)));
  feed(status, 31.5, 32.5, {.output_every = 0});
  EXPECT_TRUE(status.should_stop(at_s(32.5)));
}

TEST(RunnerStatus, stops_stream_after_60s_without_input_and_errors_at_90s) {
  RunnerStatus status = started(RunnerKind::comfyui);
  feed(status, 0, 10);
  EXPECT_EQ(status.state(at_s(69)), RunnerState::degraded_input);
  EXPECT_FALSE(status.should_stop(at_s(69)));
  EXPECT_TRUE(status.should_stop(at_s(70.5)));
  EXPECT_EQ(status.state(at_s(70.5)), RunnerState::degraded_input);
  EXPECT_EQ(status.state(at_s(99.5)), RunnerState::degraded_input);
  EXPECT_EQ(status.state(at_s(100.5)), RunnerState::error);
  EXPECT_TRUE(status.should_stop(at_s(100.5)));
}

TEST(RunnerStatus, goes_offline_3s_after_stream_stops) {
  RunnerStatus status = started();
  feed(status, 0, 20);
  status.stream_stopped(at_s(20));
  EXPECT_EQ(status.state(at_s(22)), RunnerState::degraded_input);
  EXPECT_EQ(status.state(at_s(24)), RunnerState::offline);
}

TEST(RunnerStatus, measures_24fps_over_10s_windows) {
  RunnerStatus status = started();
  feed(status, 0, 10);
  const Json first = status.status_event(at_s(10));  // window 0..10 s; first frame opens it
  EXPECT_NEAR(first["input_status"]["fps"].get<double>(), 24.0, 0.15);
  EXPECT_NEAR(first["inference_status"]["fps"].get<double>(), 24.0, 0.15);
  feed(status, 10, 20);
  const Json second = status.status_event(at_s(20));
  EXPECT_DOUBLE_EQ(second["input_status"]["fps"].get<double>(), 24.0);
  EXPECT_DOUBLE_EQ(second["inference_status"]["fps"].get<double>(), 24.0);
}

TEST(RunnerStatus, excludes_loading_frames_from_output_fps_and_last_output_time) {
  RunnerStatus status = started();
  feed(status, 0, 20, {.loading_every = 2});  // every other output is a loading frame
  feed(status, 20, 21, {.outputs_loading = true});
  const Json event = status.status_event(at_s(21));
  EXPECT_DOUBLE_EQ(event["inference_status"]["fps"].get<double>(), 12.0);
  EXPECT_DOUBLE_EQ(event["input_status"]["fps"].get<double>(), 24.0);
  // The last non-loading output is frame 478 (outputs 1, 3, ... are loading frames).
  EXPECT_EQ(event["inference_status"]["last_output_time"].get<std::int64_t>(),
            k_wall0_ms + frame_ms(478, 24));
  EXPECT_EQ(event["input_status"]["last_input_time"].get<std::int64_t>(),
            k_wall0_ms + frame_ms(503, 24));
}

TEST(RunnerStatus, sends_last_params_once_then_null) {
  RunnerStatus status = started();
  feed(status, 0, 10);
  const Json first = status.status_event(at_s(10));
  EXPECT_EQ(first["inference_status"]["last_params"], params_a());
  EXPECT_EQ(first["inference_status"]["last_params_hash"], "0708f583fdf0f72e2aed4602b12ff535");
  EXPECT_EQ(first["inference_status"]["last_params_update_time"].get<std::int64_t>(), k_wall0_ms);
  feed(status, 10, 20);
  const Json second = status.status_event(at_s(20));
  EXPECT_TRUE(second["inference_status"]["last_params"].is_null());
  EXPECT_EQ(second["inference_status"]["last_params_hash"], "0708f583fdf0f72e2aed4602b12ff535");

  const Json dog = Json::parse(R"({"prompt":"a dog","seed":42})");
  feed(status, 20, 25);
  status.params_updated(at_s(25), dog, false);
  feed(status, 25, 30);
  const Json third = status.status_event(at_s(30));
  EXPECT_EQ(third["inference_status"]["last_params"], dog);
  EXPECT_EQ(third["inference_status"]["last_params_hash"], params_hash(dog));
  EXPECT_EQ(third["inference_status"]["last_params_update_time"].get<std::int64_t>(),
            k_wall0_ms + 25000);
  EXPECT_TRUE(status.status_event(at_s(40))["inference_status"]["last_params"].is_null());
}

// Vectors from python3 3.11 on this machine:
//   c = json.loads(text); s = json.dumps(c, sort_keys=True); hashlib.md5(s.encode()).hexdigest()
// exactly as ai-runner's status.py / process.py hash params.
constexpr const char* k_nested_text =
    R"({"prompt":"caf\u00e9 \u2615 \u732b \ud83d\ude00",)"
    R"("negative_prompt":"tab\there \"q\" back\\slash\n\u007f\u0001/","guidance_scale":1.2,)"
    R"("delta":0.7,"t_index_list":[0,8,17],"num_inference_steps":50,"controlnets":[{"model_id":)"
    R"("thibaud/controlnet-sd21-openpose-diffusers","conditioning_scale":0.5,"enabled":true,)"
    R"("preprocessor_params":{}}],"ip_adapter":null,"zz":{"b":1e-05,"a":1e16,"c":-0.0,"d":1e15,)"
    R"("e":0.0001,"f":123456789.125,"g":1.0,"h":2.5e-300,"i":-3e+100,"j":0.1,)"
    R"("k":23.976023976023978,"l":100,"m":1E2,"n":5e-324,"o":1.7976931348623157e308}})";

TEST(RunnerStatus, hashes_params_like_python_json_dumps_sort_keys_md5) {
  EXPECT_EQ(params_hash(nlohmann::json::object()), "99914b932bd37a50b983c5e7c90ae93b");
  EXPECT_EQ(params_hash(Json::parse(R"({"prompt":"a cat","seed":42})")),
            "0708f583fdf0f72e2aed4602b12ff535");
  EXPECT_EQ(params_hash(Json::parse(k_nested_text)), "cc8a1fcec7058be7f877f3f8b3087f51");
  EXPECT_EQ(params_hash(nlohmann::json::parse(k_nested_text)), "cc8a1fcec7058be7f877f3f8b3087f51");
  const char* mixed =
      R"({"b":[1,2.0,"x",null,true,false,[],{}],"a":{"y":1,"x":2},"Z":18446744073709551615,)"
      R"("neg":-9223372036854775808})";
  EXPECT_EQ(params_hash(Json::parse(mixed)), "53e0b1c85c05feaef7e16d2a6f61b6aa");
  EXPECT_EQ(python_json_dumps(Json::parse(mixed), true),
            R"({"Z": 18446744073709551615, "a": {"x": 2, "y": 1}, )"
            R"("b": [1, 2.0, "x", null, true, false, [], {}], "neg": -9223372036854775808})");
}

TEST(RunnerStatus, dumps_json_like_python_json_dumps) {
  EXPECT_EQ(
      python_json_dumps(Json::parse(k_nested_text)),
      R"({"prompt": "caf\u00e9 \u2615 \u732b \ud83d\ude00", "negative_prompt": )"
      R"("tab\there \"q\" back\\slash\n\u007f\u0001/", "guidance_scale": 1.2, "delta": 0.7, )"
      R"("t_index_list": [0, 8, 17], "num_inference_steps": 50, "controlnets": [{"model_id": )"
      R"("thibaud/controlnet-sd21-openpose-diffusers", "conditioning_scale": 0.5, "enabled": )"
      R"(true, "preprocessor_params": {}}], "ip_adapter": null, "zz": {"b": 1e-05, "a": 1e+16, )"
      R"("c": -0.0, "d": 1000000000000000.0, "e": 0.0001, "f": 123456789.125, "g": 1.0, )"
      R"("h": 2.5e-300, "i": -3e+100, "j": 0.1, "k": 23.976023976023978, "l": 100, "m": 100.0, )"
      R"("n": 5e-324, "o": 1.7976931348623157e+308}})");
}

TEST(RunnerStatus, emits_status_with_ai_runner_schema_field_order_and_types) {
  RunnerStatus status = started();
  feed(status, 0, 10);
  const Json event = status.status_event(at_s(10));

  std::vector<std::string> keys;
  for (const auto& [key, value] : event.items()) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{
                      "type", "pipeline", "start_time", "state", "last_state_update_time",
                      "input_status", "inference_status", "last_status_timestamp", "timestamp"}));
  std::vector<std::string> inference_keys;
  for (const auto& [key, value] : event["inference_status"].items()) inference_keys.push_back(key);
  EXPECT_EQ(inference_keys, (std::vector<std::string>{
                                "last_output_time", "fps", "last_params_update_time", "last_params",
                                "last_params_hash", "last_error_time", "last_error",
                                "last_restart_time", "last_restart_logs", "restart_count"}));
  std::vector<std::string> input_keys;
  for (const auto& [key, value] : event["input_status"].items()) input_keys.push_back(key);
  EXPECT_EQ(input_keys, (std::vector<std::string>{"last_input_time", "fps"}));

  EXPECT_EQ(event["type"], "status");
  EXPECT_EQ(event["pipeline"], "streamdiffusion");
  EXPECT_TRUE(event["start_time"].is_number_integer());
  EXPECT_EQ(event["start_time"].get<std::int64_t>(), k_wall0_ms);
  EXPECT_TRUE(event["state"].is_string());
  EXPECT_TRUE(event["last_state_update_time"].is_number_integer());
  EXPECT_TRUE(event["input_status"]["last_input_time"].is_number_integer());
  EXPECT_TRUE(event["input_status"]["fps"].is_number_float());
  const Json& inference = event["inference_status"];
  EXPECT_TRUE(inference["last_output_time"].is_number_integer());
  EXPECT_TRUE(inference["fps"].is_number_float());
  EXPECT_TRUE(inference["last_params_update_time"].is_number_integer());
  EXPECT_TRUE(inference["last_params"].is_object());
  EXPECT_TRUE(inference["last_params_hash"].is_string());
  EXPECT_TRUE(inference["last_error_time"].is_null());
  EXPECT_TRUE(inference["last_error"].is_null());
  EXPECT_TRUE(inference["last_restart_time"].is_null());
  EXPECT_TRUE(inference["last_restart_logs"].is_null());
  EXPECT_TRUE(inference["restart_count"].is_number_integer());
  // streamer.py: last_status_timestamp is the previous report's time.time(), float seconds.
  EXPECT_TRUE(event["last_status_timestamp"].is_number_float());
  EXPECT_DOUBLE_EQ(event["last_status_timestamp"].get<double>(), k_wall0_ms / 1000.0);
  EXPECT_EQ(event["timestamp"].get<std::int64_t>(), k_wall0_ms + 10000);

  const Json next = status.status_event(at_s(20));
  EXPECT_DOUBLE_EQ(next["last_status_timestamp"].get<double>(), (k_wall0_ms + 10000) / 1000.0);

  RunnerStatus in_ms = started(RunnerKind::other, {.last_status_timestamp_ms = true});
  EXPECT_EQ(in_ms.status_event(at_s(10))["last_status_timestamp"].get<std::int64_t>(), k_wall0_ms);
}

TEST(RunnerStatus, serializes_status_wrapper_like_the_runner) {
  RunnerStatus status = started();
  const Json wrapped = wrap_event(status.status_event(at_s(10)), "ai_stream_events");
  const std::string wire = python_json_dumps(wrapped);
  EXPECT_EQ(wire.rfind(R"({"event": {"type": "status", "pipeline": "streamdiffusion", )", 0), 0u);
  EXPECT_NE(wire.find(R"("input_status": {"last_input_time": null, "fps": 0.0})"),
            std::string::npos);
  EXPECT_TRUE(
      wire.ends_with(R"("timestamp": 1767830410123}, "queue_event_type": "ai_stream_events"})"));
}

TEST(RunnerStatus, builds_trace_and_error_event_documents) {
  EXPECT_EQ(
      python_json_dumps(stream_trace_event("runner_send_first_processed_segment", 1767830402390)),
      R"({"event": {"type": "runner_send_first_processed_segment", )"
      R"("timestamp": 1767830402390}, "queue_event_type": "stream_trace"})");
  EXPECT_EQ(python_json_dumps(error_event("streamdiffusion", "Error updating params: bad",
                                          1767830402.5, 1767830403000)),
            R"({"event": {"type": "error", "pipeline": "streamdiffusion", "message": )"
            R"("Error updating params: bad", "time": 1767830402.5, "timestamp": 1767830403000}, )"
            R"("queue_event_type": "ai_stream_events"})");
}

TEST(RunnerStatus, schedules_status_every_10s_from_stream_start) {
  RunnerStatus status = started();
  EXPECT_EQ(status.first_status_due(), at_s(10).mono);
  EXPECT_EQ(status.next_status_due(), at_s(10).mono);
  EXPECT_EQ(RunnerStatus::status_interval(), milliseconds(10000));
  status.status_event(at_s(10));
  EXPECT_EQ(status.next_status_due(), at_s(20).mono);
  status.status_event(at_s(20.3));  // a little late: the grid holds
  EXPECT_EQ(status.next_status_due(), at_s(30).mono);
  status.status_event(at_s(45));  // over an interval late: report now, next one interval later
  EXPECT_EQ(status.next_status_due(), at_s(55).mono);
}

}  // namespace
}  // namespace naap::emulator
