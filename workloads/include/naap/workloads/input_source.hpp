// Where a session's input video comes from: an endless run of standalone MPEG-TS segments (one
// GOP each) with every frame's PTS and byte range, so the session can pace frames by PTS.
#pragma once

#include <cstdint>
#include <memory>

#include "naap/media/ingest.hpp"
#include "naap/media/synthetic_clip.hpp"

namespace naap::workloads {

class InputSource {
 public:
  virtual ~InputSource() = default;
  // The next segment; PTS strictly increase across calls (loops continue the timeline).
  virtual Result<media::ClipSegment> next() = 0;
  // Nominal frame rate of the input, frames per second.
  virtual double fps() const = 0;
};

// Replays a clip encoded once (media::ClipCache) for as long as the session runs.
class LoopingInput final : public InputSource {
 public:
  explicit LoopingInput(std::shared_ptr<const media::EncodedClip> clip)
      : fps_(clip->fps), looper_(std::move(clip)) {}
  Result<media::ClipSegment> next() override { return looper_.next(); }
  double fps() const override { return fps_; }

 private:
  double fps_;                   // frames per second
  media::SegmentLooper looper_;  // segments with continuous PTS
};

}  // namespace naap::workloads
