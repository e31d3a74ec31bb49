// YUV 4:2:0 frame operations: runner-style scaling, prompt tint, loading overlay, frame
// classification and the synthetic test picture.
#include "naap/media/frame_ops.hpp"

extern "C" {
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
}

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <numbers>
#include <string>

#include "naap/core/sha256.hpp"

namespace naap::media {
namespace {

constexpr int k_align = 64;  // bytes: line and plane alignment of the frames we allocate
constexpr int k_black = 16;
constexpr int k_white = 235;
constexpr int k_grey = 128;
// Chroma levels at least 40 from grey, 24 apart: 8 per axis, 64 styles.
constexpr std::array<std::uint8_t, 8> k_style_levels = {16, 40, 64, 88, 168, 192, 216, 240};
constexpr int k_style_tolerance = 11;

bool is_yuv420(const AVFrame& frame) {
  return (frame.format == AV_PIX_FMT_YUV420P || frame.format == AV_PIX_FMT_YUVJ420P) &&
         frame.width > 0 && frame.height > 0 && frame.data[0] != nullptr &&
         frame.data[1] != nullptr && frame.data[2] != nullptr;
}

int chroma_width(const AVFrame& frame) {
  return (frame.width + 1) / 2;
}
int chroma_height(const AVFrame& frame) {
  return (frame.height + 1) / 2;
}

std::uint8_t* row(AVFrame& frame, int plane, int y) {
  return frame.data[plane] + static_cast<std::ptrdiff_t>(y) * frame.linesize[plane];
}
const std::uint8_t* row(const AVFrame& frame, int plane, int y) {
  return frame.data[plane] + static_cast<std::ptrdiff_t>(y) * frame.linesize[plane];
}

void fill_plane(AVFrame& frame, int plane, int width, int height, std::uint8_t value) {
  for (int y = 0; y < height; ++y) std::memset(row(frame, plane, y), value, width);
}

// Checks the format, then makes the frame writable.
Result<void> prepare_for_writing(AVFrame& frame, std::string_view what) {
  if (!is_yuv420(frame)) {
    return fail(Error(ErrorCategory::media, std::string(what) + " needs a YUV420P frame")
                    .with("format", std::to_string(frame.format)));
  }
  return make_writable(frame);
}

// Full-range "J" formats are scaled as their limited-range twins: the same layout, and no
// deprecation warning from swscale. Colours shift slightly; geometry is what matters here.
AVPixelFormat scaler_format(int format) {
  switch (format) {
    case AV_PIX_FMT_YUVJ420P:
      return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P:
      return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P:
      return AV_PIX_FMT_YUV444P;
    default:
      return static_cast<AVPixelFormat>(format);
  }
}

std::uint32_t mix(std::uint32_t x) {
  x ^= x >> 16;
  x *= 0x7FEB352DU;
  x ^= x >> 15;
  x *= 0x846CA68BU;
  x ^= x >> 16;
  return x;
}

}  // namespace

Result<FramePtr> make_frame(int width, int height) {
  if (width <= 0 || height <= 0) {
    return fail(Error(ErrorCategory::media, "frame size must be positive")
                    .with("width", std::to_string(width))
                    .with("height", std::to_string(height)));
  }
  auto frame = alloc_frame();
  if (!frame) return frame;
  (*frame)->format = AV_PIX_FMT_YUV420P;
  (*frame)->width = width;
  (*frame)->height = height;
  if (const int rc = av_frame_get_buffer(frame->get(), k_align); rc < 0) {
    return fail(av_error(rc, "cannot allocate a frame").with("width", std::to_string(width)));
  }
  return frame;
}

Result<FramePtr> FramePool::get(int width, int height) {
  if (width <= 0 || height <= 0) return make_frame(width, height);  // reports the error
  if (!pool_ || width != width_ || height != height_) {
    const int size = av_image_get_buffer_size(AV_PIX_FMT_YUV420P, width, height, k_align);
    if (size < 0) return fail(av_error(size, "frame too large"));
    buffer_size_ = size + AV_INPUT_BUFFER_PADDING_SIZE;
    pool_.reset(av_buffer_pool_init(static_cast<std::size_t>(buffer_size_), nullptr));
    if (!pool_) return fail(ErrorCategory::media, "av_buffer_pool_init failed: out of memory");
    width_ = width;
    height_ = height;
  }
  auto frame = alloc_frame();
  if (!frame) return frame;
  AVFrame* f = frame->get();
  f->buf[0] = av_buffer_pool_get(pool_.get());
  if (f->buf[0] == nullptr) return fail(ErrorCategory::media, "frame pool: out of memory");
  f->format = AV_PIX_FMT_YUV420P;
  f->width = width;
  f->height = height;
  const int rc = av_image_fill_arrays(f->data, f->linesize, f->buf[0]->data, AV_PIX_FMT_YUV420P,
                                      width, height, k_align);
  if (rc < 0) return fail(av_error(rc, "cannot lay out a pooled frame"));
  return frame;
}

Result<void> make_writable(AVFrame& frame) {
  if (av_frame_is_writable(&frame) != 0) return {};
  if (const int rc = av_frame_make_writable(&frame); rc < 0) {
    return fail(av_error(rc, "cannot copy a shared frame to write to it"));
  }
  return {};
}

Result<void> make_writable(AVFrame& frame, FramePool& pool) {
  if (av_frame_is_writable(&frame) != 0) return {};
  if (frame.format != AV_PIX_FMT_YUV420P || !is_yuv420(frame)) return make_writable(frame);
  auto copy = pool.get(frame.width, frame.height);
  if (!copy) return fail(copy.error());
  if (const int rc = av_frame_copy(copy->get(), &frame); rc < 0) {
    return fail(av_error(rc, "cannot copy a shared frame to write to it"));
  }
  av_frame_copy_props(copy->get(), &frame);
  av_frame_unref(&frame);
  av_frame_move_ref(&frame, copy->get());
  return {};
}

Result<FramePtr> scale_crop(const AVFrame& src, int width, int height, ScalerCache& cache) {
  if (width <= 0 || height <= 0 || src.width <= 0 || src.height <= 0 || src.data[0] == nullptr) {
    return fail(Error(ErrorCategory::media, "scale_crop: empty source or target size")
                    .with("source", std::to_string(src.width) + "x" + std::to_string(src.height))
                    .with("target", std::to_string(width) + "x" + std::to_string(height)));
  }
  if (is_yuv420(src) && src.width == width && src.height == height) {
    FramePtr same(av_frame_clone(&src));
    if (!same) return fail(ErrorCategory::media, "av_frame_clone failed: out of memory");
    return same;
  }
  const AVPixelFormat format = scaler_format(src.format);
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(format);
  if (desc == nullptr || (desc->flags & (AV_PIX_FMT_FLAG_HWACCEL | AV_PIX_FMT_FLAG_BITSTREAM)) ||
      sws_isSupportedInput(format) == 0) {
    return fail(Error(ErrorCategory::media, "scale_crop: unsupported source pixel format")
                    .with("format", std::to_string(src.format)));
  }
  // Crop the source to the target's aspect ratio, centred, then scale that region: the same
  // picture as scaling to cover and cropping the result, for less work.
  int crop_w = src.width;
  int crop_h = src.height;
  const std::int64_t lhs = static_cast<std::int64_t>(src.width) * height;
  const std::int64_t rhs = static_cast<std::int64_t>(src.height) * width;
  if (lhs > rhs) {
    crop_w =
        static_cast<int>((static_cast<std::int64_t>(src.height) * width + height / 2) / height);
  } else if (lhs < rhs) {
    crop_h = static_cast<int>((static_cast<std::int64_t>(src.width) * height + width / 2) / width);
  }
  crop_w = std::max(crop_w, 1);
  crop_h = std::max(crop_h, 1);
  // Offsets on whole chroma samples so every plane crops the same region.
  const int x = ((src.width - crop_w) / 2) >> desc->log2_chroma_w << desc->log2_chroma_w;
  const int y = ((src.height - crop_h) / 2) >> desc->log2_chroma_h << desc->log2_chroma_h;

  std::array<const std::uint8_t*, 4> planes{};
  std::array<int, 4> steps{};
  for (int c = 0; c < desc->nb_components; ++c) {
    steps[desc->comp[c].plane] = desc->comp[c].step;
  }
  for (int p = 0; p < 4 && src.data[p] != nullptr; ++p) {
    const bool chroma = (p == 1 || p == 2) && (desc->flags & AV_PIX_FMT_FLAG_RGB) == 0;
    const int sx = chroma ? desc->log2_chroma_w : 0;
    const int sy = chroma ? desc->log2_chroma_h : 0;
    planes[p] = src.data[p] + static_cast<std::ptrdiff_t>(y >> sy) * src.linesize[p] +
                static_cast<std::ptrdiff_t>(x >> sx) * steps[p];
  }

  cache.sws.reset(sws_getCachedContext(cache.sws.release(), crop_w, crop_h, format, width, height,
                                       AV_PIX_FMT_YUV420P, SWS_BILINEAR, nullptr, nullptr,
                                       nullptr));
  if (!cache.sws) {
    return fail(Error(ErrorCategory::media, "cannot create the scaler")
                    .with("source", std::to_string(crop_w) + "x" + std::to_string(crop_h)));
  }
  auto dst = cache.frames.get(width, height);
  if (!dst) return dst;
  const int rc = sws_scale(cache.sws.get(), planes.data(), src.linesize, 0, crop_h, (*dst)->data,
                           (*dst)->linesize);
  if (rc < 0) return fail(av_error(rc, "scaling failed"));
  av_frame_copy_props(dst->get(), &src);
  return dst;
}

PromptStyle style_for_prompt(std::string_view prompt) {
  const std::string digest = Sha256::hex(prompt);
  std::uint32_t h = 0;
  std::from_chars(digest.data(), digest.data() + 8, h, 16);
  const std::size_t index = h % (k_style_levels.size() * k_style_levels.size());
  return PromptStyle{.u = k_style_levels[index % k_style_levels.size()],
                     .v = k_style_levels[index / k_style_levels.size()]};
}

Result<void> apply_prompt_style(AVFrame& frame, PromptStyle style) {
  if (auto ok = prepare_for_writing(frame, "apply_prompt_style"); !ok) return ok;
  fill_plane(frame, 1, chroma_width(frame), chroma_height(frame), style.u);
  fill_plane(frame, 2, chroma_width(frame), chroma_height(frame), style.v);
  return {};
}

std::optional<PromptStyle> measure_style(const AVFrame& frame) {
  if (!is_yuv420(frame)) return std::nullopt;
  const int cw = chroma_width(frame);
  const int ch = chroma_height(frame);
  const int x0 = cw / 4;
  const int x1 = std::max(x0 + 1, cw - cw / 4);
  const int y0 = ch / 4;
  const int y1 = std::max(y0 + 1, ch - ch / 4);
  std::uint64_t sum_u = 0;
  std::uint64_t sum_v = 0;
  for (int y = y0; y < y1; ++y) {
    const std::uint8_t* u = row(frame, 1, y);
    const std::uint8_t* v = row(frame, 2, y);
    for (int x = x0; x < x1; ++x) {
      sum_u += u[x];
      sum_v += v[x];
    }
  }
  const std::uint64_t count =
      static_cast<std::uint64_t>(x1 - x0) * static_cast<std::uint64_t>(y1 - y0);
  return PromptStyle{.u = static_cast<std::uint8_t>((sum_u + count / 2) / count),
                     .v = static_cast<std::uint8_t>((sum_v + count / 2) / count)};
}

bool style_matches(PromptStyle measured, PromptStyle expected) {
  return std::abs(measured.u - expected.u) <= k_style_tolerance &&
         std::abs(measured.v - expected.v) <= k_style_tolerance;
}

Result<void> draw_loading_overlay(AVFrame& frame, std::int64_t pts) {
  if (auto ok = prepare_for_writing(frame, "draw_loading_overlay"); !ok) return ok;
  std::array<std::uint8_t, 256> dim{};
  for (int i = 0; i < 256; ++i)
    dim[i] = static_cast<std::uint8_t>(k_black + std::max(0, i - k_black) / 2);
  for (int y = 0; y < frame.height; ++y) {
    std::uint8_t* p = row(frame, 0, y);
    for (int x = 0; x < frame.width; ++x) p[x] = dim[p[x]];
  }
  fill_plane(frame, 1, chroma_width(frame), chroma_height(frame), k_grey);
  fill_plane(frame, 2, chroma_width(frame), chroma_height(frame), k_grey);

  const int side = std::min(frame.width, frame.height);
  const int block = std::max(2, side / 12);
  const double radius = side / 5.0;
  const std::int64_t phase = ((pts % k_ticks_per_second) + k_ticks_per_second) % k_ticks_per_second;
  const double angle =
      2.0 * std::numbers::pi * static_cast<double>(phase) / static_cast<double>(k_ticks_per_second);
  const int cx =
      frame.width / 2 + static_cast<int>(std::lround(radius * std::cos(angle))) - block / 2;
  const int cy =
      frame.height / 2 + static_cast<int>(std::lround(radius * std::sin(angle))) - block / 2;
  const int x0 = std::clamp(cx, 0, frame.width);
  const int x1 = std::clamp(cx + block, 0, frame.width);
  for (int y = std::clamp(cy, 0, frame.height); y < std::clamp(cy + block, 0, frame.height); ++y) {
    std::memset(row(frame, 0, y) + x0, k_white, static_cast<std::size_t>(x1 - x0));
  }
  return {};
}

Result<void> fill_black(AVFrame& frame) {
  if (auto ok = prepare_for_writing(frame, "fill_black"); !ok) return ok;
  fill_plane(frame, 0, frame.width, frame.height, k_black);
  fill_plane(frame, 1, chroma_width(frame), chroma_height(frame), k_grey);
  fill_plane(frame, 2, chroma_width(frame), chroma_height(frame), k_grey);
  return {};
}

FrameClass classify_frame(const AVFrame& frame) {
  if (!is_yuv420(frame)) return FrameClass::real;
  constexpr int step = 4;  // sample every 4th pixel of every 4th line
  std::uint64_t sum = 0;
  std::uint64_t sum_sq = 0;
  std::uint64_t count = 0;
  for (int y = 0; y < frame.height; y += step) {
    const std::uint8_t* p = row(frame, 0, y);
    for (int x = 0; x < frame.width; x += step) {
      sum += p[x];
      sum_sq += static_cast<std::uint64_t>(p[x]) * p[x];
      ++count;
    }
  }
  const double mean = static_cast<double>(sum) / static_cast<double>(count);
  const double variance = static_cast<double>(sum_sq) / static_cast<double>(count) - mean * mean;
  if (mean < 24.0 && variance < 64.0) return FrameClass::black;

  constexpr int chroma_step = 2;
  std::uint64_t coloured = 0;
  std::uint64_t samples = 0;
  for (int y = 0; y < chroma_height(frame); y += chroma_step) {
    const std::uint8_t* u = row(frame, 1, y);
    const std::uint8_t* v = row(frame, 2, y);
    for (int x = 0; x < chroma_width(frame); x += chroma_step) {
      if (std::abs(u[x] - k_grey) > 16 || std::abs(v[x] - k_grey) > 16) ++coloured;
      ++samples;
    }
  }
  return coloured * 100 < samples ? FrameClass::loading : FrameClass::real;
}

std::string_view to_string(FrameClass frame_class) {
  switch (frame_class) {
    case FrameClass::real:
      return "real";
    case FrameClass::loading:
      return "loading";
    case FrameClass::black:
      return "black";
  }
  return "real";
}

Result<void> draw_test_pattern(AVFrame& frame, std::int64_t frame_index) {
  if (auto ok = prepare_for_writing(frame, "draw_test_pattern"); !ok) return ok;
  const auto t = static_cast<std::uint32_t>(frame_index);
  const int w = frame.width;
  const int h = frame.height;
  // A disc orbiting the centre once every 4 s at 24 fps.
  const double angle = 2.0 * std::numbers::pi * static_cast<double>(frame_index % 96) / 96.0;
  const int disc_x = w / 2 + static_cast<int>(w / 4.0 * std::cos(angle));
  const int disc_y = h / 2 + static_cast<int>(h / 4.0 * std::sin(angle));
  const int disc_r2 = (std::min(w, h) / 8) * (std::min(w, h) / 8);
  for (int y = 0; y < h; ++y) {
    std::uint8_t* p = row(frame, 0, y);
    const auto sy = static_cast<std::uint32_t>(y) + t;  // texture scrolls down-right
    for (int x = 0; x < w; ++x) {
      const auto sx = static_cast<std::uint32_t>(x) + 2 * t;
      // Static texture that moves (motion search can follow it) plus light sensor-like noise.
      const std::uint32_t texture = mix(sx * 0x9E3779B1U ^ sy * 0x85EBCA6BU) & 31U;
      const std::uint32_t noise =
          mix((static_cast<std::uint32_t>(y * w + x)) ^ (t * 0xC2B2AE35U)) & 3U;
      int value = 40 + static_cast<int>(((sx + sy) / 2) & 127U) + static_cast<int>(texture) +
                  static_cast<int>(noise);
      const int dx = x - disc_x;
      const int dy = y - disc_y;
      if (dx * dx + dy * dy < disc_r2) value = 220 - static_cast<int>(texture);
      p[x] = static_cast<std::uint8_t>(std::clamp(value, k_black, k_white));
    }
  }
  // Colour: four tinted bands moving at different speeds, a full-saturation disc.
  const int cw = chroma_width(frame);
  const int ch = chroma_height(frame);
  for (int y = 0; y < ch; ++y) {
    std::uint8_t* u = row(frame, 1, y);
    std::uint8_t* v = row(frame, 2, y);
    const int band_v = ((y + static_cast<int>(t / 2)) / std::max(1, ch / 4)) % 4;
    for (int x = 0; x < cw; ++x) {
      const int band_u = ((x + static_cast<int>(t)) / std::max(1, cw / 4)) % 4;
      u[x] = static_cast<std::uint8_t>(64 + band_u * 42);
      v[x] = static_cast<std::uint8_t>(200 - band_v * 40);
      const int dx = 2 * x - disc_x;
      const int dy = 2 * y - disc_y;
      if (dx * dx + dy * dy < disc_r2) {
        u[x] = 40;
        v[x] = 220;
      }
    }
  }
  return {};
}

}  // namespace naap::media
