// JSONL and stream sinks: synchronous, so each delivery report is immediate.
#include "naap/reports/sink.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace naap::reports {

Result<std::unique_ptr<JsonlSink>> JsonlSink::open(std::filesystem::path path, bool sync) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    return fail(
        Error(ErrorCategory::sink, std::string("cannot open JSONL output: ") + std::strerror(errno))
            .with("path", path.string()));
  }
  return std::unique_ptr<JsonlSink>(new JsonlSink(std::move(path), fd, sync));
}

JsonlSink::~JsonlSink() {
  if (fd_ >= 0) ::close(fd_);
}

void JsonlSink::deliver(const SpoolRecord& record, DeliveryCallback done) {
  std::string line = record.payload + "\n";
  std::size_t written = 0;
  while (written < line.size()) {
    ssize_t n = ::write(fd_, line.data() + written, line.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      done(Error(ErrorCategory::sink, std::string("JSONL write failed: ") + std::strerror(errno),
                 true)
               .with("path", path_.string())
               .with("id", record.id));
      return;
    }
    written += static_cast<std::size_t>(n);
  }
  if (sync_ && ::fdatasync(fd_) != 0) {
    done(
        Error(ErrorCategory::sink, std::string("JSONL flush failed: ") + std::strerror(errno), true)
            .with("path", path_.string())
            .with("id", record.id));
    return;
  }
  done(std::nullopt);
}

Result<void> JsonlSink::flush(std::chrono::milliseconds) {
  if (::fdatasync(fd_) != 0) {
    return fail(
        Error(ErrorCategory::sink, std::string("JSONL flush failed: ") + std::strerror(errno))
            .with("path", path_.string()));
  }
  return {};
}

void StreamSink::deliver(const SpoolRecord& record, DeliveryCallback done) {
  if (std::fwrite(record.payload.data(), 1, record.payload.size(), out_) != record.payload.size() ||
      std::fputc('\n', out_) == EOF || std::fflush(out_) != 0) {
    done(Error(ErrorCategory::sink, "stdout write failed", true).with("id", record.id));
    return;
  }
  done(std::nullopt);
}

Result<void> StreamSink::flush(std::chrono::milliseconds) {
  if (std::fflush(out_) != 0) return fail(ErrorCategory::sink, "stdout flush failed");
  return {};
}

}  // namespace naap::reports
