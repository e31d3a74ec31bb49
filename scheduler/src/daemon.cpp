// The daemon loop (see daemon.hpp). Everything but the ops listener and the results pipeline
// runs on one io thread: discovery, the planner's ticks, every session, the signals.
#include "naap/scheduler/daemon.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cmath>
#include <csignal>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "naap/core/clock.hpp"
#include "naap/core/ids.hpp"
#include "naap/core/log.hpp"
#include "naap/core/worker_pool.hpp"
#include "naap/reports/events.hpp"
#include "naap/reports/publisher.hpp"
#include "naap/scheduler/planner.hpp"
#include "naap/scheduler/schedule_state.hpp"
#include "naap/transport/discovery.hpp"
#include "naap/transport/http_engine.hpp"
#include "naap/transport/orchestrator_client.hpp"
#include "naap/transport/remote_signer.hpp"
#include "naap/transport/trickle_server.hpp"
#include "naap/workloads/live_session.hpp"
#include "naap/workloads/run_record.hpp"
#include "naap/workloads/session_events.hpp"
#include "naap/workloads/session_plan.hpp"

namespace naap::scheduler {

namespace asio = boost::asio;
using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

namespace {

// Time a session needs beyond its input: GetOrchestrator, job start, startup, drain.
constexpr Millis k_session_overhead{30'000};
// The loop wakes at least this often (status, healthz heartbeat, watchdogs).
constexpr Millis k_max_sleep{5'000};
// After SIGTERM, sessions get this long to write their aborted records.
constexpr Millis k_drain_grace{15'000};
// Session duration histogram buckets, seconds.
constexpr std::array<double, 8> k_duration_buckets{5, 15, 30, 60, 120, 300, 600, 1800};

std::int64_t unix_ms(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string hex_of(const std::string& bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  if (bytes.empty()) return "";
  std::string out = "0x";
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

// Prometheus label value escaping.
std::string label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

media::DecoderOptions::Backend backend_of(DecoderChoice c) {
  switch (c) {
    case DecoderChoice::software:
      return media::DecoderOptions::Backend::software;
    case DecoderChoice::nvdec:
      return media::DecoderOptions::Backend::nvdec;
    default:
      return media::DecoderOptions::Backend::automatic;
  }
}

}  // namespace

struct Daemon::Impl {
  // What /metrics and /readyz report; written on the io thread, read by the ops thread.
  struct Status {
    std::int64_t rounds_begun = 0;
    std::int64_t rounds_completed = 0;
    std::int64_t missed_slots = 0;
    std::int64_t sessions_started = 0;
    std::map<std::string, std::int64_t> sessions_by_outcome;
    std::int64_t running = 0;
    std::map<std::string, double> last_tested_s;  // orchestrator → Unix seconds
    std::int64_t orchestrators_known = 0;
    std::map<std::string, std::int64_t> discovery_errors;  // source → count
    std::int64_t probe_errors = 0;
    bool discovered_once = false;
    bool stopping = false;
    std::int64_t reloads = 0;
    std::int64_t reload_failures = 0;
    std::array<std::int64_t, k_duration_buckets.size()> duration_buckets{};
    std::int64_t duration_count = 0;
    double duration_sum_s = 0;
    std::int64_t publish_refused = 0;
    std::map<std::string, std::int64_t> sessions_skipped;  // reason → count
  };

  struct Known {
    std::string source;                         // static, webhook or signer
    std::optional<net::OrchestratorInfo> info;  // the last probe's answer, if it answered
    std::string error;                          // the last probe's error
  };

  struct Running {
    Job job;
    std::shared_ptr<workloads::LiveSession> session;
    SteadyClock::time_point started;
  };

  explicit Impl(DaemonOptions o)
      : options(std::move(o)),
        config(options.config),
        engine(io),
        pool(std::min(4u, std::max(1u, std::thread::hardware_concurrency())), 10),
        probes(2),
        tick_timer(io),
        discovery_timer(io),
        drain_timer(io),
        signals(io, SIGINT, SIGTERM, SIGHUP) {}

  ~Impl() {
    if (ops) {
      asio::post(ops_io, [this] { ops->stop(); });
      ops_work.reset();
      if (ops_thread.joinable()) ops_thread.join();
      ops.reset();
    }
  }

  DaemonOptions options;
  Config config;
  asio::io_context io;
  http::Engine engine;
  WorkerPool pool;
  orch::OrchestratorClient probes;
  std::unique_ptr<orch::RemoteSigner> discovery_signer;
  std::optional<orch::SignerIdentity> signer_identity;
  std::unique_ptr<reports::Publisher> publisher;
  std::optional<Planner> planner;
  std::filesystem::path state_path;
  std::uint64_t saved_revision = 0;
  media::ClipCache clips;
  std::vector<std::optional<workloads::SessionPlan>> plans;  // per test; nullopt: unusable
  std::map<std::string, Known> known;                        // by HOST:PORT
  bool discovery_running = false;
  asio::steady_timer tick_timer;
  asio::steady_timer discovery_timer;
  asio::steady_timer drain_timer;
  asio::signal_set signals;
  std::map<std::string, Running> running;  // by job id
  bool stopping = false;
  bool finished = false;
  std::optional<Config> pending_config;
  std::string round_run_id;
  std::int64_t round_index = -1;
  std::map<std::string, std::int64_t> outcomes_this_run;
  std::int64_t skipped_this_run = 0;  // sessions not started because results could not be kept
  bool round_done_once = false;
  int exit_code = k_exit_round_ok;

  mutable std::mutex status_mutex;
  Status status;
  std::atomic<std::int64_t> heartbeat_ms{0};

  asio::io_context ops_io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> ops_work;
  std::unique_ptr<trickle::TrickleServer> ops;
  std::thread ops_thread;
  std::string ops_address;

  // ---- setup ----

  PlannerOptions planner_options() const {
    PlannerOptions po;
    po.region = config.region;
    po.period = config.round.period;
    po.watchdog_slack = config.watchdog_slack;
    po.global_max_concurrent = config.concurrency;
    po.budget.max_concurrent = config.budgets.max_concurrent;
    po.budget.min_gap = config.budgets.min_gap;
    po.budget.daily_budget = config.budgets.daily_time;
    // once: no spreading inside the period; every job is due at the round's begin.
    if (options.once) po.margin = config.round.period;
    return po;
  }

  void build_plans() {
    plans.clear();
    for (std::size_t i = 0; i < config.tests.size(); ++i) {
      const TestSpec& t = config.tests[i];
      workloads::PlanRequest request;
      request.dataset = t.dataset;
      request.pipeline = t.pipeline;
      request.scenario = t.scenario;
      if (t.duration) request.duration_s = static_cast<double>(t.duration->count()) / 1000.0;
      if (t.prompt_interval)
        request.prompt_interval_s = static_cast<double>(t.prompt_interval->count()) / 1000.0;
      request.decoder = std::string(to_string(config.decoder));
      auto plan = workloads::plan_session(request, clips);
      if (!plan) {
        log::error("test_unusable",
                   {{"test", i}, {"pipeline", t.pipeline}, {"error", plan.error().describe()}});
        plans.emplace_back(std::nullopt);
        continue;
      }
      plan->config.decoder.backend = backend_of(config.decoder);
      plans.emplace_back(std::move(*plan));
    }
  }

  Result<void> open() {
    build_plans();
    if (std::none_of(plans.begin(), plans.end(), [](const auto& p) { return p.has_value(); }))
      return fail(Error(ErrorCategory::config, "no configured test can run (see test_unusable)"));
    state_path = config.state_dir / "schedule-state.json";
    auto state = load_state(state_path);
    if (!state) return fail(state.error());
    ScheduleState initial = std::move(*state);
    if (options.once) {
      // One round now, whatever the grid says; budgets and coverage carry over.
      ScheduleState fresh;
      fresh.coverage = initial.coverage;
      initial = std::move(fresh);
    }
    auto p = Planner::create(planner_options(), std::move(initial));
    if (!p) return fail(p.error());
    planner.emplace(std::move(*p));
    saved_revision = planner->revision();
    reports::ResultsOptions results = config.results;
    if (results.sink == reports::ResultsOptions::SinkKind::jsonl &&
        results.jsonl_path.is_relative() && results.jsonl_path == "naap-events.jsonl")
      results.jsonl_path = config.state_dir / "events.jsonl";
    auto pub = reports::open_results(results);
    if (!pub) return fail(pub.error());
    publisher = std::move(*pub);
    if (config.signer_url)
      discovery_signer = std::make_unique<orch::RemoteSigner>(engine, *config.signer_url);
    return start_ops();
  }

  // ---- ops endpoints (their own thread, so /healthz still answers when the loop is stuck) ----

  Result<void> start_ops() {
    if (config.ops.listen.empty()) return {};
    const std::string& listen = config.ops.listen;
    if (const std::string problem = check_host_port(listen, true); !problem.empty())
      return fail(Error(ErrorCategory::config, "ops.listen: " + problem));
    const auto colon = listen.rfind(':');
    std::string host = listen.substr(0, colon);
    if (host.starts_with('[') && host.ends_with(']')) host = host.substr(1, host.size() - 2);
    const auto wanted = static_cast<std::uint16_t>(std::stoi(listen.substr(colon + 1)));
    trickle::ServerOptions so;
    so.base_path = "/.trickle-unused/";
    so.app_handler = [this](const trickle::AppRequest& r) { return serve(r); };
    ops = std::make_unique<trickle::TrickleServer>(ops_io, so);
    auto port = ops->listen(host, wanted);
    if (!port)
      return fail(Error(ErrorCategory::config, "ops.listen " + config.ops.listen +
                                                   ": cannot listen: " + port.error().message));
    ops_address = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
                  std::to_string(*port);
    ops_work.emplace(ops_io.get_executor());
    ops_thread = std::thread([this] { ops_io.run(); });
    log::info("ops_listening", {{"address", ops_address}});
    return {};
  }

  trickle::AppResponse serve(const trickle::AppRequest& r) {
    trickle::AppResponse out;
    const std::string_view path = r.path();
    if (r.method != "GET") {
      out.status = 405;
      out.body = "GET only\n";
      return out;
    }
    if (path == "/healthz") {
      const std::int64_t age = unix_millis_now() - heartbeat_ms.load();
      out.status = age < 30'000 ? 200 : 503;
      out.body = out.status == 200
                     ? "ok\n"
                     : "event loop stalled: no tick for " + std::to_string(age / 1000) + " s\n";
      return out;
    }
    if (path == "/readyz") {
      std::string why;
      {
        std::lock_guard lock(status_mutex);
        if (status.stopping)
          why = "draining after SIGTERM";
        else if (!status.discovered_once)
          why = "first discovery not finished";
      }
      if (why.empty() && publisher && publisher->refusing())
        why = "results spool refusing events (full or disk error)";
      out.status = why.empty() ? 200 : 503;
      out.body = why.empty() ? "ready\n" : why + "\n";
      return out;
    }
    if (path == "/metrics") {
      out.content_type = "text/plain; version=0.0.4; charset=utf-8";
      out.body = metrics_text();
      return out;
    }
    out.status = 404;
    out.body = "not found: /healthz, /readyz, /metrics\n";
    return out;
  }

  std::string metrics_text() const {
    std::ostringstream m;
    auto metric = [&m](const char* name, const char* type, const char* help) {
      m << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
    };
    Status s;
    {
      std::lock_guard lock(status_mutex);
      s = status;
    }
    metric("naap_build_info", "gauge", "Software version and region of this gateway.");
    m << "naap_build_info{version=\"" << label(options.software_version) << "\",region=\""
      << label(config.region) << "\",gateway_id=\"" << label(config.gateway_id) << "\"} 1\n";
    metric("naap_rounds_begun_total", "counter", "Rounds begun.");
    m << "naap_rounds_begun_total " << s.rounds_begun << '\n';
    metric("naap_rounds_completed_total", "counter", "Rounds whose every job ended.");
    m << "naap_rounds_completed_total " << s.rounds_completed << '\n';
    metric("naap_rounds_missed_total", "counter",
           "Round slots that did not run (the previous round overran, or the daemon was down).");
    m << "naap_rounds_missed_total " << s.missed_slots << '\n';
    metric("naap_sessions_started_total", "counter", "Test sessions started.");
    m << "naap_sessions_started_total " << s.sessions_started << '\n';
    metric("naap_sessions_total", "counter", "Test sessions ended, by METRICS.md outcome.");
    for (const auto& [outcome, n] : s.sessions_by_outcome)
      m << "naap_sessions_total{outcome=\"" << label(outcome) << "\"} " << n << '\n';
    metric("naap_sessions_skipped_total", "counter",
           "Planned test sessions not started, by reason (results_spool_refusing: results could "
           "not have been kept).");
    for (const auto& [reason, n] : s.sessions_skipped)
      m << "naap_sessions_skipped_total{reason=\"" << label(reason) << "\"} " << n << '\n';
    metric("naap_sessions_running", "gauge", "Test sessions running now.");
    m << "naap_sessions_running " << s.running << '\n';
    metric("naap_orchestrator_last_tested_timestamp_seconds", "gauge",
           "When each orchestrator's last test started (Unix seconds).");
    for (const auto& [orch, t] : s.last_tested_s)
      m << "naap_orchestrator_last_tested_timestamp_seconds{orchestrator=\"" << label(orch)
        << "\"} " << std::fixed << t << '\n';
    m.unsetf(std::ios::fixed);
    metric("naap_orchestrators_known", "gauge", "Orchestrators found by the last discovery.");
    m << "naap_orchestrators_known " << s.orchestrators_known << '\n';
    metric("naap_discovery_errors_total", "counter", "Discovery source failures, by source.");
    for (const auto& [source, n] : s.discovery_errors)
      m << "naap_discovery_errors_total{source=\"" << label(source) << "\"} " << n << '\n';
    metric("naap_discovery_probe_errors_total", "counter", "GetOrchestrator probes that failed.");
    m << "naap_discovery_probe_errors_total " << s.probe_errors << '\n';
    metric("naap_session_duration_seconds", "histogram", "Wall time of test sessions.");
    std::int64_t cumulative = 0;
    for (std::size_t i = 0; i < k_duration_buckets.size(); ++i) {
      cumulative += s.duration_buckets[i];
      m << "naap_session_duration_seconds_bucket{le=\"" << k_duration_buckets[i] << "\"} "
        << cumulative << '\n';
    }
    m << "naap_session_duration_seconds_bucket{le=\"+Inf\"} " << s.duration_count << '\n';
    m << "naap_session_duration_seconds_sum " << s.duration_sum_s << '\n';
    m << "naap_session_duration_seconds_count " << s.duration_count << '\n';
    metric("naap_config_reloads_total", "counter", "SIGHUP reloads applied.");
    m << "naap_config_reloads_total " << s.reloads << '\n';
    metric("naap_config_reload_failures_total", "counter", "SIGHUP reloads refused (invalid).");
    m << "naap_config_reload_failures_total " << s.reload_failures << '\n';
    if (publisher) {
      const auto p = publisher->snapshot();
      metric("naap_results_backlog", "gauge", "Events spooled without a delivery report.");
      m << "naap_results_backlog{sink=\"" << label(p.sink) << "\"} " << p.backlog << '\n';
      metric("naap_results_held", "gauge", "Events the spool refused, held in memory.");
      m << "naap_results_held " << p.held << '\n';
      metric("naap_results_oldest_pending_age_seconds", "gauge",
             "Age of the oldest undelivered event.");
      m << "naap_results_oldest_pending_age_seconds " << p.oldest_pending_age_s << '\n';
      metric("naap_results_published_total", "counter", "Events accepted into the spool.");
      m << "naap_results_published_total " << p.published << '\n';
      metric("naap_results_delivered_total", "counter", "Events with a positive delivery report.");
      m << "naap_results_delivered_total " << p.delivered << '\n';
      metric("naap_results_delivery_failures_total", "counter",
             "Negative delivery reports (the event stays spooled and is resent).");
      m << "naap_results_delivery_failures_total " << p.failed_attempts << '\n';
      metric("naap_results_spool_bytes", "gauge", "Size of the spool journal.");
      m << "naap_results_spool_bytes " << p.journal_bytes << '\n';
      metric("naap_results_spool_refusing", "gauge", "1 while the spool refuses events.");
      m << "naap_results_spool_refusing " << (p.spool_refusing ? 1 : 0) << '\n';
    }
    return m.str();
  }

  template <class F>
  void update_status(F&& f) {
    std::lock_guard lock(status_mutex);
    f(status);
  }

  // ---- results ----

  reports::EventTags discovery_tags(const std::string& model) const {
    reports::EventTags t;
    t.test_run_id = round_run_id.empty() ? "discovery-" + config.gateway_id : round_run_id;
    t.scenario = "discovery";
    t.gateway_id = config.gateway_id;
    t.region = config.region;
    t.pipeline = model;
    t.model_id = model;
    t.pipeline_id = "syn-discovery";
    return t;
  }

  void publish(reports::Envelope&& e) {
    if (!publisher) return;
    if (!publisher->publish(e)) update_status([](Status& s) { ++s.publish_refused; });
  }

  // ---- discovery ----

  std::string probe_model() const {
    for (const auto& p : plans)
      if (p) return p->config.model_id;
    return "";
  }

  void discover() {
    if (discovery_running || stopping) return;
    discovery_running = true;
    auto found = std::make_shared<std::map<std::string, std::string>>();  // address → source
    auto pending = std::make_shared<int>(1);
    auto done_one = [this, found, pending] {
      if (--*pending == 0) probe_all(*found);
    };
    for (const auto& a : config.discovery.static_addresses) {
      auto n = orch::normalize_orchestrator_address(a);
      if (n) found->emplace(*n, "static");
    }
    if (config.discovery.webhook) {
      ++*pending;
      orch::fetch_webhook(engine, config.discovery.webhook->url, config.discovery.webhook->timeout,
                          [this, found, done_one](Result<std::vector<orch::DiscoveredAddress>> r) {
                            if (!r) {
                              log::error("discovery_source_failed",
                                         {{"source", "webhook"}, {"error", r.error().describe()}});
                              update_status([](Status& s) { ++s.discovery_errors["webhook"]; });
                            } else {
                              for (const auto& d : *r) found->emplace(d.address, "webhook");
                            }
                            done_one();
                          });
    }
    if (config.discovery.signer) {
      ++*pending;
      auto signer = std::make_shared<orch::RemoteSigner>(engine, config.discovery.signer->url);
      signer->discover_orchestrators(
          probe_model(), [this, signer, found,
                          done_one](Result<std::vector<orch::DiscoveredOrchestrator>> r) mutable {
            if (!r) {
              log::error("discovery_source_failed",
                         {{"source", "signer"}, {"error", r.error().describe()}});
              update_status([](Status& s) { ++s.discovery_errors["signer"]; });
            } else {
              for (const auto& d : *r) {
                auto n = orch::normalize_orchestrator_address(d.address);
                if (n)
                  found->emplace(*n, "signer");
                else
                  log::warn("discovery_bad_address",
                            {{"source", "signer"}, {"error", n.error().describe()}});
              }
            }
            done_one();
            asio::post(io, [signer] {});  // released after its callback returned
            signer.reset();
          });
    }
    done_one();
  }

  void probe_all(std::map<std::string, std::string> found) {
    if (config.signer_url && !signer_identity && discovery_signer) {
      discovery_signer->sign_orchestrator_info(
          [this, found = std::move(found)](Result<orch::SignerIdentity> id) mutable {
            if (id)
              signer_identity = std::move(*id);
            else
              log::error("discovery_signer_identity_failed", {{"error", id.error().describe()}});
            probe_found(std::move(found));
          });
      return;
    }
    probe_found(std::move(found));
  }

  void probe_found(std::map<std::string, std::string> found) {
    auto results = std::make_shared<std::map<std::string, Known>>();
    auto entries = std::make_shared<std::vector<reports::DiscoveredEntry>>();
    auto pending = std::make_shared<std::size_t>(found.size());
    const std::string model = probe_model();
    if (found.empty()) return finish_discovery(std::move(*results), {});
    for (const auto& [address, source] : found) {
      orch::ProbeOptions po;
      po.model_id = model;
      po.deadline = config.discovery.probe_timeout;
      po.ignore_capacity_check = true;  // learn a full orchestrator's offer too
      if (signer_identity) {
        po.sender_address = signer_identity->address;
        po.sender_sig = signer_identity->signature;
      }
      probes.get_orchestrator(
          address, po, io.get_executor(),
          [this, address = address, source = source, results, entries, pending,
           model](Result<orch::OrchestratorProbe> r) {
            Known k;
            k.source = source;
            if (r) {
              k.info = r->info;
              entries->push_back({hex_of(r->info.address()), r->info.transcoder(),
                                  static_cast<std::int64_t>(std::lround(r->latency_ms))});
              publish(reports::network_capabilities(discovery_tags(model),
                                                    orch::network_capabilities_entry(r->info),
                                                    unix_millis_now()));
            } else {
              k.error = r.error().describe();
              log::warn("discovery_probe_failed", {{"orchestrator", address}, {"error", k.error}});
              update_status([](Status& s) { ++s.probe_errors; });
            }
            (*results)[address] = std::move(k);
            if (--*pending == 0) finish_discovery(std::move(*results), std::move(*entries));
          });
    }
  }

  void finish_discovery(std::map<std::string, Known> results,
                        std::vector<reports::DiscoveredEntry> entries) {
    discovery_running = false;
    if (auto e =
            reports::discovery_results(discovery_tags(probe_model()), entries, unix_millis_now()))
      publish(std::move(*e));
    known = std::move(results);
    log::info("discovery_done", {{"orchestrators", known.size()}, {"answered", entries.size()}});
    update_status([&](Status& s) {
      s.orchestrators_known = static_cast<std::int64_t>(known.size());
      s.discovered_once = true;
    });
    if (!options.once) {
      discovery_timer.expires_after(config.discovery.refresh);
      discovery_timer.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) discover();
      });
    }
    tick();
  }

  // ---- rounds ----

  std::vector<Target> targets() const {
    std::vector<Target> out;
    for (std::size_t i = 0; i < plans.size(); ++i) {
      if (!plans[i]) continue;
      const TestSpec& spec = config.tests[i];
      for (const auto& [address, k] : known) {
        if (!spec.include.empty() &&
            std::find(spec.include.begin(), spec.include.end(), address) == spec.include.end())
          continue;
        if (std::find(spec.exclude.begin(), spec.exclude.end(), address) != spec.exclude.end())
          continue;
        // An orchestrator that answered but does not offer the model is not advertising it.
        if (k.info && !orch::model_info(*k.info, plans[i]->config.model_id)) continue;
        out.push_back(
            {address, static_cast<int>(i),
             std::chrono::duration_cast<Millis>(plans[i]->config.duration) + k_session_overhead});
      }
    }
    return out;
  }

  void tick() {
    if (finished) return;
    const SystemTime now = std::chrono::system_clock::now();
    heartbeat_ms = unix_millis_now();
    if (!stopping && known.empty() && !status_discovered()) return schedule(now);
    if (!stopping && planner->round_complete() && pending_config) apply_reload();
    if (!stopping && planner->round_due(now) && !(options.once && round_done_once)) {
      const auto t = targets();
      if (auto round = planner->begin_round_if_due(now, t)) {
        round_index = round->index;
        round_run_id =
            config.gateway_id + "-" + config.region + "-r" + std::to_string(round->index);
        log::info("round_begun", {{"round", round->index},
                                  {"test_run_id", round_run_id},
                                  {"planned", round->planned},
                                  {"already_started", round->already_started},
                                  {"missed_before", round->missed_before}});
        update_status([](Status& s) { ++s.rounds_begun; });
        if (t.empty()) log::warn("round_without_targets", {{"round", round->index}});
      }
    }
    for (const auto& job : planner->expired(now)) {
      auto it = running.find(job.id);
      if (it != running.end() && it->second.session)
        it->second.session->abort("watchdog: still running " +
                                  std::to_string(config.watchdog_slack.count() / 1000) +
                                  " s after its planned end");
    }
    if (!stopping) {
      // A session started while the spool refuses events would lose its results (EVENTS.md
      // §5.6): skip what falls due, and let the round's summary say so.
      if (publisher && publisher->refusing()) {
        for (const auto& job : planner->skip_due(now, k_skip_results_spool)) {
          log::error("session_skipped", {{"job", job.id},
                                         {"orchestrator", job.target.orchestrator},
                                         {"reason", k_skip_results_spool},
                                         {"why",
                                          "the results spool refuses events (full or disk "
                                          "error): a test now could not keep its results"}});
          ++skipped_this_run;
          update_status(
              [](Status& st) { ++st.sessions_skipped[std::string(k_skip_results_spool)]; });
        }
      } else {
        for (const auto& job : planner->poll(now)) start_job(job);
      }
    }
    for (const auto& missed : planner->take_missed_slots()) {
      log::warn("round_missed", {{"round", missed.round}, {"reason", to_string(missed.reason)}});
      update_status([](Status& s) { ++s.missed_slots; });
    }
    for (const auto& summary : planner->take_completed_rounds()) publish_summary(summary);
    save_state_if_changed();
    if (options.once && round_done_once && running.empty()) return finish_run();
    if (stopping && running.empty()) return finish_run();
    schedule(now);
  }

  bool status_discovered() const {
    std::lock_guard lock(status_mutex);
    return status.discovered_once;
  }

  void schedule(SystemTime now) {
    if (finished) return;
    SystemTime next = planner->next_wakeup(now);
    auto wait = std::chrono::duration_cast<Millis>(next - now);
    wait = std::clamp(wait, Millis(20), k_max_sleep);
    tick_timer.expires_after(wait);
    tick_timer.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) tick();
    });
  }

  void save_state_if_changed() {
    if (planner->revision() == saved_revision) return;
    if (auto r = save_state(state_path, planner->state()); !r) {
      log::error("schedule_state_not_saved", {{"error", r.error().describe()}});
      return;
    }
    saved_revision = planner->revision();
    update_status([&](Status& s) {
      for (const auto& [orch, c] : planner->state().coverage)
        if (c.last_tested)
          s.last_tested_s[orch] = static_cast<double>(unix_ms(*c.last_tested)) / 1000.0;
    });
  }

  void publish_summary(const RoundSummary& summary) {
    round_done_once = true;
    update_status([](Status& s) { ++s.rounds_completed; });
    json datasets = json::array();
    std::set<std::pair<std::string, std::string>> seen;
    for (const auto& p : plans)
      if (p && seen.insert({p->context.dataset_id, p->context.dataset_version}).second)
        datasets.push_back(
            {{"id", p->context.dataset_id}, {"version", p->context.dataset_version}});
    json outcomes = json::object();
    for (const auto& [k, v] : summary.outcomes) outcomes[k] = v;
    std::int64_t skipped = 0;
    for (const auto& [k, v] : summary.skipped) skipped += v;
    json data = {{"round", summary.index},
                 {"run_started_ms", unix_ms(summary.start)},
                 {"run_ended_ms", unix_ms(summary.end)},
                 {"sessions_planned", summary.planned},
                 {"sessions_started", summary.started},
                 {"sessions_skipped", skipped},
                 {"skipped", summary.skipped},
                 {"outcomes", outcomes},
                 {"orchestrators_tested", summary.orchestrators_tested},
                 {"orchestrators_excused", summary.orchestrators_excused},
                 {"missed_slots", summary.missed_before + summary.missed_during},
                 {"config_sha256", config.fingerprint()},
                 {"datasets", datasets},
                 {"software_version", options.software_version}};
    reports::EventTags tags = discovery_tags(probe_model());
    tags.test_run_id =
        config.gateway_id + "-" + config.region + "-r" + std::to_string(summary.index);
    tags.scenario = "round";
    tags.pipeline_id = "syn-round";
    publish(reports::run_summary(tags, std::move(data), unix_millis_now()));
    log::info("round_completed", {{"round", summary.index},
                                  {"planned", summary.planned},
                                  {"started", summary.started},
                                  {"failed", summary.failed},
                                  {"excused", summary.excused}});
  }

  // ---- sessions ----

  void start_job(const Job& job) {
    const auto& plan = plans[static_cast<std::size_t>(job.target.test_index)];
    if (!plan) {
      (void)planner->finished(job.id, std::chrono::system_clock::now(), "gateway_error");
      return;
    }
    workloads::SessionConfig cfg = plan->config;
    cfg.orchestrators = {job.target.orchestrator};
    cfg.stream_id = "syn-" + uuid_v4().substr(0, 8);
    cfg.request_id = uuid_v4().substr(0, 8);
    cfg.signer_url = config.signer_url.value_or("");
    workloads::RunContext ctx = plan->context;
    ctx.test_run_id = round_run_id;
    ctx.gateway_id = config.gateway_id;
    ctx.region = config.region;
    ctx.software_version = options.software_version;
    auto events = std::make_shared<workloads::SessionEvents>(
        workloads::event_tags(ctx, cfg), cfg,
        [this](reports::Envelope&& e) { publish(std::move(e)); });
    cfg.on_signal = [events](const workloads::SessionSignal& s) { events->on_signal(s); };
    auto input = std::make_shared<workloads::LoopingInput>(plan->input);
    const json schedule = {{"round", job.round},
                           {"job_id", job.id},
                           {"due", workloads::iso8601(job.due)},
                           {"watchdog_deadline", workloads::iso8601(job.deadline)}};
    auto session = workloads::LiveSession::create(
        {engine, pool, probes}, input, cfg,
        [this, id = job.id, cfg, ctx, events, schedule](workloads::SessionResult&& r) {
          json record = workloads::make_run_record(ctx, cfg, r);
          record["schedule"] = schedule;
          events->on_result(record);
          on_session_done(id, r.outcome);
        });
    running[job.id] = Running{job, session, SteadyClock::now()};
    update_status([&](Status& s) {
      ++s.sessions_started;
      s.running = static_cast<std::int64_t>(running.size());
    });
    log::info("session_started", {{"job", job.id},
                                  {"orchestrator", job.target.orchestrator},
                                  {"stream_id", cfg.stream_id},
                                  {"request_id", cfg.request_id}});
    session->start();
  }

  void on_session_done(const std::string& id, const std::string& outcome) {
    const auto it = running.find(id);
    double seconds = 0;
    if (it != running.end())
      seconds = std::chrono::duration<double>(SteadyClock::now() - it->second.started).count();
    if (auto r = planner->finished(id, std::chrono::system_clock::now(), outcome); !r)
      log::error("planner_finished_failed", {{"job", id}, {"error", r.error().describe()}});
    ++outcomes_this_run[outcome];
    update_status([&](Status& s) {
      ++s.sessions_by_outcome[outcome];
      ++s.duration_count;
      s.duration_sum_s += seconds;
      for (std::size_t i = 0; i < k_duration_buckets.size(); ++i)
        if (seconds <= k_duration_buckets[i]) {
          ++s.duration_buckets[i];
          break;
        }
    });
    // The session is inside its own callback: release it from the loop, then look again.
    asio::post(io, [this, id] {
      running.erase(id);
      update_status([&](Status& s) { s.running = static_cast<std::int64_t>(running.size()); });
      tick();
    });
  }

  // ---- signals ----

  void arm_signals() {
    signals.async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP)
        reload();
      else
        drain(sig == SIGINT ? "SIGINT" : "SIGTERM");
      if (!finished) arm_signals();
    });
  }

  void drain(const std::string& why) {
    if (stopping) return;
    stopping = true;
    update_status([](Status& s) { s.stopping = true; });
    log::info("daemon_draining", {{"signal", why}, {"sessions_running", running.size()}});
    discovery_timer.cancel();
    for (auto& [id, r] : running)
      if (r.session) r.session->abort("shutdown (" + why + "): the session was cut short");
    drain_timer.expires_after(k_drain_grace);
    drain_timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec || finished) return;
      log::error("daemon_drain_timeout", {{"sessions_running", running.size()}});
      finish_run();
    });
    tick();
  }

  void reload() {
    if (options.config_path.empty()) {
      log::warn("config_reload_ignored", {{"reason", "no configuration file"}});
      return;
    }
    std::vector<ConfigProblem> problems;
    auto next = load_config(options.config_path, process_env(), &problems);
    if (!next) {
      for (const auto& p : problems)
        log::error("config_reload_problem", {{"problem", p.to_string()}});
      log::error("config_reload_refused", {{"file", options.config_path.string()},
                                           {"problems", problems.size()},
                                           {"hint", "the running configuration stays in effect"}});
      update_status([](Status& s) { ++s.reload_failures; });
      return;
    }
    pending_config = std::move(*next);
    log::info("config_reload_pending", {{"applies", "when the current round completes"}});
    tick();
  }

  void apply_reload() {
    Config next = std::move(*pending_config);
    pending_config.reset();
    if (next.results.sink != config.results.sink || next.ops.listen != config.ops.listen ||
        next.state_dir != config.state_dir || next.region != config.region)
      log::warn("config_reload_partial",
                {{"hint", "sinks, ops.listen, state_dir and region take effect after a restart"}});
    next.results = config.results;
    next.ops = config.ops;
    next.state_dir = config.state_dir;
    next.region = config.region;
    config = std::move(next);
    build_plans();
    auto p = Planner::create(planner_options(), planner->state());
    if (!p) {
      log::error("config_reload_planner", {{"error", p.error().describe()}});
      return;
    }
    planner.emplace(std::move(*p));
    update_status([](Status& s) { ++s.reloads; });
    log::info("config_reloaded",
              {{"fingerprint", config.fingerprint()}, {"tests", config.tests.size()}});
    discovery_timer.cancel();
    discover();
  }

  // ---- end ----

  void finish_run() {
    if (finished) return;
    finished = true;
    tick_timer.cancel();
    discovery_timer.cancel();
    drain_timer.cancel();
    signals.cancel();
    for (const auto& summary : planner->take_completed_rounds()) publish_summary(summary);
    save_state_if_changed();
    std::size_t left = 0;
    if (publisher) left = publisher->shutdown(config.results.flush_deadline);
    exit_code = compute_exit_code(left);
    log::info("daemon_stopped", {{"exit_code", exit_code}, {"results_left_spooled", left}});
    io.stop();
  }

  int compute_exit_code(std::size_t left_spooled) const {
    if (!options.once) return k_exit_round_ok;
    if (known.empty()) return k_exit_no_orchestrators;
    std::int64_t total = 0;
    bool failed = false;
    bool ours = left_spooled > 0 || skipped_this_run > 0;
    for (const auto& [outcome, n] : outcomes_this_run) {
      total += n;
      if (outcome == "gateway_error" || outcome == "aborted") ours = true;
      if (outcome_is_failure(outcome)) failed = true;
    }
    if (total == 0) return skipped_this_run > 0 ? k_exit_gateway : k_exit_no_orchestrators;
    if (failed) return k_exit_round_failures;
    if (ours || stopping) return k_exit_gateway;
    return k_exit_round_ok;
  }

  int run() {
    heartbeat_ms = unix_millis_now();
    arm_signals();
    log::info("daemon_started", {{"mode", options.once ? "once" : "run"},
                                 {"region", config.region},
                                 {"gateway_id", config.gateway_id},
                                 {"period", format_duration(config.round.period)},
                                 {"tests", config.tests.size()},
                                 {"config_sha256", config.fingerprint()}});
    asio::post(io, [this] {
      discover();
      schedule(std::chrono::system_clock::now());
    });
    io.run();
    return exit_code;
  }
};

Result<std::unique_ptr<Daemon>> Daemon::create(DaemonOptions options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  if (auto r = impl->open(); !r) return fail(r.error());
  return std::unique_ptr<Daemon>(new Daemon(std::move(impl)));
}

Daemon::Daemon(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Daemon::~Daemon() = default;
int Daemon::run() {
  return impl_->run();
}
std::string Daemon::ops_address() const {
  return impl_->ops_address;
}

}  // namespace naap::scheduler
