// How many concurrent live sessions one gateway process sustains (not a test; see
// docs/benchmarks.md). A passthrough emulator runs as a separate process (`naap-loadtest
// emulate`), so this process's CPU is the gateway's alone. For each session count, N sessions of
// 512x512 @ 24 fps run at once, with full software decode and with demux-only frame accounting;
// printed: outcomes, late input frames (sent > 20 ms after due: the gateway's fault; a session
// with more than 1 % late is flagged gateway_error), the lowest session output fps,
// E2E p50/p99 from the merged histograms, and gateway CPU-seconds per stream-minute.
//
//   session_bench [seconds=30] [counts=8,16,24,32] [--naap PATH]
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "naap/core/log.hpp"
#include "naap/media/ingest.hpp"
#include "naap/workloads/live_session.hpp"

namespace {

namespace asio = boost::asio;
using namespace naap;

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const int port = ntohs(a.sin_port);
  close(fd);
  return port;
}

// The passthrough emulator as a child process.
class EmulatorProcess {
 public:
  EmulatorProcess(const std::string& binary, int port) {
    pid_ = fork();
    if (pid_ == 0) {
      const std::string p = std::to_string(port);
      execl(binary.c_str(), binary.c_str(), "emulate", "--port", p.c_str(), "--model",
            "noop:capacity=256", "--fault", "passthrough=true", "--log-level", "warn",
            static_cast<char*>(nullptr));
      _exit(127);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  }
  ~EmulatorProcess() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  double cpu_seconds() const {
    // /proc/PID/stat fields 14 and 15: utime, stime in clock ticks.
    std::FILE* f = std::fopen(("/proc/" + std::to_string(pid_) + "/stat").c_str(), "r");
    if (!f) return 0;
    char buf[2048] = {};
    const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    std::string s(buf, n);
    std::istringstream in(s.substr(s.rfind(')') + 2));
    std::string field;
    double ut = 0, st = 0;
    for (int i = 3; i <= 15 && in >> field; ++i) {
      if (i == 14) ut = std::stod(field);
      if (i == 15) st = std::stod(field);
    }
    return (ut + st) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }

 private:
  pid_t pid_ = -1;
};

struct RoundResult {
  std::map<std::string, int> outcomes;  // outcome → sessions
  std::uint64_t frames_sent = 0;        // input frames, all sessions
  std::uint64_t frames_late = 0;        // of which late (gateway)
  double fps_min = 1e9;                 // lowest session output fps
  Histogram e2e;                        // merged E2E, µs
  double gateway_cpu_s = 0;             // this process
  double emulator_cpu_s = 0;            // the emulator process
};

RoundResult run_round(const std::string& address, int sessions, double seconds, bool decode,
                      const std::shared_ptr<const media::EncodedClip>& clip,
                      const EmulatorProcess& emulator) {
  asio::io_context io;
  http::Engine engine(io);
  WorkerPool pool(2, 10);  // decode below the pacing loop
  orch::OrchestratorClient probes(4);
  RoundResult out;
  std::vector<std::shared_ptr<workloads::LiveSession>> live;
  int remaining = sessions;
  const double cpu0 = cpu_seconds();
  const double emu0 = emulator.cpu_seconds();
  asio::post(io, [&] {
    for (int i = 0; i < sessions; ++i) {
      workloads::SessionConfig c;
      c.orchestrators = {address};
      c.model_id = "noop";
      c.params = {{"width", 512}, {"height", 512}};
      c.duration = std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
      c.decode = decode;
      c.decoder.backend = media::DecoderOptions::Backend::software;
      c.stream_id = "bench-" + std::to_string(i);
      c.request_id = "r-" + std::to_string(i);
      c.drain = std::chrono::milliseconds(1500);
      auto s = workloads::LiveSession::create(
          {engine, pool, probes}, std::make_shared<workloads::LoopingInput>(clip), c,
          [&](workloads::SessionResult&& r) {
            ++out.outcomes[r.outcome];
            out.frames_sent += r.metrics.frames_sent;
            out.frames_late += r.metrics.frames_late;
            if (r.metrics.output_fps) out.fps_min = std::min(out.fps_min, *r.metrics.output_fps);
            out.e2e.merge(r.metrics.e2e_latency_us);
            if (--remaining == 0) asio::post(io, [&] { io.stop(); });
          });
      live.push_back(s);
    }
    // Starts are spread over the first 2 s, as a scheduler spreads them: N simultaneous TLS
    // handshakes and job starts would measure a thundering herd, not steady streaming.
    for (int i = 0; i < sessions; ++i) {
      auto timer =
          std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(2000 * i / sessions));
      timer->async_wait([timer, s = live[static_cast<std::size_t>(i)]](
                            const boost::system::error_code&) { s->start(); });
    }
  });
  io.run();
  out.gateway_cpu_s = cpu_seconds() - cpu0;
  out.emulator_cpu_s = emulator.cpu_seconds() - emu0;
  live.clear();
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 30;
  std::vector<int> counts = {8, 16, 24, 32};
  std::string binary = NAAP_BENCH_BIN_DIR "/naap-loadtest";
  int positional = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--naap" && i + 1 < argc) {
      binary = argv[++i];
    } else if (positional == 0) {
      seconds = std::atof(a.c_str());
      ++positional;
    } else {
      counts.clear();
      std::stringstream ss(a);
      std::string item;
      while (std::getline(ss, item, ',')) counts.push_back(std::atoi(item.c_str()));
      ++positional;
    }
  }
  log::set_level(log::Level::warn);
  media::IngestSource source;
  source.pattern = "smpte";  // colour: a greyscale picture reads as a loading overlay
  source.duration_s = 10;
  media::IngestOptions ingest;
  ingest.fps = 24;
  auto clip = media::ClipCache().get(source, ingest);
  if (!clip) {
    std::fprintf(stderr, "clip: %s\n", clip.error().describe().c_str());
    return 1;
  }
  const int port = free_port();
  EmulatorProcess emulator(binary, port);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  std::printf(
      "session_bench: %.0f s per round, 512x512 @ 24 fps, passthrough emulator at %s, "
      "%u cores\n",
      seconds, address.c_str(), std::thread::hardware_concurrency());
  std::printf("%-7s %-8s %-28s %8s %8s %8s %8s %10s %10s %s\n", "mode", "sessions", "outcomes",
              "late%", "fps_min", "e2e_p50", "e2e_p99", "cpu_s/min", "emu_cpu_s", "verdict");
  for (const bool decode : {true, false}) {
    for (int n : counts) {
      const auto r = run_round(address, n, seconds, decode, *clip, emulator);
      std::string outcomes;
      int ok = 0;
      for (const auto& [k, v] : r.outcomes) {
        outcomes += (outcomes.empty() ? "" : ",") + k + "=" + std::to_string(v);
        if (k == "ok") ok = v;
      }
      const double late = r.frames_sent ? 100.0 * static_cast<double>(r.frames_late) /
                                              static_cast<double>(r.frames_sent)
                                        : 100.0;
      const double stream_minutes = n * seconds / 60.0;
      // The target: every session streamed at full rate and under 1 % of all input
      // frames left late because of the gateway (a session over 1 % is flagged gateway_error).
      const int overloaded = r.outcomes.count("gateway_error") ? r.outcomes.at("gateway_error") : 0;
      const bool sustained = ok + overloaded == n && late < 1.0 && r.fps_min >= 23.0;
      std::printf(
          "%-7s %-8d %-28s %8.2f %8.1f %8.1f %8.1f %10.2f %10.1f %s\n", decode ? "decode" : "demux",
          n, outcomes.c_str(), late, r.fps_min, static_cast<double>(r.e2e.percentile(50)) / 1000.0,
          static_cast<double>(r.e2e.percentile(99)) / 1000.0, r.gateway_cpu_s / stream_minutes,
          r.emulator_cpu_s, sustained ? "SUSTAINED" : "not sustained");
      std::fflush(stdout);
    }
  }
  return 0;
}
