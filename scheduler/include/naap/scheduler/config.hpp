// The daemon's configuration (`naap-loadtest run|once --config FILE`): a YAML file, overridden by
// NAAP_CONFIG__* environment variables, validated in one pass that reports every problem with its
// FILE:LINE:COL and key path (docs/configuration.md, "Daemon configuration file").
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "naap/core/error.hpp"
#include "naap/core/log.hpp"
#include "naap/reports/publisher.hpp"

namespace naap::scheduler {

using std::chrono::milliseconds;

// The process environment as the loader sees it: name → value. Passed in so that tests never
// touch the real environment.
using Env = std::map<std::string, std::string>;

// A copy of the process environment (`environ`).
Env process_env();

// Environment variables the loader reads.
inline constexpr std::string_view k_override_prefix = "NAAP_CONFIG__";           // + KEY__PATH
inline constexpr std::string_view k_kafka_password_env = "NAAP_KAFKA_PASSWORD";  // SASL password

// Which video decoder sessions use for the orchestrator's output.
enum class DecoderChoice {
  automatic,  // "auto": NVDEC when a CUDA device opens, software otherwise
  software,   // libavcodec on the CPU
  nvdec,      // NVDEC only (a session fails without a usable CUDA device)
  none,       // demux only: no decoding, no frame-level metrics
};

std::string_view to_string(DecoderChoice choice);

// How often rounds start.
struct RoundConfig {
  milliseconds period{10 * 60'000};  // one round per period, 30 s .. 24 h
};

// Limits applied to each orchestrator separately.
struct BudgetConfig {
  int max_concurrent = 1;   // sessions at once on one orchestrator, 1..256
  milliseconds min_gap{0};  // end of one test → start of the next, same orchestrator
  milliseconds daily_time{4 * 3'600'000};  // session time per UTC day; 0 = unlimited
};

// An HTTP endpoint that returns the orchestrators to test.
struct WebhookDiscovery {
  std::string url;              // http(s) URL
  milliseconds timeout{5'000};  // request deadline, 100 ms .. 60 s
};

// A remote signer's /discover-orchestrators.
struct SignerDiscovery {
  std::string url;  // http(s) URL of the signer
};

// Where the orchestrators under test come from (at least one source).
struct DiscoveryConfig {
  milliseconds refresh{5 * 60'000};           // how often the sources are asked again, 10 s .. 24 h
  milliseconds probe_timeout{5'000};          // GetOrchestrator deadline, 100 ms .. 60 s
  std::vector<std::string> static_addresses;  // `static:` HOST:PORT list, in file order
  std::optional<WebhookDiscovery> webhook;    // `webhook:` when given
  std::optional<SignerDiscovery> signer;      // `signer:` when given
};

// One entry of `tests:`: what each round runs against every (matching) orchestrator.
struct TestSpec {
  std::string pipeline;                         // preset name, e.g. "noop"
  std::string dataset = "naap-default";         // dataset id or path
  std::string scenario;                         // empty = the dataset's first for the pipeline
  std::optional<milliseconds> duration;         // overrides the scenario's session length
  std::optional<milliseconds> prompt_interval;  // overrides the scenario's prompt cadence
  std::vector<std::string> include;             // only these orchestrators (HOST:PORT); empty = all
  std::vector<std::string> exclude;             // never these orchestrators (HOST:PORT)
};

// The local operations endpoint.
struct OpsConfig {
  std::string listen = "127.0.0.1:9464";  // HOST:PORT for /healthz /readyz /metrics; "" = off
};

// The effective configuration: the file, then the environment, then defaults.
struct Config {
  std::string source;                       // the file as given (not part of the fingerprint)
  std::string gateway_id;                   // names this gateway in events; default: host name
  std::string region;                       // where the gateway runs, e.g. "FRA"
  std::filesystem::path state_dir;          // schedule state, default spool and events file
  log::Level log_level = log::Level::info;  // debug | info | warn | error
  RoundConfig round;                        // round cadence
  int concurrency = 4;                      // sessions at once over all orchestrators, 1..256
  milliseconds watchdog_slack{60'000};      // abort a session this long after its planned end
  BudgetConfig budgets;                     // per-orchestrator limits
  DiscoveryConfig discovery;                // orchestrator sources
  std::optional<std::string> signer_url;    // remote signer for payments; none = off-chain
  std::vector<TestSpec> tests;              // what every round runs, never empty
  DecoderChoice decoder = DecoderChoice::automatic;  // output decoding
  reports::ResultsOptions results;  // `sinks:`; kafka.sasl_password from NAAP_KAFKA_PASSWORD
  OpsConfig ops;                    // operations endpoint
  // Names of the environment variables that changed the configuration (never their values,
  // which may be secrets): NAAP_CONFIG__* and NAAP_KAFKA_PASSWORD, sorted.
  std::vector<std::string> overrides;

  // Canonical JSON of the effective configuration (sorted keys, durations in ms), without
  // secrets, source and overrides: equal for equal settings however they were written.
  std::string canonical() const;
  // SHA-256 hex of canonical(): the run summaries' config_sha256.
  std::string fingerprint() const;
  // A human-readable multi-line summary for `--check-config`; never shows secrets.
  std::string describe() const;
};

// One thing wrong with a configuration. `file` is the configuration file, or the environment
// variable whose value is at fault; line and column are 1-based, 0 when there is no position.
struct ConfigProblem {
  std::string file;     // file path as given, or an environment variable name
  int line = 0;         // 1-based; 0 = the problem has no position (e.g. a missing key)
  int column = 0;       // 1-based; 0 with line 0
  std::string key;      // key path, e.g. "discovery.static[1]"; empty for the file as a whole
  std::string message;  // what is wrong and what is expected

  // "FILE:LINE:COL: KEY: message", dropping the parts that are empty.
  std::string to_string() const;
};

// Parses and validates `yaml_text` (named `file_name` in problems) with the overrides found in
// `env`. On any problem, fails with one config error whose message has one line per problem
// (ConfigProblem::to_string), context file= and problems=; `problems`, when given, receives the
// same list (empty on success).
Result<Config> parse_config(std::string_view yaml_text, std::string_view file_name, const Env& env,
                            std::vector<ConfigProblem>* problems = nullptr);

// Reads `file` and parse_config()s it. A file that cannot be read (missing, a folder, no
// permission) is one problem naming the path.
Result<Config> load_config(const std::filesystem::path& file, const Env& env,
                           std::vector<ConfigProblem>* problems = nullptr);

// load_config() with the process environment.
Result<Config> load_config(const std::filesystem::path& file);

// Parses a duration: a decimal number and a unit, ms, s, m or h ("90s", "1.5m", "500ms", "-2s").
// Whole milliseconds only. The error message names the expected form.
Result<milliseconds> parse_duration(std::string_view text);

// Formats a duration in the largest unit that keeps it whole: "10m", "90s", "1500ms", "0s".
std::string format_duration(milliseconds duration);

// Checks "HOST:PORT" (IPv6 in brackets, "[::1]:8935"); port 1..65535, or 0..65535 when
// `allow_port_zero`. Returns an empty string when valid, else what is wrong.
std::string check_host_port(std::string_view text, bool allow_port_zero = false);

}  // namespace naap::scheduler
