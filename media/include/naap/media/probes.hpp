// Prompt-change probe for METRICS.md's prompt_to_first_frame: finds the first output frame that
// shows a new prompt by comparing each frame's colour signature with the frames before the switch.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <vector>

#include "naap/media/av_handles.hpp"

namespace naap::media {

// A frame reduced to 192 numbers: the mean of each plane over an 8x8 grid of cells.
struct FrameSignature {
  static constexpr int k_grid = 8;                 // cells per side
  static constexpr int k_cells = k_grid * k_grid;  // cells per plane
  // [plane][cell]: plane 0 = Y, 1 = U, 2 = V; cells row-major; mean level, 0..255.
  std::array<std::array<float, k_cells>, 3> mean{};
};

// The signature of an 8-bit 4:2:0 frame (YUV420P / YUVJ420P); nullopt for other formats.
std::optional<FrameSignature> signature_of(const AVFrame& frame);

// How far a frame's colours are from another's, per plane (Y, U, V), in levels of 0..255: the
// mean absolute difference between the two sorted lists of cell means (the 1-D earth mover's
// distance between the cell-mean distributions). A uniform tint of d levels gives d; content
// that moves within the picture, same colours at other places, gives about 0.
using PlaneDistances = std::array<double, 3>;
PlaneDistances signature_distance(const FrameSignature& a, const FrameSignature& b);

struct PromptChangeOptions {
  std::size_t window_frames = 24;  // frames: the rolling baseline kept before the switch (1 s)
  double spread_factor = 3.0;      // k: threshold is k x the baseline's own spread...
  double floor_levels = 6.0;       // ...but never below this, levels of 0..255 per plane
};

// Detects "the first output frame that shows the new prompt" without knowing what the model
// does with a prompt: a frame counts as changed when, for any plane p (Y, U or V),
//
//   distance_p(frame, baseline) > max(floor_levels, spread_factor x spread_p)
//
// where baseline is the average of the window's sorted cell means (the distributions'
// barycentre) and spread_p the largest distance_p of a baseline frame to it. A moving picture
// with the same prompt stays within its own spread; a change of style (the emulator's tint, a
// model's new palette or brightness) moves a whole plane. Smallest detectable change with a
// steady baseline: floor_levels (6) of mean shift in one plane; the emulator's prompt styles
// differ by at least 24 in U or V. A new prompt that changes content but keeps the colour
// distribution (same palette, new objects) is not detected.
//
// Feed it real frames only (classify_frame == FrameClass::real), before and after the switch:
// loading and black frames have no colour and would count as changed. Not thread-safe.
class PromptChangeDetector {
 public:
  explicit PromptChangeDetector(PromptChangeOptions options = {});

  // A real output frame before the switch; the last window_frames are kept. Ignored once armed.
  void observe_baseline(const FrameSignature& signature);
  // The prompt switch was written: freezes the baseline and computes the thresholds.
  void arm();
  // After arm(): whether this frame shows the change. False before arm() and with no baseline
  // frame at all (prompt_to_first_frame is then unmeasured).
  bool is_changed(const FrameSignature& signature) const;
  // Distances of a frame to the frozen baseline, per plane (zeros before arm()).
  PlaneDistances distance(const FrameSignature& signature) const;
  // Back to observing with an empty baseline (after a detection, before the next switch).
  void reset();

  bool armed() const { return armed_; }
  std::size_t baseline_frames() const { return window_.size(); }
  // Per-plane thresholds in levels, valid after arm().
  const PlaneDistances& thresholds() const { return thresholds_; }

 private:
  PromptChangeOptions options_;         // as created
  std::vector<FrameSignature> window_;  // baseline frames, a ring of up to window_frames
  std::size_t next_ = 0;                // ring index the next baseline frame replaces
  bool armed_ = false;                  // arm() was called since the last reset()
  FrameSignature reference_;            // per plane: mean of the window's sorted cell means
  PlaneDistances thresholds_{};         // per plane, levels: the decision rule's right side
};

}  // namespace naap::media
