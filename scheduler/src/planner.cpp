// The round planner (docs/scheduler.md): epoch-aligned rounds, stable per-region offsets,
// per-orchestrator and global budgets, watchdog deadlines, missed slots.
#include "naap/scheduler/planner.hpp"

#include <algorithm>
#include <charconv>
#include <set>
#include <tuple>
#include <utility>

#include "naap/core/sha256.hpp"

namespace naap::scheduler {
namespace {

constexpr std::int64_t k_ms_per_day = 24 * 60 * 60 * 1000;
constexpr std::int64_t k_max_missed_listed = 1000;  // MissedSlot entries kept per gap

std::int64_t unix_ms(SystemTime t) {
  return std::chrono::floor<Millis>(t.time_since_epoch()).count();
}

// Floor division: instants before the epoch still fall in the round that contains them.
std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  const std::int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

std::int64_t utc_day(SystemTime t) {
  return floor_div(unix_ms(t), k_ms_per_day);
}

Error option_error(std::string message, std::string field) {
  return Error(ErrorCategory::config, std::move(message)).with("field", std::move(field));
}

Result<void> check_budget(const OrchestratorBudget& b, const std::string& where) {
  if (b.max_concurrent < 1)
    return fail(option_error("max_concurrent must be at least 1", where + ".max_concurrent"));
  if (b.min_gap < Millis(0))
    return fail(option_error("min_gap must not be negative", where + ".min_gap"));
  if (b.daily_budget < Millis(0))
    return fail(
        option_error("daily_budget must not be negative (0 = unlimited)", where + ".daily_budget"));
  return {};
}

}  // namespace

std::string_view to_string(MissedReason reason) {
  switch (reason) {
    case MissedReason::round_overrun:
      return "round_overrun";
    case MissedReason::not_begun:
      return "not_begun";
  }
  return "unknown";
}

bool outcome_is_failure(std::string_view outcome) {
  return outcome != "ok" && outcome != k_outcome_excused && outcome != "aborted" &&
         outcome != "gateway_error";
}

std::uint64_t offset_hash(std::string_view key) {
  const std::string hex = Sha256::hex(key);
  std::uint64_t value = 0;
  std::from_chars(hex.data(), hex.data() + 16, value, 16);  // 16 hex digits = 8 bytes
  return value;
}

Millis stable_offset(std::string_view region, std::string_view orchestrator, int test_index,
                     Millis period, Millis expected_duration, Millis margin) {
  const Millis window = period - expected_duration - margin;
  if (window <= Millis(0)) return Millis(0);
  std::string key;
  key.append(region).append("|").append(orchestrator).append("|");
  key.append(std::to_string(test_index));
  return Millis(
      static_cast<std::int64_t>(offset_hash(key) % static_cast<std::uint64_t>(window.count())));
}

Result<Planner> Planner::create(PlannerOptions options, ScheduleState state) {
  if (options.period <= Millis(0))
    return fail(option_error("the round period must be positive", "period"));
  const Millis margin = options.margin.value_or(options.period / 10);
  if (margin < Millis(0)) return fail(option_error("margin must not be negative", "margin"));
  if (options.watchdog_slack < Millis(0))
    return fail(option_error("watchdog_slack must not be negative", "watchdog_slack"));
  if (options.global_max_concurrent < 0)
    return fail(option_error("global_max_concurrent must not be negative (0 = no limit)",
                             "global_max_concurrent"));
  if (auto r = check_budget(options.budget, "budget"); !r) return fail(r.error());
  for (const auto& [orchestrator, b] : options.budget_overrides)
    if (auto r = check_budget(b, "budget_overrides." + orchestrator); !r) return fail(r.error());
  if (state.period != options.period) {
    // Round indices counted in another period mean other instants: forget them (coverage and
    // daily budgets do not depend on the period and stay).
    state.last_round_begun.reset();
    state.last_round_completed.reset();
    state.last_missed_round.reset();
    state.started_in_round.clear();
    state.period = options.period;
  }
  return Planner(std::move(options), margin, std::move(state));
}

Planner::Planner(PlannerOptions options, Millis margin, ScheduleState state)
    : options_(std::move(options)), margin_(margin), state_(std::move(state)) {}

std::int64_t Planner::round_index(SystemTime t) const {
  return floor_div(unix_ms(t), options_.period.count());
}

SystemTime Planner::round_start(std::int64_t index) const {
  return SystemTime(index * options_.period);
}

Millis Planner::offset(const Target& target) const {
  return stable_offset(options_.region, target.orchestrator, target.test_index, options_.period,
                       std::max(target.expected_duration, Millis(0)), margin_);
}

const OrchestratorBudget& Planner::budget_for(const std::string& orchestrator) const {
  const auto it = options_.budget_overrides.find(orchestrator);
  return it == options_.budget_overrides.end() ? options_.budget : it->second;
}

std::optional<std::int64_t> Planner::beginnable_round(SystemTime now) const {
  if (round_ && !round_->complete) return std::nullopt;  // no overlap
  const std::int64_t k = round_index(now);
  const bool resumable =
      !round_ && state_.last_round_begun == k && state_.last_round_completed != k;
  if (resumable) return k;
  if (state_.last_round_begun && k <= *state_.last_round_begun) return std::nullopt;
  if (state_.last_missed_round && k <= *state_.last_missed_round) return std::nullopt;
  return k;
}

bool Planner::round_due(SystemTime now) const {
  return beginnable_round(now).has_value();
}

bool Planner::round_complete() const {
  return !round_ || round_->complete;
}

void Planner::record_missed(std::int64_t first, std::int64_t last, MissedReason reason) {
  if (last < first) return;
  const std::int64_t count = last - first + 1;
  state_.missed_slots_total += count;
  state_.last_missed_round = last;
  missed_since_begin_ += count;
  // Every slot is counted; after a long outage only the latest are listed one by one.
  for (std::int64_t r = std::max(first, last - k_max_missed_listed + 1); r <= last; ++r)
    missed_.push_back({r, round_start(r), reason});
  ++revision_;
}

void Planner::note_boundaries(SystemTime now) {
  if (!round_ || round_->complete) return;
  std::int64_t from = round_->info.index + 1;
  if (state_.last_missed_round) from = std::max(from, *state_.last_missed_round + 1);
  const std::int64_t to = round_index(now);
  if (to < from) return;
  record_missed(from, to, MissedReason::round_overrun);
  round_->missed_during += to - from + 1;
}

std::optional<RoundInfo> Planner::begin_round_if_due(SystemTime now,
                                                     const std::vector<Target>& targets) {
  note_boundaries(now);
  const auto k = beginnable_round(now);
  if (!k) return std::nullopt;
  const bool resume = state_.last_round_begun == *k;
  if (!resume) {
    // Grid rounds between the last one accounted for (begun or missed) and this one never ran.
    std::optional<std::int64_t> accounted = state_.last_round_begun;
    if (state_.last_missed_round)
      accounted =
          std::max(accounted.value_or(*state_.last_missed_round), *state_.last_missed_round);
    if (accounted) record_missed(*accounted + 1, *k - 1, MissedReason::not_begun);
    state_.started_in_round.clear();
  }

  Round round;
  round.info.index = *k;
  round.info.start = round_start(*k);
  round.info.began = now;
  round.info.missed_before = missed_since_begin_;
  missed_since_begin_ = 0;
  std::set<TestKey> seen;
  for (const Target& t : targets) {
    TestKey key{t.orchestrator, t.test_index};
    if (!seen.insert(key).second) continue;
    if (resume && state_.started_in_round.contains(key)) {
      ++round.info.already_started;
      continue;
    }
    Entry e;
    e.job.target = t;
    e.job.target.expected_duration = std::max(t.expected_duration, Millis(0));
    e.job.round = *k;
    e.job.id = "r" + std::to_string(*k) + "-" + t.orchestrator + "-" + std::to_string(t.test_index);
    e.job.due = round.info.start + offset(e.job.target);
    round.entries.push_back(std::move(e));
  }
  std::sort(round.entries.begin(), round.entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.job.due, a.job.target.orchestrator, a.job.target.test_index) <
           std::tie(b.job.due, b.job.target.orchestrator, b.job.target.test_index);
  });
  round.info.planned = static_cast<std::int64_t>(round.entries.size());
  state_.last_round_begun = *k;
  const RoundInfo info = round.info;
  round_ = std::move(round);
  ++revision_;
  complete_if_done(now);  // a round with nothing to do completes at once
  return info;
}

std::optional<SystemTime> Planner::gap_end(const std::string& orchestrator) const {
  const auto it = state_.coverage.find(orchestrator);
  if (it == state_.coverage.end() || !it->second.last_finished) return std::nullopt;
  return *it->second.last_finished + budget_for(orchestrator).min_gap;
}

bool Planner::concurrency_allows(const std::string& orchestrator) const {
  if (options_.global_max_concurrent > 0 && running_total_ >= options_.global_max_concurrent)
    return false;
  const auto it = running_by_orchestrator_.find(orchestrator);
  const int running = it == running_by_orchestrator_.end() ? 0 : it->second;
  return running < budget_for(orchestrator).max_concurrent;
}

OrchestratorCoverage& Planner::coverage_on_day(const std::string& orchestrator, SystemTime now) {
  OrchestratorCoverage& c = state_.coverage[orchestrator];
  if (const std::int64_t day = utc_day(now); c.utc_day != day) {
    c.utc_day = day;
    c.tests_today = 0;
    c.used_today = Millis(0);
  }
  return c;
}

void Planner::skip(Entry& entry, std::string_view reason) {
  entry.status = Status::skipped;
  entry.skip_reason = std::string(reason);
  ++revision_;
}

std::vector<Job> Planner::poll(SystemTime now) {
  note_boundaries(now);
  std::vector<Job> started;
  if (!round_ || round_->complete) return started;
  for (Entry& e : round_->entries) {
    if (e.status != Status::pending) continue;
    if (e.job.due > now) break;  // entries are in due order
    const std::string& orchestrator = e.job.target.orchestrator;
    if (!concurrency_allows(orchestrator)) continue;
    if (const auto end = gap_end(orchestrator); end && now < *end) continue;
    // The budget is judged when the job could start: the day it starts is the day it uses.
    const OrchestratorBudget& budget = budget_for(orchestrator);
    OrchestratorCoverage& c = coverage_on_day(orchestrator, now);
    const Millis duration = e.job.target.expected_duration;
    if (budget.daily_budget > Millis(0) && c.used_today + duration > budget.daily_budget) {
      skip(e, k_skip_daily_budget);
      continue;
    }
    e.status = Status::running;
    e.job.started = now;
    e.job.deadline = now + duration + options_.watchdog_slack;
    c.last_tested = now;
    ++c.tests_today;
    c.used_today += duration;
    state_.started_in_round.insert({orchestrator, e.job.target.test_index});
    ++running_total_;
    ++running_by_orchestrator_[orchestrator];
    started.push_back(e.job);
    ++revision_;
  }
  complete_if_done(now);
  return started;
}

std::vector<Job> Planner::skip_due(SystemTime now, std::string_view reason) {
  note_boundaries(now);
  std::vector<Job> skipped;
  if (!round_ || round_->complete) return skipped;
  for (Entry& e : round_->entries) {
    if (e.status != Status::pending) continue;
    if (e.job.due > now) break;  // entries are in due order
    skip(e, reason);
    skipped.push_back(e.job);
  }
  complete_if_done(now);
  return skipped;
}

SystemTime Planner::next_wakeup(SystemTime now) const {
  if (round_due(now)) return now;
  SystemTime wake = round_start(round_index(now) + 1);
  if (!round_ || round_->complete) return wake;
  for (const Entry& e : round_->entries) {
    if (e.status == Status::running) {
      // A deadline already passed was reported by expired(); waking for it again would spin.
      if (e.job.deadline > now) wake = std::min(wake, e.job.deadline);
      continue;
    }
    if (e.status != Status::pending) continue;
    if (e.job.due > now) {
      wake = std::min(wake, e.job.due);
      continue;
    }
    const std::string& orchestrator = e.job.target.orchestrator;
    if (const auto end = gap_end(orchestrator); end && *end > now) {
      wake = std::min(wake, *end);
      continue;
    }
    if (concurrency_allows(orchestrator)) return now;  // startable (or skippable) right now
    // Held by concurrency: a finished() frees the slot, and the caller polls after it.
  }
  return wake;
}

std::vector<Job> Planner::expired(SystemTime now) const {
  std::vector<Job> out;
  if (!round_) return out;
  for (const Entry& e : round_->entries)
    if (e.status == Status::running && e.job.deadline <= now) out.push_back(e.job);
  return out;
}

std::vector<Job> Planner::running() const {
  std::vector<Job> out;
  if (!round_) return out;
  for (const Entry& e : round_->entries)
    if (e.status == Status::running) out.push_back(e.job);
  return out;
}

Result<void> Planner::finished(std::string_view job_id, SystemTime now, std::string_view outcome) {
  note_boundaries(now);
  Entry* entry = nullptr;
  if (round_)
    for (Entry& e : round_->entries)
      if (e.job.id == job_id && e.status == Status::running) entry = &e;
  if (!entry)
    return fail(Error(ErrorCategory::internal, "finished() for a job that is not running")
                    .with("job_id", std::string(job_id)));
  entry->status = Status::finished;
  entry->outcome = outcome;
  const std::string& orchestrator = entry->job.target.orchestrator;
  --running_total_;
  if (--running_by_orchestrator_[orchestrator] == 0) running_by_orchestrator_.erase(orchestrator);

  OrchestratorCoverage& c = coverage_on_day(orchestrator, now);
  c.last_finished = now;
  c.last_outcome = outcome;
  ++c.outcomes[std::string(outcome)];
  if (outcome == k_outcome_excused) {
    ++c.excused;
    // The orchestrator had no capacity: no test time was spent, so refund it (on the day it
    // was charged; after midnight the new day's counters owe nothing).
    if (utc_day(entry->job.started) == c.utc_day)
      c.used_today = std::max(Millis(0), c.used_today - entry->job.target.expected_duration);
  } else if (outcome_is_failure(outcome)) {
    ++c.failed;
  }
  ++revision_;
  complete_if_done(now);
  return {};
}

void Planner::complete_if_done(SystemTime now) {
  if (!round_ || round_->complete) return;
  for (const Entry& e : round_->entries)
    if (e.status == Status::pending || e.status == Status::running) return;
  round_->complete = true;

  RoundSummary s;
  s.index = round_->info.index;
  s.start = round_->info.start;
  s.end = now;
  s.planned = round_->info.planned;
  s.already_started = round_->info.already_started;
  s.missed_before = round_->info.missed_before;
  s.missed_during = round_->missed_during;
  std::set<std::string> tested, excused;
  for (const Entry& e : round_->entries) {
    if (e.status == Status::skipped) {
      ++s.skipped[e.skip_reason];
      continue;
    }
    ++s.started;
    tested.insert(e.job.target.orchestrator);
    ++s.outcomes[e.outcome];
    if (e.outcome == k_outcome_excused) {
      ++s.excused;
      excused.insert(e.job.target.orchestrator);
    } else if (outcome_is_failure(e.outcome)) {
      ++s.failed;
    }
  }
  s.orchestrators_tested = static_cast<std::int64_t>(tested.size());
  s.orchestrators_excused = static_cast<std::int64_t>(excused.size());
  completed_.push_back(std::move(s));

  state_.last_round_completed = round_->info.index;
  state_.started_in_round.clear();
  ++revision_;
}

std::vector<RoundSummary> Planner::take_completed_rounds() {
  return std::exchange(completed_, {});
}

std::vector<MissedSlot> Planner::take_missed_slots() {
  return std::exchange(missed_, {});
}

}  // namespace naap::scheduler
