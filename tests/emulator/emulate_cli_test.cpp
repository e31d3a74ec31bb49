// `naap-loadtest emulate` as an operator runs it: it prints where it listens, serves, stops
// cleanly on SIGTERM, and refuses bad flags with exit code 2 and a message naming them.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <regex>
#include <string>
#include <vector>

#include "naap/transport/http_engine.hpp"

extern char** environ;

namespace {

struct Child {
  pid_t pid = -1;  // process id
  int out = -1;    // read end of its stdout+stderr
};

Child spawn(std::vector<std::string> args) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  std::vector<char*> argv;
  const std::string bin = std::string(NAAP_TEST_BIN_DIR) + "/naap-loadtest";
  argv.push_back(const_cast<char*>(bin.c_str()));
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  Child child;
  EXPECT_EQ(posix_spawn(&child.pid, bin.c_str(), &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  child.out = fds[0];
  return child;
}

// Reads until `pattern` matches the accumulated output or the time runs out.
std::string read_until(int fd, const std::regex& pattern, std::chrono::milliseconds timeout) {
  std::string text;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline && !std::regex_search(text, pattern)) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buffer[4096];
    const auto n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  return text;
}

std::string read_all(int fd) {
  std::string text;
  char buffer[4096];
  for (;;) {
    const auto n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) return text;
    text.append(buffer, static_cast<std::size_t>(n));
  }
}

int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(EmulateCli, prints_where_it_listens_serves_https_and_stops_on_sigterm) {
  Child child = spawn({"emulate", "--port", "0", "--model", "noop:capacity=2"});
  const std::string out = read_until(child.out, std::regex("transcoder +(https://[0-9.]+:[0-9]+)"),
                                     std::chrono::seconds(20));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex("transcoder +(https://[0-9.]+:[0-9]+)"))) << out;
  EXPECT_NE(out.find("emulator listening on 127.0.0.1:"), std::string::npos) << out;
  EXPECT_NE(out.find("certificate sha256//"), std::string::npos) << out;

  boost::asio::io_context io;
  naap::http::Engine engine(io);
  naap::http::Request request;
  request.url = m[1].str() + "/healthz";
  int status = 0;
  engine.start(request, {.on_complete = [&](const naap::http::Outcome& o) { status = o.status; }});
  io.run();
  EXPECT_EQ(status, 200);

  ::kill(child.pid, SIGTERM);
  EXPECT_EQ(wait_exit(child.pid), 0);
  ::close(child.out);
}

TEST(EmulateCli, refuses_bad_flags_with_exit_code_2_naming_them) {
  struct Case {
    std::vector<std::string> args;  // command line after "emulate"
    std::string expected;           // text the message must contain
  };
  const std::vector<Case> cases = {
      {{"--fault", "stall_afer_s=3"}, "fault 'stall_afer_s': unknown fault"},
      {{"--fault", "latency_ms=fast"}, "latency_ms"},
      {{"--faults", "/nonexistent/plan.json"}, "/nonexistent/plan.json"},
      {{"--model", "noop:capacity=lots"}, "not a number for capacity"},
      {{"--cert", "/nonexistent/cert.pem", "--key", "/nonexistent/key.pem"},
       "/nonexistent/cert.pem"},
      {{"--cert", "/tmp/only-cert.pem"}, "--cert and --key go together"},
      {{"--port", "70000"}, "--port"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args{"emulate"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    Child child = spawn(args);
    const std::string out = read_all(child.out);
    EXPECT_EQ(wait_exit(child.pid), 2) << c.expected << ": " << out;
    EXPECT_NE(out.find(c.expected), std::string::npos) << out;
    ::close(child.out);
  }
}

}  // namespace
