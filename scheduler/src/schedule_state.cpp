// The schedule state file: JSON in, JSON out, written by tmp + fsync + rename.
#include "naap/scheduler/schedule_state.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

namespace naap::scheduler {
namespace {

using nlohmann::json;

constexpr int k_state_version = 1;

std::int64_t unix_ms(SystemTime t) {
  return std::chrono::floor<Millis>(t.time_since_epoch()).count();
}

SystemTime from_unix_ms(std::int64_t ms) {
  return SystemTime(Millis(ms));
}

json optional_int(const std::optional<std::int64_t>& v) {
  return v ? json(*v) : json(nullptr);
}

json optional_time(const std::optional<SystemTime>& t) {
  return t ? json(unix_ms(*t)) : json(nullptr);
}

// The next two throw nlohmann::json exceptions on a wrong type; state_from_json turns them into
// one Error (the state file is read once, at start-up).
std::optional<std::int64_t> read_optional_int(const json& j, const char* key) {
  const json& v = j.at(key);
  if (v.is_null()) return std::nullopt;
  return v.get<std::int64_t>();
}

std::optional<SystemTime> read_optional_time(const json& j, const char* key) {
  const auto ms = read_optional_int(j, key);
  if (!ms) return std::nullopt;
  return from_unix_ms(*ms);
}

json coverage_to_json(const OrchestratorCoverage& c) {
  return json{{"last_tested_ms", optional_time(c.last_tested)},
              {"last_finished_ms", optional_time(c.last_finished)},
              {"last_outcome", c.last_outcome},
              {"utc_day", c.utc_day},
              {"tests_today", c.tests_today},
              {"used_today_ms", c.used_today.count()},
              {"outcomes", c.outcomes},
              {"excused", c.excused},
              {"failed", c.failed}};
}

OrchestratorCoverage coverage_from_json(const json& j) {
  OrchestratorCoverage c;
  c.last_tested = read_optional_time(j, "last_tested_ms");
  c.last_finished = read_optional_time(j, "last_finished_ms");
  c.last_outcome = j.at("last_outcome").get<std::string>();
  c.utc_day = j.at("utc_day").get<std::int64_t>();
  c.tests_today = j.at("tests_today").get<std::int64_t>();
  c.used_today = Millis(j.at("used_today_ms").get<std::int64_t>());
  c.outcomes = j.at("outcomes").get<std::map<std::string, std::int64_t>>();
  c.excused = j.at("excused").get<std::int64_t>();
  c.failed = j.at("failed").get<std::int64_t>();
  return c;
}

Error state_error(std::string what, const std::filesystem::path& path, int err, bool retriable) {
  return Error(ErrorCategory::config, what + ": " + std::strerror(err), retriable)
      .with("path", path.string());
}

}  // namespace

std::string state_to_json(const ScheduleState& state) {
  json started = json::array();
  for (const auto& key : state.started_in_round)
    started.push_back({{"orchestrator", key.orchestrator}, {"test_index", key.test_index}});
  json coverage = json::object();
  for (const auto& [orchestrator, c] : state.coverage) coverage[orchestrator] = coverage_to_json(c);
  const json j = {{"version", k_state_version},
                  {"period_ms", state.period.count()},
                  {"last_round_begun", optional_int(state.last_round_begun)},
                  {"last_round_completed", optional_int(state.last_round_completed)},
                  {"last_missed_round", optional_int(state.last_missed_round)},
                  {"missed_slots_total", state.missed_slots_total},
                  {"started_in_round", std::move(started)},
                  {"coverage", std::move(coverage)}};
  // Orchestrator addresses come from discovery: never throw on bytes that are not UTF-8.
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<ScheduleState> state_from_json(std::string_view text) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return fail(ErrorCategory::config, "the schedule state file is not a JSON object");
  try {
    if (const int version = j.at("version").get<int>(); version != k_state_version)
      return fail(Error(ErrorCategory::config,
                        "the schedule state file has an unsupported version (this build reads " +
                            std::to_string(k_state_version) + ")")
                      .with("version", std::to_string(version)));
    ScheduleState state;
    state.period = Millis(j.at("period_ms").get<std::int64_t>());
    state.last_round_begun = read_optional_int(j, "last_round_begun");
    state.last_round_completed = read_optional_int(j, "last_round_completed");
    state.last_missed_round = read_optional_int(j, "last_missed_round");
    state.missed_slots_total = j.at("missed_slots_total").get<std::int64_t>();
    for (const auto& key : j.at("started_in_round"))
      state.started_in_round.insert(
          {key.at("orchestrator").get<std::string>(), key.at("test_index").get<int>()});
    for (const auto& [orchestrator, c] : j.at("coverage").items())
      state.coverage.emplace(orchestrator, coverage_from_json(c));
    if (state.period < Millis(0) || state.missed_slots_total < 0)
      return fail(ErrorCategory::config, "the schedule state file has a negative count");
    return state;
  } catch (const json::exception& e) {
    return fail(ErrorCategory::config,
                std::string("the schedule state file is malformed: ") + e.what());
  }
}

Result<ScheduleState> load_state(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return ScheduleState{};  // first run
    return fail(state_error("cannot open the schedule state file", path, errno, true));
  }
  std::string text;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return fail(state_error("cannot read the schedule state file", path, err, true));
    }
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  auto state = state_from_json(text);
  if (!state) {
    Error error = std::move(state.error());
    error.message += " (fix it, or move it aside to start with an empty schedule)";
    return fail(std::move(error).with("path", path.string()));
  }
  return state;
}

Result<void> save_state(const std::filesystem::path& path, const ScheduleState& state) {
  const std::string text = state_to_json(state);
  const std::filesystem::path dir = path.parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec)
      return fail(state_error("cannot create the schedule state folder", dir, ec.value(), true));
  }
  const std::filesystem::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return fail(state_error("cannot write the schedule state file", tmp, errno, true));
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return fail(state_error("cannot write the schedule state file", tmp, err, true));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return fail(state_error("cannot flush the schedule state file", tmp, err, true));
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return fail(state_error("cannot flush the schedule state file", tmp, err, true));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return fail(state_error("cannot replace the schedule state file", path, err, true));
  }
  // Make the rename itself durable; a failure here leaves a correct file that a crash could
  // roll back to the previous state, which the planner tolerates.
  if (const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

}  // namespace naap::scheduler
