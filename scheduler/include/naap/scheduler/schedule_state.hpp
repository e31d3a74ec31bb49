// The scheduler's persisted state: round bookkeeping and per-orchestrator coverage, saved
// atomically after each change so that a restarted daemon neither re-runs a round nor forgets
// how much of an orchestrator's daily budget it has used (docs/scheduler.md).
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "naap/core/clock.hpp"
#include "naap/core/error.hpp"

namespace naap::scheduler {

// Wall-clock instants: rounds are aligned to the UTC epoch, so the planner works in system time
// (always passed in by the caller; the planner never reads a clock).
using SystemTime = std::chrono::system_clock::time_point;

// What is known about the testing of one orchestrator.
struct OrchestratorCoverage {
  std::optional<SystemTime> last_tested;    // start of the last started test
  std::optional<SystemTime> last_finished;  // end of the last finished test (min_gap counts here)
  std::string last_outcome;                 // METRICS.md outcome of the last finished test
  std::int64_t utc_day = 0;                 // days since the Unix epoch the *_today fields count
  std::int64_t tests_today = 0;             // tests started on utc_day, excused ones included
  Millis used_today{0};  // expected durations of tests started on utc_day, less excused refunds
  std::map<std::string, std::int64_t> outcomes;  // finished tests by outcome, all time
  std::int64_t excused = 0;  // finished tests that were excused_no_capacity, all time
  std::int64_t failed = 0;   // finished tests that failed (outcome_is_failure), all time

  bool operator==(const OrchestratorCoverage&) const = default;
};

// One test of one orchestrator: the unit a round plans once.
struct TestKey {
  std::string orchestrator;  // HOST:PORT
  int test_index = 0;        // index of the configured test (pipeline × scenario)

  auto operator<=>(const TestKey&) const = default;
};

struct ScheduleState {
  Millis period{0};  // the round period the indices below count in; 0 = never set
  std::optional<std::int64_t> last_round_begun;      // round index (start = index × period)
  std::optional<std::int64_t> last_round_completed;  // every job started and ended, or skipped
  std::optional<std::int64_t> last_missed_round;     // highest index recorded as a missed slot
  std::int64_t missed_slots_total = 0;               // missed slots ever recorded
  std::set<TestKey> started_in_round;  // tests started in last_round_begun while not completed
  std::map<std::string, OrchestratorCoverage> coverage;  // by orchestrator HOST:PORT

  bool operator==(const ScheduleState&) const = default;
};

// The state as the file holds it: JSON, times as Unix milliseconds (see docs/scheduler.md).
std::string state_to_json(const ScheduleState& state);
// Parses state_to_json's output; a `config` error says what is wrong with the text.
Result<ScheduleState> state_from_json(std::string_view text);

// Reads the state file. A missing file is an empty state (first run), not an error; an
// unreadable or corrupt file is a `config` error with the path in its context, and the caller
// decides (stop, or move the file aside and start afresh).
Result<ScheduleState> load_state(const std::filesystem::path& path);
// Writes the state atomically: a temporary file beside it, fsync, rename, fsync of the folder.
// Creates the folder if needed. A crash leaves either the old or the new state, never a torn one.
Result<void> save_state(const std::filesystem::path& path, const ScheduleState& state);

}  // namespace naap::scheduler
