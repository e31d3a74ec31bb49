// Test driver for the emulator: an io thread, HTTP calls, and a gateway-side session built from
// our own trickle client (publisher paced in real time, output decoded, events collected).
#pragma once

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "naap/emulator/emulator.hpp"
#include "naap/media/decoder.hpp"
#include "naap/media/frame_ops.hpp"
#include "naap/media/synthetic_clip.hpp"
#include "naap/media/ts_demuxer.hpp"
#include "naap/transport/http_engine.hpp"
#include "naap/transport/trickle_json.hpp"
#include "naap/transport/trickle_publisher.hpp"
#include "naap/transport/trickle_subscriber.hpp"
#include "net.pb.h"

namespace naap::test {

namespace asio = boost::asio;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

inline std::string base64(std::string_view in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (unsigned char c : in) {
    buffer = (buffer << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(k[(buffer >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(k[(buffer << (6 - bits)) & 63]);
  while (out.size() % 4 != 0) out.push_back('=');
  return out;
}

// The io thread every emulator and client object of a test lives on.
class Loop {
 public:
  Loop() : thread_([this] { io.run(); }) {}
  ~Loop() {
    work_.reset();
    io.stop();
    thread_.join();
  }
  template <class Fn>
  auto on_io(Fn fn) {
    using R = decltype(fn());
    std::packaged_task<R()> task(std::move(fn));
    auto result = task.get_future();
    asio::post(io, [&task] { task(); });
    return result.get();
  }
  asio::io_context io;

 private:
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{
      io.get_executor()};
  std::thread thread_;
};

struct Reply {
  int status = 0;         // HTTP status, 0 on a transport error
  http::Headers headers;  // response headers
  std::string body;       // whole body
  std::string error;      // transport error text
};

// Clips are encoded once per (fps, seconds) and shared by the tests of a binary.
inline const media::SegmentedClip& clip(int fps, double seconds, int size = 512) {
  static std::map<std::tuple<int, double, int>, media::SegmentedClip> cache;
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  auto key = std::make_tuple(fps, seconds, size);
  auto it = cache.find(key);
  if (it == cache.end()) {
    media::ClipOptions options;
    options.width = size;
    options.height = size;
    options.fps_num = fps;
    options.duration_s = seconds;
    options.gop_seconds = 1.0;
    auto encoded = media::encode_synthetic_clip(options);
    if (!encoded) throw std::runtime_error(encoded.error().describe());
    it = cache.emplace(key, std::move(*encoded)).first;
  }
  return it->second;
}

struct OutFrame {
  std::int64_t pts = 0;                     // output PTS, 90 kHz
  media::FrameClass kind;                   // real / loading / black
  std::optional<media::PromptStyle> style;  // measured tint
  Clock::time_point received;               // when the bytes completing it arrived
};

struct SeenEvent {
  trickle::ChannelEvent event;  // as read
  Clock::time_point at;         // when it arrived
};

// One gateway-side session against the emulator. Every method runs on the loop's thread.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(http::Engine& engine, std::string base_url, std::string segment_header)
      : engine_(engine), base_url_(std::move(base_url)), header_(std::move(segment_header)) {}

  // POST /live-video-to-video; on 200 fills the URLs.
  void start_job(const json& body, std::function<void(const Reply&)> done,
                 std::string payment = "") {
    http::Request request;
    request.method = "POST";
    request.url = base_url_ + "/live-video-to-video";
    request.body = body.dump();
    request.headers = {{"Content-Type", "application/json"},
                       {"Livepeer-Segment", header_},
                       {"Livepeer-Payment", payment}};
    auto reply = std::make_shared<Reply>();
    http::Handlers handlers;
    handlers.on_head = [reply](const http::ResponseHead& head) {
      reply->status = head.status;
      reply->headers = head.headers;
    };
    handlers.on_data = [reply](std::string_view b) {
      reply->body.append(b);
      return http::DataAction::proceed;
    };
    handlers.on_complete = [self = shared_from_this(), reply, done](const http::Outcome& o) {
      if (o.error) reply->error = o.error->describe();
      if (reply->status == 200) {
        const json parsed = json::parse(reply->body, nullptr, false);
        if (parsed.is_object()) self->urls = parsed;
      }
      done(*reply);
    };
    engine_.start(std::move(request), std::move(handlers));
  }

  // Opens output/events readers and the control writer, then publishes `clip` paced by PTS.
  void run(const media::SegmentedClip& input) {
    started = Clock::now();
    // Callbacks hold the session weakly: the clients they belong to are owned by the session.
    std::weak_ptr<Session> weak = weak_from_this();
    trickle::SubscriberOptions sub;
    sub.start_seq = 0;
    trickle::SubscriberCallbacks out;
    out.on_data = [weak](std::int64_t, std::string_view bytes) {
      auto self = weak.lock();
      if (!self) return;
      self->output_bytes += bytes.size();
      self->demuxer_.push(bytes);
    };
    out.on_segment_end = [weak](const trickle::SegmentEnd& end) {
      auto self = weak.lock();
      if (!self) return;
      if (end.bytes > 0) ++self->output_segments;
      self->demuxer_.flush();
    };
    out.on_end = [weak](trickle::SubscriberEnd end, const std::optional<Error>&) {
      auto self = weak.lock();
      if (!self) return;
      self->output_end = end;
      self->output_end_at = Clock::now();
    };
    output_ = *trickle::TrickleSubscriber::create(engine_, urls["subscribe_url"], sub, out);
    output_->start();
    trickle::EventsCallbacks ev;
    ev.on_event = [weak](const trickle::ChannelEvent& e) {
      auto self = weak.lock();
      if (!self) return;
      self->events.push_back(SeenEvent{e, Clock::now()});
    };
    ev.on_end = [weak](trickle::SubscriberEnd end, const std::optional<Error>&) {
      auto self = weak.lock();
      if (!self) return;
      self->events_end = end;
    };
    events_ = *trickle::EventsReader::create(engine_, urls["events_url"], sub, ev);
    events_->start();
    control_ = *trickle::ControlWriter::create(engine_, urls["control_url"], {});
    control_->start();
    trickle::PublisherCallbacks pub;
    pub.on_end = [weak](trickle::PublisherEnd end, const std::optional<Error>&) {
      auto self = weak.lock();
      if (!self) return;
      self->publisher_end = end;
    };
    publisher_ = *trickle::TricklePublisher::create(engine_, urls["publish_url"], {}, pub);
    publisher_->start();
    clip_ = &input;
    pts0_ = input.segments.front().frames.front().pts;
    send_next();
  }

  // Full params on the control channel.
  void control(const json& message) {
    if (control_) (void)control_->send(message);
  }
  void control_raw(const std::string& body) {
    auto writer = control_->publisher().next_segment();
    if (writer) {
      writer->write(body);
      writer->finish();
    }
  }
  // Publishes one segment of raw bytes now (garbage tests), before the clip starts.
  void publish_raw(const std::string& bytes) {
    auto writer = publisher_->next_segment();
    if (writer) {
      writer->write(bytes);
      writer->finish();
    }
  }
  // Stops sending input without telling anyone (a gateway that vanished).
  void vanish() { stopped_ = true; }
  // Stops publishing and DELETEs the input channel (the gateway's stop).
  void stop_input() {
    stopped_ = true;
    if (publisher_) publisher_->close();
  }
  void shutdown() {
    stopped_ = true;
    if (publisher_) publisher_->close();
    if (output_) output_->stop();
    if (events_) events_->stop();
    if (control_) control_->close();
    timer_.reset();
  }

  bool decode_output = true;                           // false: demux only (benchmarks)
  json urls;                                           // start response
  std::vector<OutFrame> frames;                        // decoded output frames
  std::map<std::int64_t, Clock::time_point> sent_at;   // input PTS -> when its bytes went out
  std::vector<SeenEvent> events;                       // events channel
  std::uint64_t output_bytes = 0;                      // output body bytes
  std::uint64_t output_segments = 0;                   // non-empty output segments
  std::uint64_t decode_errors = 0;                     // output frames the decoder rejected
  std::optional<trickle::SubscriberEnd> output_end;    // how the output ended
  Clock::time_point output_end_at;                     // when
  std::optional<trickle::SubscriberEnd> events_end;    // how the events ended
  std::optional<trickle::PublisherEnd> publisher_end;  // how the input publisher ended
  Clock::time_point started;                           // run() called
  bool input_done = false;                             // every input frame was sent

 private:
  void send_next() {
    if (stopped_ || !publisher_ || publisher_->ended()) return;
    if (segment_ >= clip_->segments.size()) {
      input_done = true;
      if (writer_) writer_->finish();
      return;
    }
    const auto& seg = clip_->segments[segment_];
    if (frame_ == 0) {
      if (writer_) writer_->finish();
      writer_ = publisher_->next_segment();
      offset_ = 0;
    }
    const auto& span = seg.frames[frame_];
    const auto due = started + std::chrono::microseconds((span.pts - pts0_) * 1000 / 90);
    if (Clock::now() < due) {
      timer_ = std::make_unique<asio::steady_timer>(engine_.io(), due);
      timer_->async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (!ec) self->send_next();
      });
      return;
    }
    if (writer_)
      writer_->write(std::string_view(seg.bytes).substr(offset_, span.end_offset - offset_));
    sent_at[span.pts] = Clock::now();
    offset_ = span.end_offset;
    if (++frame_ == seg.frames.size()) {
      frame_ = 0;
      ++segment_;
    }
    asio::post(engine_.io(), [self = shared_from_this()] { self->send_next(); });
  }

  void on_frame(media::EncodedFrame&& f) {
    if (!decode_output) {
      frames.push_back(OutFrame{f.pts, media::FrameClass::real, std::nullopt, Clock::now()});
      return;
    }
    if (!decoder_) decoder_ = std::move(*media::H264Decoder::create());
    const auto now = Clock::now();
    auto r = decoder_->decode(f, [&](AVFrame& picture) {
      frames.push_back(OutFrame{picture.pts, media::classify_frame(picture),
                                media::measure_style(picture), now});
    });
    if (!r) ++decode_errors;
  }

  http::Engine& engine_;
  std::string base_url_;
  std::string header_;
  media::TsDemuxer demuxer_{[this](media::EncodedFrame&& f) { on_frame(std::move(f)); }};
  std::unique_ptr<media::H264Decoder> decoder_;
  std::shared_ptr<trickle::TrickleSubscriber> output_;
  std::unique_ptr<trickle::EventsReader> events_;
  std::unique_ptr<trickle::ControlWriter> control_;
  std::shared_ptr<trickle::TricklePublisher> publisher_;
  std::shared_ptr<trickle::SegmentWriter> writer_;
  std::unique_ptr<asio::steady_timer> timer_;
  const media::SegmentedClip* clip_ = nullptr;
  std::int64_t pts0_ = 0;
  std::size_t segment_ = 0;
  std::size_t frame_ = 0;
  std::size_t offset_ = 0;
  bool stopped_ = false;
};

}  // namespace naap::test
