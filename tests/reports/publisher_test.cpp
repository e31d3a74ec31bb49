// The results pipeline as the program uses it: publish() from many threads, a sink that goes
// down and comes back, a spool that fills up, shutdown with a deadline and the next start's
// replay. Nothing published may be lost; resends keep their id.
#include "naap/reports/publisher.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "test_dir.hpp"

namespace naap::reports {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Fault injection: a sink that refuses every record while `down` (a broker outage).
class SwitchSink final : public Sink {
 public:
  std::atomic<bool> down{false};
  std::string_view name() const override { return "switch"; }
  void deliver(const SpoolRecord& record, DeliveryCallback done) override {
    if (down) return done(Error(ErrorCategory::sink, "broker unavailable", true));
    {
      std::lock_guard lock(mutex_);
      ids_.push_back(record.id);
      payloads_[record.id] = record.payload;
    }
    done(std::nullopt);
  }
  Result<void> flush(std::chrono::milliseconds) override { return {}; }
  std::vector<std::string> ids() const {
    std::lock_guard lock(mutex_);
    return ids_;
  }
  std::string payload(const std::string& id) const {
    std::lock_guard lock(mutex_);
    auto it = payloads_.find(id);
    return it == payloads_.end() ? "" : it->second;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> ids_;
  std::map<std::string, std::string> payloads_;
};

Envelope event(int thread, int i) {
  return make_envelope("stream_trace", "naap-lt-test",
                       {{"type", "gateway_receive_first_processed_segment"},
                        {"timestamp", 1767830402655 + i},
                        {"request_id", "r-" + std::to_string(thread)},
                        {"seq", i}},
                       "r-" + std::to_string(thread));
}

PublisherOptions fast() {
  PublisherOptions o;
  o.poll_interval = 5ms;
  o.retry_interval = 20ms;
  return o;
}

class PublisherTest : public ::testing::Test {
 protected:
  std::unique_ptr<Spool> spool(std::uint64_t max_bytes = 1ull << 30) {
    SpoolOptions options;
    options.path = tmp_.path() / "spool.jsonl";
    options.max_bytes = max_bytes;
    auto s = Spool::open(options);
    EXPECT_TRUE(s.has_value()) << s.error().describe();
    return std::move(*s);
  }
  test::TestDir tmp_{"naap-publisher"};
};

TEST_F(PublisherTest, events_from_many_threads_all_arrive_in_per_session_order) {
  auto sink = std::make_unique<SwitchSink>();
  auto* view = sink.get();
  auto publisher = Publisher::start(spool(), std::move(sink), fast());
  constexpr int threads = 4, per_thread = 150;
  std::map<std::string, std::vector<std::string>> published;  // key → ids in publish order
  std::mutex mutex;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        Envelope e = event(t, i);
        ASSERT_TRUE(publisher->publish(e));
        std::lock_guard lock(mutex);
        published[e.key].push_back(e.id);
      }
    });
  for (auto& w : workers) w.join();
  EXPECT_EQ(publisher->shutdown(5s), 0u);
  const auto ids = view->ids();
  ASSERT_EQ(ids.size(), static_cast<std::size_t>(threads * per_thread));
  // Per key, the sink saw the ids in the order they were published.
  std::map<std::string, std::size_t> next;
  std::map<std::string, std::string> key_of;
  for (const auto& [key, list] : published)
    for (const auto& id : list) key_of[id] = key;
  for (const auto& id : ids) {
    const std::string& key = key_of.at(id);
    EXPECT_EQ(published[key][next[key]++], id);
  }
  const auto snap = publisher->snapshot();
  EXPECT_EQ(snap.published, static_cast<std::uint64_t>(threads * per_thread));
  EXPECT_EQ(snap.delivered, snap.published);
  EXPECT_EQ(snap.backlog, 0u);
}

TEST_F(PublisherTest, an_outage_builds_a_visible_backlog_that_drains_when_the_sink_returns) {
  auto sink = std::make_unique<SwitchSink>();
  auto* view = sink.get();
  view->down = true;
  auto publisher = Publisher::start(spool(), std::move(sink), fast());
  std::set<std::string> sent;
  for (int i = 0; i < 40; ++i) {
    Envelope e = event(0, i);
    sent.insert(e.id);
    ASSERT_TRUE(publisher->publish(e));
  }
  std::this_thread::sleep_for(100ms);
  auto snap = publisher->snapshot();
  EXPECT_EQ(snap.backlog, 40u);
  EXPECT_GT(snap.failed_attempts, 40u) << "retried while down";
  EXPECT_GT(snap.oldest_pending_age_s, 0.05);
  EXPECT_NE(snap.last_error.find("broker unavailable"), std::string::npos) << snap.last_error;
  view->down = false;
  for (int i = 0; i < 200 && publisher->snapshot().backlog > 0; ++i)
    std::this_thread::sleep_for(10ms);
  snap = publisher->snapshot();
  EXPECT_EQ(snap.backlog, 0u);
  EXPECT_EQ(snap.oldest_pending_age_s, 0.0);
  const auto ids = view->ids();
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()), sent);
  EXPECT_EQ(ids.size(), sent.size()) << "each delivered once after the outage";
}

TEST_F(PublisherTest, a_full_spool_holds_events_in_memory_and_takes_them_once_space_returns) {
  auto sink = std::make_unique<SwitchSink>();
  auto* view = sink.get();
  view->down = true;
  // Room for a handful of records only.
  auto publisher = Publisher::start(spool(2000), std::move(sink), fast());
  std::vector<std::string> sent;
  int refused = 0;
  for (int i = 0; i < 30; ++i) {
    Envelope e = event(0, i);
    sent.push_back(e.id);
    if (!publisher->publish(e)) ++refused;
  }
  EXPECT_GT(refused, 0);
  auto snap = publisher->snapshot();
  EXPECT_TRUE(snap.spool_refusing);
  EXPECT_TRUE(publisher->refusing());
  EXPECT_EQ(snap.backlog + snap.held, 30u) << "nothing dropped";
  view->down = false;
  for (int i = 0; i < 300 && publisher->snapshot().held + publisher->snapshot().backlog > 0; ++i)
    std::this_thread::sleep_for(10ms);
  snap = publisher->snapshot();
  EXPECT_FALSE(snap.spool_refusing);
  EXPECT_FALSE(publisher->refusing());
  EXPECT_EQ(snap.held, 0u);
  EXPECT_EQ(snap.backlog, 0u);
  const auto ids = view->ids();
  EXPECT_EQ(ids, sent) << "every event, in publish order";
}

TEST_F(PublisherTest, shutdown_leaves_undelivered_events_spooled_for_the_next_start) {
  std::vector<Envelope> sent;
  {
    auto sink = std::make_unique<SwitchSink>();
    sink->down = true;
    auto publisher = Publisher::start(spool(), std::move(sink), fast());
    for (int i = 0; i < 12; ++i) {
      sent.push_back(event(1, i));
      ASSERT_TRUE(publisher->publish(sent.back()));
    }
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(publisher->shutdown(150ms), 12u);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s) << "the deadline bounds the flush";
  }
  auto sink = std::make_unique<SwitchSink>();
  auto* view = sink.get();
  auto publisher = Publisher::start(spool(), std::move(sink), fast());
  EXPECT_EQ(publisher->shutdown(5s), 0u);
  const auto ids = view->ids();
  ASSERT_EQ(ids.size(), sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(ids[i], sent[i].id);
    EXPECT_EQ(view->payload(ids[i]), serialize(sent[i])) << "same id, timestamp and content";
  }
}

TEST_F(PublisherTest, one_spool_serves_one_process_and_bad_sink_names_are_errors) {
  auto first = spool();
  SpoolOptions options;
  options.path = tmp_.path() / "spool.jsonl";
  auto second = Spool::open(options);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().describe().find("in use by another"), std::string::npos)
      << second.error().describe();
  first.reset();
  EXPECT_TRUE(Spool::open(options)) << "the lock goes with the spool";

  std::string path;
  EXPECT_EQ(*parse_sink_kind("jsonl:/tmp/x.jsonl", &path), ResultsOptions::SinkKind::jsonl);
  EXPECT_EQ(path, "/tmp/x.jsonl");
  EXPECT_EQ(*parse_sink_kind("kafka", nullptr), ResultsOptions::SinkKind::kafka);
  auto bad = parse_sink_kind("kafak", nullptr);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().describe().find("kafak"), std::string::npos);
}

TEST_F(PublisherTest, open_results_puts_the_spool_beside_the_jsonl_file_and_names_bad_paths) {
  ResultsOptions options;
  options.jsonl_path = tmp_.path() / "events.jsonl";
  auto publisher = open_results(options);
  ASSERT_TRUE(publisher) << publisher.error().describe();
  ASSERT_TRUE((*publisher)->publish(event(0, 0)));
  EXPECT_EQ((*publisher)->shutdown(2s), 0u);
  EXPECT_TRUE(fs::exists(tmp_.path() / "events.jsonl.spool"));
  std::ifstream in(tmp_.path() / "events.jsonl");
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_TRUE(parse_envelope(line));

  options.jsonl_path = "/proc/naap-no-such-dir/events.jsonl";
  options.spool_path = tmp_.path() / "other.spool";
  auto bad = open_results(options);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().describe().find("/proc/naap-no-such-dir"), std::string::npos)
      << bad.error().describe();
}

}  // namespace
}  // namespace naap::reports
