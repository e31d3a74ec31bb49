// RAII owners for every FFmpeg C handle the media library uses, and FFmpeg error codes as
// naap::Error. Nothing here allocates per frame beyond what the caller asks for.
#pragma once

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/buffer.h>
#include <libavutil/frame.h>
#include <libswscale/swscale.h>
}

#include <cstdint>
#include <limits>
#include <memory>
#include <string_view>

#include "naap/core/error.hpp"

namespace naap::media {

// FFmpeg's AV_NOPTS_VALUE without its C-style cast.
inline constexpr std::int64_t k_no_pts = std::numeric_limits<std::int64_t>::min();
// The MPEG-TS clock: every timestamp in this library is in these ticks per second.
inline constexpr std::int64_t k_ticks_per_second = 90'000;

struct FrameDeleter {
  void operator()(AVFrame* frame) const noexcept { av_frame_free(&frame); }
};
using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;

struct PacketDeleter {
  void operator()(AVPacket* packet) const noexcept { av_packet_free(&packet); }
};
using PacketPtr = std::unique_ptr<AVPacket, PacketDeleter>;

struct CodecContextDeleter {
  void operator()(AVCodecContext* context) const noexcept { avcodec_free_context(&context); }
};
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextDeleter>;

// An output format context only (no I/O): avformat_free_context leaves a custom pb alone.
struct FormatContextDeleter {
  void operator()(AVFormatContext* context) const noexcept { avformat_free_context(context); }
};
using FormatContextPtr = std::unique_ptr<AVFormatContext, FormatContextDeleter>;

// A custom AVIOContext together with its buffer (which FFmpeg may have reallocated).
struct IoContextDeleter {
  void operator()(AVIOContext* io) const noexcept {
    if (io == nullptr) return;
    av_freep(&io->buffer);
    avio_context_free(&io);
  }
};
using IoContextPtr = std::unique_ptr<AVIOContext, IoContextDeleter>;

// An in-memory output: the format context is destroyed before the I/O context it writes to.
struct OutputFormat {
  IoContextPtr io;          // custom write-callback I/O, owned here
  FormatContextPtr format;  // muxer context whose pb points at io
};

struct SwsContextDeleter {
  void operator()(SwsContext* context) const noexcept { sws_freeContext(context); }
};
using SwsContextPtr = std::unique_ptr<SwsContext, SwsContextDeleter>;

struct BufferPoolDeleter {
  void operator()(AVBufferPool* pool) const noexcept { av_buffer_pool_uninit(&pool); }
};
// Buffers handed out stay valid after the pool's owner is gone (FFmpeg frees it last).
using BufferPoolPtr = std::unique_ptr<AVBufferPool, BufferPoolDeleter>;

// An FFmpeg error code as a media error: "<what>: <av_strerror text>" with code=<n>.
Error av_error(int code, std::string_view what);

// Allocations that report failure as Result instead of a null pointer.
Result<FramePtr> alloc_frame();
Result<PacketPtr> alloc_packet();

// FFmpeg logs to stderr from inside every codec; a load generator running many streams wants
// only what it asks for. Sets the process-wide FFmpeg log level (AV_LOG_QUIET .. AV_LOG_TRACE).
void set_ffmpeg_log_level(int av_log_level);

}  // namespace naap::media
