// Encoder and decoder: one packet per frame with zero delay, IDRs on the PTS clock, refused
// timestamps, standalone GOPs, and a decoder that survives garbage.
#include <gtest/gtest.h>

#include <random>

#include "media_test_support.hpp"
#include "naap/media/decoder.hpp"
#include "naap/media/encoder.hpp"
#include "naap/media/frame_ops.hpp"

namespace naap::media {
namespace {

std::unique_ptr<H264Encoder> make_encoder(EncoderOptions options) {
  auto encoder = H264Encoder::create(options);
  EXPECT_TRUE(encoder.has_value()) << (encoder ? "" : encoder.error().describe());
  return encoder ? std::move(*encoder) : nullptr;
}

FramePtr pattern_frame(int width, int height, std::int64_t index) {
  auto frame = make_frame(width, height);
  EXPECT_TRUE(frame.has_value());
  if (!frame) return nullptr;
  EXPECT_TRUE(draw_test_pattern(**frame, index).has_value());
  return std::move(*frame);
}

// Encodes frames at the given pts and returns the packets, checking one packet per call.
std::vector<EncodedFrame> encode_at(H264Encoder& encoder, const std::vector<std::int64_t>& pts) {
  std::vector<EncodedFrame> packets;
  for (std::size_t i = 0; i < pts.size(); ++i) {
    FramePtr frame = pattern_frame(encoder.options().width, encoder.options().height,
                                   static_cast<std::int64_t>(i));
    std::size_t delivered = 0;
    auto ok = encoder.encode(*frame, pts[i], [&](EncodedFrame&& p) {
      ++delivered;
      packets.push_back(std::move(p));
    });
    EXPECT_TRUE(ok.has_value()) << (ok ? "" : ok.error().describe());
    EXPECT_EQ(delivered, 1u) << "frame " << i << " must come out of its own encode() call";
  }
  return packets;
}

TEST(MediaH264Encoder, delivers_one_packet_per_frame_with_zero_delay_and_the_given_pts) {
  auto encoder = make_encoder(EncoderOptions{.width = 256, .height = 256, .fps = 24});
  ASSERT_NE(encoder, nullptr);
  std::vector<std::int64_t> pts;
  for (int i = 0; i < 48; ++i) pts.push_back(1'000'000 + i * 3750);
  const std::vector<EncodedFrame> packets = encode_at(*encoder, pts);
  ASSERT_EQ(packets.size(), pts.size());
  for (std::size_t i = 0; i < packets.size(); ++i) {
    EXPECT_EQ(packets[i].pts, pts[i]);
    EXPECT_EQ(packets[i].dts, pts[i]) << "no reordering";
    EXPECT_FALSE(packets[i].data.empty());
  }
  std::size_t flushed = 0;
  ASSERT_TRUE(encoder->flush([&flushed](EncodedFrame&&) { ++flushed; }).has_value());
  EXPECT_EQ(flushed, 0u) << "x264 held nothing back";
}

TEST(MediaH264Encoder, forces_an_idr_every_gop_seconds_of_pts) {
  auto encoder =
      make_encoder(EncoderOptions{.width = 128, .height = 128, .fps = 30, .gop_seconds = 2.0});
  ASSERT_NE(encoder, nullptr);
  // 30 fps with gaps (dropped frames) and one long pause: IDRs follow PTS, not frame counts.
  std::vector<std::int64_t> pts;
  for (std::int64_t t = 0; t < 6 * 90'000; t += 3000) {
    if ((t / 3000) % 7 == 3) continue;
    pts.push_back(t);
  }
  pts.push_back(pts.back() + 10 * 90'000);
  pts.push_back(pts.back() + 3000);
  const std::vector<EncodedFrame> packets = encode_at(*encoder, pts);
  ASSERT_EQ(packets.size(), pts.size());
  std::int64_t last_idr = -1;
  std::uint64_t idrs = 0;
  for (const EncodedFrame& p : packets) {
    const bool due = last_idr < 0 || p.pts - last_idr >= 180'000;
    idrs += due ? 1 : 0;
    EXPECT_EQ(p.keyframe, due) << "pts " << p.pts;
    EXPECT_EQ(contains_idr(p.data), p.keyframe);
    if (p.keyframe) {
      last_idr = p.pts;
      EXPECT_NE(p.data.find(std::string("\x00\x00\x00\x01\x67", 5)), std::string::npos)
          << "SPS repeated before the IDR at " << p.pts;
    }
  }
  EXPECT_EQ(idrs, 4u) << "0 s, 2 s, 4 s and after the pause";
  EXPECT_EQ(encoder->stats().keyframes, idrs);
}

TEST(MediaH264Encoder, refuses_pts_that_do_not_increase_and_keeps_encoding) {
  auto encoder = make_encoder(EncoderOptions{.width = 128, .height = 128});
  ASSERT_NE(encoder, nullptr);
  FramePtr frame = pattern_frame(128, 128, 0);
  std::vector<std::int64_t> out;
  const auto collect = [&out](EncodedFrame&& p) { out.push_back(p.pts); };
  ASSERT_TRUE(encoder->encode(*frame, 9000, collect).has_value());
  auto same = encoder->encode(*frame, 9000, collect);
  ASSERT_FALSE(same.has_value());
  EXPECT_EQ(same.error().category, ErrorCategory::media);
  EXPECT_FALSE(encoder->encode(*frame, 100, collect).has_value());
  ASSERT_TRUE(encoder->encode(*frame, 12750, collect).has_value());
  EXPECT_EQ(out, (std::vector<std::int64_t>{9000, 12750}));
  EXPECT_EQ(encoder->stats().refused, 2u);
}

TEST(MediaH264Encoder, refuses_a_frame_of_the_wrong_size) {
  auto encoder = make_encoder(EncoderOptions{.width = 128, .height = 128});
  ASSERT_NE(encoder, nullptr);
  FramePtr wrong = pattern_frame(64, 128, 0);
  auto result = encoder->encode(*wrong, 0, [](EncodedFrame&&) {});
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().category, ErrorCategory::media);
  FramePtr right = pattern_frame(128, 128, 0);
  EXPECT_TRUE(encoder->encode(*right, 0, [](EncodedFrame&&) {}).has_value());
}

TEST(MediaH264Decoder, decodes_every_gop_on_its_own_with_each_packet_pts) {
  auto encoder =
      make_encoder(EncoderOptions{.width = 192, .height = 108, .fps = 24, .gop_seconds = 1.0});
  ASSERT_NE(encoder, nullptr);
  std::vector<std::int64_t> pts;
  for (int i = 0; i < 72; ++i) pts.push_back(5000 + i * 3750);
  const std::vector<EncodedFrame> packets = encode_at(*encoder, pts);
  ASSERT_EQ(packets.size(), 72u);
  // A fresh decoder joining at the second GOP: everything from there decodes, immediately.
  auto decoder = test::make_decoder();
  ASSERT_NE(decoder, nullptr);
  EXPECT_EQ(decoder->backend(), "software");
  ASSERT_TRUE(packets[24].keyframe);
  std::vector<std::int64_t> decoded;
  for (std::size_t i = 24; i < packets.size(); ++i) {
    const std::size_t before = decoded.size();
    auto ok = decoder->decode(packets[i], [&decoded](AVFrame& f) {
      EXPECT_EQ(f.width, 192);
      EXPECT_EQ(f.height, 108);
      EXPECT_EQ(f.format, AV_PIX_FMT_YUV420P);
      decoded.push_back(f.pts);
    });
    ASSERT_TRUE(ok.has_value()) << ok.error().describe();
    EXPECT_EQ(decoded.size(), before + 1) << "no decoder delay at packet " << i;
  }
  ASSERT_TRUE(decoder->flush([&decoded](AVFrame& f) { decoded.push_back(f.pts); }).has_value());
  EXPECT_EQ(decoded, std::vector<std::int64_t>(pts.begin() + 24, pts.end()));
  EXPECT_EQ(decoder->stats().errors, 0u);
}

TEST(MediaH264Decoder, recovers_at_the_next_keyframe_after_garbage_and_truncation) {
  auto encoder = make_encoder(EncoderOptions{.width = 128, .height = 128, .gop_seconds = 1.0});
  ASSERT_NE(encoder, nullptr);
  std::vector<std::int64_t> pts;
  for (int i = 0; i < 48; ++i) pts.push_back(i * 3750);
  const std::vector<EncodedFrame> packets = encode_at(*encoder, pts);
  auto decoder = test::make_decoder();
  ASSERT_NE(decoder, nullptr);
  std::mt19937 rng(5);
  std::size_t decoded = 0;
  const auto count = [&decoded](AVFrame&) { ++decoded; };
  EncodedFrame junk{.data = std::string(3000, '\0'), .pts = 1, .dts = 1};
  for (char& c : junk.data) c = static_cast<char>(rng() % 256);
  (void)decoder->decode(junk, count);
  (void)decoder->decode(EncodedFrame{}, count);
  EncodedFrame cut = packets[0];
  cut.data.resize(cut.data.size() / 3);
  (void)decoder->decode(cut, count);
  for (std::size_t i = 1; i < 24; ++i) (void)decoder->decode(packets[i], count);  // no IDR
  const std::size_t before_idr = decoded;
  for (std::size_t i = 24; i < 48; ++i) {
    auto ok = decoder->decode(packets[i], count);
    EXPECT_TRUE(ok.has_value()) << i << ": " << (ok ? "" : ok.error().describe());
  }
  EXPECT_EQ(decoded - before_idr, 24u) << "the whole second GOP decodes";
  EXPECT_GE(decoder->stats().errors, 1u) << "the empty packet at least is counted";
}

}  // namespace
}  // namespace naap::media
