// FFmpeg error codes as naap::Error, and allocations that report failure as Result.
#include "naap/media/av_handles.hpp"

extern "C" {
#include <libavutil/log.h>
}

#include <array>
#include <string>

namespace naap::media {

Error av_error(int code, std::string_view what) {
  std::array<char, AV_ERROR_MAX_STRING_SIZE> text{};
  if (av_strerror(code, text.data(), text.size()) < 0) {
    return Error(ErrorCategory::media, std::string(what) + ": unknown FFmpeg error")
        .with("code", std::to_string(code));
  }
  return Error(ErrorCategory::media, std::string(what) + ": " + text.data())
      .with("code", std::to_string(code));
}

Result<FramePtr> alloc_frame() {
  FramePtr frame(av_frame_alloc());
  if (!frame) return fail(ErrorCategory::media, "av_frame_alloc failed: out of memory");
  return frame;
}

Result<PacketPtr> alloc_packet() {
  PacketPtr packet(av_packet_alloc());
  if (!packet) return fail(ErrorCategory::media, "av_packet_alloc failed: out of memory");
  return packet;
}

void set_ffmpeg_log_level(int av_log_level) {
  av_log_set_level(av_log_level);
}

}  // namespace naap::media
