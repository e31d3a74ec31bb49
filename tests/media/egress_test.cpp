// Media egress: decoder backend choice (NVDEC with a CUDA device, software otherwise), low delay
// with slice threads, and the prompt-change probe on moving video through the runner's codec.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "media_test_support.hpp"
#include "naap/media/decoder.hpp"
#include "naap/media/encoder.hpp"
#include "naap/media/frame_ops.hpp"
#include "naap/media/probes.hpp"

namespace naap::media {
namespace {

using Backend = DecoderOptions::Backend;

const std::vector<EncodedFrame>& clip_frames() {
  static const std::vector<EncodedFrame> frames = test::demux_segments(test::cached_clip(
      ClipOptions{.width = 256, .height = 144, .duration_s = 2.0, .gop_seconds = 1.0}));
  return frames;
}

// Per decoded picture: its pts, format and a copy of its planes (to compare backends).
struct Picture {
  std::int64_t pts = 0;  // 90 kHz ticks
  int format = -1;       // AVPixelFormat
  int width = 0;         // pixels
  int height = 0;        // pixels
  std::string planes;    // Y, U, V rows without padding
};

Picture copy_picture(const AVFrame& f) {
  Picture p{.pts = f.pts, .format = f.format, .width = f.width, .height = f.height};
  for (int plane = 0; plane < 3; ++plane) {
    const int w = plane == 0 ? f.width : (f.width + 1) / 2;
    const int h = plane == 0 ? f.height : (f.height + 1) / 2;
    for (int y = 0; y < h; ++y) {
      p.planes.append(reinterpret_cast<const char*>(f.data[plane] + y * f.linesize[plane]),
                      static_cast<std::size_t>(w));
    }
  }
  return p;
}

// Decodes the clip, checking that each access unit yields its picture in the same call.
std::vector<Picture> decode_all(H264Decoder& decoder) {
  std::vector<Picture> pictures;
  for (const EncodedFrame& f : clip_frames()) {
    const std::size_t before = pictures.size();
    auto ok =
        decoder.decode(f, [&pictures](AVFrame& frame) { pictures.push_back(copy_picture(frame)); });
    EXPECT_TRUE(ok.has_value()) << (ok ? "" : ok.error().describe());
    EXPECT_EQ(pictures.size(), before + 1) << "pts " << f.pts << ": a frame of delay";
  }
  EXPECT_TRUE(decoder.flush([](AVFrame&) { ADD_FAILURE() << "a picture was held back"; }));
  return pictures;
}

void expect_clip_pictures(const std::vector<Picture>& pictures) {
  ASSERT_EQ(pictures.size(), clip_frames().size());
  for (std::size_t i = 0; i < pictures.size(); ++i) {
    EXPECT_EQ(pictures[i].pts, clip_frames()[i].pts) << i;
    EXPECT_EQ(pictures[i].format, AV_PIX_FMT_YUV420P) << i;
    EXPECT_EQ(pictures[i].width, 256) << i;
    EXPECT_EQ(pictures[i].height, 144) << i;
  }
}

std::unique_ptr<H264Decoder> make(const DecoderOptions& options) {
  auto decoder = H264Decoder::create(options);
  EXPECT_TRUE(decoder.has_value()) << (decoder ? "" : decoder.error().describe());
  return decoder ? std::move(*decoder) : nullptr;
}

TEST(MediaDecoderBackend, automatic_picks_nvdec_with_a_cuda_device_and_software_without) {
  const bool cuda = probe_nvdec().has_value();
  auto decoder = make(DecoderOptions{.backend = Backend::automatic});
  ASSERT_NE(decoder, nullptr);
  EXPECT_EQ(decoder->backend(), cuda ? "nvdec" : "software");
  expect_clip_pictures(decode_all(*decoder));
  EXPECT_EQ(decoder->stats().errors, 0u);
}

TEST(MediaDecoderBackend, forced_nvdec_without_a_cuda_device_is_a_media_error_saying_so) {
  if (probe_nvdec()) GTEST_SKIP() << "a CUDA device is present: the nvdec decode test covers it";
  auto decoder = H264Decoder::create(DecoderOptions{.backend = Backend::nvdec});
  ASSERT_FALSE(decoder.has_value());
  EXPECT_EQ(decoder.error().category, ErrorCategory::media);
  EXPECT_NE(decoder.error().describe().find("no CUDA device"), std::string::npos)
      << decoder.error().describe();
}

TEST(MediaDecoderBackend, nvdec_decodes_the_same_yuv420p_pictures_as_software) {
  if (auto probe = probe_nvdec(); !probe) {
    GTEST_SKIP() << "no CUDA device: " << probe.error().describe();
  }
  auto nvdec = make(DecoderOptions{.backend = Backend::nvdec});
  ASSERT_NE(nvdec, nullptr);
  EXPECT_EQ(nvdec->backend(), "nvdec");
  const std::vector<Picture> gpu = decode_all(*nvdec);
  expect_clip_pictures(gpu);
  auto software = make(DecoderOptions{.backend = Backend::software});
  ASSERT_NE(software, nullptr);
  const std::vector<Picture> cpu = decode_all(*software);
  ASSERT_EQ(gpu.size(), cpu.size());
  for (std::size_t i = 0; i < gpu.size(); ++i) {
    EXPECT_TRUE(gpu[i].planes == cpu[i].planes) << "H.264 decoding is bit-exact; frame " << i;
  }
}

TEST(MediaDecoderBackend, slice_threads_add_no_delay_and_change_no_pixel) {
  auto one = make(DecoderOptions{.backend = Backend::software, .threads = 1});
  auto three = make(DecoderOptions{.backend = Backend::software, .threads = 3});
  ASSERT_NE(one, nullptr);
  ASSERT_NE(three, nullptr);
  EXPECT_EQ(three->backend(), "software");
  const std::vector<Picture> a = decode_all(*one);
  const std::vector<Picture> b = decode_all(*three);
  expect_clip_pictures(b);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(a[i].planes == b[i].planes) << i;
}

TEST(MediaDecoderBackend, refuses_fewer_than_one_thread) {
  auto decoder = H264Decoder::create(DecoderOptions{.backend = Backend::software, .threads = 0});
  ASSERT_FALSE(decoder.has_value());
  EXPECT_EQ(decoder.error().category, ErrorCategory::config);
}

// ---- prompt-change probe ----

constexpr int k_probe_size = 256;  // pixels: small, so the moving gradient's colour mix varies

// Draws `count` frames of the moving test pattern, lets `edit` restyle frame i (the model's
// effect), and returns the signatures of the pictures as the gateway decodes them after the
// runner's encoder (superfast, zerolatency).
using FrameEdit = std::function<void(AVFrame&, int)>;
std::vector<FrameSignature> through_codec(int count, const FrameEdit& edit) {
  std::vector<FrameSignature> signatures;
  auto encoder = H264Encoder::create(EncoderOptions{.width = k_probe_size, .height = k_probe_size});
  auto decoder = make(DecoderOptions{.backend = Backend::software});
  EXPECT_TRUE(encoder.has_value());
  if (!encoder || !decoder) return signatures;
  const auto on_frame = [&signatures](AVFrame& frame) {
    EXPECT_EQ(classify_frame(frame), FrameClass::real) << "the probe is fed real frames only";
    auto signature = signature_of(frame);
    EXPECT_TRUE(signature.has_value());
    if (signature) signatures.push_back(*signature);
  };
  for (int i = 0; i < count; ++i) {
    auto frame = make_frame(k_probe_size, k_probe_size);
    EXPECT_TRUE(frame.has_value());
    if (!frame) break;
    EXPECT_TRUE(draw_test_pattern(**frame, i).has_value());
    edit(**frame, i);
    (void)(*encoder)->encode(**frame, std::int64_t{i} * 3750, [&](EncodedFrame&& packet) {
      EXPECT_TRUE(decoder->decode(packet, on_frame).has_value());
    });
  }
  EXPECT_EQ(signatures.size(), static_cast<std::size_t>(count));
  return signatures;
}

FrameEdit styled(PromptStyle before, PromptStyle after, int change_at) {
  return [=](AVFrame& frame, int i) {
    EXPECT_TRUE(apply_prompt_style(frame, i < change_at ? before : after).has_value());
  };
}

// A session's use: baseline frames in [from, armed_at), the switch written at armed_at, then
// the index of the first frame the detector flags before `end`, or -1.
int first_changed(PromptChangeDetector& detector, const std::vector<FrameSignature>& frames,
                  int from, int armed_at, int end) {
  detector.reset();
  for (int i = from; i < armed_at; ++i) detector.observe_baseline(frames[i]);
  detector.arm();
  for (int i = armed_at; i < end; ++i) {
    if (detector.is_changed(frames[i])) return i;
  }
  return -1;
}

// Two prompts with different styles (1 in 64 pairs share one).
std::pair<std::string, std::string> distinct_prompts() {
  std::string b = "a watercolour painting";
  for (int i = 0; style_for_prompt(b) == style_for_prompt("a cyberpunk city"); ++i) {
    b = "a watercolour painting " + std::to_string(i);
  }
  return {"a cyberpunk city", b};
}

TEST(MediaPromptProbe, signature_is_the_mean_of_each_plane_per_cell) {
  auto frame = make_frame(64, 48);
  ASSERT_TRUE(frame.has_value());
  ASSERT_TRUE(draw_test_pattern(**frame, 0).has_value());
  ASSERT_TRUE(apply_prompt_style(**frame, PromptStyle{.u = 40, .v = 200}).has_value());
  const auto signature = signature_of(**frame);
  ASSERT_TRUE(signature.has_value());
  for (int cell = 0; cell < FrameSignature::k_cells; ++cell) {
    EXPECT_FLOAT_EQ(signature->mean[1][cell], 40.0F);
    EXPECT_FLOAT_EQ(signature->mean[2][cell], 200.0F);
  }
  // Cell (0, 0) covers luma rows 0..5 and columns 0..7.
  double sum = 0;
  for (int y = 0; y < 6; ++y) {
    for (int x = 0; x < 8; ++x) sum += (*frame)->data[0][y * (*frame)->linesize[0] + x];
  }
  EXPECT_NEAR(signature->mean[0][0], sum / 48, 1e-3);
  (*frame)->format = AV_PIX_FMT_RGB24;
  EXPECT_FALSE(signature_of(**frame).has_value());
}

TEST(MediaPromptProbe, fires_on_the_first_frame_of_each_new_style_and_never_before) {
  const auto [a, b] = distinct_prompts();
  // 10 s at 24 fps: prompt a, switch to b written at 60 and visible from 72 (the pipeline's
  // delay), switch back to a written at 150 and visible from 171.
  const PromptStyle sa = style_for_prompt(a);
  const PromptStyle sb = style_for_prompt(b);
  const auto frames = through_codec(240, [&](AVFrame& frame, int i) {
    const PromptStyle s = i < 72 ? sa : i < 171 ? sb : sa;
    EXPECT_TRUE(apply_prompt_style(frame, s).has_value());
  });
  ASSERT_EQ(frames.size(), 240u);
  PromptChangeDetector detector;
  EXPECT_EQ(first_changed(detector, frames, 0, 60, 240), 72);
  for (int i = 72; i < 171; ++i) EXPECT_TRUE(detector.is_changed(frames[i])) << i;
  EXPECT_EQ(first_changed(detector, frames, 72, 150, 240), 171);
}

TEST(MediaPromptProbe, never_fires_on_moving_video_with_the_same_prompt) {
  const PromptStyle style = style_for_prompt("a cyberpunk city");
  const auto frames = through_codec(248, styled(style, style, 0));
  ASSERT_EQ(frames.size(), 248u);
  PromptChangeDetector detector;
  EXPECT_EQ(first_changed(detector, frames, 0, 48, 248), -1) << "200 frames after the switch";
}

TEST(MediaPromptProbe, never_fires_on_moving_unstyled_video) {
  // Passthrough before the first prompt: the pattern's own colours move (bands, disc).
  const auto frames = through_codec(248, [](AVFrame&, int) {});
  ASSERT_EQ(frames.size(), 248u);
  PromptChangeDetector detector;
  EXPECT_EQ(first_changed(detector, frames, 0, 48, 248), -1) << "200 frames after the switch";
}

TEST(MediaPromptProbe, tells_apart_the_two_closest_prompt_styles) {
  // Styles lie on a grid with a step of 24 levels: find prompts one step apart in one plane.
  std::string a = "style 0";
  std::string b;
  for (int i = 0; b.empty() && i < 2000; ++i) {
    for (int j = 0; j < i; ++j) {
      const PromptStyle x = style_for_prompt("style " + std::to_string(i));
      const PromptStyle y = style_for_prompt("style " + std::to_string(j));
      if (std::abs(x.u - y.u) + std::abs(x.v - y.v) == 24) {
        a = "style " + std::to_string(i);
        b = "style " + std::to_string(j);
        break;
      }
    }
  }
  ASSERT_FALSE(b.empty());
  const auto frames = through_codec(120, styled(style_for_prompt(a), style_for_prompt(b), 60));
  ASSERT_EQ(frames.size(), 120u);
  PromptChangeDetector detector;
  EXPECT_EQ(first_changed(detector, frames, 0, 50, 120), 60) << a << " -> " << b;
}

TEST(MediaPromptProbe, fires_on_a_brightness_change_with_the_same_colours) {
  // A model whose new prompt darkens the picture without changing its chroma.
  const PromptStyle style = style_for_prompt("a cyberpunk city");
  const auto frames = through_codec(120, [&](AVFrame& frame, int i) {
    EXPECT_TRUE(apply_prompt_style(frame, style).has_value());
    if (i < 60) return;
    for (int y = 0; y < frame.height; ++y) {
      std::uint8_t* row = frame.data[0] + y * frame.linesize[0];
      for (int x = 0; x < frame.width; ++x)
        row[x] = static_cast<std::uint8_t>(16 + (row[x] - 16) * 3 / 4);
    }
  });
  ASSERT_EQ(frames.size(), 120u);
  PromptChangeDetector detector;
  EXPECT_EQ(first_changed(detector, frames, 0, 50, 120), 60);
}

TEST(MediaPromptProbe, needs_a_baseline_and_an_armed_switch) {
  const auto [a, b] = distinct_prompts();
  const auto frames = through_codec(4, styled(style_for_prompt(a), style_for_prompt(b), 2));
  ASSERT_EQ(frames.size(), 4u);
  PromptChangeDetector detector;
  EXPECT_FALSE(detector.is_changed(frames[3])) << "not armed";
  detector.arm();
  EXPECT_FALSE(detector.is_changed(frames[3])) << "no baseline frame: unmeasured";
  detector.reset();
  detector.observe_baseline(frames[0]);
  detector.arm();
  EXPECT_FALSE(detector.is_changed(frames[1]));
  EXPECT_TRUE(detector.is_changed(frames[2]));
  const PlaneDistances d = detector.distance(frames[2]);
  EXPECT_GT(std::max(d[1], d[2]), 20.0) << "a style step is 24 levels or more in U or V";
}

}  // namespace
}  // namespace naap::media
