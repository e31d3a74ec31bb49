// Results-pipeline benchmark (not a test): records per second through a sink with the durable
// spool journal in front, against the same sink without it, measured in the same run.
//   build/bin/sink_bench [--records N] [--brokers HOST:PORT --topic T]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "naap/reports/delivery.hpp"
#include "naap/reports/envelope.hpp"
#include "naap/reports/kafka_sink.hpp"
#include "naap/reports/sink.hpp"
#include "naap/reports/spool.hpp"

namespace fs = std::filesystem;
using namespace naap::reports;

namespace {

Envelope sample(int i) {
  return make_envelope("stream_trace", "naap-lt-bench",
                       {{"type", "gateway_receive_few_processed_segments"},
                        {"timestamp", 1767830402655 + i},
                        {"stream_id", "syn-bench"},
                        {"request_id", "r-" + std::to_string(i % 16)},
                        {"pipeline_id", "syn-sd-v2v"},
                        {"orchestrator_info", {{"address", "0x3b2a"}, {"url", "https://o:8935"}}},
                        {"synthetic", true},
                        {"client_source", "naap-loadtest"},
                        {"schema_version", "naap-loadtest/1"},
                        {"test_run_id", "run-bench"}},
                       "r-" + std::to_string(i % 16));
}

// Runs n records through `sink`, with the spool in front when `spool` is set (group commits of
// `batch` records); records/s.
double run(Sink& sink, Spool* spool, int n, int batch = 1) {
  auto t0 = std::chrono::steady_clock::now();
  if (spool != nullptr) {
    Delivery d(*spool, sink);
    for (int i = 0; i < n; i += batch) {
      std::vector<Envelope> group;
      for (int j = i; j < std::min(n, i + batch); ++j) group.push_back(sample(j));
      if (!d.publish_batch(group)) std::fprintf(stderr, "publish failed\n");
    }
    while (d.backlog() > 0) {
      sink.poll();
      if (d.in_flight() == 0) d.retry_pending();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  } else {
    int done = 0;
    for (int i = 0; i < n; ++i) {
      Envelope e = sample(i);
      sink.deliver(SpoolRecord{e.id, e.key, serialize(e)},
                   [&](const std::optional<naap::Error>&) { ++done; });
    }
    while (done < n) {
      sink.poll();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  return n / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  int records = 3000;
  std::string brokers, topic = "naap-bench";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--records")) records = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--brokers")) brokers = argv[i + 1];
    if (!std::strcmp(argv[i], "--topic")) topic = argv[i + 1];
  }
  const fs::path dir = fs::temp_directory_path() / ("naap-sink-bench-" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::printf("%-28s %12s %12s %8s\n", "sink", "direct rec/s", "spooled", "ratio");
  auto line = [&](const char* name, double direct, double spooled) {
    std::printf("%-28s %12.0f %12.0f %8.2f\n", name, direct, spooled, spooled / direct);
  };
  for (bool sync : {true, false}) {
    auto direct_sink = JsonlSink::open(dir / "direct.jsonl", sync);
    auto spooled_sink = JsonlSink::open(dir / "spooled.jsonl", sync);
    auto spool = Spool::open(SpoolOptions{.path = dir / (sync ? "s1" : "s2"), .sync = sync});
    if (!direct_sink || !spooled_sink || !spool) return 1;
    double direct = run(**direct_sink, nullptr, records);
    double spooled = run(**spooled_sink, spool->get(), records);
    line(sync ? "jsonl, fdatasync per record" : "jsonl, no fdatasync", direct, spooled);
    if (sync) {
      auto batch_spool = Spool::open(SpoolOptions{.path = dir / "s4"});
      if (!batch_spool) return 1;
      line("  spool group commit of 50", direct,
           run(**spooled_sink, batch_spool->get(), records, 50));
    }
  }
  if (!brokers.empty()) {
    auto k1 = KafkaSink::create(KafkaOptions{.brokers = brokers, .topic = topic});
    auto k2 = KafkaSink::create(KafkaOptions{.brokers = brokers, .topic = topic});
    auto spool = Spool::open(SpoolOptions{.path = dir / "s3"});
    if (!k1 || !k2 || !spool) return 1;
    run(**k1, nullptr, 200);  // warm-up: connection and idempotent producer id
    run(**k2, nullptr, 200);
    double direct = run(**k1, nullptr, records);
    double spooled = run(**k2, spool->get(), records);
    line("kafka (acks=all, idempotent)", direct, spooled);
    auto batch_spool = Spool::open(SpoolOptions{.path = dir / "s5"});
    if (!batch_spool) return 1;
    line("  spool group commit of 50", direct, run(**k2, batch_spool->get(), records, 50));
  }
  fs::remove_all(dir);
  std::printf("ratio = spooled / direct records per second (%d records of ~600 bytes)\n", records);
  return 0;
}
