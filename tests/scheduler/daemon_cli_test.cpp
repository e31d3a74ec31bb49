// `naap-loadtest once` and `run` as operators run them, against three in-process emulators with
// different fault profiles: every session of the round is recorded with its outcome, SIGTERM in
// the middle of a round still records every in-flight session (flagged aborted), the ops
// endpoints answer, a bad configuration is refused with file:line:key, a bad reload is survived.
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <future>
#include <map>
#include <set>

#include "../reports/test_dir.hpp"
#include "../transport/signer_standin.hpp"
#include "../transport/silent_listener.hpp"
#include "../workloads/session_harness.hpp"
#include "daemon_support.hpp"
#include "naap/scheduler/schedule_state.hpp"

namespace naap::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// An emulator with no free capacity: its sessions are excused, not failed, and end at once.
emulator::EmulatorOptions no_capacity_options() {
  auto o = emulator_options();
  o.models[0].capacity = 0;
  return o;
}

// The three emulators of every test: a healthy one, one whose runner crashes after 3 s, and one
// with no free capacity.
struct ThreePeers {
  EmulatorPeer healthy{emulator_options()};
  EmulatorPeer crashing{emulator_options({{"crash_after_s", "3"}})};
  EmulatorPeer full{no_capacity_options()};
  std::vector<std::string> addresses() const {
    return {healthy.address(), crashing.address(), full.address()};
  }
};

// A daemon configuration: `discovery` and `sinks` are the bodies of those sections.
std::string daemon_yaml(const fs::path& dir, const std::string& discovery,
                        const std::string& duration, const std::string& sinks, int concurrency = 3,
                        const std::string& decoder = "software",
                        const std::string& ops_listen = "127.0.0.1:0") {
  return "gateway_id: gw-test\nregion: TST\nstate_dir: " + dir.string() +
         "/state\nround:\n  period: 1m\nconcurrency: " + std::to_string(concurrency) +
         "\ndiscovery:\n" + discovery + "tests:\n  - pipeline: noop\n    duration: " + duration +
         "\n    prompt_interval: 2s\ndecoder: " + decoder + "\nsinks:\n" + sinks +
         "ops:\n  listen: \"" + ops_listen + "\"\n";
}

// Static orchestrators, events to <dir>/events.jsonl, `extra` appended at the top level.
std::string config_yaml(const fs::path& dir, const std::vector<std::string>& orchestrators,
                        const std::string& duration, const std::string& extra = "") {
  std::string list;
  for (const auto& o : orchestrators) list += (list.empty() ? "" : ", ") + ("\"" + o + "\"");
  return daemon_yaml(dir, "  probe_timeout: 2s\n  static: [" + list + "]\n", duration,
                     "  events: jsonl:" + dir.string() + "/events.jsonl\n") +
         extra;
}

fs::path write_config(const fs::path& dir, const std::string& text) {
  const fs::path path = dir / "naap.yaml";
  std::ofstream(path) << text;
  return path;
}

TEST(DaemonCli, once_records_every_session_of_the_round_with_its_outcome) {
  TestDir dir("naap-once");
  ThreePeers peers;
  // A fourth orchestrator accepts connections and never answers GetOrchestrator.
  SilentListener hanging;
  auto targets = peers.addresses();
  targets.push_back(hanging.address());
  const fs::path config = write_config(dir.path(), config_yaml(dir.path(), targets, "5s"));
  Child once({"once", "--config", config.string()}, dir.path() / "out.txt");
  EXPECT_EQ(once.wait(120s), 1) << "a crashed runner fails the round\n" << once.output();

  const auto events = read_events(dir.path() / "events.jsonl");
  EXPECT_EQ(validate_events(dir.path() / "events.jsonl",
                            "--require discovery_results --require network_capabilities "
                            "--require synthetic_test_result/run_summary"),
            0)
      << once.output();
  std::map<std::string, std::string> outcome_by_target;
  for (const auto& r : session_results(events)) {
    outcome_by_target[r["record"]["target_orchestrator"]] = r["outcome"];
    if (r["record"]["target_orchestrator"] == peers.healthy.address()) {
      EXPECT_TRUE(healthy_outcome(r));
    }
  }
  EXPECT_EQ(outcome_by_target[peers.crashing.address()], "runner_error");
  EXPECT_EQ(outcome_by_target[peers.full.address()], "excused_no_capacity");
  // The hanging one is charged with a start failure that says what timed out; the round goes on.
  EXPECT_EQ(outcome_by_target[hanging.address()], "start_failed");
  for (const auto& r : session_results(events))
    if (r["record"]["target_orchestrator"] == hanging.address()) {
      EXPECT_NE(r["failure_reason"].get<std::string>().find("deadline"), std::string::npos)
          << r["failure_reason"];
    }
  ASSERT_EQ(outcome_by_target.size(), 4u);
  EXPECT_NE(once.output().find("event=discovery_probe_failed orchestrator=" + hanging.address()),
            std::string::npos)
      << once.output();
  // One summary for the round; discovery lists the three that answered.
  std::size_t summaries = 0;
  for (const auto& e : events) {
    if (e["type"] == "discovery_results") {
      EXPECT_EQ(e["data"].size(), 3u);
    }
    if (e["data"].is_object() && e["data"].value("type", "") == "run_summary") {
      ++summaries;
      EXPECT_EQ(e["data"]["sessions_started"], 4);
      EXPECT_EQ(e["data"]["orchestrators_excused"], 1);
    }
  }
  EXPECT_EQ(summaries, 1u);
  // Coverage persisted for each orchestrator.
  auto state = scheduler::load_state(dir.path() / "state/schedule-state.json");
  ASSERT_TRUE(state) << state.error().describe();
  EXPECT_EQ(state->coverage.size(), 4u);
  EXPECT_EQ(state->coverage[peers.full.address()].excused, 1);
}

TEST(DaemonCli, sigterm_mid_round_records_every_in_flight_session_as_aborted) {
  TestDir dir("naap-sigterm");
  ThreePeers peers;
  EmulatorPeer second(emulator_options());
  // Long sessions on the two healthy orchestrators; the full one is excused at once.
  const fs::path config = write_config(
      dir.path(),
      config_yaml(dir.path(), {peers.healthy.address(), second.address(), peers.full.address()},
                  "60s"));
  Child run({"run", "--config", config.string()}, dir.path() / "out.txt");
  ASSERT_TRUE(run.wait_for("event=session_started", 3, 60s)) << run.output();
  ASSERT_TRUE(run.wait_for("outcome=excused_no_capacity", 1, 30s)) << run.output();
  std::this_thread::sleep_for(3s);  // both healthy sessions are streaming
  const std::string ops = run.log_value("ops_listening", "address");
  ASSERT_FALSE(ops.empty()) << run.output();
  EXPECT_EQ(http_get(ops, "/healthz").first, 200);
  EXPECT_EQ(http_get(ops, "/readyz").first, 200);
  const auto [metrics_status, metrics] = http_get(ops, "/metrics");
  EXPECT_EQ(metrics_status, 200);
  EXPECT_NE(metrics.find("naap_sessions_running 2"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("naap_sessions_total{outcome=\"excused_no_capacity\"} 1"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("naap_orchestrator_last_tested_timestamp_seconds{orchestrator=\"" +
                         peers.healthy.address() + "\"}"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("naap_results_backlog{sink=\"jsonl\"} 0"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("naap_session_duration_seconds_count 1"), std::string::npos) << metrics;

  run.signal(SIGTERM);
  EXPECT_EQ(run.wait(60s), 0) << run.output();
  const auto results = session_results(read_events(dir.path() / "events.jsonl"));
  ASSERT_EQ(results.size(), 3u) << run.output();
  std::map<std::string, std::string> outcome_by_target;
  for (const auto& r : results)
    outcome_by_target[r["record"]["target_orchestrator"]] = r["outcome"];
  EXPECT_EQ(outcome_by_target[peers.healthy.address()], "aborted");
  EXPECT_EQ(outcome_by_target[second.address()], "aborted");
  EXPECT_EQ(outcome_by_target[peers.full.address()], "excused_no_capacity");
  for (const auto& r : results)
    if (r["outcome"] == "aborted") {
      EXPECT_NE(r["failure_reason"].get<std::string>().find("SIGTERM"), std::string::npos);
      EXPECT_GT(r["frames_sent"].get<int>(), 24) << "the partial record keeps what was measured";
    }
  EXPECT_NE(run.output().find("event=results_flushed"), std::string::npos) << run.output();
  EXPECT_EQ(validate_events(dir.path() / "events.jsonl"), 0);
}

TEST(DaemonCli, a_bad_configuration_is_refused_naming_file_line_and_key) {
  TestDir dir("naap-badcfg");
  const fs::path config =
      write_config(dir.path(),
                   "region: TST\nconcurency: 3\ndiscovery:\n  static: [\"nohost\"]\n"
                   "tests:\n  - pipeline: noop\n");
  Child run({"run", "--config", config.string()}, dir.path() / "out.txt");
  EXPECT_EQ(run.wait(30s), 2);
  const std::string out = run.output();
  EXPECT_NE(out.find("naap.yaml:2:1: concurency: unknown key"), std::string::npos) << out;
  EXPECT_NE(out.find("did you mean concurrency"), std::string::npos) << out;
  EXPECT_NE(out.find("naap.yaml:4:"), std::string::npos) << out;
  EXPECT_NE(out.find("discovery.static[0]"), std::string::npos) << out;
}

TEST(DaemonCli, a_bad_reload_keeps_the_running_configuration_and_a_good_one_is_taken) {
  TestDir dir("naap-reload");
  EmulatorPeer peer(emulator_options());
  const fs::path config =
      write_config(dir.path(), config_yaml(dir.path(), {peer.address()}, "60s"));
  Child run({"run", "--config", config.string()}, dir.path() / "out.txt");
  ASSERT_TRUE(run.wait_for("event=session_started", 1, 60s)) << run.output();
  std::ofstream(config) << "region: [not a string\n";
  run.signal(SIGHUP);
  ASSERT_TRUE(run.wait_for("event=config_reload_refused", 1, 20s)) << run.output();
  const std::string ops = run.log_value("ops_listening", "address");
  const auto metrics = http_get(ops, "/metrics").second;
  EXPECT_NE(metrics.find("naap_config_reload_failures_total 1"), std::string::npos) << metrics;
  EXPECT_EQ(http_get(ops, "/healthz").first, 200) << "still running";
  // A valid file is accepted, to take effect when the running round completes.
  std::ofstream(config) << config_yaml(dir.path(), {peer.address()}, "20s");
  run.signal(SIGHUP);
  EXPECT_TRUE(run.wait_for("event=config_reload_pending", 1, 20s)) << run.output();
  run.signal(SIGTERM);
  EXPECT_EQ(run.wait(60s), 0) << run.output();
}

TEST(DaemonCli, discovery_merges_webhook_and_signer_lists_and_tests_each_orchestrator_once) {
  TestDir dir("naap-discovery");
  EmulatorPeer a(emulator_options({{"passthrough", "true"}}));
  EmulatorPeer b(emulator_options({{"passthrough", "true"}}));
  // One HTTP stand-in plays both sources: a remote signer's /discover-orchestrators lists `a` as
  // a URL and `b`; the webhook lists `b` again, spelled differently.
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  SignerStandin sources(io);
  sources.discovered = nlohmann::json::array(
      {{{"address", "https://" + a.address()}, {"score", 0.9}}, {{"address", b.address()}}});
  sources.webhook_list =
      nlohmann::json::array({{{"address", "https://" + b.address() + "/"}, {"score", 0.5}}});
  std::thread thread([&] { io.run(); });
  std::promise<void> listening;
  boost::asio::post(io, [&] {
    sources.start();
    listening.set_value();
  });
  listening.get_future().wait();

  const fs::path config = write_config(
      dir.path(),
      daemon_yaml(dir.path(),
                  "  probe_timeout: 2s\n  webhook:\n    url: " + sources.base_url() +
                      "/webhook\n  signer:\n    url: " + sources.base_url() + "\n",
                  "3s", "  events: jsonl:" + dir.path().string() + "/events.jsonl\n", 3, "none"));
  Child once({"once", "--config", config.string()}, dir.path() / "out.txt");
  const int code = once.wait(120s);
  boost::asio::post(io, [&] { sources.stop(); });
  work.reset();
  thread.join();
  EXPECT_EQ(code, 0) << once.output();
  EXPECT_EQ(sources.last_discover_target.rfind("/discover-orchestrators", 0), 0u);

  const auto events = read_events(dir.path() / "events.jsonl");
  std::multiset<std::string> tested;
  for (const auto& r : session_results(events)) {
    tested.insert(r["record"]["target_orchestrator"].get<std::string>());
    EXPECT_EQ(r["outcome"], "ok") << r.dump();
  }
  EXPECT_EQ(tested, (std::multiset<std::string>{a.address(), b.address()}));
  for (const auto& e : events)
    if (e["type"] == "discovery_results") {
      EXPECT_EQ(e["data"].size(), 2u) << e.dump();
    }
  EXPECT_NE(once.output().find("event=discovery_done orchestrators=2 answered=2"),
            std::string::npos)
      << once.output();
  EXPECT_EQ(validate_events(dir.path() / "events.jsonl", "--require discovery_results"), 0);
}

TEST(DaemonCli, a_full_results_spool_skips_new_sessions_and_keeps_every_event_it_accepted) {
  TestDir dir("naap-spoolfull");
  // Three orchestrators without capacity: short sessions, a handful of events each.
  EmulatorPeer a(no_capacity_options()), b(no_capacity_options()), c(no_capacity_options());
  // A Kafka broker that is down: nothing is delivered, so the journal only grows, and its bound
  // (12 KiB: discovery fits, a session or two more do not) is reached within the round.
  const std::string yaml = daemon_yaml(
      dir.path(),
      "  probe_timeout: 2s\n  static: [\"" + a.address() + "\", \"" + b.address() + "\", \"" +
          c.address() + "\"]\n",
      "5s",
      "  events: kafka\n  kafka:\n    brokers: 127.0.0.1:" + std::to_string(closed_port()) +
          "\n  spool: spool.jsonl\n  spool_max_mb: 0.012\n  flush_timeout: 1s\n",
      1, "none", "");
  const fs::path config = write_config(dir.path(), yaml);
  Child once({"once", "--config", config.string()}, dir.path() / "out.txt");
  EXPECT_EQ(once.wait(120s), 4) << "results not kept are the gateway's trouble\n" << once.output();
  const std::string out = once.output();
  EXPECT_EQ(once.count("event=results_spool_refusing"), 1u) << out;
  const std::size_t started = once.count("event=session_started");
  const std::size_t skipped = once.count("event=session_skipped");
  EXPECT_EQ(started + skipped, 3u) << out;
  EXPECT_GE(skipped, 1u) << "no session starts while its results could not be kept\n" << out;
  EXPECT_EQ(once.count("reason=results_spool_refusing"), skipped) << out;

  // Nothing accepted is lost: what the journal took is still pending in it, and what it refused
  // is in the log, event by event, for the operator to recover.
  std::map<std::string, nlohmann::json> pending;
  std::ifstream journal(dir.path() / "state/spool.jsonl");
  for (std::string line; std::getline(journal, line);) {
    const auto entry = nlohmann::json::parse(line);
    if (entry["op"] == "put")
      pending[entry["id"]] = nlohmann::json::parse(entry["payload"].get<std::string>());
    else
      pending.erase(entry["id"].get<std::string>());
  }
  const std::size_t refused = once.count("event=results_event_not_spooled");
  EXPECT_GE(refused, 1u) << out;
  EXPECT_FALSE(pending.empty());
  EXPECT_NE(out.find("event=results_left_spooled sink=kafka spooled=" +
                     std::to_string(pending.size()) + " held_in_memory=" + std::to_string(refused)),
            std::string::npos)
      << out;
  std::printf(
      "spool full: %zu session(s) started, %zu skipped; %zu event(s) pending in the "
      "journal, %zu refused and logged\n",
      started, skipped, pending.size(), refused);
  // The round's summary (spooled or logged) says why sessions were skipped.
  const auto summary_at = out.find("event=results_event_not_spooled");
  bool summary_found = false;
  for (const auto& [id, e] : pending)
    if (e["data"].is_object() && e["data"].value("type", "") == "run_summary") {
      summary_found = true;
      EXPECT_EQ(e["data"]["skipped"]["results_spool_refusing"], skipped);
    }
  if (!summary_found) {
    ASSERT_NE(summary_at, std::string::npos);
    EXPECT_NE(out.find("\\\"results_spool_refusing\\\":" + std::to_string(skipped), summary_at),
              std::string::npos)
        << out;
  }
}

}  // namespace
}  // namespace naap::test
