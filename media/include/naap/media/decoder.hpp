// H.264 decoding behind one interface: software libavcodec today, a GPU backend later. Frames
// come out in presentation order (the streams we handle have no B-frames) with the input
// packet's PTS.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "naap/core/error.hpp"
#include "naap/media/av_handles.hpp"
#include "naap/media/encoded_frame.hpp"

namespace naap::media {

struct DecoderStats {
  std::uint64_t packets = 0;  // access units sent to the decoder
  std::uint64_t frames = 0;   // pictures delivered to callbacks
  std::uint64_t errors = 0;   // packets or receive calls the decoder rejected
};

class H264Decoder {
 public:
  // Called once per decoded picture. The frame (YUV420P for 8-bit 4:2:0 input) belongs to
  // the decoder and is only valid during the call; its buffers may be reference pictures, so
  // modify it only through the frame_ops functions (they copy on write) or av_frame_ref it.
  // frame.pts is the PTS of the packet it came from, 90 kHz ticks.
  using FrameCallback = std::function<void(AVFrame&)>;

  virtual ~H264Decoder() = default;

  // The software decoder (libavcodec h264, one thread, low delay).
  static Result<std::unique_ptr<H264Decoder>> create();

  // Decodes one access unit and delivers every picture available now. A broken packet counts
  // as an error and fails this call only; decoding resumes at the next keyframe.
  virtual Result<void> decode(const EncodedFrame& frame, const FrameCallback& on_frame) = 0;

  // End of stream: delivers the pictures still held, then accepts new input again.
  virtual Result<void> flush(const FrameCallback& on_frame) = 0;

  // "software" (later also a GPU backend name).
  virtual std::string_view backend() const = 0;
  virtual const DecoderStats& stats() const = 0;
};

}  // namespace naap::media
