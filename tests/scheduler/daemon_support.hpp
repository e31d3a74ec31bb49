// Running `naap-loadtest run|once` as a child process against in-process emulators: spawn with
// output to a file of its own, wait for a log line, signal it, read its ops endpoints and its
// events file.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace naap::test {

// A naap-loadtest child process.
class Child {
 public:
  Child(std::vector<std::string> args, std::filesystem::path output) : output_(std::move(output)) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, output_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    const std::string bin = std::string(NAAP_TEST_BIN_DIR) + "/naap-loadtest";
    std::vector<char*> argv{const_cast<char*>(bin.c_str())};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    EXPECT_EQ(posix_spawn(&pid_, bin.c_str(), &actions, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
  }
  ~Child() {
    if (pid_ > 0 && code_ < 0) {
      ::kill(pid_, SIGKILL);
      wait(std::chrono::seconds(10));
    }
  }
  void signal(int sig) { ::kill(pid_, sig); }
  // The exit code (128 + signal when killed), or -1 when it did not end in time.
  int wait(std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (code_ < 0 && std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return code_;
  }
  std::string output() const {
    std::ifstream in(output_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  // How many times the output holds `needle`.
  std::size_t count(const std::string& needle) const {
    const std::string out = output();
    std::size_t n = 0;
    for (auto at = out.find(needle); at != std::string::npos; at = out.find(needle, at + 1)) ++n;
    return n;
  }
  // Waits until the output holds `needle` `times` times.
  bool wait_for(const std::string& needle, std::size_t times, std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (count(needle) >= times) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  // The value after "key=" on the first log line of `event`.
  std::string log_value(const std::string& event, const std::string& key) const {
    const std::string out = output();
    const auto line = out.find("event=" + event);
    if (line == std::string::npos) return "";
    const auto end = out.find('\n', line);
    const std::string text = out.substr(line, end - line);
    const auto at = text.find(" " + key + "=");
    if (at == std::string::npos) return "";
    const auto start = at + key.size() + 2;
    return text.substr(start, text.find(' ', start) - start);
  }

 private:
  std::filesystem::path output_;
  pid_t pid_ = -1;
  int code_ = -1;
};

// GET http://HOST:PORT/path over a plain socket: {status, body}.
inline std::pair<int, std::string> http_get(const std::string& host_port, const std::string& path) {
  const auto colon = host_port.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(std::stoi(host_port.substr(colon + 1))));
  ::inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &addr.sin_addr);
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return {0, ""};
  }
  const std::string request =
      "GET " + path + " HTTP/1.1\r\nHost: " + host_port + "\r\nConnection: close\r\n\r\n";
  (void)::write(fd, request.data(), request.size());
  std::string response;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
    response.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  if (response.size() < 12) return {0, response};
  const int status = std::stoi(response.substr(9, 3));
  const auto body = response.find("\r\n\r\n");
  return {status, body == std::string::npos ? "" : response.substr(body + 4)};
}

// Every envelope of a JSONL events file.
inline std::vector<nlohmann::json> read_events(const std::filesystem::path& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

// The session_result data objects of `events`.
inline std::vector<nlohmann::json> session_results(const std::vector<nlohmann::json>& events) {
  std::vector<nlohmann::json> out;
  for (const auto& e : events)
    if (e["type"] == "synthetic_test_result" && e["data"].value("type", "") == "session_result")
      out.push_back(e["data"]);
  return out;
}

// The outcome of a session against a healthy orchestrator: `ok` — or, only when this machine
// was too loaded to pace the input on time (the record says gateway_overloaded, as on a busy CI
// host), `gateway_error`, which is our side and never charged to the orchestrator.
inline ::testing::AssertionResult healthy_outcome(const nlohmann::json& session_result) {
  const std::string outcome = session_result.value("outcome", "");
  if (outcome == "ok") return ::testing::AssertionSuccess();
  if (outcome == "gateway_error" &&
      session_result["record"]["metrics"].value("gateway_overloaded", false))
    return ::testing::AssertionSuccess() << "gateway overloaded (not charged)";
  return ::testing::AssertionFailure()
         << "outcome " << outcome << ": " << session_result["failure_reason"].dump();
}

// validate_events.py on a file; extra arguments (e.g. --require …) appended. Returns its status.
inline int validate_events(const std::filesystem::path& events, const std::string& extra = "") {
  const std::string cmd = std::string("python3 ") + NAAP_TEST_SOURCE_DIR +
                          "/tests/contract/validate_events.py --schemas " + NAAP_TEST_SOURCE_DIR +
                          "/reports/schemas " + events.string() + " " + extra + " > " +
                          events.string() + ".validation 2>&1";
  return std::system(cmd.c_str());
}

}  // namespace naap::test
