// In-memory MPEG-TS segment muxer on libavformat with a write-callback AVIOContext.
#include "naap/media/ts_muxer.hpp"

extern "C" {
#include <libavutil/dict.h>
}

#include <string>

namespace naap::media {
namespace {

// 7 TS packets: the muxer writes whole packets, and write() flushes after every frame anyway.
constexpr int k_io_buffer_size = 7 * 188;

// Muxer options; FFmpeg removes the ones it used and the rest are freed here.
struct Dictionary {
  AVDictionary* dict = nullptr;  // owned
  Dictionary() = default;
  Dictionary(const Dictionary&) = delete;
  Dictionary& operator=(const Dictionary&) = delete;
  ~Dictionary() { av_dict_free(&dict); }
};

}  // namespace

TsSegmentMuxer::TsSegmentMuxer(MuxerOptions options, BytesCallback on_bytes, PacketPtr packet)
    : options_(options), on_bytes_(std::move(on_bytes)), packet_(std::move(packet)) {}

TsSegmentMuxer::~TsSegmentMuxer() = default;

Result<std::unique_ptr<TsSegmentMuxer>> TsSegmentMuxer::create(const MuxerOptions& options,
                                                               BytesCallback on_bytes) {
  if (options.width <= 0 || options.height <= 0) {
    return fail(ErrorCategory::config, "muxer size must be positive");
  }
  auto packet = alloc_packet();
  if (!packet) return fail(packet.error());
  return std::make_unique<TsSegmentMuxer>(options, std::move(on_bytes), std::move(*packet));
}

int TsSegmentMuxer::on_write(void* opaque, std::uint8_t* buffer, int size) {
  auto* self = static_cast<TsSegmentMuxer*>(opaque);
  if (size <= 0) return 0;
  self->stats_.bytes += static_cast<std::uint64_t>(size);
  if (self->on_bytes_) {
    self->on_bytes_(
        std::string_view(reinterpret_cast<const char*>(buffer), static_cast<std::size_t>(size)));
  }
  return size;
}

Result<void> TsSegmentMuxer::begin_segment() {
  if (in_segment()) {
    if (auto ended = end_segment(); !ended) return ended;
  }
  AVFormatContext* raw = nullptr;
  int rc = avformat_alloc_output_context2(&raw, nullptr, "mpegts", nullptr);
  if (rc < 0) return fail(av_error(rc, "cannot create the MPEG-TS muxer"));
  OutputFormat output;
  output.format.reset(raw);

  auto* buffer = static_cast<std::uint8_t*>(av_malloc(k_io_buffer_size));
  if (buffer == nullptr) return fail(ErrorCategory::media, "av_malloc failed: out of memory");
  output.io.reset(avio_alloc_context(buffer, k_io_buffer_size, 1, this, nullptr,
                                     &TsSegmentMuxer::on_write, nullptr));
  if (!output.io) {
    av_free(buffer);
    return fail(ErrorCategory::media, "avio_alloc_context failed: out of memory");
  }
  output.format->pb = output.io.get();
  output.format->flags |= AVFMT_FLAG_CUSTOM_IO;
  // Timestamps pass through as given: no mux delay, no shifting.
  output.format->max_delay = 0;
  output.format->avoid_negative_ts = AVFMT_AVOID_NEG_TS_DISABLED;

  AVStream* stream = avformat_new_stream(output.format.get(), nullptr);
  if (stream == nullptr) return fail(ErrorCategory::media, "cannot add the video stream");
  stream->time_base = AVRational{1, static_cast<int>(k_ticks_per_second)};
  stream->codecpar->codec_type = AVMEDIA_TYPE_VIDEO;
  stream->codecpar->codec_id = AV_CODEC_ID_H264;
  stream->codecpar->width = options_.width;
  stream->codecpar->height = options_.height;
  stream->codecpar->format = AV_PIX_FMT_YUV420P;

  Dictionary mux_options;
  av_dict_set(&mux_options.dict, "mpegts_copyts", "1", 0);
  // With the PES length written, a demuxer knows a frame is complete without waiting for the
  // next one (frames over 64 KiB still fall back to length 0).
  av_dict_set(&mux_options.dict, "omit_video_pes_length", options_.write_pes_length ? "0" : "1", 0);
  // Counters restart in every segment: say so, so that demuxers do not report a jump.
  av_dict_set(&mux_options.dict, "mpegts_flags", "+initial_discontinuity", 0);
  rc = avformat_write_header(output.format.get(), &mux_options.dict);
  if (rc < 0) return fail(av_error(rc, "cannot start the MPEG-TS segment"));
  avio_flush(output.io.get());
  output_ = std::move(output);
  ++stats_.segments;
  return {};
}

Result<void> TsSegmentMuxer::write(const EncodedFrame& frame) {
  if (!in_segment()) {
    return fail(ErrorCategory::internal, "TsSegmentMuxer::write called outside a segment");
  }
  if (frame.data.empty()) {
    ++stats_.errors;
    return fail(Error(ErrorCategory::media, "empty access unit not muxed")
                    .with("pts", std::to_string(frame.pts)));
  }
  AVStream* stream = output_.format->streams[0];
  av_packet_unref(packet_.get());
  // Not refcounted: av_write_frame reads the caller's bytes without copying them.
  packet_->data =
      const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(frame.data.data()));
  packet_->size = static_cast<int>(frame.data.size());
  packet_->stream_index = 0;
  packet_->pts = frame.pts;
  packet_->dts = frame.dts;
  packet_->flags = frame.keyframe ? AV_PKT_FLAG_KEY : 0;
  av_packet_rescale_ts(packet_.get(), AVRational{1, static_cast<int>(k_ticks_per_second)},
                       stream->time_base);
  const int rc = av_write_frame(output_.format.get(), packet_.get());
  packet_->data = nullptr;
  packet_->size = 0;
  if (rc < 0) {
    ++stats_.errors;
    return fail(av_error(rc, "MPEG-TS muxer refused the frame")
                    .with("pts", std::to_string(frame.pts))
                    .with("dts", std::to_string(frame.dts)));
  }
  avio_flush(output_.io.get());
  ++stats_.frames;
  return {};
}

Result<void> TsSegmentMuxer::end_segment() {
  if (!in_segment()) return {};
  const int rc = av_write_trailer(output_.format.get());
  avio_flush(output_.io.get());
  output_.format.reset();
  output_.io.reset();
  if (rc < 0) return fail(av_error(rc, "cannot finish the MPEG-TS segment"));
  return {};
}

}  // namespace naap::media
