// The daemon's configuration: the shipped example loads as written, a minimal file gets the
// documented defaults, every class of mistake is reported with FILE:LINE:COL and key (all of them
// at once), environment overrides, the fingerprint, and duration / address parsing.
#include "naap/scheduler/config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "../reports/test_dir.hpp"
#include "naap/core/sha256.hpp"

namespace {

namespace fs = std::filesystem;
using naap::scheduler::Config;
using naap::scheduler::ConfigProblem;
using naap::scheduler::DecoderChoice;
using naap::scheduler::Env;
using Kind = naap::reports::ResultsOptions::SinkKind;
using std::chrono::milliseconds;
using namespace std::chrono_literals;

const fs::path k_example = fs::path(NAAP_TEST_SOURCE_DIR) / "deploy" / "naap-loadtest.example.yaml";

// The smallest valid file: region, one discovery source, one test.
const std::string k_minimal = R"(region: FRA
discovery:
  static: ["orch-a.example:8935"]
tests:
  - pipeline: noop
)";

struct Parsed {
  naap::Result<Config> result;
  std::vector<ConfigProblem> problems;
};

Parsed parse(const std::string& text, const Env& env = {}) {
  std::vector<ConfigProblem> problems;
  auto result = naap::scheduler::parse_config(text, "naap.yaml", env, &problems);
  return Parsed{std::move(result), std::move(problems)};
}

std::string all_problems(const Parsed& parsed) {
  std::string out;
  for (const auto& p : parsed.problems) out += "\n  " + p.to_string();
  return out.empty() ? "\n  (no problems)" : out;
}

// The load failed with a problem at exactly FILE:LINE:COL for `key` whose message contains
// `part`, listed both structurally and as a line of the error message.
::testing::AssertionResult has_problem(const Parsed& parsed, const std::string& file, int line,
                                       int column, const std::string& key,
                                       const std::string& part) {
  if (parsed.result) return ::testing::AssertionFailure() << "the configuration loaded";
  if (parsed.result.error().category != naap::ErrorCategory::config)
    return ::testing::AssertionFailure()
           << "not a config error: " << parsed.result.error().describe();
  for (const auto& p : parsed.problems) {
    if (p.key != key || p.file != file || p.line != line || p.column != column) continue;
    if (p.message.find(part) == std::string::npos) continue;
    std::string prefix = file;
    if (line > 0) prefix += ":" + std::to_string(line) + ":" + std::to_string(column);
    prefix += ": " + (key.empty() ? std::string() : key + ": ");
    const std::string& message = parsed.result.error().message;
    const std::string expected_line = prefix + p.message;
    const bool own_line = message == expected_line || message.starts_with(expected_line + "\n") ||
                          message.find("\n" + expected_line + "\n") != std::string::npos ||
                          message.ends_with("\n" + expected_line);
    if (!own_line) {
      return ::testing::AssertionFailure()
             << "problem found but the error message lacks the line '" << expected_line << "':\n"
             << message;
    }
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "no problem " << file << ":" << line << ":" << column << ": " << key << ": ...'" << part
         << "'... among:" << all_problems(parsed);
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

TEST(ConfigExample, example_file_loads_with_every_value_as_written) {
  std::vector<ConfigProblem> problems;
  auto config = naap::scheduler::load_config(k_example, Env{}, &problems);
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_TRUE(problems.empty());
  const Config& c = *config;
  EXPECT_EQ(c.source, k_example.string());
  EXPECT_EQ(c.gateway_id, "naap-lt-fra-1");
  EXPECT_EQ(c.region, "FRA");
  EXPECT_EQ(c.state_dir, fs::path("/var/lib/naap-loadtest"));
  EXPECT_EQ(c.log_level, naap::log::Level::info);
  EXPECT_EQ(c.round.period, 10min);
  EXPECT_EQ(c.concurrency, 4);
  EXPECT_EQ(c.watchdog_slack, 60s);
  EXPECT_EQ(c.budgets.max_concurrent, 1);
  EXPECT_EQ(c.budgets.min_gap, 0s);
  EXPECT_EQ(c.budgets.daily_time, 4h);
  EXPECT_EQ(c.discovery.refresh, 5min);
  EXPECT_EQ(c.discovery.probe_timeout, 5s);
  EXPECT_EQ(c.discovery.static_addresses,
            (std::vector<std::string>{"orch-a.example:8935", "10.0.0.5:8935"}));
  ASSERT_TRUE(c.discovery.webhook);
  EXPECT_EQ(c.discovery.webhook->url, "https://discovery.example/orchestrators");
  EXPECT_EQ(c.discovery.webhook->timeout, 5s);
  ASSERT_TRUE(c.discovery.signer);
  EXPECT_EQ(c.discovery.signer->url, "https://signer.example:8081");
  EXPECT_EQ(c.signer_url, "https://signer.example:8081");
  ASSERT_EQ(c.tests.size(), 2u);
  EXPECT_EQ(c.tests[0].pipeline, "noop");
  EXPECT_EQ(c.tests[0].dataset, "naap-default");
  EXPECT_EQ(c.tests[0].scenario, "noop-smoke");
  EXPECT_EQ(c.tests[0].duration, milliseconds(30s));
  EXPECT_EQ(c.tests[0].prompt_interval, milliseconds(10s));
  EXPECT_EQ(c.tests[0].include, (std::vector<std::string>{"orch-a.example:8935"}));
  EXPECT_TRUE(c.tests[0].exclude.empty());
  EXPECT_EQ(c.tests[1].pipeline, "streamdiffusion");
  EXPECT_EQ(c.tests[1].dataset, "naap-default");
  EXPECT_EQ(c.tests[1].scenario, "streamdiffusion-steady");
  EXPECT_FALSE(c.tests[1].duration);
  EXPECT_FALSE(c.tests[1].prompt_interval);
  EXPECT_EQ(c.tests[1].exclude, (std::vector<std::string>{"10.0.0.5:8935"}));
  EXPECT_EQ(c.decoder, DecoderChoice::automatic);
  EXPECT_EQ(c.results.sink, Kind::jsonl);
  EXPECT_EQ(c.results.jsonl_path, fs::path("/var/lib/naap-loadtest/events.jsonl"));
  EXPECT_EQ(c.results.kafka.brokers, "kafka-1:9092,kafka-2:9092");
  EXPECT_EQ(c.results.kafka.topic, "naap_synthetic_events");
  EXPECT_EQ(c.results.kafka.security_protocol, "sasl_ssl");
  EXPECT_EQ(c.results.kafka.sasl_mechanism, "SCRAM-SHA-512");
  EXPECT_EQ(c.results.kafka.sasl_username, "naap");
  EXPECT_EQ(c.results.kafka.sasl_password, "");
  EXPECT_EQ(c.results.kafka.ca_file, "/etc/ssl/kafka-ca.pem");
  EXPECT_EQ(c.results.spool_path, fs::path("/var/lib/naap-loadtest/spool.jsonl"));
  EXPECT_EQ(c.results.spool_max_bytes, 1024ull * 1024 * 1024);
  EXPECT_EQ(c.results.flush_deadline, 10s);
  EXPECT_EQ(c.ops.listen, "127.0.0.1:9464");
  EXPECT_TRUE(c.overrides.empty());
}

TEST(ConfigDefaults, minimal_file_gets_the_documented_defaults) {
  auto parsed = parse(k_minimal);
  ASSERT_TRUE(parsed.result) << parsed.result.error().message;
  const Config& c = *parsed.result;
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof(host) - 1), 0);
  EXPECT_EQ(c.gateway_id, host);
  EXPECT_EQ(c.region, "FRA");
  EXPECT_EQ(c.state_dir, naap::reports::default_state_dir());
  EXPECT_EQ(c.log_level, naap::log::Level::info);
  EXPECT_EQ(c.round.period, 10min);
  EXPECT_EQ(c.concurrency, 4);
  EXPECT_EQ(c.watchdog_slack, 60s);
  EXPECT_EQ(c.budgets.max_concurrent, 1);
  EXPECT_EQ(c.budgets.min_gap, 0s);
  EXPECT_EQ(c.budgets.daily_time, 4h);
  EXPECT_EQ(c.discovery.refresh, 5min);
  EXPECT_EQ(c.discovery.probe_timeout, 5s);
  EXPECT_FALSE(c.discovery.webhook);
  EXPECT_FALSE(c.discovery.signer);
  EXPECT_FALSE(c.signer_url);  // off-chain
  ASSERT_EQ(c.tests.size(), 1u);
  EXPECT_EQ(c.tests[0].dataset, "naap-default");
  EXPECT_EQ(c.tests[0].scenario, "");  // the dataset's first scenario for the pipeline
  EXPECT_FALSE(c.tests[0].duration);
  EXPECT_EQ(c.decoder, DecoderChoice::automatic);
  EXPECT_EQ(c.results.sink, Kind::jsonl);
  EXPECT_EQ(c.results.jsonl_path, c.state_dir / "events.jsonl");
  EXPECT_EQ(c.results.spool_path, fs::path());  // reports::open_results: <jsonl>.spool
  EXPECT_EQ(c.results.kafka.topic, "naap_synthetic_events");
  EXPECT_EQ(c.results.spool_max_bytes, 1ull << 30);
  EXPECT_EQ(c.results.flush_deadline, 10s);
  EXPECT_EQ(c.ops.listen, "127.0.0.1:9464");
}

TEST(ConfigDefaults, relative_sink_paths_live_in_the_state_dir) {
  auto parsed = parse(k_minimal + R"(state_dir: /srv/naap
sinks:
  events: jsonl:out/events.jsonl
  spool: spool.jsonl
)");
  ASSERT_TRUE(parsed.result) << parsed.result.error().message;
  EXPECT_EQ(parsed.result->results.jsonl_path, fs::path("/srv/naap/out/events.jsonl"));
  EXPECT_EQ(parsed.result->results.spool_path, fs::path("/srv/naap/spool.jsonl"));

  // A Kafka sink spools in the daemon's state folder, named after the topic.
  auto kafka = parse(k_minimal + R"(state_dir: /srv/naap
sinks:
  events: kafka
  kafka:
    brokers: k:9092
)");
  ASSERT_TRUE(kafka.result) << kafka.result.error().message;
  EXPECT_EQ(kafka.result->results.sink, Kind::kafka);
  EXPECT_EQ(kafka.result->results.spool_path,
            fs::path("/srv/naap/spool-naap_synthetic_events.jsonl"));
}

TEST(ConfigErrors, unknown_key_suggests_the_nearest_known_one) {
  auto parsed = parse(k_minimal + R"(budgets:
  max_concurent: 2
colour: blue
)");
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 7, 3, "budgets.max_concurent",
                          "unknown key (did you mean max_concurrent?)"));
  // Nothing close: the allowed keys are listed instead.
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 8, 1, "colour", "unknown key (allowed here: "));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 8, 1, "colour", "gateway_id, region"));
}

TEST(ConfigErrors, unknown_keys_are_found_at_every_level) {
  auto parsed = parse(R"(region: FRA
round:
  peroid: 5m
discovery:
  static: ["a:1"]
  webhook:
    url: https://d.example/o
    timout: 2s
tests:
  - pipline: noop
sinks:
  kafka:
    brokers: k:9092
    topik: t
ops:
  lisen: 127.0.0.1:1
)");
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 3, 3, "round.peroid", "did you mean period?"));
  EXPECT_TRUE(
      has_problem(parsed, "naap.yaml", 8, 5, "discovery.webhook.timout", "did you mean timeout?"));
  EXPECT_TRUE(
      has_problem(parsed, "naap.yaml", 10, 5, "tests[0].pipline", "did you mean pipeline?"));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 14, 5, "sinks.kafka.topik", "did you mean topic?"));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 16, 3, "ops.lisen", "did you mean listen?"));
  // The misspelt pipeline also leaves the test without its required one.
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 10, 5, "tests[0].pipeline", "required"));
}

TEST(ConfigErrors, wrong_types_name_what_was_expected_and_found) {
  auto parsed = parse(R"(region: [FRA, AMS]
concurrency: lots
discovery:
  static:
    orch: a:1
tests: noop
round: 10m
)");
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 1, 9, "region", "expected a string, got a list"));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 2, 14, "concurrency",
                          "expected an integer 1..256, got \"lots\""));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 5, 5, "discovery.static",
                          "expected a list of HOST:PORT, got a mapping"));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 6, 8, "tests", "expected a list of tests, got"));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 7, 8, "round", "expected a mapping, got \"10m\""));
}

TEST(ConfigErrors, impossible_values_name_the_allowed_range) {
  auto parsed = parse(k_minimal + R"(round:
  period: 10s
concurrency: 300
watchdog_slack: 1s
budgets:
  max_concurrent: 0
  min_gap: -5s
  daily_time: 25h
sinks:
  spool_max_mb: 0
)");
  EXPECT_TRUE(
      has_problem(parsed, "naap.yaml", 7, 11, "round.period", "must be at least 30s, got 10s"));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 8, 14, "concurrency",
                          "expected an integer 1..256, got \"300\""));
  EXPECT_TRUE(
      has_problem(parsed, "naap.yaml", 9, 17, "watchdog_slack", "must be at least 5s, got 1s"));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 11, 19, "budgets.max_concurrent",
                          "expected an integer 1..256, got \"0\""));
  EXPECT_TRUE(
      has_problem(parsed, "naap.yaml", 12, 12, "budgets.min_gap", "must not be negative, got -5s"));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 13, 15, "budgets.daily_time",
                          "must be at most 24h, got 25h"));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 15, 17, "sinks.spool_max_mb", "a number > 0"));
}

TEST(ConfigErrors, timeouts_outside_their_window_are_refused) {
  auto parsed = parse(R"(region: FRA
discovery:
  probe_timeout: 50ms
  refresh: 5s
  webhook:
    url: https://d.example/o
    timeout: 2m
tests:
  - pipeline: noop
    duration: 0s
)");
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 3, 18, "discovery.probe_timeout",
                          "must be at least 100ms, got 50ms"));
  EXPECT_TRUE(
      has_problem(parsed, "naap.yaml", 4, 12, "discovery.refresh", "must be at least 10s, got 5s"));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 7, 14, "discovery.webhook.timeout",
                          "must be at most 1m, got 2m"));
  EXPECT_TRUE(
      has_problem(parsed, "naap.yaml", 10, 15, "tests[0].duration", "must be at least 1s, got 0s"));
}

TEST(ConfigErrors, bad_choices_list_the_allowed_values) {
  auto parsed = parse(k_minimal + R"(log_level: verbose
decoder: gpu
sinks:
  events: fille
  kafka:
    brokers: k:9092
    security: sasl
    sasl_mechanism: SCRAM-SHA-1
)");
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 6, 12, "log_level",
                          "expected one of debug, info, warn, error; got \"verbose\""));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 7, 10, "decoder",
                          "expected one of auto, software, nvdec, none; got \"gpu\""));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 9, 11, "sinks.events",
                          "expected jsonl[:PATH], stdout, kafka or none; got \"fille\""));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 12, 15, "sinks.kafka.security",
                          "plaintext, ssl, sasl_plaintext, sasl_ssl"));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 13, 21, "sinks.kafka.sasl_mechanism",
                          "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; got \"SCRAM-SHA-1\""));
}

TEST(ConfigErrors, bad_addresses_and_urls_are_pointed_at) {
  auto parsed = parse(R"(region: FRA
signer_url: signer.example:8081
discovery:
  static:
    - orch-a.example:8935
    - foo
    - ::1:8935
    - "[::1]:8935"
    - orch-b:70000
    - orch-a.example:8935
  signer:
    url: ftp://signer.example
tests:
  - pipeline: noop
    include: [":8935"]
ops:
  listen: localhost
)");
  EXPECT_TRUE(
      has_problem(parsed, "naap.yaml", 6, 7, "discovery.static[1]", "\"foo\" is not HOST:PORT"));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 7, 7, "discovery.static[2]", "in brackets"));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 9, 7, "discovery.static[4]", "1..65535"));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 10, 7, "discovery.static[5]", "listed twice"));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 2, 13, "signer_url", "is not an http(s) URL"));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 12, 10, "discovery.signer.url",
                          "\"ftp://signer.example\" is not an http(s) URL"));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 15, 15, "tests[0].include[0]", "empty host"));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 17, 11, "ops.listen", "is not HOST:PORT"));
  // The bracketed IPv6 address is fine.
  for (const auto& p : parsed.problems) EXPECT_NE(p.key, "discovery.static[3]") << p.to_string();
}

TEST(ConfigErrors, yaml_syntax_error_reports_the_parsers_line_and_column) {
  auto parsed = parse(R"(region: FRA
discovery:
  static: ["a:1", "b:2"
tests: []
)");
  ASSERT_FALSE(parsed.result);
  ASSERT_EQ(parsed.problems.size(), 1u) << all_problems(parsed);
  const ConfigProblem& p = parsed.problems[0];
  EXPECT_EQ(p.file, "naap.yaml");
  EXPECT_GE(p.line, 3);
  EXPECT_GT(p.column, 0);
  EXPECT_EQ(p.key, "");
  EXPECT_NE(p.message.find("YAML syntax error"), std::string::npos) << p.message;
  EXPECT_TRUE(parsed.result.error().message.starts_with("naap.yaml:" + std::to_string(p.line) +
                                                        ":" + std::to_string(p.column) + ": "));
}

TEST(ConfigErrors, empty_file_and_non_mapping_documents_are_refused) {
  for (const std::string text : {"", "\n\n", "# only a comment\n"}) {
    auto parsed = parse(text);
    EXPECT_TRUE(has_problem(parsed, "naap.yaml", 0, 0, "", "the file is empty")) << text;
  }
  auto list = parse("- region: FRA\n");
  EXPECT_TRUE(has_problem(list, "naap.yaml", 1, 1, "", "expected a mapping of settings"));
  auto two = parse(k_minimal + "---\nregion: AMS\n");
  EXPECT_TRUE(has_problem(two, "naap.yaml", 7, 1, "", "a second YAML document"));
}

TEST(ConfigErrors, unreadable_paths_are_named) {
  naap::test::TestDir dir("naap-config");
  const fs::path missing = dir.path() / "nope.yaml";
  std::vector<ConfigProblem> problems;
  auto result = naap::scheduler::load_config(missing, Env{}, &problems);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().category, naap::ErrorCategory::config);
  EXPECT_NE(result.error().message.find(missing.string()), std::string::npos)
      << result.error().message;
  EXPECT_NE(result.error().message.find("No such file"), std::string::npos);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].file, missing.string());

  auto folder = naap::scheduler::load_config(dir.path(), Env{}, &problems);
  ASSERT_FALSE(folder);
  EXPECT_NE(folder.error().message.find(dir.path().string()), std::string::npos);
  EXPECT_NE(folder.error().message.find("is a directory"), std::string::npos)
      << folder.error().message;

  // Problems in a file on disk carry its path as given.
  const fs::path bad = dir.path() / "naap.yaml";
  write_file(bad, k_minimal + "concurrency: 0\n");
  auto loaded = naap::scheduler::load_config(bad, Env{}, &problems);
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().message.find(bad.string() + ":6:14: concurrency: "), std::string::npos)
      << loaded.error().message;
}

TEST(ConfigErrors, duplicate_keys_are_reported_at_the_repeat) {
  auto parsed = parse(R"(region: FRA
discovery:
  static: ["a:1"]
  refresh: 1m
  refresh: 2m
tests:
  - pipeline: noop
region: AMS
)");
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 5, 3, "discovery.refresh",
                          "duplicate key (first at line 4)"));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 8, 1, "region", "duplicate key (first at line 1)"));
}

TEST(ConfigErrors, password_in_the_file_is_refused_with_the_rule) {
  auto parsed = parse(k_minimal + R"(sinks:
  kafka:
    brokers: k:9092
    password: hunter2
)");
  EXPECT_TRUE(
      has_problem(parsed, "naap.yaml", 9, 5, "sinks.kafka.password", "NAAP_KAFKA_PASSWORD"));
  // The secret itself is not repeated in the error.
  EXPECT_EQ(parsed.result.error().message.find("hunter2"), std::string::npos);
}

TEST(ConfigErrors, missing_required_settings_are_reported) {
  auto parsed = parse(R"(discovery:
  refresh: 1m
  webhook:
    timeout: 2s
sinks:
  events: kafka
)");
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 0, 0, "region", "required"));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 0, 0, "tests", "required"));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 3, 3, "discovery.webhook.url", "required"));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 5, 1, "sinks.kafka", "required with events: kafka"));

  auto no_source = parse(R"(region: FRA
discovery:
  static: []
tests: []
)");
  EXPECT_TRUE(has_problem(no_source, "naap.yaml", 2, 1, "discovery", "static is empty"));
  EXPECT_TRUE(has_problem(no_source, "naap.yaml", 4, 8, "tests", "at least one test"));

  auto sasl = parse(k_minimal + R"(sinks:
  events: kafka
  kafka:
    brokers: k:9092
    security: sasl_ssl
)");
  EXPECT_TRUE(has_problem(sasl, "naap.yaml", 8, 3, "sinks.kafka.sasl_mechanism", "required"));
  EXPECT_TRUE(has_problem(sasl, "naap.yaml", 8, 3, "sinks.kafka.username", "required"));
  EXPECT_TRUE(
      has_problem(sasl, "naap.yaml", 10, 15, "sinks.kafka.security", "NAAP_KAFKA_PASSWORD"));
}

TEST(ConfigErrors, every_problem_is_reported_at_once_in_file_order) {
  auto parsed = parse(R"(concurrency: lots
round:
  period: 10
budgets:
  max_concurent: 2
discovery:
  static: [foo]
tests:
  - pipeline: noop
    duration: 5x
)");
  ASSERT_FALSE(parsed.result);
  ASSERT_EQ(parsed.problems.size(), 6u) << all_problems(parsed);
  // Positioned problems in file order, then those without a position.
  EXPECT_EQ(parsed.problems[0].key, "concurrency");
  EXPECT_EQ(parsed.problems[1].key, "round.period");
  EXPECT_EQ(parsed.problems[2].key, "budgets.max_concurent");
  EXPECT_EQ(parsed.problems[3].key, "discovery.static[0]");
  EXPECT_EQ(parsed.problems[4].key, "tests[0].duration");
  EXPECT_EQ(parsed.problems[5].key, "region");
  // One line per problem in the error message, in the same order.
  std::string expected;
  for (const auto& p : parsed.problems) expected += (expected.empty() ? "" : "\n") + p.to_string();
  EXPECT_EQ(parsed.result.error().message, expected);
  EXPECT_EQ(parsed.result.error().get("problems"), "6");
  EXPECT_EQ(parsed.result.error().get("file"), "naap.yaml");
}

TEST(ConfigErrors, malformed_list_entries_are_pointed_at) {
  auto parsed = parse(R"(region: FRA
discovery:
  static: ["a:1", [b, c]]
tests:
  - noop
  - pipeline: ""
)");
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 3, 19, "discovery.static[1]",
                          "expected HOST:PORT, got a list"));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 5, 5, "tests[0]",
                          "expected a mapping (pipeline, dataset, scenario, ...), got \"noop\""));
  EXPECT_TRUE(has_problem(parsed, "naap.yaml", 6, 15, "tests[1].pipeline", "must not be empty"));
}

TEST(ConfigEnv, scalar_override_replaces_the_file_value_and_is_listed_by_name) {
  auto parsed = parse(k_minimal, Env{{"NAAP_CONFIG__REGION", "AMS"},
                                     {"NAAP_CONFIG__CONCURRENCY", "16"},
                                     {"NAAP_OTHER", "x"},
                                     {"HOME", "/root"}});
  ASSERT_TRUE(parsed.result) << parsed.result.error().message;
  EXPECT_EQ(parsed.result->region, "AMS");
  EXPECT_EQ(parsed.result->concurrency, 16);
  EXPECT_EQ(parsed.result->overrides,
            (std::vector<std::string>{"NAAP_CONFIG__CONCURRENCY", "NAAP_CONFIG__REGION"}));
  EXPECT_NE(parsed.result->describe().find("NAAP_CONFIG__REGION"), std::string::npos);
}

TEST(ConfigEnv, nested_override_reaches_into_and_creates_sections) {
  auto parsed = parse(k_minimal, Env{{"NAAP_CONFIG__ROUND__PERIOD", "2m"},
                                     {"NAAP_CONFIG__SINKS__EVENTS", "kafka"},
                                     {"NAAP_CONFIG__SINKS__KAFKA__BROKERS", "k:9092"},
                                     {"NAAP_CONFIG__OPS__LISTEN", ""}});
  ASSERT_TRUE(parsed.result) << parsed.result.error().message;
  EXPECT_EQ(parsed.result->round.period, 2min);
  EXPECT_EQ(parsed.result->results.sink, Kind::kafka);
  EXPECT_EQ(parsed.result->results.kafka.brokers, "k:9092");
  EXPECT_EQ(parsed.result->ops.listen, "");  // an empty value switches the endpoint off

  // YAML null removes a setting of the file: the default (off-chain) applies.
  auto off_chain = parse(k_minimal + "signer_url: https://signer.example:8081\n",
                         Env{{"NAAP_CONFIG__SIGNER_URL", "~"}});
  ASSERT_TRUE(off_chain.result) << off_chain.result.error().message;
  EXPECT_FALSE(off_chain.result->signer_url);
}

TEST(ConfigEnv, list_override_is_parsed_as_yaml_and_indexes_reach_list_entries) {
  auto parsed = parse(k_minimal, Env{{"NAAP_CONFIG__DISCOVERY__STATIC", "[a:1, \"[::1]:2\"]"},
                                     {"NAAP_CONFIG__TESTS__0__DURATION", "45s"}});
  ASSERT_TRUE(parsed.result) << parsed.result.error().message;
  EXPECT_EQ(parsed.result->discovery.static_addresses,
            (std::vector<std::string>{"a:1", "[::1]:2"}));
  EXPECT_EQ(parsed.result->tests[0].duration, milliseconds(45s));

  auto out_of_range = parse(k_minimal, Env{{"NAAP_CONFIG__TESTS__3__DURATION", "45s"}});
  EXPECT_TRUE(has_problem(out_of_range, "NAAP_CONFIG__TESTS__3__DURATION", 0, 0,
                          "tests[3].duration", "tests has 1 entries: there is no [3]"));
}

TEST(ConfigEnv, problems_in_overrides_name_the_variable) {
  auto parsed = parse(k_minimal, Env{{"NAAP_CONFIG__ROUND__PERIOD", "10"},
                                     {"NAAP_CONFIG__REGOIN", "AMS"},
                                     {"NAAP_CONFIG__DISCOVERY__STATIC", "[a:1, foo]"},
                                     {"NAAP_CONFIG__CONCURRENCY", "[1, 2"},
                                     {"NAAP_CONFIG__", "x"},
                                     {"NAAP_CONFIG__REGION__CODE", "x"}});
  EXPECT_TRUE(has_problem(parsed, "NAAP_CONFIG__ROUND__PERIOD", 0, 0, "round.period",
                          "expected a duration with an explicit unit"));
  EXPECT_TRUE(has_problem(parsed, "NAAP_CONFIG__REGOIN", 0, 0, "regoin",
                          "unknown key (did you mean region?)"));
  EXPECT_TRUE(has_problem(parsed, "NAAP_CONFIG__DISCOVERY__STATIC", 0, 0, "discovery.static[1]",
                          "\"foo\" is not HOST:PORT"));
  EXPECT_TRUE(has_problem(parsed, "NAAP_CONFIG__CONCURRENCY", 0, 0, "concurrency",
                          "not a valid YAML value"));
  EXPECT_TRUE(has_problem(parsed, "NAAP_CONFIG__", 0, 0, "", "not a configuration key"));
  EXPECT_TRUE(
      has_problem(parsed, "NAAP_CONFIG__REGION__CODE", 0, 0, "region.code", "not a mapping"));
  // The message line starts with the variable, not with the file.
  EXPECT_NE(parsed.result.error().message.find(
                "NAAP_CONFIG__ROUND__PERIOD: round.period: expected a duration"),
            std::string::npos);
}

TEST(ConfigEnv, kafka_password_comes_only_from_the_environment) {
  const std::string kafka = k_minimal + R"(sinks:
  events: kafka
  kafka:
    brokers: k:9092
    security: sasl_ssl
    sasl_mechanism: SCRAM-SHA-512
    username: naap
)";
  auto parsed = parse(kafka, Env{{"NAAP_KAFKA_PASSWORD", "s3cret-value"}});
  ASSERT_TRUE(parsed.result) << parsed.result.error().message;
  EXPECT_EQ(parsed.result->results.kafka.sasl_password, "s3cret-value");
  EXPECT_EQ(parsed.result->overrides, (std::vector<std::string>{"NAAP_KAFKA_PASSWORD"}));
  const std::string summary = parsed.result->describe();
  EXPECT_EQ(summary.find("s3cret-value"), std::string::npos) << summary;
  EXPECT_NE(summary.find("password set"), std::string::npos) << summary;

  // Through a NAAP_CONFIG__ override it would be a key of the tree: refused the same way.
  auto via_override = parse(kafka, Env{{"NAAP_CONFIG__SINKS__KAFKA__PASSWORD", "s3cret-value"},
                                       {"NAAP_KAFKA_PASSWORD", "s3cret-value"}});
  EXPECT_TRUE(has_problem(via_override, "NAAP_CONFIG__SINKS__KAFKA__PASSWORD", 0, 0,
                          "sinks.kafka.password", "NAAP_KAFKA_PASSWORD"));
}

TEST(ConfigFingerprint, is_stable_across_key_order_comments_and_spelling_of_values) {
  auto a = parse(R"(region: FRA
round: {period: 10m}
discovery:
  static: ["a:1"]
tests:
  - pipeline: noop
    duration: 30s
)");
  auto b = parse(R"(# the same settings, written differently
tests:
  - duration: 0.5m
    pipeline: noop
discovery: {static: ["a:1"]}
round:
  period: 600s
region: "FRA"
concurrency: 4   # the default, spelt out
)");
  ASSERT_TRUE(a.result) << a.result.error().message;
  ASSERT_TRUE(b.result) << b.result.error().message;
  EXPECT_EQ(a.result->fingerprint(), b.result->fingerprint());
  EXPECT_EQ(a.result->fingerprint().size(), 64u);
  EXPECT_EQ(a.result->fingerprint(), naap::Sha256::hex(a.result->canonical()));
}

TEST(ConfigFingerprint, changes_when_any_value_changes) {
  auto base = parse(k_minimal);
  ASSERT_TRUE(base.result);
  const std::string fingerprint = base.result->fingerprint();
  for (const std::string extra :
       {"concurrency: 5\n", "round: {period: 11m}\n", "decoder: software\n",
        "budgets: {daily_time: 0s}\n", "sinks: {events: stdout}\n", "ops: {listen: \"\"}\n"}) {
    auto changed = parse(k_minimal + extra);
    ASSERT_TRUE(changed.result) << changed.result.error().message;
    EXPECT_NE(changed.result->fingerprint(), fingerprint) << extra;
  }
  auto region = parse(k_minimal, Env{{"NAAP_CONFIG__REGION", "AMS"}});
  ASSERT_TRUE(region.result);
  EXPECT_NE(region.result->fingerprint(), fingerprint);
}

TEST(ConfigFingerprint, leaves_out_the_kafka_password) {
  const std::string kafka = k_minimal + R"(sinks:
  events: kafka
  kafka: {brokers: "k:9092", security: sasl_plaintext, sasl_mechanism: PLAIN, username: u}
)";
  auto one = parse(kafka, Env{{"NAAP_KAFKA_PASSWORD", "first-secret"}});
  auto two = parse(kafka, Env{{"NAAP_KAFKA_PASSWORD", "second-secret"}});
  ASSERT_TRUE(one.result) << one.result.error().message;
  ASSERT_TRUE(two.result) << two.result.error().message;
  EXPECT_EQ(one.result->fingerprint(), two.result->fingerprint());
  EXPECT_EQ(one.result->canonical().find("first-secret"), std::string::npos);
  EXPECT_NE(one.result->canonical().find("\"username\":\"u\""), std::string::npos);
}

TEST(ConfigDuration, parses_every_unit_and_exact_fractions) {
  using naap::scheduler::parse_duration;
  EXPECT_EQ(parse_duration("500ms"), milliseconds(500));
  EXPECT_EQ(parse_duration("90s"), milliseconds(90s));
  EXPECT_EQ(parse_duration("1.5m"), milliseconds(90s));
  EXPECT_EQ(parse_duration("2h"), milliseconds(2h));
  EXPECT_EQ(parse_duration("0s"), milliseconds(0));
  EXPECT_EQ(parse_duration("0.1s"), milliseconds(100));  // exact, not 100.00000000000001
  EXPECT_EQ(parse_duration("0.001s"), milliseconds(1));
  EXPECT_EQ(parse_duration("-2s"), milliseconds(-2000));
  EXPECT_EQ(parse_duration("24h"), milliseconds(24h));
}

TEST(ConfigDuration, rejects_bare_numbers_unknown_units_and_sub_millisecond_values) {
  using naap::scheduler::parse_duration;
  for (const char* text : {"90", "0", "1.5"}) {
    auto d = parse_duration(text);
    ASSERT_FALSE(d) << text;
    EXPECT_NE(d.error().message.find("explicit unit"), std::string::npos) << d.error().message;
    EXPECT_NE(d.error().message.find("ms, s, m or h"), std::string::npos) << d.error().message;
  }
  for (const char* text : {"5 s", "5sec", "5S", ".5s", "5.s", "s", "", "1h30m", "+5s", "1e3ms"}) {
    auto d = parse_duration(text);
    ASSERT_FALSE(d) << text;
    EXPECT_NE(d.error().message.find("ms, s, m or h"), std::string::npos) << d.error().message;
  }
  auto tiny = parse_duration("0.0001s");
  ASSERT_FALSE(tiny);
  EXPECT_NE(tiny.error().message.find("whole number of milliseconds"), std::string::npos);
  EXPECT_FALSE(parse_duration("99999999999h"));  // overflow guard
}

TEST(ConfigDuration, formats_in_the_largest_whole_unit) {
  using naap::scheduler::format_duration;
  EXPECT_EQ(format_duration(milliseconds(0)), "0s");
  EXPECT_EQ(format_duration(10min), "10m");
  EXPECT_EQ(format_duration(90s), "90s");
  EXPECT_EQ(format_duration(milliseconds(1500)), "1500ms");
  EXPECT_EQ(format_duration(4h), "4h");
  EXPECT_EQ(format_duration(milliseconds(-5000)), "-5s");
}

TEST(ConfigAddress, host_port_rules) {
  using naap::scheduler::check_host_port;
  EXPECT_EQ(check_host_port("orch-a.example:8935"), "");
  EXPECT_EQ(check_host_port("10.0.0.5:1"), "");
  EXPECT_EQ(check_host_port("[::1]:8935"), "");
  EXPECT_EQ(check_host_port("[2001:db8::5]:65535"), "");
  EXPECT_NE(check_host_port("orch:0"), "");
  EXPECT_EQ(check_host_port("127.0.0.1:0", /*allow_port_zero=*/true), "");
  EXPECT_NE(check_host_port("orch:65536"), "");
  EXPECT_NE(check_host_port("orch:"), "");
  EXPECT_NE(check_host_port("orch"), "");
  EXPECT_NE(check_host_port(":8935"), "");
  EXPECT_NE(check_host_port("::1:8935"), "");
  EXPECT_NE(check_host_port("[::1]8935"), "");
  EXPECT_NE(check_host_port("[::1:8935"), "");
  EXPECT_NE(check_host_port("http://orch:8935"), "");
  EXPECT_NE(check_host_port("orch a:8935"), "");
}

TEST(ConfigDescribe, summary_shows_the_effective_settings) {
  auto config = naap::scheduler::load_config(k_example, Env{});
  ASSERT_TRUE(config) << config.error().message;
  const std::string text = config->describe();
  for (const std::string& part :
       {std::string("naap-lt-fra-1"), std::string("FRA"), std::string("10m"),
        std::string("orch-a.example:8935"), std::string("https://discovery.example/orchestrators"),
        std::string("remote signer https://signer.example:8081"), std::string("noop-smoke"),
        std::string("jsonl /var/lib/naap-loadtest/events.jsonl"), std::string("127.0.0.1:9464"),
        "sha256:" + config->fingerprint()}) {
    EXPECT_NE(text.find(part), std::string::npos) << part << " missing from:\n" << text;
  }
}

}  // namespace
