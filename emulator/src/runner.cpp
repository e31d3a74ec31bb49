// The emulated ai-runner of one stream: input (from -2) → 24 fps cap → decode → prompt-tinted
// or loading-overlay frame → H.264 (zerolatency, no B-frames, IDR every 2 s) with the input
// frame's PTS → one GOP per output segment; events on the events channel; faults; ground truth.
#include "runner.hpp"

#include <boost/asio/post.hpp>
#include <cmath>

#include "naap/core/log.hpp"
#include "naap/media/decoder.hpp"
#include "naap/media/encoder.hpp"
#include "naap/media/frame_ops.hpp"
#include "naap/media/ts_demuxer.hpp"
#include "naap/media/ts_muxer.hpp"

namespace naap::emulator {
namespace {

namespace asio = boost::asio;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr double k_max_input_fps = 24.0;                // ai-runner MAX_FRAMERATE
constexpr double k_gop_seconds = 2.0;                   // ai-runner GOP_SECS
constexpr std::size_t k_max_control_bytes = 32 * 1024;  // one read in the runner
constexpr std::size_t k_control_buffer_cap = 1 << 20;   // never buffer more than this

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

std::int64_t wall_ms() {
  return wall_us() / 1000;
}

// The prompt text a frame's tint derives from: a string, a weighted list, or a whole ComfyUI
// workflow (object or string).
std::string prompt_text(const json& params) {
  auto it = params.find("prompt");
  if (it == params.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    std::string out;
    for (const auto& item : *it) {
      if (!out.empty()) out += " | ";
      if (item.is_array() && !item.empty() && item[0].is_string()) {
        out += item[0].get<std::string>();
      } else {
        out += item.dump();
      }
    }
    return out;
  }
  return it->dump();
}

// StreamDiffusion keys whose change reloads the pipeline (PROTOCOL.md §4.2).
bool needs_reload(const json& before, const json& after) {
  static const char* k_keys[] = {"model_id",     "acceleration", "lora_dict",
                                 "use_lcm_lora", "use_tiny_vae", "engine_dir"};
  for (const char* key : k_keys) {
    const json a = before.contains(key) ? before[key] : json();
    const json b = after.contains(key) ? after[key] : json();
    if (a != b) return true;
  }
  return false;
}

int dimension(const json& params, const char* key) {
  auto it = params.find(key);
  if (it == params.end() || !it->is_number_integer()) return 512;
  return it->get<int>();
}

}  // namespace

// ---- codec side ------------------------------------------------------------------------------

struct RunnerStream::Output {
  Clock::time_point due;      // emission time
  std::string tail;           // bytes that end the previous output segment
  std::string bytes;          // bytes of this frame (or passthrough chunk)
  bool new_segment = false;   // bytes start a new output segment
  bool counts_frame = false;  // a decoded frame (not a passthrough chunk)
  FrameTruth frame;           // truth record (emitted_us set at emission)
  int prompt_index = -1;      // prompt shown by the frame, -1 for loading frames
};

struct RunnerStream::Codec {
  // Shared with the io thread (under mutex).
  std::mutex mutex;
  media::PromptStyle style;   // tint of the current prompt
  int prompt_index = 0;       // index in truth->prompts of the current prompt
  bool loading = true;        // draw loading overlays
  bool stalled = false;       // stall fault: swallow frames
  bool jump_pending = false;  // PTS jump fault armed: applies at the next IDR

  // Codec thread only.
  std::weak_ptr<RunnerStream> stream;
  asio::io_context* io = nullptr;
  std::shared_ptr<StreamTruth> truth;
  FaultProfile faults;
  std::string preset;
  int width = 512;  // output size from the start params, pixels
  int height = 512;
  std::unique_ptr<media::TsDemuxer> demuxer;
  std::unique_ptr<media::H264Decoder> decoder;
  std::unique_ptr<media::H264Encoder> encoder;
  std::unique_ptr<media::TsSegmentMuxer> muxer;
  media::ScalerCache scaler;
  std::string mux_bytes;         // bytes the muxer produced for the current call
  double next_due_s = -1e18;     // 24 fps limiter schedule, PTS seconds
  double fault_next_s = -1e18;   // fps_cap fault schedule, PTS seconds
  std::uint64_t kept = 0;        // frames after the caps (drop_every_n counts these)
  std::int64_t pts_offset = 0;   // shift applied to output PTS, 90 kHz
  std::uint64_t segments = 0;    // output segments begun
  bool corrupt_segment = false;  // the current output segment is garbage
  std::int64_t arrival_us = 0;   // wall time the current input chunk arrived
  Clock::time_point arrival;     // steady time the current input chunk arrived
  std::mt19937_64 rng{7};        // garbage bytes, latency draws
  bool broken = false;           // the codec could not be set up: frames are dropped

  // Caps by PTS as ai-runner does: a frame earlier than the schedule is dropped; a kept frame
  // advances the schedule by one interval, or restarts it when the frame is late.
  static bool keep(double pts_s, double fps, double& next_s) {
    const double interval = 1.0 / fps;
    // 1 µs of slack: 90 kHz PTS of an exact 24 fps stream must not lose to float rounding.
    if (pts_s < next_s - 1e-6) return false;
    next_s = pts_s > next_s + interval ? pts_s + interval : next_s + interval;
    return true;
  }

  // Every input frame is decoded (P-frames need their references); the caps and drops apply to
  // decoded pictures, as ai-runner's decoder loop does.
  void on_frame(media::EncodedFrame&& in) {
    {
      std::lock_guard lock(truth->mutex);
      ++truth->input_frames;
    }
    if (broken) return;
    auto decoded = decoder->decode(in, [&](AVFrame& picture) { on_picture(picture); });
    if (!decoded) frame_failed(decoded.error());
  }

  void on_picture(AVFrame& picture) {
    const std::int64_t pts_in = picture.pts;
    const double pts_s = static_cast<double>(pts_in) / 90'000.0;
    if (!keep(pts_s, k_max_input_fps, next_due_s)) {
      std::lock_guard lock(truth->mutex);
      ++truth->frames_capped;
      return;
    }
    asio::post(*io, [weak = stream] {
      if (auto s = weak.lock()) s->status_.input_frame(s->now());
    });
    if (faults.fps_cap && !keep(pts_s, *faults.fps_cap, fault_next_s)) {
      std::lock_guard lock(truth->mutex);
      ++truth->frames_fps_fault;
      return;
    }
    ++kept;
    if (faults.drop_every_n && kept % static_cast<std::uint64_t>(*faults.drop_every_n) == 0) {
      std::lock_guard lock(truth->mutex);
      ++truth->frames_dropped_nth;
      return;
    }
    media::PromptStyle frame_style;
    int frame_prompt = 0;
    bool frame_loading = false;
    {
      std::lock_guard lock(mutex);
      if (stalled) {
        // A hung pipeline: input keeps arriving (and is counted), nothing comes out.
        std::lock_guard truth_lock(truth->mutex);
        ++truth->frames_stalled;
        return;
      }
      frame_style = style;
      frame_prompt = prompt_index;
      frame_loading = loading;
    }
    process_picture(picture, pts_in, frame_style, frame_prompt, frame_loading);
  }

  void process_picture(AVFrame& picture, std::int64_t pts_in, media::PromptStyle frame_style,
                       int frame_prompt, bool frame_loading) {
    if (frame_loading && !faults.show_reloading_frame.value_or(true)) return;
    auto scaled = media::scale_crop(picture, width, height, scaler);
    if (!scaled) {
      frame_failed(scaled.error());
      return;
    }
    AVFrame& out = **scaled;
    // scale_crop may share the decoder's buffers; draw on a pooled copy, never on them.
    if (auto writable = media::make_writable(out, scaler.frames); !writable) {
      frame_failed(writable.error());
      return;
    }
    if (frame_loading) {
      (void)media::draw_loading_overlay(out, pts_in);
    } else {
      (void)media::apply_prompt_style(out, frame_style);
    }
    if (!encoder) {
      media::EncoderOptions options;
      options.width = width;
      options.height = height;
      options.preset = preset;
      options.gop_seconds = k_gop_seconds;
      auto created = media::H264Encoder::create(options);
      if (!created) {
        log::error("emulator_encoder_failed", {{"error", created.error().describe()}});
        broken = true;
        return;
      }
      encoder = std::move(*created);
    }
    auto encoded = encoder->encode(out, pts_in, [&](media::EncodedFrame&& packet) {
      emit_packet(std::move(packet), pts_in, frame_loading, frame_prompt);
    });
    if (!encoded) frame_failed(encoded.error());
  }

  // A frame the runner could not process: counted, and logged once per stream.
  void frame_failed(const Error& error) {
    std::lock_guard lock(truth->mutex);
    ++truth->frames_undecodable;
    if (truth->frames_undecodable == 1) {
      log::warn("emulator_frame_failed",
                {{"manifest_id", truth->manifest_id}, {"error", error.describe()}});
    }
  }

  void emit_packet(media::EncodedFrame&& packet, std::int64_t pts_in, bool frame_loading,
                   int frame_prompt) {
    Output item;
    if (packet.keyframe || !muxer->in_segment()) {
      mux_bytes.clear();
      if (muxer->in_segment()) (void)muxer->end_segment();
      item.tail = corrupt_segment ? garble(std::move(mux_bytes)) : std::move(mux_bytes);
      mux_bytes.clear();
      bool jumped = false;
      {
        std::lock_guard lock(mutex);
        if (jump_pending) {
          jump_pending = false;
          jumped = true;
        }
      }
      if (jumped) {
        const double jump_ms = faults.pts_jump_back_ms.value_or(1000.0);
        pts_offset -= static_cast<std::int64_t>(std::llround(jump_ms * 90.0));
        std::lock_guard lock(truth->mutex);
        truth->add_fault("pts_jump", "output PTS jumped back " + std::to_string(jump_ms) +
                                         " ms at input PTS " + std::to_string(pts_in));
      }
      (void)muxer->begin_segment();
      ++segments;
      corrupt_segment = faults.corrupt_segment_every_n &&
                        segments % static_cast<std::uint64_t>(*faults.corrupt_segment_every_n) == 0;
      if (corrupt_segment) {
        std::lock_guard lock(truth->mutex);
        truth->add_fault("corrupt_segment",
                         "output segment " + std::to_string(segments - 1) + " is garbage");
      }
      item.new_segment = true;
    }
    packet.pts += pts_offset;
    packet.dts += pts_offset;
    const std::int64_t pts_out = packet.pts;
    mux_bytes.clear();
    if (!muxer->write(packet)) {
      std::lock_guard lock(truth->mutex);
      truth->add_fault("mux_refused", "the muxer refused output PTS " + std::to_string(pts_out));
    }
    item.bytes = corrupt_segment ? garble(std::move(mux_bytes)) : std::move(mux_bytes);
    mux_bytes.clear();
    const double injected = faults.latency ? faults.latency->sample_ms(rng) : 0.0;
    item.due = Clock::now() + seconds(injected / 1000.0);
    item.counts_frame = true;
    item.frame = FrameTruth{pts_in, pts_out, arrival_us, 0, injected, frame_loading};
    item.prompt_index = frame_loading ? -1 : frame_prompt;
    asio::post(*io, [weak = stream, item = std::move(item)]() mutable {
      if (auto s = weak.lock()) s->enqueue_output(std::move(item));
    });
  }

  std::string garble(std::string bytes) {
    for (auto& c : bytes) c = static_cast<char>(rng() & 0xff);
    return bytes;
  }
};

// ---- the stream ------------------------------------------------------------------------------

RunnerStream::RunnerStream(asio::io_context& io, http::Engine& engine, WorkerPool& pool,
                           StreamSetup setup, StopFn on_stop)
    : io_(io),
      engine_(engine),
      setup_(std::move(setup)),
      on_stop_(std::move(on_stop)),
      truth_(std::make_shared<StreamTruth>()),
      queue_(std::make_shared<SerialQueue>(pool)),
      codec_(std::make_shared<Codec>()),
      status_(setup_.model_id,
              setup_.model_id == "comfyui" ? RunnerKind::comfyui : RunnerKind::other),
      rng_(std::hash<std::string>{}(setup_.manifest_id)),
      emit_timer_(io),
      tick_timer_(io) {
  balance_s_ = setup_.balance_s;
  truth_->manifest_id = setup_.manifest_id;
  truth_->stream_id = setup_.stream_id;
  truth_->request_id = setup_.request_id;
  truth_->model_id = setup_.model_id;
  truth_->faults = setup_.faults.to_json();
  truth_->passthrough = setup_.faults.passthrough.value_or(false);
  truth_->started_us = steady_us();
  truth_->wall_minus_steady_us = wall_us() - truth_->started_us;
}

RunnerStream::~RunnerStream() = default;

Now RunnerStream::now() const {
  return Now{Clock::now(), wall_ms()};
}

void RunnerStream::start() {
  started_ = last_input_ = last_due_ = bandwidth_free_ = last_debit_ = Clock::now();
  const std::string base = setup_.internal_base + setup_.manifest_id;
  const bool passthrough = setup_.faults.passthrough.value_or(false);
  std::weak_ptr<RunnerStream> weak = weak_from_this();

  // Codec state: created here, used on the serial queue only from now on.
  auto& c = *codec_;
  c.stream = weak;
  c.io = &io_;
  c.truth = truth_;
  c.faults = setup_.faults;
  c.preset = setup_.encoder_preset;
  c.width = dimension(setup_.params, "width");
  c.height = dimension(setup_.params, "height");
  c.rng.seed(rng_());
  c.pts_offset = std::llround(setup_.faults.pts_shift_ms.value_or(0.0) * 90.0);
  if (!passthrough) {
    c.demuxer = std::make_unique<media::TsDemuxer>(
        [codec = codec_.get()](media::EncodedFrame&& f) { codec->on_frame(std::move(f)); });
    auto decoder = media::H264Decoder::create();
    media::MuxerOptions mux_options;
    mux_options.width = c.width;
    mux_options.height = c.height;
    auto muxer = media::TsSegmentMuxer::create(
        mux_options, [codec = codec_.get()](std::string_view b) { codec->mux_bytes.append(b); });
    if (!decoder || !muxer) {
      log::error("emulator_codec_setup_failed", {{"manifest_id", setup_.manifest_id}});
      c.broken = true;
    } else {
      c.decoder = std::move(*decoder);
      c.muxer = std::move(*muxer);
    }
  }

  auto open_publisher = [&](const std::string& url, const char* mime) {
    trickle::PublisherOptions options;
    options.content_type = mime;
    auto created = trickle::TricklePublisher::create(engine_, url, options, {});
    if (!created) return std::shared_ptr<trickle::TricklePublisher>();
    (*created)->start();
    return *created;
  };
  // Events first: runner_receive_stream_request is the events channel's seq 0.
  events_ = open_publisher(base + "-events", "application/json");
  publish_event(stream_trace_event("runner_receive_stream_request", wall_ms()));

  status_.stream_started(now(), nlohmann::ordered_json(setup_.params));
  apply_params(setup_.params, steady_us());
  const double load_s = setup_.faults.load_time_s.value_or(setup_.load_time_s);
  if (load_s > 0 && !passthrough) {
    start_loading("startup", load_s);
  } else {
    std::lock_guard lock(codec_->mutex);
    codec_->loading = false;
  }

  // The output ending early (channel closed) is noticed on the input side, which ends too.
  output_ = open_publisher(base + "-out", "video/mp2t");

  trickle::SubscriberOptions in_options;
  in_options.start_seq = trickle::k_seq_current;
  trickle::SubscriberCallbacks in_callbacks;
  in_callbacks.on_data = [weak](std::int64_t seq, std::string_view bytes) {
    if (auto s = weak.lock()) s->on_input_data(seq, bytes);
  };
  in_callbacks.on_segment_end = [weak](const trickle::SegmentEnd&) {
    if (auto s = weak.lock()) s->on_input_segment_end();
  };
  in_callbacks.on_end = [weak, this_io = &io_](trickle::SubscriberEnd end,
                                               const std::optional<Error>& error) {
    std::string reason = "input channel ended (" + std::string(trickle::to_string(end)) + ")";
    if (error) reason += ": " + error->message;
    asio::post(*this_io, [weak, reason] {
      if (auto s = weak.lock()) s->stop(reason);
    });
  };
  auto input = trickle::TrickleSubscriber::create(engine_, base, in_options, in_callbacks);
  if (input) {
    input_ = *input;
    input_->start();
  }

  trickle::SubscriberOptions control_options;
  control_options.start_seq = trickle::k_seq_current;
  trickle::SubscriberCallbacks control_callbacks;
  control_callbacks.on_data = [weak](std::int64_t, std::string_view bytes) {
    auto s = weak.lock();
    if (!s) return;
    if (s->control_buffer_.size() + bytes.size() <= k_control_buffer_cap) {
      s->control_buffer_.append(bytes);
    } else {
      s->control_buffer_.resize(k_control_buffer_cap + 1);  // marks it oversized
    }
  };
  control_callbacks.on_segment_end = [weak](const trickle::SegmentEnd& end) {
    auto s = weak.lock();
    if (!s) return;
    std::string body = std::move(s->control_buffer_);
    s->control_buffer_.clear();
    if (end.complete && end.bytes > 0) s->on_control_segment(std::move(body));
  };
  auto control = trickle::TrickleSubscriber::create(engine_, base + "-control", control_options,
                                                    control_callbacks);
  if (control) {
    control_ = *control;
    control_->start();
  }
  if (!events_ || !output_ || !input_ || !control_) {
    log::error("emulator_stream_clients_failed", {{"manifest_id", setup_.manifest_id}});
  }
  schedule_tick();
  log::info("emulator_stream_started", {{"manifest_id", setup_.manifest_id},
                                        {"stream_id", setup_.stream_id},
                                        {"model_id", setup_.model_id},
                                        {"faults", setup_.faults.to_json().dump()}});
}

void RunnerStream::publish_event(const nlohmann::ordered_json& event) {
  if (setup_.faults.no_events.value_or(false) || !events_ || events_->ended()) return;
  auto writer = events_->next_segment();
  if (!writer) return;
  writer->write(python_json_dumps(event));
  writer->finish();
  std::lock_guard lock(truth_->mutex);
  ++truth_->events_sent;
}

void RunnerStream::on_input_data(std::int64_t, std::string_view bytes) {
  if (stopped_ || bytes.empty()) return;
  const auto t = Clock::now();
  const std::int64_t t_us = steady_us();
  last_input_ = t;
  bool new_segment = false;
  {
    std::lock_guard lock(truth_->mutex);
    if (!truth_->first_input_us) truth_->first_input_us = t_us;
    truth_->input_bytes += bytes.size();
    if (input_bytes_in_segment_ == 0) {
      ++truth_->input_segments;
      new_segment = true;
    }
  }
  input_bytes_in_segment_ += bytes.size();
  if (new_segment && balance_s_ >= 0) {
    // Priced mode: every input segment debits the time since the last one.
    balance_s_ -= std::chrono::duration<double>(t - last_debit_).count();
    last_debit_ = t;
    if (balance_s_ < 0) {
      {
        std::lock_guard lock(truth_->mutex);
        truth_->add_fault("insufficient_balance", "payments stopped covering the stream");
      }
      asio::post(io_, [weak = weak_from_this()] {
        if (auto s = weak.lock()) s->stop("insufficient balance");
      });
      return;
    }
  }
  if (setup_.faults.passthrough.value_or(false)) {
    Output item;
    const double injected = setup_.faults.latency ? setup_.faults.latency->sample_ms(rng_) : 0.0;
    item.due = t + seconds(injected / 1000.0);
    item.bytes = std::string(bytes);
    item.new_segment = new_segment;
    enqueue_output(std::move(item));
    return;
  }
  queue_->post([codec = codec_, data = std::string(bytes), t, t_us] {
    if (!codec->demuxer) return;
    codec->arrival = t;
    codec->arrival_us = t_us;
    codec->demuxer->push(data);
  });
}

void RunnerStream::on_input_segment_end() {
  if (stopped_) return;
  if (input_bytes_in_segment_ > 0 && !first_segment_traced_) {
    first_segment_traced_ = true;
    publish_event(stream_trace_event("runner_receive_first_ingest_segment", wall_ms()));
  }
  input_bytes_in_segment_ = 0;
  if (setup_.faults.passthrough.value_or(false)) return;
  queue_->post([codec = codec_] {
    if (codec->demuxer) codec->demuxer->flush();
  });
}

void RunnerStream::on_control_segment(std::string body) {
  if (stopped_) return;
  const std::int64_t t_us = steady_us();
  {
    std::lock_guard lock(truth_->mutex);
    ++truth_->control_messages;
  }
  if (body.size() > k_max_control_bytes) {
    // The runner parses one read of at most 32 KiB: a larger message is cut and fails to parse.
    std::lock_guard lock(truth_->mutex);
    ++truth_->bad_control;
    log::warn("emulator_control_oversized",
              {{"manifest_id", setup_.manifest_id}, {"bytes", body.size()}});
    return;
  }
  json params = json::parse(body, nullptr, false);
  if (params.is_discarded() || !params.is_object()) {
    std::lock_guard lock(truth_->mutex);
    ++truth_->bad_control;
    log::warn("emulator_control_not_json", {{"manifest_id", setup_.manifest_id}});
    return;
  }
  if (params == json{{"keep", "alive"}}) {
    std::lock_guard lock(truth_->mutex);
    ++truth_->keepalives;
    return;
  }
  apply_params(std::move(params), t_us);
}

void RunnerStream::apply_params(json params, std::int64_t received_us) {
  const bool initial = truth_->prompts.empty();
  if (!initial) {
    if (dimension(params, "width") != codec_->width ||
        dimension(params, "height") != codec_->height) {
      const std::string message = "Cannot change output resolution mid-stream";
      status_.error(now(), message);
      std::lock_guard lock(truth_->mutex);
      truth_->add_fault("params_rejected", message);
      return;
    }
  }
  const bool reload = !initial && needs_reload(setup_.params, params);
  const std::string text = prompt_text(params);
  PromptTruth record;
  record.params_hash = params_hash(params);
  record.prompt = text;
  record.reload = reload;
  record.received_us = received_us;
  int index = 0;
  {
    std::lock_guard lock(truth_->mutex);
    truth_->prompts.push_back(record);
    index = static_cast<int>(truth_->prompts.size()) - 1;
  }
  {
    std::lock_guard lock(codec_->mutex);
    codec_->style = media::style_for_prompt(text);
    codec_->prompt_index = index;
  }
  if (!initial) {
    status_.params_updated(now(), nlohmann::ordered_json(params), reload);
    if (reload) {
      start_loading("reload", setup_.faults.reload_time_s.value_or(setup_.reload_time_s));
    }
  }
  setup_.params = std::move(params);
}

void RunnerStream::start_loading(const std::string& reason, double secs) {
  loading_ = true;
  loading_until_ = Clock::now() + seconds(secs);
  status_.loading_started(now());
  {
    std::lock_guard lock(codec_->mutex);
    codec_->loading = true;
  }
  std::lock_guard lock(truth_->mutex);
  truth_->loading.push_back(LoadingTruth{reason, steady_us(), 0});
}

void RunnerStream::enqueue_output(Output out) {
  if (stopped_) return;
  out.due = std::max(out.due, last_due_);
  if (setup_.faults.bandwidth_kbps) {
    out.due = std::max(out.due, bandwidth_free_);
    const double bits = 8.0 * static_cast<double>(out.bytes.size() + out.tail.size());
    bandwidth_free_ = out.due + seconds(bits / (*setup_.faults.bandwidth_kbps * 1000.0));
  }
  last_due_ = out.due;
  pending_out_.push_back(std::move(out));
  if (pending_out_.size() == 1) emit_ready();
}

void RunnerStream::emit_ready() {
  const auto t = Clock::now();
  while (!pending_out_.empty() && pending_out_.front().due <= t) {
    Output out = std::move(pending_out_.front());
    pending_out_.pop_front();
    if (!output_ || output_->ended()) continue;
    if (out.new_segment) {
      if (out_writer_) {
        if (!out.tail.empty()) out_writer_->write(out.tail);
        out_writer_->finish();
      }
      out_writer_ = output_->next_segment();
      ++output_segments_;
    }
    if (!out_writer_) continue;
    out_writer_->write(out.bytes);
    const std::int64_t emitted = steady_us();
    if (!first_output_traced_) {
      first_output_traced_ = true;
      publish_event(stream_trace_event("runner_send_first_processed_segment", wall_ms()));
    }
    if (out.counts_frame) status_.output_frame(now(), out.frame.loading);
    std::lock_guard lock(truth_->mutex);
    if (!truth_->first_output_us) truth_->first_output_us = emitted;
    if (out.new_segment) ++truth_->output_segments;
    truth_->output_bytes += out.bytes.size() + out.tail.size();
    if (out.counts_frame) {
      ++truth_->output_frames;
      if (out.frame.loading) ++truth_->loading_frames;
      out.frame.emitted_us = emitted;
      truth_->add_frame(out.frame);
      if (out.prompt_index >= 0 &&
          static_cast<std::size_t>(out.prompt_index) < truth_->prompts.size()) {
        auto& prompt = truth_->prompts[static_cast<std::size_t>(out.prompt_index)];
        if (!prompt.effective_pts) {
          prompt.effective_pts = out.frame.pts_in;
          prompt.effective_us = emitted;
        }
      }
    }
  }
  if (pending_out_.empty()) return;
  emit_timer_.expires_at(pending_out_.front().due);
  emit_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    if (ec) return;
    if (auto s = weak.lock()) s->emit_ready();
  });
}

void RunnerStream::schedule_tick() {
  tick_timer_.expires_after(std::chrono::milliseconds(250));
  tick_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    if (ec) return;
    if (auto s = weak.lock()) s->tick();
  });
}

void RunnerStream::fire_crash() {
  crash_fired_ = true;
  const std::string message = "pipeline process crashed (emulated fault)";
  publish_event(
      error_event(setup_.model_id, message, static_cast<double>(wall_us()) / 1e6, wall_ms()));
  {
    std::lock_guard lock(truth_->mutex);
    truth_->add_fault("crash", message);
  }
  // Give the error event a moment to reach the events channel before everything closes.
  auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(300));
  timer->async_wait([timer, weak = weak_from_this()](const boost::system::error_code&) {
    if (auto s = weak.lock()) s->stop("crash fault: runner exited");
  });
}

void RunnerStream::tick() {
  if (stopped_) return;
  const auto t = Clock::now();
  const double elapsed = std::chrono::duration<double>(t - started_).count();
  const auto& f = setup_.faults;
  if (loading_ && t >= loading_until_) {
    loading_ = false;
    status_.loading_finished(now());
    {
      std::lock_guard lock(codec_->mutex);
      codec_->loading = false;
    }
    std::lock_guard lock(truth_->mutex);
    if (!truth_->loading.empty()) truth_->loading.back().end_us = steady_us();
  }
  if (f.stall_after_s && !stall_fired_ && elapsed >= *f.stall_after_s) {
    stall_fired_ = true;
    {
      std::lock_guard lock(codec_->mutex);
      codec_->stalled = true;
    }
    std::lock_guard lock(truth_->mutex);
    truth_->add_fault("stall", "output stopped " + std::to_string(elapsed) + " s after start");
  }
  if (f.pts_jump_back_after_s && elapsed >= *f.pts_jump_back_after_s) {
    std::lock_guard lock(codec_->mutex);
    codec_->jump_pending = true;
    setup_.faults.pts_jump_back_after_s.reset();  // once
  }
  if (f.crash_after_s && !crash_fired_ && elapsed >= *f.crash_after_s) {
    fire_crash();
    return;
  }
  if (std::chrono::duration<double>(t - last_input_).count() >= setup_.no_input_stop_s) {
    stop("no input for " + std::to_string(static_cast<int>(setup_.no_input_stop_s)) + " s");
    return;
  }
  const Now n = now();
  for (auto& event : status_.take_events(n)) publish_event(event);
  if (t >= status_.next_status_due()) {
    publish_event(wrap_event(status_.status_event(n), "ai_stream_events"));
  }
  if (f.stop_on_error.value_or(true) && status_.should_stop(n)) {
    stop("runner stopped the stream (state " + std::string(to_string(status_.state(n))) + ")");
    return;
  }
  schedule_tick();
}

void RunnerStream::credit(double secs) {
  if (balance_s_ >= 0) balance_s_ += secs;
}

void RunnerStream::stop(const std::string& reason) {
  if (stopped_) return;
  stopped_ = true;
  emit_timer_.cancel();
  tick_timer_.cancel();
  pending_out_.clear();
  status_.stream_stopped(now());
  {
    std::lock_guard lock(codec_->mutex);
    codec_->stalled = true;  // frames still queued on the codec thread are dropped
  }
  {
    std::lock_guard lock(truth_->mutex);
    truth_->ended_us = steady_us();
    truth_->end_reason = reason;
  }
  if (out_writer_) out_writer_->finish();
  if (input_) input_->stop();
  if (control_) control_->stop();
  if (output_) output_->close();
  if (events_) events_->close();
  {
    std::lock_guard lock(truth_->mutex);
    log::info("emulator_stream_ended", {{"manifest_id", setup_.manifest_id},
                                        {"stream_id", setup_.stream_id},
                                        {"reason", reason},
                                        {"input_frames", truth_->input_frames},
                                        {"output_frames", truth_->output_frames},
                                        {"loading_frames", truth_->loading_frames},
                                        {"frames_capped", truth_->frames_capped},
                                        {"output_segments", truth_->output_segments},
                                        {"prompts", truth_->prompts.size()},
                                        {"faults_fired", truth_->fault_log.size()}});
  }
  if (on_stop_) on_stop_(setup_.manifest_id, reason);
}

}  // namespace naap::emulator
