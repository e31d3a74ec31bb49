// Media ingest on GStreamer: decode/scale/rate/x264 into an appsink, a keyed clip cache and a
// looper that re-muxes the cached access units into MPEG-TS segments with continuing PTS.
#include "naap/media/ingest.hpp"

#include <gst/app/gstappsink.h>
#include <gst/gst.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <utility>

#include "naap/media/av_handles.hpp"
#include "naap/media/ts_muxer.hpp"

namespace naap::media {
namespace {

// RAII owners for the GStreamer and GLib handles used here.
struct PipelineDeleter {
  // A pipeline must reach NULL before its last unref, or its threads outlive it.
  void operator()(GstElement* pipeline) const noexcept {
    gst_element_set_state(pipeline, GST_STATE_NULL);
    gst_object_unref(pipeline);
  }
};
using PipelinePtr = std::unique_ptr<GstElement, PipelineDeleter>;

struct ObjectDeleter {
  void operator()(gpointer object) const noexcept { gst_object_unref(object); }
};
using ElementPtr = std::unique_ptr<GstElement, ObjectDeleter>;
using BusPtr = std::unique_ptr<GstBus, ObjectDeleter>;

struct SampleDeleter {
  void operator()(GstSample* sample) const noexcept { gst_sample_unref(sample); }
};
using SamplePtr = std::unique_ptr<GstSample, SampleDeleter>;

struct MessageDeleter {
  void operator()(GstMessage* message) const noexcept { gst_message_unref(message); }
};
using MessagePtr = std::unique_ptr<GstMessage, MessageDeleter>;

struct GErrorDeleter {
  void operator()(GError* error) const noexcept { g_error_free(error); }
};
using GErrorPtr = std::unique_ptr<GError, GErrorDeleter>;

struct GFreeDeleter {
  void operator()(gchar* text) const noexcept { g_free(text); }
};
using GStringPtr = std::unique_ptr<gchar, GFreeDeleter>;

// A mapped buffer, unmapped on scope exit.
class BufferMap {
 public:
  explicit BufferMap(GstBuffer* buffer) : buffer_(buffer) {
    mapped_ = gst_buffer_map(buffer_, &info_, GST_MAP_READ) != 0;
  }
  ~BufferMap() {
    if (mapped_) gst_buffer_unmap(buffer_, &info_);
  }
  BufferMap(const BufferMap&) = delete;
  BufferMap& operator=(const BufferMap&) = delete;
  bool ok() const { return mapped_; }
  std::string_view bytes() const {
    return {reinterpret_cast<const char*>(info_.data), static_cast<std::size_t>(info_.size)};
  }

 private:
  GstBuffer* buffer_;    // not owned
  GstMapInfo info_{};    // valid while mapped_
  bool mapped_ = false;  // gst_buffer_map succeeded
};

// The bounded wait of one appsink pull: short, so the bus and the deadline are checked often.
constexpr GstClockTime k_pull_wait = 50 * GST_MSECOND;
// Debug strings from GStreamer can run to kilobytes; errors keep a readable head.
constexpr std::size_t k_max_detail = 300;

Result<void> init_gstreamer() {
  static std::once_flag once;
  static std::string failure;  // empty when gst_init_check succeeded
  std::call_once(once, [] {
    GError* raw = nullptr;
    if (gst_init_check(nullptr, nullptr, &raw) == 0) {
      GErrorPtr error(raw);
      failure = error ? error->message : "gst_init_check failed";
    }
  });
  if (!failure.empty()) return fail(ErrorCategory::media, "cannot start GStreamer: " + failure);
  return {};
}

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", value);
  return text;
}

bool is_synthetic(const IngestSource& source) {
  return source.path.empty();
}

Result<void> validate(const IngestSource& source, const IngestOptions& options) {
  if (options.width <= 0 || options.height <= 0 || options.width % 2 != 0 ||
      options.height % 2 != 0) {
    return fail(Error(ErrorCategory::config, "ingest size must be positive and even (4:2:0)")
                    .with("width", std::to_string(options.width))
                    .with("height", std::to_string(options.height)));
  }
  if (options.fps <= 0 || options.fps > 240) {
    return fail(Error(ErrorCategory::config, "ingest fps must be 1..240")
                    .with("fps", std::to_string(options.fps)));
  }
  if (!(options.gop_seconds >= 1.0 && options.gop_seconds <= 2.0)) {
    return fail(Error(ErrorCategory::config, "ingest gop_seconds must be 1..2 s (segment length)")
                    .with("gop_seconds", number(options.gop_seconds)));
  }
  if (options.bitrate_kbps <= 0) {
    return fail(Error(ErrorCategory::config, "ingest bitrate_kbps must be positive")
                    .with("bitrate_kbps", std::to_string(options.bitrate_kbps)));
  }
  if (!(options.max_duration_s >= 0.0) || !(options.timeout_s > 0.0)) {
    return fail(ErrorCategory::config, "ingest max_duration_s must be >= 0 and timeout_s > 0");
  }
  if (is_synthetic(source) && !(source.duration_s * options.fps >= 1.0)) {
    return fail(Error(ErrorCategory::config, "synthetic ingest source shorter than one frame")
                    .with("duration_s", number(source.duration_s)));
  }
  return {};
}

// Frames to keep: max_duration_s (and a synthetic source's duration) at the output rate.
std::int64_t frame_limit(const IngestSource& source, const IngestOptions& options) {
  double seconds = options.max_duration_s;
  if (is_synthetic(source)) {
    seconds = seconds > 0.0 ? std::min(seconds, source.duration_s) : source.duration_s;
  }
  if (seconds <= 0.0) return 0;  // whole clip
  return std::max<std::int64_t>(1, std::llround(seconds * options.fps));
}

// Sets an enum property from its nick, naming the accepted values when the nick is unknown.
Result<void> set_enum(GstElement* element, const char* property, const std::string& nick) {
  GParamSpec* spec = g_object_class_find_property(G_OBJECT_GET_CLASS(element), property);
  if (spec == nullptr || !G_IS_PARAM_SPEC_ENUM(spec)) {
    return fail(Error(ErrorCategory::internal, "GStreamer element lacks an enum property")
                    .with("element", GST_OBJECT_NAME(element))
                    .with("property", property));
  }
  GEnumClass* values = G_PARAM_SPEC_ENUM(spec)->enum_class;
  if (const GEnumValue* value = g_enum_get_value_by_nick(values, nick.c_str())) {
    g_object_set(element, property, value->value, nullptr);
    return {};
  }
  std::string accepted;
  for (guint i = 0; i < values->n_values; ++i) {
    if (!accepted.empty()) accepted += ',';
    accepted += values->values[i].value_nick;
  }
  return fail(Error(ErrorCategory::config, std::string("unknown ") + property + " '" + nick + "'")
                  .with("accepted", accepted));
}

// A bus ERROR message as naap::Error: GStreamer's message, the element that posted it, the file.
Error bus_error(GstMessage* message, const IngestSource& source) {
  GError* raw = nullptr;
  gchar* raw_debug = nullptr;
  gst_message_parse_error(message, &raw, &raw_debug);
  GErrorPtr error(raw);
  GStringPtr debug(raw_debug);
  const char* element =
      GST_MESSAGE_SRC(message) != nullptr ? GST_OBJECT_NAME(GST_MESSAGE_SRC(message)) : "pipeline";
  std::string detail = debug ? debug.get() : "";
  std::replace(detail.begin(), detail.end(), '\n', ' ');
  // decodebin leaves pads nothing can link to (audio, subtitles); when no video pad exists the
  // demuxer stops with not-linked, which GStreamer words as an "internal" error.
  const bool no_video = detail.find("not-linked") != std::string::npos;
  Error out(ErrorCategory::media, std::string(no_video ? "no decodable video stream: " : "") +
                                      "GStreamer " + element + ": " +
                                      (error ? error->message : "error"));
  out.with("file", is_synthetic(source) ? "(synthetic)" : source.path).with("element", element);
  if (!detail.empty()) {
    if (detail.size() > k_max_detail) detail = detail.substr(0, k_max_detail) + "...";
    out.with("detail", std::move(detail));
  }
  return out;
}

std::string launch_description(const IngestSource& source, const IngestOptions& options,
                               std::int64_t limit) {
  const std::string input =
      is_synthetic(source)
          ? "videotestsrc name=src is-live=false num-buffers=" + std::to_string(limit)
          : "filesrc name=src ! decodebin";
  const auto key_int = std::max<long>(1, std::lround(options.gop_seconds * options.fps));
  // videorate first so frames it drops are never converted or scaled. Square pixels and no
  // borders: the picture is stretched to exactly width x height. scenecut=0 keeps IDRs only on
  // the GOP grid, so every segment is gop_seconds long.
  return input + " ! videorate ! videoconvert ! videoscale add-borders=false" +
         " ! video/x-raw,format=I420,width=" + std::to_string(options.width) +
         ",height=" + std::to_string(options.height) +
         ",pixel-aspect-ratio=1/1,framerate=" + std::to_string(options.fps) + "/1" +
         " ! x264enc name=enc tune=zerolatency bframes=0 b-adapt=false key-int-max=" +
         std::to_string(key_int) + " bitrate=" + std::to_string(options.bitrate_kbps) +
         " option-string=scenecut=0" + " ! video/x-h264,stream-format=byte-stream,alignment=au" +
         " ! appsink name=sink sync=false";
}

ElementPtr child(GstElement* pipeline, const char* name) {
  return ElementPtr(gst_bin_get_by_name(GST_BIN(pipeline), name));
}

// The first ERROR on the bus, if any (non-blocking unless wait > 0).
std::optional<Error> pop_error(GstBus* bus, const IngestSource& source, GstClockTime wait = 0) {
  MessagePtr message(gst_bus_timed_pop_filtered(bus, wait, GST_MESSAGE_ERROR));
  if (!message) return std::nullopt;
  return bus_error(message.get(), source);
}

// One appsink sample as an access unit, PTS rebased to the first frame and in 90 kHz ticks.
Result<EncodedFrame> to_frame(GstSample* sample, GstClockTime& first_pts) {
  GstBuffer* buffer = gst_sample_get_buffer(sample);
  if (buffer == nullptr)
    return fail(ErrorCategory::media, "x264enc produced a sample without data");
  const GstClockTime pts = GST_BUFFER_PTS(buffer);
  if (!GST_CLOCK_TIME_IS_VALID(pts)) {
    return fail(ErrorCategory::media, "x264enc produced a frame without a PTS");
  }
  if (!GST_CLOCK_TIME_IS_VALID(first_pts)) first_pts = pts;
  if (pts < first_pts) return fail(ErrorCategory::media, "x264enc output went back in time");
  BufferMap map(buffer);
  if (!map.ok()) return fail(ErrorCategory::media, "cannot map an x264enc buffer");
  EncodedFrame frame;
  frame.data.assign(map.bytes());
  frame.pts = static_cast<std::int64_t>(
      gst_util_uint64_scale_round(pts - first_pts, k_ticks_per_second, GST_SECOND));
  frame.dts = frame.pts;  // bframes=0: decode order is presentation order
  frame.keyframe = !GST_BUFFER_FLAG_IS_SET(buffer, GST_BUFFER_FLAG_DELTA_UNIT);
  return frame;
}

}  // namespace

Result<std::string> ingest_key(const IngestSource& source, const IngestOptions& options) {
  if (auto valid = validate(source, options); !valid) return fail(valid.error());
  std::string key;
  if (is_synthetic(source)) {
    key = "synthetic:pattern=" + source.pattern + ";duration_s=" + number(source.duration_s);
  } else {
    std::error_code ec;
    const auto path = std::filesystem::canonical(source.path, ec);
    if (ec) {
      return fail(Error(ErrorCategory::media, "ingest file not found").with("file", source.path));
    }
    if (!std::filesystem::is_regular_file(path, ec)) {
      return fail(Error(ErrorCategory::media, "ingest file is not a regular file")
                      .with("file", source.path));
    }
    const auto size = std::filesystem::file_size(path, ec);
    const auto mtime = std::filesystem::last_write_time(path, ec).time_since_epoch().count();
    if (ec) {
      return fail(Error(ErrorCategory::media, "cannot stat ingest file: " + ec.message())
                      .with("file", source.path));
    }
    key = "file:" + path.string() + ";size=" + std::to_string(size) +
          ";mtime=" + std::to_string(mtime);
  }
  key += "|" + std::to_string(options.width) + "x" + std::to_string(options.height) + "@" +
         std::to_string(options.fps) + ";gop_s=" + number(options.gop_seconds) +
         ";kbps=" + std::to_string(options.bitrate_kbps) + ";preset=" + options.preset +
         ";max_s=" + number(options.max_duration_s);
  return key;
}

Result<EncodedClip> encode_clip(const IngestSource& source, const IngestOptions& options) {
  auto key = ingest_key(source, options);
  if (!key) return fail(key.error());
  if (auto ready = init_gstreamer(); !ready) return fail(ready.error());
  const std::int64_t limit = frame_limit(source, options);

  GError* raw_error = nullptr;
  GstElement* raw =
      gst_parse_launch(launch_description(source, options, limit).c_str(), &raw_error);
  GErrorPtr parse_error(raw_error);
  // gst_parse_launch returns a floating reference; sink it so the deleter owns it.
  PipelinePtr pipeline(raw != nullptr ? GST_ELEMENT(gst_object_ref_sink(raw)) : nullptr);
  if (!pipeline || parse_error) {
    return fail(Error(ErrorCategory::media,
                      std::string("cannot build the ingest pipeline: ") +
                          (parse_error ? parse_error->message : "unknown error") +
                          " (are gstreamer1.0-plugins-base/-good/-ugly/-libav installed?)"));
  }
  ElementPtr src = child(pipeline.get(), "src");
  ElementPtr enc = child(pipeline.get(), "enc");
  ElementPtr sink = child(pipeline.get(), "sink");
  if (!src || !enc || !sink) return fail(ErrorCategory::internal, "ingest pipeline lacks elements");
  if (is_synthetic(source)) {
    if (auto set = set_enum(src.get(), "pattern", source.pattern); !set) {
      return fail(std::move(set.error()).with("source", "videotestsrc"));
    }
  } else {
    g_object_set(src.get(), "location", source.path.c_str(), nullptr);
  }
  if (auto set = set_enum(enc.get(), "speed-preset", options.preset); !set) {
    return fail(std::move(set.error()).with("element", "x264enc"));
  }

  BusPtr bus(gst_element_get_bus(pipeline.get()));
  if (gst_element_set_state(pipeline.get(), GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    if (auto error = pop_error(bus.get(), source, GST_SECOND)) return fail(std::move(*error));
    return fail(
        Error(ErrorCategory::media, "ingest pipeline refused to start").with("file", source.path));
  }

  EncodedClip clip;
  clip.width = options.width;
  clip.height = options.height;
  clip.fps = options.fps;
  clip.key = std::move(*key);
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(options.timeout_s));
  auto* appsink = GST_APP_SINK(sink.get());
  GstClockTime first_pts = GST_CLOCK_TIME_NONE;
  while (limit == 0 || static_cast<std::int64_t>(clip.frames.size()) < limit) {
    if (auto error = pop_error(bus.get(), source)) return fail(std::move(*error));
    SamplePtr sample(gst_app_sink_try_pull_sample(appsink, k_pull_wait));
    if (!sample) {
      if (gst_app_sink_is_eos(appsink) != 0) break;
      if (std::chrono::steady_clock::now() > deadline) {
        return fail(Error(ErrorCategory::media, "ingest encode timed out")
                        .with("file", is_synthetic(source) ? "(synthetic)" : source.path)
                        .with("timeout_s", number(options.timeout_s))
                        .with("frames", std::to_string(clip.frames.size())));
      }
      continue;
    }
    auto frame = to_frame(sample.get(), first_pts);
    if (!frame) return fail(std::move(frame.error()).with("file", source.path));
    if (!clip.frames.empty() && frame->pts <= clip.frames.back().pts) {
      return fail(Error(ErrorCategory::media, "ingest frames are not in PTS order")
                      .with("frame", std::to_string(clip.frames.size())));
    }
    clip.frames.push_back(std::move(*frame));
  }
  // An error posted together with EOS (e.g. a demuxer with no linked video pad) still counts.
  if (auto error = pop_error(bus.get(), source)) return fail(std::move(*error));
  if (clip.frames.empty()) {
    return fail(Error(ErrorCategory::media, "ingest source produced no video frames")
                    .with("file", is_synthetic(source) ? "(synthetic)" : source.path));
  }
  if (!clip.frames.front().keyframe || !contains_idr(clip.frames.front().data)) {
    return fail(ErrorCategory::media, "x264enc did not start with an IDR");
  }
  clip.period_pts =
      static_cast<std::int64_t>(clip.frames.size()) * k_ticks_per_second / options.fps;
  return clip;
}

Result<std::shared_ptr<const EncodedClip>> ClipCache::get(const IngestSource& source,
                                                          const IngestOptions& options) {
  auto key = ingest_key(source, options);
  if (!key) return fail(key.error());
  std::shared_ptr<Entry> entry;
  {
    std::lock_guard lock(mutex_);
    auto& slot = entries_[*key];
    if (!slot) slot = std::make_shared<Entry>();
    entry = slot;
  }
  // Callers of one key queue here while it encodes; other keys are not held up.
  std::lock_guard entry_lock(entry->mutex);
  if (entry->clip) {
    std::lock_guard lock(mutex_);
    ++stats_.hits;
    return entry->clip;
  }
  {
    std::lock_guard lock(mutex_);
    ++stats_.encodes;
  }
  auto clip = encode_clip(source, options);
  if (!clip) return fail(clip.error());
  entry->clip = std::make_shared<const EncodedClip>(std::move(*clip));
  return entry->clip;
}

ClipCache::Stats ClipCache::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

SegmentLooper::SegmentLooper(std::shared_ptr<const EncodedClip> clip, std::int64_t start_pts)
    : clip_(std::move(clip)), start_pts_(start_pts), buffer_(std::make_unique<std::string>()) {
  if (!clip_) return;
  for (std::size_t i = 0; i < clip_->frames.size(); ++i) {
    if (clip_->frames[i].keyframe) gop_starts_.push_back(i);
  }
}

SegmentLooper::~SegmentLooper() = default;
SegmentLooper::SegmentLooper(SegmentLooper&&) noexcept = default;
SegmentLooper& SegmentLooper::operator=(SegmentLooper&&) noexcept = default;

Result<ClipSegment> SegmentLooper::next() {
  if (!clip_ || gop_starts_.empty() || gop_starts_.front() != 0 || clip_->period_pts <= 0) {
    return fail(ErrorCategory::internal, "segment looper has no clip starting with an IDR");
  }
  if (!muxer_) {
    // The buffer lives on the heap so the callback stays valid when the looper moves.
    auto muxer = TsSegmentMuxer::create(
        MuxerOptions{.width = clip_->width, .height = clip_->height},
        [buffer = buffer_.get()](std::string_view bytes) { buffer->append(bytes); });
    if (!muxer) return fail(muxer.error());
    muxer_ = std::move(*muxer);
  }
  const auto& frames = clip_->frames;
  const std::size_t begin = gop_starts_[gop_];
  const std::size_t end = gop_ + 1 < gop_starts_.size() ? gop_starts_[gop_ + 1] : frames.size();
  const std::int64_t offset = start_pts_ + loop_ * clip_->period_pts;
  const std::int64_t end_pts = end < frames.size() ? frames[end].pts : clip_->period_pts;

  buffer_->clear();
  ClipSegment segment;
  segment.frames.reserve(end - begin);
  if (auto begun = muxer_->begin_segment(); !begun) return fail(begun.error());
  for (std::size_t i = begin; i < end; ++i) {
    scratch_.data.assign(frames[i].data);
    scratch_.pts = frames[i].pts + offset;
    scratch_.dts = frames[i].dts + offset;
    scratch_.keyframe = frames[i].keyframe;
    if (auto written = muxer_->write(scratch_); !written) return fail(written.error());
    segment.frames.push_back(FrameSpan{.pts = scratch_.pts, .end_offset = buffer_->size()});
  }
  if (auto ended = muxer_->end_segment(); !ended) return fail(ended.error());
  segment.bytes = std::move(*buffer_);
  buffer_->clear();
  segment.duration_s =
      static_cast<double>(end_pts - frames[begin].pts) / static_cast<double>(k_ticks_per_second);

  if (++gop_ == gop_starts_.size()) {
    gop_ = 0;
    ++loop_;
  }
  ++produced_;
  return segment;
}

}  // namespace naap::media
