// Durable spool: nothing recorded is lost across restarts, SIGKILL, torn or corrupt lines, a
// full spool or a full disk; delivered records are forgotten and the journal compacts.
#include "naap/reports/spool.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "test_dir.hpp"

namespace naap::reports {
namespace {

namespace fs = std::filesystem;

class SpoolTest : public ::testing::Test {
 protected:
  SpoolOptions options() const { return SpoolOptions{.path = dir_ / "journal.jsonl"}; }
  std::unique_ptr<Spool> open(SpoolOptions o) {
    auto s = Spool::open(std::move(o));
    EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().describe());
    return s ? std::move(*s) : nullptr;
  }
  static SpoolRecord record(int i) {
    return SpoolRecord{"id-" + std::to_string(i), "stream-" + std::to_string(i % 3),
                       R"({"n":)" + std::to_string(i) + R"(,"text":"line\nbreak \"q\" ünïcode"})"};
  }
  void append_raw(std::string_view bytes) {
    std::ofstream(options().path, std::ios::app | std::ios::binary) << bytes;
  }

  test::TestDir tmp_{"naap-spool"};
  const fs::path& dir_ = tmp_.path();
};

TEST_F(SpoolTest, replays_every_unacknowledged_record_in_order_after_reopen) {
  {
    auto s = open(options());
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(s->append(record(i)));
    ASSERT_TRUE(s->ack("id-3"));
    ASSERT_TRUE(s->ack("id-7"));
    ASSERT_TRUE(s->ack("id-unknown")) << "unknown ids are ignored";
    EXPECT_EQ(s->pending_count(), 8u);
  }
  auto s = open(options());
  auto pending = s->pending();
  ASSERT_EQ(pending.size(), 8u);
  std::vector<int> want = {0, 1, 2, 4, 5, 6, 8, 9};
  for (std::size_t i = 0; i < want.size(); ++i) {
    const SpoolRecord r = record(want[i]);
    EXPECT_EQ(pending[i].id, r.id);
    EXPECT_EQ(pending[i].key, r.key);
    EXPECT_EQ(pending[i].payload, r.payload) << "payload bytes survive exactly";
  }
  EXPECT_EQ(s->corrupt_lines(), 0u);
}

TEST_F(SpoolTest, records_survive_sigkill_right_after_append) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto s = Spool::open(options());
    if (!s) ::_exit(2);
    for (int i = 0; i < 50; ++i) {
      if (!(*s)->append(record(i))) ::_exit(3);
    }
    (void)(*s)->ack("id-0");
    ::raise(SIGKILL);  // no destructor, no close: only what append() made durable remains
    ::_exit(4);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  auto s = open(options());
  EXPECT_EQ(s->pending_count(), 49u);
  EXPECT_EQ(s->pending().front().id, "id-1");
  EXPECT_EQ(s->pending().back().id, "id-49");
}

TEST_F(SpoolTest, torn_last_line_is_skipped_and_does_not_swallow_the_next_record) {
  {
    auto s = open(options());
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(s->append(record(i)));
  }
  append_raw(R"({"op":"put","id":"id-torn","key":"k","payl)");  // crash mid-write
  {
    auto s = open(options());
    EXPECT_EQ(s->pending_count(), 3u);
    EXPECT_EQ(s->corrupt_lines(), 1u);
    ASSERT_TRUE(s->append(record(3)));
  }
  auto s = open(options());
  ASSERT_EQ(s->pending_count(), 4u);
  EXPECT_EQ(s->pending().back().id, "id-3");
}

TEST_F(SpoolTest, corrupt_lines_are_counted_and_their_neighbours_kept) {
  {
    auto s = open(options());
    ASSERT_TRUE(s->append(record(0)));
  }
  append_raw("this is not json\n{\"op\":\"put\",\"id\":7}\n{\"op\":\"nope\",\"id\":\"x\"}\n");
  {
    auto s = open(options());
    ASSERT_TRUE(s->append(record(1)));
  }
  auto s = open(options());
  EXPECT_EQ(s->corrupt_lines(), 3u);
  ASSERT_EQ(s->pending_count(), 2u);
  EXPECT_EQ(s->pending()[1].id, "id-1");
}

TEST_F(SpoolTest, a_full_spool_refuses_loudly_and_drops_nothing) {
  SpoolOptions o = options();
  o.max_bytes = 1200;
  auto s = open(o);
  int accepted = 0;
  Error refused;
  for (int i = 0; i < 50; ++i) {
    auto r = s->append(record(i));
    if (!r) {
      refused = r.error();
      break;
    }
    ++accepted;
  }
  ASSERT_GT(accepted, 0);
  ASSERT_LT(accepted, 50);
  EXPECT_EQ(refused.category, ErrorCategory::sink);
  EXPECT_NE(refused.message.find("spool full"), std::string::npos);
  EXPECT_EQ(refused.get("pending"), std::to_string(accepted));
  EXPECT_EQ(s->pending_count(), static_cast<std::size_t>(accepted));
  // Deliveries free space again (the journal compacts on the next append).
  for (int i = 0; i < accepted; ++i) ASSERT_TRUE(s->ack("id-" + std::to_string(i)));
  EXPECT_TRUE(s->append(record(100)));
  EXPECT_LE(s->journal_bytes(), o.max_bytes);
}

TEST_F(SpoolTest, a_full_disk_fails_the_append_and_keeps_the_journal_readable) {
  {
    auto s = open(options());
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(s->append(record(i)));
  }
  const auto size = fs::file_size(options().path);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::signal(SIGXFSZ, SIG_IGN);  // write() then fails with EFBIG, like ENOSPC on a full disk
    rlimit lim{static_cast<rlim_t>(size + 40), static_cast<rlim_t>(size + 40)};
    ::setrlimit(RLIMIT_FSIZE, &lim);
    auto s = Spool::open(options());
    if (!s) ::_exit(2);
    auto r = (*s)->append(record(99));
    if (r) ::_exit(3);  // must fail
    if (r.error().category != ErrorCategory::sink) ::_exit(4);
    if (r.error().get("path").empty()) ::_exit(5);
    if ((*s)->pending_count() != 5) ::_exit(6);  // nothing half-recorded
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  auto s = open(options());
  EXPECT_EQ(s->pending_count(), 5u);
  EXPECT_EQ(s->corrupt_lines(), 0u) << "the partial write was truncated away";
}

TEST_F(SpoolTest, compaction_shrinks_the_journal_and_keeps_pending_records) {
  auto s = open(options());
  for (int i = 0; i < 2000; ++i) ASSERT_TRUE(s->append(record(i)));
  const auto before = s->journal_bytes();
  for (int i = 0; i < 1990; ++i) ASSERT_TRUE(s->ack("id-" + std::to_string(i)));
  EXPECT_LT(s->journal_bytes(), before / 2) << "acked records are compacted away";
  EXPECT_EQ(s->journal_bytes(), fs::file_size(options().path));
  s.reset();
  auto again = open(options());
  ASSERT_EQ(again->pending_count(), 10u);
  EXPECT_EQ(again->pending().front().id, "id-1990");
}

TEST_F(SpoolTest, a_batch_is_recorded_whole_or_not_at_all) {
  {
    auto s = open(options());
    std::vector<SpoolRecord> batch;
    for (int i = 0; i < 50; ++i) batch.push_back(record(i));
    ASSERT_TRUE(s->append_batch(batch));
    std::vector<SpoolRecord> with_dup = {record(100), record(101), record(100)};
    auto r = s->append_batch(with_dup);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().get("id"), "id-100");
    EXPECT_EQ(s->pending_count(), 50u) << "a refused batch records nothing";
  }
  auto s = open(options());
  ASSERT_EQ(s->pending_count(), 50u);
  EXPECT_EQ(s->pending()[49].id, "id-49");
}

TEST_F(SpoolTest, duplicate_ids_and_bad_paths_are_clear_errors) {
  auto s = open(options());
  ASSERT_TRUE(s->append(record(1)));
  auto dup = s->append(record(1));
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().get("id"), "id-1");
  auto missing = Spool::open(SpoolOptions{.path = dir_ / "no-such-dir" / "journal.jsonl"});
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().category, ErrorCategory::sink);
  EXPECT_NE(missing.error().get("path").find("no-such-dir"), std::string::npos);
}

}  // namespace
}  // namespace naap::reports
