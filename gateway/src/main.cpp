// naap-loadtest: entry point and subcommand dispatch. Subcommands are small wiring functions.
#include <cstdio>
#include <cstring>
#include <string_view>

#include "commands.hpp"
#include "naap/version.hpp"

namespace {

constexpr const char* k_usage =
    R"(naap-loadtest — the NaaP load-test gateway for Livepeer live-video-to-video

Usage: naap-loadtest <command> [options]

Commands:
  run --config FILE  the daemon: every orchestrator discovered is tested every round (10 min),
                     results to Kafka/JSONL, ops endpoints /healthz /readyz /metrics
  once --config FILE one round now, then exit with a code that summarises it (cron)
  bench              run one live session against an orchestrator (or --emulated) and
                     measure it: progress, report, JSON run record, exit code
  selfcheck          publish and read back segments through an in-process trickle server,
                     verify every SHA-256 and print throughput (the transport self-check)
  emulate            serve an emulated orchestrator + runner (gRPC, HTTPS, trickle) with
                     fault injection and ground truth: the peer for tests and first runs
  trickle serve      run a trickle server (go-livepeer semantics) on loopback
  trickle publish    publish synthetic segments to a trickle channel
  trickle subscribe  read a trickle channel and print each segment's size and SHA-256
  datasets list      list the datasets found: id, version, pipelines, clips, scenarios
  datasets show ID   a dataset's presets, prompt sets, clips and scenarios (--json: manifest)
  datasets verify    check clip SHA-256s, prompt sets, presets and scenarios [of one ID]

Options:
  -h, --help         show this help (also: naap-loadtest <command> --help)
  -V, --version      print the version

Documentation: docs/user-guide.md. Exit codes: 0 ok, 1 the job found a failure, 2 usage error,
3 orchestrator unreachable or start failed, 4 internal error.
)";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(k_usage, stderr);
    return naap::cli::k_exit_usage;
  }
  std::string_view cmd = argv[1];
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    std::fputs(k_usage, stdout);
    return naap::cli::k_exit_ok;
  }
  if (cmd == "-V" || cmd == "--version" || cmd == "version") {
    std::printf("naap-loadtest %s\n", naap::k_version);
    return naap::cli::k_exit_ok;
  }
  if (cmd == "bench") return naap::cli::run_bench(argc - 1, argv + 1);
  if (cmd == "run") return naap::cli::run_run(argc - 1, argv + 1);
  if (cmd == "once") return naap::cli::run_once(argc - 1, argv + 1);
  if (cmd == "selfcheck") return naap::cli::run_selfcheck(argc - 1, argv + 1);
  if (cmd == "emulate") return naap::cli::run_emulate(argc - 1, argv + 1);
  if (cmd == "trickle") return naap::cli::run_trickle(argc - 1, argv + 1);
  if (cmd == "datasets") return naap::cli::run_datasets(argc - 1, argv + 1);
  std::fprintf(stderr, "naap-loadtest: unknown command '%s'\n\n%s", argv[1], k_usage);
  return naap::cli::k_exit_usage;
}
