// Results through a real Apache Kafka broker (KRaft, single node, on loopback): what a consumer
// reads equals what was published, and broker absence, a broker crash and a producer SIGKILL
// lose no record (duplicates only as at-least-once allows, identifiable by id).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
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

using kafka_support::Broker;
using kafka_support::consume_all;
using kafka_support::drain;

class KafkaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    broker_ = std::make_unique<Broker>(dir_ / "broker", kafka_support::free_port_run(2));
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
  static Envelope event(int i) { return kafka_support::test_event(i); }
  // Checks that every published id arrived (at least once), with the exact bytes.
  void expect_all_arrived(const std::map<std::string, std::string>& sent, std::size_t at_least) {
    kafka_support::expect_all_arrived(sent, consume_all(broker_->address(), topic_, at_least, 60s));
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

// The whole path a user runs: `naap-loadtest bench --emulated --kafka-brokers …` publishes a
// session's events through its spool to the broker; an independent consumer reads the topic and
// every message passes the NaaP contract checker (tests/contract/validate_events.py against
// reports/schemas), keyed as EVENTS.md §5.5 says.
TEST_F(KafkaTest, bench_events_reach_a_consumer_shaped_for_the_naap_contract) {
  ASSERT_TRUE(broker_->start());
  const std::string out = (dir_ / "bench.out").string();
  const std::string record = (dir_ / "record.json").string();
  const std::string cmd = std::string(NAAP_TEST_BIN_DIR) +
                          "/naap-loadtest bench --emulated --quiet --duration 6 "
                          "--prompt-interval 2 --gateway-id kafka-contract --kafka-brokers " +
                          broker_->address() + " --kafka-topic " + topic_ + " --spool " +
                          (dir_ / "bench.spool").string() + " --json " + record + " > " + out +
                          " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream report(out);
  const std::string text((std::istreambuf_iterator<char>(report)), {});
  const auto at = text.find("results ");
  ASSERT_NE(at, std::string::npos) << text;
  EXPECT_NE(text.find("all delivered", at), std::string::npos) << text;
  const std::size_t published = std::stoul(text.substr(text.find_first_of("0123456789", at)));
  ASSERT_GT(published, 8u) << text;

  const auto messages = consume_all(broker_->address(), topic_, published, 60s);
  ASSERT_EQ(messages.size(), published) << "every event once: nothing lost, no duplicate";
  const fs::path events = dir_ / "consumed.jsonl";
  std::ofstream lines(events);
  std::set<std::string> ids;
  std::string request_id;
  for (const auto& [key, value] : messages) {
    lines << value << "\n";
    auto e = parse_envelope(value);
    ASSERT_TRUE(e) << value;
    ids.insert(e->id);
    if (e->data.is_object() && e->data.value("type", "") == "run_summary") {
      EXPECT_EQ(key, e->data["test_run_id"]) << "a run's summary is keyed by the run";
    } else {
      ASSERT_TRUE(e->data.contains("request_id")) << value;
      EXPECT_EQ(key, e->data["request_id"]) << "a session's events are keyed by its request";
      if (request_id.empty()) request_id = key;
      EXPECT_EQ(key, request_id) << "one session: one key, one partition, in order";
    }
  }
  lines.close();
  EXPECT_EQ(ids.size(), messages.size());
  const std::string validate = std::string("python3 ") + NAAP_TEST_SOURCE_DIR +
                               "/tests/contract/validate_events.py --schemas " +
                               NAAP_TEST_SOURCE_DIR + "/reports/schemas --record " + record + " " +
                               events.string() +
                               " --require stream_trace/gateway_receive_stream_request"
                               " --require stream_trace/gateway_send_first_ingest_segment"
                               " --require stream_trace/gateway_receive_first_processed_segment"
                               " --require stream_trace/gateway_ingest_stream_closed"
                               " --require ai_stream_events/params_update"
                               " --require synthetic_test_result/session_result"
                               " --require synthetic_test_result/run_summary";
  EXPECT_EQ(std::system(validate.c_str()), 0) << validate;
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
