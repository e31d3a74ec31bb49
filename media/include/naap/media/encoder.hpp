// H.264 encoding with libx264 the way the ai-runner does it (superfast, zerolatency, no
// B-frames, an IDR every gop_seconds of PTS), one packet out per frame in, PTS kept exactly.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "naap/core/error.hpp"
#include "naap/media/av_handles.hpp"
#include "naap/media/encoded_frame.hpp"

namespace naap::media {

struct EncoderOptions {
  int width = 512;                   // pixels; frames of any other size are refused
  int height = 512;                  // pixels
  double fps = 24.0;                 // frames per second: a rate-control hint only
  std::string preset = "superfast";  // x264 preset (the runner's)
  std::string tune = "zerolatency";  // x264 tune: no lookahead, no frame delay
  double gop_seconds = 2.0;          // seconds of PTS between forced IDRs (the runner's GOP_SECS)
  int crf = 23;                      // x264 constant rate factor, used when bitrate_bps is 0
  std::int64_t bitrate_bps = 0;      // target bits per second; 0 selects CRF
  int threads = 1;                   // x264 threads; 1 because streams share a small pool
};

struct EncoderStats {
  std::uint64_t frames = 0;     // frames accepted and sent to x264
  std::uint64_t packets = 0;    // packets delivered
  std::uint64_t keyframes = 0;  // IDR packets delivered
  std::uint64_t refused = 0;    // frames refused (PTS not increasing, wrong size or format)
  std::uint64_t bytes = 0;      // compressed bytes delivered
};

class H264Encoder {
 public:
  using PacketCallback = std::function<void(EncodedFrame&&)>;

  static Result<std::unique_ptr<H264Encoder>> create(const EncoderOptions& options);

  // Encodes one YUV420P frame (its own pts field is ignored) at `pts` (90 kHz ticks) and
  // delivers the packet(s) produced now; with zerolatency that is exactly one, whose pts is
  // `pts`. Forces an IDR on the first frame and once `pts` is gop_seconds past the last IDR.
  // A pts not above the previous one is refused (media error) and never reaches x264.
  Result<void> encode(const AVFrame& frame, std::int64_t pts, const PacketCallback& on_packet);

  // End of stream: delivers anything x264 still holds. The encoder cannot be used afterwards.
  Result<void> flush(const PacketCallback& on_packet);

  const EncoderOptions& options() const { return options_; }
  const EncoderStats& stats() const { return stats_; }

  // Use create(); public for std::make_unique.
  H264Encoder(EncoderOptions options, CodecContextPtr context, PacketPtr packet, FramePtr frame);

 private:
  Result<void> receive(const PacketCallback& on_packet);

  EncoderOptions options_;            // as created
  CodecContextPtr context_;           // libx264 through libavcodec
  PacketPtr packet_;                  // reused for every packet
  FramePtr frame_;                    // reused reference to the caller's frame
  std::int64_t gop_ticks_ = 0;        // IDR spacing, 90 kHz ticks
  std::int64_t last_pts_ = k_no_pts;  // last accepted pts, 90 kHz ticks
  std::int64_t last_idr_pts_ = 0;     // pts of the last forced IDR, 90 kHz ticks
  EncoderStats stats_;                // counters, see EncoderStats
};

}  // namespace naap::media
