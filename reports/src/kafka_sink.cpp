// librdkafka producer with RAII handles; delivery reports are served by poll()/flush() on the
// owner's thread, where each record's callback runs.
#include "naap/reports/kafka_sink.hpp"

#include <librdkafka/rdkafka.h>

#include "naap/core/log.hpp"

namespace naap::reports {

struct KafkaSink::Impl {
  KafkaOptions options;
  rd_kafka_t* producer = nullptr;     // owned
  rd_kafka_topic_t* topic = nullptr;  // owned
  bool shutting_down = false;         // reports during destruction only free their callbacks
  // The latest client-level failure (authentication, TLS, unreachable brokers) since the last
  // positive report: delivery failures carry it as their cause.
  std::optional<Error> client_error;

  ~Impl() {
    if (producer != nullptr) {
      shutting_down = true;
      rd_kafka_purge(producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      rd_kafka_flush(producer, 1000);  // serves the purge reports, freeing their callbacks
    }
    if (topic != nullptr) rd_kafka_topic_destroy(topic);
    if (producer != nullptr) rd_kafka_destroy(producer);
  }

  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
    auto* self = static_cast<Impl*>(opaque);
    std::unique_ptr<DeliveryCallback> done(static_cast<DeliveryCallback*>(msg->_private));
    if (!done || self->shutting_down) return;
    if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      self->client_error.reset();
      (*done)(std::nullopt);
      return;
    }
    Error error(ErrorCategory::sink,
                std::string("Kafka delivery failed: ") + rd_kafka_err2str(msg->err), true);
    error.with("code", rd_kafka_err2name(msg->err))
        .with("topic", self->options.topic)
        .with("brokers", self->options.brokers);
    // A timeout says little by itself: name what kept the client from the broker.
    if (self->client_error) {
      error.with("cause", self->client_error->message);
      if (auto hint = self->client_error->get("hint"); !hint.empty()) {
        error.with("hint", std::string(hint));
      }
    }
    (*done)(error);
  }

  static void on_error(rd_kafka_t*, int err, const char* reason, void* opaque) {
    auto* self = static_cast<Impl*>(opaque);
    const auto code = static_cast<rd_kafka_resp_err_t>(err);
    // Broker down, bad credentials, TLS trust: logged and kept for client_error(); records keep
    // retrying until delivery_timeout and then report failure (they stay spooled). An unknown
    // topic does not come here: its records fail after topic.metadata.propagation.max.ms.
    log::warn("kafka_error", {{"brokers", self->options.brokers},
                              {"code", rd_kafka_err2name(code)},
                              {"reason", reason}});
    // "1/1 brokers are down" follows every failed handshake: it does not replace the failure
    // that explains it.
    if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && self->client_error) return;
    self->client_error =
        Error(code == RD_KAFKA_RESP_ERR__SSL ? ErrorCategory::tls : ErrorCategory::sink,
              std::string("Kafka client error: ") + reason, true)
            .with("code", rd_kafka_err2name(code))
            .with("brokers", self->options.brokers);
    // librdkafka before 2.6.1 repeats the client nonce in its SCRAM final message, which Kafka
    // 4.x brokers reject whatever the password (librdkafka PR #4895).
    if (code == RD_KAFKA_RESP_ERR__AUTHENTICATION &&
        self->options.sasl_mechanism.starts_with("SCRAM") && rd_kafka_version() < 0x020601ff) {
      self->client_error->with(
          "hint", std::string("librdkafka ") + rd_kafka_version_str() +
                      " (< 2.6.1) fails SCRAM against Kafka 4.x brokers even with the right "
                      "password: use PLAIN over TLS there, or a newer librdkafka");
    }
  }
};

Result<std::unique_ptr<KafkaSink>> KafkaSink::create(KafkaOptions options) {
  if (options.brokers.empty()) return fail(ErrorCategory::config, "kafka: brokers is empty");
  if (options.topic.empty()) return fail(ErrorCategory::config, "kafka: topic is empty");
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  const KafkaOptions& o = impl->options;
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char errstr[512];
  std::vector<std::pair<std::string, std::string>> props = {
      {"bootstrap.servers", o.brokers},
      {"client.id", o.client_id},
      {"enable.idempotence", "true"},  // implies acks=all and ordered, duplicate-free retries
      {"acks", "all"},
      {"compression.type", "lz4"},
      {"linger.ms", "5"},
      {"delivery.timeout.ms", std::to_string(o.delivery_timeout.count())},
      {"partitioner", "murmur2_random"},  // Java-compatible hashing of keys
      {"security.protocol", o.security_protocol},
  };
  if (!o.sasl_mechanism.empty()) {
    props.emplace_back("sasl.mechanism", o.sasl_mechanism);
    props.emplace_back("sasl.username", o.sasl_username);
    props.emplace_back("sasl.password", o.sasl_password);
  }
  if (!o.ca_file.empty()) props.emplace_back("ssl.ca.location", o.ca_file);
  for (const auto& kv : o.extra) props.push_back(kv);
  for (const auto& [key, value] : props) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), errstr, sizeof errstr) !=
        RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return fail(Error(ErrorCategory::config, std::string("kafka: ") + errstr)
                      .with("property", key)
                      .with("value", key.find("password") != std::string::npos ? "***" : value));
    }
  }
  rd_kafka_conf_set_opaque(conf, impl.get());
  rd_kafka_conf_set_dr_msg_cb(conf, &Impl::on_delivery);
  rd_kafka_conf_set_error_cb(conf, &Impl::on_error);
  impl->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (impl->producer == nullptr) {  // conf is freed by rd_kafka_new only on success
    rd_kafka_conf_destroy(conf);
    return fail(
        Error(ErrorCategory::config, std::string("kafka: cannot create producer: ") + errstr)
            .with("brokers", o.brokers));
  }
  impl->topic = rd_kafka_topic_new(impl->producer, o.topic.c_str(), nullptr);
  return std::unique_ptr<KafkaSink>(new KafkaSink(std::move(impl)));
}

KafkaSink::KafkaSink(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KafkaSink::~KafkaSink() = default;

void KafkaSink::deliver(const SpoolRecord& record, DeliveryCallback done) {
  auto* cb = new DeliveryCallback(std::move(done));
  int rc = rd_kafka_produce(impl_->topic, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                            const_cast<char*>(record.payload.data()), record.payload.size(),
                            record.key.data(), record.key.size(), cb);
  if (rc != 0) {
    std::unique_ptr<DeliveryCallback> owned(cb);
    const rd_kafka_resp_err_t err = rd_kafka_last_error();
    (*owned)(Error(ErrorCategory::sink,
                   std::string("Kafka produce refused: ") + rd_kafka_err2str(err), true)
                 .with("code", rd_kafka_err2name(err))
                 .with("topic", impl_->options.topic)
                 .with("id", record.id));
  }
  rd_kafka_poll(impl_->producer, 0);
}

void KafkaSink::poll() {
  rd_kafka_poll(impl_->producer, 0);
}

Result<void> KafkaSink::flush(std::chrono::milliseconds deadline) {
  rd_kafka_resp_err_t err = rd_kafka_flush(impl_->producer, static_cast<int>(deadline.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return fail(
        Error(ErrorCategory::sink, std::string("Kafka flush: ") + rd_kafka_err2str(err), true)
            .with("outstanding", std::to_string(outstanding()))
            .with("brokers", impl_->options.brokers));
  }
  return {};
}

int KafkaSink::outstanding() const {
  return rd_kafka_outq_len(impl_->producer);
}

const std::optional<Error>& KafkaSink::client_error() const {
  return impl_->client_error;
}

}  // namespace naap::reports
