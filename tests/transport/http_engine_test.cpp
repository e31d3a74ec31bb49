// HTTP engine: streaming both ways, concurrency on one thread, timings, cancellation, timeouts,
// TLS policies and every malformed-peer case, against real sockets on loopback.
#include "naap/transport/http_engine.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <latch>
#include <thread>

#include "naap/core/sha256.hpp"
#include "test_support.hpp"

namespace naap::http {
namespace {

using namespace std::chrono_literals;
using test::RawServer;

std::string chunk(std::string_view data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return std::string(size) + std::string(data) + "\r\n";
}

// Collects everything a transfer reports.
struct Sink {
  std::optional<ResponseHead> head;
  std::vector<std::string> pieces;
  std::optional<Outcome> outcome;
  int interim = 0;
  Handlers handlers() {
    Handlers h;
    h.on_head = [this](const ResponseHead& r) { head = r; };
    h.on_data = [this](std::string_view p) {
      pieces.emplace_back(p);
      return DataAction::proceed;
    };
    h.on_interim = [this](int) { ++interim; };
    h.on_complete = [this](const Outcome& o) { outcome = o; };
    return h;
  }
  std::string body() const {
    std::string b;
    for (const auto& p : pieces) b += p;
    return b;
  }
};

TEST(HttpEngine, delivers_response_body_pieces_as_they_arrive) {
  std::latch first_seen(1);
  RawServer server([&](int fd, const std::string&) {
    test::send_all(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk("first"));
    first_seen.wait();  // the second piece is sent only after the client saw the first
    test::send_all(fd, chunk("second") + "0\r\n\r\n");
  });
  boost::asio::io_context io;
  Engine engine(io);
  Sink sink;
  Handlers h = sink.handlers();
  h.on_data = [&](std::string_view p) {
    sink.pieces.emplace_back(p);
    if (sink.body() == "first") first_seen.count_down();
    return DataAction::proceed;
  };
  engine.start(Request{.url = server.url("/stream")}, std::move(h));
  ASSERT_TRUE(test::run_until(io, [&] { return sink.outcome.has_value(); }));
  EXPECT_TRUE(sink.outcome->ok());
  EXPECT_EQ(sink.outcome->status, 200);
  EXPECT_EQ(sink.body(), "firstsecond");
  EXPECT_GE(sink.pieces.size(), 2u);
}

TEST(HttpEngine, streams_a_chunked_upload_fed_incrementally) {
  std::latch got_first(1);
  std::string received;
  RawServer server([&](int fd, const std::string& head) {
    EXPECT_NE(head.find("Transfer-Encoding: chunked"), std::string::npos) << head;
    EXPECT_EQ(head.find("Expect:"), std::string::npos) << "Expect: 100-continue must be off";
    std::string body = test::body_until(fd, head, "hello");
    if (body.find("hello") != std::string::npos) got_first.count_down();
    if (body.find("0\r\n\r\n") == std::string::npos) body += test::recv_until(fd, "0\r\n\r\n");
    received = body;
    test::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  });
  boost::asio::io_context io;
  Engine engine(io);
  auto body = std::make_shared<BodyStream>();
  Sink sink;
  engine.start(Request{.method = "POST", .url = server.url("/up"), .stream_body = body},
               sink.handlers());
  body->write("hello");
  // Wait until the server saw the first piece while the body is still open.
  std::atomic<bool> first{false};
  std::thread waiter([&] {
    got_first.wait();
    first = true;
  });
  ASSERT_TRUE(test::run_until(io, [&] { return first.load(); }));
  waiter.join();
  body->write(" world");
  body->finish();
  ASSERT_TRUE(test::run_until(io, [&] { return sink.outcome.has_value(); }));
  EXPECT_TRUE(sink.outcome->ok()) << (sink.outcome->error ? sink.outcome->error->describe() : "");
  EXPECT_EQ(sink.body(), "ok");
  EXPECT_EQ(sink.outcome->bytes_sent, 11u);
  EXPECT_NE(received.find("5\r\nhello\r\n"), std::string::npos) << received;
  EXPECT_NE(received.find("6\r\n world\r\n"), std::string::npos) << received;
}

TEST(HttpEngine, runs_hundreds_of_concurrent_requests_on_one_thread) {
  constexpr int k_requests = 300;
  std::atomic<int> open{0}, peak{0};
  std::latch all_open(k_requests);
  RawServer server([&](int fd, const std::string&) {
    int now = ++open;
    int p = peak.load();
    while (now > p && !peak.compare_exchange_weak(p, now)) {
    }
    all_open.count_down();
    all_open.wait();  // answer only once every request is open at the same time
    test::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx");
    --open;
  });
  boost::asio::io_context io;
  Engine engine(io);
  int done = 0, ok = 0;
  for (int i = 0; i < k_requests; ++i) {
    Handlers h;
    h.on_complete = [&](const Outcome& o) {
      ++done;
      if (o.ok() && o.status == 200) ++ok;
    };
    engine.start(Request{.url = server.url("/c" + std::to_string(i))}, std::move(h));
  }
  const auto caller = std::this_thread::get_id();
  std::thread::id loop_thread;
  boost::asio::post(io, [&] { loop_thread = std::this_thread::get_id(); });
  ASSERT_TRUE(test::run_until(
      io, [&] { return done == k_requests; }, 60s));
  EXPECT_EQ(ok, k_requests);
  EXPECT_EQ(peak.load(), k_requests) << "all requests must be in flight at once";
  EXPECT_EQ(loop_thread, caller) << "the engine runs on the caller's io thread only";
}

TEST(HttpEngine, reports_phase_timings_in_order) {
  RawServer server([&](int fd, const std::string&) {
    std::this_thread::sleep_for(50ms);
    test::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
  });
  boost::asio::io_context io;
  Engine engine(io);
  Sink sink;
  engine.start(Request{.url = server.url("/t"), .fresh_connection = true}, sink.handlers());
  ASSERT_TRUE(test::run_until(io, [&] { return sink.outcome.has_value(); }));
  const Timings& t = sink.outcome->timings;
  EXPECT_GT(t.connect_us, 0);
  EXPECT_LE(t.dns_us, t.connect_us);
  EXPECT_GE(t.first_byte_us, 50'000) << "first byte comes after the server's 50 ms delay";
  EXPECT_LE(t.first_byte_us, t.total_us);
}

TEST(HttpEngine, cancel_ends_a_pending_request_and_frees_the_connection) {
  std::atomic<bool> peer_saw_close{false};
  RawServer server([&](int fd, const std::string&) {
    // Never answers; waits for the client to go away.
    std::string rest = test::recv_until(fd, "never", 10000);
    peer_saw_close = true;
  });
  boost::asio::io_context io;
  Engine engine(io);
  Sink sink;
  auto t = engine.start(Request{.url = server.url("/hang")}, sink.handlers());
  test::run_for(io, 100ms);
  EXPECT_EQ(engine.active_transfers(), 1u);
  t->cancel();
  ASSERT_TRUE(test::run_until(io, [&] { return sink.outcome.has_value(); }));
  EXPECT_TRUE(sink.outcome->cancelled);
  EXPECT_FALSE(sink.outcome->error);
  EXPECT_EQ(engine.active_transfers(), 0u);
  ASSERT_TRUE(test::run_until(
      io, [&] { return peer_saw_close.load(); }, 5s));
}

TEST(HttpEngine, total_timeout_fails_with_a_retriable_network_error_naming_the_url) {
  RawServer server([&](int fd, const std::string&) { test::recv_until(fd, "never", 3000); });
  boost::asio::io_context io;
  Engine engine(io);
  Sink sink;
  engine.start(Request{.url = server.url("/slow"), .total_timeout = 200ms}, sink.handlers());
  ASSERT_TRUE(test::run_until(io, [&] { return sink.outcome.has_value(); }));
  ASSERT_TRUE(sink.outcome->error);
  EXPECT_EQ(sink.outcome->error->category, ErrorCategory::network);
  EXPECT_TRUE(sink.outcome->error->retriable);
  EXPECT_EQ(sink.outcome->error->get("url"), server.url("/slow"));
  EXPECT_NE(sink.outcome->error->message.find("timed out"), std::string::npos);
}

TEST(HttpEngine, connection_refused_is_a_network_error) {
  std::uint16_t port;
  {
    RawServer gone([](int, const std::string&) {});
    port = gone.port();
  }
  boost::asio::io_context io;
  Engine engine(io);
  Sink sink;
  std::string url = "http://127.0.0.1:" + std::to_string(port) + "/x";
  engine.start(Request{.url = url}, sink.handlers());
  ASSERT_TRUE(test::run_until(io, [&] { return sink.outcome.has_value(); }));
  ASSERT_TRUE(sink.outcome->error);
  EXPECT_EQ(sink.outcome->error->category, ErrorCategory::network);
  EXPECT_EQ(sink.outcome->error->get("url"), url);
}

TEST(HttpEngine, malformed_and_unsupported_urls_are_config_errors) {
  boost::asio::io_context io;
  Engine engine(io);
  for (std::string url : {"not a url", "ftp://127.0.0.1/x", "http://[::1/x", ""}) {
    Sink sink;
    engine.start(Request{.url = url}, sink.handlers());
    ASSERT_TRUE(test::run_until(io, [&] { return sink.outcome.has_value(); })) << url;
    ASSERT_TRUE(sink.outcome->error) << url;
    EXPECT_EQ(sink.outcome->error->category, ErrorCategory::config) << url;
    EXPECT_EQ(sink.outcome->error->get("url"), url);
  }
}

TEST(HttpEngine, server_reset_mid_body_fails_after_delivering_what_arrived) {
  RawServer server([&](int fd, const std::string&) {
    test::send_all(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk("partial"));
    std::this_thread::sleep_for(50ms);
    test::arm_reset(fd);
  });
  boost::asio::io_context io;
  Engine engine(io);
  Sink sink;
  engine.start(Request{.url = server.url("/reset")}, sink.handlers());
  ASSERT_TRUE(test::run_until(io, [&] { return sink.outcome.has_value(); }));
  ASSERT_TRUE(sink.outcome->error);
  EXPECT_EQ(sink.outcome->error->category, ErrorCategory::network);
  EXPECT_EQ(sink.outcome->status, 200);
  EXPECT_EQ(sink.body(), "partial");
  EXPECT_EQ(sink.outcome->error->get("status"), "200");
}

TEST(HttpEngine, oversized_response_headers_fail_cleanly) {
  RawServer server([&](int fd, const std::string&) {
    std::string big = "HTTP/1.1 200 OK\r\n";
    for (int i = 0; i < 2000; ++i)
      big += "X-Filler-" + std::to_string(i) + ": " + std::string(40, 'a') + "\r\n";
    test::send_all(fd, big + "Content-Length: 0\r\n\r\n");
  });
  boost::asio::io_context io;
  Engine engine(io);
  Sink sink;
  engine.start(Request{.url = server.url("/big")}, sink.handlers());
  ASSERT_TRUE(test::run_until(io, [&] { return sink.outcome.has_value(); }));
  ASSERT_TRUE(sink.outcome->error);
  EXPECT_EQ(sink.outcome->error->category, ErrorCategory::protocol);
  EXPECT_NE(sink.outcome->error->message.find("exceed"), std::string::npos);
  EXPECT_FALSE(sink.head.has_value());
}

TEST(HttpEngine, garbage_and_silent_peers_give_errors_not_hangs) {
  RawServer garbage([&](int fd, const std::string&) {
    test::send_all(fd, "HELLO THERE\r\n\x01\x02\x03\r\n\r\n");
  });
  RawServer silent([&](int, const std::string&) {});  // closes without a byte
  boost::asio::io_context io;
  Engine engine(io);
  Sink a, b;
  engine.start(Request{.url = garbage.url("/g")}, a.handlers());
  engine.start(Request{.url = silent.url("/s")}, b.handlers());
  ASSERT_TRUE(test::run_until(io, [&] { return a.outcome && b.outcome; }));
  ASSERT_TRUE(a.outcome->error);
  ASSERT_TRUE(b.outcome->error);
  EXPECT_EQ(b.outcome->error->category, ErrorCategory::network);
  EXPECT_FALSE(a.outcome->error->get("url").empty());
}

TEST(HttpEngine, tolerates_repeated_unsolicited_100_continue) {
  RawServer server([&](int fd, const std::string&) {
    for (int i = 0; i < 3; ++i) {
      test::send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n");
      std::this_thread::sleep_for(20ms);
    }
    test::recv_until(fd, "0\r\n\r\n");
    test::send_all(fd, "HTTP/1.1 200 OK\r\nLp-Trickle-Seq: 0\r\nContent-Length: 0\r\n\r\n");
  });
  boost::asio::io_context io;
  Engine engine(io);
  auto body = std::make_shared<BodyStream>();
  Sink sink;
  engine.start(Request{.method = "POST", .url = server.url("/ch/0"), .stream_body = body},
               sink.handlers());
  test::run_for(io, 150ms);  // the interim responses arrive while no body byte was sent
  body->write("payload");
  body->finish();
  ASSERT_TRUE(test::run_until(io, [&] { return sink.outcome.has_value(); }));
  EXPECT_TRUE(sink.outcome->ok());
  EXPECT_EQ(sink.interim, 3);
  ASSERT_TRUE(sink.head);
  EXPECT_EQ(sink.head->status, 200);
  ASSERT_NE(sink.head->header("lp-trickle-seq"), nullptr) << "lookup is case-insensitive";
  EXPECT_EQ(*sink.head->header("Lp-Trickle-Seq"), "0");
}

TEST(HttpEngine, receive_pause_holds_data_until_resumed) {
  RawServer server([&](int fd, const std::string&) {
    test::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabcdef");
  });
  boost::asio::io_context io;
  Engine engine(io);
  Sink sink;
  bool paused_once = false;
  Handlers h = sink.handlers();
  h.on_data = [&](std::string_view p) {
    if (!paused_once) {
      paused_once = true;
      return DataAction::pause;  // not consumed: delivered again after resume
    }
    sink.pieces.emplace_back(p);
    return DataAction::proceed;
  };
  auto t = engine.start(Request{.url = server.url("/p")}, std::move(h));
  test::run_for(io, 200ms);
  EXPECT_TRUE(paused_once);
  EXPECT_TRUE(sink.pieces.empty());
  EXPECT_FALSE(sink.outcome.has_value());
  t->resume_receive();
  ASSERT_TRUE(test::run_until(io, [&] { return sink.outcome.has_value(); }));
  EXPECT_EQ(sink.body(), "abcdef");
}

TEST(HttpEngine, tls_insecure_by_default_verify_rejects_self_signed_and_pin_on_first_use) {
  auto cert = test::make_self_signed_cert("engine");
  trickle::ServerOptions so;
  so.tls = test::server_tls(cert);
  so.autocreate = true;
  test::ServerThread server(so);
  server.create_channel("tls");
  const std::string url = server.channel_url("tls") + "/next";
  ASSERT_TRUE(url.starts_with("https://"));
  boost::asio::io_context io;
  Engine engine(io);

  Sink insecure;
  engine.start(Request{.url = url}, insecure.handlers());
  ASSERT_TRUE(test::run_until(io, [&] { return insecure.outcome.has_value(); }));
  EXPECT_TRUE(insecure.outcome->ok());
  EXPECT_EQ(insecure.outcome->status, 200);
  EXPECT_GT(insecure.outcome->timings.tls_us, 0);

  Sink verify;
  Request vr{.url = url};
  vr.tls.mode = TlsOptions::Mode::verify;
  engine.start(vr, verify.handlers());
  ASSERT_TRUE(test::run_until(io, [&] { return verify.outcome.has_value(); }));
  ASSERT_TRUE(verify.outcome->error);
  EXPECT_EQ(verify.outcome->error->category, ErrorCategory::tls);

  Sink verify_ca;
  Request vca{.url = url};
  vca.tls.mode = TlsOptions::Mode::verify;
  vca.tls.ca_file = cert.cert.string();
  engine.start(vca, verify_ca.handlers());
  ASSERT_TRUE(test::run_until(io, [&] { return verify_ca.outcome.has_value(); }));
  EXPECT_TRUE(verify_ca.outcome->ok()) << verify_ca.outcome->error->describe();

  auto pins = std::make_shared<PinStore>();
  for (int i = 0; i < 2; ++i) {  // first use learns the key, second requires it
    Sink pinned;
    Request pr{.url = url};
    pr.tls.mode = TlsOptions::Mode::pin;
    pr.tls.pins = pins;
    engine.start(pr, pinned.handlers());
    ASSERT_TRUE(test::run_until(io, [&] { return pinned.outcome.has_value(); }));
    EXPECT_TRUE(pinned.outcome->ok()) << "attempt " << i;
    EXPECT_EQ(pins->size(), 1u);
  }

  Sink wrong;
  Request wr{.url = url, .fresh_connection = true};
  wr.tls.mode = TlsOptions::Mode::pin;
  wr.tls.pinned_key = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  engine.start(wr, wrong.handlers());
  ASSERT_TRUE(test::run_until(io, [&] { return wrong.outcome.has_value(); }));
  ASSERT_TRUE(wrong.outcome->error);
  EXPECT_EQ(wrong.outcome->error->category, ErrorCategory::tls);
  EXPECT_NE(wrong.outcome->error->message.find("pinned"), std::string::npos);
  std::filesystem::remove_all(cert.dir);
}

}  // namespace
}  // namespace naap::http
