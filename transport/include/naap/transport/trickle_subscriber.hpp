// Trickle subscriber: reads a channel segment by segment (PROTOCOL.md §1.4–1.8).
//
// - starts at -2 (segment being written), -1 (next segment) or an explicit seq;
// - follows Lp-Trickle-Seq (the seq actually served) and requests seq + 1 next, preconnecting
//   that GET as soon as the current segment's head arrives (its body waits, paused, until the
//   current segment ends, so memory stays bounded);
// - 470: behind the edge → jump to Lp-Trickle-Latest; ahead → wait 250 ms, retry the same seq;
// - empty segments are delivered as segments of 0 bytes and passed over;
// - end of stream on Lp-Trickle-Closed or 404, reported as distinct reasons;
// - a GET that waited 20 s without a response head is cancelled and re-issued (same seq);
// - other failures are retried 300 ms apart; the 5th consecutive failure ends the stream.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "naap/core/error.hpp"
#include "naap/transport/http_engine.hpp"

namespace naap::trickle {

inline constexpr std::int64_t k_seq_next = -1;     // the segment that will be written next
inline constexpr std::int64_t k_seq_current = -2;  // the segment being written now

struct SubscriberOptions {
  std::int64_t start_seq = k_seq_next;                // -1, -2 or an explicit seq >= 0
  http::TlsOptions tls;                               // certificate policy for https
  std::chrono::milliseconds pending_refresh{20'000};  // re-issue a GET with no head after this
  std::chrono::milliseconds retry_delay{300};         // between failed attempts
  std::chrono::milliseconds ahead_wait{250};          // 470 with Latest < requested
  int max_consecutive_errors = 5;                     // the stream ends at this many
  std::chrono::milliseconds connect_timeout{5'000};   // per GET connection
  bool preconnect = true;                             // open GET seq+1 early
};

enum class SubscriberEnd {
  channel_closed,     // Lp-Trickle-Closed
  channel_not_found,  // 404: the channel is gone
  too_many_errors,    // max_consecutive_errors failures in a row
  stopped,            // stop() was called
};
std::string_view to_string(SubscriberEnd end);

// What the server said about a segment when its body started.
struct SegmentHead {
  std::int64_t seq = 0;        // seq served (Lp-Trickle-Seq, else the seq requested)
  std::int64_t requested = 0;  // seq asked for (may be -1 / -2)
  std::int64_t latest = -1;    // Lp-Trickle-Latest when present, else -1
  std::string content_type;    // channel mime
  std::int64_t wait_us = 0;    // from sending the GET to its response head
};

// How a segment ended.
struct SegmentEnd {
  std::int64_t seq = 0;        // seq served
  std::uint64_t bytes = 0;     // body bytes delivered
  bool complete = false;       // the body ended normally (false: cut by an error)
  std::optional<Error> error;  // why it was cut
};

struct SubscriberCallbacks {
  std::function<void(const SegmentHead&)> on_segment_start;
  std::function<void(std::int64_t seq, std::string_view bytes)> on_data;
  std::function<void(const SegmentEnd&)> on_segment_end;
  std::function<void(SubscriberEnd, const std::optional<Error>&)> on_end;  // once, last
};

class TrickleSubscriber : public std::enable_shared_from_this<TrickleSubscriber> {
 public:
  // Fails with a config error for an invalid URL or a start seq below -2.
  static Result<std::shared_ptr<TrickleSubscriber>> create(http::Engine& engine,
                                                           std::string channel_url,
                                                           SubscriberOptions options,
                                                           SubscriberCallbacks callbacks);
  ~TrickleSubscriber();

  void start();
  // Cancels everything; on_end(stopped) follows unless the stream already ended.
  void stop();

  bool ended() const { return ended_; }
  // The seq the subscriber will request next (after the current segment).
  std::int64_t next_seq() const { return next_seq_; }
  // Last Lp-Trickle-Latest seen (-1 if none): Latest - seq >= 2 means we lag behind the writer.
  std::int64_t last_latest() const { return last_latest_; }
  const std::string& channel_url() const { return url_; }

  struct Stats {
    std::uint64_t segments = 0;          // segments whose body ended normally
    std::uint64_t empty_segments = 0;    // of which had no bytes
    std::uint64_t cut_segments = 0;      // segments cut by an error
    std::uint64_t bytes = 0;             // body bytes delivered
    std::uint64_t jumps = 0;             // 470 behind → jumped to Latest
    std::uint64_t skipped_segments = 0;  // seqs skipped by jumps
    std::uint64_t ahead_waits = 0;       // 470 ahead → waited
    std::uint64_t refreshes = 0;         // GETs re-issued after pending_refresh
    std::uint64_t errors = 0;            // failed attempts (all, not only consecutive)
  };
  const Stats& stats() const { return stats_; }

  struct Get;  // one GET (internal)

 private:
  TrickleSubscriber(http::Engine& engine, std::string url, SubscriberOptions options,
                    SubscriberCallbacks callbacks);

  std::shared_ptr<Get> issue(std::int64_t seq, bool current);
  void on_head(const std::shared_ptr<Get>& get);
  void on_complete(const std::shared_ptr<Get>& get);
  void promote_next();
  void request_current(std::int64_t seq, std::chrono::milliseconds delay);
  void count_error(Error error, std::int64_t retry_seq);
  void end(SubscriberEnd how, std::optional<Error> error);

  http::Engine& engine_;
  std::string url_;
  SubscriberOptions options_;
  SubscriberCallbacks callbacks_;
  std::int64_t next_seq_ = k_seq_next;  // what to request after the current segment
  std::int64_t last_latest_ = -1;       // last Lp-Trickle-Latest
  int consecutive_errors_ = 0;          // failures in a row
  bool started_ = false;
  bool ended_ = false;
  std::shared_ptr<Get> current_;  // the GET whose body is being delivered
  std::shared_ptr<Get> next_;     // preconnected GET for the following seq
  std::unique_ptr<struct SubscriberTimers> timers_;
  Stats stats_;
};

}  // namespace naap::trickle
