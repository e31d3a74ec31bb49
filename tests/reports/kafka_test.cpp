// Results through a real Apache Kafka broker (KRaft, single node, on loopback): what a consumer
// reads equals what was published, and broker absence, a broker crash and a producer SIGKILL
// lose no record (duplicates only as at-least-once allows, identifiable by id).
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>
#include <thread>

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

// tests/kafka/broker.sh around one data folder; stopped in the destructor.
class Broker {
 public:
  explicit Broker(fs::path dir) : dir_(std::move(dir)) {
    port_ = 20000 + static_cast<int>(::getpid() % 20000);
    port_ -= port_ % 2;  // port and port+1 (controller)
  }
  ~Broker() { run("stop"); }
  bool start() { return run("start " + std::to_string(port_)) == 0; }
  void kill() { run("kill"); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int run(const std::string& args) {
    std::string cmd = std::string("bash ") + NAAP_TEST_SOURCE_DIR + "/tests/kafka/broker.sh " +
                      args.substr(0, args.find(' ')) + " " + dir_.string() +
                      (args.find(' ') == std::string::npos ? "" : args.substr(args.find(' ')));
    return std::system(cmd.c_str());
  }
  fs::path dir_;
  int port_;
};

// An independent reader of the topic: librdkafka's consumer, not our sink code.
std::vector<std::pair<std::string, std::string>> consume_all(const std::string& brokers,
                                                             const std::string& topic,
                                                             std::size_t at_least,
                                                             std::chrono::seconds timeout) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "group.id", ("verify-" + uuid_v4()).c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof err);
  rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
  rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  rd_kafka_poll_set_consumer(consumer);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, topic.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_subscribe(consumer, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  std::vector<std::pair<std::string, std::string>> out;  // key, value
  auto poll_once = [&](int timeout_ms) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer, timeout_ms);
    if (m == nullptr) return;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      out.emplace_back(std::string(static_cast<const char*>(m->key), m->key_len),
                       std::string(static_cast<const char*>(m->payload), m->len));
    }
    rd_kafka_message_destroy(m);
  };
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out.size() < at_least && std::chrono::steady_clock::now() < deadline) poll_once(200);
  // A moment more: duplicates (at-least-once) would arrive right behind.
  for (int i = 0; i < 5; ++i) poll_once(100);
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  return out;
}

class KafkaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    broker_ = std::make_unique<Broker>(dir_ / "broker");
    topic_ = "naap-test-" + uuid_v4().substr(0, 8);
  }
  void TearDown() override { broker_.reset(); }  // stops the broker before tmp_ goes
  std::unique_ptr<Spool> spool() {
    auto s = Spool::open(SpoolOptions{.path = dir_ / "spool.jsonl"});
    EXPECT_TRUE(s.has_value());
    return std::move(*s);
  }
  std::unique_ptr<KafkaSink> sink() {
    auto k = KafkaSink::create(KafkaOptions{.brokers = broker_->address(), .topic = topic_});
    EXPECT_TRUE(k.has_value()) << (k ? "" : k.error().describe());
    return std::move(*k);
  }
  static Envelope event(int i) {
    return make_envelope("stream_trace", "naap-lt-test-1",
                         {{"type", "gateway_send_first_ingest_segment"},
                          {"seq_in_session", i},
                          {"request_id", "r-" + std::to_string(i % 5)},
                          {"synthetic", true}},
                         "r-" + std::to_string(i % 5));
  }
  // Polls until the backlog is empty or the timeout passes.
  static bool drain(Delivery& d, KafkaSink& k, std::chrono::seconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      k.poll();
      if (d.backlog() == 0) return true;
      if (d.in_flight() == 0) d.retry_pending();
      std::this_thread::sleep_for(50ms);
    }
    return d.backlog() == 0;
  }
  // Checks that every published id arrived (at least once), with the exact bytes.
  void expect_all_arrived(const std::map<std::string, std::string>& sent, std::size_t at_least) {
    auto got = consume_all(broker_->address(), topic_, at_least, 60s);
    std::map<std::string, int> count;
    for (const auto& [key, value] : got) {
      auto e = parse_envelope(value);
      ASSERT_TRUE(e.has_value()) << value;
      ++count[e->id];
      auto it = sent.find(e->id);
      ASSERT_NE(it, sent.end()) << "unexpected id " << e->id;
      EXPECT_EQ(value, it->second) << "content differs for " << e->id;
      EXPECT_EQ(key, e->data["request_id"]) << "keyed by request_id";
    }
    for (const auto& [id, value] : sent) EXPECT_GE(count[id], 1) << "lost record " << id;
    std::printf("consumed %zu messages for %zu records (%zu duplicates)\n", got.size(), sent.size(),
                got.size() - count.size());
  }
  test::TestDir tmp_{"naap-kafka"};
  const fs::path& dir_ = tmp_.path();
  std::unique_ptr<Broker> broker_;
  std::string topic_;
};

TEST_F(KafkaTest, a_consumer_reads_exactly_what_was_published_in_session_order) {
  ASSERT_TRUE(broker_->start());
  auto s = spool();
  auto k = sink();
  Delivery d(*s, *k);
  std::map<std::string, std::string> sent;
  for (int i = 0; i < 200; ++i) {
    Envelope e = event(i);
    sent[e.id] = serialize(e);
    ASSERT_TRUE(d.publish(e));
  }
  ASSERT_TRUE(k->flush(30s));
  ASSERT_TRUE(drain(d, *k, 30s));
  EXPECT_EQ(d.stats().delivered, 200u);
  auto got = consume_all(broker_->address(), topic_, 200, 60s);
  ASSERT_EQ(got.size(), 200u) << "no duplicates without faults";
  std::map<std::string, int> last_in_session;
  for (const auto& [key, value] : got) {
    auto e = parse_envelope(value);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(value, sent[e->id]);
    const int n = e->data["seq_in_session"].get<int>();
    auto it = last_in_session.find(key);
    if (it != last_in_session.end()) {
      EXPECT_GT(n, it->second) << "order within " << key;
    }
    last_in_session[key] = n;
  }
  EXPECT_EQ(last_in_session.size(), 5u);
}

TEST_F(KafkaTest, broker_absent_at_start_then_up_loses_nothing) {
  auto s = spool();
  auto k = sink();
  Delivery d(*s, *k);
  std::map<std::string, std::string> sent;
  for (int i = 0; i < 50; ++i) {
    Envelope e = event(i);
    sent[e.id] = serialize(e);
    ASSERT_TRUE(d.publish(e));
  }
  for (int i = 0; i < 20; ++i) {
    k->poll();
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(d.backlog(), 50u) << "nothing is delivered, nothing is dropped";
  ASSERT_TRUE(broker_->start());
  ASSERT_TRUE(drain(d, *k, 60s));
  expect_all_arrived(sent, 50);
}

TEST_F(KafkaTest, broker_crash_mid_run_and_restart_loses_nothing) {
  ASSERT_TRUE(broker_->start());
  auto s = spool();
  auto k = sink();
  Delivery d(*s, *k);
  std::map<std::string, std::string> sent;
  auto publish = [&](int from, int to) {
    for (int i = from; i < to; ++i) {
      Envelope e = event(i);
      sent[e.id] = serialize(e);
      ASSERT_TRUE(d.publish(e));
    }
  };
  publish(0, 50);
  ASSERT_TRUE(drain(d, *k, 30s));
  broker_->kill();
  publish(50, 100);
  for (int i = 0; i < 10; ++i) {
    k->poll();
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_GT(d.backlog(), 0u);
  ASSERT_TRUE(broker_->start());  // same data folder: the broker restarts with its log
  ASSERT_TRUE(drain(d, *k, 90s));
  expect_all_arrived(sent, 100);
}

TEST_F(KafkaTest, producer_sigkill_with_records_in_flight_resends_them_on_restart) {
  std::map<std::string, std::string> sent;
  for (int i = 0; i < 40; ++i) {
    Envelope e = event(i);
    sent[e.id] = serialize(e);
  }
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Broker down: every record is spooled and in flight when the process dies.
    auto s = Spool::open(SpoolOptions{.path = dir_ / "spool.jsonl"});
    auto k = KafkaSink::create(KafkaOptions{.brokers = broker_->address(), .topic = topic_});
    if (!s || !k) ::_exit(2);
    Delivery d(**s, **k);
    for (const auto& [id, value] : sent) {
      auto e = parse_envelope(value);
      e->key = e->data["request_id"].get<std::string>();
      if (!d.publish(*e)) ::_exit(3);
    }
    ::raise(SIGKILL);
    ::_exit(4);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_TRUE(broker_->start());
  auto s = spool();
  EXPECT_EQ(s->pending_count(), 40u);
  auto k = sink();
  Delivery d(*s, *k);
  EXPECT_EQ(d.retry_pending(), 40u);
  ASSERT_TRUE(drain(d, *k, 60s));
  expect_all_arrived(sent, 40);
}

TEST(KafkaConfig, invalid_settings_name_the_property) {
  auto k = KafkaSink::create(
      KafkaOptions{.brokers = "127.0.0.1:1", .topic = "t", .security_protocol = "carrier-pigeon"});
  ASSERT_FALSE(k.has_value());
  EXPECT_EQ(k.error().category, ErrorCategory::config);
  EXPECT_EQ(k.error().get("property"), "security.protocol");
  auto no_topic = KafkaSink::create(KafkaOptions{.brokers = "127.0.0.1:1"});
  ASSERT_FALSE(no_topic.has_value());
  EXPECT_NE(no_topic.error().message.find("topic"), std::string::npos);
}

}  // namespace
}  // namespace naap::reports
