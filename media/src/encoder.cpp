// libx264 through libavcodec, configured so every GOP decodes on its own (SPS/PPS before each
// IDR, Annex B) and no frame is held back (zerolatency, no B-frames, no lookahead).
#include "naap/media/encoder.hpp"

extern "C" {
#include <libavutil/opt.h>
}

#include <cmath>
#include <string>

namespace naap::media {

H264Encoder::H264Encoder(EncoderOptions options, CodecContextPtr context, PacketPtr packet,
                         FramePtr frame)
    : options_(std::move(options)),
      context_(std::move(context)),
      packet_(std::move(packet)),
      frame_(std::move(frame)),
      gop_ticks_(std::llround(options_.gop_seconds * static_cast<double>(k_ticks_per_second))) {}

Result<std::unique_ptr<H264Encoder>> H264Encoder::create(const EncoderOptions& options) {
  if (options.width <= 0 || options.height <= 0 || options.width % 2 != 0 ||
      options.height % 2 != 0) {
    return fail(Error(ErrorCategory::config, "encoder size must be positive and even")
                    .with("width", std::to_string(options.width))
                    .with("height", std::to_string(options.height)));
  }
  if (!(options.fps > 0.0) || !(options.gop_seconds > 0.0)) {
    return fail(ErrorCategory::config, "encoder fps and gop_seconds must be positive");
  }
  const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
  if (codec == nullptr) return fail(ErrorCategory::media, "libavcodec was built without libx264");
  CodecContextPtr context(avcodec_alloc_context3(codec));
  if (!context) return fail(ErrorCategory::media, "avcodec_alloc_context3 failed: out of memory");
  context->width = options.width;
  context->height = options.height;
  context->pix_fmt = AV_PIX_FMT_YUV420P;
  context->time_base = AVRational{1, static_cast<int>(k_ticks_per_second)};
  context->framerate = av_d2q(options.fps, 1'000'000);
  context->max_b_frames = 0;
  context->thread_count = options.threads;
  if (options.bitrate_bps > 0) {
    context->bit_rate = options.bitrate_bps;
    context->rc_max_rate = options.bitrate_bps;
    context->rc_buffer_size = static_cast<int>(options.bitrate_bps);  // one second of VBV
  }
  void* priv = context->priv_data;
  int rc = av_opt_set(priv, "preset", options.preset.c_str(), 0);
  if (rc >= 0 && !options.tune.empty()) rc = av_opt_set(priv, "tune", options.tune.c_str(), 0);
  if (rc >= 0 && options.bitrate_bps <= 0) rc = av_opt_set_double(priv, "crf", options.crf, 0);
  if (rc >= 0) rc = av_opt_set_int(priv, "forced-idr", 1, 0);
  // keyint=infinite: IDRs come only from encode()'s PTS rule, never from a frame count.
  // aud=1: the MPEG-TS muxer would otherwise copy every packet to prepend one.
  if (rc >= 0) {
    rc = av_opt_set(priv, "x264-params",
                    "keyint=infinite:min-keyint=1:scenecut=0:rc-lookahead=0:sync-lookahead=0:"
                    "bframes=0:repeat-headers=1:annexb=1:aud=1",
                    0);
  }
  if (rc < 0) {
    return fail(av_error(rc, "invalid libx264 option")
                    .with("preset", options.preset)
                    .with("tune", options.tune));
  }
  if (rc = avcodec_open2(context.get(), codec, nullptr); rc < 0) {
    return fail(av_error(rc, "cannot open libx264").with("preset", options.preset));
  }
  auto packet = alloc_packet();
  if (!packet) return fail(packet.error());
  auto frame = alloc_frame();
  if (!frame) return fail(frame.error());
  return std::make_unique<H264Encoder>(options, std::move(context), std::move(*packet),
                                       std::move(*frame));
}

Result<void> H264Encoder::encode(const AVFrame& frame, std::int64_t pts,
                                 const PacketCallback& on_packet) {
  if (last_pts_ != k_no_pts && pts <= last_pts_) {
    ++stats_.refused;
    return fail(Error(ErrorCategory::media, "frame PTS does not increase: frame dropped")
                    .with("pts", std::to_string(pts))
                    .with("previous_pts", std::to_string(last_pts_)));
  }
  const bool yuv420 = frame.format == AV_PIX_FMT_YUV420P || frame.format == AV_PIX_FMT_YUVJ420P;
  if (!yuv420 || frame.width != options_.width || frame.height != options_.height) {
    ++stats_.refused;
    return fail(Error(ErrorCategory::media, "frame does not match the encoder: frame dropped")
                    .with("width", std::to_string(frame.width))
                    .with("height", std::to_string(frame.height))
                    .with("format", std::to_string(frame.format)));
  }
  // A new reference (no pixel copy) carries this call's pts and picture type.
  av_frame_unref(frame_.get());
  if (const int rc = av_frame_ref(frame_.get(), &frame); rc < 0) {
    return fail(av_error(rc, "cannot reference the frame to encode"));
  }
  frame_->pts = pts;
  const bool idr = last_pts_ == k_no_pts || pts - last_idr_pts_ >= gop_ticks_;
  frame_->pict_type = idr ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
  frame_->key_frame = idr ? 1 : 0;
  const int rc = avcodec_send_frame(context_.get(), frame_.get());
  av_frame_unref(frame_.get());
  if (rc < 0)
    return fail(av_error(rc, "libx264 refused the frame").with("pts", std::to_string(pts)));
  last_pts_ = pts;
  if (idr) last_idr_pts_ = pts;
  ++stats_.frames;
  return receive(on_packet);
}

Result<void> H264Encoder::flush(const PacketCallback& on_packet) {
  const int rc = avcodec_send_frame(context_.get(), nullptr);
  if (rc < 0 && rc != AVERROR_EOF) return fail(av_error(rc, "libx264 flush failed"));
  return receive(on_packet);
}

Result<void> H264Encoder::receive(const PacketCallback& on_packet) {
  while (true) {
    const int rc = avcodec_receive_packet(context_.get(), packet_.get());
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return {};
    if (rc < 0) return fail(av_error(rc, "libx264 failed to encode"));
    EncodedFrame out;
    out.data.assign(reinterpret_cast<const char*>(packet_->data),
                    static_cast<std::size_t>(packet_->size));
    out.pts = packet_->pts;
    out.dts = packet_->dts == k_no_pts ? packet_->pts : packet_->dts;
    out.keyframe = (packet_->flags & AV_PKT_FLAG_KEY) != 0 && contains_idr(out.data);
    av_packet_unref(packet_.get());
    ++stats_.packets;
    stats_.bytes += out.data.size();
    if (out.keyframe) ++stats_.keyframes;
    if (on_packet) on_packet(std::move(out));
  }
}

}  // namespace naap::media
