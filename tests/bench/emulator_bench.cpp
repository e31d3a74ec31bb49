// Emulator capacity benchmark: how many concurrent 512x512 @ 24 fps streams one emulator process
// sustains on this machine, with full decode + tint + encode and in passthrough mode.
// Every stream is driven by our trickle client in the same process (input pre-encoded once and
// paced by PTS, output demuxed only; starts spread over 2 s). A stream is "sustained" when it gets
// >= 23.5 output fps and its frames leave the runner within 100 ms (p99) of arriving. Ratios are
// against the 1-stream run measured first in the same process. Usage: emulator_bench [seconds]
// [counts...]
// [--passthrough counts...]
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "../emulator/emulator_session.hpp"
#include "naap/core/log.hpp"

namespace naap::test {
namespace {

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

struct Row {
  int streams = 0;         // concurrent streams
  double min_fps = 0;      // worst stream's output fps
  double p99_ms = 0;       // worst stream's p99 runner latency (emitted - arrived), ms
  double cpu_per_min = 0;  // CPU seconds per stream-minute
  int sustained = 0;       // streams meeting the bar
};

Row run(Loop& loop, int streams, double seconds, bool passthrough) {
  emulator::EmulatorOptions options;
  options.port = 0;
  options.load_time_s = 0;
  options.workers = 0;  // one per core
  emulator::ModelOffer noop;
  noop.model_id = "noop";
  noop.capacity = 1000;  // capacity is not what is measured here
  options.models = {noop};
  if (passthrough) (void)options.faults.defaults.set("passthrough", "true");
  std::unique_ptr<emulator::Emulator> emu;
  std::unique_ptr<http::Engine> engine;
  loop.on_io([&] {
    emu = std::make_unique<emulator::Emulator>(loop.io, options);
    if (auto started = emu->start(); !started) {
      std::fprintf(stderr, "emulator: %s\n", started.error().describe().c_str());
      std::exit(1);
    }
    engine = std::make_unique<http::Engine>(loop.io);
    return 0;
  });
  const auto& input = clip(24, seconds);
  std::vector<std::shared_ptr<Session>> sessions;
  for (int i = 0; i < streams; ++i) {
    auto token = emu->orchestrator().tokens().issue();
    net::SegData seg;
    seg.mutable_auth_token()->set_token(token.token);
    auto s = loop.on_io([&] {
      auto session =
          std::make_shared<Session>(*engine, emu->base_url(), base64(seg.SerializeAsString()));
      session->decode_output = false;
      return session;
    });
    std::promise<int> done;
    loop.on_io([&] {
      s->start_job(json{{"model_id", "noop"},
                        {"params", {{"prompt", "bench " + std::to_string(i)}}},
                        {"stream_id", "bench-" + std::to_string(i)}},
                   [&](const Reply& r) { done.set_value(r.status); });
      return 0;
    });
    if (done.get_future().get() != 200) {
      std::fprintf(stderr, "start failed for stream %d\n", i);
      std::exit(1);
    }
    sessions.push_back(s);
  }
  // Streams start spread over one output GOP (2 s), as independent sessions would: starting them
  // in the same millisecond would align every stream's IDR frames into one burst.
  const double cpu0 = cpu_seconds();
  const auto stagger = std::chrono::duration<double>(2.0 / streams);
  for (auto& s : sessions) {
    loop.on_io([&] {
      s->run(input);
      return 0;
    });
    std::this_thread::sleep_for(stagger);
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds + 1.0));
  const double cpu = cpu_seconds() - cpu0;
  Row row;
  row.streams = streams;
  row.min_fps = 1e9;
  for (auto& s : sessions) {
    const std::string mid = loop.on_io([&] { return s->urls.value("manifest_id", ""); });
    const json truth = loop.on_io([&] { return emu->stream_truth(mid); });
    const auto frames = loop.on_io([&] { return s->frames; });
    // Output fps as the gateway sees it, over the part of the run where input flowed.
    const double fps = static_cast<double>(frames.size()) / seconds;
    std::vector<double> lat;
    for (const auto& r : truth["frames"]) {
      lat.push_back(static_cast<double>(r[3].get<std::int64_t>() - r[2].get<std::int64_t>()) / 1e3);
    }
    double p99 = 0;
    if (!lat.empty()) {
      std::sort(lat.begin(), lat.end());
      p99 = lat[std::min(lat.size() - 1, lat.size() * 99 / 100)];
    }
    if (passthrough) p99 = 0;  // no per-frame truth without decoding
    row.min_fps = std::min(row.min_fps, fps);
    row.p99_ms = std::max(row.p99_ms, p99);
    row.sustained += fps >= 23.5 && p99 <= 100.0;
  }
  row.cpu_per_min = cpu / (streams * seconds / 60.0);
  loop.on_io([&] {
    for (auto& s : sessions) s->shutdown();
    emu->stop();
    return 0;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  loop.on_io([&] {
    sessions.clear();
    engine.reset();
    emu.reset();
    return 0;
  });
  return row;
}

void print(const char* mode, const Row& row, const Row& base) {
  std::printf("%-12s %7d %12.2f %12.1f %14.2f %10.2f %9d/%d\n", mode, row.streams, row.min_fps,
              row.p99_ms, row.cpu_per_min, row.cpu_per_min / base.cpu_per_min, row.sustained,
              row.streams);
  std::fflush(stdout);
}

}  // namespace
}  // namespace naap::test

int main(int argc, char** argv) {
  using namespace naap::test;
  double seconds = 20;
  std::vector<int> full{1, 4, 8, 10, 12};
  std::vector<int> pass{8, 32, 64};
  if (argc > 1) seconds = std::atof(argv[1]);
  if (argc > 2) {
    full.clear();
    pass.clear();
    bool p = false;
    for (int i = 2; i < argc; ++i) {
      if (std::string_view(argv[i]) == "--passthrough") {
        p = true;
        continue;
      }
      (p ? pass : full).push_back(std::atoi(argv[i]));
    }
  }
  naap::log::set_level(naap::log::Level::error);
  (void)clip(24, seconds);  // encode the input once, outside every measurement
  Loop loop;
  std::printf("emulator_bench: %.0f s per run, 512x512 @ 24 fps input, %u cores\n", seconds,
              std::thread::hardware_concurrency());
  std::printf("%-12s %7s %12s %12s %14s %10s %11s\n", "mode", "streams", "min out fps",
              "p99 lat ms", "CPU s/str-min", "vs 1-str", "sustained");
  const Row base = run(loop, 1, seconds, false);
  print("full", base, base);
  for (int n : full) {
    if (n == 1) continue;
    print("full", run(loop, n, seconds, false), base);
  }
  for (int n : pass) print("passthrough", run(loop, n, seconds, true), base);
  return 0;
}
