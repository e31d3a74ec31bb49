// `naap-loadtest bench`: one live session against one orchestrator (or a pool, or the in-process
// emulator with --emulated), a live progress line, a final report, a JSON run record and an exit
// code (0 pass, 1 SLA breached / failed by the orchestrator, 2 usage, 3 unreachable or start
// failed, 4 our own error). See docs/user-guide.md.
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <future>
#include <thread>

#include "commands.hpp"
#include "naap/core/clock.hpp"
#include "naap/core/ids.hpp"
#include "naap/core/log.hpp"
#include "naap/core/sha256.hpp"
#include "naap/datasets/dataset.hpp"
#include "naap/emulator/emulator.hpp"
#include "naap/media/ingest.hpp"
#include "naap/reports/publisher.hpp"
#include "naap/version.hpp"
#include "naap/workloads/live_session.hpp"
#include "naap/workloads/run_record.hpp"
#include "naap/workloads/session_events.hpp"
#include "naap/workloads/session_plan.hpp"
#include "results_options.hpp"

namespace naap::cli {

namespace asio = boost::asio;
using json = nlohmann::json;

namespace {

constexpr int k_exit_internal = 4;  // our own error (3, unreachable, comes from the outcome)

int usage_error(const std::string& message) {
  std::fprintf(stderr, "naap-loadtest bench: %s\n", message.c_str());
  return k_exit_usage;
}

std::string fmt_ms(const std::optional<double>& v) {
  if (!v) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f ms", *v);
  return buf;
}

std::string fmt_num(const std::optional<double>& v, const char* spec = "%.2f") {
  if (!v) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, spec, *v);
  return buf;
}

std::string fmt_summary(const Histogram& h) {
  auto s = reports::summarize(h);
  if (!s) return "n/a";
  char buf[160];
  std::snprintf(buf, sizeof buf, "p50 %.1f  p95 %.1f  p99 %.1f  max %.1f ms  (%llu frames)",
                s->p50_ms, s->p95_ms, s->p99_ms, s->max_ms,
                static_cast<unsigned long long>(s->count));
  return buf;
}

// The orchestrator a report is about: the last one that served, else the one it aimed at.
std::string report_target(const workloads::SessionResult& r,
                          const workloads::SessionConfig& config) {
  if (!r.orchestrators.empty()) return r.orchestrators.back().address;
  std::string targets;
  for (const auto& o : config.orchestrators) targets += (targets.empty() ? "" : ", ") + o;
  return targets.empty() ? "(no orchestrator)" : targets;
}

void print_report(const workloads::SessionResult& r, const workloads::SessionConfig& config,
                  const workloads::RunContext& ctx) {
  const auto& m = r.metrics;
  std::printf("\nnaap-loadtest bench — %s on %s (scenario %s, dataset %s %s)\n",
              ctx.pipeline.c_str(), report_target(r, config).c_str(), ctx.scenario.c_str(),
              ctx.dataset_id.c_str(), ctx.dataset_version.c_str());
  std::printf("  outcome             %s%s%s\n", r.outcome.c_str(), r.message.empty() ? "" : ": ",
              r.message.c_str());
  std::printf("  decode              %s\n", r.decode_backend.empty()
                                                ? "n/a (no output reached the decoder)"
                                                : r.decode_backend.c_str());
  std::printf("  job accepted        %s\n", fmt_ms(m.job_accept_ms).c_str());
  std::printf("  startup             %s (first byte %s, first frame of any kind %s)\n",
              fmt_ms(m.startup_ms).c_str(), fmt_ms(m.first_output_byte_ms).c_str(),
              fmt_ms(m.first_frame_any_ms).c_str());
  std::printf("  e2e latency         %s\n", fmt_summary(m.e2e_latency_us).c_str());
  if (m.transport_rtt_us.count())
    std::printf("  transport RTT       %s\n", fmt_summary(m.transport_rtt_us).c_str());
  std::printf("  pts offset          %s\n", fmt_ms(m.pts_offset_ms).c_str());
  std::string p2f;
  for (double v : m.prompt_to_first_frame_ms) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%s%.0f", p2f.empty() ? "" : ", ", v);
    p2f += buf;
  }
  std::printf(
      "  prompt→first frame  %s%s\n", p2f.empty() ? "n/a" : (p2f + " ms").c_str(),
      m.prompt_switches_without_effect
          ? (" (" + std::to_string(m.prompt_switches_without_effect) + " without effect)").c_str()
          : "");
  std::printf("  output fps          %s (runner says %s), jitter cv %s, interval cv %s\n",
              fmt_num(m.output_fps).c_str(), fmt_num(m.runner_output_fps_mean).c_str(),
              fmt_num(m.jitter_fps_cv, "%.3f").c_str(),
              fmt_num(m.frame_interval_cv, "%.3f").c_str());
  std::printf("  freezes             %s (%s)\n",
              m.freeze_count ? std::to_string(*m.freeze_count).c_str() : "n/a",
              fmt_ms(m.freeze_ms).c_str());
  std::printf(
      "  frames              sent %llu, expected %s, returned %s, dropped %s, loading %llu, "
      "undecodable %llu\n",
      static_cast<unsigned long long>(m.frames_sent),
      m.frames_expected ? std::to_string(*m.frames_expected).c_str() : "n/a",
      m.frames_returned ? std::to_string(*m.frames_returned).c_str() : "n/a",
      m.frames_dropped ? std::to_string(*m.frames_dropped).c_str() : "n/a",
      static_cast<unsigned long long>(m.frames_loading),
      static_cast<unsigned long long>(m.frames_undecodable));
  std::printf("  send lag            %s, %llu late%s\n", fmt_summary(m.send_lag_us).c_str(),
              static_cast<unsigned long long>(m.frames_late),
              m.gateway_overloaded ? " (GATEWAY OVERLOADED)" : "");
  std::printf("  bandwidth           up %s Mbit/s, down %s Mbit/s\n", fmt_num(m.up_mbps).c_str(),
              fmt_num(m.down_mbps).c_str());
  for (const auto& s : r.timeline.swaps)
    std::printf("  swap                %s → %s: %s\n", s.from_orchestrator.c_str(),
                s.to_orchestrator.empty() ? "(ended)" : s.to_orchestrator.c_str(), s.cause.c_str());
  for (const auto& b : r.breaches) std::printf("  SLA breach          %s\n", b.message.c_str());
  std::printf("  verdict             %s\n", r.outcome == "ok" ? "PASS" : "FAIL");
}

bool write_json(const std::string& path, const json& value, std::string& error) {
  std::ofstream out(path, std::ios::trunc);
  if (!out) {
    error = "cannot open " + path + " for writing";
    return false;
  }
  out << value.dump(2) << "\n";
  out.close();
  if (!out) {
    error = "writing " + path + " failed (disk full?)";
    return false;
  }
  return true;
}

}  // namespace

int run_bench(int argc, char** argv) {
  cxxopts::Options options("naap-loadtest bench",
                           "Run one live-video-to-video session against an orchestrator and "
                           "measure it (METRICS.md).");
  options.add_options()("o,orchestrator",
                        "orchestrator HOST:PORT (repeat for pool mode: swaps move on)",
                        cxxopts::value<std::vector<std::string>>())(
      "emulated", "start the emulator in-process and test it (no network needed)")(
      "pipeline", "pipeline preset from the dataset",
      cxxopts::value<std::string>()->default_value("noop"))(
      "dataset", "dataset id or manifest path",
      cxxopts::value<std::string>()->default_value("naap-default"))(
      "scenario", "scenario id (default: the dataset's first for the pipeline)",
      cxxopts::value<std::string>()->default_value(""))(
      "duration", "seconds of input (default: the scenario's)", cxxopts::value<double>())(
      "prompt-interval", "seconds between prompt switches, 0 = none (default: the scenario's)",
      cxxopts::value<double>())("signer",
                                "remote signer URL (on-chain orchestrators); off-chain without",
                                cxxopts::value<std::string>()->default_value(""))(
      "pin", "expected orchestrator certificate pin sha256//...",
      cxxopts::value<std::string>()->default_value(""))(
      "json", "write the JSON run record to FILE",
      cxxopts::value<std::string>()->default_value(""))(
      "timeline", "write the measurement timeline to FILE",
      cxxopts::value<std::string>()->default_value(""))(
      "decoder", "auto | software | nvdec | none (demux-only frame accounting)",
      cxxopts::value<std::string>()->default_value("auto"))(
      "loopback", "also read our own input channel back (transport RTT)")(
      "seed", "prompt picker seed", cxxopts::value<std::uint64_t>()->default_value("1"))(
      "region", "region tag", cxxopts::value<std::string>()->default_value("local"))(
      "gateway-id", "gateway id tag (default: host name)",
      cxxopts::value<std::string>()->default_value(""))(
      "emulator-fault", "with --emulated: fault KEY=VALUE for every stream (docs/emulator.md)",
      cxxopts::value<std::vector<std::string>>())(
      "emulator-load-time", "with --emulated: seconds of LOADING at stream start",
      cxxopts::value<double>()->default_value("1.0"))("quiet", "no progress line");
  add_results_options(options);
  int exit_code = k_exit_ok;
  auto args = parse_args(options, argc, argv, exit_code);
  if (!args) return exit_code;

  const bool emulated = args->count("emulated") > 0;
  std::vector<std::string> orchestrators;
  if (args->count("orchestrator"))
    orchestrators = (*args)["orchestrator"].as<std::vector<std::string>>();
  if (emulated == !orchestrators.empty())
    return usage_error("give --orchestrator HOST:PORT (repeatable) or --emulated, not both");
  for (const auto& o : orchestrators)
    if (auto a = orch::parse_address(o); !a) return usage_error(a.error().describe());
  if (args->count("emulator-fault") && !emulated)
    return usage_error("--emulator-fault needs --emulated");

  auto results_options = results_options_from(*args);
  if (!results_options) return usage_error(results_options.error().describe());

  // The session plan: dataset, preset, scenario, prompts, thresholds, the clip encoded once.
  workloads::PlanRequest request;
  request.dataset = (*args)["dataset"].as<std::string>();
  request.pipeline = (*args)["pipeline"].as<std::string>();
  request.scenario = (*args)["scenario"].as<std::string>();
  if (args->count("duration")) request.duration_s = (*args)["duration"].as<double>();
  if (args->count("prompt-interval"))
    request.prompt_interval_s = (*args)["prompt-interval"].as<double>();
  request.seed = (*args)["seed"].as<std::uint64_t>();
  request.decoder = (*args)["decoder"].as<std::string>();
  media::ClipCache cache;
  auto plan = workloads::plan_session(request, cache);
  if (!plan) {
    if (plan.error().category == ErrorCategory::config) return usage_error(plan.error().describe());
    std::fprintf(stderr, "naap-loadtest bench: %s\n", plan.error().describe().c_str());
    return k_exit_internal;
  }
  workloads::SessionConfig config = plan->config;
  config.loopback = args->count("loopback") > 0;
  config.signer_url = (*args)["signer"].as<std::string>();
  config.certificate_pin = (*args)["pin"].as<std::string>();
  config.stream_id = "naap-" + uuid_v4().substr(0, 8);
  config.request_id = uuid_v4().substr(0, 8);

  workloads::RunContext context = plan->context;
  context.test_run_id = uuid_v4();
  context.software_version = k_version;
  context.region = (*args)["region"].as<std::string>();
  context.gateway_id = (*args)["gateway-id"].as<std::string>();
  if (context.gateway_id.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    context.gateway_id = host;
  }
  const auto encoded = plan->input;

  // The in-process emulator, on its own thread like a separate peer.
  std::unique_ptr<asio::io_context> emu_io;
  std::unique_ptr<emulator::Emulator> emu;
  std::thread emu_thread;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> emu_work;
  if (emulated) {
    emulator::EmulatorOptions eo;
    eo.port = 0;
    eo.models = {emulator::ModelOffer{config.model_id}};
    eo.load_time_s = (*args)["emulator-load-time"].as<double>();
    if (args->count("emulator-fault")) {
      for (const auto& kv : (*args)["emulator-fault"].as<std::vector<std::string>>()) {
        const auto eq = kv.find('=');
        auto set = eo.faults.defaults.set(kv.substr(0, eq),
                                          eq == std::string::npos ? "" : kv.substr(eq + 1));
        if (!set) return usage_error(set.error().describe());
      }
    }
    emu_io = std::make_unique<asio::io_context>();
    emu = std::make_unique<emulator::Emulator>(*emu_io, eo);
    if (auto started = emu->start(); !started) {
      std::fprintf(stderr, "naap-loadtest bench: emulator: %s\n",
                   started.error().describe().c_str());
      return k_exit_internal;
    }
    emu_work.emplace(emu_io->get_executor());
    emu_thread = std::thread([&] { emu_io->run(); });
    orchestrators = {emu->address()};
    config.certificate_pin = emu->certificate_pin();
  }
  config.orchestrators = orchestrators;

  // Results: every event is spooled, then handed to the sink (docs/results.md).
  auto publisher = reports::open_results(*results_options);
  if (!publisher) {
    std::fprintf(stderr, "naap-loadtest bench: results: %s\n",
                 publisher.error().describe().c_str());
    if (emu) {
      asio::post(*emu_io, [&] { emu->stop(); });
      emu_work.reset();
      emu_thread.join();
    }
    return k_exit_usage;
  }
  const std::int64_t run_started_ms = unix_millis_now();
  std::uint64_t refused = 0;
  auto publish = [&](reports::Envelope&& e) {
    if (*publisher && !(*publisher)->publish(e)) ++refused;
  };
  workloads::SessionEvents events(workloads::event_tags(context, config), config, publish);
  config.on_signal = [&events](const workloads::SessionSignal& s) { events.on_signal(s); };

  // The gateway: one io thread for the network, a small pool for decoding.
  asio::io_context io;
  http::Engine engine(io);
  WorkerPool pool(std::min(4u, std::max(1u, std::thread::hardware_concurrency())), 10);
  orch::OrchestratorClient probes(2);
  const bool progress_line = args->count("quiet") == 0 && isatty(STDERR_FILENO);
  std::optional<workloads::SessionResult> result;
  auto input = std::make_shared<workloads::LoopingInput>(encoded);
  std::shared_ptr<workloads::LiveSession> session;
  asio::steady_timer progress_timer(io);
  asio::steady_timer stop_timer(io);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  std::function<void()> show_progress;
  show_progress = [&] {
    if (!session || result) return;
    const auto p = session->progress();
    char latency[32] = "—";
    if (p.latency_ms >= 0) std::snprintf(latency, sizeof latency, "%.0f ms", p.latency_ms);
    std::fprintf(stderr, "\r\033[K[%6.1fs] %-28s fps %5.1f  e2e %-8s %s", p.elapsed_s,
                 p.state.c_str(), p.fps, latency, p.orchestrator.c_str());
    progress_timer.expires_after(std::chrono::seconds(1));
    progress_timer.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) show_progress();
    });
  };
  asio::post(io, [&] {
    session = workloads::LiveSession::create(
        {engine, pool, probes}, input, config, [&](workloads::SessionResult&& r) {
          result = std::move(r);
          progress_timer.cancel();
          signals.cancel();
          // Give the channel DELETEs a moment to leave, then stop the loop.
          stop_timer.expires_after(std::chrono::milliseconds(500));
          stop_timer.async_wait([&](const boost::system::error_code&) { io.stop(); });
        });
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
      if (!ec && session)
        session->abort(sig == SIGINT ? "interrupted (SIGINT)" : "terminated (SIGTERM)");
    });
    session->start();
    if (progress_line) show_progress();
  });
  io.run();
  if (progress_line) std::fputs("\r\033[K", stderr);
  session.reset();

  if (emu) {
    asio::post(*emu_io, [&] { emu->stop(); });
    emu_work.reset();
    emu_thread.join();
  }
  if (!result) {
    std::fprintf(stderr, "naap-loadtest bench: the session ended without a result\n");
    return k_exit_internal;
  }
  print_report(*result, config, context);
  int code = workloads::exit_code_for(result->outcome);
  const json record = workloads::make_run_record(context, config, *result);
  events.on_result(record);
  {
    json summary = {
        {"run_started_ms", run_started_ms},
        {"run_ended_ms", unix_millis_now()},
        {"sessions_planned", 1},
        {"sessions_started", 1},
        {"outcomes", {{result->outcome, 1}}},
        {"orchestrators_tested", result->orchestrators.size()},
        {"orchestrators_excused", result->outcome == "excused_no_capacity" ? 1 : 0},
        {"config_sha256", Sha256::hex(json{{"orchestrators", config.orchestrators},
                                           {"model_id", config.model_id},
                                           {"prompts", record["prompts"].size()},
                                           {"duration_ms", config.duration.count()}}
                                          .dump())},
        {"datasets",
         json::array({{{"id", context.dataset_id}, {"version", context.dataset_version}}})},
        {"software_version", context.software_version}};
    publish(reports::run_summary(workloads::event_tags(context, config), std::move(summary),
                                 unix_millis_now()));
  }
  if (*publisher) {
    const std::size_t left = (*publisher)->shutdown(results_options->flush_deadline);
    const auto snap = (*publisher)->snapshot();
    std::printf(
        "  results             %llu events to %s%s\n",
        static_cast<unsigned long long>(events.published() + 1), snap.sink.c_str(),
        left == 0
            ? ", all delivered"
            : (", " + std::to_string(left) + " still spooled (sent on the next run)").c_str());
    if (refused > 0) code = k_exit_internal;
  }
  std::string error;
  if (const auto path = (*args)["json"].as<std::string>(); !path.empty()) {
    if (!write_json(path, record, error)) {
      std::fprintf(stderr, "naap-loadtest bench: run record: %s\n", error.c_str());
      code = k_exit_internal;
    }
  }
  if (const auto path = (*args)["timeline"].as<std::string>(); !path.empty()) {
    if (!write_json(path, reports::to_json(result->timeline), error)) {
      std::fprintf(stderr, "naap-loadtest bench: timeline: %s\n", error.c_str());
      code = k_exit_internal;
    }
  }
  return code;
}

}  // namespace naap::cli
