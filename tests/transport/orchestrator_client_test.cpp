// The orchestrator client against the real emulator over TLS on loopback: GetOrchestrator with
// pinning, deadlines and refusals; job start classification; payments driven by a remote signer
// stand-in keeping a priced job alive, with the signer's 480/481/482 answers.
#include "naap/transport/orchestrator_client.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../emulator/emulator_session.hpp"
#include "naap/transport/base64.hpp"
#include "naap/transport/remote_signer.hpp"
#include "signer_standin.hpp"
#include "silent_listener.hpp"

namespace naap::test {
namespace {

using emulator::Emulator;
using emulator::EmulatorOptions;
using orch::LiveJobResult;
using orch::OrchestratorProbe;
using orch::PaymentCall;
using orch::PaymentLoop;
using orch::ProbeOptions;

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

class OrchestratorClientTest : public ::testing::Test {
 protected:
  void start(EmulatorOptions options = {}) {
    options.port = 0;
    options.workers = 1;
    options.load_time_s = 0;
    loop_.on_io([&] {
      emulator_ = std::make_unique<Emulator>(loop_.io, options);
      auto started = emulator_->start();
      if (!started) throw std::runtime_error(started.error().describe());
      engine_ = std::make_unique<http::Engine>(loop_.io);
      signer_standin_ = std::make_unique<SignerStandin>(loop_.io);
      signer_standin_->start();
      signer_ = std::make_unique<orch::RemoteSigner>(*engine_, signer_standin_->base_url());
      return 0;
    });
  }

  void TearDown() override {
    loop_.on_io([&] {
      for (auto& loop : payment_loops_) loop->stop();
      for (auto& s : sessions_) s->shutdown();
      return 0;
    });
    if (!sessions_.empty()) std::this_thread::sleep_for(200ms);  // let the DELETEs reach it
    loop_.on_io([&] {
      if (emulator_) emulator_->stop();
      if (signer_standin_) signer_standin_->stop();
      return 0;
    });
    std::this_thread::sleep_for(100ms);
    client_.reset();
    loop_.on_io([&] {
      payment_loops_.clear();
      sessions_.clear();
      signer_.reset();
      signer_standin_.reset();
      engine_.reset();
      emulator_.reset();
      return 0;
    });
  }

  template <class Pred>
  bool wait_for(Pred pred, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (loop_.on_io([&] { return pred(); })) return true;
      std::this_thread::sleep_for(20ms);
    }
    return loop_.on_io([&] { return pred(); });
  }

  Result<OrchestratorProbe> probe(ProbeOptions options) {
    return orch::get_orchestrator(emulator_->address(), options);
  }

  static ProbeOptions noop() {
    ProbeOptions options;
    options.model_id = "noop";
    return options;
  }

  LiveJobResult start_job(const std::string& url, orch::LiveJobRequest request) {
    std::promise<LiveJobResult> done;
    loop_.on_io([&] {
      orch::start_live_job(*engine_, url, std::move(request),
                           [&done](LiveJobResult r) { done.set_value(std::move(r)); });
      return 0;
    });
    return done.get_future().get();
  }

  static orch::LiveJobRequest job_request(const net::OrchestratorInfo& info,
                                          std::string model = "noop") {
    orch::LiveJobRequest request;
    request.model_id = std::move(model);
    request.params = json{{"prompt", "a harbour"}};
    request.gateway_request_id = "r-test";
    request.stream_id = "s-test";
    request.segment_header = orch::segment_credentials(info.auth_token());
    return request;
  }

  orch::PaymentCredentials signer_payment(const net::OrchestratorInfo& info,
                                          const std::string& mid) {
    std::promise<orch::PaymentCredentials> done;
    loop_.on_io([&] {
      signer_->generate_live_payment(
          info, mid, [&done](orch::PaymentCredentials c) { done.set_value(std::move(c)); });
      return 0;
    });
    return done.get_future().get();
  }

  // A priced emulator and a job started with signer-made credentials; returns (info, mid).
  std::pair<net::OrchestratorInfo, std::string> start_priced_job(double ticket_seconds = 5.0) {
    EmulatorOptions options;
    emulator::ModelOffer model;
    model.model_id = "noop";
    model.price_per_unit = 1000;
    options.models = {model};
    options.ticket_seconds = ticket_seconds;
    start(options);
    auto probed = probe(noop());
    EXPECT_TRUE(probed) << probed.error().describe();
    if (!probed) return {};
    EXPECT_TRUE(orch::is_priced(probed->info));
    const orch::PaymentCredentials credentials = signer_payment(probed->info, "");
    EXPECT_EQ(credentials.kind, orch::PaymentCredentials::Kind::ok);
    orch::LiveJobRequest request = job_request(probed->info);
    request.payment_header = credentials.payment_header;
    request.segment_header = credentials.segment_header;
    const LiveJobResult started = start_job(probed->info.transcoder(), request);
    EXPECT_EQ(started.outcome, "ok") << started.message;
    if (!started.urls) return {};
    return {probed->info, started.urls->manifest_id};
  }

  struct LoopRecord {
    std::vector<PaymentCall> calls;
    std::optional<orch::PaymentLoopEnd> end;
    std::optional<Error> end_error;
    int refresh_calls = 0;
  };

  // A payment loop paid through the signer, refreshing with GetOrchestrator(ignoreCapacityCheck).
  std::shared_ptr<PaymentLoop> payment_loop(const net::OrchestratorInfo& info,
                                            const std::string& mid,
                                            std::shared_ptr<LoopRecord> record,
                                            std::chrono::milliseconds interval) {
    if (!client_) client_ = std::make_unique<orch::OrchestratorClient>(1);
    return loop_.on_io([&] {
      orch::PaymentLoopOptions options;
      options.interval = interval;
      PaymentLoop::Callbacks callbacks;
      callbacks.on_call = [record](const PaymentCall& call) { record->calls.push_back(call); };
      callbacks.on_end = [record](orch::PaymentLoopEnd end, const std::optional<Error>& error) {
        record->end = end;
        record->end_error = error;
      };
      auto refresh = [this, record](PaymentLoop::RefreshDone done) {
        ++record->refresh_calls;
        ProbeOptions probe_options = noop();
        probe_options.ignore_capacity_check = true;
        client_->get_orchestrator(emulator_->address(), probe_options, loop_.io.get_executor(),
                                  [done](Result<OrchestratorProbe> r) {
                                    if (!r) return done(fail(r.error()));
                                    done(std::move(r->info));
                                  });
      };
      auto loop = PaymentLoop::create(*engine_, info, mid, signer_->credentials_fn(), refresh,
                                      options, callbacks);
      loop->start();
      payment_loops_.push_back(loop);
      return loop;
    });
  }

  Loop loop_;
  std::unique_ptr<Emulator> emulator_;
  std::unique_ptr<http::Engine> engine_;
  std::unique_ptr<SignerStandin> signer_standin_;
  std::unique_ptr<orch::RemoteSigner> signer_;
  std::unique_ptr<orch::OrchestratorClient> client_;
  std::vector<std::shared_ptr<PaymentLoop>> payment_loops_;
  std::vector<std::shared_ptr<Session>> sessions_;
};

// ---- pure helpers -------------------------------------------------------------------------------

TEST(OrchestratorAddress, parses_host_port_https_url_and_bracketed_ipv6) {
  auto a = orch::parse_address("orch.example.net:8935");
  ASSERT_TRUE(a) << a.error().describe();
  EXPECT_EQ(a->host, "orch.example.net");
  EXPECT_EQ(a->port, 8935);
  auto b = orch::parse_address("https://10.0.0.2:9000/");
  ASSERT_TRUE(b) << b.error().describe();
  EXPECT_EQ(b->host, "10.0.0.2");
  EXPECT_EQ(b->url(), "https://10.0.0.2:9000");
  auto c = orch::parse_address("[::1]:8935");
  ASSERT_TRUE(c) << c.error().describe();
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->host_port(), "[::1]:8935");
}

TEST(OrchestratorAddress, rejects_bad_text_with_an_error_that_quotes_it) {
  for (const char* bad : {"orch.example.net", "http://h:1", "h:0", "h:99999", "::1:8935",
                          "[::1]8935", "h:port", ":8935", "https://h:1/path"}) {
    auto r = orch::parse_address(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().category, ErrorCategory::config);
    EXPECT_NE(r.error().message.find(std::string("'") + bad + "'"), std::string::npos)
        << r.error().message;
  }
}

TEST(Base64, round_trips_and_rejects_bad_input) {
  for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba",
                                                       "foobar", std::string("\0\xff\x10", 3)}) {
    auto decoded = b64::decode(b64::encode(s));
    ASSERT_TRUE(decoded) << decoded.error().describe();
    EXPECT_EQ(*decoded, s);
  }
  EXPECT_EQ(b64::encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(b64::encode("fo"), "Zm8=");
  EXPECT_EQ(*b64::decode("Zm8"), "fo");  // padding may be omitted
  for (const char* bad : {"Zm9v!mFy", "Zm=8", "Z", "Zm9vY", "Zm8===", "Zm9=", "Zm-_"}) {
    auto r = b64::decode(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().category, ErrorCategory::protocol);
    }
  }
}

TEST(OrchestratorInfoHelpers, read_model_price_and_token_life) {
  net::OrchestratorInfo info;
  auto& models = *(*info.mutable_capabilities()
                        ->mutable_constraints()
                        ->mutable_percapability())[orch::k_capability_live_video_to_video]
                      .mutable_models();
  models["noop"].set_warm(true);
  models["noop"].set_capacity(3);
  models["noop"].set_capacityinuse(1);
  auto* price = info.add_capabilities_prices();
  price->set_capability(35);
  price->set_constraint("noop");
  price->set_priceperunit(7);
  auto m = orch::model_info(info, "noop");
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->warm);
  EXPECT_EQ(m->capacity, 3u);
  EXPECT_EQ(m->capacity_in_use, 1u);
  ASSERT_TRUE(m->price);
  EXPECT_EQ(m->price->priceperunit(), 7);
  EXPECT_FALSE(orch::model_info(info, "comfyui"));
  EXPECT_FALSE(orch::is_priced(info));
  info.mutable_price_info()->set_priceperunit(5);
  EXPECT_TRUE(orch::is_priced(info));

  const std::int64_t now = 1'800'000'000;
  EXPECT_TRUE(orch::auth_token_needs_refresh(info, now));  // no token
  info.mutable_auth_token()->set_token(std::string(32, 'x'));
  info.mutable_auth_token()->set_expiration(now + 1800);
  EXPECT_FALSE(orch::auth_token_needs_refresh(info, now));
  EXPECT_FALSE(orch::auth_token_needs_refresh(info, now + 1800 - 181));
  EXPECT_TRUE(orch::auth_token_needs_refresh(info, now + 1800 - 180));  // last 10 %
  EXPECT_TRUE(orch::auth_token_needs_refresh(info, now + 1801));        // expired
}

TEST(StartResponse, completes_relative_urls_and_rejects_bodies_without_control_url) {
  const std::string url = "https://o.example:8935/live-video-to-video";
  auto ok = orch::classify_start_response(
      200, "application/json",
      R"({"publish_url":"/ai/trickle/m","subscribe_url":"https://x:1/ai/trickle/m-out",)"
      R"("control_url":"ai/trickle/m-control","events_url":"/ai/trickle/m-events","request_id":"m"})",
      url);
  ASSERT_EQ(ok.outcome, "ok") << ok.message;
  EXPECT_EQ(ok.urls->publish_url, "https://o.example:8935/ai/trickle/m");
  EXPECT_EQ(ok.urls->subscribe_url, "https://x:1/ai/trickle/m-out");
  EXPECT_EQ(ok.urls->control_url, "https://o.example:8935/ai/trickle/m-control");
  EXPECT_EQ(ok.urls->manifest_id, "m");

  auto no_control = orch::classify_start_response(
      200, "application/json", R"({"publish_url":"/a","subscribe_url":"/b"})", url);
  EXPECT_EQ(no_control.outcome, "start_failed");
  EXPECT_NE(no_control.message.find("control_url"), std::string::npos) << no_control.message;

  // JSON under another content type is accepted (go-livepeer does not look) and noted.
  auto plain = orch::classify_start_response(
      200, "text/plain", R"({"publish_url":"/a","subscribe_url":"/b","control_url":"/c"})", url);
  EXPECT_EQ(plain.outcome, "ok");
  EXPECT_NE(plain.message.find("text/plain"), std::string::npos);

  EXPECT_EQ(orch::classify_start_response(402, "", "x", url).outcome, "auth_or_payment_failed");
  EXPECT_EQ(orch::classify_start_response(400, "", "Insufficient balance", url).outcome,
            "auth_or_payment_failed");
  auto server_error = orch::classify_start_response(500, "", "runner failed", url);
  EXPECT_EQ(server_error.outcome, "start_failed");
  EXPECT_NE(server_error.message.find("500"), std::string::npos);
  EXPECT_NE(server_error.message.find("runner failed"), std::string::npos);
  EXPECT_NE(server_error.message.find(url), std::string::npos);
}

TEST(OrchestratorRequest, asks_for_capability_35_with_the_model) {
  ProbeOptions options;
  options.model_id = "streamdiffusion";
  const net::OrchestratorRequest request = orch::make_orchestrator_request(options);
  ASSERT_EQ(request.capabilities().bitstring_size(), 1);
  EXPECT_EQ(request.capabilities().bitstring(0), std::uint64_t{1} << 35);
  EXPECT_EQ(request.capabilities().capacities().at(35), 1u);
  EXPECT_EQ(
      request.capabilities().constraints().percapability().at(35).models().count("streamdiffusion"),
      1u);
  EXPECT_TRUE(request.address().empty());
  EXPECT_FALSE(request.ignorecapacitycheck());
}

// ---- GetOrchestrator against the emulator -------------------------------------------------------

TEST_F(OrchestratorClientTest, get_orchestrator_returns_the_model_with_capacity_and_a_token) {
  start();
  auto r = probe(noop());
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(r->info.transcoder(), emulator_->base_url());
  auto model = orch::model_info(r->info, "noop");
  ASSERT_TRUE(model);
  EXPECT_TRUE(model->warm);
  EXPECT_EQ(model->capacity, 4u);
  EXPECT_EQ(model->capacity_in_use, 0u);
  EXPECT_EQ(r->info.auth_token().token().size(), 32u);
  EXPECT_FALSE(orch::auth_token_needs_refresh(r->info, unix_now()));
  EXPECT_FALSE(orch::is_priced(r->info));
  EXPECT_EQ(r->certificate_pin, emulator_->certificate_pin());
  EXPECT_GT(r->latency_ms, 0.0);
  EXPECT_LE(r->rpc_ms, r->latency_ms);

  // The pin from the first call is accepted on the next (both spellings).
  ProbeOptions pinned = noop();
  pinned.expected_pin = r->certificate_pin;
  EXPECT_TRUE(probe(pinned));
  pinned.expected_pin = r->certificate_pin.substr(8);
  EXPECT_TRUE(probe(pinned));
}

TEST_F(OrchestratorClientTest, network_capabilities_entry_has_go_livepeers_json_shape) {
  start();
  auto r = probe(noop());
  ASSERT_TRUE(r) << r.error().describe();
  const json entry = orch::network_capabilities_entry(r->info);
  EXPECT_EQ(entry["orch_uri"], emulator_->base_url());
  ASSERT_TRUE(entry["address"].is_string());
  EXPECT_EQ(entry["address"].get<std::string>().size(), 42u) << entry["address"];
  EXPECT_EQ(entry["local_address"], entry["address"]);
  const json& caps = entry["capabilities"];
  ASSERT_TRUE(caps.is_object()) << entry.dump();
  ASSERT_TRUE(caps["bitstring"].is_array());
  EXPECT_TRUE(caps["bitstring"][0].is_number_unsigned()) << "uint64 as a number, as Go writes it";
  // Capability 35 (live-video-to-video) with our model, keyed by decimal strings.
  const json& model = caps["constraints"]["PerCapability"]["35"]["models"]["noop"];
  EXPECT_EQ(model["warm"], true) << caps.dump();
  EXPECT_EQ(model["capacity"], 4);
  EXPECT_FALSE(model.contains("capacityInUse")) << "zero is omitted (omitempty)";
  EXPECT_TRUE(entry.contains("capabilities_prices"));
  EXPECT_TRUE(entry.contains("hardware"));
}

TEST_F(OrchestratorClientTest, capped_orchestrator_is_recognised_and_ignore_capacity_check_passes) {
  EmulatorOptions options;
  emulator::ModelOffer full;
  full.model_id = "noop";
  full.capacity = 0;
  options.models = {full};
  start(options);
  auto r = probe(noop());
  ASSERT_FALSE(r);
  EXPECT_TRUE(orch::is_capped(r.error())) << r.error().describe();
  EXPECT_EQ(r.error().category, ErrorCategory::orchestrator);
  EXPECT_EQ(r.error().get("grpc_code"), "UNKNOWN");
  EXPECT_EQ(r.error().get("address"), emulator_->address());
  EXPECT_NE(r.error().message.find("OrchestratorCapped"), std::string::npos);

  ProbeOptions refresh = noop();
  refresh.ignore_capacity_check = true;
  auto again = probe(refresh);
  ASSERT_TRUE(again) << again.error().describe();
  EXPECT_EQ(orch::model_info(again->info, "noop")->capacity, 0u);
}

TEST_F(OrchestratorClientTest, unknown_model_is_an_orchestrator_error_naming_it) {
  start();
  ProbeOptions options;
  options.model_id = "no-such-model";
  auto r = probe(options);
  ASSERT_FALSE(r);
  EXPECT_FALSE(orch::is_capped(r.error()));
  EXPECT_EQ(r.error().category, ErrorCategory::orchestrator);
  EXPECT_NE(r.error().message.find("no-such-model"), std::string::npos) << r.error().message;
}

TEST_F(OrchestratorClientTest, wrong_expected_pin_is_a_tls_error_showing_both_pins) {
  start();
  ProbeOptions options = noop();
  options.expected_pin = "sha256//" + b64::encode(std::string(32, '\x42'));
  auto r = probe(options);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().category, ErrorCategory::tls);
  EXPECT_EQ(r.error().get("expected_pin"), options.expected_pin);
  EXPECT_EQ(r.error().get("actual_pin"), emulator_->certificate_pin());
  EXPECT_NE(r.error().message.find(emulator_->certificate_pin()), std::string::npos);
}

TEST(OrchestratorProbeNetwork, closed_port_fails_fast_with_a_network_error) {
  ProbeOptions options;
  options.model_id = "noop";
  const auto t0 = Clock::now();
  const std::string address = "127.0.0.1:" + std::to_string(closed_port());
  auto r = orch::get_orchestrator(address, options);
  ASSERT_FALSE(r);
  EXPECT_LT(ms_since(t0), 1000.0);
  EXPECT_EQ(r.error().category, ErrorCategory::network);
  EXPECT_EQ(r.error().get("address"), address);
  EXPECT_NE(r.error().message.find(address), std::string::npos);
}

TEST(OrchestratorProbeNetwork, silent_listener_fails_at_the_deadline) {
  SilentListener silent;
  ProbeOptions options;
  options.model_id = "noop";
  options.deadline = 500ms;
  const auto t0 = Clock::now();
  auto r = orch::get_orchestrator("127.0.0.1:" + std::to_string(silent.port()), options);
  const double elapsed = ms_since(t0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().category, ErrorCategory::network);
  EXPECT_NE(r.error().message.find("deadline"), std::string::npos) << r.error().message;
  EXPECT_GE(elapsed, 450.0);
  EXPECT_LT(elapsed, 1500.0);
}

TEST_F(OrchestratorClientTest, async_probe_completes_on_the_given_executor) {
  start();
  client_ = std::make_unique<orch::OrchestratorClient>(2);
  const auto io_thread = loop_.on_io([] { return std::this_thread::get_id(); });
  std::promise<std::pair<bool, std::thread::id>> done;
  client_->get_orchestrator(emulator_->address(), noop(), loop_.io.get_executor(),
                            [&done](Result<OrchestratorProbe> r) {
                              done.set_value({r.has_value(), std::this_thread::get_id()});
                            });
  auto future = done.get_future();
  ASSERT_EQ(future.wait_for(10s), std::future_status::ready);
  const auto [ok, thread] = future.get();
  EXPECT_TRUE(ok);
  EXPECT_EQ(thread, io_thread);
}

// ---- job start ----------------------------------------------------------------------------------

TEST_F(OrchestratorClientTest, job_start_returns_absolute_channel_urls) {
  start();
  auto probed = probe(noop());
  ASSERT_TRUE(probed) << probed.error().describe();
  const LiveJobResult r = start_job(probed->info.transcoder(), job_request(probed->info));
  ASSERT_EQ(r.outcome, "ok") << r.message;
  EXPECT_EQ(r.status, 200);
  ASSERT_TRUE(r.urls);
  for (const std::string* u :
       {&r.urls->publish_url, &r.urls->subscribe_url, &r.urls->control_url, &r.urls->events_url}) {
    EXPECT_TRUE(u->starts_with(emulator_->base_url() + "/ai/trickle/")) << *u;
  }
  EXPECT_FALSE(r.urls->manifest_id.empty());
  EXPECT_TRUE(r.urls->subscribe_url.ends_with("-out"));
  EXPECT_EQ(loop_.on_io([&] { return emulator_->active_streams(); }), 1u);
}

TEST_F(OrchestratorClientTest, bad_auth_token_is_403_auth_or_payment_failed) {
  start();
  net::AuthToken forged;
  forged.set_token(std::string(32, '\x07'));
  forged.set_expiration(unix_now() + 1800);
  orch::LiveJobRequest request;
  request.model_id = "noop";
  request.segment_header = orch::segment_credentials(forged);
  const LiveJobResult r = start_job(emulator_->base_url(), request);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.outcome, "auth_or_payment_failed");
  EXPECT_NE(r.message.find("403"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("invalid auth token"), std::string::npos) << r.message;
  EXPECT_FALSE(r.urls);
}

TEST_F(OrchestratorClientTest, exhausted_capacity_is_503_excused_no_capacity) {
  EmulatorOptions options;
  emulator::ModelOffer one;
  one.model_id = "noop";
  one.capacity = 1;
  options.models = {one};
  start(options);
  auto probed = probe(noop());
  ASSERT_TRUE(probed) << probed.error().describe();
  ASSERT_EQ(start_job(probed->info.transcoder(), job_request(probed->info)).outcome, "ok");
  const LiveJobResult second = start_job(probed->info.transcoder(), job_request(probed->info));
  EXPECT_EQ(second.status, 503);
  EXPECT_EQ(second.outcome, "excused_no_capacity");
  EXPECT_NE(second.message.find("insufficient capacity"), std::string::npos) << second.message;
}

TEST_F(OrchestratorClientTest, html_answer_to_a_start_is_start_failed_saying_not_json) {
  trickle::ServerOptions options;
  options.app_handler = [](const trickle::AppRequest&) {
    trickle::AppResponse r;
    r.content_type = "text/html";
    r.body = "<html><body>It works!</body></html>";
    return r;
  };
  auto server = loop_.on_io([&] {
    engine_ = std::make_unique<http::Engine>(loop_.io);
    auto s = std::make_unique<trickle::TrickleServer>(loop_.io, options);
    s->listen("127.0.0.1", 0).value();
    return s;
  });
  orch::LiveJobRequest request;
  request.model_id = "noop";
  const LiveJobResult r = start_job("http://127.0.0.1:" + std::to_string(server->port()), request);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.outcome, "start_failed");
  EXPECT_NE(r.message.find("not JSON"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("text/html"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("It works"), std::string::npos) << r.message;
  loop_.on_io([&] {
    server->stop();
    server.reset();
    return 0;
  });
}

TEST_F(OrchestratorClientTest, unreachable_transcoder_is_start_failed_without_status) {
  loop_.on_io([&] {
    engine_ = std::make_unique<http::Engine>(loop_.io);
    return 0;
  });
  orch::LiveJobRequest request;
  request.model_id = "noop";
  const std::string url = "https://127.0.0.1:" + std::to_string(closed_port());
  const LiveJobResult r = start_job(url, request);
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.outcome, "start_failed");
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->category, ErrorCategory::network);
  EXPECT_NE(r.message.find(url), std::string::npos) << r.message;
}

// ---- remote signer ------------------------------------------------------------------------------

TEST_F(OrchestratorClientTest, signer_identity_is_fetched_once_and_discovery_parses_the_list) {
  start();
  auto sign = [&] {
    std::promise<Result<orch::SignerIdentity>> done;
    loop_.on_io([&] {
      signer_->sign_orchestrator_info(
          [&done](Result<orch::SignerIdentity> r) { done.set_value(std::move(r)); });
      return 0;
    });
    return done.get_future().get();
  };
  auto first = sign();
  ASSERT_TRUE(first) << first.error().describe();
  EXPECT_EQ(first->address, std::string(20, '\xaa'));
  EXPECT_EQ(first->signature.size(), 65u);
  ASSERT_TRUE(sign());
  EXPECT_EQ(loop_.on_io([&] { return signer_standin_->sign_calls; }), 1);

  std::promise<Result<std::vector<orch::DiscoveredOrchestrator>>> found;
  loop_.on_io([&] {
    signer_->discover_orchestrators("noop", [&found](auto r) { found.set_value(std::move(r)); });
    return 0;
  });
  auto list = found.get_future().get();
  ASSERT_TRUE(list) << list.error().describe();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].address, "https://o1.example:8935");
  EXPECT_DOUBLE_EQ(*(*list)[0].score, 0.9);
  EXPECT_FALSE((*list)[1].score);
  EXPECT_EQ(loop_.on_io([&] { return signer_standin_->last_discover_target; }),
            "/discover-orchestrators?caps=live-video-to-video/noop");
}

// ---- payments -----------------------------------------------------------------------------------

TEST_F(OrchestratorClientTest, payments_keep_a_priced_job_alive_beyond_its_prepaid_seconds) {
  // One ticket buys 2 s; the start request prepays that much, payments every 400 ms add 2 s each.
  // The clip is encoded first: under a sanitizer on a loaded machine that takes longer than the
  // prepaid time, which must only have to cover the gap between the job start and the payer.
  const media::SegmentedClip& input = clip(24, 5.0, 384);
  auto [info, mid] = start_priced_job(2.0);
  ASSERT_FALSE(mid.empty());
  auto session = loop_.on_io([&] {
    auto s = std::make_shared<Session>(*engine_, emulator_->base_url(), "");
    s->decode_output = false;
    s->urls = json{{"publish_url", emulator_->base_url() + "/ai/trickle/" + mid},
                   {"subscribe_url", emulator_->base_url() + "/ai/trickle/" + mid + "-out"},
                   {"control_url", emulator_->base_url() + "/ai/trickle/" + mid + "-control"},
                   {"events_url", emulator_->base_url() + "/ai/trickle/" + mid + "-events"}};
    sessions_.push_back(s);
    return s;
  });
  auto record = std::make_shared<LoopRecord>();
  auto payer = payment_loop(info, mid, record, 400ms);
  loop_.on_io([&] {
    session->run(input);
    return 0;
  });
  // Well past the prepaid two seconds, the job still runs and output flows.
  std::this_thread::sleep_for(4500ms);
  EXPECT_FALSE(loop_.on_io([&] { return session->output_end.has_value(); }));
  EXPECT_GT(loop_.on_io([&] { return session->output_segments; }), 0u);
  EXPECT_GE(loop_.on_io([&] { return payer->payments_ok(); }), 6u);
  EXPECT_EQ(loop_.on_io([&] { return payer->payments_failed(); }), 0u);
  const json truth = loop_.on_io([&] { return emulator_->stream_truth(mid, false); });
  EXPECT_TRUE(truth["ended_us"].is_null()) << truth.dump();
  EXPECT_NE(truth.value("end_reason", std::string()), "insufficient balance");

  // The signer saw an empty ManifestID and no state first, then the mid and the last state.
  const auto requests = loop_.on_io([&] { return signer_standin_->payment_requests; });
  ASSERT_GE(requests.size(), 3u);
  EXPECT_EQ(requests[0]["ManifestID"], "");
  EXPECT_FALSE(requests[0].contains("state"));
  EXPECT_EQ(requests[0]["type"], "lv2v");
  EXPECT_EQ(requests[1]["ManifestID"], mid);
  EXPECT_EQ(requests[1]["state"]["State"], "s1");
  EXPECT_EQ(requests[2]["state"]["State"], "s2");
  // Every call is recorded with its timing.
  const auto calls = loop_.on_io([&] { return record->calls; });
  ASSERT_FALSE(calls.empty());
  for (const auto& call : calls) EXPECT_LE(call.started, call.finished);
}

TEST_F(OrchestratorClientTest, signer_480_refreshes_the_session_then_pays) {
  auto [info, mid] = start_priced_job();
  ASSERT_FALSE(mid.empty());
  loop_.on_io([&] {
    signer_standin_->scripted = {480};
    signer_standin_->orchestrator_url_for_480 = emulator_->base_url();
    return 0;
  });
  auto record = std::make_shared<LoopRecord>();
  auto payer = payment_loop(info, mid, record, 200ms);
  ASSERT_TRUE(wait_for([&] { return payer->payments_ok() >= 1; }, 10s));
  const auto calls = loop_.on_io([&] { return record->calls; });
  ASSERT_GE(calls.size(), 4u);
  EXPECT_EQ(calls[0].what, "credentials");
  EXPECT_EQ(calls[0].result, "refresh_session");
  EXPECT_EQ(calls[0].status, 480);
  EXPECT_EQ(calls[1].what, "refresh");
  EXPECT_EQ(calls[1].result, "ok");
  EXPECT_EQ(calls[2].what, "credentials");
  EXPECT_EQ(calls[2].result, "ok");
  EXPECT_EQ(calls[3].what, "payment");
  EXPECT_EQ(calls[3].status, 200);
  EXPECT_EQ(loop_.on_io([&] { return record->refresh_calls; }), 1);
  EXPECT_FALSE(loop_.on_io([&] { return record->end.has_value(); }));
}

TEST_F(OrchestratorClientTest, signer_480_forever_gives_up_after_three_refreshes) {
  auto [info, mid] = start_priced_job();
  ASSERT_FALSE(mid.empty());
  loop_.on_io([&] {
    signer_standin_->scripted = {480, 480, 480, 480, 480};
    return 0;
  });
  auto record = std::make_shared<LoopRecord>();
  payment_loop(info, mid, record, 200ms);
  ASSERT_TRUE(wait_for([&] { return record->end.has_value(); }, 20s));
  EXPECT_EQ(*record->end, orch::PaymentLoopEnd::refresh_failed);
  EXPECT_EQ(loop_.on_io([&] { return record->refresh_calls; }), 3);
}

TEST_F(OrchestratorClientTest, signer_481_stops_the_loop_as_price_exceeded) {
  auto [info, mid] = start_priced_job();
  ASSERT_FALSE(mid.empty());
  loop_.on_io([&] {
    signer_standin_->scripted = {481};
    return 0;
  });
  auto record = std::make_shared<LoopRecord>();
  auto payer = payment_loop(info, mid, record, 200ms);
  ASSERT_TRUE(wait_for([&] { return record->end.has_value(); }, 10s));
  EXPECT_EQ(*record->end, orch::PaymentLoopEnd::price_exceeded);
  ASSERT_TRUE(record->end_error);
  EXPECT_EQ(record->end_error->category, ErrorCategory::payment);
  std::this_thread::sleep_for(500ms);  // nothing more happens after the end
  EXPECT_EQ(loop_.on_io([&] { return record->calls.size(); }), 1u);
  EXPECT_EQ(loop_.on_io([&] { return payer->payments_ok(); }), 0u);
  EXPECT_FALSE(loop_.on_io([&] { return payer->running(); }));
}

TEST_F(OrchestratorClientTest, signer_482_skips_one_cycle_and_500_is_recorded_then_paying_resumes) {
  auto [info, mid] = start_priced_job();
  ASSERT_FALSE(mid.empty());
  loop_.on_io([&] {
    signer_standin_->scripted = {482, 500};
    return 0;
  });
  auto record = std::make_shared<LoopRecord>();
  auto payer = payment_loop(info, mid, record, 200ms);
  ASSERT_TRUE(wait_for([&] { return payer->payments_ok() >= 1; }, 10s));
  EXPECT_EQ(loop_.on_io([&] { return payer->cycles_skipped(); }), 1u);
  EXPECT_EQ(loop_.on_io([&] { return payer->payments_failed(); }), 1u);
  const auto calls = loop_.on_io([&] { return record->calls; });
  ASSERT_GE(calls.size(), 4u);
  EXPECT_EQ(calls[0].result, "skip");
  EXPECT_EQ(calls[1].result, "error");
  EXPECT_EQ(calls[1].status, 500);
  ASSERT_TRUE(calls[1].error);
  EXPECT_NE(calls[1].error->message.find("500"), std::string::npos);
  EXPECT_EQ(calls[2].result, "ok");
  EXPECT_EQ(calls[3].what, "payment");
  // The skipped cycle sent no payment: the skip came one interval before the first payment.
  EXPECT_GE(calls[3].started - calls[0].finished, 300ms);
}

TEST_F(OrchestratorClientTest, stopped_loop_makes_no_more_calls) {
  auto [info, mid] = start_priced_job();
  ASSERT_FALSE(mid.empty());
  auto record = std::make_shared<LoopRecord>();
  auto payer = payment_loop(info, mid, record, 100ms);
  ASSERT_TRUE(wait_for([&] { return payer->payments_ok() >= 2; }, 10s));
  const std::size_t seen = loop_.on_io([&] {
    payer->stop();
    return record->calls.size();
  });
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(loop_.on_io([&] { return record->calls.size(); }), seen);
  EXPECT_FALSE(record->end);  // stop() is not reported as an end
}

TEST_F(OrchestratorClientTest, send_payment_error_names_status_and_body) {
  start();
  auto probed = probe(noop());
  ASSERT_TRUE(probed) << probed.error().describe();
  std::promise<Result<net::PaymentResult>> done;
  loop_.on_io([&] {
    orch::send_payment(*engine_, probed->info.transcoder(), "",
                       orch::segment_credentials(probed->info.auth_token(), "nope"),
                       [&done](Result<net::PaymentResult> r) { done.set_value(std::move(r)); });
    return 0;
  });
  auto r = done.get_future().get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().category, ErrorCategory::payment);
  EXPECT_EQ(r.error().get("status"), "402");
  EXPECT_NE(r.error().message.find("missing Livepeer-Payment"), std::string::npos)
      << r.error().message;
}

}  // namespace
}  // namespace naap::test
