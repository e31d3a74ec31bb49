// FFmpeg logs every decode error of the deliberately broken inputs; the suite keeps it quiet.
#include <gtest/gtest.h>

#include "naap/media/av_handles.hpp"

namespace {

class QuietFfmpeg : public ::testing::Environment {
 public:
  void SetUp() override { naap::media::set_ffmpeg_log_level(AV_LOG_FATAL); }
};

[[maybe_unused]] ::testing::Environment* const quiet_ffmpeg =
    ::testing::AddGlobalTestEnvironment(new QuietFfmpeg);

}  // namespace
