// Synthetic clip: test pattern -> libx264 -> one MPEG-TS segment per GOP, frame offsets kept.
#include "naap/media/synthetic_clip.hpp"

#include <cmath>

#include "naap/media/encoder.hpp"
#include "naap/media/frame_ops.hpp"
#include "naap/media/ts_muxer.hpp"

namespace naap::media {

std::int64_t clip_frame_pts(const ClipOptions& options, std::int64_t index) {
  const std::int64_t num = options.fps_num;
  const std::int64_t scaled = index * k_ticks_per_second * options.fps_den;
  return options.start_pts + (scaled + num / 2) / num;
}

Result<SegmentedClip> encode_synthetic_clip(const ClipOptions& options) {
  if (options.fps_num <= 0 || options.fps_den <= 0 || !(options.duration_s > 0.0)) {
    return fail(ErrorCategory::config, "clip fps and duration must be positive");
  }
  const double fps = static_cast<double>(options.fps_num) / options.fps_den;
  const auto frame_count = static_cast<std::int64_t>(std::llround(options.duration_s * fps));
  if (frame_count <= 0) return fail(ErrorCategory::config, "clip shorter than one frame");

  auto encoder = H264Encoder::create(EncoderOptions{.width = options.width,
                                                    .height = options.height,
                                                    .fps = fps,
                                                    .preset = options.preset,
                                                    .gop_seconds = options.gop_seconds,
                                                    .crf = options.crf});
  if (!encoder) return fail(encoder.error());
  SegmentedClip clip;
  auto muxer = TsSegmentMuxer::create(
      MuxerOptions{.width = options.width, .height = options.height},
      [&clip](std::string_view bytes) { clip.segments.back().bytes.append(bytes); });
  if (!muxer) return fail(muxer.error());
  auto frame = make_frame(options.width, options.height);
  if (!frame) return fail(frame.error());

  Result<void> status;
  std::vector<std::int64_t> first_pts;  // per segment, 90 kHz ticks
  const auto on_packet = [&](EncodedFrame&& packet) {
    if (!status) return;
    if (packet.keyframe) {
      if (status = (*muxer)->end_segment(); !status) return;
      clip.segments.emplace_back();
      first_pts.push_back(packet.pts);
      status = (*muxer)->begin_segment();
    }
    if (!status) return;
    if (clip.segments.empty()) {
      status = fail(ErrorCategory::internal, "encoder did not start with a keyframe");
      return;
    }
    if (status = (*muxer)->write(packet); !status) return;
    ClipSegment& segment = clip.segments.back();
    segment.frames.push_back(FrameSpan{.pts = packet.pts, .end_offset = segment.bytes.size()});
  };
  for (std::int64_t i = 0; i < frame_count && status; ++i) {
    if (auto drawn = draw_test_pattern(**frame, i); !drawn) return fail(drawn.error());
    if (auto encoded = (*encoder)->encode(**frame, clip_frame_pts(options, i), on_packet);
        !encoded) {
      return fail(encoded.error());
    }
  }
  if (status) {
    if (auto flushed = (*encoder)->flush(on_packet); !flushed) return fail(flushed.error());
  }
  if (status) status = (*muxer)->end_segment();
  if (!status) return fail(status.error());

  const std::int64_t end_pts = clip_frame_pts(options, frame_count);
  for (std::size_t s = 0; s < clip.segments.size(); ++s) {
    const std::int64_t next = s + 1 < first_pts.size() ? first_pts[s + 1] : end_pts;
    clip.segments[s].duration_s =
        static_cast<double>(next - first_pts[s]) / static_cast<double>(k_ticks_per_second);
  }
  return clip;
}

}  // namespace naap::media
