// `naap-loadtest once` against three emulators with different fault profiles, publishing to a
// real Apache Kafka broker (tests/kafka/broker.sh): an independent consumer reads the topic and
// every record is checked — the NaaP contract (validate_events.py), one session_result per
// orchestrator with the outcome its fault profile implies, every session's events under its own
// key, nothing lost and nothing duplicated.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "../reports/kafka_support.hpp"
#include "../reports/test_dir.hpp"
#include "../workloads/session_harness.hpp"
#include "daemon_support.hpp"

namespace naap::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using reports::kafka_support::Broker;
using reports::kafka_support::consume_all;

TEST(DaemonKafka, once_against_three_fault_profiles_delivers_every_record_to_the_broker) {
  TestDir dir("naap-daemon-kafka");
  Broker broker(dir.path() / "broker", reports::kafka_support::free_port_run(2));
  ASSERT_TRUE(broker.start());

  EmulatorPeer healthy(emulator_options({{"passthrough", "true"}}));
  EmulatorPeer crashing(emulator_options({{"crash_after_s", "3"}}));
  EmulatorPeer slow(emulator_options({{"latency_ms", "300"}}));
  const std::string topic = "naap-round-" + uuid_v4().substr(0, 8);
  const fs::path config = dir.path() / "naap.yaml";
  std::ofstream(config) << "gateway_id: gw-kafka\nregion: TST\nstate_dir: "
                        << (dir.path() / "state").string()
                        << "\nround:\n  period: 1m\nconcurrency: 3\n"
                           "discovery:\n  static: [\""
                        << healthy.address() << "\", \"" << crashing.address() << "\", \""
                        << slow.address()
                        << "\"]\ntests:\n  - pipeline: noop\n    duration: 6s\n"
                           "    prompt_interval: 2s\ndecoder: software\n"
                           "sinks:\n  events: kafka\n  kafka:\n    brokers: "
                        << broker.address() << "\n    topic: " << topic
                        << "\nops:\n  listen: \"\"\n";
  Child once({"once", "--config", config.string()}, dir.path() / "out.txt");
  EXPECT_EQ(once.wait(180s), 1) << "the crashed runner fails the round\n" << once.output();
  const std::string delivered = once.log_value("results_flushed", "delivered");
  ASSERT_FALSE(delivered.empty()) << "every event delivered before exit\n" << once.output();
  const std::size_t published = std::stoul(delivered);
  ASSERT_GT(published, 20u);

  const auto messages = consume_all(broker.address(), topic, published, 60s);
  ASSERT_EQ(messages.size(), published) << "nothing lost, nothing duplicated";
  const fs::path events = dir.path() / "consumed.jsonl";
  {
    std::ofstream out(events);
    for (const auto& [key, value] : messages) out << value << "\n";
  }
  EXPECT_EQ(validate_events(events,
                            "--require discovery_results --require network_capabilities "
                            "--require synthetic_test_result/run_summary"),
            0)
      << std::ifstream(events.string() + ".validation").rdbuf();

  std::map<std::string, nlohmann::json> result_by_target;
  std::map<std::string, std::string> key_of_request;
  std::set<std::string> ids;
  for (const auto& [key, value] : messages) {
    const auto e = nlohmann::json::parse(value);
    ids.insert(e["id"].get<std::string>());
    const auto& data = e["data"];
    if (!data.is_object() || !data.contains("request_id")) continue;
    EXPECT_EQ(key, data["request_id"]) << "a session's events share its key";
    if (data.value("type", "") == "session_result") {
      result_by_target[data["record"]["target_orchestrator"]] = data;
      EXPECT_EQ(data["synthetic"], true);
      EXPECT_EQ(data["region"], "TST");
      EXPECT_EQ(data["gateway_id"], "gw-kafka");
    }
  }
  EXPECT_EQ(ids.size(), messages.size());
  ASSERT_EQ(result_by_target.size(), 3u);
  EXPECT_TRUE(healthy_outcome(result_by_target[healthy.address()]));
  EXPECT_EQ(result_by_target[crashing.address()]["outcome"], "runner_error");
  // 300 ms of processing latency is within the noop preset's SLA: the session passes.
  EXPECT_TRUE(healthy_outcome(result_by_target[slow.address()]));
}

}  // namespace
}  // namespace naap::test
