// `naap-loadtest selfcheck`: the transport end to end on loopback. An in-process trickle server,
// our publisher streaming synthetic segments and our subscriber reading them back; every
// segment's SHA-256 is compared and the throughput printed.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <cxxopts.hpp>
#include <map>

#include "commands.hpp"
#include "naap/core/clock.hpp"
#include "naap/core/log.hpp"
#include "naap/core/pattern.hpp"
#include "naap/core/sha256.hpp"
#include "naap/transport/http_engine.hpp"
#include "naap/transport/segment_pump.hpp"
#include "naap/transport/trickle_publisher.hpp"
#include "naap/transport/trickle_server.hpp"
#include "naap/transport/trickle_subscriber.hpp"

namespace naap::cli {

int run_selfcheck(int argc, char** argv) {
  namespace asio = boost::asio;
  cxxopts::Options options("naap-loadtest selfcheck",
                           "Publish and read back segments through an in-process trickle server");
  options.add_options()("segments", "segments to send", cxxopts::value<int>()->default_value("60"))(
      "size", "bytes per segment", cxxopts::value<std::uint64_t>()->default_value("1048576"))(
      "timeout-s", "give up after this long", cxxopts::value<int>()->default_value("60"))(
      "log-level", "debug|info|warn|error|off",
      cxxopts::value<std::string>()->default_value("warn"))("h,help", "show this help");
  cxxopts::ParseResult args;
  try {
    args = options.parse(argc, argv);
  } catch (const cxxopts::exceptions::exception& e) {
    std::fprintf(stderr, "selfcheck: %s\n", e.what());
    return k_exit_usage;
  }
  if (args.count("help")) {
    std::fputs(options.help().c_str(), stdout);
    return k_exit_ok;
  }
  log::Level level;
  if (log::parse_level(args["log-level"].as<std::string>(), level)) log::set_level(level);
  const int total = args["segments"].as<int>();
  const std::uint64_t size = args["size"].as<std::uint64_t>();
  if (total <= 0) {
    std::fprintf(stderr, "selfcheck: --segments must be positive\n");
    return k_exit_usage;
  }

  asio::io_context io;
  trickle::TrickleServer server(io, trickle::ServerOptions{});
  auto port = server.listen("127.0.0.1", 0);
  if (!port) {
    std::fprintf(stderr, "selfcheck: %s\n", port.error().describe().c_str());
    return k_exit_failed;
  }
  const std::string channel = "selfcheck-" + std::to_string(unix_millis_now());
  server.create_channel(channel, "video/MP2T");
  const std::string url = server.base_url() + channel;
  std::printf("selfcheck: trickle server on %s, %d segments of %llu bytes\n",
              server.base_url().c_str(), total, static_cast<unsigned long long>(size));

  http::Engine engine(io);
  std::map<std::int64_t, std::string> sent, received;
  int mismatches = 0;
  bool pub_closed = false;
  std::optional<trickle::SubscriberEnd> sub_end;
  Sha256 rx_hash;

  trickle::SubscriberOptions so;
  so.start_seq = 0;
  trickle::SubscriberCallbacks sc;
  sc.on_data = [&](std::int64_t, std::string_view bytes) { rx_hash.update(bytes); };
  std::function<void()> next;
  bool next_waiting = false;  // the publisher is held back by the window
  sc.on_segment_end = [&](const trickle::SegmentEnd& se) {
    if (se.complete) received[se.seq] = rx_hash.hex_digest();
    if (next_waiting) {
      next_waiting = false;
      next();
    }
  };
  sc.on_end = [&](trickle::SubscriberEnd how, const std::optional<Error>&) {
    sub_end = how;
    if (pub_closed) io.stop();
  };
  auto sub = trickle::TrickleSubscriber::create(engine, url, so, std::move(sc));

  std::shared_ptr<trickle::TricklePublisher> pub;
  int started = 0, finished = 0;
  // At most k_window segments ahead of the reader: the server keeps 5, so an unpaced publisher
  // would (correctly) push a slow reader off the ring. Media publishers are paced in real time.
  constexpr int k_window = 3;
  next = [&] {
    if (started >= total) return;
    if (started - static_cast<int>(received.size()) >= k_window) {
      next_waiting = true;
      return;
    }
    auto writer = pub->next_segment();
    if (!writer) return;
    ++started;
    const std::int64_t seq = writer->seq();
    auto h = std::make_shared<Sha256>();
    trickle::pump_segment(
        writer, trickle::PumpOptions{.total_bytes = size},
        [seq, h](std::uint64_t off, std::span<char> out) {
          fill_pattern(static_cast<std::uint64_t>(seq) + 1, off, out);
          h->update(std::string_view(out.data(), out.size()));
        },
        [&, seq, h](bool) {
          sent[seq] = h->hex_digest();
          if (started < total) next();
        });
  };
  trickle::PublisherCallbacks pc;
  pc.on_ready = [&](std::int64_t) { next(); };
  pc.on_segment = [&](const trickle::SegmentOutcome&) {
    if (++finished == total) pub->close();
  };
  pc.on_end = [&](trickle::PublisherEnd, const std::optional<Error>&) {
    pub_closed = true;
    if (sub_end) io.stop();
  };
  pub = *trickle::TricklePublisher::create(engine, url, trickle::PublisherOptions{}, std::move(pc));
  asio::steady_timer deadline(io, std::chrono::seconds(args["timeout-s"].as<int>()));
  bool timed_out = false;
  deadline.async_wait([&](const boost::system::error_code& ec) {
    if (ec) return;
    timed_out = true;
    io.stop();
  });

  const SteadyTime t0 = SteadyClock::now();
  (*sub)->start();
  pub->start();
  io.run();
  const double wall = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  const double cpu = cpu_seconds();

  for (const auto& [seq, sha] : sent) {
    auto it = received.find(seq);
    if (it == received.end() || it->second != sha) {
      ++mismatches;
      std::printf("selfcheck: segment %lld %s\n", static_cast<long long>(seq),
                  it == received.end() ? "never arrived" : "digest mismatch");
    }
  }
  const double mb = static_cast<double>(size) * static_cast<double>(received.size()) / 1e6;
  std::printf(
      "selfcheck: sent=%zu received=%zu verified=%zu mismatches=%d subscriber_end=%s "
      "throughput=%.1f MB/s cpu=%.2f s (publisher+server+subscriber in one process)\n",
      sent.size(), received.size(), sent.size() - static_cast<std::size_t>(mismatches), mismatches,
      sub_end ? std::string(trickle::to_string(*sub_end)).c_str() : "none",
      mb / std::max(wall, 1e-9), cpu);
  const bool ok = !timed_out && mismatches == 0 && static_cast<int>(sent.size()) == total &&
                  (sub_end == trickle::SubscriberEnd::channel_closed ||
                   sub_end == trickle::SubscriberEnd::channel_not_found);
  std::printf("selfcheck: %s\n", ok ? "PASS" : "FAIL");
  return ok ? k_exit_ok : k_exit_failed;
}

}  // namespace naap::cli
