// Subcommand entry points of naap-loadtest. Each returns the process exit code.
#pragma once

#include <cxxopts.hpp>
#include <optional>

namespace naap::cli {

// Exit codes shared by every subcommand.
inline constexpr int k_exit_ok = 0;
inline constexpr int k_exit_failed = 1;  // the job ran and found a failure
inline constexpr int k_exit_usage = 2;   // bad command line or configuration

int run_selfcheck(int argc, char** argv);
int run_trickle(int argc, char** argv);
int run_emulate(int argc, char** argv);
int run_bench(int argc, char** argv);
int run_datasets(int argc, char** argv);
int run_run(int argc, char** argv);   // the daemon
int run_once(int argc, char** argv);  // one round

// Adds --help and --log-level, parses argv, prints help or a usage error (setting exit_code).
// Returns nullopt when the caller should exit with exit_code.
std::optional<cxxopts::ParseResult> parse_args(cxxopts::Options& options, int argc, char** argv,
                                               int& exit_code);

// This process's user+system CPU time, in seconds, and peak RSS, in KiB (getrusage).
double cpu_seconds();
long peak_rss_kib();

}  // namespace naap::cli
