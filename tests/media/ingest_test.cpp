// Media ingest: GStreamer encodes of synthetic sources and ffmpeg-made files, the clip cache's
// encode-once promise, the looper's standalone segments and continuing PTS, and clear errors.
#include "naap/media/ingest.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "../reports/test_dir.hpp"
#include "naap/media/decoder.hpp"
#include "naap/media/ts_demuxer.hpp"

namespace naap::media {
namespace {

namespace fs = std::filesystem;

// Runs ffmpeg quietly; true when it wrote the output.
bool ffmpeg(const std::string& args, const fs::path& output) {
  const std::string command = "ffmpeg -nostdin -loglevel error -y " + args + " '" +
                              output.string() + "' </dev/null >/dev/null 2>&1";
  return std::system(command.c_str()) == 0 && fs::exists(output);
}

std::vector<EncodedFrame> demux(std::string_view bytes) {
  std::vector<EncodedFrame> frames;
  TsDemuxer demuxer([&frames](EncodedFrame&& f) { frames.push_back(std::move(f)); });
  demuxer.push(bytes);
  demuxer.flush();
  return frames;
}

struct Decoded {
  std::size_t frames = 0;  // pictures out
  int width = 0;           // pixels, of the last picture
  int height = 0;          // pixels
  bool ok = true;          // every decode call succeeded
};

// Decodes access units with a fresh decoder, as a receiver joining at this segment would.
Decoded decode(const std::vector<EncodedFrame>& frames) {
  Decoded out;
  auto decoder = H264Decoder::create();
  EXPECT_TRUE(decoder.has_value());
  if (!decoder) return out;
  const auto on_frame = [&out](AVFrame& frame) {
    ++out.frames;
    out.width = frame.width;
    out.height = frame.height;
  };
  for (const EncodedFrame& f : frames)
    out.ok = (*decoder)->decode(f, on_frame).has_value() && out.ok;
  out.ok = (*decoder)->flush(on_frame).has_value() && out.ok;
  return out;
}

std::shared_ptr<const EncodedClip> must_encode(const IngestSource& source,
                                               const IngestOptions& options) {
  auto clip = encode_clip(source, options);
  EXPECT_TRUE(clip.has_value()) << (clip ? "" : clip.error().describe());
  return clip ? std::make_shared<const EncodedClip>(std::move(*clip)) : nullptr;
}

TEST(MediaIngest, encodes_a_synthetic_source_with_exact_pts_and_an_idr_every_gop) {
  const IngestSource source{.pattern = "ball", .duration_s = 4.0};
  const IngestOptions options{.width = 320, .height = 240, .fps = 30, .gop_seconds = 1.5};
  const auto clip = must_encode(source, options);
  ASSERT_NE(clip, nullptr);
  ASSERT_EQ(clip->frames.size(), 120u) << "fps * duration";
  EXPECT_EQ(clip->width, 320);
  EXPECT_EQ(clip->height, 240);
  EXPECT_EQ(clip->fps, 30);
  EXPECT_EQ(clip->period_pts, 120 * 3000);
  for (std::size_t i = 0; i < clip->frames.size(); ++i) {
    const EncodedFrame& f = clip->frames[i];
    EXPECT_EQ(f.pts, static_cast<std::int64_t>(i) * 3000) << "frame " << i;
    EXPECT_EQ(f.dts, f.pts) << "no B-frames, frame " << i;
    const bool due = i % 45 == 0;  // 1.5 s at 30 fps
    EXPECT_EQ(f.keyframe, due) << "frame " << i;
    EXPECT_EQ(contains_idr(f.data), due) << "frame " << i;
  }
  EXPECT_NE(clip->key.find("pattern=ball"), std::string::npos) << clip->key;
}

TEST(MediaIngest, encodes_ten_seconds_of_512_square_24_fps_synthetic_video_quickly) {
  const auto start = std::chrono::steady_clock::now();
  const auto clip = must_encode(IngestSource{}, IngestOptions{});
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_NE(clip, nullptr);
  EXPECT_EQ(clip->frames.size(), 240u);
  EXPECT_EQ(clip->period_pts, 10 * 90'000);
  std::size_t idrs = 0;
  for (const EncodedFrame& f : clip->frames) idrs += f.keyframe ? 1 : 0;
  EXPECT_EQ(idrs, 10u) << "one IDR per 1 s GOP";
  RecordProperty("encode_seconds", std::to_string(seconds));
  std::printf("ingest: 10 s 512x512 24 fps synthetic encoded in %.2f s\n", seconds);
  EXPECT_LT(seconds, 60.0) << "encode is far slower than real time";
}

TEST(MediaIngest, scales_and_rates_a_real_file_to_the_requested_size_and_fps) {
  naap::test::TestDir dir("naap-ingest");
  const fs::path file = dir.path() / "clip.mp4";
  // 640x360 at 30 fps with an AAC track: the audio must be ignored.
  ASSERT_TRUE(
      ffmpeg("-f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i sine=frequency=440 "
             "-t 3 -c:v libx264 -pix_fmt yuv420p -c:a aac -shortest",
             file));
  const auto clip = must_encode(IngestSource{.path = file.string()}, IngestOptions{});
  ASSERT_NE(clip, nullptr);
  EXPECT_EQ(clip->frames.size(), 72u) << "3 s at 24 fps";
  for (std::size_t i = 0; i < clip->frames.size(); ++i) {
    EXPECT_EQ(clip->frames[i].pts, static_cast<std::int64_t>(i) * 3750) << "frame " << i;
  }
  EXPECT_NE(clip->key.find("clip.mp4"), std::string::npos) << clip->key;

  SegmentLooper looper(clip);
  auto segment = looper.next();
  ASSERT_TRUE(segment.has_value()) << segment.error().describe();
  const std::vector<EncodedFrame> frames = demux(segment->bytes);
  ASSERT_EQ(frames.size(), 24u) << "one 1 s GOP";
  const Decoded decoded = decode(frames);
  EXPECT_TRUE(decoded.ok);
  EXPECT_EQ(decoded.frames, 24u);
  EXPECT_EQ(decoded.width, 512);
  EXPECT_EQ(decoded.height, 512);
}

TEST(MediaIngest, truncates_a_file_to_max_duration) {
  naap::test::TestDir dir("naap-ingest");
  const fs::path file = dir.path() / "long.mkv";
  ASSERT_TRUE(
      ffmpeg("-f lavfi -i testsrc2=size=320x240:rate=25 -t 4 -c:v libx264 -pix_fmt "
             "yuv420p",
             file));
  const auto clip = must_encode(IngestSource{.path = file.string()},
                                IngestOptions{.width = 256, .height = 256, .max_duration_s = 1.5});
  ASSERT_NE(clip, nullptr);
  EXPECT_EQ(clip->frames.size(), 36u) << "1.5 s at 24 fps";
  EXPECT_EQ(clip->period_pts, 36 * 3750);
}

TEST(MediaIngest, looper_segments_start_with_an_idr_decode_alone_and_pts_continue_across_loops) {
  const auto clip =
      must_encode(IngestSource{.duration_s = 2.0}, IngestOptions{.width = 256, .height = 256});
  ASSERT_NE(clip, nullptr);
  ASSERT_EQ(clip->frames.size(), 48u);
  const std::int64_t start_pts = 900'000;
  SegmentLooper looper(clip, start_pts);
  std::int64_t expected_pts = start_pts;
  for (int s = 0; s < 5; ++s) {  // two and a half loops of two GOPs
    auto segment = looper.next();
    ASSERT_TRUE(segment.has_value()) << segment.error().describe();
    EXPECT_DOUBLE_EQ(segment->duration_s, 1.0) << "segment " << s;
    ASSERT_EQ(segment->frames.size(), 24u) << "segment " << s;
    EXPECT_EQ(segment->frames.back().end_offset <= segment->bytes.size(), true);
    const std::vector<EncodedFrame> frames = demux(segment->bytes);
    ASSERT_EQ(frames.size(), 24u) << "segment " << s;
    EXPECT_TRUE(frames.front().keyframe && contains_idr(frames.front().data)) << "segment " << s;
    for (std::size_t i = 0; i < frames.size(); ++i) {
      EXPECT_EQ(frames[i].pts, expected_pts)
          << "segment " << s << " frame " << i << ": one frame interval after the previous";
      EXPECT_EQ(segment->frames[i].pts, expected_pts);
      expected_pts += 3750;
    }
    const Decoded decoded = decode(frames);
    EXPECT_TRUE(decoded.ok) << "segment " << s << " decodes standalone";
    EXPECT_EQ(decoded.frames, 24u) << "segment " << s;
  }
  EXPECT_EQ(looper.segments(), 5u);
}

TEST(MediaIngest, cache_encodes_each_clip_once_for_repeated_and_concurrent_gets) {
  const IngestSource source{.pattern = "snow", .duration_s = 1.0};
  const IngestOptions options{.width = 128, .height = 128};
  {
    ClipCache cache;
    auto first = cache.get(source, options);
    auto second = cache.get(source, options);
    ASSERT_TRUE(first.has_value()) << first.error().describe();
    ASSERT_TRUE(second.has_value());
    EXPECT_EQ(first->get(), second->get()) << "the same cached clip";
    EXPECT_EQ(cache.stats().encodes, 1u);
    EXPECT_EQ(cache.stats().hits, 1u);
    auto other = cache.get(source, IngestOptions{.width = 128, .height = 128, .fps = 12});
    ASSERT_TRUE(other.has_value());
    EXPECT_NE(other->get(), first->get()) << "another fps is another clip";
    EXPECT_EQ(cache.stats().encodes, 2u);
  }
  ClipCache cache;
  std::vector<const EncodedClip*> seen(4, nullptr);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < seen.size(); ++t) {
    threads.emplace_back([&, t] {
      auto clip = cache.get(source, options);
      if (clip) seen[t] = clip->get();
    });
  }
  for (auto& thread : threads) thread.join();
  for (const EncodedClip* clip : seen) {
    EXPECT_NE(clip, nullptr);
    EXPECT_EQ(clip, seen.front());
  }
  EXPECT_EQ(cache.stats().encodes, 1u) << "concurrent gets share one encode";
  EXPECT_EQ(cache.stats().hits, 3u);
}

TEST(MediaIngest, reports_a_missing_file_naming_it) {
  const auto clip = encode_clip(IngestSource{.path = "/nonexistent/clip.mp4"}, IngestOptions{});
  ASSERT_FALSE(clip.has_value());
  EXPECT_EQ(clip.error().category, ErrorCategory::media);
  EXPECT_NE(clip.error().message.find("not found"), std::string::npos) << clip.error().describe();
  EXPECT_EQ(clip.error().get("file"), "/nonexistent/clip.mp4");
}

TEST(MediaIngest, reports_a_text_file_as_undecodable_naming_the_element) {
  naap::test::TestDir dir("naap-ingest");
  const fs::path file = dir.path() / "notes.txt";
  std::ofstream(file) << "this is not a video\nat all\n";
  const auto clip = encode_clip(IngestSource{.path = file.string()}, IngestOptions{});
  ASSERT_FALSE(clip.has_value());
  EXPECT_EQ(clip.error().category, ErrorCategory::media);
  EXPECT_EQ(clip.error().get("file"), file.string());
  EXPECT_FALSE(clip.error().get("element").empty()) << clip.error().describe();
  EXPECT_NE(clip.error().message.find("type"), std::string::npos) << clip.error().describe();
}

TEST(MediaIngest, reports_an_audio_only_file_as_having_no_video) {
  naap::test::TestDir dir("naap-ingest");
  const fs::path file = dir.path() / "tone.m4a";
  ASSERT_TRUE(ffmpeg("-f lavfi -i sine=frequency=440 -t 1 -c:a aac", file));
  IngestOptions options;
  options.timeout_s = 30;
  const auto clip = encode_clip(IngestSource{.path = file.string()}, options);
  ASSERT_FALSE(clip.has_value());
  EXPECT_EQ(clip.error().category, ErrorCategory::media);
  EXPECT_EQ(clip.error().get("file"), file.string()) << clip.error().describe();
  EXPECT_NE(clip.error().message.find("no decodable video stream"), std::string::npos)
      << clip.error().describe();
}

TEST(MediaIngest, rejects_an_unknown_pattern_listing_the_known_ones) {
  const auto clip = encode_clip(IngestSource{.pattern = "plaid"}, IngestOptions{});
  ASSERT_FALSE(clip.has_value());
  EXPECT_EQ(clip.error().category, ErrorCategory::config);
  EXPECT_NE(clip.error().message.find("pattern 'plaid'"), std::string::npos)
      << clip.error().describe();
  EXPECT_NE(clip.error().get("accepted").find("smpte"), std::string::npos);
}

TEST(MediaIngest, rejects_a_gop_outside_one_to_two_seconds) {
  const auto clip = encode_clip(IngestSource{}, IngestOptions{.gop_seconds = 3.0});
  ASSERT_FALSE(clip.has_value());
  EXPECT_EQ(clip.error().category, ErrorCategory::config);
  EXPECT_NE(clip.error().message.find("gop_seconds"), std::string::npos) << clip.error().describe();
  EXPECT_EQ(clip.error().get("gop_seconds"), "3");
}

}  // namespace
}  // namespace naap::media
