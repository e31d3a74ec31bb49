// Frame operations as the gateway uses them on decoded runner output: prompt styles and frame
// classes that survive H.264, and the runner's scale-and-crop.
#include "naap/media/frame_ops.hpp"

#include <gtest/gtest.h>

#include <set>

#include "media_test_support.hpp"
#include "naap/media/encoder.hpp"

namespace naap::media {
namespace {

FramePtr new_frame(int width, int height) {
  auto frame = make_frame(width, height);
  EXPECT_TRUE(frame.has_value());
  return frame ? std::move(*frame) : nullptr;
}

// Encodes the frames (superfast, 24 fps) and returns the decoded pictures' measurements.
template <typename Measure>
void through_h264(const std::vector<FramePtr>& frames, const Measure& measure) {
  auto encoder =
      H264Encoder::create(EncoderOptions{.width = frames[0]->width, .height = frames[0]->height});
  ASSERT_TRUE(encoder.has_value());
  auto decoder = test::make_decoder();
  ASSERT_NE(decoder, nullptr);
  std::size_t index = 0;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    auto ok = (*encoder)->encode(
        *frames[i], static_cast<std::int64_t>(i) * 3750, [&](EncodedFrame&& packet) {
          ASSERT_TRUE(decoder->decode(packet, [&](AVFrame& decoded) { measure(index++, decoded); })
                          .has_value());
        });
    ASSERT_TRUE(ok.has_value());
  }
  EXPECT_EQ(index, frames.size());
}

TEST(MediaFrameOps, every_prompt_style_is_far_from_grey) {
  std::set<std::pair<int, int>> seen;
  for (int i = 0; i < 2000; ++i) {
    const PromptStyle s = style_for_prompt("prompt number " + std::to_string(i));
    EXPECT_GE(std::abs(s.u - 128), 40);
    EXPECT_GE(std::abs(s.v - 128), 40);
    seen.emplace(s.u, s.v);
  }
  EXPECT_EQ(seen.size(), 64u) << "the whole grid is used";
  EXPECT_EQ(style_for_prompt("a cat"), style_for_prompt("a cat")) << "deterministic";
}

TEST(MediaFrameOps, twelve_prompt_styles_survive_encode_decode_and_are_told_apart) {
  // Prompts chosen so that their styles differ (any two prompts collide with probability 1/64).
  const std::vector<std::string> prompts = {
      "a watercolor city", "anime portrait",  "oil painting of a harbor",
      "neon cyberpunk",    "pencil sketch",   "van gogh starry sky",
      "pixel art castle",  "underwater reef", "desert at sunset",
      "snowy mountain",    "a misty forest",  "stained glass window"};
  std::vector<PromptStyle> styles;
  for (const auto& p : prompts) styles.push_back(style_for_prompt(p));
  for (std::size_t i = 0; i < styles.size(); ++i) {
    for (std::size_t j = i + 1; j < styles.size(); ++j) {
      ASSERT_FALSE(styles[i] == styles[j]) << prompts[i] << " / " << prompts[j];
    }
  }
  std::vector<FramePtr> frames;
  for (std::size_t i = 0; i < 48; ++i) {
    frames.push_back(new_frame(256, 256));
    ASSERT_TRUE(draw_test_pattern(*frames.back(), static_cast<std::int64_t>(i)).has_value());
    ASSERT_TRUE(apply_prompt_style(*frames.back(), styles[i % styles.size()]).has_value());
  }
  through_h264(frames, [&](std::size_t index, const AVFrame& decoded) {
    const auto measured = measure_style(decoded);
    ASSERT_TRUE(measured.has_value());
    for (std::size_t s = 0; s < styles.size(); ++s) {
      EXPECT_EQ(style_matches(*measured, styles[s]), s == index % styles.size())
          << "frame " << index << " measured (" << int(measured->u) << "," << int(measured->v)
          << ") vs style of '" << prompts[s] << "'";
    }
    EXPECT_EQ(classify_frame(decoded), FrameClass::real) << "styled output is real output";
  });
}

TEST(MediaFrameOps, classifies_loading_black_and_real_frames_after_encode_decode) {
  std::vector<FramePtr> frames;
  std::vector<FrameClass> want;
  for (int i = 0; i < 36; ++i) {
    frames.push_back(new_frame(256, 256));
    AVFrame& f = *frames.back();
    ASSERT_TRUE(draw_test_pattern(f, i).has_value());
    EXPECT_EQ(classify_frame(f), FrameClass::real);
    if (i % 3 == 1) {
      ASSERT_TRUE(draw_loading_overlay(f, i * 3750).has_value());
      want.push_back(FrameClass::loading);
    } else if (i % 3 == 2) {
      ASSERT_TRUE(fill_black(f).has_value());
      want.push_back(FrameClass::black);
    } else {
      want.push_back(FrameClass::real);
    }
  }
  through_h264(frames, [&](std::size_t index, const AVFrame& decoded) {
    EXPECT_EQ(to_string(classify_frame(decoded)), to_string(want[index])) << "frame " << index;
  });
}

TEST(MediaFrameOps, loading_spinner_turns_once_per_second) {
  const auto spinner_centre = [](std::int64_t pts) {
    FramePtr f = new_frame(256, 256);
    EXPECT_TRUE(fill_black(*f).has_value());
    EXPECT_TRUE(draw_loading_overlay(*f, pts).has_value());
    std::int64_t sx = 0, sy = 0, n = 0;
    for (int y = 0; y < 256; ++y) {
      for (int x = 0; x < 256; ++x) {
        if (f->data[0][y * f->linesize[0] + x] > 200) sx += x, sy += y, ++n;
      }
    }
    EXPECT_GT(n, 0);
    return std::make_pair(sx / std::max<std::int64_t>(n, 1), sy / std::max<std::int64_t>(n, 1));
  };
  EXPECT_EQ(spinner_centre(1000), spinner_centre(1000 + 90'000));
  EXPECT_NE(spinner_centre(1000), spinner_centre(1000 + 22'500));
}

TEST(MediaFrameOps, scale_crop_fills_512x512_from_640x360_keeping_the_centre) {
  // A 640x360 source whose outer 140-pixel side bands are black and whose centre square is a
  // gradient: covering 512x512 must keep exactly the centre square, scaled by 512/360.
  FramePtr src = new_frame(640, 360);
  ASSERT_TRUE(fill_black(*src).has_value());
  for (int y = 0; y < 360; ++y) {
    for (int x = 140; x < 500; ++x) {
      src->data[0][y * src->linesize[0] + x] =
          static_cast<std::uint8_t>(40 + (x - 140) / 4 + y / 4);
    }
  }
  for (int y = 0; y < 180; ++y) {
    for (int x = 70; x < 250; ++x) src->data[1][y * src->linesize[1] + x] = 200;
  }
  src->pts = 4242;
  ScalerCache cache;
  auto out = scale_crop(*src, 512, 512, cache);
  ASSERT_TRUE(out.has_value()) << out.error().describe();
  const AVFrame& o = **out;
  ASSERT_EQ(o.width, 512);
  ASSERT_EQ(o.height, 512);
  EXPECT_EQ(o.format, AV_PIX_FMT_YUV420P);
  EXPECT_EQ(o.pts, 4242) << "frame properties travel with the picture";
  for (const auto& [ox, oy] :
       std::vector<std::pair<int, int>>{{256, 256}, {100, 100}, {400, 300}, {20, 480}, {490, 30}}) {
    const int sx = 140 + ox * 360 / 512;
    const int sy = oy * 360 / 512;
    EXPECT_NEAR(o.data[0][oy * o.linesize[0] + ox], src->data[0][sy * src->linesize[0] + sx], 3)
        << "output (" << ox << "," << oy << ")";
  }
  for (int y = 0; y < 512; y += 8) {
    EXPECT_GT(o.data[0][y * o.linesize[0] + 1], 30) << "no black side band at row " << y;
    EXPECT_GT(o.data[0][y * o.linesize[0] + 510], 30) << "no black side band at row " << y;
    EXPECT_NEAR(o.data[1][(y / 2) * o.linesize[1] + 128], 200, 2) << "chroma cropped the same";
  }
  // Portrait input covers too.
  FramePtr tall = new_frame(360, 640);
  ASSERT_TRUE(draw_test_pattern(*tall, 0).has_value());
  auto tall_out = scale_crop(*tall, 512, 512, cache);
  ASSERT_TRUE(tall_out.has_value());
  EXPECT_EQ((*tall_out)->width, 512);
}

TEST(MediaFrameOps, same_size_shares_buffers_and_writing_copies_them_first) {
  FramePtr src = new_frame(128, 128);
  ASSERT_TRUE(draw_test_pattern(*src, 0).has_value());
  const std::uint8_t before = src->data[1][0];
  ScalerCache cache;
  auto same = scale_crop(*src, 128, 128, cache);
  ASSERT_TRUE(same.has_value());
  EXPECT_EQ((*same)->data[0], src->data[0]) << "no copy when the size already matches";
  ASSERT_TRUE(apply_prompt_style(**same, PromptStyle{.u = 40, .v = 216}).has_value());
  EXPECT_NE((*same)->data[0], src->data[0]) << "copied before writing";
  EXPECT_EQ(src->data[1][0], before) << "the shared source (a decoder's reference) is intact";
  EXPECT_EQ((*same)->data[1][0], 40);

  FramePool pool;
  auto shared = scale_crop(*src, 128, 128, cache);
  ASSERT_TRUE(shared.has_value());
  (*shared)->pts = 77;
  ASSERT_TRUE(make_writable(**shared, pool).has_value());
  EXPECT_NE((*shared)->data[0], src->data[0]);
  EXPECT_EQ((*shared)->data[0][5 * (*shared)->linesize[0] + 9],
            src->data[0][5 * src->linesize[0] + 9]);
  EXPECT_EQ((*shared)->pts, 77);
  EXPECT_NE(av_frame_is_writable(shared->get()), 0);
}

TEST(MediaFrameOps, refuses_frames_that_are_not_yuv420) {
  FramePtr rgb(av_frame_alloc());
  rgb->format = AV_PIX_FMT_RGB24;
  rgb->width = 64;
  rgb->height = 64;
  ASSERT_EQ(av_frame_get_buffer(rgb.get(), 0), 0);
  EXPECT_FALSE(apply_prompt_style(*rgb, PromptStyle{}).has_value());
  EXPECT_FALSE(measure_style(*rgb).has_value());
  ScalerCache cache;
  auto converted = scale_crop(*rgb, 32, 32, cache);
  ASSERT_TRUE(converted.has_value()) << "but scale_crop converts any software format";
  EXPECT_EQ((*converted)->format, AV_PIX_FMT_YUV420P);
}

}  // namespace
}  // namespace naap::media
