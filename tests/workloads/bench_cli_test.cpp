// `naap-loadtest bench` as a newcomer runs it: --emulated works anywhere, prints the report,
// writes the run record and the timeline and exits 0; bad input exits with the documented codes
// and a message naming the problem; SIGTERM still yields a record, flagged aborted.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using json = nlohmann::json;

struct Run {
  int code = -1;            // exit status
  std::string output;       // stdout + stderr
  std::string events_path;  // where its events went (unless the test chose)
};

// Runs naap-loadtest with `args`; `term_after` > 0 sends SIGTERM after that long.
Run run(std::vector<std::string> args, std::chrono::milliseconds term_after = {}) {
  // One output file per call and process: ctest runs the BenchCli tests in parallel.
  static int calls = 0;
  const std::string out_path = ::testing::TempDir() + "/bench_cli_out_" +
                               std::to_string(::getpid()) + "_" + std::to_string(++calls) + ".txt";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  // Events go to a file of this call's own (the default, ./naap-events.jsonl, is one spool per
  // folder and the tests run in parallel).
  if (std::find(args.begin(), args.end(), "--events") == args.end()) {
    args.push_back("--events");
    args.push_back("jsonl:" + out_path + ".events.jsonl");
  }
  const std::string bin = std::string(NAAP_TEST_BIN_DIR) + "/naap-loadtest";
  std::vector<char*> argv{const_cast<char*>(bin.c_str())};
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  EXPECT_EQ(posix_spawn(&pid, bin.c_str(), &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  if (term_after.count() > 0) {
    std::this_thread::sleep_for(term_after);
    ::kill(pid, SIGTERM);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  Run r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::ifstream in(out_path);
  r.output.assign(std::istreambuf_iterator<char>(in), {});
  r.events_path = out_path + ".events.jsonl";
  std::filesystem::remove(out_path);
  return r;
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in, nullptr, false);
}

TEST(BenchCli, emulated_run_reports_passes_and_writes_record_and_timeline) {
  const std::string record = ::testing::TempDir() + "/bench_record.json";
  const std::string timeline = ::testing::TempDir() + "/bench_timeline.json";
  std::filesystem::remove(record);
  const auto r = run({"bench", "--emulated", "--duration", "5", "--json", record, "--timeline",
                      timeline, "--region", "test-region"});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("verdict             PASS"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("e2e latency"), std::string::npos);
  const json rec = read_json(record);
  ASSERT_TRUE(rec.is_object()) << "no run record";
  EXPECT_EQ(rec["schema_version"], 1);
  EXPECT_EQ(rec["synthetic"], true);
  EXPECT_EQ(rec["client_source"], "naap-loadtest");
  EXPECT_EQ(rec["region"], "test-region");
  EXPECT_EQ(rec["outcome"], "ok");
  EXPECT_EQ(rec["dataset"]["id"], "naap-default");
  EXPECT_EQ(rec["decode_backend"], "software");
  EXPECT_EQ(rec["pipeline"], "noop");
  EXPECT_TRUE(rec["metrics"]["startup_ms"].is_number());
  EXPECT_GT(rec["metrics"]["e2e_latency_ms"]["count"].get<int>(), 24);
  EXPECT_FALSE(rec["orchestrator"]["certificate_pin"].get<std::string>().empty());
  const json tl = read_json(timeline);
  ASSERT_TRUE(tl.is_object()) << "no timeline";
  EXPECT_GT(tl["input_frames"]["rows"].size(), 100u);
  EXPECT_GT(tl["output_frames"]["rows"].size(), 80u);
  // The events went through the spool to the JSONL sink; the last two are the results.
  std::ifstream events(r.events_path);
  std::vector<json> lines;
  for (std::string line; std::getline(events, line);) lines.push_back(json::parse(line));
  ASSERT_GE(lines.size(), 6u) << r.events_path;
  EXPECT_EQ(lines.front()["data"]["type"], "gateway_receive_stream_request");
  EXPECT_EQ(lines[lines.size() - 2]["data"]["type"], "session_result");
  EXPECT_EQ(lines[lines.size() - 2]["data"]["record"], rec) << "the summary carries the record";
  EXPECT_EQ(lines.back()["data"]["type"], "run_summary");
  EXPECT_NE(r.output.find("all delivered"), std::string::npos) << r.output;
}

TEST(BenchCli, usage_errors_exit_2_naming_the_problem) {
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{"bench"}, "--orchestrator"},
      {{"bench", "--emulated", "-o", "127.0.0.1:1"}, "not both"},
      {{"bench", "-o", "no-port-here"}, "no-port-here"},
      {{"bench", "--emulated", "--pipeline", "nope"}, "nope"},
      {{"bench", "--emulated", "--dataset", "missing-dataset"}, "missing-dataset"},
      {{"bench", "--emulated", "--duration", "-1"}, "--duration"},
      {{"bench", "--emulated", "--decoder", "gpu9000"}, "--decoder"},
      {{"bench", "--emulated", "--emulator-fault", "bogus=1"}, "bogus"},
  };
  for (const auto& c : cases) {
    const auto r = run(c.args);
    EXPECT_EQ(r.code, 2) << c.args.back() << ": " << r.output;
    EXPECT_NE(r.output.find(c.expected), std::string::npos) << r.output;
  }
}

TEST(BenchCli, unreachable_orchestrator_exits_3) {
  const auto r = run({"bench", "-o", "127.0.0.1:1", "--duration", "2"});
  EXPECT_EQ(r.code, 3) << r.output;
  EXPECT_NE(r.output.find("start_failed"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("127.0.0.1:1"), std::string::npos) << r.output;
}

TEST(BenchCli, emulated_fault_fails_the_run_with_exit_1) {
  const auto r =
      run({"bench", "--emulated", "--duration", "6", "--emulator-fault", "crash_after_s=2"});
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("runner_error"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("verdict             FAIL"), std::string::npos) << r.output;
}

TEST(BenchCli, sigterm_mid_run_still_writes_the_record_flagged_aborted) {
  const std::string record = ::testing::TempDir() + "/bench_aborted.json";
  std::filesystem::remove(record);
  const auto r = run({"bench", "--emulated", "--duration", "30", "--json", record},
                     std::chrono::milliseconds(4000));
  EXPECT_EQ(r.code, 4) << r.output;
  const json rec = read_json(record);
  ASSERT_TRUE(rec.is_object()) << r.output;
  EXPECT_EQ(rec["outcome"], "aborted");
  EXPECT_NE(rec["message"].get<std::string>().find("SIGTERM"), std::string::npos);
  EXPECT_GT(rec["metrics"]["frames_sent"].get<int>(), 24);
}

}  // namespace
