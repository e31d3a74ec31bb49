// The round planner on a simulated clock: offsets, due times, budgets, missed slots, the
// watchdog, wake-ups, and the persisted state across a restart.
#include "naap/scheduler/planner.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include "../reports/test_dir.hpp"
#include "naap/scheduler/schedule_state.hpp"

namespace naap::scheduler {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// 2026-01-01T00:00:00Z: a round boundary for any period that divides a day, and a UTC midnight.
const SystemTime k_t0 = SystemTime(std::chrono::seconds(1'767'225'600));

// Times in failure messages, as offsets from k_t0.
Millis since_t0(SystemTime t) {
  return std::chrono::duration_cast<Millis>(t - k_t0);
}

PlannerOptions base_options() {
  PlannerOptions o;
  o.region = "eu-west";
  o.global_max_concurrent = 0;
  o.budget.daily_budget = Millis(0);
  return o;
}

Planner make_planner(const PlannerOptions& options, ScheduleState state = {}) {
  auto planner = Planner::create(options, std::move(state));
  if (!planner) ADD_FAILURE() << planner.error().describe();
  return std::move(*planner);
}

std::string orchestrator_name(int i) {
  return "orch-" + std::to_string(100 + i) + ".example.net:8935";
}

std::vector<Target> make_targets(int orchestrators, int tests, Millis duration) {
  std::vector<Target> out;
  for (int i = 0; i < orchestrators; ++i)
    for (int t = 0; t < tests; ++t) out.push_back({orchestrator_name(i), t, duration});
  return out;
}

// Drives a planner the way the daemon loop does: sleep until next_wakeup or a session's end,
// end sessions, begin a round when due, start what poll returns. Records what it saw.
class Simulation {
 public:
  struct Session {
    Millis length;        // how long the session runs
    std::string outcome;  // what it reports
  };

  Simulation(Planner& planner, std::vector<Target> targets, SystemTime now)
      : planner_(planner), targets_(std::move(targets)), now_(now) {}

  std::function<Session(const Job&)> session = [](const Job& job) {
    return Session{job.target.expected_duration, "ok"};
  };
  // False while the daemon could not keep results (its spool refuses): due jobs are skipped.
  std::function<bool(SystemTime)> can_start = [](SystemTime) { return true; };

  void run_until(SystemTime until) {
    int stalls = 0;
    for (;;) {
      SystemTime wake = planner_.next_wakeup(now_);
      if (!ends_.empty()) wake = std::min(wake, ends_.begin()->first);
      ASSERT_GE(wake, now_) << "next_wakeup went back in time";
      if (wake > until) break;
      stalls = wake == now_ ? stalls + 1 : 0;
      ASSERT_LT(stalls, 10) << "the planner asks to be woken at the same instant forever";
      now_ = wake;
      step();
    }
    now_ = until;
    step();
  }

  SystemTime now() const { return now_; }

  std::vector<Job> started;
  std::vector<Job> skipped;  // by skip_due
  std::vector<RoundInfo> begun;
  std::vector<RoundSummary> summaries;
  int max_running = 0;
  std::map<std::string, int> max_running_by_orchestrator;

 private:
  void step() {
    while (!ends_.empty() && ends_.begin()->first <= now_) {
      const auto [id, outcome] = ends_.begin()->second;
      ends_.erase(ends_.begin());
      ASSERT_TRUE(planner_.finished(id, now_, outcome));
    }
    if (auto info = planner_.begin_round_if_due(now_, targets_)) begun.push_back(*info);
    if (!can_start(now_)) {
      for (const Job& job : planner_.skip_due(now_, k_skip_results_spool)) skipped.push_back(job);
    } else {
      for (const Job& job : planner_.poll(now_)) {
        started.push_back(job);
        const Session s = session(job);
        ends_.emplace(now_ + s.length, std::pair(job.id, s.outcome));
      }
    }
    const std::vector<Job> running = planner_.running();
    max_running = std::max(max_running, static_cast<int>(running.size()));
    std::map<std::string, int> by_orchestrator;
    for (const Job& job : running) ++by_orchestrator[job.target.orchestrator];
    for (const auto& [orchestrator, n] : by_orchestrator)
      max_running_by_orchestrator[orchestrator] =
          std::max(max_running_by_orchestrator[orchestrator], n);
    for (RoundSummary& s : planner_.take_completed_rounds()) summaries.push_back(std::move(s));
  }

  Planner& planner_;
  std::vector<Target> targets_;
  SystemTime now_;
  std::multimap<SystemTime, std::pair<std::string, std::string>> ends_;
};

std::set<TestKey> keys_of(const std::vector<Job>& jobs) {
  std::set<TestKey> keys;
  for (const Job& j : jobs) keys.insert({j.target.orchestrator, j.target.test_index});
  return keys;
}

TEST(PlannerOffsets, stable_across_rounds_and_planner_instances) {
  const PlannerOptions options = base_options();
  Planner a = make_planner(options);
  Planner b = make_planner(options);
  const auto targets = make_targets(10, 2, 90s);
  for (const Target& t : targets) EXPECT_EQ(a.offset(t), b.offset(t)) << t.orchestrator;

  // Three rounds: every test starts at the same point of each round.
  Simulation sim(a, targets, k_t0);
  sim.run_until(k_t0 + 3 * options.period - 1ms);
  ASSERT_EQ(sim.started.size(), 3 * targets.size());
  std::map<TestKey, std::set<Millis>> offsets_seen;
  for (const Job& j : sim.started)
    offsets_seen[{j.target.orchestrator, j.target.test_index}].insert(
        std::chrono::duration_cast<Millis>(j.due - a.round_start(j.round)));
  for (const auto& [key, offsets] : offsets_seen) {
    ASSERT_EQ(offsets.size(), 1u) << key.orchestrator << " moved between rounds";
    EXPECT_EQ(*offsets.begin(), b.offset({key.orchestrator, key.test_index, 90s}));
  }
}

TEST(PlannerOffsets, differ_between_regions_for_one_orchestrator) {
  std::set<Millis> offsets;
  const std::vector<std::string> regions = {"eu-west", "eu-central", "us-east",
                                            "us-west", "ap-south",   "sa-east"};
  for (const std::string& region : regions) {
    PlannerOptions options = base_options();
    options.region = region;
    offsets.insert(make_planner(options).offset({"orch.example.net:8935", 0, 2min}));
  }
  // Six regions over an 8-minute window: they spread out instead of arriving together.
  EXPECT_EQ(offsets.size(), regions.size());
}

TEST(PlannerOffsets, stay_within_period_minus_duration_minus_margin) {
  const Planner planner = make_planner(base_options());
  EXPECT_EQ(planner.margin(), 1min) << "the default margin is 10 % of the period";
  for (const Millis duration : {Millis(0), Millis(30s), Millis(5min), Millis(8min) + 59s}) {
    const Millis window = 10min - duration - 1min;
    Millis highest{0};
    for (const Target& t : make_targets(200, 3, duration)) {
      const Millis offset = planner.offset(t);
      ASSERT_GE(offset, Millis(0));
      ASSERT_LT(offset, window) << t.orchestrator << " duration " << duration.count();
      highest = std::max(highest, offset);
    }
    EXPECT_GT(highest, window / 2) << "offsets use the whole window";
  }
  // A test that cannot fit with its margin starts at the round boundary.
  EXPECT_EQ(planner.offset({"orch.example.net:8935", 0, 9min}), Millis(0));
  EXPECT_EQ(planner.offset({"orch.example.net:8935", 0, 15min}), Millis(0));
}

TEST(PlannerJobs, become_due_exactly_at_round_start_plus_offset) {
  Planner planner = make_planner(base_options());
  const auto targets = make_targets(12, 1, 60s);
  const auto info = planner.begin_round_if_due(k_t0 + 1ms, targets);
  ASSERT_TRUE(info);
  EXPECT_EQ(since_t0(info->start), Millis(0));
  EXPECT_EQ(info->planned, 12);
  std::map<SystemTime, std::set<std::string>> by_due;
  for (const Target& t : targets) by_due[k_t0 + planner.offset(t)].insert(t.orchestrator);
  for (const auto& [due, orchestrators] : by_due) {
    EXPECT_TRUE(planner.poll(due - 1ms).empty()) << "a job started before it was due";
    std::set<std::string> got;
    for (const Job& j : planner.poll(due)) {
      EXPECT_EQ(since_t0(j.due), since_t0(due));
      EXPECT_EQ(since_t0(j.started), since_t0(due));
      EXPECT_EQ(j.id, "r" + std::to_string(info->index) + "-" + j.target.orchestrator + "-0");
      got.insert(j.target.orchestrator);
    }
    EXPECT_EQ(got, orchestrators);
  }
}

TEST(PlannerBudgets, concurrency_limits_hold_over_a_full_round) {
  PlannerOptions options = base_options();
  options.global_max_concurrent = 3;
  Planner planner = make_planner(options);
  const auto targets = make_targets(20, 2, 30s);
  Simulation sim(planner, targets, k_t0);
  sim.run_until(k_t0 + options.period - 1ms);

  EXPECT_EQ(sim.max_running, 3) << "the global limit is used, never exceeded";
  for (const auto& [orchestrator, n] : sim.max_running_by_orchestrator)
    EXPECT_EQ(n, 1) << orchestrator;
  ASSERT_EQ(sim.started.size(), 40u);
  EXPECT_EQ(keys_of(sim.started).size(), 40u) << "every test once";
  ASSERT_EQ(sim.summaries.size(), 1u);
  EXPECT_EQ(sim.summaries[0].planned, 40);
  EXPECT_EQ(sim.summaries[0].started, 40);
  EXPECT_EQ(sim.summaries[0].orchestrators_tested, 20);
  EXPECT_EQ(sim.summaries[0].outcomes.at("ok"), 40);
  // Held jobs waited; none started before it was due.
  for (const Job& j : sim.started) EXPECT_GE(since_t0(j.started), since_t0(j.due)) << j.id;
}

TEST(PlannerBudgets, per_orchestrator_max_concurrent_holds_jobs_until_a_slot_frees) {
  PlannerOptions options = base_options();
  options.margin = 6min;  // 10 − 4 − 6 = 0: every test is due at the boundary
  options.budget_overrides["big.example.net:8935"] = {.max_concurrent = 2};
  Planner planner = make_planner(options);
  std::vector<Target> targets;
  for (int t = 0; t < 4; ++t) targets.push_back({"big.example.net:8935", t, 4min});
  ASSERT_TRUE(planner.begin_round_if_due(k_t0, targets));

  const auto first = planner.poll(k_t0);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_TRUE(planner.poll(k_t0 + 3min).empty());
  ASSERT_TRUE(planner.finished(first[0].id, k_t0 + 4min, "ok"));
  const auto second = planner.poll(k_t0 + 4min);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(since_t0(second[0].due), Millis(0)) << "a held job keeps its due time";
  EXPECT_EQ(planner.running().size(), 2u);
}

TEST(PlannerBudgets, min_gap_separates_tests_on_one_orchestrator) {
  PlannerOptions options = base_options();
  options.margin = 9min;  // offsets 0
  options.budget.min_gap = 2min;
  Planner planner = make_planner(options);
  const std::vector<Target> targets = {{"a.example.net:8935", 0, 1min},
                                       {"a.example.net:8935", 1, 1min}};
  ASSERT_TRUE(planner.begin_round_if_due(k_t0, targets));
  const auto first = planner.poll(k_t0);
  ASSERT_EQ(first.size(), 1u);
  ASSERT_TRUE(planner.finished(first[0].id, k_t0 + 1min, "ok"));

  EXPECT_TRUE(planner.poll(k_t0 + 1min).empty());
  EXPECT_EQ(since_t0(planner.next_wakeup(k_t0 + 1min)), Millis(3min)) << "wake when the gap ends";
  EXPECT_TRUE(planner.poll(k_t0 + 3min - 1ms).empty());
  const auto second = planner.poll(k_t0 + 3min);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].target.test_index, 1);
}

TEST(PlannerBudgets, daily_budget_skips_once_spent_and_resets_at_utc_midnight) {
  PlannerOptions options = base_options();
  options.period = 6h;
  options.margin = 5h;  // offsets 0
  options.budget.daily_budget = 2h;
  Planner planner = make_planner(options);
  Simulation sim(planner, {{"a.example.net:8935", 0, 1h}}, k_t0);
  sim.run_until(k_t0 + 48h - 1ms);

  ASSERT_EQ(sim.summaries.size(), 8u);  // four rounds a day, two days
  for (int day = 0; day < 2; ++day) {
    for (int r = 0; r < 4; ++r) {
      const RoundSummary& s = sim.summaries[day * 4 + r];
      if (r < 2) {
        EXPECT_EQ(s.started, 1) << "day " << day << " round " << r;
        EXPECT_TRUE(s.skipped.empty());
      } else {
        EXPECT_EQ(s.started, 0) << "day " << day << " round " << r;
        EXPECT_EQ(s.skipped.at("daily_budget"), 1);
      }
    }
  }
  const OrchestratorCoverage& c = planner.state().coverage.at("a.example.net:8935");
  EXPECT_EQ(c.tests_today, 2);
  EXPECT_EQ(c.used_today, 2h);
  EXPECT_EQ(since_t0(c.last_tested.value()), Millis(24h + 6h));
}

TEST(PlannerBudgets, excused_no_capacity_is_refunded_and_counted_excused) {
  PlannerOptions options = base_options();
  options.period = 6h;
  options.margin = 5h;  // offsets 0
  options.budget.daily_budget = 1h;
  Planner planner = make_planner(options);
  Simulation sim(planner, {{"a.example.net:8935", 0, 1h}}, k_t0);
  int sessions = 0;
  sim.session = [&](const Job&) {
    // No capacity: refused at once, not after an hour.
    return sessions++ == 0 ? Simulation::Session{2s, "excused_no_capacity"}
                           : Simulation::Session{1h, "ok"};
  };
  sim.run_until(k_t0 + 18h - 1ms);

  ASSERT_EQ(sim.summaries.size(), 3u);
  EXPECT_EQ(sim.summaries[0].excused, 1);
  EXPECT_EQ(sim.summaries[0].failed, 0);
  EXPECT_EQ(sim.summaries[0].orchestrators_excused, 1);
  EXPECT_EQ(sim.summaries[1].started, 1) << "the excused test did not spend the budget";
  EXPECT_EQ(sim.summaries[1].outcomes.at("ok"), 1);
  EXPECT_EQ(sim.summaries[2].skipped.at("daily_budget"), 1) << "the ok test did";
  const OrchestratorCoverage& c = planner.state().coverage.at("a.example.net:8935");
  EXPECT_EQ(c.excused, 1);
  EXPECT_EQ(c.failed, 0);
  EXPECT_EQ(c.outcomes,
            (std::map<std::string, std::int64_t>{{"excused_no_capacity", 1}, {"ok", 1}}));
  EXPECT_EQ(c.last_outcome, "ok");
}

TEST(PlannerBudgets, a_refusing_results_spool_skips_due_jobs_and_the_round_says_so) {
  PlannerOptions options = base_options();
  Planner planner = make_planner(options);
  const auto targets = make_targets(3, 1, 1min);
  Simulation sim(planner, targets, k_t0);
  // The spool refuses during round 1 (10–20 min): its tests are skipped as they fall due;
  // rounds 0 and 2 run every test.
  sim.can_start = [](SystemTime now) { return now < k_t0 + 10min || now >= k_t0 + 20min; };
  sim.run_until(k_t0 + 30min - 1ms);

  ASSERT_EQ(sim.summaries.size(), 3u);
  EXPECT_EQ(sim.summaries[0].started, 3);
  EXPECT_TRUE(sim.summaries[0].skipped.empty());
  EXPECT_EQ(sim.summaries[1].started, 0);
  EXPECT_EQ(sim.summaries[1].skipped.at(std::string(k_skip_results_spool)), 3);
  EXPECT_EQ(sim.summaries[2].started, 3);
  EXPECT_EQ(sim.skipped.size(), 3u);
  for (const Job& j : sim.skipped) EXPECT_EQ(j.round, planner.round_index(k_t0 + 10min));
  EXPECT_EQ(planner.state().missed_slots_total, 0) << "a skipped round is complete, not missed";
}

TEST(PlannerOutcomes, failures_exclude_ok_excused_aborted_and_gateway_error) {
  for (const char* o : {"ok", "excused_no_capacity", "aborted", "gateway_error"})
    EXPECT_FALSE(outcome_is_failure(o)) << o;
  for (const char* o : {"start_failed", "auth_or_payment_failed", "no_output", "loading_only",
                        "output_stalled", "runner_error", "stream_lost", "degraded"})
    EXPECT_TRUE(outcome_is_failure(o)) << o;
}

TEST(PlannerRounds, job_running_at_the_boundary_makes_the_next_round_a_missed_slot) {
  PlannerOptions options = base_options();
  Planner planner = make_planner(options);
  const std::vector<Target> targets = {{"slow.example.net:8935", 0, 12min}};  // offset 0
  const auto round = planner.begin_round_if_due(k_t0, targets);
  ASSERT_TRUE(round);
  const std::int64_t k = round->index;
  const auto jobs = planner.poll(k_t0);
  ASSERT_EQ(jobs.size(), 1u);

  // The boundary passes with the job still running: no new round, a missed slot instead.
  EXPECT_FALSE(planner.begin_round_if_due(k_t0 + 10min, targets));
  EXPECT_TRUE(planner.poll(k_t0 + 10min).empty());
  const auto missed = planner.take_missed_slots();
  ASSERT_EQ(missed.size(), 1u);
  EXPECT_EQ(missed[0].round, k + 1);
  EXPECT_EQ(since_t0(missed[0].boundary), Millis(10min));
  EXPECT_EQ(missed[0].reason, MissedReason::round_overrun);

  ASSERT_TRUE(planner.finished(jobs[0].id, k_t0 + 12min, "ok"));
  EXPECT_TRUE(planner.round_complete());
  const auto done = planner.take_completed_rounds();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].missed_during, 1);
  EXPECT_EQ(since_t0(done[0].end), Millis(12min));

  // The next round begins at the first boundary after completion, not at completion.
  EXPECT_FALSE(planner.begin_round_if_due(k_t0 + 12min, targets));
  EXPECT_EQ(since_t0(planner.next_wakeup(k_t0 + 12min)), Millis(20min));
  const auto next = planner.begin_round_if_due(k_t0 + 20min, targets);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->index, k + 2);
  EXPECT_EQ(next->missed_before, 1);
  EXPECT_EQ(planner.state().missed_slots_total, 1);
}

TEST(PlannerRounds, every_boundary_passed_during_a_long_overrun_is_missed) {
  Planner planner = make_planner(base_options());
  Simulation sim(planner, {{"slow.example.net:8935", 0, 25min}}, k_t0);
  sim.run_until(k_t0 + 60min - 1ms);
  // Round 0 runs 0–25 min; 10 and 20 are missed; 30 begins and runs to 55; 40 and 50 missed.
  ASSERT_EQ(sim.begun.size(), 2u);
  EXPECT_EQ(since_t0(sim.begun[1].start), Millis(30min));
  EXPECT_EQ(sim.begun[1].missed_before, 2);
  EXPECT_EQ(planner.state().missed_slots_total, 4);
}

TEST(PlannerRounds, rounds_not_begun_while_the_daemon_was_down_are_missed) {
  const PlannerOptions options = base_options();
  const std::vector<Target> targets = {{"a.example.net:8935", 0, 1min}};
  Planner first = make_planner(options);
  Simulation sim(first, targets, k_t0);
  sim.run_until(k_t0 + 10min - 1ms);
  ASSERT_TRUE(first.round_complete());

  // Down from 10 to 42 min: the rounds at 10, 20 and 30 never ran; the one at 40 begins late.
  Planner second = make_planner(options, first.state());
  const auto info = second.begin_round_if_due(k_t0 + 42min, targets);
  ASSERT_TRUE(info);
  EXPECT_EQ(since_t0(info->start), Millis(40min));
  EXPECT_EQ(info->missed_before, 3);
  const auto missed = second.take_missed_slots();
  ASSERT_EQ(missed.size(), 3u);
  EXPECT_EQ(since_t0(missed[0].boundary), Millis(10min));
  EXPECT_EQ(missed[2].reason, MissedReason::not_begun);
  EXPECT_EQ(second.state().missed_slots_total, 3);
}

TEST(PlannerRounds, held_jobs_stay_in_their_round_past_the_boundary) {
  PlannerOptions options = base_options();
  options.global_max_concurrent = 1;
  options.margin = 2min;  // 10 − 8 − 2 = 0: both due at the boundary
  Planner planner = make_planner(options);
  Simulation sim(planner, make_targets(2, 1, 8min), k_t0);
  sim.run_until(k_t0 + 20min);

  ASSERT_EQ(sim.started.size(), 3u);  // the third is the next round's, at 20 min
  EXPECT_EQ(since_t0(sim.started[1].started), Millis(8min));
  EXPECT_EQ(sim.started[1].round, sim.started[0].round) << "not dropped, not moved";
  ASSERT_EQ(sim.summaries.size(), 1u);
  EXPECT_EQ(sim.summaries[0].started, 2);
  EXPECT_EQ(since_t0(sim.summaries[0].end), Millis(16min));
  ASSERT_EQ(sim.begun.size(), 2u);
  EXPECT_EQ(since_t0(sim.begun[1].start), Millis(20min));
  EXPECT_EQ(sim.begun[1].missed_before, 1);
}

TEST(PlannerWatchdog, expired_reports_a_job_at_its_deadline_not_before) {
  PlannerOptions options = base_options();
  options.watchdog_slack = 60s;
  Planner planner = make_planner(options);
  const Target target{"a.example.net:8935", 0, 60s};
  ASSERT_TRUE(planner.begin_round_if_due(k_t0, {target}));
  const SystemTime due = k_t0 + planner.offset(target);
  const auto jobs = planner.poll(due);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(since_t0(jobs[0].deadline), since_t0(due + 120s));

  EXPECT_TRUE(planner.expired(due + 120s - 1ms).empty());
  EXPECT_EQ(since_t0(planner.next_wakeup(due + 1s)), since_t0(due + 120s))
      << "woken for the deadline";
  const auto late = planner.expired(due + 120s);
  ASSERT_EQ(late.size(), 1u);
  EXPECT_EQ(late[0].id, jobs[0].id);

  ASSERT_TRUE(planner.finished(jobs[0].id, due + 121s, "aborted"));
  EXPECT_TRUE(planner.expired(due + 200s).empty());
  const auto again = planner.finished(jobs[0].id, due + 122s, "ok");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().get("job_id"), jobs[0].id);
}

TEST(PlannerWakeup, never_later_than_the_next_due_job) {
  Planner planner = make_planner(base_options());
  const auto targets = make_targets(15, 2, 45s);
  EXPECT_EQ(since_t0(planner.next_wakeup(k_t0 + 5s)), Millis(5s)) << "a round can begin now";
  ASSERT_TRUE(planner.begin_round_if_due(k_t0 + 5s, targets));
  std::set<std::string> started;
  for (SystemTime t = k_t0 + 5s; t < k_t0 + 10min; t += 7s) {
    for (const Job& j : planner.poll(t)) started.insert(j.id);
    std::optional<SystemTime> next_due;
    for (const Target& target : targets) {
      const SystemTime due = k_t0 + planner.offset(target);
      if (due > t && (!next_due || due < *next_due)) next_due = due;
    }
    if (next_due) {
      EXPECT_LE(since_t0(planner.next_wakeup(t)), since_t0(*next_due));
    }
    EXPECT_GT(since_t0(planner.next_wakeup(t)), since_t0(t))
        << "nothing is startable right after a poll";
  }

  // Woken only by next_wakeup, with no limits every job starts exactly when due.
  PlannerOptions unlimited = base_options();
  unlimited.budget.max_concurrent = 2;
  Planner fresh = make_planner(unlimited);
  Simulation sim(fresh, targets, k_t0);
  sim.run_until(k_t0 + 10min - 1ms);
  ASSERT_EQ(sim.started.size(), targets.size());
  for (const Job& j : sim.started) EXPECT_EQ(since_t0(j.started), since_t0(j.due)) << j.id;
}

TEST(PlannerState, save_and_load_round_trip) {
  test::TestDir dir("naap-schedule");
  const fs::path path = dir.path() / "state" / "schedule.json";
  auto empty = load_state(path);
  ASSERT_TRUE(empty) << empty.error().describe();
  EXPECT_EQ(*empty, ScheduleState{}) << "a missing file is a first run";

  PlannerOptions options = base_options();
  options.budget.daily_budget = 4h;
  Planner planner = make_planner(options);
  Simulation sim(planner, make_targets(6, 2, 40s), k_t0);
  int n = 0;
  sim.session = [&](const Job& j) {
    static const char* outcomes[] = {"ok", "excused_no_capacity", "no_output"};
    return Simulation::Session{j.target.expected_duration, outcomes[n++ % 3]};
  };
  sim.run_until(k_t0 + 14min);  // one round done, the next one half way
  ASSERT_FALSE(planner.state().started_in_round.empty());

  ASSERT_TRUE(save_state(path, planner.state()));
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
  auto loaded = load_state(path);
  ASSERT_TRUE(loaded) << loaded.error().describe();
  EXPECT_EQ(*loaded, planner.state());
  EXPECT_EQ(loaded->missed_slots_total, 0);
  EXPECT_EQ(loaded->coverage.size(), 6u);
}

TEST(PlannerState, restart_mid_round_resumes_without_retesting) {
  test::TestDir dir("naap-schedule");
  const fs::path path = dir.path() / "schedule.json";
  PlannerOptions options = base_options();
  options.global_max_concurrent = 2;
  const auto targets = make_targets(10, 1, 60s);

  Planner first = make_planner(options);
  Simulation before(first, targets, k_t0);
  before.run_until(k_t0 + 4min);
  ASSERT_TRUE(save_state(path, first.state()));
  const std::set<TestKey> tested_before = keys_of(before.started);
  ASSERT_GT(tested_before.size(), 0u);
  ASSERT_LT(tested_before.size(), targets.size());

  // The process dies (its running sessions with it) and comes back within the same round.
  auto state = load_state(path);
  ASSERT_TRUE(state) << state.error().describe();
  Planner second = make_planner(options, *state);
  const auto resumed = second.begin_round_if_due(k_t0 + 5min, targets);
  ASSERT_TRUE(resumed);
  EXPECT_EQ(resumed->index, second.round_index(k_t0));
  EXPECT_EQ(resumed->already_started, static_cast<std::int64_t>(tested_before.size()));
  EXPECT_EQ(resumed->planned, static_cast<std::int64_t>(targets.size() - tested_before.size()));
  Simulation after(second, targets, k_t0 + 5min);
  after.run_until(k_t0 + 10min - 1ms);
  ASSERT_TRUE(second.round_complete());

  std::set<TestKey> all = tested_before;
  for (const Job& j : after.started)
    EXPECT_TRUE(all.insert({j.target.orchestrator, j.target.test_index}).second)
        << j.target.orchestrator << " tested twice in one round";
  EXPECT_EQ(all.size(), targets.size());

  // A completed round is not re-run by a third process started within it.
  ASSERT_TRUE(save_state(path, second.state()));
  Planner third = make_planner(options, *load_state(path));
  EXPECT_FALSE(third.round_due(k_t0 + 9min));
  EXPECT_FALSE(third.begin_round_if_due(k_t0 + 9min, targets));
  const auto next = third.begin_round_if_due(k_t0 + 10min, targets);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->planned, static_cast<std::int64_t>(targets.size()));
  EXPECT_EQ(next->missed_before, 0);
}

TEST(PlannerState, daily_budget_carries_over_a_restart_within_the_day) {
  test::TestDir dir("naap-schedule");
  const fs::path path = dir.path() / "schedule.json";
  PlannerOptions options = base_options();
  options.period = 6h;
  options.margin = 5h;  // offsets 0
  options.budget.daily_budget = 2h;
  const std::vector<Target> targets = {{"a.example.net:8935", 0, 1h}};

  Planner first = make_planner(options);
  Simulation before(first, targets, k_t0);
  before.run_until(k_t0 + 12h - 1ms);  // two rounds, 2 h spent
  ASSERT_EQ(before.started.size(), 2u);
  ASSERT_TRUE(save_state(path, first.state()));

  Planner second = make_planner(options, *load_state(path));
  Simulation after(second, targets, k_t0 + 12h);
  after.run_until(k_t0 + 30h - 1ms);  // rounds at 12 h, 18 h and (the next day) 24 h
  ASSERT_EQ(after.summaries.size(), 3u);
  EXPECT_EQ(after.summaries[0].skipped.at("daily_budget"), 1);
  EXPECT_EQ(after.summaries[1].skipped.at("daily_budget"), 1);
  EXPECT_EQ(after.summaries[2].started, 1) << "a new UTC day, a new budget";
}

TEST(PlannerState, corrupt_file_is_an_error_naming_the_path) {
  test::TestDir dir("naap-schedule");
  const fs::path path = dir.path() / "schedule.json";
  for (const std::string& text : {std::string(R"({"version": 1, "period_ms": 600)"),
                                  std::string(R"({"version": 1, "period_ms": "ten minutes"})"),
                                  std::string(""), std::string("[]")}) {
    std::ofstream(path, std::ios::trunc) << text;
    const auto state = load_state(path);
    ASSERT_FALSE(state) << "accepted: " << text;
    EXPECT_EQ(state.error().category, ErrorCategory::config);
    EXPECT_EQ(state.error().get("path"), path.string());
    EXPECT_NE(state.error().describe().find(path.string()), std::string::npos);
  }
}

TEST(PlannerOptionsCheck, impossible_options_are_config_errors) {
  PlannerOptions options = base_options();
  options.period = Millis(0);
  auto planner = Planner::create(options);
  ASSERT_FALSE(planner);
  EXPECT_EQ(planner.error().category, ErrorCategory::config);
  EXPECT_EQ(planner.error().get("field"), "period");

  options = base_options();
  options.budget_overrides["x.example.net:8935"] = {.max_concurrent = 0};
  planner = Planner::create(options);
  ASSERT_FALSE(planner);
  EXPECT_EQ(planner.error().get("field"), "budget_overrides.x.example.net:8935.max_concurrent");
}

}  // namespace
}  // namespace naap::scheduler
