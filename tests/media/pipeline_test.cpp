// The chain the emulator and gateway rely on: synthetic segments as ffprobe sees them, the
// segment muxer's guarantees, and PTS kept exactly through decode -> encode -> mux -> demux.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "media_test_support.hpp"
#include "naap/media/encoder.hpp"
#include "naap/media/frame_ops.hpp"
#include "naap/media/ts_muxer.hpp"

namespace naap::media {
namespace {

// PIDs of the TS packets of a segment up to (excluding) the first packet of `stop_pid`.
std::vector<int> pids_before(std::string_view segment, int stop_pid) {
  std::vector<int> pids;
  for (std::size_t pos = 0; pos + 188 <= segment.size(); pos += 188) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(segment.data() + pos);
    if (p[0] != 0x47) break;
    const int pid = ((p[1] & 0x1F) << 8) | p[2];
    if (pid == stop_pid) break;
    pids.push_back(pid);
  }
  return pids;
}

TEST(MediaSyntheticClip, segments_are_standalone_gops_and_ffprobe_sees_the_intended_pts) {
  const ClipOptions options{.width = 320,
                            .height = 180,
                            .fps_num = 30000,
                            .fps_den = 1001,
                            .duration_s = 4.0,
                            .gop_seconds = 1.0,
                            .start_pts = 900'000};
  const SegmentedClip& clip = test::cached_clip(options);
  ASSERT_EQ(clip.segments.size(), 4u);
  std::vector<std::int64_t> intended;
  for (std::int64_t i = 0; i < 120; ++i) intended.push_back(clip_frame_pts(options, i));

  std::vector<std::int64_t> spans;
  double duration_s = 0;
  for (const ClipSegment& segment : clip.segments) {
    const std::vector<int> tables = pids_before(segment.bytes, 0x100);
    EXPECT_TRUE(std::count(tables.begin(), tables.end(), 0) == 1 &&
                std::count(tables.begin(), tables.end(), 0x1000) == 1)
        << "PAT and PMT precede the first video packet";
    const std::vector<EncodedFrame> frames = test::demux(segment.bytes);
    ASSERT_EQ(frames.size(), segment.frames.size());
    for (std::size_t i = 0; i < frames.size(); ++i) {
      EXPECT_EQ(frames[i].keyframe, i == 0) << "one GOP per segment, IDR first";
      EXPECT_EQ(frames[i].pts, segment.frames[i].pts);
      if (i > 0) {
        EXPECT_GT(segment.frames[i].end_offset, segment.frames[i - 1].end_offset);
      }
      spans.push_back(segment.frames[i].pts);
    }
    EXPECT_LE(segment.frames.back().end_offset, segment.bytes.size());
    EXPECT_EQ(segment.bytes.size() % 188, 0u);
    duration_s += segment.duration_s;
  }
  EXPECT_EQ(spans, intended);
  EXPECT_NEAR(duration_s, 120 * 1001 / 30000.0, 1e-9) << "120 frames at 29.97 fps";

  // The real ffprobe on the concatenated segments, as a runner's decoder reads them.
  test::TempFile file(".ts");
  file.write(test::concat(clip));
  const std::string out = test::run_command(
      "ffprobe -v error -select_streams v:0 -show_entries packet=pts,dts,flags:frame=pts,"
      "pict_type,key_frame -of json '" +
      file.path().string() + "'");
  const auto json = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(json.is_discarded()) << out;
  ASSERT_TRUE(json.contains("packets_and_frames")) << out;
  std::vector<std::int64_t> packet_pts;
  std::vector<std::int64_t> keyframe_pts;
  std::vector<std::int64_t> frame_pts;
  // With both sections ffprobe interleaves them in one list, in file order.
  for (const auto& entry : json.at("packets_and_frames")) {
    const std::int64_t pts = entry.value("pts", std::int64_t{-1});
    if (entry.value("type", std::string()) == "packet") {
      packet_pts.push_back(pts);
      EXPECT_EQ(entry.value("dts", std::int64_t{-2}), pts) << "decode order = presentation order";
      if (entry.value("flags", std::string()).find('K') != std::string::npos) {
        keyframe_pts.push_back(pts);
      }
    } else {
      frame_pts.push_back(pts);
      EXPECT_NE(entry.value("pict_type", std::string()), "B") << "frame at " << pts;
      EXPECT_EQ(entry.value("key_frame", 0) == 1,
                std::find(keyframe_pts.begin(), keyframe_pts.end(), pts) != keyframe_pts.end());
    }
  }
  EXPECT_EQ(packet_pts, intended) << "exact PTS, continuous across segment boundaries";
  EXPECT_EQ(keyframe_pts,
            (std::vector<std::int64_t>{intended[0], intended[30], intended[60], intended[90]}));
  EXPECT_EQ(frame_pts, intended) << "every frame decodes, in presentation order";
}

TEST(MediaTsSegmentMuxer, hands_each_frame_to_on_bytes_before_write_returns) {
  const SegmentedClip& clip =
      test::cached_clip(ClipOptions{.width = 128, .height = 128, .duration_s = 1.0});
  const std::vector<EncodedFrame> frames = test::demux(test::concat(clip));
  ASSERT_EQ(frames.size(), 24u);
  std::string out;
  auto muxer = TsSegmentMuxer::create(MuxerOptions{.width = 128, .height = 128},
                                      [&out](std::string_view b) { out.append(b); });
  ASSERT_TRUE(muxer.has_value());
  EXPECT_FALSE((*muxer)->write(frames[0]).has_value()) << "no segment open";
  ASSERT_TRUE((*muxer)->begin_segment().has_value());
  for (const EncodedFrame& f : frames) {
    ASSERT_TRUE((*muxer)->write(f).has_value());
    const std::vector<EncodedFrame> so_far = test::demux(out);
    ASSERT_FALSE(so_far.empty());
    EXPECT_EQ(so_far.back().pts, f.pts) << "this frame's bytes are out already";
    EXPECT_TRUE(so_far.back().data == f.data);
  }
  auto back = (*muxer)->write(frames[3]);
  EXPECT_FALSE(back.has_value()) << "DTS going backwards is refused, not crashed on";
  ASSERT_TRUE((*muxer)->end_segment().has_value());
  EXPECT_EQ((*muxer)->stats().frames, 24u);
  EXPECT_EQ((*muxer)->stats().errors, 1u);
}

// The emulated runner: input segments (30 fps, 320x240, arbitrary chunks) are demuxed, decoded,
// scaled and cropped to 256x256, tinted with the prompt's style, re-encoded with a 2 s GOP and
// cut one GOP per output segment. The output must carry every input PTS exactly.
TEST(MediaPipeline, keeps_every_pts_through_decode_encode_mux_demux_decode) {
  const ClipOptions input{.width = 320,
                          .height = 240,
                          .fps_num = 30,
                          .duration_s = 5.0,
                          .gop_seconds = 1.0,
                          .start_pts = 123'456};
  const SegmentedClip& clip = test::cached_clip(input);
  ASSERT_EQ(clip.segments.size(), 5u);
  const PromptStyle style = style_for_prompt("a cyberpunk city at night");

  auto decoder = test::make_decoder();
  ASSERT_NE(decoder, nullptr);
  auto encoder = H264Encoder::create(EncoderOptions{.width = 256, .height = 256, .fps = 30});
  ASSERT_TRUE(encoder.has_value());
  std::vector<std::string> output_segments;
  auto muxer = TsSegmentMuxer::create(
      MuxerOptions{.width = 256, .height = 256},
      [&output_segments](std::string_view b) { output_segments.back().append(b); });
  ASSERT_TRUE(muxer.has_value());
  ScalerCache scaler;
  const auto on_packet = [&](EncodedFrame&& packet) {
    if (packet.keyframe) {
      ASSERT_TRUE((*muxer)->end_segment().has_value());
      output_segments.emplace_back();
      ASSERT_TRUE((*muxer)->begin_segment().has_value());
    }
    ASSERT_TRUE((*muxer)->write(packet).has_value());
  };
  const auto on_frame = [&](AVFrame& frame) {
    auto scaled = scale_crop(frame, 256, 256, scaler);
    ASSERT_TRUE(scaled.has_value());
    ASSERT_TRUE(apply_prompt_style(**scaled, style).has_value());
    auto encoded = (*encoder)->encode(**scaled, frame.pts, on_packet);
    ASSERT_TRUE(encoded.has_value()) << encoded.error().describe();
  };
  TsDemuxer demuxer([&](EncodedFrame&& f) {
    auto decoded = decoder->decode(f, on_frame);
    ASSERT_TRUE(decoded.has_value()) << decoded.error().describe();
  });
  std::mt19937 rng(3);
  for (const ClipSegment& segment : clip.segments) {
    for (std::size_t pos = 0; pos < segment.bytes.size();) {
      const std::size_t n = std::min<std::size_t>(1 + rng() % 3000, segment.bytes.size() - pos);
      demuxer.push(std::string_view(segment.bytes).substr(pos, n));
      pos += n;
    }
    demuxer.flush();
  }
  ASSERT_TRUE(decoder->flush(on_frame).has_value());
  ASSERT_TRUE((*encoder)->flush(on_packet).has_value());
  ASSERT_TRUE((*muxer)->end_segment().has_value());
  ASSERT_EQ(output_segments.size(), 3u) << "2 s GOPs over 5 s of input";

  // The gateway's side: each output segment on its own, then decode.
  auto gateway_decoder = test::make_decoder();
  ASSERT_NE(gateway_decoder, nullptr);
  std::vector<std::int64_t> output_pts;
  std::size_t styled = 0;
  for (const std::string& segment : output_segments) {
    const std::vector<EncodedFrame> frames = test::demux(segment);
    ASSERT_FALSE(frames.empty());
    EXPECT_TRUE(frames.front().keyframe) << "every output segment starts with an IDR";
    for (const EncodedFrame& f : frames) {
      ASSERT_TRUE(gateway_decoder
                      ->decode(f,
                               [&](AVFrame& out) {
                                 output_pts.push_back(out.pts);
                                 const auto measured = measure_style(out);
                                 if (measured && style_matches(*measured, style)) ++styled;
                               })
                      .has_value());
    }
  }
  std::vector<std::int64_t> input_pts;
  for (std::int64_t i = 0; i < 150; ++i) input_pts.push_back(clip_frame_pts(input, i));
  EXPECT_EQ(output_pts, input_pts);
  EXPECT_EQ(styled, input_pts.size());
}

}  // namespace
}  // namespace naap::media
