// Trickle publisher: one channel, segments POSTed as streamed chunked bodies (PROTOCOL.md §1).
//
// Behaviour (go-livepeer's publisher and PROTOCOL.md §1.7–1.8):
// - seqs are explicit, from `start_seq` upward, or learned with GET {ch}/next (join mode);
// - the POST for the next seq is always open in advance (preconnected) with no body byte yet;
//   the server's interim 100 Continue keepalives on it are tolerated;
// - a segment whose POST failed before any byte was sent is retried on the same seq on a new
//   connection; once bytes were sent, the rest is dropped and DELETE {ch}/{seq} releases its
//   readers, and publishing continues with seq + 1;
// - 404 or Lp-Trickle-Closed end the publisher (the channel is gone or closed);
// - close() waits for in-flight segments (bounded), then sends DELETE {ch};
// - a POST for seq N is never opened while our segment N-5 is unanswered: it would take that
//   segment's ring slot on the server and cut its upload short (the writer buffers meanwhile).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "naap/core/error.hpp"
#include "naap/transport/http_engine.hpp"

namespace naap::trickle {

struct PublisherOptions {
  std::optional<std::int64_t> start_seq = 0;   // explicit first seq; nullopt = join via /next
  bool reset = false;                          // send Lp-Trickle-Reset on the first POST
  std::string content_type = "video/MP2T";     // POST Content-Type (ignored by existing channels)
  http::TlsOptions tls;                        // certificate policy for https channels
  std::chrono::milliseconds retry_delay{250};  // before re-POSTing a seq with 0 bytes sent
  int max_attempts_per_seq = 3;                // POST attempts for one seq with 0 bytes sent
  int max_consecutive_errors = 5;              // failed POSTs in a row before the publisher fails
  std::chrono::milliseconds connect_timeout{5'000};  // per POST connection
  std::chrono::milliseconds close_timeout{5'000};    // wait for in-flight segments on close()
};

enum class PublisherEnd {
  closed_by_us,       // close() finished (DELETE {ch} sent)
  channel_closed,     // the server answered Lp-Trickle-Closed
  channel_not_found,  // 404: the channel no longer exists
  failed,             // too many consecutive errors, or join failed
};
std::string_view to_string(PublisherEnd end);

// Result of one segment's POST.
struct SegmentOutcome {
  std::int64_t seq = 0;        // segment seq
  std::uint64_t bytes = 0;     // body bytes sent for this segment
  int attempts = 0;            // POSTs made for this seq (1 unless retried)
  bool complete = false;       // the server acknowledged the whole segment with 200
  bool deleted = false;        // DELETE {ch}/{seq} was sent after a mid-segment failure
  std::optional<Error> error;  // why it did not complete
  http::Timings timings;       // timings of the last POST
};

struct PublisherCallbacks {
  // The first POST is open; next_segment() works from now on (immediately after start() with
  // an explicit start_seq, after GET /next answered in join mode).
  std::function<void(std::int64_t first_seq)> on_ready;
  std::function<void(const SegmentOutcome&)> on_segment;  // each segment, once, when done
  std::function<void(PublisherEnd, const std::optional<Error>&)> on_end;  // once, last
};

class TricklePublisher;

// Writes the body of one segment. Obtained from TricklePublisher::next_segment().
class SegmentWriter {
 public:
  std::int64_t seq() const { return seq_; }
  // Appends bytes to the segment body. Returns false when the segment can take no more (its
  // POST failed after bytes were sent, or the publisher ended): the bytes are dropped.
  bool write(std::string_view bytes);
  // Ends the segment body.
  void finish();
  bool finished() const { return finished_; }
  bool dropped() const { return dropped_; }
  // Bytes written but not yet sent; producers should wait for on_drain when this grows.
  std::size_t buffered_bytes() const;
  void set_on_drain(std::function<void()> callback, std::size_t low_water_bytes);

 private:
  friend class TricklePublisher;
  std::weak_ptr<TricklePublisher> publisher_;
  std::int64_t seq_ = 0;
  bool finished_ = false;
  bool dropped_ = false;
  std::function<void()> on_drain_;
  std::size_t low_water_ = 0;
};

class TricklePublisher : public std::enable_shared_from_this<TricklePublisher> {
 public:
  // Fails with a config error when channel_url is not a valid channel URL.
  static Result<std::shared_ptr<TricklePublisher>> create(http::Engine& engine,
                                                          std::string channel_url,
                                                          PublisherOptions options,
                                                          PublisherCallbacks callbacks);
  ~TricklePublisher();

  // Opens the first POST (after GET /next in join mode). Call once.
  void start();
  // Starts the next segment on the preconnected POST and preconnects the one after. An
  // unfinished previous segment is finished first. Returns nullptr before on_ready (join mode)
  // and once the publisher is closing or ended.
  std::shared_ptr<SegmentWriter> next_segment();
  // Finishes the current segment, waits for in-flight segments (up to close_timeout), cancels
  // the idle preconnected POST and sends DELETE {ch}; on_end(closed_by_us) follows.
  void close();

  // Segments whose POST has started carrying data and has not completed: go-livepeer's swap
  // rule fires at 3 (orchestrator too slow).
  std::size_t in_flight() const;
  std::int64_t next_seq() const { return next_seq_; }
  bool ended() const { return ended_; }
  const std::string& channel_url() const { return url_; }

  // Totals for reports and tests.
  struct Stats {
    std::uint64_t segments_started = 0;    // next_segment() calls that returned a writer
    std::uint64_t segments_completed = 0;  // acknowledged with 200
    std::uint64_t segments_failed = 0;     // dropped or deleted
    std::uint64_t bytes_sent = 0;          // body bytes handed to the network
    std::uint64_t retries = 0;             // same-seq re-POSTs after a zero-byte failure
    std::uint64_t deletes_sent = 0;        // DELETE {ch}/{seq} requests
    std::uint64_t interim_responses = 0;   // 100 Continue keepalives seen
    std::uint64_t slot_waits = 0;          // POSTs held until seq-5 was answered
  };
  const Stats& stats() const { return stats_; }

  struct Post;  // one POST attempt (internal)

 private:
  TricklePublisher(http::Engine& engine, std::string url, PublisherOptions options,
                   PublisherCallbacks callbacks);
  friend class SegmentWriter;

  void join();
  void open_preconnect();
  void start_post(const std::shared_ptr<Post>& post, bool fresh_connection, bool send_reset);
  bool slot_busy(std::int64_t seq) const;
  void start_if_slot_free(const std::shared_ptr<Post>& post);
  void start_waiting_posts();
  void on_post_complete(const std::shared_ptr<Post>& post, const http::Outcome& outcome);
  void retry_segment(const std::shared_ptr<Post>& post, Error cause);
  void segment_done(const std::shared_ptr<Post>& post, bool complete, std::optional<Error> error,
                    const http::Outcome& outcome);
  void send_segment_delete(std::int64_t seq);
  void maybe_finish_close();
  void send_channel_delete();
  void end(PublisherEnd how, std::optional<Error> error);
  Post* post_for_writer(const SegmentWriter& writer) const;

  http::Engine& engine_;
  std::string url_;
  PublisherOptions options_;
  PublisherCallbacks callbacks_;
  std::int64_t next_seq_ = 0;                        // seq of the next segment to hand out
  bool started_ = false;                             // start() called
  bool first_post_pending_ = true;                   // the reset header still has to be sent
  bool closing_ = false;                             // close() called
  bool ended_ = false;                               // on_end delivered
  int consecutive_errors_ = 0;                       // failed POSTs in a row
  std::shared_ptr<Post> preconnected_;               // idle POST for next_seq_
  std::vector<std::shared_ptr<Post>> active_;        // POSTs carrying segments
  std::shared_ptr<http::Transfer> control_request_;  // /next or DELETE in progress
  std::weak_ptr<SegmentWriter> last_writer_;         // finished automatically by next_segment()
  bool ready_ = false;                               // on_ready delivered
  std::unique_ptr<struct PublisherTimers> timers_;
  Stats stats_;
};

}  // namespace naap::trickle
