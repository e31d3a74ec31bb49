// Operations on 8-bit YUV 4:2:0 frames that the emulated runner and the gateway need: scaling
// like the runner, the prompt's visible tint, the loading overlay, frame classification and a
// synthetic test picture. Functions that write to a frame copy its buffers first when they are
// shared (a decoder's reference pictures stay intact), hence Result<void>.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "naap/core/error.hpp"
#include "naap/media/av_handles.hpp"

namespace naap::media {

// A writable YUV420P frame with its own buffers.
Result<FramePtr> make_frame(int width, int height);

// Recycles the storage of YUV420P frames of one size: a frame's buffer returns to the pool when
// the frame is freed (even after the pool itself is gone). Not thread-safe.
class FramePool {
 public:
  Result<FramePtr> get(int width, int height);

 private:
  BufferPoolPtr pool_;   // buffers of buffer_size_ bytes
  int width_ = 0;        // pixels, the size pool_ serves
  int height_ = 0;       // pixels
  int buffer_size_ = 0;  // bytes per frame, padding included
};

// What scale_crop keeps between calls: one per stream.
struct ScalerCache {
  SwsContextPtr sws;  // reused while the source size, crop and format stay the same
  FramePool frames;   // output frames' storage
};

// Scales to cover width x height, then crops the centre (the runner's resize): any aspect
// ratio fills the whole output. Any software pixel format in; YUV420P out. When the source is
// already YUV420P of the right size the result shares its buffers (no copy).
Result<FramePtr> scale_crop(const AVFrame& src, int width, int height, ScalerCache& cache);

// Copies the frame's buffers if another reference shares them, so it can be written to.
Result<void> make_writable(AVFrame& frame);
// The same for YUV420P frames, the copy's storage coming from `pool` (no allocation per frame):
// what a per-frame loop calls before tinting a decoder's picture.
Result<void> make_writable(AVFrame& frame, FramePool& pool);

// A prompt's visible signature: constant chroma over the whole picture.
struct PromptStyle {
  std::uint8_t u = 128;  // Cb value, 0..255
  std::uint8_t v = 128;  // Cr value, 0..255
  friend bool operator==(const PromptStyle&, const PromptStyle&) = default;
};

// Deterministic from the prompt's SHA-256: one of 64 (u, v) points on a grid with steps of
// 24, every coordinate at least 40 from grey. Two prompts share a style with probability 1/64;
// callers that must tell prompts apart pick prompts whose styles differ.
PromptStyle style_for_prompt(std::string_view prompt);

// Keeps luma, sets both chroma planes to the style (a strong tint).
Result<void> apply_prompt_style(AVFrame& frame, PromptStyle style);

// Mean U and V over the central quarter of the picture; nullopt for non-4:2:0 frames.
std::optional<PromptStyle> measure_style(const AVFrame& frame);

// True when a measured style is the expected one: tolerance 11 per component, half the grid
// step, well above what H.264 at usual quality does to flat chroma.
bool style_matches(PromptStyle measured, PromptStyle expected);

// The runner's loading frame: the picture dimmed and made grey (luma halved toward black,
// chroma 128) with a bright spinner block circling the centre once per second of pts.
Result<void> draw_loading_overlay(AVFrame& frame, std::int64_t pts);

// Black: luma 16, chroma 128.
Result<void> fill_black(AVFrame& frame);

enum class FrameClass {
  real,     // picture with colour: model output or passthrough
  loading,  // greyscale: the runner's loading overlay
  black,    // dark and flat
};
// black: mean luma < 24 and luma standard deviation < 8; loading: fewer than 1% of sampled
// chroma values more than 16 from 128; real otherwise (and for formats other than 4:2:0).
FrameClass classify_frame(const AVFrame& frame);
std::string_view to_string(FrameClass frame_class);

// A deterministic moving picture with real colour, texture, motion and light noise: a
// realistic encoder load that no greyscale check mistakes for a loading frame.
Result<void> draw_test_pattern(AVFrame& frame, std::int64_t frame_index);

}  // namespace naap::media
