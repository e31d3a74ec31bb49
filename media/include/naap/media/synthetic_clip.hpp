// A synthetic test clip already cut the way a publisher sends it: one standalone MPEG-TS
// segment per GOP, with each frame's byte range and PTS so its bytes can be paced in real time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "naap/core/error.hpp"

namespace naap::media {

struct ClipOptions {
  int width = 512;                   // pixels
  int height = 512;                  // pixels
  int fps_num = 24;                  // frame rate numerator, frames
  int fps_den = 1;                   // frame rate denominator, seconds
  double duration_s = 10.0;          // seconds of video; frames = round(duration_s * fps)
  double gop_seconds = 1.0;          // seconds per GOP, so per segment
  std::int64_t start_pts = 0;        // PTS of the first frame, 90 kHz ticks
  std::string preset = "ultrafast";  // x264 preset
  int crf = 23;                      // x264 constant rate factor
};

struct FrameSpan {
  std::int64_t pts = 0;        // 90 kHz ticks
  std::size_t end_offset = 0;  // bytes: offset in the segment just after this frame's data
};

struct ClipSegment {
  std::string bytes;              // a standalone MPEG-TS segment: tables, then an IDR first
  std::vector<FrameSpan> frames;  // in order; the first frame's bytes start at offset 0
  double duration_s = 0.0;        // seconds of PTS this segment covers
};

struct SegmentedClip {
  std::vector<ClipSegment> segments;  // in order, PTS strictly increasing across them
};

// PTS of frame `index`: start_pts + round(index * 90000 * fps_den / fps_num).
std::int64_t clip_frame_pts(const ClipOptions& options, std::int64_t index);

// Encodes draw_test_pattern frames with libx264 (no B-frames, an IDR every gop_seconds) and
// cuts one segment per GOP.
Result<SegmentedClip> encode_synthetic_clip(const ClipOptions& options);

}  // namespace naap::media
