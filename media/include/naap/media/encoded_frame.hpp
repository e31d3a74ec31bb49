// One compressed H.264 access unit with its MPEG-TS timestamps: what the demuxer emits, the
// decoder eats, the encoder produces and the segment muxer writes.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace naap::media {

struct EncodedFrame {
  std::string data;       // one Annex B access unit (start codes, no length prefixes)
  std::int64_t pts = 0;   // presentation time, 90 kHz ticks, unwrapped (may exceed 2^33)
  std::int64_t dts = 0;   // decode time, 90 kHz ticks, unwrapped
  bool keyframe = false;  // true when the access unit contains an IDR slice (NAL type 5)
  // When the TS packet starting this frame's PES (the one carrying its PTS) arrived, as passed
  // to TsDemuxer::push; latencies are measured from here, not from demux or decode completion.
  // Default-constructed when the source gave no time.
  std::chrono::steady_clock::time_point arrival{};
};

// True when an Annex B buffer holds an IDR slice. Stops at the first slice NAL, since every
// slice of one access unit is of the same kind.
bool contains_idr(std::string_view annexb);

}  // namespace naap::media
