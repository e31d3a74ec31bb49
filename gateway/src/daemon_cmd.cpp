// `naap-loadtest run` (the daemon) and `naap-loadtest once` (one round, for cron and Kubernetes
// CronJobs): load and validate the YAML configuration, then hand over to scheduler::Daemon.
// See docs/user-guide.md and docs/configuration.md.
#include <cstdio>

#include "commands.hpp"
#include "naap/core/log.hpp"
#include "naap/scheduler/config.hpp"
#include "naap/scheduler/daemon.hpp"
#include "naap/version.hpp"

namespace naap::cli {

namespace {

int run_daemon(int argc, char** argv, bool once) {
  const char* name = once ? "naap-loadtest once" : "naap-loadtest run";
  cxxopts::Options options(name, once ? "Run one round of tests now, then exit with a code that "
                                        "summarises it (0 all ok/excused, 1 failures, 2 config, "
                                        "3 nothing to test, 4 our side)."
                                      : "Test every advertised orchestrator every round, "
                                        "publish results, serve /healthz /readyz /metrics.");
  options.add_options()("c,config", "the YAML configuration file (docs/configuration.md)",
                        cxxopts::value<std::string>())(
      "check-config", "validate the configuration, print the effective settings, exit");
  int exit_code = k_exit_ok;
  auto args = parse_args(options, argc, argv, exit_code);
  if (!args) return exit_code;
  if (!args->count("config")) {
    std::fprintf(stderr, "%s: --config FILE is required\n", name);
    return k_exit_usage;
  }
  const std::string path = (*args)["config"].as<std::string>();
  std::vector<scheduler::ConfigProblem> problems;
  auto config = scheduler::load_config(path, scheduler::process_env(), &problems);
  if (!config) {
    std::fprintf(stderr, "%s: the configuration has %zu problem%s:\n", name, problems.size(),
                 problems.size() == 1 ? "" : "s");
    for (const auto& p : problems) std::fprintf(stderr, "  %s\n", p.to_string().c_str());
    if (problems.empty()) std::fprintf(stderr, "  %s\n", config.error().describe().c_str());
    return k_exit_usage;
  }
  if (args->count("check-config")) {
    std::printf("%s", config->describe().c_str());
    return k_exit_ok;
  }
  if (args->count("log-level") == 0) log::set_level(config->log_level);
  scheduler::DaemonOptions daemon_options;
  daemon_options.config = *config;
  daemon_options.config_path = path;
  daemon_options.once = once;
  daemon_options.software_version = k_version;
  auto daemon = scheduler::Daemon::create(std::move(daemon_options));
  if (!daemon) {
    std::fprintf(stderr, "%s: %s\n", name, daemon.error().describe().c_str());
    return daemon.error().category == ErrorCategory::config ? k_exit_usage
                                                            : scheduler::k_exit_gateway;
  }
  return (*daemon)->run();
}

}  // namespace

int run_run(int argc, char** argv) {
  return run_daemon(argc, argv, false);
}
int run_once(int argc, char** argv) {
  return run_daemon(argc, argv, true);
}

}  // namespace naap::cli
