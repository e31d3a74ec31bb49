// Test support for media suites: synthetic clips cached per process, demux/decode helpers, a
// temporary file and a child process whose standard output is captured (ffprobe, ffmpeg).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "naap/media/decoder.hpp"
#include "naap/media/synthetic_clip.hpp"
#include "naap/media/ts_demuxer.hpp"

namespace naap::media::test {

// Each distinct clip is encoded once per test process: encoding dominates the suite's time.
inline const SegmentedClip& cached_clip(const ClipOptions& o) {
  static std::map<std::tuple<int, int, int, int, double, double, std::int64_t, std::string>,
                  SegmentedClip>
      cache;
  const auto key = std::make_tuple(o.width, o.height, o.fps_num, o.fps_den, o.duration_s,
                                   o.gop_seconds, o.start_pts, o.preset);
  auto it = cache.find(key);
  if (it == cache.end()) {
    auto clip = encode_synthetic_clip(o);
    EXPECT_TRUE(clip.has_value()) << (clip ? "" : clip.error().describe());
    it = cache.emplace(key, clip ? std::move(*clip) : SegmentedClip{}).first;
  }
  return it->second;
}

inline std::string concat(const SegmentedClip& clip) {
  std::string all;
  for (const auto& s : clip.segments) all += s.bytes;
  return all;
}

// Demuxes bytes pushed in one piece, flushing at the end.
inline std::vector<EncodedFrame> demux(std::string_view bytes, TsDemuxerStats* stats = nullptr) {
  std::vector<EncodedFrame> frames;
  TsDemuxer demuxer([&frames](EncodedFrame&& f) { frames.push_back(std::move(f)); });
  demuxer.push(bytes);
  demuxer.flush();
  if (stats != nullptr) *stats = demuxer.stats();
  return frames;
}

// Demuxes a clip segment by segment, flushing after each (as trickle segments end).
inline std::vector<EncodedFrame> demux_segments(const SegmentedClip& clip) {
  std::vector<EncodedFrame> frames;
  TsDemuxer demuxer([&frames](EncodedFrame&& f) { frames.push_back(std::move(f)); });
  for (const auto& s : clip.segments) {
    demuxer.push(s.bytes);
    demuxer.flush();
  }
  return frames;
}

inline std::unique_ptr<H264Decoder> make_decoder() {
  auto decoder = H264Decoder::create();
  EXPECT_TRUE(decoder.has_value()) << (decoder ? "" : decoder.error().describe());
  return decoder ? std::move(*decoder) : nullptr;
}

// A file removed at the end of the test.
class TempFile {
 public:
  explicit TempFile(const std::string& suffix)
      : path_(std::filesystem::temp_directory_path() /
              ("naap-media-" + std::to_string(::getpid()) + "-" + owner_name() + suffix)) {}
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::filesystem::path& path() const { return path_; }
  void write(std::string_view bytes) const {
    std::ofstream(path_, std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  std::string read() const {
    std::ifstream in(path_, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

 private:
  // The running test, or the suite when called from SetUpTestSuite.
  static std::string owner_name() {
    const auto* unit = ::testing::UnitTest::GetInstance();
    if (const auto* test = unit->current_test_info()) return test->name();
    if (const auto* suite = unit->current_test_suite()) return suite->name();
    return "media";
  }

  std::filesystem::path path_;
};

struct PcloseDeleter {
  void operator()(FILE* f) const noexcept { ::pclose(f); }
};

// Runs a shell command and returns its standard output (stderr is left to the terminal).
inline std::string run_command(const std::string& command) {
  std::unique_ptr<FILE, PcloseDeleter> pipe(::popen(command.c_str(), "r"));
  EXPECT_NE(pipe, nullptr) << command;
  std::string out;
  if (!pipe) return out;
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe.get())) > 0) out.append(buffer, n);
  return out;
}

}  // namespace naap::media::test
