// Shared by the suites against a real Apache Kafka broker (kafka_test, kafka_secure_test): the
// broker script around one data folder, an independent librdkafka consumer, test events, and
// polling a Delivery until its backlog is empty.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "naap/core/ids.hpp"
#include "naap/reports/delivery.hpp"
#include "naap/reports/envelope.hpp"
#include "naap/reports/kafka_sink.hpp"

namespace naap::reports::kafka_support {

using namespace std::chrono_literals;

// librdkafka properties, e.g. the security settings of a client.
using Properties = std::vector<std::pair<std::string, std::string>>;

// `count` consecutive loopback ports that are free now and lie below the kernel's ephemeral
// range: outgoing connections (ours, the emulators', other brokers') take their local ports
// from that range, so a broker told to listen inside it can find its port taken and exit at
// once. The search starts at a place derived from the pid, so test processes running side by
// side look in different places; each candidate is bound (as the broker will, with
// SO_REUSEADDR) before it is handed out.
inline int free_port_run(int count) {
  int ephemeral_low = 32768;
  if (std::FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    if (std::fscanf(f, "%d", &ephemeral_low) != 1) ephemeral_low = 32768;
    std::fclose(f);
  }
  const int first = 20000;
  const int last = std::max(ephemeral_low, first + 1000) - count;  // a run ends below the range
  const int span = last - first;
  const int start = static_cast<int>((static_cast<long>(::getpid()) * 7919) % span);
  auto bindable = [](int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
  };
  for (int i = 0; i < span; i += count) {
    const int port = first + (start + i) % span;
    bool all = true;
    for (int k = 0; k < count && all; ++k) all = bindable(port + k);
    if (all) return port;
  }
  ADD_FAILURE() << "no " << count << " consecutive free ports in [" << first << ", " << last << ")";
  return first;
}

// tests/kafka/broker.sh around one data folder; stopped in the destructor. The plaintext broker
// uses PORT and PORT+1, the secured one PORT to PORT+2 (free_port_run(2) / free_port_run(3)).
class Broker {
 public:
  Broker(std::filesystem::path dir, int port) : dir_(std::move(dir)), port_(port) {}
  ~Broker() { run("stop", false); }
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;
  bool start() { return started(run("start", true)); }
  bool start_secure() { return started(run("start-secure", true)); }
  void kill() { run("kill", false); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  int run(const std::string& command, bool with_port) {
    std::string cmd = std::string("bash ") + NAAP_TEST_SOURCE_DIR + "/tests/kafka/broker.sh " +
                      command + " " + dir_.string() +
                      (with_port ? " " + std::to_string(port_) : std::string());
    return std::system(cmd.c_str());
  }
  // On failure the broker's own logs say why (a port taken, a bad setting); the test's folder
  // is gone afterwards, so show their ends now.
  bool started(int code) {
    if (code == 0) return true;
    std::fprintf(stderr, "broker.sh exited with status %d\n", code);
    for (const char* name : {"format.log", "broker.log"}) {
      std::ifstream log(dir_ / name);
      if (!log) continue;
      std::vector<std::string> lines;
      for (std::string line; std::getline(log, line);) {
        lines.push_back(std::move(line));
        if (lines.size() > 30) lines.erase(lines.begin());
      }
      std::fprintf(stderr, "the end of %s:\n", (dir_ / name).c_str());
      for (const auto& line : lines) std::fprintf(stderr, "  %s\n", line.c_str());
    }
    return false;
  }
  std::filesystem::path dir_;
  int port_;
};

// An independent reader of the topic: librdkafka's consumer, not our sink code. Returns
// (key, value) pairs once at least `at_least` arrived (or the timeout passed), and a moment more.
inline std::vector<std::pair<std::string, std::string>> consume_all(
    const std::string& brokers, const std::string& topic, std::size_t at_least,
    std::chrono::seconds timeout, const Properties& settings = {}) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  Properties props = {{"bootstrap.servers", brokers},
                      {"group.id", "verify-" + uuid_v4()},
                      {"auto.offset.reset", "earliest"},
                      {"enable.auto.commit", "false"}};
  props.insert(props.end(), settings.begin(), settings.end());
  for (const auto& [key, value] : props) {
    EXPECT_EQ(rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof err),
              RD_KAFKA_CONF_OK)
        << key << ": " << err;
  }
  rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (consumer == nullptr) {
    ADD_FAILURE() << "consumer: " << err;
    rd_kafka_conf_destroy(conf);
    return {};
  }
  rd_kafka_poll_set_consumer(consumer);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, topic.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_subscribe(consumer, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  std::vector<std::pair<std::string, std::string>> out;  // key, value
  auto poll_once = [&](int timeout_ms) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer, timeout_ms);
    if (m == nullptr) return;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      out.emplace_back(std::string(static_cast<const char*>(m->key), m->key_len),
                       std::string(static_cast<const char*>(m->payload), m->len));
    }
    rd_kafka_message_destroy(m);
  };
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out.size() < at_least && std::chrono::steady_clock::now() < deadline) poll_once(200);
  // A moment more: duplicates (at-least-once) would arrive right behind.
  for (int i = 0; i < 5; ++i) poll_once(100);
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  return out;
}

// One test event of session "naap-lt-test-1", keyed by one of five request ids.
inline Envelope test_event(int i) {
  return make_envelope("stream_trace", "naap-lt-test-1",
                       {{"type", "gateway_send_first_ingest_segment"},
                        {"seq_in_session", i},
                        {"request_id", "r-" + std::to_string(i % 5)},
                        {"synthetic", true}},
                       "r-" + std::to_string(i % 5));
}

// Polls until the backlog is empty or the timeout passes; resends what failed once nothing is
// in flight, at most every `retry_every`.
inline bool drain(Delivery& d, KafkaSink& k, std::chrono::seconds timeout,
                  std::chrono::milliseconds retry_every = 0ms) {
  auto now = std::chrono::steady_clock::now();
  const auto deadline = now + timeout;
  auto next_retry = now;
  while ((now = std::chrono::steady_clock::now()) < deadline) {
    k.poll();
    if (d.backlog() == 0) return true;
    if (d.in_flight() == 0 && now >= next_retry) {
      d.retry_pending();
      next_retry = now + retry_every;
    }
    std::this_thread::sleep_for(50ms);
  }
  return d.backlog() == 0;
}

// Checks that every sent record (id -> serialized envelope) was consumed at least once, with
// the exact bytes and keyed by its request_id; returns how many distinct ids arrived.
inline std::size_t expect_all_arrived(const std::map<std::string, std::string>& sent,
                                      const std::vector<std::pair<std::string, std::string>>& got) {
  std::map<std::string, int> count;
  for (const auto& [key, value] : got) {
    auto e = parse_envelope(value);
    if (!e) {
      ADD_FAILURE() << "not an envelope: " << value;
      continue;
    }
    ++count[e->id];
    auto it = sent.find(e->id);
    if (it == sent.end()) {
      ADD_FAILURE() << "unexpected id " << e->id;
      continue;
    }
    EXPECT_EQ(value, it->second) << "content differs for " << e->id;
    EXPECT_EQ(key, e->data["request_id"]) << "keyed by request_id";
  }
  for (const auto& [id, value] : sent) EXPECT_GE(count[id], 1) << "lost record " << id;
  std::printf("consumed %zu messages for %zu records (%zu duplicates)\n", got.size(), sent.size(),
              got.size() - count.size());
  return count.size();
}

}  // namespace naap::reports::kafka_support
