// Trickle publisher, subscriber and JSON channel helpers against our trickle server (real
// sockets on loopback) and, for faults the server cannot produce, a scripted raw peer.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>

#include "naap/core/pattern.hpp"
#include "naap/core/sha256.hpp"
#include "naap/transport/segment_pump.hpp"
#include "naap/transport/trickle_json.hpp"
#include "naap/transport/trickle_publisher.hpp"
#include "naap/transport/trickle_subscriber.hpp"
#include "naap/transport/trickle_url.hpp"
#include "test_support.hpp"

namespace naap::trickle {
namespace {

using namespace std::chrono_literals;

std::string payload(std::int64_t seq, std::size_t size) {
  std::string s(size, '\0');
  fill_pattern(static_cast<std::uint64_t>(seq) + 100, 0, s);
  return s;
}

// Records what a subscriber delivers.
struct Reader {
  std::map<std::int64_t, std::string> segments;  // seq -> body (complete segments)
  std::vector<std::int64_t> order;               // seqs in delivery order
  std::vector<SegmentHead> heads;
  std::string current;
  std::optional<SubscriberEnd> end;
  std::optional<Error> end_error;
  int cut = 0;
  SubscriberCallbacks callbacks() {
    SubscriberCallbacks cb;
    cb.on_segment_start = [this](const SegmentHead& h) {
      heads.push_back(h);
      current.clear();
    };
    cb.on_data = [this](std::int64_t, std::string_view b) { current.append(b); };
    cb.on_segment_end = [this](const SegmentEnd& e) {
      if (e.complete) {
        segments[e.seq] = current;
        order.push_back(e.seq);
      } else {
        ++cut;
      }
    };
    cb.on_end = [this](SubscriberEnd how, const std::optional<Error>& e) {
      end = how;
      end_error = e;
    };
    return cb;
  }
};

// Records what a publisher reports.
struct Writer {
  std::vector<SegmentOutcome> outcomes;
  std::optional<PublisherEnd> end;
  std::optional<Error> end_error;
  std::optional<std::int64_t> ready_seq;
  PublisherCallbacks callbacks() {
    PublisherCallbacks cb;
    cb.on_ready = [this](std::int64_t s) { ready_seq = s; };
    cb.on_segment = [this](const SegmentOutcome& o) { outcomes.push_back(o); };
    cb.on_end = [this](PublisherEnd how, const std::optional<Error>& e) {
      end = how;
      end_error = e;
    };
    return cb;
  }
  int completed() const {
    return static_cast<int>(
        std::count_if(outcomes.begin(), outcomes.end(), [](auto& o) { return o.complete; }));
  }
};

class TrickleClient : public ::testing::Test {
 protected:
  boost::asio::io_context io_;
  http::Engine engine_{io_};

  std::shared_ptr<TricklePublisher> publisher(const std::string& url, Writer& w,
                                              PublisherOptions o = {}) {
    auto p = TricklePublisher::create(engine_, url, o, w.callbacks());
    EXPECT_TRUE(p.has_value()) << (p ? "" : p.error().describe());
    return *p;
  }
  std::shared_ptr<TrickleSubscriber> subscriber(const std::string& url, Reader& r,
                                                SubscriberOptions o = {}) {
    auto s = TrickleSubscriber::create(engine_, url, o, r.callbacks());
    EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().describe());
    return *s;
  }
  // Writes one whole segment and finishes it.
  std::int64_t publish_one(TricklePublisher& pub, std::string_view body) {
    auto w = pub.next_segment();
    EXPECT_NE(w, nullptr);
    if (!w) return -1;
    w->write(body);
    w->finish();
    return w->seq();
  }
};

TEST_F(TrickleClient, publisher_from_seq_0_and_subscriber_deliver_every_segment_intact) {
  test::ServerThread server;
  server.create_channel("s1");
  Writer w;
  Reader r;
  auto sub = subscriber(server.channel_url("s1"), r, {.start_seq = 0});
  auto pub = publisher(server.channel_url("s1"), w);
  sub->start();
  pub->start();
  ASSERT_TRUE(w.ready_seq.has_value());
  EXPECT_EQ(*w.ready_seq, 0);
  for (int i = 0; i < 12; ++i) {
    publish_one(*pub, payload(i, 40'000 + i));
    ASSERT_TRUE(test::run_until(io_, [&] { return r.segments.size() == std::size_t(i) + 1; }))
        << "segment " << i;
  }
  ASSERT_TRUE(test::run_until(io_, [&] { return w.completed() == 12; }));
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(Sha256::hex(r.segments[i]), Sha256::hex(payload(i, 40'000 + i))) << i;
  }
  EXPECT_EQ(r.order, (std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  EXPECT_EQ(pub->in_flight(), 0u);
  pub->close();
  ASSERT_TRUE(test::run_until(io_, [&] { return w.end && r.end; }));
  EXPECT_EQ(*w.end, PublisherEnd::closed_by_us);
  EXPECT_TRUE(*r.end == SubscriberEnd::channel_closed ||
              *r.end == SubscriberEnd::channel_not_found);
  EXPECT_FALSE(server.has_channel("s1")) << "close() sends DELETE {ch}";
}

TEST_F(TrickleClient, next_post_is_preconnected_so_readers_of_the_next_seq_wait_instead_of_470) {
  test::ServerThread server;
  server.create_channel("pre");
  Writer w;
  auto pub = publisher(server.channel_url("pre"), w);
  pub->start();
  auto seg0 = pub->next_segment();  // preconnects the POST for seq 1
  seg0->write("zero");
  test::run_for(io_, 200ms);
  // nextWrite is 1 now; seq 2 would be "future" (470) unless its slot is already open.
  Reader r;
  auto sub = subscriber(server.channel_url("pre"), r, {.start_seq = 1});
  sub->start();
  test::run_for(io_, 300ms);
  EXPECT_EQ(sub->stats().ahead_waits, 0u) << "seq 1 is preconnected: the GET must wait";
  seg0->finish();
  publish_one(*pub, "one");
  ASSERT_TRUE(test::run_until(io_, [&] { return r.segments.count(1) == 1; }));
  EXPECT_EQ(r.segments[1], "one");
  EXPECT_EQ(server.stats().segments_started, 2u);
}

TEST_F(TrickleClient, join_via_next_with_reset_continues_after_the_last_seq) {
  test::ServerThread server;
  server.create_channel("join");
  Writer w1;
  auto first = publisher(server.channel_url("join"), w1);
  first->start();
  for (int i = 0; i < 7; ++i) publish_one(*first, "x" + std::to_string(i));
  ASSERT_TRUE(test::run_until(io_, [&] { return w1.completed() == 7; }));
  Writer w2;
  auto second =
      publisher(server.channel_url("join"), w2, {.start_seq = std::nullopt, .reset = true});
  second->start();
  ASSERT_TRUE(test::run_until(io_, [&] { return w2.ready_seq.has_value(); }));
  EXPECT_EQ(*w2.ready_seq, 7);
  EXPECT_EQ(publish_one(*second, "joined"), 7);
  ASSERT_TRUE(test::run_until(io_, [&] { return w2.completed() == 1; }));
  EXPECT_EQ(server.next_write("join"), 8);
}

TEST_F(TrickleClient, join_against_a_server_without_next_fails_with_advice) {
  ServerOptions legacy;
  legacy.support_next = false;
  test::ServerThread server(legacy);
  server.create_channel("old");
  Writer w;
  auto pub = publisher(server.channel_url("old"), w, {.start_seq = std::nullopt});
  pub->start();
  ASSERT_TRUE(test::run_until(io_, [&] { return w.end.has_value(); }));
  EXPECT_EQ(*w.end, PublisherEnd::failed);
  ASSERT_TRUE(w.end_error);
  EXPECT_NE(w.end_error->message.find("explicit start seq"), std::string::npos);
  EXPECT_EQ(w.end_error->get("status"), "400");
}

TEST_F(TrickleClient, idle_post_survives_repeated_100_continue_keepalives) {
  ServerOptions so;
  so.keepalive_interval = 100ms;
  test::ServerThread server(so);
  server.create_channel("idle");
  Writer w;
  Reader r;
  auto pub = publisher(server.channel_url("idle"), w);
  auto sub = subscriber(server.channel_url("idle"), r, {.start_seq = 0});
  pub->start();
  sub->start();
  auto seg = pub->next_segment();
  test::run_for(io_, 650ms);  // no byte yet: the server sends 100 Continue every 100 ms
  EXPECT_GE(pub->stats().interim_responses, 4u);
  seg->write("late but fine");
  seg->finish();
  ASSERT_TRUE(test::run_until(io_, [&] { return r.segments.count(0) == 1; }));
  EXPECT_EQ(r.segments[0], "late but fine");
  ASSERT_TRUE(test::run_until(io_, [&] { return w.completed() == 1; }));
  EXPECT_EQ(w.outcomes[0].attempts, 1);
}

// A peer that drops the first POST for seq 0 before reading any body byte, then accepts.
TEST_F(TrickleClient, segment_with_no_byte_sent_is_retried_on_the_same_seq) {
  std::atomic<int> posts_for_0{0};
  std::string accepted_body;
  std::mutex mu;
  test::RawServer peer([&](int fd, const std::string& head) {
    if (head.starts_with("POST /ai/trickle/r/0 ")) {
      if (++posts_for_0 == 1) {
        std::this_thread::sleep_for(150ms);  // the writer attaches, writes nothing yet
        test::arm_reset(fd);
        return;
      }
      std::string body = test::body_until(fd, head, "0\r\n\r\n");
      {
        std::lock_guard l(mu);
        accepted_body = body;
      }
      test::send_all(fd, "HTTP/1.1 200 OK\r\nLp-Trickle-Seq: 0\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    test::recv_until(fd, "never", 3000);  // preconnect for seq 1: hold it
  });
  Writer w;
  auto pub = publisher(peer.url("/ai/trickle/r"), w, {.retry_delay = 50ms});
  pub->start();
  auto seg = pub->next_segment();
  test::run_for(io_, 250ms);  // the first POST fails while no byte was written
  seg->write("retried payload");
  seg->finish();
  ASSERT_TRUE(test::run_until(io_, [&] { return !w.outcomes.empty(); }));
  EXPECT_TRUE(w.outcomes[0].complete)
      << (w.outcomes[0].error ? w.outcomes[0].error->describe() : "");
  EXPECT_EQ(w.outcomes[0].attempts, 2);
  EXPECT_EQ(posts_for_0.load(), 2);
  std::lock_guard l(mu);
  EXPECT_NE(accepted_body.find("retried payload"), std::string::npos);
  EXPECT_EQ(pub->stats().retries, 1u);
}

// A peer that resets the POST for seq 0 after part of the body: the publisher must DELETE the
// segment (releasing its readers) and continue with seq 1, never re-POSTing seq 0.
TEST_F(TrickleClient, mid_segment_failure_deletes_the_segment_and_moves_on) {
  std::mutex mu;
  std::vector<std::string> lines;
  test::RawServer peer([&](int fd, const std::string& head) {
    std::string line = head.substr(0, head.find("\r\n"));
    {
      std::lock_guard l(mu);
      lines.push_back(line);
    }
    if (line.starts_with("POST /ai/trickle/m/0 ")) {
      test::body_until(fd, head, "first-part");
      test::arm_reset(fd);
      return;
    }
    if (line.starts_with("DELETE ")) {
      test::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    if (line.starts_with("POST /ai/trickle/m/1 ")) {
      test::body_until(fd, head, "0\r\n\r\n");
      test::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    test::recv_until(fd, "never", 3000);
  });
  Writer w;
  auto pub = publisher(peer.url("/ai/trickle/m"), w);
  pub->start();
  auto seg0 = pub->next_segment();
  seg0->write("first-part");
  ASSERT_TRUE(test::run_until(io_, [&] { return !w.outcomes.empty(); }));
  EXPECT_FALSE(w.outcomes[0].complete);
  EXPECT_TRUE(w.outcomes[0].deleted);
  EXPECT_EQ(w.outcomes[0].error->get("seq"), "0");
  EXPECT_FALSE(seg0->write("more")) << "the rest of a failed segment is dropped";
  EXPECT_EQ(publish_one(*pub, "second"), 1);
  ASSERT_TRUE(test::run_until(io_, [&] { return w.outcomes.size() == 2; }));
  EXPECT_TRUE(w.outcomes[1].complete);
  std::lock_guard l(mu);
  EXPECT_EQ(std::count(lines.begin(), lines.end(), "DELETE /ai/trickle/m/0 HTTP/1.1"), 1);
  EXPECT_EQ(std::count_if(lines.begin(), lines.end(),
                          [](auto& s) { return s.starts_with("POST /ai/trickle/m/0 "); }),
            1)
      << "seq 0 must never be POSTed twice after bytes were sent";
  EXPECT_EQ(pub->stats().deletes_sent, 1u);
}

// A peer that reads bodies but never answers: finished segments stay in flight, which is what
// go-livepeer's swap rule (>= 3 in flight) watches.
TEST_F(TrickleClient, in_flight_counts_segments_awaiting_the_server) {
  test::RawServer peer([&](int fd, const std::string& head) {
    if (head.starts_with("DELETE ")) {
      test::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    test::recv_until(fd, "never", 4000);
  });
  Writer w;
  auto pub = publisher(peer.url("/ai/trickle/slow"), w, {.close_timeout = 300ms});
  pub->start();
  EXPECT_EQ(pub->in_flight(), 0u);
  for (int i = 0; i < 3; ++i) publish_one(*pub, "segment");
  test::run_for(io_, 200ms);
  EXPECT_EQ(pub->in_flight(), 3u);
  pub->close();  // waits close_timeout for them, then gives up and deletes the channel
  ASSERT_TRUE(test::run_until(
      io_, [&] { return w.end.has_value(); }, 10s));
  EXPECT_EQ(w.outcomes.size(), 3u);
  EXPECT_EQ(w.completed(), 0);
  EXPECT_EQ(pub->in_flight(), 0u);
}

// The POST for seq N takes the server's ring slot of seq N-5. While our segment N-5 is still
// unanswered (uploading), opening N would make the server close it and drop its remaining bytes,
// so the publisher holds the POST for N until N-5 is answered.
TEST_F(TrickleClient, never_opens_a_post_whose_ring_slot_holds_an_unanswered_segment) {
  std::atomic<bool> release_zero{false};
  test::RawServer peer([&](int fd, const std::string& head) {
    if (head.starts_with("DELETE ")) {
      test::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    test::body_until(fd, head, "0\r\n\r\n", 10'000);
    if (head.starts_with("POST /ai/trickle/ring/0 ")) {
      while (!release_zero) std::this_thread::sleep_for(5ms);
    }
    test::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  });
  auto opened = [&](int seq) {
    const std::string want = "POST /ai/trickle/ring/" + std::to_string(seq) + " HTTP/1.1";
    auto lines = peer.request_lines();
    return std::find(lines.begin(), lines.end(), want) != lines.end();
  };
  Writer w;
  auto pub = publisher(peer.url("/ai/trickle/ring"), w);
  pub->start();
  for (int i = 0; i < 4; ++i) publish_one(*pub, "seg" + std::to_string(i));
  ASSERT_TRUE(test::run_until(io_, [&] { return w.completed() == 3; }));  // 1, 2, 3 answered
  auto five_writer = pub->next_segment();  // seq 4; the preconnect would be seq 5
  ASSERT_EQ(five_writer->seq(), 4);
  five_writer->write("seg4");
  five_writer->finish();
  test::run_for(io_, 300ms);
  EXPECT_TRUE(opened(4));
  EXPECT_FALSE(opened(5)) << "seq 5 would take seq 0's slot while 0 is unanswered";
  EXPECT_EQ(pub->stats().slot_waits, 1u);
  release_zero = true;
  ASSERT_TRUE(test::run_until(io_, [&] { return w.completed() == 5 && opened(5); }));
  EXPECT_EQ(publish_one(*pub, "seg5"), 5);
  ASSERT_TRUE(test::run_until(io_, [&] { return w.completed() == 6; }));
}

TEST_F(TrickleClient, publisher_to_a_missing_channel_ends_with_not_found) {
  test::ServerThread server;
  Writer w;
  auto pub = publisher(server.channel_url("nope"), w);
  pub->start();
  auto seg = pub->next_segment();
  if (seg) seg->write("x");
  ASSERT_TRUE(test::run_until(io_, [&] { return w.end.has_value(); }));
  EXPECT_EQ(*w.end, PublisherEnd::channel_not_found);
  EXPECT_FALSE(w.end_error->get("url").empty());
}

TEST_F(TrickleClient, subscriber_at_minus_2_reads_the_current_segment_from_its_first_byte) {
  test::ServerThread server;
  server.create_channel("cur");
  Writer w;
  auto pub = publisher(server.channel_url("cur"), w);
  pub->start();
  publish_one(*pub, "zero");
  auto seg1 = pub->next_segment();
  seg1->write("one-start|");
  test::run_for(io_, 150ms);
  Reader at_current, at_next;
  auto s2 = subscriber(server.channel_url("cur"), at_current, {.start_seq = k_seq_current});
  auto s1 = subscriber(server.channel_url("cur"), at_next, {.start_seq = k_seq_next});
  s2->start();
  s1->start();
  test::run_for(io_, 150ms);
  seg1->write("one-end");
  seg1->finish();
  publish_one(*pub, "two");
  ASSERT_TRUE(test::run_until(
      io_, [&] { return at_current.segments.count(2) == 1 && at_next.segments.count(2) == 1; }));
  EXPECT_EQ(at_current.order.front(), 1);
  EXPECT_EQ(at_current.segments[1], "one-start|one-end") << "from the segment's first byte";
  EXPECT_EQ(at_next.order.front(), 2) << "-1 joins at the next segment";
  EXPECT_EQ(at_current.heads.front().requested, k_seq_current);
  EXPECT_EQ(at_current.heads.front().seq, 1);
}

TEST_F(TrickleClient, subscriber_behind_the_ring_jumps_to_latest) {
  test::ServerThread server;
  server.create_channel("evict");
  Writer w;
  auto pub = publisher(server.channel_url("evict"), w);
  pub->start();
  for (int i = 0; i < 9; ++i) publish_one(*pub, payload(i, 1000));
  ASSERT_TRUE(test::run_until(io_, [&] { return w.completed() == 9; }));
  Reader r;
  auto sub = subscriber(server.channel_url("evict"), r, {.start_seq = 1});  // evicted
  sub->start();
  test::run_for(io_, 200ms);
  publish_one(*pub, payload(9, 1000));
  ASSERT_TRUE(test::run_until(io_, [&] { return r.segments.count(9) == 1; }));
  EXPECT_EQ(sub->stats().jumps, 1u);
  EXPECT_EQ(sub->stats().skipped_segments, 8u);  // 1 → 9 (nextWrite)
  EXPECT_EQ(r.order.front(), 9);
  EXPECT_EQ(r.segments[9], payload(9, 1000));
}

TEST_F(TrickleClient, subscriber_ahead_of_the_writer_waits_and_retries) {
  test::ServerThread server;
  server.create_channel("ahead");
  Reader r;
  auto sub = subscriber(server.channel_url("ahead"), r, {.start_seq = 3, .ahead_wait = 50ms});
  sub->start();
  test::run_for(io_, 300ms);
  EXPECT_GE(sub->stats().ahead_waits, 2u);
  EXPECT_EQ(sub->stats().errors, 0u) << "being ahead is not an error";
  Writer w;
  auto pub = publisher(server.channel_url("ahead"), w);
  pub->start();
  for (int i = 0; i < 4; ++i) publish_one(*pub, "s" + std::to_string(i));
  ASSERT_TRUE(test::run_until(io_, [&] { return r.segments.count(3) == 1; }));
  EXPECT_EQ(r.order.front(), 3);
  EXPECT_EQ(r.segments[3], "s3");
}

TEST_F(TrickleClient, empty_segments_are_delivered_and_passed_over) {
  test::ServerThread server;
  server.create_channel("empty");
  Writer w;
  Reader r;
  auto pub = publisher(server.channel_url("empty"), w);
  auto sub = subscriber(server.channel_url("empty"), r, {.start_seq = 0});
  pub->start();
  sub->start();
  publish_one(*pub, "a");
  publish_one(*pub, "");
  publish_one(*pub, "c");
  ASSERT_TRUE(test::run_until(io_, [&] { return r.segments.count(2) == 1; }));
  EXPECT_EQ(r.segments[0], "a");
  EXPECT_EQ(r.segments[1], "");
  EXPECT_EQ(r.segments[2], "c");
  EXPECT_EQ(sub->stats().empty_segments, 1u);
}

TEST_F(TrickleClient, closed_channel_and_missing_channel_are_distinct_ends) {
  test::ServerThread server;
  server.create_channel("bye");
  Reader waiting, missing;
  auto a = subscriber(server.channel_url("bye"), waiting, {.start_seq = 0});
  auto b = subscriber(server.channel_url("never-created"), missing, {.start_seq = 0});
  a->start();
  b->start();
  ASSERT_TRUE(test::run_until(io_, [&] { return missing.end.has_value(); }));
  EXPECT_EQ(*missing.end, SubscriberEnd::channel_not_found);
  test::run_for(io_, 100ms);
  Writer w;
  auto pub = publisher(server.channel_url("bye"), w);
  pub->start();
  pub->close();  // DELETE {ch} while the subscriber waits for seq 0
  ASSERT_TRUE(test::run_until(io_, [&] { return waiting.end.has_value(); }));
  EXPECT_EQ(*waiting.end, SubscriberEnd::channel_closed);
}

TEST_F(TrickleClient, pending_get_is_reissued_after_the_refresh_interval) {
  test::ServerThread server;
  server.create_channel("quiet");
  Reader r;
  auto sub = subscriber(server.channel_url("quiet"), r, {.start_seq = 0, .pending_refresh = 150ms});
  sub->start();
  test::run_for(io_, 700ms);
  EXPECT_GE(sub->stats().refreshes, 3u);
  EXPECT_EQ(sub->stats().errors, 0u);
  Writer w;
  auto pub = publisher(server.channel_url("quiet"), w);
  pub->start();
  publish_one(*pub, "finally");
  ASSERT_TRUE(test::run_until(io_, [&] { return r.segments.count(0) == 1; }));
  EXPECT_EQ(r.segments[0], "finally");
}

TEST_F(TrickleClient, subscriber_gives_up_after_five_consecutive_errors) {
  std::atomic<int> requests{0};
  test::RawServer peer([&](int fd, const std::string&) {
    ++requests;
    test::send_all(fd, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom");
  });
  Reader r;
  auto sub = subscriber(peer.url("/ai/trickle/err"), r, {.start_seq = 0, .retry_delay = 20ms});
  sub->start();
  ASSERT_TRUE(test::run_until(io_, [&] { return r.end.has_value(); }));
  EXPECT_EQ(*r.end, SubscriberEnd::too_many_errors);
  EXPECT_EQ(requests.load(), 5);
  ASSERT_TRUE(r.end_error);
  EXPECT_EQ(r.end_error->get("status"), "500");
  EXPECT_EQ(r.end_error->get("seq"), "0");
  EXPECT_EQ(r.end_error->get("url"), peer.url("/ai/trickle/err/0"));
}

TEST_F(TrickleClient, garbage_seq_headers_count_as_errors_naming_url_and_seq) {
  test::RawServer peer([&](int fd, const std::string&) {
    test::send_all(fd, "HTTP/1.1 200 OK\r\nLp-Trickle-Seq: twelve\r\nContent-Length: 1\r\n\r\nx");
  });
  Reader r;
  auto sub = subscriber(peer.url("/ai/trickle/junk"), r, {.start_seq = -1, .retry_delay = 10ms});
  sub->start();
  ASSERT_TRUE(test::run_until(io_, [&] { return r.end.has_value(); }));
  EXPECT_EQ(*r.end, SubscriberEnd::too_many_errors);
  EXPECT_TRUE(r.segments.empty());
  EXPECT_EQ(r.end_error->category, ErrorCategory::protocol);
  EXPECT_EQ(r.end_error->get("value"), "twelve");
  EXPECT_EQ(r.end_error->get("seq"), "-1");
}

TEST_F(TrickleClient, segment_cut_by_a_reset_is_reported_and_the_stream_continues) {
  std::atomic<int> n{0};
  test::RawServer peer([&](int fd, const std::string& head) {
    if (head.starts_with("GET /ai/trickle/cut/0 ")) {
      ++n;
      test::send_all(fd,
                     "HTTP/1.1 200 OK\r\nLp-Trickle-Seq: 0\r\nTransfer-Encoding: chunked"
                     "\r\n\r\n5\r\nhello\r\n");
      std::this_thread::sleep_for(30ms);
      test::arm_reset(fd);
      return;
    }
    if (head.starts_with("GET /ai/trickle/cut/1 ")) {
      test::send_all(fd, "HTTP/1.1 200 OK\r\nLp-Trickle-Seq: 1\r\nContent-Length: 4\r\n\r\nnext");
      return;
    }
    test::send_all(fd,
                   "HTTP/1.1 200 OK\r\nLp-Trickle-Closed: terminated\r\nContent-Length: "
                   "15\r\n\r\nEntry not found");
  });
  Reader r;
  auto sub = subscriber(peer.url("/ai/trickle/cut"), r, {.start_seq = 0});
  sub->start();
  ASSERT_TRUE(test::run_until(io_, [&] { return r.end.has_value(); }));
  EXPECT_EQ(r.cut, 1);
  EXPECT_EQ(r.segments.count(0), 0u);
  EXPECT_EQ(r.segments[1], "next");
  EXPECT_EQ(*r.end, SubscriberEnd::channel_closed);
  EXPECT_EQ(n.load(), 1) << "a cut segment is not re-read";
}

TEST_F(TrickleClient, invalid_urls_and_seqs_are_rejected_at_creation) {
  Writer w;
  Reader r;
  for (std::string bad : {"", "not a url", "ftp://h/ai/trickle/x", "http://h/ai/trickle/x/",
                          "http://h/", "http://h/ai/trickle/x?q=1"}) {
    auto p = TricklePublisher::create(engine_, bad, {}, w.callbacks());
    ASSERT_FALSE(p.has_value()) << bad;
    EXPECT_EQ(p.error().category, ErrorCategory::config);
    EXPECT_EQ(p.error().get("url"), bad);
  }
  auto s = TrickleSubscriber::create(engine_, "http://127.0.0.1:1/ai/trickle/x", {.start_seq = -3},
                                     r.callbacks());
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().get("seq"), "-3");
  auto p = TricklePublisher::create(engine_, "http://127.0.0.1:1/ai/trickle/x", {.start_seq = -1},
                                    w.callbacks());
  ASSERT_FALSE(p.has_value());
}

TEST_F(TrickleClient, control_writer_and_events_reader_carry_one_document_per_segment) {
  test::ServerThread server;
  server.create_channel("ev", "application/json");
  auto writer = ControlWriter::create(engine_, server.channel_url("ev"), {});
  ASSERT_TRUE(writer.has_value());
  std::vector<ChannelEvent> events;
  std::vector<Error> bad;
  EventsCallbacks cb;
  cb.on_event = [&](const ChannelEvent& e) { events.push_back(e); };
  cb.on_bad_segment = [&](std::int64_t, const Error& e) { bad.push_back(e); };
  auto reader = EventsReader::create(engine_, server.channel_url("ev"), {.start_seq = 0}, cb);
  ASSERT_TRUE(reader.has_value());
  (*writer)->start();
  (*reader)->start();
  // Messages go out one at a time, each read before the next, as on a live job (control every
  // 10 s): a burst of more than four would push unread ones off the server's ring.
  auto delivered = [&](std::size_t n) {
    return test::run_until(io_, [&] { return events.size() + bad.size() == n; });
  };
  ASSERT_TRUE((*writer)->send({{"event", {{"type", "status"}, {"state", "ONLINE"}}},
                               {"queue_event_type", "ai_stream_events"}}));
  ASSERT_TRUE(delivered(1));
  ASSERT_TRUE((*writer)->send({{"type", "error"}, {"message", "oom"}}));
  ASSERT_TRUE(delivered(2));
  ASSERT_TRUE((*writer)->send_keepalive());
  ASSERT_TRUE(delivered(3));
  nlohmann::json huge = {{"prompt", std::string(40'000, 'p')}};
  auto too_big = (*writer)->send(huge);
  ASSERT_FALSE(too_big.has_value());
  EXPECT_EQ(too_big.error().get("max_bytes"), "32768");
  // A segment that is not JSON must not stop the reader.
  auto raw = (*writer)->publisher().next_segment();
  raw->write("{not json");
  raw->finish();
  ASSERT_TRUE(delivered(4));
  ASSERT_TRUE((*writer)->send({{"type", "restart"}}));
  ASSERT_TRUE(delivered(5));
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].type, "status");
  EXPECT_EQ(events[0].queue_event_type, "ai_stream_events");
  EXPECT_EQ(events[0].event["state"], "ONLINE");
  EXPECT_EQ(events[1].type, "error");
  EXPECT_FALSE(events[1].queue_event_type.has_value());
  EXPECT_EQ(events[2].event["keep"], "alive");
  EXPECT_EQ(events[3].type, "restart");
  EXPECT_EQ(events[3].seq, 4);
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(bad[0].get("seq"), "3");
  EXPECT_EQ(bad[0].category, ErrorCategory::runner);
}

TEST(TrickleUrl, strict_seq_parsing) {
  EXPECT_EQ(*parse_seq("0"), 0);
  EXPECT_EQ(*parse_seq("-2"), -2);
  EXPECT_EQ(*parse_seq("123456789012"), 123456789012);
  for (std::string_view bad : {"", " 1", "1 ", "1a", "twelve", "+1", "0x10"}) {
    EXPECT_FALSE(parse_seq(bad).has_value()) << bad;
  }
  EXPECT_EQ(segment_url("http://h/ai/trickle/a", 7), "http://h/ai/trickle/a/7");
}

}  // namespace
}  // namespace naap::trickle
