// Media ingest: a dataset clip or a synthetic source, encoded once by GStreamer into H.264
// (zero latency, no B-frames) and replayed forever as standalone MPEG-TS segments, one per GOP.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "naap/core/error.hpp"
#include "naap/media/encoded_frame.hpp"
#include "naap/media/synthetic_clip.hpp"

namespace naap::media {

class TsSegmentMuxer;

// What to encode.
struct IngestSource {
  std::string path;               // a video file GStreamer can decode; empty = synthetic
  std::string pattern = "smpte";  // synthetic: a videotestsrc pattern nick (smpte, ball, snow...)
  double duration_s = 10.0;       // synthetic: seconds of video
};

// How to encode. Every field except timeout_s is part of the cache key.
struct IngestOptions {
  int width = 512;                   // output pixels; the source is stretched to exactly this
  int height = 512;                  // output pixels
  int fps = 24;                      // output frame rate, frames per second (videorate)
  double gop_seconds = 1.0;          // seconds between IDRs, so per segment; 1..2
  int bitrate_kbps = 2000;           // x264 target bitrate, kbit/s
  std::string preset = "superfast";  // x264 speed preset name
  double max_duration_s = 0.0;       // seconds; 0 = the whole clip, else truncate to this
  double timeout_s = 300.0;          // wall-clock bound on one encode, seconds (not in the key)
};

// One clip encoded once: the access units every stream replays.
struct EncodedClip {
  std::vector<EncodedFrame> frames;  // in order, Annex B, pts == dts, 90 kHz from 0, IDR first
  int width = 0;                     // pixels
  int height = 0;                    // pixels
  int fps = 0;                       // frames per second
  std::int64_t period_pts = 0;       // one loop, 90 kHz ticks: frames * 90000 / fps
  std::string key;                   // cache key: source identity + encoding options
};

// The cache key of a source and options: a file's absolute path, size and modification time (so
// an edited file encodes again), or the synthetic pattern and duration; then every option that
// changes the bytes. Fails when the file is missing or the options are invalid.
Result<std::string> ingest_key(const IngestSource& source, const IngestOptions& options);

// Runs the GStreamer pipeline to the end (or to max_duration_s) and returns the access units;
// they stay in memory (about bitrate x duration bytes), so long files want max_duration_s.
// Errors are category media (config for bad options or an unknown pattern) and name the file and
// the GStreamer element that failed.
Result<EncodedClip> encode_clip(const IngestSource& source, const IngestOptions& options);

// Encoded clips shared by every stream. Thread-safe; each key encodes at most once, even when
// several threads ask for it at the same time (the others wait for that encode). A failed encode
// is not kept: the next get() tries again.
class ClipCache {
 public:
  struct Stats {
    std::uint64_t encodes = 0;  // encode_clip runs started
    std::uint64_t hits = 0;     // get() calls answered with a clip already encoded
  };

  Result<std::shared_ptr<const EncodedClip>> get(const IngestSource& source,
                                                 const IngestOptions& options);
  Stats stats() const;

 private:
  struct Entry {
    std::mutex mutex;                         // held while encoding this key
    std::shared_ptr<const EncodedClip> clip;  // set once encoded
  };

  mutable std::mutex mutex_;                               // guards entries_ and stats_
  std::map<std::string, std::shared_ptr<Entry>> entries_;  // by ingest_key
  Stats stats_;                                            // counters, see Stats
};

// Replays a cached clip forever as standalone MPEG-TS segments, one per GOP, each starting with
// an IDR. Loop k adds k * period_pts to every PTS, so timestamps keep increasing by exactly one
// frame across the loop boundary. Only muxes; never encodes. Not thread-safe (one per stream).
class SegmentLooper {
 public:
  explicit SegmentLooper(std::shared_ptr<const EncodedClip> clip, std::int64_t start_pts = 0);
  ~SegmentLooper();
  SegmentLooper(SegmentLooper&&) noexcept;
  SegmentLooper& operator=(SegmentLooper&&) noexcept;

  // The next segment: bytes, each frame's PTS and end offset, and the seconds it covers.
  // Fails only when the clip is empty or libavformat refuses to mux.
  Result<ClipSegment> next();

  // Segments returned so far.
  std::uint64_t segments() const { return produced_; }

 private:
  std::shared_ptr<const EncodedClip> clip_;  // the frames replayed
  std::vector<std::size_t> gop_starts_;      // index of each GOP's first frame (an IDR)
  std::int64_t start_pts_ = 0;               // PTS added to the first loop, 90 kHz ticks
  std::size_t gop_ = 0;                      // next GOP to emit, index into gop_starts_
  std::int64_t loop_ = 0;                    // loops completed
  std::uint64_t produced_ = 0;               // segments returned
  std::unique_ptr<TsSegmentMuxer> muxer_;    // created on the first next()
  std::unique_ptr<std::string> buffer_;      // the segment being muxed (heap: stable address)
  EncodedFrame scratch_;                     // reused per frame: a cached frame with new PTS
};

}  // namespace naap::media
