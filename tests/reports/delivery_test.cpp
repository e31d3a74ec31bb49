// Envelope and delivery: every published record reaches the sink exactly as built, and a sink
// that fails, hangs or dies with the process loses nothing (resent with the same id).
#include "naap/reports/delivery.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "naap/reports/envelope.hpp"
#include "naap/reports/sink.hpp"
#include "naap/reports/spool.hpp"
#include "test_dir.hpp"

namespace naap::reports {
namespace {

namespace fs = std::filesystem;

// Fault injection the real sinks cannot produce: refuse the first `fail_first` records, or
// hold every report until release() (an asynchronous sink such as Kafka).
class FaultySink final : public Sink {
 public:
  int fail_first = 0;
  bool hold = false;
  std::vector<std::string> delivered_ids;
  std::vector<std::pair<std::string, DeliveryCallback>> held;
  std::string_view name() const override { return "faulty"; }
  void deliver(const SpoolRecord& record, DeliveryCallback done) override {
    if (fail_first > 0) {
      --fail_first;
      done(Error(ErrorCategory::sink, "broker unavailable", true));
      return;
    }
    if (hold) {
      held.emplace_back(record.id, std::move(done));
      return;
    }
    delivered_ids.push_back(record.id);
    done(std::nullopt);
  }
  void release() {
    auto pending = std::move(held);
    for (auto& [id, done] : pending) {
      delivered_ids.push_back(id);
      done(std::nullopt);
    }
  }
  Result<void> flush(std::chrono::milliseconds) override { return {}; }
};

class DeliveryTest : public ::testing::Test {
 protected:
  std::unique_ptr<Spool> spool() {
    auto s = Spool::open(SpoolOptions{.path = dir_ / "spool.jsonl"});
    EXPECT_TRUE(s.has_value());
    return std::move(*s);
  }
  static Envelope event(int i) {
    return make_envelope("stream_trace", "naap-lt-test-1",
                         {{"type", "gateway_receive_first_processed_segment"},
                          {"timestamp", 1767830402655 + i},
                          {"request_id", "r-" + std::to_string(i % 4)},
                          {"synthetic", true},
                          {"client_source", "naap-loadtest"}},
                         "r-" + std::to_string(i % 4));
  }
  std::vector<Envelope> read_jsonl(const fs::path& path) {
    std::vector<Envelope> out;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      auto e = parse_envelope(line);
      EXPECT_TRUE(e.has_value()) << line;
      if (e) out.push_back(*e);
    }
    return out;
  }
  test::TestDir tmp_{"naap-delivery"};
  const fs::path& dir_ = tmp_.path();
};

TEST(ReportsEnvelope, wire_form_matches_go_livepeer) {
  Envelope e = make_envelope("ai_stream_status", "gw-1", {{"state", "ONLINE"}}, "r-1");
  e.timestamp_ms = 1767830400123;
  std::string wire = serialize(e);
  auto j = nlohmann::json::parse(wire);
  EXPECT_TRUE(j["timestamp"].is_string()) << "timestamp is decimal text, not a number";
  EXPECT_EQ(j["timestamp"], "1767830400123");
  EXPECT_TRUE(j["data"].is_object()) << "data is a JSON value, not a string holding JSON";
  EXPECT_EQ(j.size(), 5u) << "exactly id, type, timestamp, gateway, data";
  EXPECT_FALSE(j.contains("key"));
  auto back = parse_envelope(wire);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->id, e.id);
  EXPECT_EQ(back->timestamp_ms, e.timestamp_ms);
  EXPECT_EQ(back->data, e.data);
}

TEST(ReportsEnvelope, invalid_envelopes_are_named) {
  for (std::string bad :
       {R"(not json)", R"({"id":"","type":"t","timestamp":"1","gateway":"g","data":{}})",
        R"({"id":"a","type":"t","timestamp":1,"gateway":"g","data":{}})",
        R"({"id":"a","type":"t","timestamp":"12x","gateway":"g","data":{}})",
        R"({"id":"a","type":"t","timestamp":"1","gateway":"g","data":"{}"})"}) {
    auto e = parse_envelope(bad);
    ASSERT_FALSE(e.has_value()) << bad;
    EXPECT_EQ(e.error().category, ErrorCategory::sink);
    EXPECT_NE(e.error().message.find("invalid event envelope"), std::string::npos);
  }
}

TEST_F(DeliveryTest, jsonl_sink_receives_every_envelope_exactly_as_built) {
  auto s = spool();
  auto sink = JsonlSink::open(dir_ / "events.jsonl");
  ASSERT_TRUE(sink.has_value());
  Delivery delivery(*s, **sink);
  std::vector<Envelope> sent;
  for (int i = 0; i < 100; ++i) {
    sent.push_back(event(i));
    ASSERT_TRUE(delivery.publish(sent.back()));
  }
  EXPECT_EQ(delivery.backlog(), 0u);
  EXPECT_EQ(delivery.stats().delivered, 100u);
  auto got = read_jsonl(dir_ / "events.jsonl");
  ASSERT_EQ(got.size(), 100u);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(got[i].id, sent[i].id);
    EXPECT_EQ(got[i].type, sent[i].type);
    EXPECT_EQ(got[i].timestamp_ms, sent[i].timestamp_ms);
    EXPECT_EQ(got[i].gateway, "naap-lt-test-1");
    EXPECT_EQ(got[i].data, sent[i].data);
  }
}

TEST_F(DeliveryTest, failed_deliveries_stay_spooled_and_are_resent_with_the_same_id) {
  auto s = spool();
  FaultySink sink;
  sink.fail_first = 7;
  Delivery delivery(*s, sink);
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    Envelope e = event(i);
    ids.push_back(e.id);
    ASSERT_TRUE(delivery.publish(e)) << "a sink failure is not a publish failure";
  }
  EXPECT_EQ(delivery.backlog(), 7u);
  EXPECT_EQ(delivery.stats().failed_attempts, 7u);
  ASSERT_TRUE(delivery.last_error().has_value());
  EXPECT_EQ(delivery.retry_pending(), 7u);
  EXPECT_EQ(delivery.backlog(), 0u);
  std::multiset<std::string> got(sink.delivered_ids.begin(), sink.delivered_ids.end());
  for (const auto& id : ids) EXPECT_EQ(got.count(id), 1u) << id;
}

TEST_F(DeliveryTest, records_in_flight_are_not_resent_until_their_report_arrives) {
  auto s = spool();
  FaultySink sink;
  sink.hold = true;
  Delivery delivery(*s, sink);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(delivery.publish(event(i)));
  EXPECT_EQ(delivery.in_flight(), 5u);
  EXPECT_EQ(delivery.retry_pending(), 0u) << "no duplicate while a report is outstanding";
  sink.release();
  EXPECT_EQ(delivery.in_flight(), 0u);
  EXPECT_EQ(delivery.backlog(), 0u);
  EXPECT_EQ(sink.delivered_ids.size(), 5u);
}

TEST_F(DeliveryTest, a_process_killed_before_delivery_reports_resends_everything_on_restart) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto s = Spool::open(SpoolOptions{.path = dir_ / "spool.jsonl"});
    if (!s) ::_exit(2);
    FaultySink sink;
    sink.hold = true;  // reports never come: the broker was slow when the process died
    Delivery delivery(**s, sink);
    for (int i = 0; i < 30; ++i) {
      if (!delivery.publish(event(i))) ::_exit(3);
    }
    ::raise(SIGKILL);
    ::_exit(4);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  auto s = spool();
  EXPECT_EQ(s->pending_count(), 30u);
  auto sink = JsonlSink::open(dir_ / "events.jsonl");
  ASSERT_TRUE(sink.has_value());
  Delivery delivery(*s, **sink);
  EXPECT_EQ(delivery.retry_pending(), 30u);
  EXPECT_EQ(delivery.backlog(), 0u);
  auto got = read_jsonl(dir_ / "events.jsonl");
  ASSERT_EQ(got.size(), 30u);
  std::set<std::string> unique;
  for (const auto& e : got) unique.insert(e.id);
  EXPECT_EQ(unique.size(), 30u);
  EXPECT_EQ(got.front().data["timestamp"], 1767830402655) << "resent as recorded";
}

TEST_F(DeliveryTest, stream_sink_writes_one_line_per_record) {
  std::FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  StreamSink sink(out);
  auto s = spool();
  Delivery delivery(*s, sink);
  ASSERT_TRUE(delivery.publish(event(1)));
  ASSERT_TRUE(delivery.publish(event(2)));
  std::rewind(out);
  char buf[4096];
  int lines = 0;
  while (std::fgets(buf, sizeof buf, out) != nullptr) {
    ASSERT_TRUE(parse_envelope(std::string_view(buf).substr(0, std::strlen(buf) - 1)));
    ++lines;
  }
  std::fclose(out);
  EXPECT_EQ(lines, 2);
}

TEST_F(DeliveryTest, jsonl_output_in_a_missing_folder_is_a_clear_error) {
  auto sink = JsonlSink::open(dir_ / "missing" / "events.jsonl");
  ASSERT_FALSE(sink.has_value());
  EXPECT_EQ(sink.error().category, ErrorCategory::sink);
  EXPECT_NE(sink.error().get("path").find("missing"), std::string::npos);
}

}  // namespace
}  // namespace naap::reports
