// The emulator end to end, driven through our own trickle client over TLS on loopback: job start
// checks, output PTS = input PTS, the 24 fps cap, prompt switches visible in pixels, ai-runner's
// events, each fault knob, and the ground truth the accuracy tests rely on.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "emulator_session.hpp"
#include "net.grpc.pb.h"

namespace naap::test {
namespace {

using emulator::Emulator;
using emulator::EmulatorOptions;

class EmulatorTest : public ::testing::Test {
 protected:
  void start(EmulatorOptions options = {}) {
    options.port = 0;
    if (options.workers == 0) options.workers = 2;
    loop_.on_io([&] {
      emulator_ = std::make_unique<Emulator>(loop_.io, options);
      auto started = emulator_->start();
      if (!started) throw std::runtime_error(started.error().describe());
      engine_ = std::make_unique<http::Engine>(loop_.io);
      return 0;
    });
  }

  void TearDown() override {
    loop_.on_io([&] {
      for (auto& s : sessions_) s->shutdown();
      if (emulator_) emulator_->stop();
      return 0;
    });
    std::this_thread::sleep_for(100ms);
    loop_.on_io([&] {
      sessions_.clear();
      engine_.reset();
      emulator_.reset();
      return 0;
    });
  }

  // A Livepeer-Segment header carrying a fresh auth token from the emulator.
  std::string segment_header(std::string manifest_id = "") {
    auto token = emulator_->orchestrator().tokens().issue();
    net::SegData seg;
    seg.set_manifestid(manifest_id);
    seg.mutable_auth_token()->set_token(token.token);
    seg.mutable_auth_token()->set_session_id(token.session_id);
    seg.mutable_auth_token()->set_expiration(token.expiration);
    return base64(seg.SerializeAsString());
  }

  std::shared_ptr<Session> session(std::string header = "") {
    if (header.empty()) header = segment_header();
    return loop_.on_io([&] {
      auto s = std::make_shared<Session>(*engine_, emulator_->base_url(), header);
      sessions_.push_back(s);
      return s;
    });
  }

  Reply start_job(const std::shared_ptr<Session>& s, const json& body, std::string payment = "") {
    std::promise<Reply> done;
    loop_.on_io([&] {
      s->start_job(
          body, [&done](const Reply& r) { done.set_value(r); }, payment);
      return 0;
    });
    return done.get_future().get();
  }

  // Starts a job and streams `input`; returns the session once the job is running.
  std::shared_ptr<Session> stream(const json& body, const media::SegmentedClip& input) {
    auto s = session();
    const Reply r = start_job(s, body);
    EXPECT_EQ(r.status, 200) << r.body << r.error;
    if (r.status != 200) return s;
    loop_.on_io([&] {
      s->run(input);
      return 0;
    });
    return s;
  }

  template <class Pred>
  bool wait_for(Pred pred, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (loop_.on_io([&] { return pred(); })) return true;
      std::this_thread::sleep_for(50ms);
    }
    return loop_.on_io([&] { return pred(); });
  }

  json truth(const std::shared_ptr<Session>& s) {
    return loop_.on_io(
        [&] { return emulator_->stream_truth(s->urls.value("manifest_id", std::string())); });
  }

  template <class Fn>
  auto on_io(Fn fn) {
    return loop_.on_io(std::move(fn));
  }

  Loop loop_;
  std::unique_ptr<Emulator> emulator_;
  std::unique_ptr<http::Engine> engine_;
  std::vector<std::shared_ptr<Session>> sessions_;
};

json start_body(const std::string& model = "streamdiffusion", const std::string& prompt = "a") {
  return json{{"model_id", model},
              {"params", {{"prompt", prompt}, {"width", 512}, {"height", 512}}},
              {"gateway_request_id", "r-test"},
              {"stream_id", "s-test"}};
}

// ---- orchestrator side --------------------------------------------------------------------------

TEST_F(EmulatorTest, serves_get_orchestrator_over_grpc_tls_on_the_same_port_as_https) {
  start();
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = emulator_->certificate_pem();
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  auto channel = grpc::CreateCustomChannel(emulator_->address(), grpc::SslCredentials(tls), args);
  auto stub = net::Orchestrator::NewStub(channel);
  net::OrchestratorRequest request;
  (*request.mutable_capabilities()->mutable_capacities())[35] = 1;
  (*(*request.mutable_capabilities()->mutable_constraints()->mutable_percapability())[35]
        .mutable_models())["streamdiffusion"];
  net::OrchestratorInfo info;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 5s);
  const grpc::Status status = stub->GetOrchestrator(&context, request, &info);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(info.transcoder(), emulator_->base_url());
  ASSERT_GE(info.capabilities().bitstring_size(), 1);
  EXPECT_TRUE(info.capabilities().bitstring(0) & (std::uint64_t{1} << 35));
  EXPECT_EQ(info.auth_token().token().size(), 32u);

  // The token it handed out starts a job on the same port over HTTP/1.1.
  net::SegData seg;
  *seg.mutable_auth_token() = info.auth_token();
  auto s = session(base64(seg.SerializeAsString()));
  const Reply r = start_job(s, start_body());
  EXPECT_EQ(r.status, 200) << r.body;
  const std::string mid = s->urls.value("manifest_id", "");
  EXPECT_EQ(s->urls.value("publish_url", ""), emulator_->base_url() + "/ai/trickle/" + mid);
  EXPECT_EQ(s->urls.value("subscribe_url", ""),
            emulator_->base_url() + "/ai/trickle/" + mid + "-out");
  EXPECT_EQ(s->urls.value("control_url", ""),
            emulator_->base_url() + "/ai/trickle/" + mid + "-control");
  EXPECT_EQ(s->urls.value("events_url", ""),
            emulator_->base_url() + "/ai/trickle/" + mid + "-events");
}

TEST_F(EmulatorTest, answers_bad_start_requests_with_the_orchestrators_statuses_and_keeps_serving) {
  EmulatorOptions options;
  emulator::ModelOffer one;
  one.model_id = "noop";
  one.capacity = 1;
  options.models = {one};
  start(options);
  auto no_creds = session("");
  EXPECT_EQ(start_job(session("garbage!"), start_body("noop")).status, 403);
  net::SegData forged;
  forged.mutable_auth_token()->set_token(std::string(32, 'x'));
  EXPECT_EQ(start_job(session(base64(forged.SerializeAsString())), start_body("noop")).status, 403);
  EXPECT_EQ(start_job(session(), json{{"params", json::object()}}).status, 400);
  const Reply unknown = start_job(session(), start_body("nope"));
  EXPECT_EQ(unknown.status, 400);
  EXPECT_NE(unknown.body.find("unknown model_id 'nope'"), std::string::npos) << unknown.body;
  EXPECT_EQ(start_job(session(), json::array({1, 2})).status, 400);
  json bad_size = start_body("noop");
  bad_size["params"]["width"] = 500;
  EXPECT_EQ(start_job(session(), bad_size).status, 400);
  EXPECT_EQ(start_job(session(), start_body("noop"), "%%%not-base64").status, 402);

  // Capacity 1: the first job runs, the second gets 503 insufficient capacity.
  EXPECT_EQ(start_job(session(), start_body("noop")).status, 200);
  const Reply full = start_job(session(), start_body("noop"));
  EXPECT_EQ(full.status, 503);
  EXPECT_NE(full.body.find("insufficient capacity"), std::string::npos);
  EXPECT_EQ(on_io([&] { return emulator_->active_streams(); }), 1u);
}

TEST_F(EmulatorTest, start_status_faults_answer_503_or_500) {
  EmulatorOptions options;
  emulator::FaultProfile f503;
  ASSERT_TRUE(f503.set("start_status", "503"));
  emulator::FaultProfile f500;
  ASSERT_TRUE(f500.set("start_status", "500"));
  options.faults.models["comfyui"] = f503;
  options.faults.streams["broken-stream"] = f500;
  start(options);
  EXPECT_EQ(start_job(session(), start_body("comfyui")).status, 503);
  json body = start_body("noop");
  body["stream_id"] = "broken-stream";
  EXPECT_EQ(start_job(session(), body).status, 500);
  EXPECT_EQ(start_job(session(), start_body("noop")).status, 200);
}

// ---- runner: media, prompts, events
// ---------------------------------------------------------------

TEST_F(EmulatorTest, keeps_input_pts_caps_30fps_to_24_and_shows_prompt_switches_in_pixels) {
  EmulatorOptions options;
  options.load_time_s = 0.6;
  start(options);
  const auto& input = clip(30, 6.0);
  auto s = stream(start_body("streamdiffusion", "first prompt"), input);
  ASSERT_TRUE(wait_for([&] { return Clock::now() - s->started > 3s; }, 10s));
  json second_params = start_body("streamdiffusion", "second prompt")["params"];
  on_io([&] {
    s->control(json{{"keep", "alive"}});  // ignored by the runner
    s->control(second_params);
    return 0;
  });
  ASSERT_TRUE(wait_for([&] { return s->input_done; }, 10s));
  std::this_thread::sleep_for(1500ms);
  const json t = truth(s);
  const auto frames = on_io([&] { return s->frames; });
  ASSERT_GT(frames.size(), 100u);

  // Every output PTS is an input PTS, in order; 30 fps in → about 24 fps out.
  std::set<std::int64_t> input_pts;
  for (const auto& seg : input.segments) {
    for (const auto& f : seg.frames) input_pts.insert(f.pts);
  }
  for (std::size_t i = 0; i < frames.size(); ++i) {
    EXPECT_TRUE(input_pts.count(frames[i].pts)) << "output pts " << frames[i].pts;
    if (i > 0) {
      EXPECT_GT(frames[i].pts, frames[i - 1].pts);
    }
  }
  const double span_s = static_cast<double>(frames.back().pts - frames.front().pts) / 90'000.0;
  EXPECT_NEAR((static_cast<double>(frames.size()) - 1) / span_s, 24.0, 0.6);
  EXPECT_GT(t["counts"]["frames_capped"].get<int>(), 30);

  // Loading overlays first, then the first prompt's tint, then the second prompt's from the
  // PTS the ground truth names.
  const auto style1 = media::style_for_prompt("first prompt");
  const auto style2 = media::style_for_prompt("second prompt");
  ASSERT_EQ(t["prompts"].size(), 2u);
  ASSERT_FALSE(t["prompts"][1]["effective_pts"].is_null());
  const std::int64_t switch_pts = t["prompts"][1]["effective_pts"].get<std::int64_t>();
  EXPECT_EQ(frames.front().kind, media::FrameClass::loading);
  int loading = 0, first = 0, second = 0;
  for (const auto& f : frames) {
    if (f.kind == media::FrameClass::loading) {
      ++loading;
      EXPECT_LT(f.pts, switch_pts);
      continue;
    }
    ASSERT_TRUE(f.style);
    if (f.pts < switch_pts) {
      EXPECT_TRUE(media::style_matches(*f.style, style1)) << f.pts;
      ++first;
    } else {
      EXPECT_TRUE(media::style_matches(*f.style, style2)) << f.pts;
      ++second;
    }
  }
  EXPECT_NEAR(loading, 0.6 * 24, 6);
  EXPECT_GT(first, 30);
  EXPECT_GT(second, 30);
  EXPECT_EQ(t["counts"]["keepalives"], 1);
  EXPECT_EQ(t["counts"]["loading_frames"], loading);
  // Output segments are GOPs of 2 s.
  EXPECT_NEAR(static_cast<double>(on_io([&] { return s->output_segments; })), 3.0, 1.0);
  // Trace events the gateway times startup with.
  const auto events = on_io([&] { return s->events; });
  std::vector<std::string> types;
  for (const auto& e : events) types.push_back(e.event.type);
  ASSERT_GE(types.size(), 3u);
  EXPECT_EQ(types[0], "runner_receive_stream_request");
  EXPECT_NE(std::find(types.begin(), types.end(), "runner_receive_first_ingest_segment"),
            types.end());
  EXPECT_NE(std::find(types.begin(), types.end(), "runner_send_first_processed_segment"),
            types.end());
  EXPECT_EQ(events[0].event.queue_event_type, "stream_trace");
}

TEST_F(EmulatorTest, publishes_status_events_every_10s_with_the_ai_runner_fields) {
  EmulatorOptions options;
  options.load_time_s = 0.2;
  start(options);
  auto s = stream(start_body("noop", "status"), clip(24, 23.0));
  ASSERT_TRUE(wait_for(
      [&] {
        int n = 0;
        for (const auto& e : s->events) n += e.event.type == "status";
        return n >= 2;
      },
      30s));
  const auto events = on_io([&] { return s->events; });
  std::vector<SeenEvent> status;
  for (const auto& e : events) {
    if (e.event.type == "status") status.push_back(e);
  }
  ASSERT_GE(status.size(), 2u);
  const double gap = std::chrono::duration<double>(status[1].at - status[0].at).count();
  EXPECT_NEAR(gap, 10.0, 0.6);
  EXPECT_NEAR(std::chrono::duration<double>(status[0].at - s->started).count(), 10.0, 1.5);
  const json& e = status[1].event.event;
  EXPECT_EQ(status[1].event.queue_event_type, "ai_stream_events");
  for (const char* key :
       {"type", "pipeline", "start_time", "state", "last_state_update_time", "input_status",
        "inference_status", "last_status_timestamp", "timestamp"}) {
    EXPECT_TRUE(e.contains(key)) << key;
  }
  EXPECT_EQ(e["pipeline"], "noop");
  EXPECT_EQ(e["state"], "ONLINE");
  EXPECT_NEAR(e["input_status"]["fps"].get<double>(), 24.0, 1.0);
  EXPECT_NEAR(e["inference_status"]["fps"].get<double>(), 24.0, 1.0);
  EXPECT_TRUE(e["inference_status"]["last_params_hash"].is_string());
  EXPECT_TRUE(e["inference_status"]["last_params"].is_null());  // sent once, in the first
  EXPECT_FALSE(status[0].event.event["inference_status"]["last_params"].is_null());
  EXPECT_FALSE(e.contains("input_fps"));
  EXPECT_EQ(e["inference_status"]["restart_count"], 0);
}

TEST_F(EmulatorTest, deleting_the_input_closes_all_four_channels_and_records_why) {
  start();
  auto s = stream(start_body("noop"), clip(24, 3.0));
  ASSERT_TRUE(wait_for([&] { return s->frames.size() > 10; }, 10s));
  on_io([&] {
    s->stop_input();
    return 0;
  });
  ASSERT_TRUE(
      wait_for([&] { return s->output_end.has_value() && s->events_end.has_value(); }, 10s));
  EXPECT_NE(*s->output_end, trickle::SubscriberEnd::too_many_errors);
  const json t = truth(s);
  EXPECT_NE(t["end_reason"].get<std::string>().find("input channel ended"), std::string::npos)
      << t["end_reason"];
  EXPECT_EQ(on_io([&] { return emulator_->active_streams(); }), 0u);
}

TEST_F(EmulatorTest, bad_control_messages_are_counted_and_the_stream_goes_on) {
  start();
  auto s = stream(start_body("streamdiffusion", "steady"), clip(24, 4.0));
  ASSERT_TRUE(wait_for([&] { return s->frames.size() > 5; }, 10s));
  on_io([&] {
    s->control_raw("{not json");
    s->control_raw("{\"prompt\": \"" + std::string(40'000, 'x') + "\"}");
    json resize = start_body("streamdiffusion", "steady")["params"];
    resize["width"] = 768;
    s->control(resize);
    return 0;
  });
  ASSERT_TRUE(wait_for([&] { return s->input_done; }, 10s));
  std::this_thread::sleep_for(800ms);
  const json t = truth(s);
  EXPECT_EQ(t["counts"]["bad_control"], 2);
  ASSERT_FALSE(t["fault_log"].empty());
  EXPECT_EQ(t["fault_log"][0]["detail"], "Cannot change output resolution mid-stream");
  EXPECT_EQ(t["prompts"].size(), 1u);
  EXPECT_GT(on_io([&] { return s->frames.size(); }), 60u);
}

TEST_F(EmulatorTest, a_reloading_params_update_shows_loading_frames_then_the_new_prompt) {
  EmulatorOptions options;
  options.load_time_s = 0;
  options.reload_time_s = 1.0;
  start(options);
  auto s = stream(start_body("streamdiffusion", "before"), clip(24, 5.0));
  ASSERT_TRUE(wait_for([&] { return Clock::now() - s->started > 1500ms; }, 10s));
  json reload = start_body("streamdiffusion", "after")["params"];
  reload["acceleration"] = "tensorrt";  // a structural key: the pipeline reloads
  on_io([&] {
    s->control(reload);
    return 0;
  });
  ASSERT_TRUE(wait_for([&] { return s->input_done; }, 10s));
  std::this_thread::sleep_for(700ms);
  const json t = truth(s);
  ASSERT_EQ(t["loading"].size(), 1u);
  EXPECT_EQ(t["loading"][0]["reason"], "reload");
  ASSERT_EQ(t["prompts"].size(), 2u);
  EXPECT_EQ(t["prompts"][1]["reload"], true);
  // Real frames of "before", then about a second of loading overlays, then "after".
  const auto frames = on_io([&] { return s->frames; });
  int phase = 0;  // 0 before, 1 loading, 2 after
  int loading = 0;
  for (const auto& f : frames) {
    if (f.kind == media::FrameClass::loading) {
      EXPECT_LE(phase, 1);
      phase = 1;
      ++loading;
    } else if (media::style_matches(*f.style, media::style_for_prompt("after"))) {
      phase = 2;
    } else {
      EXPECT_EQ(phase, 0) << "a 'before' frame after the reload began, pts " << f.pts;
    }
  }
  EXPECT_EQ(phase, 2);
  EXPECT_NEAR(loading, 24, 8);
}

TEST_F(EmulatorTest, garbage_input_segments_are_skipped_and_the_stream_recovers) {
  EmulatorOptions options;
  options.load_time_s = 0;
  start(options);
  auto s = session();
  ASSERT_EQ(start_job(s, start_body("noop")).status, 200);
  on_io([&] {
    s->run(clip(24, 3.0));
    return 0;
  });
  // The session's publisher is on seq 0 by now; a garbage segment goes in ahead of the clip's
  // next one, as a broken encoder would send it.
  std::string garbage(50'000, '\0');
  for (std::size_t i = 0; i < garbage.size(); ++i)
    garbage[i] = static_cast<char>((i * 7919) & 0xff);
  ASSERT_TRUE(wait_for([&] { return s->frames.size() > 5; }, 10s));
  on_io([&] {
    s->publish_raw(garbage);
    return 0;
  });
  ASSERT_TRUE(wait_for([&] { return s->input_done; }, 10s));
  std::this_thread::sleep_for(700ms);
  EXPECT_GT(on_io([&] { return s->frames.size(); }), 40u);
  EXPECT_FALSE(truth(s)["ended_us"].is_number());  // still running
}

TEST_F(EmulatorTest, stops_a_stream_whose_gateway_vanished_after_the_no_input_timeout) {
  EmulatorOptions options;
  options.load_time_s = 0;
  options.no_input_stop_s = 2;  // 60 s on a real runner
  start(options);
  auto s = stream(start_body("noop"), clip(24, 10.0));
  ASSERT_TRUE(wait_for([&] { return s->frames.size() > 10; }, 10s));
  on_io([&] {
    s->vanish();
    return 0;
  });
  ASSERT_TRUE(wait_for([&] { return s->output_end.has_value(); }, 8s));
  EXPECT_EQ(truth(s)["end_reason"], "no input for 2 s");
  EXPECT_EQ(on_io([&] { return emulator_->active_streams(); }), 0u);
}

// ---- faults -------------------------------------------------------------------------------------

EmulatorOptions with_fault(const std::string& key, const std::string& value) {
  EmulatorOptions options;
  options.load_time_s = 0;
  EXPECT_TRUE(options.faults.defaults.set(key, value));
  return options;
}

TEST_F(EmulatorTest, latency_fault_delays_every_frame_by_the_injected_amount) {
  start(with_fault("latency_ms", "200"));
  auto s = stream(start_body("noop"), clip(24, 4.0));
  ASSERT_TRUE(wait_for([&] { return s->input_done; }, 10s));
  std::this_thread::sleep_for(800ms);
  const json t = truth(s);
  ASSERT_GT(t["frames"].size(), 50u);
  std::vector<double> internal_ms;
  for (const auto& row : t["frames"]) {
    EXPECT_DOUBLE_EQ(row[4].get<double>(), 200.0);
    internal_ms.push_back(
        static_cast<double>(row[3].get<std::int64_t>() - row[2].get<std::int64_t>()) / 1000.0);
  }
  std::sort(internal_ms.begin(), internal_ms.end());
  const double median = internal_ms[internal_ms.size() / 2];
  EXPECT_GE(median, 200.0);
  EXPECT_LT(median, 300.0);
  // Seen from the gateway: output arrives about 200 ms (plus a frame of demux delay) after input.
  const auto frames = on_io([&] { return s->frames; });
  const auto sent = on_io([&] { return s->sent_at; });
  std::vector<double> e2e;
  for (const auto& f : frames) {
    if (auto it = sent.find(f.pts); it != sent.end()) {
      e2e.push_back(std::chrono::duration<double, std::milli>(f.received - it->second).count());
    }
  }
  ASSERT_GT(e2e.size(), 50u);
  std::sort(e2e.begin(), e2e.end());
  EXPECT_GT(e2e[e2e.size() / 2], 200.0);
  EXPECT_LT(e2e[e2e.size() / 2], 400.0);
}

TEST_F(EmulatorTest, fps_cap_and_drop_every_n_thin_the_output) {
  start(with_fault("fps_cap", "10"));
  auto s = stream(start_body("noop"), clip(24, 4.0));
  ASSERT_TRUE(wait_for([&] { return s->input_done; }, 10s));
  std::this_thread::sleep_for(700ms);
  const auto frames = on_io([&] { return s->frames; });
  ASSERT_GT(frames.size(), 10u);
  const double span = static_cast<double>(frames.back().pts - frames.front().pts) / 90'000.0;
  EXPECT_NEAR((static_cast<double>(frames.size()) - 1) / span, 10.0, 1.0);
}

TEST_F(EmulatorTest, drop_every_nth_frame_drops_exactly_those) {
  start(with_fault("drop_every_n", "4"));
  auto s = stream(start_body("noop"), clip(24, 4.0));
  ASSERT_TRUE(wait_for([&] { return s->input_done; }, 10s));
  std::this_thread::sleep_for(700ms);
  const json t = truth(s);
  const int input = t["counts"]["input_frames"];
  EXPECT_EQ(t["counts"]["frames_dropped_nth"], input / 4);
  EXPECT_EQ(on_io([&] { return static_cast<int>(s->frames.size()); }), input - input / 4);
}

TEST_F(EmulatorTest, pts_shift_moves_every_output_pts_by_the_offset) {
  start(with_fault("pts_shift_ms", "500"));
  auto s = stream(start_body("noop"), clip(24, 3.0));
  ASSERT_TRUE(wait_for([&] { return s->input_done; }, 10s));
  std::this_thread::sleep_for(700ms);
  const auto frames = on_io([&] { return s->frames; });
  ASSERT_GT(frames.size(), 40u);
  std::set<std::int64_t> input_pts;
  for (const auto& seg : clip(24, 3.0).segments) {
    for (const auto& f : seg.frames) input_pts.insert(f.pts);
  }
  for (const auto& f : frames) EXPECT_TRUE(input_pts.count(f.pts - 45'000)) << f.pts;
  EXPECT_EQ(frames.front().pts, 45'000);
}

TEST_F(EmulatorTest, pts_jump_sends_output_pts_backwards_once_at_a_segment_start) {
  start(with_fault("pts_jump_back_after_s", "1"));
  auto s = stream(start_body("noop"), clip(24, 6.0));
  ASSERT_TRUE(wait_for([&] { return s->input_done; }, 12s));
  std::this_thread::sleep_for(700ms);
  const auto frames = on_io([&] { return s->frames; });
  int backwards = 0;
  for (std::size_t i = 1; i < frames.size(); ++i) backwards += frames[i].pts <= frames[i - 1].pts;
  EXPECT_EQ(backwards, 1);
  EXPECT_EQ(truth(s)["fault_log"][0]["kind"], "pts_jump");
}

TEST_F(EmulatorTest, corrupt_segment_fault_makes_every_nth_output_segment_undecodable) {
  start(with_fault("corrupt_segment_every_n", "2"));
  auto s = stream(start_body("noop"), clip(24, 6.0));
  ASSERT_TRUE(wait_for([&] { return s->input_done; }, 12s));
  std::this_thread::sleep_for(700ms);
  const json t = truth(s);
  const int output = t["counts"]["output_frames"];
  const int decoded = on_io([&] { return static_cast<int>(s->frames.size()); });
  EXPECT_LT(decoded, output * 3 / 4) << "every second 2 s segment is garbage";
  EXPECT_GT(decoded, output / 4);
  EXPECT_EQ(t["fault_log"][0]["kind"], "corrupt_segment");
}

TEST_F(EmulatorTest, stall_fault_stops_output_then_the_runner_ends_the_stream) {
  start(with_fault("stall_after_s", "2"));
  auto s = stream(start_body("noop"), clip(24, 20.0));
  ASSERT_TRUE(wait_for([&] { return s->output_end.has_value(); }, 20s));
  const json t = truth(s);
  EXPECT_EQ(t["fault_log"][0]["kind"], "stall");
  EXPECT_NE(t["end_reason"].get<std::string>().find("runner stopped the stream"), std::string::npos)
      << t["end_reason"];
  // Output stopped about 2 s in; the runner gave up about 5 s later (ai-runner's stall rule).
  const auto frames = on_io([&] { return s->frames; });
  ASSERT_FALSE(frames.empty());
  const double last_s = std::chrono::duration<double>(frames.back().received - s->started).count();
  EXPECT_NEAR(last_s, 2.0, 1.0);
  const double end_s = std::chrono::duration<double>(s->output_end_at - s->started).count();
  EXPECT_GT(end_s, 6.0);
  EXPECT_LT(end_s, 16.0);
}

TEST_F(EmulatorTest, crash_fault_sends_an_error_event_and_closes_every_channel) {
  start(with_fault("crash_after_s", "1.5"));
  auto s = stream(start_body("noop"), clip(24, 10.0));
  ASSERT_TRUE(
      wait_for([&] { return s->output_end.has_value() && s->events_end.has_value(); }, 10s));
  const auto events = on_io([&] { return s->events; });
  bool error = false;
  for (const auto& e : events) error |= e.event.type == "error";
  EXPECT_TRUE(error);
  EXPECT_NE(truth(s)["end_reason"].get<std::string>().find("crash"), std::string::npos);
  // The input channel is gone too: the publisher ends on 404 / closed.
  EXPECT_TRUE(wait_for([&] { return s->publisher_end.has_value(); }, 5s));
}

TEST_F(EmulatorTest, no_events_fault_leaves_the_events_channel_silent) {
  start(with_fault("no_events", "true"));
  auto s = stream(start_body("noop"), clip(24, 3.0));
  ASSERT_TRUE(wait_for([&] { return s->input_done; }, 10s));
  std::this_thread::sleep_for(500ms);
  EXPECT_TRUE(on_io([&] { return s->events.empty(); }));
  EXPECT_GT(on_io([&] { return s->frames.size(); }), 40u);
}

TEST_F(EmulatorTest, bandwidth_cap_makes_output_late) {
  start(with_fault("bandwidth_kbps", "700"));
  auto s = stream(start_body("noop"), clip(24, 3.0));
  ASSERT_TRUE(wait_for([&] { return s->input_done; }, 10s));
  std::this_thread::sleep_for(500ms);
  const json t = truth(s);
  const auto& rows = t["frames"];
  ASSERT_GT(rows.size(), 10u);
  const auto& last = rows.back();
  const double lag_ms =
      static_cast<double>(last[3].get<std::int64_t>() - last[2].get<std::int64_t>()) / 1000.0;
  // The clip runs well above 200 kbit/s, so frames queue behind the cap.
  EXPECT_GT(lag_ms, 500.0);
}

TEST_F(EmulatorTest, passthrough_forwards_input_segments_byte_for_byte) {
  start(with_fault("passthrough", "true"));
  const auto& input = clip(24, 3.0);
  auto s = stream(start_body("noop"), input);
  ASSERT_TRUE(wait_for([&] { return s->input_done; }, 10s));
  std::this_thread::sleep_for(500ms);
  std::uint64_t input_bytes = 0;
  for (const auto& seg : input.segments) input_bytes += seg.bytes.size();
  EXPECT_EQ(on_io([&] { return s->output_bytes; }), input_bytes);
  const auto frames = on_io([&] { return s->frames; });
  ASSERT_EQ(frames.size(), 72u);
  EXPECT_EQ(frames.front().pts, input.segments.front().frames.front().pts);
}

TEST_F(EmulatorTest, priced_models_need_payment_and_close_the_job_when_it_runs_out) {
  EmulatorOptions options;
  emulator::ModelOffer priced;
  priced.model_id = "streamdiffusion";
  priced.price_per_unit = 1000;
  options.models = {priced};
  options.ticket_seconds = 1.5;
  options.load_time_s = 0;
  start(options);
  const Reply unpaid = start_job(session(), start_body());
  EXPECT_EQ(unpaid.status, 400);
  EXPECT_NE(unpaid.body.find("Insufficient balance"), std::string::npos);
  net::Payment payment;
  payment.add_ticket_sender_params()->set_sender_nonce(1);
  auto s = session();
  const Reply paid = start_job(s, start_body(), base64(payment.SerializeAsString()));
  ASSERT_EQ(paid.status, 200) << paid.body;
  on_io([&] {
    s->run(clip(24, 10.0));
    return 0;
  });
  ASSERT_TRUE(wait_for([&] { return s->output_end.has_value(); }, 10s));
  const double end_s = std::chrono::duration<double>(s->output_end_at - s->started).count();
  EXPECT_LT(end_s, 4.0);
  EXPECT_EQ(truth(s)["end_reason"], "insufficient balance");
}

}  // namespace
}  // namespace naap::test
