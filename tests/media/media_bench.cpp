// media_bench: single-thread frames per second at 512x512 for decode, encode (superfast and
// ultrafast) and the emulated runner's chain (demux, decode, style, encode, mux), to check the
// emulator's budget of 8 streams x 24 fps on two cores. Usage: media_bench [seconds_of_video]
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "naap/media/decoder.hpp"
#include "naap/media/encoder.hpp"
#include "naap/media/frame_ops.hpp"
#include "naap/media/synthetic_clip.hpp"
#include "naap/media/ts_demuxer.hpp"
#include "naap/media/ts_muxer.hpp"

namespace {

using namespace naap::media;

constexpr int k_size = 512;   // pixels, the runner's default
constexpr double k_fps = 24;  // frames per second, the runner's cap

double thread_cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Runs `body` (which processes `frames` frames) and prints one result line.
template <typename Body>
void measure(const char* name, std::size_t frames, const Body& body) {
  const auto wall0 = std::chrono::steady_clock::now();
  const double cpu0 = thread_cpu_seconds();
  body();
  const double cpu = thread_cpu_seconds() - cpu0;
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  const double fps = static_cast<double>(frames) / cpu;
  std::printf(
      "bench=%s frames=%zu wall_s=%.2f cpu_s=%.2f fps_per_core=%.0f ms_per_frame=%.2f "
      "streams_24fps_per_core=%.1f\n",
      name, frames, wall, cpu, fps, 1000.0 / fps, fps / k_fps);
}

[[noreturn]] void die(const naap::Error& e) {
  std::fprintf(stderr, "media_bench: %s\n", e.describe().c_str());
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 10.0;
  set_ffmpeg_log_level(AV_LOG_ERROR);
  // Input as the gateway sends it: the synthetic clip (ultrafast, 1 s GOPs).
  auto clip =
      encode_synthetic_clip(ClipOptions{.width = k_size, .height = k_size, .duration_s = seconds});
  if (!clip) die(clip.error());
  std::vector<EncodedFrame> input;
  TsDemuxer demuxer([&input](EncodedFrame&& f) { input.push_back(std::move(f)); });
  std::size_t input_bytes = 0;
  for (const auto& s : clip->segments) {
    demuxer.push(s.bytes);
    demuxer.flush();
    input_bytes += s.bytes.size();
  }
  std::printf("input frames=%zu size=%dx%d bitrate_kbps=%.0f\n", input.size(), k_size, k_size,
              static_cast<double>(input_bytes) * 8 / seconds / 1000);

  std::vector<FramePtr> pictures;
  for (std::size_t i = 0; i < input.size(); ++i) {
    auto f = make_frame(k_size, k_size);
    if (!f) die(f.error());
    if (auto ok = draw_test_pattern(**f, static_cast<std::int64_t>(i)); !ok) die(ok.error());
    pictures.push_back(std::move(*f));
  }

  measure("demux", input.size(), [&] {
    std::size_t n = 0;
    TsDemuxer d([&n](EncodedFrame&&) { ++n; });
    for (const auto& s : clip->segments) {
      d.push(s.bytes);
      d.flush();
    }
  });

  measure("decode", input.size(), [&] {
    auto decoder = H264Decoder::create();
    if (!decoder) die(decoder.error());
    for (const auto& f : input) (void)(*decoder)->decode(f, [](AVFrame&) {});
  });

  for (const char* preset : {"superfast", "ultrafast"}) {
    std::size_t bytes = 0;
    measure(preset == std::string("superfast") ? "encode_superfast" : "encode_ultrafast",
            pictures.size(), [&] {
              auto encoder = H264Encoder::create(EncoderOptions{
                  .width = k_size, .height = k_size, .fps = k_fps, .preset = preset});
              if (!encoder) die(encoder.error());
              for (std::size_t i = 0; i < pictures.size(); ++i) {
                (void)(*encoder)->encode(*pictures[i], static_cast<std::int64_t>(i) * 3750,
                                         [&bytes](EncodedFrame&& p) { bytes += p.data.size(); });
              }
            });
    std::printf("  %s output bitrate_kbps=%.0f\n", preset,
                static_cast<double>(bytes) * 8 / seconds / 1000);
  }

  // Re-encoding decoded pictures, no tint: separates the codecs' cost from the frame work.
  measure("decode_encode_superfast", input.size(), [&] {
    auto decoder = H264Decoder::create();
    auto encoder = H264Encoder::create(EncoderOptions{.width = k_size, .height = k_size});
    if (!decoder || !encoder) die(naap::Error(naap::ErrorCategory::media, "setup"));
    for (const auto& f : input) {
      (void)(*decoder)->decode(f, [&](AVFrame& frame) {
        (void)(*encoder)->encode(frame, frame.pts, [](EncodedFrame&&) {});
      });
    }
  });

  // The emulated runner, per frame: demux, decode, scale/crop (a no-op at 512x512), tint,
  // encode with the runner's settings, mux into 2 s segments.
  measure("runner_chain_superfast", input.size(), [&] {
    auto decoder = H264Decoder::create();
    auto encoder = H264Encoder::create(EncoderOptions{.width = k_size, .height = k_size});
    std::size_t out_bytes = 0;
    auto muxer =
        TsSegmentMuxer::create(MuxerOptions{.width = k_size, .height = k_size},
                               [&out_bytes](std::string_view b) { out_bytes += b.size(); });
    if (!decoder || !encoder || !muxer) die(naap::Error(naap::ErrorCategory::media, "setup"));
    ScalerCache scaler;
    const PromptStyle style = style_for_prompt("bench");
    const auto on_packet = [&](EncodedFrame&& p) {
      if (p.keyframe) (void)(*muxer)->begin_segment();
      (void)(*muxer)->write(p);
    };
    const auto on_frame = [&](AVFrame& frame) {
      auto scaled = scale_crop(frame, k_size, k_size, scaler);
      if (!scaled) die(scaled.error());
      (void)make_writable(**scaled, scaler.frames);  // pooled copy of the decoder's picture
      (void)apply_prompt_style(**scaled, style);
      (void)(*encoder)->encode(**scaled, frame.pts, on_packet);
    };
    TsDemuxer d([&](EncodedFrame&& f) { (void)(*decoder)->decode(f, on_frame); });
    for (const auto& s : clip->segments) {
      d.push(s.bytes);
      d.flush();
    }
    (void)(*muxer)->end_segment();
  });
  return 0;
}
