// Results through a real Apache Kafka broker that only speaks SASL_SSL (tests/kafka/broker.sh
// start-secure): PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 over TLS deliver every record exactly;
// a wrong password, an untrusted CA and a missing topic fail with an error that names the cause,
// keep every record spooled, and lose none once the cause is fixed.
//
// librdkafka before 2.6.1 (Debian 12 ships 2.0.2) cannot authenticate with SCRAM to a Kafka 4.x
// broker at all (librdkafka PR #4895): with such a librdkafka the SCRAM cases check that the
// failure is reported as such, with the sink's hint, and then skip.
//
// One broker serves every case. Under ctest, where each case is a process of its own, the
// fixture KafkaSecureBroker.start (tests/reports/CMakeLists.txt) runs it and passes its folder in
// NAAP_KAFKA_SECURE_BROKER_DIR; run directly, the suite starts its own in SetUpTestSuite.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "kafka_support.hpp"
#include "naap/core/ids.hpp"
#include "naap/reports/delivery.hpp"
#include "naap/reports/envelope.hpp"
#include "naap/reports/kafka_sink.hpp"
#include "naap/reports/spool.hpp"
#include "test_dir.hpp"

namespace naap::reports {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using kafka_support::Properties;

// The account that broker.sh start-secure sets up for every mechanism (SECURE_USER/PASSWORD).
constexpr const char* kUser = "naap";
constexpr const char* kPassword = "naap-secret";
constexpr std::size_t kRecords = 100;

// Whether this librdkafka can do SCRAM with Kafka 4.x (see the top of the file).
bool scram_works() {
  return rd_kafka_version() >= 0x020601ff;
}

bool contains_nocase(std::string_view text, std::string_view word) {
  auto it = std::search(text.begin(), text.end(), word.begin(), word.end(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) ==
           std::tolower(static_cast<unsigned char>(b));
  });
  return it != text.end();
}

class KafkaSecure : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (const char* shared = std::getenv("NAAP_KAFKA_SECURE_BROKER_DIR"); shared && *shared) {
      broker_dir_ = shared;
      std::ifstream(broker_dir_ / "address") >> address_;
      return;
    }
    own_dir_ = fs::temp_directory_path() / ("naap-kafka-secure-" + std::to_string(::getpid()));
    fs::remove_all(own_dir_);
    fs::create_directories(own_dir_);
    own_broker_ = std::make_unique<kafka_support::Broker>(own_dir_ / "broker",
                                                          kafka_support::free_port_run(3));
    if (own_broker_->start_secure()) {
      broker_dir_ = own_broker_->dir();
      address_ = own_broker_->address();
    }
  }
  static void TearDownTestSuite() {
    own_broker_.reset();  // stops it
    if (!own_dir_.empty()) fs::remove_all(own_dir_);
  }
  void SetUp() override {
    ASSERT_FALSE(address_.empty()) << "the secured broker did not start; see broker.log under "
                                   << (broker_dir_.empty() ? own_dir_ : broker_dir_);
    topic_ = "naap-secure-" + uuid_v4().substr(0, 8);
  }

  static std::string ca_file() { return (broker_dir_ / "ca.pem").string(); }
  // Our sink's settings for SASL_SSL with `mechanism`.
  KafkaOptions options(const std::string& mechanism, const std::string& password = kPassword) {
    return KafkaOptions{.brokers = address_,
                        .topic = topic_,
                        .security_protocol = "sasl_ssl",
                        .sasl_mechanism = mechanism,
                        .sasl_username = kUser,
                        .sasl_password = password,
                        .ca_file = ca_file()};
  }
  // The same for the independent clients (consumer, admin), in librdkafka's own terms.
  static Properties client_settings(const std::string& mechanism) {
    return {{"security.protocol", "sasl_ssl"},
            {"sasl.mechanism", mechanism},
            {"sasl.username", kUser},
            {"sasl.password", kPassword},
            {"ssl.ca.location", ca_file()}};
  }

  std::unique_ptr<Spool> spool() {
    auto s = Spool::open(SpoolOptions{.path = tmp_.path() / "spool.jsonl"});
    EXPECT_TRUE(s.has_value());
    return std::move(*s);
  }
  static std::unique_ptr<KafkaSink> sink(KafkaOptions o) {
    auto k = KafkaSink::create(std::move(o));
    EXPECT_TRUE(k.has_value()) << (k ? "" : k.error().describe());
    return k ? std::move(*k) : nullptr;
  }
  // Publishes kRecords events; returns id -> serialized envelope.
  static std::map<std::string, std::string> publish(Delivery& d) {
    std::map<std::string, std::string> sent;
    for (std::size_t i = 0; i < kRecords; ++i) {
      Envelope e = kafka_support::test_event(static_cast<int>(i));
      sent[e.id] = serialize(e);
      EXPECT_TRUE(d.publish(e));
    }
    return sent;
  }
  // Serves the sink's reports until `done` holds or the timeout passes.
  template <typename Done>
  static bool poll_until(KafkaSink& k, Done done, std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      k.poll();
      std::this_thread::sleep_for(50ms);
    }
    return true;
  }

  // Creates topic_ (3 partitions) with librdkafka's admin API over SASL_SSL.
  ::testing::AssertionResult create_topic() {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    Properties props = client_settings("PLAIN");
    props.emplace_back("bootstrap.servers", address_);
    for (const auto& [key, value] : props) {
      if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof err) !=
          RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return ::testing::AssertionFailure() << key << ": " << err;
      }
    }
    rd_kafka_t* admin = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (admin == nullptr) {
      rd_kafka_conf_destroy(conf);
      return ::testing::AssertionFailure() << "admin client: " << err;
    }
    rd_kafka_NewTopic_t* topic = rd_kafka_NewTopic_new(topic_.c_str(), 3, 1, err, sizeof err);
    rd_kafka_AdminOptions_t* admin_options =
        rd_kafka_AdminOptions_new(admin, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    // Answer once the topic is created (not merely requested).
    rd_kafka_AdminOptions_set_operation_timeout(admin_options, 15000, err, sizeof err);
    rd_kafka_queue_t* queue = rd_kafka_queue_new(admin);
    rd_kafka_CreateTopics(admin, &topic, 1, admin_options, queue);
    rd_kafka_event_t* event = rd_kafka_queue_poll(queue, 30000);
    ::testing::AssertionResult result = ::testing::AssertionSuccess();
    if (event == nullptr) {
      result = ::testing::AssertionFailure() << "CreateTopics: no answer in 30 s";
    } else if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      result = ::testing::AssertionFailure()
               << "CreateTopics: " << rd_kafka_event_error_string(event);
    } else {
      std::size_t n = 0;
      const rd_kafka_topic_result_t** topics =
          rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &n);
      if (n != 1 || rd_kafka_topic_result_error(topics[0]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        result = ::testing::AssertionFailure()
                 << "CreateTopics " << topic_ << ": "
                 << (n == 1 ? rd_kafka_topic_result_error_string(topics[0]) : "no result");
      }
    }
    if (event != nullptr) rd_kafka_event_destroy(event);
    rd_kafka_queue_destroy(queue);
    rd_kafka_AdminOptions_destroy(admin_options);
    rd_kafka_NewTopic_destroy(topic);
    rd_kafka_destroy(admin);
    return result;
  }

  // Reads topic_ over SASL_SSL with `mechanism`: every record exactly once, byte for byte.
  void expect_exactly(const std::map<std::string, std::string>& sent,
                      const std::string& mechanism) {
    auto got =
        kafka_support::consume_all(address_, topic_, sent.size(), 60s, client_settings(mechanism));
    EXPECT_EQ(got.size(), sent.size()) << "no duplicates without faults";
    EXPECT_EQ(kafka_support::expect_all_arrived(sent, got), sent.size());
  }

  // Every record through Delivery + Spool + KafkaSink with `mechanism`, acknowledged, read back.
  void round_trip(const std::string& mechanism) {
    ASSERT_TRUE(create_topic());
    auto s = spool();
    auto k = sink(options(mechanism));
    ASSERT_TRUE(s && k);
    Delivery d(*s, *k);
    auto sent = publish(d);
    ASSERT_TRUE(k->flush(30s)) << (d.last_error() ? d.last_error()->describe() : "");
    ASSERT_TRUE(kafka_support::drain(d, *k, 30s));
    EXPECT_EQ(d.stats().delivered, kRecords);
    EXPECT_EQ(d.stats().failed_attempts, 0u);
    EXPECT_EQ(s->pending_count(), 0u) << "every record acknowledged";
    EXPECT_FALSE(k->client_error()) << k->client_error()->describe();
    expect_exactly(sent, mechanism);
  }

  // With a librdkafka too old for SCRAM against Kafka 4.x, the right password fails too: the
  // failure says so, and no record is acked.
  void expect_scram_rejected(const std::string& mechanism) {
    auto s = spool();
    auto k = sink(options(mechanism));
    ASSERT_TRUE(s && k);
    Delivery d(*s, *k);
    publish(d);
    ASSERT_TRUE(poll_until(
        *k,
        [&] { return k->client_error() && k->client_error()->get("code") == "_AUTHENTICATION"; },
        20s));
    std::printf("client error: %s\n", k->client_error()->describe().c_str());
    EXPECT_NE(k->client_error()->get("hint").find("2.6.1"), std::string::npos)
        << k->client_error()->describe();
    EXPECT_EQ(d.stats().delivered, 0u);
    EXPECT_EQ(d.backlog(), kRecords);
  }

  // The records spooled by a sink that could not deliver them go out through a new sink with
  // `fixed` settings on the same spool: none is lost.
  void deliver_with(Spool& s, KafkaOptions fixed, const std::map<std::string, std::string>& sent) {
    const std::string mechanism = fixed.sasl_mechanism;
    auto k = sink(std::move(fixed));
    ASSERT_TRUE(k);
    Delivery d(s, *k);
    EXPECT_EQ(d.retry_pending(), kRecords);
    ASSERT_TRUE(kafka_support::drain(d, *k, 60s))
        << (d.last_error() ? d.last_error()->describe() : "");
    EXPECT_EQ(d.stats().delivered, kRecords);
    EXPECT_EQ(s.pending_count(), 0u);
    expect_exactly(sent, mechanism);
  }

  // A sink that cannot reach the broker (`bad`): its client error has `code`, `category` and
  // each of the words `about`; no record is acked, and after delivery_timeout every record fails
  // naming that cause (the first word) and stays spooled. Returns what was published.
  std::map<std::string, std::string> fail_to_connect(
      Spool& s, KafkaOptions bad, const std::string& code, ErrorCategory category,
      std::initializer_list<std::string_view> about) {
    bad.delivery_timeout = 3s;  // the default (5 min) keeps records queued far longer
    auto k = sink(std::move(bad));
    if (!k) return {};
    Delivery d(s, *k);
    auto sent = publish(d);
    EXPECT_TRUE(poll_until(
        *k, [&] { return k->client_error() && k->client_error()->get("code") == code; }, 20s));
    if (const auto& e = k->client_error()) {
      std::printf("client error: %s\n", e->describe().c_str());
      EXPECT_EQ(e->get("code"), code) << e->describe();
      EXPECT_EQ(e->category, category) << e->describe();
      for (std::string_view word : about) {
        EXPECT_TRUE(contains_nocase(e->message, word)) << word << " in " << e->describe();
      }
    }
    EXPECT_EQ(d.stats().delivered, 0u);
    EXPECT_EQ(d.backlog(), kRecords);
    EXPECT_TRUE(poll_until(
        *k, [&] { return d.in_flight() == 0; }, 20s));
    EXPECT_EQ(d.stats().delivered, 0u);
    EXPECT_EQ(d.stats().failed_attempts, kRecords);
    EXPECT_EQ(d.backlog(), kRecords) << "every record stays spooled";
    EXPECT_TRUE(d.last_error().has_value());
    if (d.last_error()) {
      std::printf("delivery error: %s\n", d.last_error()->describe().c_str());
      EXPECT_EQ(d.last_error()->get("code"), "_MSG_TIMED_OUT");
      EXPECT_TRUE(contains_nocase(d.last_error()->get("cause"), *about.begin()))
          << d.last_error()->describe();
    }
    return sent;
  }

  static inline fs::path own_dir_;  // the suite's own broker, when not under ctest's fixture
  static inline std::unique_ptr<kafka_support::Broker> own_broker_;
  static inline fs::path broker_dir_;  // ca.pem, untrusted-ca.pem, broker.log
  static inline std::string address_;  // the SASL_SSL listener
  test::TestDir tmp_{"naap-kafka-secure"};
  std::string topic_;
};

TEST_F(KafkaSecure, plain_over_tls_delivers_every_record_exactly) {
  round_trip("PLAIN");
}

TEST_F(KafkaSecure, scram_sha_256_over_tls_delivers_every_record_exactly) {
  if (!scram_works()) {
    expect_scram_rejected("SCRAM-SHA-256");
    GTEST_SKIP() << "librdkafka " << rd_kafka_version_str()
                 << " < 2.6.1: no SCRAM with Kafka 4.x (librdkafka PR #4895)";
  }
  round_trip("SCRAM-SHA-256");
}

TEST_F(KafkaSecure, scram_sha_512_over_tls_delivers_every_record_exactly) {
  if (!scram_works()) {
    expect_scram_rejected("SCRAM-SHA-512");
    GTEST_SKIP() << "librdkafka " << rd_kafka_version_str()
                 << " < 2.6.1: no SCRAM with Kafka 4.x (librdkafka PR #4895)";
  }
  round_trip("SCRAM-SHA-512");
}

TEST_F(KafkaSecure, plain_wrong_password_keeps_records_spooled_until_the_right_one_sends_them) {
  ASSERT_TRUE(create_topic());
  auto s = spool();
  auto sent = fail_to_connect(*s, options("PLAIN", "not-the-password"), "_AUTHENTICATION",
                              ErrorCategory::sink, {"SASL authentication", "password"});
  ASSERT_EQ(sent.size(), kRecords);
  EXPECT_EQ(s->pending_count(), kRecords);
  deliver_with(*s, options("PLAIN"), sent);
}

TEST_F(KafkaSecure, scram_wrong_password_keeps_records_spooled_until_the_right_one_sends_them) {
  if (!scram_works()) {
    GTEST_SKIP() << "librdkafka " << rd_kafka_version_str()
                 << " < 2.6.1: no SCRAM with Kafka 4.x (librdkafka PR #4895)";
  }
  ASSERT_TRUE(create_topic());
  auto s = spool();
  auto sent = fail_to_connect(*s, options("SCRAM-SHA-256", "not-the-password"), "_AUTHENTICATION",
                              ErrorCategory::sink, {"SASL authentication", "credentials"});
  ASSERT_EQ(sent.size(), kRecords);
  EXPECT_EQ(s->pending_count(), kRecords);
  deliver_with(*s, options("SCRAM-SHA-256"), sent);
}

TEST_F(KafkaSecure, untrusted_ca_fails_the_handshake_and_keeps_records_spooled) {
  ASSERT_TRUE(create_topic());
  auto s = spool();
  KafkaOptions bad = options("PLAIN");
  bad.ca_file = (broker_dir_ / "untrusted-ca.pem").string();
  auto sent = fail_to_connect(*s, bad, "_SSL", ErrorCategory::tls,
                              {"certificate verify failed", "SSL handshake"});
  ASSERT_EQ(sent.size(), kRecords);
  EXPECT_EQ(s->pending_count(), kRecords);
  deliver_with(*s, options("PLAIN"), sent);
}

TEST_F(KafkaSecure, missing_topic_keeps_records_spooled_until_it_is_created) {
  auto s = spool();
  KafkaOptions o = options("PLAIN");
  // librdkafka believes a topic absent only after topic.metadata.propagation.max.ms (30 s), and
  // refreshes what it knows of topics every topic.metadata.refresh.interval.ms (5 min): 1 s each
  // here, so that the records fail quickly and the same sink sees the topic once it exists.
  o.extra = {{"topic.metadata.propagation.max.ms", "1000"},
             {"topic.metadata.refresh.interval.ms", "1000"}};
  auto k = sink(o);
  ASSERT_TRUE(s && k);
  Delivery d(*s, *k);
  auto sent = publish(d);
  ASSERT_TRUE(poll_until(
      *k, [&] { return d.in_flight() == 0; }, 20s));
  EXPECT_EQ(d.stats().delivered, 0u);
  EXPECT_EQ(d.stats().failed_attempts, kRecords);
  EXPECT_EQ(d.backlog(), kRecords) << "every record stays spooled";
  ASSERT_TRUE(d.last_error().has_value());
  std::printf("delivery error: %s\n", d.last_error()->describe().c_str());
  EXPECT_EQ(d.last_error()->get("code"), "UNKNOWN_TOPIC_OR_PART");
  EXPECT_NE(d.last_error()->describe().find(topic_), std::string::npos);

  ASSERT_TRUE(create_topic());
  // Until the sink's metadata shows the topic, produce() refuses at once: retry every 500 ms.
  ASSERT_TRUE(kafka_support::drain(d, *k, 30s, 500ms))
      << (d.last_error() ? d.last_error()->describe() : "");
  EXPECT_EQ(d.stats().delivered, kRecords);
  EXPECT_EQ(s->pending_count(), 0u);
  expect_exactly(sent, "PLAIN");
}

}  // namespace
}  // namespace naap::reports
