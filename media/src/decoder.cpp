// H.264 decoders on libavcodec: software, or NVDEC through a process-wide CUDA device with each
// picture copied back to system memory as YUV420P. Low delay: slice threads only, no frame held.
#include "naap/media/decoder.hpp"

extern "C" {
#include <libavutil/hwcontext.h>
#include <libavutil/pixdesc.h>
}

#include <atomic>
#include <mutex>
#include <string>

#include "naap/core/log.hpp"
#include "naap/media/frame_ops.hpp"

namespace naap::media {
namespace {

struct BufferRefDeleter {
  void operator()(AVBufferRef* ref) const noexcept { av_buffer_unref(&ref); }
};
using BufferRefPtr = std::unique_ptr<AVBufferRef, BufferRefDeleter>;

bool h264_supports_cuda(const AVCodec* codec) {
  for (int i = 0;; ++i) {
    const AVCodecHWConfig* config = avcodec_get_hw_config(codec, i);
    if (config == nullptr) return false;
    if (config->device_type == AV_HWDEVICE_TYPE_CUDA &&
        (config->methods & AV_CODEC_HW_CONFIG_METHOD_HW_DEVICE_CTX) != 0) {
      return true;
    }
  }
}

// One CUDA context serves every NVDEC stream of the process, as one ffmpeg process would use.
// Opened on first use and never closed: tearing CUDA down from static destructors at exit can
// run after the driver library is gone. The outcome, success or not, is remembered.
struct CudaDevice {
  std::mutex mutex;               // guards the members below
  bool probed = false;            // an open was attempted
  AVBufferRef* device = nullptr;  // the AVHWDeviceContext, or null when none opened
  Error error;                    // why there is none
};

CudaDevice& cuda_device() {
  static auto* device = new CudaDevice;  // never destroyed, see CudaDevice
  return *device;
}

Result<BufferRefPtr> shared_cuda_device() {
  CudaDevice& d = cuda_device();
  const std::lock_guard lock(d.mutex);
  if (!d.probed) {
    d.probed = true;
    const AVCodec* codec = avcodec_find_decoder(AV_CODEC_ID_H264);
    if (codec == nullptr || !h264_supports_cuda(codec)) {
      d.error = Error(ErrorCategory::media,
                      "no CUDA device usable: this FFmpeg's H.264 decoder has no NVDEC support");
    } else if (const int rc =
                   av_hwdevice_ctx_create(&d.device, AV_HWDEVICE_TYPE_CUDA, nullptr, nullptr, 0);
               rc < 0) {
      d.device = nullptr;
      d.error = av_error(rc, "no CUDA device: cannot open one for NVDEC");
    }
  }
  if (d.device == nullptr) return fail(d.error);
  BufferRefPtr ref(av_buffer_ref(d.device));
  if (!ref) return fail(ErrorCategory::media, "av_buffer_ref failed: out of memory");
  return ref;
}

// Offered CUDA, take it; otherwise (a stream NVDEC cannot take) libavcodec's software path.
AVPixelFormat choose_cuda_format(AVCodecContext*, const AVPixelFormat* formats) {
  AVPixelFormat software = AV_PIX_FMT_NONE;
  for (const AVPixelFormat* f = formats; *f != AV_PIX_FMT_NONE; ++f) {
    if (*f == AV_PIX_FMT_CUDA) return *f;
    const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(*f);
    if (software == AV_PIX_FMT_NONE && desc != nullptr &&
        (desc->flags & AV_PIX_FMT_FLAG_HWACCEL) == 0) {
      software = *f;
    }
  }
  return software;
}

class LibavH264Decoder final : public H264Decoder {
 public:
  LibavH264Decoder(std::string_view backend, CodecContextPtr context, PacketPtr packet,
                   FramePtr frame, FramePtr transfer)
      : backend_(backend),
        context_(std::move(context)),
        packet_(std::move(packet)),
        frame_(std::move(frame)),
        transfer_(std::move(transfer)) {}

  Result<void> decode(const EncodedFrame& input, const FrameCallback& on_frame) override {
    if (input.data.empty()) {
      ++stats_.errors;
      return fail(
          Error(ErrorCategory::media, "empty access unit").with("pts", std::to_string(input.pts)));
    }
    // A non-refcounted packet: libavcodec copies it into a padded buffer, so the caller's
    // string is never written to.
    av_packet_unref(packet_.get());
    packet_->data =
        const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(input.data.data()));
    packet_->size = static_cast<int>(input.data.size());
    packet_->pts = input.pts;
    packet_->dts = input.dts;
    packet_->flags = input.keyframe ? AV_PKT_FLAG_KEY : 0;
    ++stats_.packets;
    int rc = avcodec_send_packet(context_.get(), packet_.get());
    if (rc == AVERROR(EAGAIN)) {
      // Output is pending: drain it, then the packet fits.
      auto drained = receive(on_frame);
      rc = drained ? avcodec_send_packet(context_.get(), packet_.get()) : AVERROR(EAGAIN);
    }
    packet_->data = nullptr;
    packet_->size = 0;
    if (rc < 0) {
      ++stats_.errors;
      return fail(av_error(rc, "h264 decode failed")
                      .with("pts", std::to_string(input.pts))
                      .with("backend", std::string(backend_)));
    }
    return receive(on_frame);
  }

  Result<void> flush(const FrameCallback& on_frame) override {
    const int rc = avcodec_send_packet(context_.get(), nullptr);
    if (rc < 0 && rc != AVERROR_EOF) return fail(av_error(rc, "h264 decoder flush failed"));
    auto result = receive(on_frame);
    avcodec_flush_buffers(context_.get());
    return result;
  }

  std::string_view backend() const override { return backend_; }
  const DecoderStats& stats() const override { return stats_; }

 private:
  Result<void> receive(const FrameCallback& on_frame) {
    while (true) {
      const int rc = avcodec_receive_frame(context_.get(), frame_.get());
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return {};
      if (rc < 0) {
        ++stats_.errors;
        return fail(av_error(rc, "h264 decoder returned no picture"));
      }
      if (frame_->pts == k_no_pts) frame_->pts = frame_->best_effort_timestamp;
      Result<void> delivered;
      if (frame_->format == AV_PIX_FMT_CUDA) {
        delivered = deliver_from_gpu(on_frame);
      } else {
        ++stats_.frames;
        if (on_frame) on_frame(*frame_);
      }
      av_frame_unref(frame_.get());
      if (!delivered) return delivered;
    }
  }

  // Copies the GPU picture to system memory (NV12 for 8-bit 4:2:0) and hands out YUV420P.
  Result<void> deliver_from_gpu(const FrameCallback& on_frame) {
    av_frame_unref(transfer_.get());
    if (const int rc = av_hwframe_transfer_data(transfer_.get(), frame_.get(), 0); rc < 0) {
      ++stats_.errors;
      return fail(av_error(rc, "cannot copy an NVDEC picture to system memory")
                      .with("pts", std::to_string(frame_->pts)));
    }
    av_frame_copy_props(transfer_.get(), frame_.get());
    auto yuv = scale_crop(*transfer_, transfer_->width, transfer_->height, scaler_);
    av_frame_unref(transfer_.get());
    if (!yuv) {
      ++stats_.errors;
      return fail(yuv.error());
    }
    ++stats_.frames;
    if (on_frame) on_frame(**yuv);
    return {};
  }

  std::string_view backend_;  // "software" or "nvdec"
  CodecContextPtr context_;   // libavcodec h264 decoder, with a CUDA device for nvdec
  PacketPtr packet_;          // reused for every access unit
  FramePtr frame_;            // reused for every picture (GPU surfaces for nvdec)
  FramePtr transfer_;         // nvdec: the picture copied to system memory
  ScalerCache scaler_;        // nvdec: NV12 -> YUV420P conversion and output frames
  DecoderStats stats_;        // counters, see DecoderStats
};

// Opens libavcodec's h264 decoder; with a CUDA device it decodes on NVDEC.
Result<std::unique_ptr<H264Decoder>> open_decoder(const DecoderOptions& options,
                                                  BufferRefPtr cuda) {
  const AVCodec* codec = avcodec_find_decoder(AV_CODEC_ID_H264);
  if (codec == nullptr) return fail(ErrorCategory::media, "libavcodec has no H.264 decoder");
  CodecContextPtr context(avcodec_alloc_context3(codec));
  if (!context) return fail(ErrorCategory::media, "avcodec_alloc_context3 failed: out of memory");
  // Frame threads would each hold a picture back; slices decode in parallel within a frame.
  context->thread_type = FF_THREAD_SLICE;
  context->thread_count = cuda ? 1 : options.threads;
  context->flags |= AV_CODEC_FLAG_LOW_DELAY;
  context->flags2 |= AV_CODEC_FLAG2_FAST;
  context->pkt_timebase = AVRational{1, static_cast<int>(k_ticks_per_second)};
  const bool nvdec = cuda != nullptr;
  if (nvdec) {
    context->hw_device_ctx = cuda.release();  // the context owns this reference now
    context->get_format = choose_cuda_format;
  }
  if (const int rc = avcodec_open2(context.get(), codec, nullptr); rc < 0) {
    return fail(av_error(
        rc, nvdec ? "cannot open the NVDEC H.264 decoder" : "cannot open the H.264 decoder"));
  }
  auto packet = alloc_packet();
  if (!packet) return fail(packet.error());
  auto frame = alloc_frame();
  if (!frame) return fail(frame.error());
  auto transfer = alloc_frame();
  if (!transfer) return fail(transfer.error());
  return std::make_unique<LibavH264Decoder>(nvdec ? "nvdec" : "software", std::move(context),
                                            std::move(*packet), std::move(*frame),
                                            std::move(*transfer));
}

}  // namespace

Result<std::unique_ptr<H264Decoder>> H264Decoder::create(const DecoderOptions& options) {
  if (options.threads < 1) {
    return fail(Error(ErrorCategory::config, "decoder threads must be at least 1")
                    .with("threads", std::to_string(options.threads)));
  }
  switch (options.backend) {
    case DecoderOptions::Backend::software:
      return open_decoder(options, nullptr);
    case DecoderOptions::Backend::nvdec: {
      auto cuda = shared_cuda_device();
      if (!cuda) return fail(cuda.error());
      return open_decoder(options, std::move(*cuda));
    }
    case DecoderOptions::Backend::automatic:
      break;
  }
  Error reason;
  if (auto cuda = shared_cuda_device(); !cuda) {
    reason = cuda.error();
  } else if (auto decoder = open_decoder(options, std::move(*cuda)); !decoder) {
    reason = decoder.error();
  } else {
    return decoder;
  }
  // Expected on machines without a GPU: say so once per process, not once per stream.
  static std::atomic<bool> logged{false};
  if (!logged.exchange(true)) {
    log::info("decoder_fallback", {{"backend", "software"}, {"reason", reason.describe()}});
  }
  return open_decoder(options, nullptr);
}

Result<void> probe_nvdec() {
  auto cuda = shared_cuda_device();
  if (!cuda) return fail(cuda.error());
  return {};
}

std::string_view to_string(DecoderOptions::Backend backend) {
  switch (backend) {
    case DecoderOptions::Backend::automatic:
      return "automatic";
    case DecoderOptions::Backend::software:
      return "software";
    case DecoderOptions::Backend::nvdec:
      return "nvdec";
  }
  return "automatic";
}

}  // namespace naap::media
