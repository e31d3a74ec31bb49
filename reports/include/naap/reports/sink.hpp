// Where records go: one interface, one implementation per destination (Kafka, JSONL, stdout).
// Every sink is fed through Delivery (delivery.hpp), which spools each record first.
#pragma once

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

#include "naap/core/error.hpp"
#include "naap/reports/spool.hpp"

namespace naap::reports {

// Called once per record: no error = delivered (for Kafka: a positive delivery report).
using DeliveryCallback = std::function<void(const std::optional<Error>& error)>;

class Sink {
 public:
  virtual ~Sink() = default;
  virtual std::string_view name() const = 0;
  // Starts delivering one record; `done` may run before this returns or later (from poll()).
  virtual void deliver(const SpoolRecord& record, DeliveryCallback done) = 0;
  // Serves pending delivery reports (asynchronous sinks).
  virtual void poll() {}
  // Waits until every record handed over has its report, or the deadline passes.
  virtual Result<void> flush(std::chrono::milliseconds deadline) = 0;
};

// Appends each payload as one line to a file (the embedded default when no Kafka is
// configured); a run's JSONL can be replayed into Kafka later.
class JsonlSink final : public Sink {
 public:
  static Result<std::unique_ptr<JsonlSink>> open(std::filesystem::path path, bool sync = true);
  ~JsonlSink() override;
  std::string_view name() const override { return "jsonl"; }
  void deliver(const SpoolRecord& record, DeliveryCallback done) override;
  Result<void> flush(std::chrono::milliseconds deadline) override;

 private:
  JsonlSink(std::filesystem::path path, int fd, bool sync)
      : path_(std::move(path)), fd_(fd), sync_(sync) {}
  std::filesystem::path path_;
  int fd_ = -1;       // O_APPEND descriptor
  bool sync_ = true;  // fdatasync after every line
};

// Writes each payload as one line to a stdio stream (stdout by default).
class StreamSink final : public Sink {
 public:
  explicit StreamSink(std::FILE* out = stdout) : out_(out) {}
  std::string_view name() const override { return "stdout"; }
  void deliver(const SpoolRecord& record, DeliveryCallback done) override;
  Result<void> flush(std::chrono::milliseconds deadline) override;

 private:
  std::FILE* out_;
};

}  // namespace naap::reports
