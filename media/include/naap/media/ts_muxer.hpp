// MPEG-TS segments in memory: each segment comes from a fresh libavformat "mpegts" muxer, so it
// starts with SDT, PAT and PMT and decodes on its own; timestamps pass through unchanged.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "naap/core/error.hpp"
#include "naap/media/av_handles.hpp"
#include "naap/media/encoded_frame.hpp"

namespace naap::media {

struct MuxerOptions {
  int width = 512;   // pixels, written into the stream's codec parameters
  int height = 512;  // pixels
  // Write each video PES's length (a demuxer can then emit a frame on its last byte). false
  // writes 0 like the ai-runner's ffmpeg muxer does: a frame ends only when the next starts.
  bool write_pes_length = true;
};

struct MuxerStats {
  std::uint64_t segments = 0;  // segments begun
  std::uint64_t frames = 0;    // frames written
  std::uint64_t bytes = 0;     // bytes handed to on_bytes
  std::uint64_t errors = 0;    // frames libavformat refused
};

class TsSegmentMuxer {
 public:
  // Receives the muxed bytes, in order, as they are produced. Bytes of a frame reach it before
  // write() returns.
  using BytesCallback = std::function<void(std::string_view)>;

  static Result<std::unique_ptr<TsSegmentMuxer>> create(const MuxerOptions& options,
                                                        BytesCallback on_bytes);
  ~TsSegmentMuxer();
  TsSegmentMuxer(const TsSegmentMuxer&) = delete;
  TsSegmentMuxer& operator=(const TsSegmentMuxer&) = delete;

  // Starts a segment with a fresh muxer (ends the open one first, if any).
  Result<void> begin_segment();
  // Writes one access unit (Annex B, 90 kHz pts/dts) and flushes its bytes to on_bytes.
  // Refused without an open segment or when libavformat rejects it (e.g. DTS going back).
  Result<void> write(const EncodedFrame& frame);
  // Writes the trailer, flushes and closes the segment; a no-op without an open segment.
  Result<void> end_segment();

  bool in_segment() const { return output_.format != nullptr; }
  const MuxerStats& stats() const { return stats_; }

  // Use create(); public for std::make_unique.
  TsSegmentMuxer(MuxerOptions options, BytesCallback on_bytes, PacketPtr packet);

 private:
  static int on_write(void* opaque, std::uint8_t* buffer, int size);

  MuxerOptions options_;    // as created
  BytesCallback on_bytes_;  // where the bytes go
  PacketPtr packet_;        // reused for every frame
  OutputFormat output_;     // the open segment's muxer and I/O, empty between segments
  MuxerStats stats_;        // counters, see MuxerStats
};

}  // namespace naap::media
