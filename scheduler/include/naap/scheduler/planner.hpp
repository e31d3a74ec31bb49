// The round planner: which (orchestrator, test) starts when, within which budgets. Pure logic
// on a clock the caller passes in (no threads, no I/O), so tests run it on a simulated clock.
// The algorithm and its formulas are in docs/scheduler.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "naap/core/clock.hpp"
#include "naap/core/error.hpp"
#include "naap/scheduler/schedule_state.hpp"

namespace naap::scheduler {

// Limits that protect one orchestrator from being over-tested.
struct OrchestratorBudget {
  int max_concurrent = 1;  // tests running at once on the orchestrator (≥ 1)
  Millis min_gap{0};       // from the end of one test to the start of the next on it
  // Expected test time started per UTC day (excused tests refunded); 0 = unlimited.
  Millis daily_budget{std::chrono::hours(4)};
};

struct PlannerOptions {
  std::string region;  // part of the offset hash, so that regions test at different moments
  // Round length; round k covers [k × period, (k + 1) × period) of UTC (Unix time).
  Millis period{std::chrono::minutes(10)};
  std::optional<Millis> margin;  // slack left at the end of a round; unset = period / 10
  Millis watchdog_slack{std::chrono::seconds(60)};  // deadline = start + expected duration + this
  int global_max_concurrent = 4;  // tests running at once across all orchestrators; 0 = no limit
  OrchestratorBudget budget;      // every orchestrator's budget...
  std::map<std::string, OrchestratorBudget> budget_overrides;  // ...unless set by HOST:PORT
};

// One test the caller wants run this round (every advertised orchestrator × configured test,
// already filtered by the caller).
struct Target {
  std::string orchestrator;     // HOST:PORT
  int test_index = 0;           // index of the configured test (pipeline × scenario)
  Millis expected_duration{0};  // how long the session should run

  bool operator==(const Target&) const = default;
};

// A test to start now.
struct Job {
  std::string id;          // "r<round>-<orchestrator>-<test_index>", unique
  std::int64_t round = 0;  // round index
  Target target;
  SystemTime due;       // round start + stable offset
  SystemTime started;   // the `now` of the poll that returned it
  SystemTime deadline;  // watchdog: started + expected duration + watchdog slack
};

// A round the grid had but that did not run.
enum class MissedReason {
  round_overrun,  // the previous round still had work (pending or running) at its boundary
  not_begun,      // no round was running, yet none began (daemon down, or begun late)
};
std::string_view to_string(MissedReason reason);

struct MissedSlot {
  std::int64_t round = 0;  // the index of the round that did not run
  SystemTime boundary;     // its start on the grid
  MissedReason reason = MissedReason::round_overrun;
};

// What begin_round_if_due began.
struct RoundInfo {
  std::int64_t index = 0;
  SystemTime start;                  // index × period: the boundary, not the call's time
  SystemTime began;                  // the `now` of the call that began it
  std::int64_t planned = 0;          // jobs planned (after a restart: those not yet started)
  std::int64_t already_started = 0;  // after a restart within the round: started before it
  std::int64_t missed_before = 0;    // slots missed since the previous round began
};

// One completed round, for the caller's run_summary.
struct RoundSummary {
  std::int64_t index = 0;
  SystemTime start;                              // the round's boundary
  SystemTime end;                                // when its last job ended or was skipped
  std::int64_t planned = 0;                      // as in RoundInfo
  std::int64_t already_started = 0;              // as in RoundInfo
  std::int64_t started = 0;                      // jobs started in this process
  std::map<std::string, std::int64_t> skipped;   // by reason ("daily_budget")
  std::map<std::string, std::int64_t> outcomes;  // finished jobs by outcome
  std::int64_t excused = 0;                      // outcomes that were excused_no_capacity
  std::int64_t failed = 0;                       // outcomes for which outcome_is_failure holds
  std::int64_t orchestrators_tested = 0;         // distinct orchestrators with a started job
  std::int64_t orchestrators_excused = 0;        // distinct ones with an excused_no_capacity job
  std::int64_t missed_before = 0;                // as in RoundInfo
  std::int64_t missed_during = 0;                // boundaries that passed while this round had work
};

inline constexpr std::string_view k_skip_daily_budget = "daily_budget";
// The results spool refused events (full, or the disk failed): a test started then could not
// keep its results (EVENTS.md §5.6), so it is skipped and the round says so.
inline constexpr std::string_view k_skip_results_spool = "results_spool_refusing";
inline constexpr std::string_view k_outcome_excused = "excused_no_capacity";

// Failed = charged to the orchestrator: anything but ok, excused_no_capacity, aborted (our
// shutdown) and gateway_error (our fault).
bool outcome_is_failure(std::string_view outcome);

// The first 8 bytes of SHA-256(key), big-endian.
std::uint64_t offset_hash(std::string_view key);

// H(region|orchestrator|test_index) mod (period − expected − margin), or 0 when that window is
// not positive: where in every round this test is due.
Millis stable_offset(std::string_view region, std::string_view orchestrator, int test_index,
                     Millis period, Millis expected_duration, Millis margin);

class Planner {
 public:
  // Fails with a `config` error on an impossible option (period ≤ 0, max_concurrent < 1, a
  // negative duration). A state counted in another period keeps its coverage but restarts its
  // round bookkeeping.
  static Result<Planner> create(PlannerOptions options, ScheduleState state = {});

  // The round grid.
  std::int64_t round_index(SystemTime t) const;
  SystemTime round_start(std::int64_t index) const;
  Millis margin() const { return margin_; }
  Millis offset(const Target& target) const;

  // Whether begin_round_if_due would begin a round now (so the caller gathers targets).
  bool round_due(SystemTime now) const;
  // Begins the round `now` falls in when no round has work left and that round has not begun
  // (or been missed) yet. After a restart within a begun, incomplete round, begins it again
  // for the targets not started in it. Duplicate targets are planned once.
  std::optional<RoundInfo> begin_round_if_due(SystemTime now, const std::vector<Target>& targets);
  // True when the last round begun in this process has no job left (or none was begun).
  bool round_complete() const;

  // The jobs to start now (due ≤ now, allowed by every budget) in due order, ties by
  // orchestrator then test index; they are marked started. Jobs over their daily budget are
  // skipped here.
  std::vector<Job> poll(SystemTime now);
  // Instead of poll, when the caller cannot run tests now: every job due by `now` that has not
  // started is skipped with `reason` (counted in the round's summary) and returned.
  std::vector<Job> skip_due(SystemTime now, std::string_view reason);
  // When to call poll next: now when a round can begin or a job can start; otherwise the
  // earliest of the next due job, the end of a min_gap holding a due job, the next round
  // boundary and the next watchdog deadline. Finished jobs free slots: poll after finished().
  SystemTime next_wakeup(SystemTime now) const;
  // Running jobs whose deadline is ≤ now: the caller aborts them, then calls finished().
  std::vector<Job> expired(SystemTime now) const;
  std::vector<Job> running() const;

  // Records the end of a running job. An unknown or already finished id is an `internal` error.
  Result<void> finished(std::string_view job_id, SystemTime now, std::string_view outcome);

  // Rounds completed since the last call, oldest first.
  std::vector<RoundSummary> take_completed_rounds();
  // Missed slots recorded since the last call, oldest first (after an outage longer than 1000
  // rounds, only its latest 1000; state().missed_slots_total counts them all).
  std::vector<MissedSlot> take_missed_slots();

  const PlannerOptions& options() const { return options_; }
  const ScheduleState& state() const { return state_; }
  // Grows on every change of state(): save the state whenever it moved.
  std::uint64_t revision() const { return revision_; }

 private:
  enum class Status { pending, running, finished, skipped };
  struct Entry {
    Job job;
    Status status = Status::pending;
    std::string outcome;      // when finished
    std::string skip_reason;  // when skipped
  };
  struct Round {
    RoundInfo info;
    std::vector<Entry> entries;  // by due, orchestrator, test index
    std::int64_t missed_during = 0;
    bool complete = false;
  };

  Planner(PlannerOptions options, Millis margin, ScheduleState state);

  const OrchestratorBudget& budget_for(const std::string& orchestrator) const;
  std::optional<std::int64_t> beginnable_round(SystemTime now) const;
  std::optional<SystemTime> gap_end(const std::string& orchestrator) const;
  bool concurrency_allows(const std::string& orchestrator) const;
  OrchestratorCoverage& coverage_on_day(const std::string& orchestrator, SystemTime now);
  void note_boundaries(SystemTime now);
  void record_missed(std::int64_t first, std::int64_t last, MissedReason reason);
  void complete_if_done(SystemTime now);
  void skip(Entry& entry, std::string_view reason);  // not run this round, counted by reason

  PlannerOptions options_;
  Millis margin_;
  ScheduleState state_;
  std::optional<Round> round_;
  int running_total_ = 0;
  std::map<std::string, int> running_by_orchestrator_;
  std::int64_t missed_since_begin_ = 0;  // for the next RoundInfo::missed_before
  std::vector<RoundSummary> completed_;
  std::vector<MissedSlot> missed_;
  std::uint64_t revision_ = 0;
};

}  // namespace naap::scheduler
