// `naap-loadtest trickle serve|publish|subscribe`: the trickle transport as command-line tools,
// for operators debugging a channel and for the interop and benchmark suites.
#include <sys/resource.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdio>
#include <cxxopts.hpp>
#include <fstream>
#include <optional>

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
#include "naap/transport/trickle_url.hpp"

namespace naap::cli {
namespace {

namespace asio = boost::asio;

}  // namespace

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

long peak_rss_kib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

static void apply_log_level(const cxxopts::ParseResult& args) {
  log::Level level;
  if (args.count("log-level") && log::parse_level(args["log-level"].as<std::string>(), level)) {
    log::set_level(level);
  }
}

std::optional<cxxopts::ParseResult> parse_args(cxxopts::Options& options, int argc, char** argv,
                                               int& exit_code) {
  options.add_options()("h,help", "show this help")(
      "log-level", "debug|info|warn|error|off",
      cxxopts::value<std::string>()->default_value("info"));
  try {
    auto result = options.parse(argc, argv);
    if (result.count("help")) {
      std::fputs(options.help().c_str(), stdout);
      exit_code = k_exit_ok;
      return std::nullopt;
    }
    apply_log_level(result);
    return result;
  } catch (const cxxopts::exceptions::exception& e) {
    std::fprintf(stderr, "%s: %s\n\n%s", options.program().c_str(), e.what(),
                 options.help().c_str());
    exit_code = k_exit_usage;
    return std::nullopt;
  }
}

namespace {

// Payload of segment `seq`: the same bytes whoever generates them.
std::uint64_t segment_seed(std::uint64_t run_seed, std::int64_t seq) {
  return (run_seed << 32) ^ static_cast<std::uint64_t>(seq);
}

int serve(int argc, char** argv) {
  cxxopts::Options options("naap-loadtest trickle serve",
                           "Run a trickle server with go-livepeer's semantics");
  options.add_options()("listen", "address:port (port 0 = ephemeral)",
                        cxxopts::value<std::string>()->default_value("127.0.0.1:0"))(
      "base-path", "URL base path", cxxopts::value<std::string>()->default_value("/ai/trickle/"))(
      "autocreate", "create unknown channels on first use")(
      "channel", "pre-create a channel NAME or NAME=MIME (repeatable)",
      cxxopts::value<std::vector<std::string>>())(
      "port-file", "write the bound port to this file once listening",
      cxxopts::value<std::string>())("keepalive-ms", "100 Continue interval on idle POSTs",
                                     cxxopts::value<int>()->default_value("10000"))(
      "idle-timeout-s", "close channels with no new segment for this long",
      cxxopts::value<int>()->default_value("300"))(
      "legacy", "behave like a pre-2025 server: no GET -2, no /next, no Lp-Trickle-Reset")(
      "tls-cert", "PEM certificate (enables HTTPS)", cxxopts::value<std::string>())(
      "tls-key", "PEM private key", cxxopts::value<std::string>());
  int code = k_exit_ok;
  auto args = parse_args(options, argc, argv, code);
  if (!args) return code;

  std::string listen = (*args)["listen"].as<std::string>();
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    std::fprintf(stderr, "trickle serve: --listen must be address:port, got '%s'\n",
                 listen.c_str());
    return k_exit_usage;
  }
  auto port = trickle::parse_seq(std::string_view(listen).substr(colon + 1));
  if (!port || *port < 0 || *port > 65535) {
    std::fprintf(stderr, "trickle serve: invalid port in --listen '%s'\n", listen.c_str());
    return k_exit_usage;
  }

  trickle::ServerOptions so;
  so.base_path = (*args)["base-path"].as<std::string>();
  so.autocreate = args->count("autocreate") > 0;
  so.keepalive_interval = std::chrono::milliseconds((*args)["keepalive-ms"].as<int>());
  so.idle_timeout = std::chrono::seconds((*args)["idle-timeout-s"].as<int>());
  if (args->count("legacy")) {
    so.support_current_seq = false;
    so.support_next = false;
    so.support_reset = false;
  }
  if (args->count("tls-cert") || args->count("tls-key")) {
    if (!args->count("tls-cert") || !args->count("tls-key")) {
      std::fprintf(stderr, "trickle serve: --tls-cert and --tls-key go together\n");
      return k_exit_usage;
    }
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    boost::system::error_code ec;
    ctx->use_certificate_chain_file((*args)["tls-cert"].as<std::string>(), ec);
    if (!ec)
      ctx->use_private_key_file((*args)["tls-key"].as<std::string>(), asio::ssl::context::pem, ec);
    if (ec) {
      std::fprintf(stderr, "trickle serve: cannot load TLS certificate/key: %s\n",
                   ec.message().c_str());
      return k_exit_usage;
    }
    so.tls = ctx;
  }

  asio::io_context io;
  trickle::TrickleServer server(io, so);
  auto bound = server.listen(listen.substr(0, colon), static_cast<std::uint16_t>(*port));
  if (!bound) {
    std::fprintf(stderr, "trickle serve: %s\n", bound.error().describe().c_str());
    return k_exit_failed;
  }
  if (args->count("channel")) {
    for (const std::string& spec : (*args)["channel"].as<std::vector<std::string>>()) {
      auto eq = spec.find('=');
      server.create_channel(spec.substr(0, eq),
                            eq == std::string::npos ? "video/MP2T" : spec.substr(eq + 1));
    }
  }
  if (args->count("port-file")) {
    std::string path = (*args)["port-file"].as<std::string>();
    std::ofstream(path + ".tmp") << *bound << "\n";
    std::rename((path + ".tmp").c_str(), path.c_str());
  }
  std::printf("listening url=%s\n", server.base_url().c_str());
  std::fflush(stdout);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) {
    server.stop();
    io.stop();
  });
  io.run();
  auto st = server.stats();
  log::info(
      "trickle_server_stopped",
      {{"segments", st.segments_started}, {"bytes_in", st.bytes_in}, {"bytes_out", st.bytes_out}});
  return k_exit_ok;
}

int publish(int argc, char** argv) {
  cxxopts::Options options("naap-loadtest trickle publish URL",
                           "Publish synthetic segments to a trickle channel");
  options.add_options()("url", "channel URL", cxxopts::value<std::string>())(
      "start-seq", "first seq", cxxopts::value<std::int64_t>()->default_value("0"))(
      "join", "learn the first seq with GET {ch}/next")("reset",
                                                        "send Lp-Trickle-Reset on the first POST")(
      "segments", "segments to publish", cxxopts::value<int>()->default_value("10"))(
      "size", "bytes per segment", cxxopts::value<std::uint64_t>()->default_value("65536"))(
      "chunk", "bytes per write", cxxopts::value<std::size_t>()->default_value("16384"))(
      "seed", "payload seed", cxxopts::value<std::uint64_t>()->default_value("1"))(
      "interval-ms", "pause between segments", cxxopts::value<int>()->default_value("0"))(
      "idle-first-ms", "open the first segment, then wait this long before its first byte",
      cxxopts::value<int>()->default_value("0"))(
      "digests", "write 'seq bytes sha256' per segment to this file",
      cxxopts::value<std::string>())("no-close", "do not DELETE the channel at the end")(
      "timeout-s", "give up after this long", cxxopts::value<int>()->default_value("120"));
  options.parse_positional({"url"});
  int code = k_exit_ok;
  auto args = parse_args(options, argc, argv, code);
  if (!args) return code;
  if (!args->count("url")) {
    std::fprintf(stderr, "trickle publish: a channel URL is required\n");
    return k_exit_usage;
  }

  asio::io_context io;
  http::Engine engine(io);
  trickle::PublisherOptions po;
  if (args->count("join")) {
    po.start_seq.reset();
  } else {
    po.start_seq = (*args)["start-seq"].as<std::int64_t>();
  }
  po.reset = args->count("reset") > 0;
  const int total = (*args)["segments"].as<int>();
  const std::uint64_t size = (*args)["size"].as<std::uint64_t>();
  const std::size_t chunk = std::max<std::size_t>(1, (*args)["chunk"].as<std::size_t>());
  const std::uint64_t seed = (*args)["seed"].as<std::uint64_t>();
  const auto interval = std::chrono::milliseconds((*args)["interval-ms"].as<int>());
  const auto idle_first = std::chrono::milliseconds((*args)["idle-first-ms"].as<int>());
  const bool do_close = args->count("no-close") == 0;
  std::optional<std::ofstream> digests;
  if (args->count("digests")) digests.emplace((*args)["digests"].as<std::string>());

  int completed = 0, failed = 0, started = 0;
  std::uint64_t bytes_ok = 0;
  std::optional<trickle::PublisherEnd> end_reason;
  std::optional<Error> end_error;
  std::map<std::int64_t, std::string> sha_by_seq;
  std::shared_ptr<trickle::TricklePublisher> pub;
  asio::steady_timer pacing(io);
  asio::steady_timer deadline(io, std::chrono::seconds((*args)["timeout-s"].as<int>()));
  const SteadyTime t0 = SteadyClock::now();
  const double cpu0 = cpu_seconds();

  std::function<void()> publish_next;
  auto all_done = [&] {
    if (started == total && completed + failed == total) {
      if (do_close) {
        pub->close();
      } else {
        io.stop();
      }
    }
  };
  bool pacing_pending = false;  // the interval timer runs
  publish_next = [&] {
    if (started >= total || pub->ended() || pacing_pending) return;
    // Like a media source on a slow link: wait while 3 segments are unacknowledged (go-livepeer
    // swaps orchestrators at that point). Running further ahead would let the preconnected POST
    // of seq N+1 take the ring slot of seq N-4 while it is still uploading.
    if (pub->in_flight() >= 3) return;
    auto writer = pub->next_segment();
    if (!writer) return;
    ++started;
    const std::int64_t seq = writer->seq();
    auto hasher = std::make_shared<Sha256>();
    auto fill = [seed, seq, hasher](std::uint64_t offset, std::span<char> out) {
      fill_pattern(segment_seed(seed, seq), offset, out);
      hasher->update(std::string_view(out.data(), out.size()));
    };
    auto after = [&, seq, hasher](bool) {
      sha_by_seq[seq] = hasher->hex_digest();
      if (started < total) {
        pacing_pending = true;
        pacing.expires_after(interval);
        pacing.async_wait([&](const boost::system::error_code& ec) {
          pacing_pending = false;
          if (!ec) publish_next();
        });
      }
    };
    trickle::PumpOptions pump{.total_bytes = size, .chunk_bytes = chunk};
    if (started == 1 && idle_first.count() > 0) {
      // Hold the first segment open with no byte, as a slow encoder would.
      auto hold = std::make_shared<asio::steady_timer>(io, idle_first);
      hold->async_wait([writer, pump, fill, after, hold](const boost::system::error_code&) {
        trickle::pump_segment(writer, pump, fill, after);
      });
      return;
    }
    trickle::pump_segment(writer, pump, fill, after);
  };

  trickle::PublisherCallbacks cb;
  cb.on_ready = [&](std::int64_t first) {
    log::info("trickle_publish_ready", {{"url", pub->channel_url()}, {"first_seq", first}});
    publish_next();
  };
  cb.on_segment = [&](const trickle::SegmentOutcome& so) {
    std::string sha = so.complete ? sha_by_seq[so.seq] : std::string("-");
    std::printf("segment seq=%lld bytes=%llu sha256=%s complete=%d attempts=%d%s%s\n",
                static_cast<long long>(so.seq), static_cast<unsigned long long>(so.bytes),
                sha.c_str(), so.complete ? 1 : 0, so.attempts, so.error ? " error=" : "",
                so.error ? so.error->describe().c_str() : "");
    if (so.complete) {
      ++completed;
      bytes_ok += so.bytes;
      if (digests) *digests << so.seq << ' ' << so.bytes << ' ' << sha << '\n';
    } else {
      ++failed;
    }
    all_done();
    publish_next();
  };
  cb.on_end = [&](trickle::PublisherEnd how, const std::optional<Error>& e) {
    end_reason = how;
    end_error = e;
    io.stop();
  };
  auto created = trickle::TricklePublisher::create(engine, (*args)["url"].as<std::string>(), po,
                                                   std::move(cb));
  if (!created) {
    std::fprintf(stderr, "trickle publish: %s\n", created.error().describe().c_str());
    return k_exit_usage;
  }
  pub = *created;
  deadline.async_wait([&](const boost::system::error_code& ec) {
    if (ec) return;
    std::fprintf(stderr, "trickle publish: timed out\n");
    io.stop();
  });
  pub->start();
  io.run();
  const double wall = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  const double cpu = cpu_seconds() - cpu0;
  std::printf(
      "summary segments=%d completed=%d failed=%d bytes=%llu wall_s=%.3f cpu_s=%.3f "
      "mb_per_s=%.1f cpu_s_per_mb=%.5f max_rss_kib=%ld end=%s%s%s\n",
      total, completed, failed, static_cast<unsigned long long>(bytes_ok), wall, cpu,
      static_cast<double>(bytes_ok) / 1e6 / std::max(wall, 1e-9),
      cpu / std::max(static_cast<double>(bytes_ok) / 1e6, 1e-9), peak_rss_kib(),
      end_reason ? std::string(trickle::to_string(*end_reason)).c_str() : "none",
      end_error ? " error=" : "", end_error ? end_error->describe().c_str() : "");
  bool ok = completed == total && (!do_close || end_reason == trickle::PublisherEnd::closed_by_us);
  return ok ? k_exit_ok : k_exit_failed;
}

int subscribe(int argc, char** argv) {
  cxxopts::Options options("naap-loadtest trickle subscribe URL",
                           "Read a trickle channel and print each segment's size and SHA-256");
  options.add_options()("url", "channel URL", cxxopts::value<std::string>())(
      "start-seq", "-2 (current), -1 (next) or an explicit seq",
      cxxopts::value<std::int64_t>()->default_value("-1"))(
      "segments", "stop after this many segments (0 = until the stream ends)",
      cxxopts::value<int>()->default_value("0"))(
      "digests", "write 'seq bytes sha256' per segment to this file",
      cxxopts::value<std::string>())("timeout-s", "give up after this long",
                                     cxxopts::value<int>()->default_value("120"));
  options.parse_positional({"url"});
  int code = k_exit_ok;
  auto args = parse_args(options, argc, argv, code);
  if (!args) return code;
  if (!args->count("url")) {
    std::fprintf(stderr, "trickle subscribe: a channel URL is required\n");
    return k_exit_usage;
  }
  const int want = (*args)["segments"].as<int>();
  std::optional<std::ofstream> digests;
  if (args->count("digests")) digests.emplace((*args)["digests"].as<std::string>());

  asio::io_context io;
  http::Engine engine(io);
  trickle::SubscriberOptions so;
  so.start_seq = (*args)["start-seq"].as<std::int64_t>();
  Sha256 hasher;
  int segments = 0;
  std::uint64_t bytes = 0;
  std::optional<trickle::SubscriberEnd> end_reason;
  std::shared_ptr<trickle::TrickleSubscriber> sub;
  const SteadyTime t0 = SteadyClock::now();
  const double cpu0 = cpu_seconds();

  trickle::SubscriberCallbacks cb;
  cb.on_data = [&](std::int64_t, std::string_view piece) { hasher.update(piece); };
  cb.on_segment_end = [&](const trickle::SegmentEnd& se) {
    std::string sha = hasher.hex_digest();
    std::printf("segment seq=%lld bytes=%llu sha256=%s complete=%d%s%s\n",
                static_cast<long long>(se.seq), static_cast<unsigned long long>(se.bytes),
                sha.c_str(), se.complete ? 1 : 0, se.error ? " error=" : "",
                se.error ? se.error->describe().c_str() : "");
    std::fflush(stdout);
    if (se.complete) {
      ++segments;
      bytes += se.bytes;
      if (digests) *digests << se.seq << ' ' << se.bytes << ' ' << sha << '\n' << std::flush;
    }
    if (want > 0 && segments >= want) sub->stop();
  };
  cb.on_end = [&](trickle::SubscriberEnd how, const std::optional<Error>& e) {
    end_reason = how;
    std::printf("end reason=%s%s%s\n", std::string(trickle::to_string(how)).c_str(),
                e ? " error=" : "", e ? e->describe().c_str() : "");
    io.stop();
  };
  auto created =
      trickle::TrickleSubscriber::create(engine, (*args)["url"].as<std::string>(), so, cb);
  if (!created) {
    std::fprintf(stderr, "trickle subscribe: %s\n", created.error().describe().c_str());
    return k_exit_usage;
  }
  sub = *created;
  asio::steady_timer deadline(io, std::chrono::seconds((*args)["timeout-s"].as<int>()));
  deadline.async_wait([&](const boost::system::error_code& ec) {
    if (ec) return;
    std::fprintf(stderr, "trickle subscribe: timed out after %d segments\n", segments);
    io.stop();
  });
  sub->start();
  io.run();
  const double wall = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  std::printf("summary segments=%d bytes=%llu wall_s=%.3f cpu_s=%.3f max_rss_kib=%ld\n", segments,
              static_cast<unsigned long long>(bytes), wall, cpu_seconds() - cpu0, peak_rss_kib());
  if (want > 0) return segments >= want ? k_exit_ok : k_exit_failed;
  return end_reason == trickle::SubscriberEnd::channel_closed ||
                 end_reason == trickle::SubscriberEnd::channel_not_found
             ? k_exit_ok
             : k_exit_failed;
}

}  // namespace

int run_trickle(int argc, char** argv) {
  if (argc < 2) {
    std::fputs("usage: naap-loadtest trickle serve|publish|subscribe [--help]\n", stderr);
    return k_exit_usage;
  }
  std::string_view sub = argv[1];
  if (sub == "serve") return serve(argc - 1, argv + 1);
  if (sub == "publish") return publish(argc - 1, argv + 1);
  if (sub == "subscribe") return subscribe(argc - 1, argv + 1);
  std::fprintf(stderr, "naap-loadtest trickle: unknown subcommand '%s'\n", argv[1]);
  return k_exit_usage;
}

}  // namespace naap::cli
