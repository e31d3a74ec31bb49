// Results-pipeline flags (see results_options.hpp).
#include "results_options.hpp"

#include <cstdlib>

namespace naap::cli {

void add_results_options(cxxopts::Options& options) {
  options.add_options("results")(
      "events", "where events go: jsonl[:PATH], stdout, kafka or none",
      cxxopts::value<std::string>()->default_value("jsonl:naap-events.jsonl"))(
      "kafka-brokers", "Kafka bootstrap servers HOST:PORT[,...] (implies --events kafka)",
      cxxopts::value<std::string>()->default_value(""))(
      "kafka-topic", "Kafka topic for every event family",
      cxxopts::value<std::string>()->default_value("naap_synthetic_events"))(
      "kafka-security", "plaintext | ssl | sasl_plaintext | sasl_ssl",
      cxxopts::value<std::string>()->default_value("plaintext"))(
      "kafka-sasl-mechanism", "PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512",
      cxxopts::value<std::string>()->default_value(""))(
      "kafka-username", "SASL user (password from NAAP_KAFKA_PASSWORD)",
      cxxopts::value<std::string>()->default_value(""))(
      "kafka-ca", "PEM CA bundle for TLS (default: the system's)",
      cxxopts::value<std::string>()->default_value(""))(
      "spool", "durable spool journal (default: next to the JSONL file, or the state folder)",
      cxxopts::value<std::string>()->default_value(""))(
      "spool-max-mb", "spool size bound in MiB (refused loudly beyond, never dropped)",
      cxxopts::value<double>()->default_value("1024"))(
      "flush-timeout", "seconds to wait for delivery at exit (the rest stays spooled)",
      cxxopts::value<double>()->default_value("10"));
}

Result<reports::ResultsOptions> results_options_from(const cxxopts::ParseResult& args) {
  reports::ResultsOptions o;
  std::string jsonl_path;
  const bool events_given = args.count("events") > 0;
  const std::string brokers = args["kafka-brokers"].as<std::string>();
  auto kind = reports::parse_sink_kind(
      events_given || brokers.empty() ? args["events"].as<std::string>() : "kafka", &jsonl_path);
  if (!kind) return fail(kind.error().with("flag", "--events"));
  o.sink = *kind;
  if (!jsonl_path.empty()) o.jsonl_path = jsonl_path;
  if (o.sink == reports::ResultsOptions::SinkKind::kafka) {
    if (brokers.empty())
      return fail(Error(ErrorCategory::config, "--events kafka needs --kafka-brokers"));
    o.kafka.brokers = brokers;
    o.kafka.topic = args["kafka-topic"].as<std::string>();
    if (o.kafka.topic.empty())
      return fail(Error(ErrorCategory::config, "--kafka-topic must not be empty"));
    o.kafka.security_protocol = args["kafka-security"].as<std::string>();
    o.kafka.sasl_mechanism = args["kafka-sasl-mechanism"].as<std::string>();
    o.kafka.sasl_username = args["kafka-username"].as<std::string>();
    o.kafka.ca_file = args["kafka-ca"].as<std::string>();
    if (const char* password = std::getenv("NAAP_KAFKA_PASSWORD")) o.kafka.sasl_password = password;
    const bool sasl = o.kafka.security_protocol.starts_with("sasl");
    if (sasl && (o.kafka.sasl_username.empty() || o.kafka.sasl_password.empty()))
      return fail(Error(ErrorCategory::config,
                        "--kafka-security " + o.kafka.security_protocol +
                            " needs --kafka-username and NAAP_KAFKA_PASSWORD in the environment"));
  }
  o.spool_path = args["spool"].as<std::string>();
  const double max_mb = args["spool-max-mb"].as<double>();
  if (!(max_mb > 0)) return fail(Error(ErrorCategory::config, "--spool-max-mb must be > 0"));
  o.spool_max_bytes = static_cast<std::uint64_t>(max_mb * 1024 * 1024);
  const double flush = args["flush-timeout"].as<double>();
  if (!(flush >= 0)) return fail(Error(ErrorCategory::config, "--flush-timeout must be >= 0"));
  o.flush_deadline = std::chrono::milliseconds(static_cast<std::int64_t>(flush * 1000));
  return o;
}

}  // namespace naap::cli
