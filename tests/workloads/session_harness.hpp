// Test harness for live sessions: in-process emulators (each on its own io thread, like a
// separate peer) and a gateway side (engine, decode pool, GetOrchestrator client) that runs one
// session to its end and returns the result with the emulator's ground truth.
#pragma once

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <future>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "naap/emulator/emulator.hpp"
#include "naap/media/ingest.hpp"
#include "naap/workloads/live_session.hpp"

namespace naap::test {

namespace asio = boost::asio;
using json = nlohmann::json;

// An emulator serving on an ephemeral loopback port from its own thread.
class EmulatorPeer {
  // Runs fn on the emulator's thread and waits for its result.
  template <class Fn>
  auto on_io(Fn fn) {
    using R = decltype(fn());
    std::packaged_task<R()> task(std::move(fn));
    auto result = task.get_future();
    asio::post(io_, [&task] { task(); });
    return result.get();
  }

 public:
  explicit EmulatorPeer(emulator::EmulatorOptions options) {
    options.port = 0;
    options.listen_address = "127.0.0.1";
    emulator_ = std::make_unique<emulator::Emulator>(io_, std::move(options));
    auto started = emulator_->start();
    if (!started) throw std::runtime_error(started.error().describe());
    thread_ = std::thread([this] { io_.run(); });
  }
  ~EmulatorPeer() {
    on_io([this] {
      emulator_->stop();
      return 0;
    });
    work_.reset();
    io_.stop();
    thread_.join();
  }
  std::string address() const { return emulator_->address(); }
  std::string pin() const { return emulator_->certificate_pin(); }
  json truth(const std::string& manifest_id) {
    return on_io([&] { return emulator_->stream_truth(manifest_id, true); });
  }
  json summary() {
    return on_io([&] { return emulator_->streams_summary(); });
  }

 private:
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{
      io_.get_executor()};
  std::unique_ptr<emulator::Emulator> emulator_;
  std::thread thread_;
};

// An emulator options set offering one model, with faults given as KEY=VALUE pairs.
inline emulator::EmulatorOptions emulator_options(
    std::vector<std::pair<std::string, std::string>> faults = {}, double load_time_s = 0.5,
    std::string model = "noop") {
  emulator::EmulatorOptions o;
  o.models = {emulator::ModelOffer{model}};
  o.load_time_s = load_time_s;
  o.workers = 2;
  for (const auto& [k, v] : faults) {
    auto set = o.faults.defaults.set(k, v);
    if (!set) throw std::runtime_error(set.error().describe());
  }
  return o;
}

// A 512x512 synthetic clip encoded once per (fps) for the whole test binary.
inline std::shared_ptr<const media::EncodedClip> test_clip(int fps = 24) {
  static media::ClipCache cache;
  media::IngestSource source;
  source.pattern = "ball";
  source.duration_s = 6;
  media::IngestOptions options;
  options.fps = fps;
  options.gop_seconds = 1.0;
  auto clip = cache.get(source, options);
  if (!clip) throw std::runtime_error(clip.error().describe());
  return *clip;
}

// Prompt steps for the noop pipeline: full params each time.
inline std::vector<workloads::PromptStep> prompt_steps(std::size_t n) {
  static const char* k_prompts[] = {"a watercolor harbour at dusk", "neon city in the rain",
                                    "an oil painting of a forest", "a charcoal sketch of a cat"};
  std::vector<workloads::PromptStep> steps;
  for (std::size_t i = 0; i < n; ++i) {
    const std::string p = k_prompts[i % 4];
    steps.push_back({p, json{{"prompt", p}, {"width", 512}, {"height", 512}}});
  }
  return steps;
}

// A session config with test-friendly defaults (short run, noop, pinned to the emulator).
inline workloads::SessionConfig session_config(std::vector<std::string> orchestrators,
                                               double duration_s) {
  workloads::SessionConfig c;
  c.orchestrators = std::move(orchestrators);
  c.model_id = "noop";
  c.prompts = prompt_steps(1);
  c.duration = std::chrono::milliseconds(static_cast<std::int64_t>(duration_s * 1000));
  c.stream_id = "syn-test-" + std::to_string(::getpid());
  c.request_id = "req-test";
  c.drain = std::chrono::milliseconds(3000);
  return c;
}

// Runs one session on a fresh gateway loop (this thread) until it ends.
inline workloads::SessionResult run_session(workloads::SessionConfig config, int input_fps = 24) {
  asio::io_context io;
  http::Engine engine(io);
  WorkerPool pool(2);
  orch::OrchestratorClient probes(2);
  std::optional<workloads::SessionResult> result;
  std::shared_ptr<workloads::LiveSession> session;
  asio::steady_timer stop(io);
  asio::steady_timer guard(io);
  asio::post(io, [&] {
    session = workloads::LiveSession::create(
        {engine, pool, probes}, std::make_shared<workloads::LoopingInput>(test_clip(input_fps)),
        std::move(config), [&](workloads::SessionResult&& r) {
          result = std::move(r);
          stop.expires_after(std::chrono::milliseconds(300));
          stop.async_wait([&](const boost::system::error_code&) { io.stop(); });
        });
    session->start();
  });
  // A session that never ends is a failure of its own, not a hung test binary.
  guard.expires_after(std::chrono::seconds(120));
  guard.async_wait([&](const boost::system::error_code& ec) {
    if (!ec && session && !result) session->abort("test guard: no end after 120 s");
  });
  io.run();
  session.reset();
  if (!result) throw std::runtime_error("session ended without a result");
  return std::move(*result);
}

}  // namespace naap::test
