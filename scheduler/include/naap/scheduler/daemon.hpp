// The daemon loop (`naap-loadtest run`, and `once` for cron): discovery (static list, webhook,
// remote signer) with a GetOrchestrator probe per orchestrator, rounds planned by the Planner,
// one LiveSession per job with its events published through the results pipeline, watchdogs,
// graceful drain on SIGTERM, reload on SIGHUP, persisted schedule state, and the figures behind
// the ops endpoints (/healthz, /readyz, /metrics). docs/scheduler.md, docs/user-guide.md.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "naap/core/error.hpp"
#include "naap/scheduler/config.hpp"

namespace naap::scheduler {

struct DaemonOptions {
  Config config;                      // validated configuration
  std::filesystem::path config_path;  // re-read on SIGHUP; empty = no reload
  bool once = false;                  // one round, every job due at once, then exit
  std::string software_version;       // for records and /metrics
};

// Exit codes of `once` (and of `run` when it cannot start).
inline constexpr int k_exit_round_ok = 0;          // every session ok or excused
inline constexpr int k_exit_round_failures = 1;    // a session failed (charged to an orchestrator)
inline constexpr int k_exit_config = 2;            // configuration or state unusable
inline constexpr int k_exit_no_orchestrators = 3;  // discovery found nothing to test
inline constexpr int k_exit_gateway =
    4;  // our side: gateway errors, aborted, sessions skipped, results not delivered

class Daemon {
 public:
  // Opens the results pipeline, the schedule state and the ops listener; errors name the path,
  // the sink or the address.
  static Result<std::unique_ptr<Daemon>> create(DaemonOptions options);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Runs on the calling thread until SIGTERM/SIGINT has drained (run) or the round ended
  // (once). Returns the exit code.
  int run();

  // The ops endpoint's address once listening ("" when off).
  std::string ops_address() const;

  struct Impl;

 private:
  explicit Daemon(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace naap::scheduler
