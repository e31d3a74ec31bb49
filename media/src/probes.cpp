// Prompt-change probe: 8x8 cell-mean signatures and a baseline-relative change detector whose
// threshold scales with the baseline's own variation.
#include "naap/media/probes.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace naap::media {
namespace {

using Cells = std::array<float, FrameSignature::k_cells>;

bool is_yuv420(const AVFrame& frame) {
  return (frame.format == AV_PIX_FMT_YUV420P || frame.format == AV_PIX_FMT_YUVJ420P) &&
         frame.width >= FrameSignature::k_grid && frame.height >= FrameSignature::k_grid &&
         frame.data[0] != nullptr && frame.data[1] != nullptr && frame.data[2] != nullptr;
}

void cell_means(const AVFrame& frame, int plane, int width, int height, Cells& out) {
  constexpr int grid = FrameSignature::k_grid;
  std::array<std::uint64_t, FrameSignature::k_cells> sums{};
  for (int y = 0; y < height; ++y) {
    const std::uint8_t* row =
        frame.data[plane] + static_cast<std::ptrdiff_t>(y) * frame.linesize[plane];
    const int cy = y * grid / height;
    for (int cx = 0; cx < grid; ++cx) {
      const int x0 = cx * width / grid;
      const int x1 = (cx + 1) * width / grid;
      std::uint64_t sum = 0;
      for (int x = x0; x < x1; ++x) sum += row[x];
      sums[static_cast<std::size_t>(cy * grid + cx)] += sum;
    }
  }
  for (int cy = 0; cy < grid; ++cy) {
    const int rows = (cy + 1) * height / grid - cy * height / grid;
    for (int cx = 0; cx < grid; ++cx) {
      const int columns = (cx + 1) * width / grid - cx * width / grid;
      const auto i = static_cast<std::size_t>(cy * grid + cx);
      out[i] = static_cast<float>(static_cast<double>(sums[i]) / (rows * columns));
    }
  }
}

Cells sorted(const Cells& cells) {
  Cells s = cells;
  std::sort(s.begin(), s.end());
  return s;
}

// Both arguments already sorted.
double sorted_distance(const Cells& a, const Cells& b) {
  double sum = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) sum += std::abs(a[i] - b[i]);
  return sum / static_cast<double>(a.size());
}

}  // namespace

std::optional<FrameSignature> signature_of(const AVFrame& frame) {
  if (!is_yuv420(frame)) return std::nullopt;
  FrameSignature signature;
  cell_means(frame, 0, frame.width, frame.height, signature.mean[0]);
  const int cw = (frame.width + 1) / 2;
  const int ch = (frame.height + 1) / 2;
  cell_means(frame, 1, cw, ch, signature.mean[1]);
  cell_means(frame, 2, cw, ch, signature.mean[2]);
  return signature;
}

PlaneDistances signature_distance(const FrameSignature& a, const FrameSignature& b) {
  PlaneDistances d{};
  for (std::size_t p = 0; p < 3; ++p) d[p] = sorted_distance(sorted(a.mean[p]), sorted(b.mean[p]));
  return d;
}

PromptChangeDetector::PromptChangeDetector(PromptChangeOptions options) : options_(options) {
  options_.window_frames = std::max<std::size_t>(1, options_.window_frames);
  window_.reserve(options_.window_frames);
}

void PromptChangeDetector::observe_baseline(const FrameSignature& signature) {
  if (armed_) return;
  if (window_.size() < options_.window_frames) {
    window_.push_back(signature);
  } else {
    window_[next_] = signature;
  }
  next_ = (next_ + 1) % options_.window_frames;
}

void PromptChangeDetector::arm() {
  armed_ = true;
  thresholds_.fill(options_.floor_levels);
  if (window_.empty()) return;
  // Sorted once here so that is_changed sorts only the new frame.
  for (FrameSignature& frame : window_) {
    for (Cells& plane : frame.mean) std::sort(plane.begin(), plane.end());
  }
  const auto n = static_cast<float>(window_.size());
  for (std::size_t p = 0; p < 3; ++p) {
    Cells& reference = reference_.mean[p];
    reference.fill(0.0F);
    for (const FrameSignature& frame : window_) {
      for (std::size_t i = 0; i < reference.size(); ++i) reference[i] += frame.mean[p][i] / n;
    }
    double spread = 0.0;
    for (const FrameSignature& frame : window_) {
      spread = std::max(spread, sorted_distance(frame.mean[p], reference));
    }
    thresholds_[p] = std::max(options_.floor_levels, options_.spread_factor * spread);
  }
}

PlaneDistances PromptChangeDetector::distance(const FrameSignature& signature) const {
  PlaneDistances d{};
  if (!armed_ || window_.empty()) return d;
  for (std::size_t p = 0; p < 3; ++p) {
    d[p] = sorted_distance(sorted(signature.mean[p]), reference_.mean[p]);
  }
  return d;
}

bool PromptChangeDetector::is_changed(const FrameSignature& signature) const {
  if (!armed_ || window_.empty()) return false;
  const PlaneDistances d = distance(signature);
  for (std::size_t p = 0; p < 3; ++p) {
    if (d[p] > thresholds_[p]) return true;
  }
  return false;
}

void PromptChangeDetector::reset() {
  window_.clear();
  next_ = 0;
  armed_ = false;
  thresholds_.fill(0.0);
}

}  // namespace naap::media
