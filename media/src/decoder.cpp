// Software H.264 decoder on libavcodec: one thread per context (the caller runs many streams
// on a small pool), low delay, packets and frames reused across calls.
#include "naap/media/decoder.hpp"

#include <string>

namespace naap::media {
namespace {

class SoftwareH264Decoder final : public H264Decoder {
 public:
  SoftwareH264Decoder(CodecContextPtr context, PacketPtr packet, FramePtr frame)
      : context_(std::move(context)), packet_(std::move(packet)), frame_(std::move(frame)) {}

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
      return fail(av_error(rc, "h264 decode failed").with("pts", std::to_string(input.pts)));
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

  std::string_view backend() const override { return "software"; }
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
      ++stats_.frames;
      if (on_frame) on_frame(*frame_);
      av_frame_unref(frame_.get());
    }
  }

  CodecContextPtr context_;  // libavcodec h264 decoder
  PacketPtr packet_;         // reused for every access unit
  FramePtr frame_;           // reused for every picture
  DecoderStats stats_;       // counters, see DecoderStats
};

}  // namespace

Result<std::unique_ptr<H264Decoder>> H264Decoder::create() {
  const AVCodec* codec = avcodec_find_decoder(AV_CODEC_ID_H264);
  if (codec == nullptr) return fail(ErrorCategory::media, "libavcodec has no H.264 decoder");
  CodecContextPtr context(avcodec_alloc_context3(codec));
  if (!context) return fail(ErrorCategory::media, "avcodec_alloc_context3 failed: out of memory");
  context->thread_count = 1;
  context->flags |= AV_CODEC_FLAG_LOW_DELAY;
  context->flags2 |= AV_CODEC_FLAG2_FAST;
  context->pkt_timebase = AVRational{1, static_cast<int>(k_ticks_per_second)};
  if (const int rc = avcodec_open2(context.get(), codec, nullptr); rc < 0) {
    return fail(av_error(rc, "cannot open the H.264 decoder"));
  }
  auto packet = alloc_packet();
  if (!packet) return fail(packet.error());
  auto frame = alloc_frame();
  if (!frame) return fail(frame.error());
  return std::make_unique<SoftwareH264Decoder>(std::move(context), std::move(*packet),
                                               std::move(*frame));
}

}  // namespace naap::media
