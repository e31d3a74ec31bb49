// Output side of a session (private to workloads): output segment bytes → push demux with
// arrival stamps → decode → classify → prompt signature, run on a SerialQueue off the io thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "naap/core/worker_pool.hpp"
#include "naap/media/decoder.hpp"
#include "naap/media/probes.hpp"
#include "naap/media/ts_demuxer.hpp"
#include "naap/reports/timeline.hpp"

namespace naap::workloads {

using Clock = std::chrono::steady_clock;

// One output frame as the pipeline saw it.
struct DecodedFrame {
  std::int64_t pts = 0;                      // 90 kHz, as received
  Clock::time_point arrival;                 // the TS packet starting its PES arrived
  std::optional<Clock::time_point> decoded;  // decoder delivered it (none: demux only)
  reports::FrameKind kind = reports::FrameKind::real;
  std::optional<media::FrameSignature> signature;  // real decoded frames only (prompt probe)
};

// Thread-safe front: push()/end_segment() from the io thread; the work runs on `queue`, and
// batches of frames come back through `deliver`, which the owner posts to its io thread.
class OutputPipeline : public std::enable_shared_from_this<OutputPipeline> {
 public:
  using Deliver = std::function<void(std::vector<DecodedFrame>&&)>;

  // decode=false: demux only (frames count as real, nothing decoded).
  static Result<std::shared_ptr<OutputPipeline>> create(WorkerPool& pool, bool decode,
                                                        const media::DecoderOptions& options,
                                                        Deliver deliver);

  void push(std::string bytes, Clock::time_point arrival);  // a chunk of an output segment
  void end_segment();                                       // the segment ended
  void close();  // no more deliveries after this (safe from the io thread)
  std::string backend() const { return backend_; }
  std::uint64_t decode_errors() const;  // packets the decoder rejected
  // Output segments that were not clean MPEG-TS/H.264: bytes the demuxer had to skip, broken
  // tables or PES packets, or bytes that yielded no frame at all.
  std::uint64_t corrupt_segments() const { return corrupt_segments_; }

 private:
  OutputPipeline(WorkerPool& pool, bool decode, Deliver deliver);
  void on_packet(media::EncodedFrame&& frame);
  void flush_batch();

  std::shared_ptr<SerialQueue> queue_;                  // runs every step below in order
  bool decode_;                                         // full decode or demux only
  Deliver deliver_;                                     // batches out
  std::unique_ptr<media::H264Decoder> decoder_;         // when decoding
  std::string backend_ = "none";                        // decoder backend name
  media::TsDemuxer demuxer_;                            // push demuxer with arrival stamps
  std::map<std::int64_t, Clock::time_point> arrivals_;  // PTS handed to the decoder → arrival
  std::vector<DecodedFrame> batch_;                     // frames of the current push
  std::atomic<bool> closed_{false};                     // deliveries stopped
  std::atomic<std::uint64_t> decode_errors_{0};         // rejected packets
  std::atomic<std::uint64_t> corrupt_segments_{0};      // see corrupt_segments()
  std::uint64_t segment_bytes_ = 0;                     // bytes of the current segment
  std::uint64_t segment_frames_ = 0;                    // frames demuxed from it
  std::uint64_t demux_errors_seen_ = 0;                 // demuxer error total at its start
};

}  // namespace naap::workloads
