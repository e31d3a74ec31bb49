// Durable spool journal: append + fdatasync before delivery, ack lines after, replay on open,
// compaction by atomic rename.
#include "naap/reports/spool.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "naap/core/log.hpp"

namespace naap::reports {
namespace {

Error io_error(std::string what, const std::filesystem::path& path, int err) {
  return Error(ErrorCategory::sink, what + ": " + std::strerror(err), true)
      .with("path", path.string());
}

std::string ack_line(std::string_view id) {
  return nlohmann::json{{"op", "ack"}, {"id", id}}.dump() + "\n";
}

}  // namespace

std::string Spool::put_line(const SpoolRecord& r) {
  // Payloads from the pipeline are UTF-8 JSON; replace (never throw on) anything else.
  return nlohmann::json{{"op", "put"}, {"id", r.id}, {"key", r.key}, {"payload", r.payload}}.dump(
             -1, ' ', false, nlohmann::json::error_handler_t::replace) +
         "\n";
}

Result<std::unique_ptr<Spool>> Spool::open(SpoolOptions options) {
  if (options.path.empty()) {
    return fail(Error(ErrorCategory::config, "spool path is empty"));
  }
  std::unique_ptr<Spool> spool(new Spool(std::move(options)));
  // One process per journal: a second writer would interleave lines and race compaction. The
  // lock is on a side file because compaction replaces the journal's inode.
  const std::string lock_path = spool->path().string() + ".lock";
  spool->lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (spool->lock_fd_ < 0)
    return fail(Error(ErrorCategory::sink,
                      "cannot open the spool lock file: " + std::string(std::strerror(errno)))
                    .with("path", lock_path));
  if (::flock(spool->lock_fd_, LOCK_EX | LOCK_NB) != 0)
    return fail(Error(ErrorCategory::config,
                      "the spool is in use by another naap-loadtest process (give each process "
                      "its own spool)")
                    .with("path", spool->path().string()));
  if (auto r = spool->replay(); !r) return fail(r.error());
  if (auto r = spool->open_for_append(); !r) return fail(r.error());
  if (spool->pending_count() > 0 || spool->corrupt_lines() > 0) {
    log::info("spool_replayed", {{"path", spool->path().string()},
                                 {"pending", spool->pending_count()},
                                 {"pending_bytes", spool->pending_bytes()},
                                 {"corrupt_lines", spool->corrupt_lines()}});
  }
  return spool;
}

Spool::~Spool() {
  if (fd_ >= 0) ::close(fd_);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

void Spool::add_pending(SpoolRecord record, std::uint64_t line_bytes) {
  const std::uint64_t order = next_order_++;
  pending_bytes_ += record.payload.size();
  order_of_.emplace(record.id, order);
  pending_.emplace(order, Entry{std::move(record), line_bytes});
}

Result<void> Spool::replay() {
  std::error_code ec;
  if (!std::filesystem::exists(options_.path, ec)) return {};
  std::ifstream in(options_.path, std::ios::binary);
  if (!in) return fail(io_error("cannot read spool journal", options_.path, errno));
  std::string line;
  std::uint64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    const bool torn = in.eof();  // the last line had no newline: a write cut short
    const std::uint64_t bytes = line.size() + (torn ? 0 : 1);
    journal_bytes_ += bytes;
    auto skip = [&](std::string_view why) {
      ++corrupt_lines_;
      acked_bytes_ += bytes;  // dead weight: dropped at the next compaction
      log::warn(
          "spool_corrupt_line",
          {{"path", options_.path.string()}, {"line", line_no}, {"reason", why}, {"bytes", bytes}});
    };
    if (line.empty()) {
      acked_bytes_ += bytes;
      continue;
    }
    nlohmann::json doc = nlohmann::json::parse(line, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) {
      skip(torn ? "torn last line" : "not JSON");
      continue;
    }
    auto op = doc.find("op");
    auto id = doc.find("id");
    if (op == doc.end() || !op->is_string() || id == doc.end() || !id->is_string()) {
      skip("missing op or id");
      continue;
    }
    const std::string id_text = id->get<std::string>();
    if (*op == "put") {
      auto key = doc.find("key");
      auto payload = doc.find("payload");
      if (key == doc.end() || !key->is_string() || payload == doc.end() || !payload->is_string()) {
        skip("put without key or payload");
        continue;
      }
      if (order_of_.contains(id_text)) {
        skip("duplicate put");
        continue;
      }
      add_pending(SpoolRecord{id_text, key->get<std::string>(), payload->get<std::string>()},
                  bytes);
    } else if (*op == "ack") {
      acked_bytes_ += bytes;
      auto it = order_of_.find(id_text);
      if (it != order_of_.end()) {
        auto entry = pending_.find(it->second);
        acked_bytes_ += entry->second.line_bytes;
        pending_bytes_ -= entry->second.record.payload.size();
        pending_.erase(entry);
        order_of_.erase(it);
      }
    } else {
      skip("unknown op");
    }
  }
  return {};
}

Result<void> Spool::open_for_append() {
  fd_ = ::open(options_.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) return fail(io_error("cannot open spool journal", options_.path, errno));
  // A torn last line must not swallow the next entry: start on a fresh line.
  const off_t size = ::lseek(fd_, 0, SEEK_END);
  if (size > 0) {
    char last = '\n';
    int rfd = ::open(options_.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (rfd >= 0) {
      if (::pread(rfd, &last, 1, size - 1) != 1) last = '\n';
      ::close(rfd);
    }
    if (last != '\n') return write_line("\n", true);
  }
  return {};
}

Result<void> Spool::write_line(const std::string& line, bool sync) {
  std::size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      if (done > 0) {
        // Remove the partial entry so the journal stays line-aligned (best effort).
        [[maybe_unused]] int rc = ::ftruncate(fd_, static_cast<off_t>(journal_bytes_));
      }
      return fail(io_error("spool write failed", options_.path, err));
    }
    done += static_cast<std::size_t>(n);
  }
  if (sync && options_.sync && ::fdatasync(fd_) != 0) {
    return fail(io_error("spool flush failed", options_.path, errno));
  }
  journal_bytes_ += line.size();
  return {};
}

Result<void> Spool::append(const SpoolRecord& record) {
  return append_batch(std::vector<SpoolRecord>{record});
}

Result<void> Spool::append_batch(const std::vector<SpoolRecord>& records) {
  std::string lines;
  std::vector<std::uint64_t> sizes;
  std::set<std::string_view> batch_ids;
  for (const SpoolRecord& record : records) {
    if (order_of_.contains(record.id) || !batch_ids.insert(record.id).second) {
      return fail(Error(ErrorCategory::internal, "record id already pending in the spool")
                      .with("id", record.id)
                      .with("path", options_.path.string()));
    }
    std::string line = put_line(record);
    sizes.push_back(line.size());
    lines += line;
  }
  if (records.empty()) return {};
  if (journal_bytes_ + lines.size() > options_.max_bytes && acked_bytes_ > 0) {
    if (auto r = compact(); !r) return r;
  }
  if (journal_bytes_ + lines.size() > options_.max_bytes) {
    log::error("spool_full", {{"path", options_.path.string()},
                              {"pending", pending_count()},
                              {"journal_bytes", journal_bytes_},
                              {"max_bytes", options_.max_bytes}});
    return fail(Error(ErrorCategory::sink,
                      "spool full: deliveries are not draining; record refused, not dropped", true)
                    .with("path", options_.path.string())
                    .with("pending", std::to_string(pending_count()))
                    .with("max_bytes", std::to_string(options_.max_bytes)));
  }
  if (auto r = write_line(lines, true); !r) return r;
  for (std::size_t i = 0; i < records.size(); ++i) add_pending(records[i], sizes[i]);
  return {};
}

Result<void> Spool::ack(std::string_view id) {
  auto it = order_of_.find(id);
  if (it == order_of_.end()) return {};
  // Not flushed on its own: an ack lost in a crash costs one resend (a duplicate by id, which
  // at-least-once allows), while flushing every ack would halve throughput. The next flushed
  // append or compaction makes it durable.
  const std::string line = ack_line(id);
  if (auto r = write_line(line, /*sync=*/false); !r) return r;
  auto entry = pending_.find(it->second);
  acked_bytes_ += entry->second.line_bytes + line.size();
  pending_bytes_ -= entry->second.record.payload.size();
  pending_.erase(entry);
  order_of_.erase(it);
  if (journal_bytes_ > 64 * 1024 &&
      static_cast<double>(acked_bytes_) >
          options_.compact_when_acked_fraction * static_cast<double>(journal_bytes_)) {
    return compact();
  }
  return {};
}

Result<void> Spool::compact() {
  const std::filesystem::path tmp = options_.path.string() + ".compact";
  int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) return fail(io_error("cannot create spool compaction file", tmp, errno));
  std::uint64_t size = 0;
  std::map<std::uint64_t, std::uint64_t> new_line_bytes;
  for (const auto& [order, entry] : pending_) {
    const std::string line = put_line(entry.record);
    std::size_t done = 0;
    while (done < line.size()) {
      ssize_t n = ::write(out, line.data() + done, line.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int err = errno;
        ::close(out);
        std::filesystem::remove(tmp);
        return fail(io_error("spool compaction failed", tmp, err));
      }
      done += static_cast<std::size_t>(n);
    }
    size += line.size();
    new_line_bytes[order] = line.size();
  }
  if (::fsync(out) != 0 || ::close(out) != 0) {
    const int err = errno;
    std::filesystem::remove(tmp);
    return fail(io_error("spool compaction flush failed", tmp, err));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, options_.path, ec);
  if (ec) {
    std::filesystem::remove(tmp);
    return fail(Error(ErrorCategory::sink, "spool compaction rename failed: " + ec.message())
                    .with("path", options_.path.string()));
  }
  if (int dir =
          ::open(options_.path.parent_path().empty() ? "." : options_.path.parent_path().c_str(),
                 O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      dir >= 0) {
    ::fsync(dir);  // make the rename itself durable
    ::close(dir);
  }
  ::close(fd_);
  fd_ = -1;
  journal_bytes_ = size;
  acked_bytes_ = 0;
  for (auto& [order, entry] : pending_) entry.line_bytes = new_line_bytes[order];
  return open_for_append();
}

std::vector<SpoolRecord> Spool::pending() const {
  std::vector<SpoolRecord> out;
  out.reserve(pending_.size());
  for (const auto& [order, entry] : pending_) out.push_back(entry.record);
  return out;
}

}  // namespace naap::reports
