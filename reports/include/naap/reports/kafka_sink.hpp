// Kafka sink on librdkafka: idempotent producer (acks=all, safe retries), one delivery report per
// record, keyed messages so that a session's events stay in order on one partition.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "naap/reports/sink.hpp"

namespace naap::reports {

struct KafkaOptions {
  std::string brokers;                          // bootstrap.servers, "host:port[,host:port]"
  std::string topic;                            // one topic for every event family
  std::string security_protocol = "plaintext";  // plaintext | ssl | sasl_plaintext | sasl_ssl
  std::string sasl_mechanism;                   // PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
  std::string sasl_username;                    // with a SASL protocol
  std::string sasl_password;                    // with a SASL protocol (from the environment)
  std::string ca_file;                          // PEM bundle for ssl / sasl_ssl; empty = system
  std::string client_id = "naap-loadtest";      // shows up in broker logs
  std::chrono::milliseconds delivery_timeout{300'000};     // librdkafka retries a record this long
  std::vector<std::pair<std::string, std::string>> extra;  // further librdkafka properties
};

class KafkaSink final : public Sink {
 public:
  // Fails with a config error naming the property for an invalid setting.
  static Result<std::unique_ptr<KafkaSink>> create(KafkaOptions options);
  // Records still queued are abandoned without reports: they stay in the spool for next time.
  ~KafkaSink() override;
  std::string_view name() const override { return "kafka"; }
  void deliver(const SpoolRecord& record, DeliveryCallback done) override;
  void poll() override;
  Result<void> flush(std::chrono::milliseconds deadline) override;
  // Records handed to librdkafka without a report yet.
  int outstanding() const;
  // The latest client-level failure librdkafka reported (authentication, TLS handshake, brokers
  // unreachable), served by poll()/flush(); cleared by the next positive delivery report. Such a
  // failure fails no record by itself: the records wait until delivery_timeout, and their failure
  // reports then carry it as context "cause". Delivery errors carry librdkafka's code ("code").
  const std::optional<Error>& client_error() const;

  struct Impl;

 private:
  explicit KafkaSink(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace naap::reports
