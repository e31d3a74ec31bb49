// H.264 decoding behind one interface: software libavcodec or NVDEC (libavcodec with a CUDA
// device), chosen at creation. Frames come out as YUV420P in presentation order (the streams we
// handle have no B-frames) with the input packet's PTS.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "naap/core/error.hpp"
#include "naap/media/av_handles.hpp"
#include "naap/media/encoded_frame.hpp"

namespace naap::media {

struct DecoderOptions {
  enum class Backend {
    automatic,  // NVDEC when a CUDA device opens, software otherwise (one info log line)
    software,   // libavcodec on the CPU
    nvdec,      // NVDEC only: creation fails (media error) without a usable CUDA device
  };
  Backend backend = Backend::automatic;  // which decoder to create
  // Software slice threads per stream (>= 1). Never frame threads: each adds a frame of delay.
  // The streams we receive have one slice per frame, so more than 1 rarely helps.
  int threads = 1;
};

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

  // A low-delay decoder (AV_CODEC_FLAG_LOW_DELAY, slice threads only): one picture out per
  // access unit in, no frame held back. NVDEC pictures are copied to system memory and
  // converted to YUV420P, so callbacks see the same frames whatever the backend.
  static Result<std::unique_ptr<H264Decoder>> create(const DecoderOptions& options = {});

  // Decodes one access unit and delivers every picture available now. A broken packet counts
  // as an error and fails this call only; decoding resumes at the next keyframe.
  virtual Result<void> decode(const EncodedFrame& frame, const FrameCallback& on_frame) = 0;

  // End of stream: delivers the pictures still held, then accepts new input again.
  virtual Result<void> flush(const FrameCallback& on_frame) = 0;

  // "software" or "nvdec": the backend actually in use (the run record stores it).
  virtual std::string_view backend() const = 0;
  virtual const DecoderStats& stats() const = 0;
};

// Whether NVDEC can be used here: ok when libavcodec's H.264 decoder supports CUDA and a CUDA
// device opens; otherwise a media error saying why. The device is opened once per process and
// shared by every NVDEC decoder; the answer is remembered.
Result<void> probe_nvdec();

std::string_view to_string(DecoderOptions::Backend backend);

}  // namespace naap::media
