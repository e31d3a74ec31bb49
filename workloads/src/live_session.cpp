// LiveSession (see live_session.hpp). One object per session, driven on the engine's io thread;
// decoding runs on the worker pool through OutputPipeline.
#include "naap/workloads/live_session.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cmath>
#include <deque>
#include <unordered_map>

#include "naap/core/clock.hpp"
#include "naap/core/log.hpp"
#include "naap/core/sha256.hpp"
#include "naap/media/probes.hpp"
#include "naap/transport/orchestrator_client.hpp"
#include "naap/transport/remote_signer.hpp"
#include "naap/transport/trickle_json.hpp"
#include "naap/transport/trickle_publisher.hpp"
#include "naap/transport/trickle_subscriber.hpp"
#include "output_pipeline.hpp"

namespace naap::workloads {

namespace asio = boost::asio;
using json = nlohmann::json;
using reports::FrameKind;
using reports::Micros;
using namespace std::chrono_literals;

namespace {

std::string hex_address(std::string_view bytes) {
  if (bytes.empty()) return "";
  static const char* k = "0123456789abcdef";
  std::string out = "0x";
  for (unsigned char c : bytes) {
    out.push_back(k[c >> 4]);
    out.push_back(k[c & 15]);
  }
  return out;
}

std::string credentials_text(const orch::PaymentCredentials& c) {
  using Kind = orch::PaymentCredentials::Kind;
  switch (c.kind) {
    case Kind::ok:
      return "";
    case Kind::error:
      return c.error ? c.error->describe() : "signer error";
    case Kind::refresh_session:
      return "signer asked for a session refresh (480)";
    case Kind::price_exceeded:
      return "price exceeds the signer's maximum (481)";
    case Kind::skip:
      return "signer skipped this payment (482)";
  }
  return "";
}

}  // namespace

int exit_code_for(std::string_view outcome) {
  if (outcome == "ok") return 0;
  if (outcome == "start_failed" || outcome == "auth_or_payment_failed" ||
      outcome == "excused_no_capacity")
    return 3;
  if (outcome == "gateway_error" || outcome == "aborted") return 4;
  return 1;
}

// ---- the session -----------------------------------------------------------------------------

struct LiveSession::Impl : std::enable_shared_from_this<Impl> {
  Impl(SessionServices s, std::shared_ptr<InputSource> in, SessionConfig c, DoneCallback d)
      : services(s),
        engine(s.engine),
        pool(s.pool),
        input(std::move(in)),
        config(std::move(c)),
        on_done(std::move(d)),
        pace_timer(engine.io()),
        tick_timer(engine.io()),
        keepalive_timer(engine.io()),
        prompt_timer(engine.io()),
        stop_timer(engine.io()),
        drain_timer(engine.io()),
        grace_timer(engine.io()) {}

  enum class Phase { idle, connecting, streaming, draining, done };

  // Everything bound to one orchestrator; replaced on a swap.
  struct Epoch {
    int index = 0;               // timeline epoch
    std::string address;         // host:port
    net::OrchestratorInfo info;  // from GetOrchestrator
    orch::JobUrls urls;          // from the start response
    bool priced = false;         // payments needed
    std::shared_ptr<trickle::TricklePublisher> publisher;
    std::shared_ptr<trickle::TrickleSubscriber> output;
    std::shared_ptr<trickle::TrickleSubscriber> loopback;
    std::unique_ptr<trickle::EventsReader> events;
    std::unique_ptr<trickle::ControlWriter> control;
    std::shared_ptr<OutputPipeline> pipeline;
    std::unique_ptr<media::TsDemuxer> loopback_demux;
    std::shared_ptr<orch::PaymentLoop> payments;
    std::string pin;                                           // its certificate's SPKI pin
    Clock::time_point started;                                 // channels opened
    Clock::time_point last_output;                             // last output segment activity
    Clock::time_point last_event;                              // last event read
    Clock::time_point last_events_check;                       // events watchdog
    std::map<std::int64_t, std::size_t> input_segment_index;   // seq → timeline index
    std::map<std::int64_t, std::size_t> output_segment_index;  // seq → timeline index
    std::map<std::int64_t, std::size_t> control_index;         // seq → timeline index
    std::map<std::int64_t, int> control_prompt;                // seq → prompt switch index
    bool any_output_frame = false;                             // any frame at all in this epoch
    bool any_real_frame = false;                               // a real frame in this epoch
    bool any_loading_frame = false;                            // a loading frame in this epoch
    int bad_events_in_row = 0;                                 // consecutive non-JSON events
    std::int64_t last_output_pts = 0;                          // PTS of the last output frame
    bool ingest_signalled = false;                             // first input segment reported
    int output_segments_read = 0;                              // read to their end
  };

  // ---- signals (EVENTS.md §5.2 trigger points) ----

  using Kind = SessionSignal::Kind;

  void signal(Kind kind, const Epoch* about, std::string message = {}, json body = nullptr) {
    std::string address;
    std::string url;
    if (about) {
      address = hex_address(about->info.address());
      if (address.empty()) address = about->address;
      url = about->info.transcoder();
    }
    signal_about(kind, std::move(address), std::move(url), std::move(message), std::move(body));
  }

  void signal_about(Kind kind, std::string address, std::string url, std::string message = {},
                    json body = nullptr) {
    if (!config.on_signal) return;
    SessionSignal s;
    s.kind = kind;
    s.wall_ms = unix_millis_now();
    s.elapsed_ms = std::chrono::duration<double, std::milli>(Clock::now() - began).count();
    s.orchestrator_address = std::move(address);
    s.orchestrator_url = std::move(url);
    s.target = attempt_address;
    s.message = std::move(message);
    s.body = std::move(body);
    config.on_signal(s);
  }

  // ---- lifecycle ----

  void start() {
    t0 = began = Clock::now();
    signal(Kind::stream_request, nullptr);
    result.started_at = std::chrono::system_clock::now();
    result.t0 = t0;
    tl.input_fps = input->fps();
    tl.runner_fps_cap = 24;
    phase = Phase::connecting;
    tick();
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < config.orchestrators.size(); ++i) order.push_back(i);
    if (config.signer_url.empty()) {
      begin_selection(std::move(order));
      return;
    }
    // On-chain: the signer signs our GetOrchestrator requests (fetched once, cached).
    signer = std::make_unique<orch::RemoteSigner>(engine, config.signer_url);
    const auto started = Clock::now();
    signer->sign_orchestrator_info([weak = weak_from_this(), order,
                                    started](Result<orch::SignerIdentity> identity) {
      auto self = weak.lock();
      if (!self || self->phase == Phase::done) return;
      self->record_call({"sign_orchestrator_info", self->config.signer_url}, started, Clock::now(),
                        identity ? 200 : -1, identity ? "" : identity.error().describe());
      if (!identity) {
        self->finish("auth_or_payment_failed",
                     "remote signer " + self->config.signer_url +
                         " /sign-orchestrator-info: " + identity.error().describe());
        return;
      }
      self->signer_identity = std::move(*identity);
      self->begin_selection(order);
    });
  }

  // Calls are kept with steady times and placed on the timeline at the end, since t0 (the
  // first start request) comes after the first GetOrchestrator.
  void record_call(reports::RpcCall call, Clock::time_point started, Clock::time_point finished,
                   int status, std::string error) {
    call.status = status;
    call.error = std::move(error);
    raw_calls.push_back({std::move(call), started, finished});
  }

  // Selection: try the candidates in order until one starts (failures move on, they are not
  // swaps); none left → the session ends with the first failure's outcome.
  void begin_selection(std::vector<std::size_t> order) {
    candidates = std::move(order);
    cursor = 0;
    try_next_candidate();
  }

  void try_next_candidate() {
    if (phase == Phase::done) return;
    if (cursor >= candidates.size()) {
      finish_failed_start();
      return;
    }
    attempt_index = candidates[cursor++];
    attempt_address = config.orchestrators[attempt_index];
    attempt_url.clear();
    attempt_eth.clear();
    probe(attempt_address);
  }

  Micros us(Clock::time_point tp) const {
    return std::chrono::duration_cast<std::chrono::microseconds>(tp - t0).count();
  }
  Micros now_us() const { return us(Clock::now()); }

  // ---- connecting: GetOrchestrator, payment credentials, job start ----

  void probe(const std::string& address) {
    orch::ProbeOptions options;
    options.model_id = config.model_id;
    options.deadline = config.rpc_deadline;
    options.expected_pin = config.certificate_pin;
    options.ignore_capacity_check = false;
    if (signer_identity) {
      options.sender_address = signer_identity->address;
      options.sender_sig = signer_identity->signature;
    }
    const auto started = Clock::now();
    services.probes.get_orchestrator(
        address, options, engine.io().get_executor(),
        [weak = weak_from_this(), address, started](Result<orch::OrchestratorProbe> probe) {
          auto self = weak.lock();
          if (!self || self->phase == Phase::done) return;
          if (!probe) {
            const std::string text = probe.error().describe();
            self->record_call({"get_orchestrator", address}, started, Clock::now(), -1, text);
            const bool capped = orch::is_capped(probe.error());
            // The client's errors name the call and the address.
            self->note_start_failure(capped ? "excused_no_capacity" : "start_failed", text);
            self->try_next_candidate();
            return;
          }
          self->record_call({"get_orchestrator", address}, started, Clock::now(), 0, "");
          self->start_job(address, std::move(*probe));
        });
  }

  void start_job(const std::string& address, orch::OrchestratorProbe probe) {
    OrchestratorSeen seen;
    seen.address = address;
    seen.url = probe.info.transcoder();
    seen.eth_address = hex_address(probe.info.address());
    seen.pin = probe.certificate_pin;
    seen.latency_ms = probe.latency_ms;
    if (auto model = orch::model_info(probe.info, config.model_id)) {
      seen.model = {{"warm", model->warm},
                    {"capacity", model->capacity},
                    {"capacity_in_use", model->capacity_in_use},
                    {"runner_version", model->runner_version}};
      if (model->price) {
        seen.price_per_unit = model->price->priceperunit();
        seen.pixels_per_unit = model->price->pixelsperunit();
      }
    }
    result.orchestrators.push_back(seen);
    attempt_url = seen.url;
    attempt_eth = seen.eth_address;
    auto pending = std::make_shared<Epoch>();
    pending->index = static_cast<int>(tl.epochs.size());
    pending->address = address;
    pending->info = std::move(probe.info);
    pending->priced = orch::is_priced(pending->info);
    pending->pin = probe.certificate_pin;

    if (!config.signer_url.empty()) {
      // The signer makes both headers, and preloads 60 s of payment with the first.
      const auto started = Clock::now();
      signer->generate_live_payment(
          pending->info, "",
          [weak = weak_from_this(), pending, started](orch::PaymentCredentials pay) {
            auto self = weak.lock();
            if (!self || self->phase == Phase::done) return;
            const std::string text = credentials_text(pay);
            self->record_call({"generate_live_payment", self->config.signer_url}, started,
                              Clock::now(), pay.status, text);
            if (pay.kind != orch::PaymentCredentials::Kind::ok) {
              const bool price = pay.kind == orch::PaymentCredentials::Kind::price_exceeded;
              self->note_start_failure(price ? "excused_no_capacity" : "auth_or_payment_failed",
                                       "remote signer: " + text);
              if (price) self->excused_reason = "price";
              self->try_next_candidate();
              return;
            }
            self->send_start(pending, pay.payment_header, pay.segment_header);
          });
      return;
    }
    if (pending->priced)
      log::warn("orchestrator_priced_without_signer",
                {{"orchestrator", address},
                 {"hint", "a priced orchestrator needs --signer; the start will be refused"}});
    send_start(pending, "", orch::segment_credentials(pending->info.auth_token(), ""));
  }

  void send_start(std::shared_ptr<Epoch> pending, const std::string& payment_header,
                  const std::string& segment_header) {
    orch::LiveJobRequest request;
    request.model_id = config.model_id;
    request.params = params_for(0);
    request.gateway_request_id = config.request_id;
    request.stream_id = config.stream_id;
    request.payment_header = payment_header;
    request.segment_header = segment_header;
    request.timeout = config.rpc_deadline;
    // The start goes to the certificate GetOrchestrator saw (pinned on first use).
    request.tls.mode = http::TlsOptions::Mode::pin;
    request.tls.pinned_key = pending->pin;
    reports::Epoch e;
    e.orchestrator = pending->address;
    e.url = pending->info.transcoder();
    e.start_request_sent = tl.epochs.empty() ? 0 : now_us();
    if (tl.epochs.empty()) {
      // t0 is the moment the first start request is sent.
      t0 = Clock::now();
      result.started_at = std::chrono::system_clock::now();
      result.t0 = t0;
    }
    tl.epochs.push_back(e);
    const reports::RpcCall call{"start", pending->info.transcoder() + "/live-video-to-video"};
    const auto started = Clock::now();
    orch::start_live_job(engine, pending->info.transcoder(), request,
                         [weak = weak_from_this(), pending, call, started](orch::LiveJobResult r) {
                           auto self = weak.lock();
                           if (!self || self->phase == Phase::done) return;
                           auto& epoch_record = self->tl.epochs.back();
                           epoch_record.start_response = self->now_us();
                           epoch_record.start_status = r.status;
                           self->record_call(call, started, Clock::now(), r.status,
                                             r.outcome == "ok" ? "" : r.message);
                           if (r.outcome != "ok") {
                             self->note_start_failure(r.outcome, r.message);
                             self->tl.epochs.pop_back();
                             if (self->tl.epochs.empty())
                               self->tl.epochs.push_back(self->failed_epoch(pending, r));
                             self->try_next_candidate();
                             return;
                           }
                           epoch_record.manifest_id = r.urls->manifest_id;
                           pending->urls = *r.urls;
                           self->open_channels(std::move(pending));
                         });
  }

  // A session whose every start failed keeps the first attempt in its timeline.
  reports::Epoch failed_epoch(const std::shared_ptr<Epoch>& pending, const orch::LiveJobResult& r) {
    reports::Epoch e;
    e.orchestrator = pending->address;
    e.url = pending->info.transcoder();
    e.start_request_sent = 0;
    e.start_response = now_us();
    e.start_status = r.status;
    return e;
  }

  void note_start_failure(std::string outcome, std::string message) {
    const std::string outcome_now = outcome;
    // The first failure names the session's outcome unless a later attempt succeeds; an
    // excused refusal (no capacity) loses to a real failure elsewhere in the pool.
    if (start_failure_outcome.empty() || start_failure_outcome == "excused_no_capacity") {
      start_failure_outcome = std::move(outcome);
      start_failure_message = message;
    }
    log::warn("session_start_attempt_failed",
              {{"stream_id", config.stream_id}, {"message", message}});
    // Charged to the orchestrator that failed it (EVENTS.md §5.2): the event names it.
    if (outcome_now != "excused_no_capacity")
      signal_about(Kind::start_failed, attempt_eth.empty() ? attempt_address : attempt_eth,
                   attempt_url.empty() ? "https://" + attempt_address : attempt_url, message);
  }

  void finish_failed_start() {
    if (!tl.swaps.empty()) {
      // A swap found no orchestrator to move to: the trigger that caused it is the outcome.
      finish(swap_outcome, swap_message + "; no other orchestrator could take the stream (" +
                               start_failure_message + ")");
      return;
    }
    if (start_failure_outcome == "excused_no_capacity")
      signal(Kind::no_orchestrators, nullptr, start_failure_message);
    finish(start_failure_outcome.empty() ? "start_failed" : start_failure_outcome,
           start_failure_message.empty() ? "no orchestrator given" : start_failure_message);
  }

  // The full parameter set of prompt step `index` (steps repeat in turn).
  json params_for(std::size_t index) const {
    if (config.prompts.empty()) return config.params.is_object() ? config.params : json::object();
    return config.prompts[index % config.prompts.size()].params;
  }
  std::string prompt_for(std::size_t index) const {
    if (config.prompts.empty()) return "";
    return config.prompts[index % config.prompts.size()].prompt;
  }

  // ---- streaming: the four channels (+ our own input, read back, for transport RTT) ----

  void open_channels(std::shared_ptr<Epoch> next) {
    epoch = std::move(next);
    const int index = epoch->index;
    auto weak = weak_from_this();
    const auto opened = Clock::now();
    epoch->started = epoch->last_output = epoch->last_event = epoch->last_events_check = opened;
    result.manifest_id = epoch->urls.manifest_id;
    current_orchestrator = epoch->address;

    auto fail_setup = [this](const Error& e) {
      trigger("trickle_init_failed", "trickle client initialisation failed: " + e.describe(),
              "stream_lost");
    };

    // Output: one continuous demuxer/decoder over the segments, from seq 0 on a fresh job.
    auto pipeline = OutputPipeline::create(
        pool, config.decode, config.decoder, [weak, index](std::vector<DecodedFrame>&& frames) {
          auto self = weak.lock();
          if (!self) return;
          asio::post(self->engine.io(), [weak, index, frames = std::move(frames)]() mutable {
            if (auto s = weak.lock()) s->on_frames(index, std::move(frames));
          });
        });
    if (!pipeline) {
      finish("gateway_error", "decoder: " + pipeline.error().describe());
      return;
    }
    epoch->pipeline = *pipeline;
    result.decode_backend = epoch->pipeline->backend();

    trickle::SubscriberOptions from_zero;
    from_zero.start_seq = 0;
    trickle::SubscriberCallbacks out;
    out.on_segment_start = [weak, index](const trickle::SegmentHead& head) {
      auto self = weak.lock();
      if (!self || !self->current(index)) return;
      const auto now = Clock::now();
      self->epoch->last_output = now;
      reports::OutputSegment seg;
      seg.seq = head.seq;
      seg.requested = self->us(now) - head.wait_us;
      seg.epoch = index;
      self->epoch->output_segment_index[head.seq] = self->tl.output_segments.size();
      self->tl.output_segments.push_back(seg);
    };
    out.on_data = [weak, index](std::int64_t seq, std::string_view bytes) {
      auto self = weak.lock();
      if (!self || !self->current(index)) return;
      const auto now = Clock::now();
      self->epoch->last_output = now;
      if (auto it = self->epoch->output_segment_index.find(seq);
          it != self->epoch->output_segment_index.end()) {
        auto& seg = self->tl.output_segments[it->second];
        if (seg.first_byte == reports::k_never) seg.first_byte = self->us(now);
        seg.last_byte = self->us(now);
        seg.bytes += bytes.size();
      }
      self->epoch->pipeline->push(std::string(bytes), now);
    };
    out.on_segment_end = [weak, index](const trickle::SegmentEnd& end) {
      auto self = weak.lock();
      if (!self || !self->current(index)) return;
      self->epoch->last_output = Clock::now();
      self->epoch->pipeline->end_segment();
      if (end.complete) {
        const int read = ++self->epoch->output_segments_read;
        if (read == 1) self->signal(Kind::first_processed_segment, self->epoch.get());
        if (read == 3) self->signal(Kind::few_processed_segments, self->epoch.get());
      }
      if (!end.complete && end.error && self->input_recent())
        self->trigger("output_copy_failed",
                      "trickle subscribe error, swapping: " + end.error->describe(),
                      "output_stalled");
    };
    out.on_end = [weak, index](trickle::SubscriberEnd how, const std::optional<Error>& e) {
      auto self = weak.lock();
      if (!self || !self->current(index) || how == trickle::SubscriberEnd::stopped) return;
      // After our stop the orchestrator closes its channels: the output is complete.
      if (self->phase == Phase::draining) return self->finish("ok", "");
      self->on_channel_end("output", std::string(trickle::to_string(how)), e);
    };
    auto output =
        trickle::TrickleSubscriber::create(engine, epoch->urls.subscribe_url, from_zero, out);
    if (!output) return fail_setup(output.error());
    epoch->output = *output;

    // Events: from seq 0 on a fresh job, so the runner's seq-0 trace is not missed.
    trickle::EventsCallbacks ev;
    ev.on_event = [weak, index](const trickle::ChannelEvent& e) {
      auto self = weak.lock();
      if (!self || !self->current(index)) return;
      self->on_event(e);
    };
    ev.on_bad_segment = [weak, index](std::int64_t seq, const Error& e) {
      auto self = weak.lock();
      if (!self || !self->current(index)) return;
      self->on_bad_event(seq, e);
    };
    ev.on_end = [weak, index](trickle::SubscriberEnd how, const std::optional<Error>& e) {
      auto self = weak.lock();
      if (!self || !self->current(index) || how == trickle::SubscriberEnd::stopped) return;
      self->on_channel_end("events", std::string(trickle::to_string(how)), e);
    };
    auto events = trickle::EventsReader::create(engine, epoch->urls.events_url, from_zero, ev);
    if (!events) return fail_setup(events.error());
    epoch->events = std::move(*events);

    // Control: keepalive every 10 s, full params on every prompt switch.
    trickle::PublisherCallbacks ctl;
    ctl.on_segment = [weak, index](const trickle::SegmentOutcome& o) {
      auto self = weak.lock();
      if (!self || !self->current(index)) return;
      self->on_control_done(o);
    };
    ctl.on_end = [weak, index](trickle::PublisherEnd how, const std::optional<Error>& e) {
      auto self = weak.lock();
      if (!self || !self->current(index) || how == trickle::PublisherEnd::closed_by_us) return;
      self->on_channel_end("control", std::string(trickle::to_string(how)), e);
    };
    auto control = trickle::ControlWriter::create(engine, epoch->urls.control_url, {}, ctl);
    if (!control) return fail_setup(control.error());
    epoch->control = std::move(*control);

    // Input: one POST per segment, paced by PTS.
    trickle::PublisherCallbacks pub;
    pub.on_segment = [weak, index](const trickle::SegmentOutcome& o) {
      auto self = weak.lock();
      if (!self || !self->current(index)) return;
      self->on_input_segment_done(o);
    };
    pub.on_end = [weak, index](trickle::PublisherEnd how, const std::optional<Error>& e) {
      auto self = weak.lock();
      if (!self || !self->current(index) || how == trickle::PublisherEnd::closed_by_us) return;
      self->on_channel_end("input", std::string(trickle::to_string(how)), e);
    };
    auto publisher = trickle::TricklePublisher::create(engine, epoch->urls.publish_url, {}, pub);
    if (!publisher) return fail_setup(publisher.error());
    epoch->publisher = *publisher;

    if (config.loopback) open_loopback(index);

    epoch->output->start();
    epoch->events->start();
    epoch->control->start();
    epoch->publisher->start();
    phase = Phase::streaming;

    if (epoch->priced) start_payments();
    schedule_keepalive();
    if (tl.input_started == reports::k_never) {
      // t0_media: frame i is due at t0_media + (pts_i - pts_0), never slid (open loop).
      media_t0 = Clock::now();
      tl.input_started = us(media_t0);
      schedule_prompts();
      stop_timer.expires_at(media_t0 + config.duration);
      stop_timer.async_wait([weak](const boost::system::error_code& ec) {
        if (auto self = weak.lock(); self && !ec) self->stop_input("duration reached");
      });
    } else {
      // After a swap the input resumes on the next segment that is not yet due: frames due
      // while no orchestrator held the stream were never sent (they are not "expected").
      segment.reset();
    }
    send_next();
  }

  void open_loopback(int index) {
    auto weak = weak_from_this();
    epoch->loopback_demux =
        std::make_unique<media::TsDemuxer>([weak, index](media::EncodedFrame&& f) {
          auto self = weak.lock();
          if (!self || !self->current(index)) return;
          self->tl.loopback_frames.push_back({f.pts, self->us(f.arrival), index});
        });
    trickle::SubscriberOptions from_zero;
    from_zero.start_seq = 0;
    trickle::SubscriberCallbacks cb;
    cb.on_data = [weak, index](std::int64_t, std::string_view bytes) {
      auto self = weak.lock();
      if (!self || !self->current(index)) return;
      self->epoch->loopback_demux->push(bytes, Clock::now());
    };
    cb.on_segment_end = [weak, index](const trickle::SegmentEnd&) {
      auto self = weak.lock();
      if (!self || !self->current(index)) return;
      self->epoch->loopback_demux->flush();
    };
    auto sub = trickle::TrickleSubscriber::create(engine, epoch->urls.publish_url, from_zero, cb);
    if (!sub) {
      log::warn("loopback_unavailable", {{"error", sub.error().describe()}});
      return;
    }
    epoch->loopback = *sub;
    epoch->loopback->start();
  }

  bool current(int index) const {
    return epoch && epoch->index == index &&
           (phase == Phase::streaming || phase == Phase::draining);
  }

  // ---- input pacing ----

  void send_next() {
    if (phase != Phase::streaming || !epoch || !epoch->publisher || epoch->publisher->ended())
      return;
    const auto now = Clock::now();
    if (!segment) {
      // Take the next segment whose last frame is still due in the future (after a swap,
      // skip what fell due while the stream had no orchestrator).
      for (;;) {
        auto next = input->next();
        if (!next) {
          finish("gateway_error", "input: " + next.error().describe());
          return;
        }
        media::ClipSegment s = std::move(*next);
        if (s.frames.empty()) continue;
        if (pts0 < 0) pts0 = s.frames.front().pts;
        if (tl.input_frames.empty() || due_of(s.frames.back().pts) >= now) {
          segment = std::move(s);
          break;
        }
      }
      frame_index = 0;
      offset = 0;
    }
    const auto& span = segment->frames[frame_index];
    const auto due = due_of(span.pts);
    if (now < due) {
      pace_timer.expires_at(due);
      pace_timer.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
        if (auto self = weak.lock(); self && !ec) self->send_next();
      });
      return;
    }
    if (frame_index == 0) {
      if (writer) writer->finish();
      // go-livepeer's slow-orchestrator guard: 3 input segments still unanswered.
      if (epoch->publisher->in_flight() >= config.swap.max_in_flight_segments) {
        trigger("orchestrator_slow",
                std::to_string(epoch->publisher->in_flight()) +
                    " input segments in flight: orchestrator is slow",
                "output_stalled");
        return;
      }
      writer = epoch->publisher->next_segment();
      if (!writer) return;  // the publisher ended; on_end reports why
      reports::InputSegment seg;
      seg.seq = writer->seq();
      seg.opened = us(now);
      seg.epoch = epoch->index;
      epoch->input_segment_index[seg.seq] = tl.input_segments.size();
      tl.input_segments.push_back(seg);
    }
    auto& seg_record = tl.input_segments[epoch->input_segment_index[writer->seq()]];
    const auto bytes = std::string_view(segment->bytes).substr(offset, span.end_offset - offset);
    if (seg_record.first_byte == reports::k_never) seg_record.first_byte = us(now);
    writer->write(bytes);
    const auto sent = Clock::now();
    seg_record.last_byte = us(sent);
    tl.input_frames.push_back({span.pts, us(due), us(sent), epoch->index});
    input_due[span.pts] = us(due);
    last_input_sent = sent;
    offset = span.end_offset;
    if (++frame_index == segment->frames.size()) {
      writer->finish();
      segment.reset();
    }
    asio::post(engine.io(), [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->send_next();
    });
  }

  Clock::time_point due_of(std::int64_t pts) const {
    return media_t0 + std::chrono::microseconds((pts - pts0) * 1000 / 90);
  }

  bool input_recent() const {
    return Clock::now() - last_input_sent < config.swap.output_timeout / 2;
  }

  void on_input_segment_done(const trickle::SegmentOutcome& o) {
    auto it = epoch->input_segment_index.find(o.seq);
    if (it == epoch->input_segment_index.end()) return;
    auto& seg = tl.input_segments[it->second];
    seg.completed = now_us();
    seg.bytes = o.bytes;
    seg.status = o.complete ? 200 : 0;
    if (o.complete && !epoch->ingest_signalled) {
      epoch->ingest_signalled = true;
      signal(Kind::first_ingest_segment, epoch.get());
    }
  }

  // ---- output frames, prompt effects ----

  void on_frames(int index, std::vector<DecodedFrame>&& frames) {
    if (!current(index)) return;
    for (auto& f : frames) {
      reports::OutputFrame rec;
      rec.pts = f.pts;
      rec.received = us(f.arrival);
      rec.decoded = f.decoded ? us(*f.decoded) : reports::k_never;
      rec.kind = f.kind;
      rec.epoch = index;
      tl.output_frames.push_back(rec);
      // Output PTS must increase within an epoch (the runner copies input PTS; its encoder
      // drops out-of-order ones). A step back breaks PTS matching from there on.
      if (epoch->any_output_frame && rec.pts <= epoch->last_output_pts) {
        ++result.output_pts_regressions;
        result.output_pts_max_regression_ms =
            std::max(result.output_pts_max_regression_ms,
                     static_cast<double>(epoch->last_output_pts - rec.pts) / 90.0);
      }
      epoch->last_output_pts = rec.pts;
      epoch->any_output_frame = true;
      if (f.kind == FrameKind::loading) epoch->any_loading_frame = true;
      if (f.kind != FrameKind::real) continue;
      recent_real.push_back(f.arrival);
      if (!epoch->any_real_frame) {
        epoch->any_real_frame = true;
        first_real_seen = true;
        // The first prompt (in the start request) takes effect with the first real frame.
        if (index == 0 && !tl.prompts.empty() &&
            tl.prompts[0].effect_received == reports::k_never) {
          tl.prompts[0].effect_received = rec.received;
          tl.prompts[0].effect_pts = rec.pts;
          tl.prompts[0].detection = "first_real_frame";
        }
      }
      if (auto it = input_due.find(f.pts); it != input_due.end())
        last_latency_ms = static_cast<double>(rec.received - it->second) / 1000.0;
      probe_prompt(rec, f.signature);
    }
  }

  // Frames that arrived before a switch was written are its baseline; the first later frame
  // that differs from that baseline shows the new prompt.
  void probe_prompt(const reports::OutputFrame& frame,
                    const std::optional<media::FrameSignature>& signature) {
    if (!signature) return;
    if (pending_switch && frame.received >= tl.prompts[*pending_switch].written &&
        tl.prompts[*pending_switch].written != reports::k_never) {
      if (!detector_armed) {
        detector.arm();
        detector_armed = true;
      }
      if (detector.is_changed(*signature)) {
        auto& p = tl.prompts[*pending_switch];
        p.effect_received = frame.received;
        p.effect_pts = frame.pts;
        p.detection = "pixels";
        pending_switch.reset();
        detector = media::PromptChangeDetector();
        detector_armed = false;
      }
      return;
    }
    detector.observe_baseline(*signature);
  }

  // ---- prompts and control ----

  void schedule_prompts() {
    reports::PromptSwitch first;
    first.index = 0;
    first.prompt = prompt_for(0);
    first.written = 0;
    first.epoch = 0;
    tl.prompts.push_back(first);
    if (config.prompt_interval.count() <= 0 || config.prompts.size() < 2) return;
    arm_prompt_timer();
  }

  void arm_prompt_timer() {
    prompt_timer.expires_after(config.prompt_interval);
    prompt_timer.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (!self || ec || self->phase != Phase::streaming) return;
      // A switch too close to the end could not show before the input stops: not sent.
      const auto left = self->media_t0 + self->config.duration - Clock::now();
      if (left <
          std::max<Clock::duration>(std::chrono::seconds(2), self->config.prompt_interval / 2))
        return;
      self->switch_prompt();
      self->arm_prompt_timer();
    });
  }

  void switch_prompt() {
    if (!epoch || !epoch->control) return;
    if (pending_switch) {
      // The previous switch never showed: it stays without effect; the new one takes over.
      log::info("prompt_switch_without_effect",
                {{"stream_id", config.stream_id}, {"index", *pending_switch}});
    }
    const std::size_t index = tl.prompts.size();
    const json params = params_for(index);
    auto seq = epoch->control->send(params);
    if (!seq) {
      log::warn("prompt_switch_not_sent", {{"error", seq.error().describe()}});
      return;
    }
    reports::PromptSwitch p;
    p.index = static_cast<int>(index);
    p.prompt = prompt_for(index);
    p.epoch = epoch->index;
    tl.prompts.push_back(p);
    record_control(*seq, params, false);
    epoch->control_prompt[*seq] = p.index;
    pending_switch = index;
    detector_armed = false;
  }

  void schedule_keepalive() {
    keepalive_timer.expires_after(config.keepalive_interval);
    keepalive_timer.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (!self || ec || self->phase != Phase::streaming || !self->epoch) return;
      auto seq = self->epoch->control->send_keepalive();
      if (seq) self->record_control(*seq, json{{"keep", "alive"}}, true);
      self->schedule_keepalive();
    });
  }

  void record_control(std::int64_t seq, const json& message, bool keepalive) {
    reports::ControlMessage m;
    m.sha256 = Sha256::hex(message.dump());
    m.keepalive = keepalive;
    epoch->control_index[seq] = tl.control.size();
    tl.control.push_back(m);
    if (!keepalive) signal(Kind::params_update, epoch.get(), "", message);
  }

  void on_control_done(const trickle::SegmentOutcome& o) {
    auto it = epoch->control_index.find(o.seq);
    if (it == epoch->control_index.end()) return;
    auto& m = tl.control[it->second];
    m.written = now_us();
    m.status = o.complete ? 200 : 0;
    if (auto p = epoch->control_prompt.find(o.seq); p != epoch->control_prompt.end())
      tl.prompts[static_cast<std::size_t>(p->second)].written = m.written;
  }

  // ---- events ----

  void on_event(const trickle::ChannelEvent& e) {
    epoch->last_event = Clock::now();
    epoch->bad_events_in_row = 0;
    reports::EventRecord rec;
    rec.received = now_us();
    rec.type = e.type;
    rec.family = e.queue_event_type.value_or("");
    rec.body = e.event;
    rec.epoch = epoch->index;
    if (config.on_signal) {
      json as_read = e.queue_event_type
                         ? json{{"event", e.event}, {"queue_event_type", *e.queue_event_type}}
                         : e.event;
      signal(Kind::runner_event, epoch.get(), "", std::move(as_read));
    }
    if (e.type == "status") {
      const auto& state = e.event.value("state", json());
      if (state.is_string()) {
        runner_state = state.get<std::string>();
        if (runner_state == "ERROR") note_runner_error("the runner reported state ERROR");
      }
    } else if (e.type == "error") {
      const auto& message = e.event.value("message", json());
      note_runner_error("runner error event: " +
                        (message.is_string() ? message.get<std::string>() : e.event.dump()));
    } else if (e.type == "restart") {
      note_runner_error("the runner restarted its pipeline (restart_count " +
                        e.event.value("restart_count", json()).dump() + ")");
    }
    tl.events.push_back(std::move(rec));
  }

  void on_bad_event(std::int64_t seq, const Error& e) {
    epoch->last_event = Clock::now();
    reports::EventRecord rec;
    rec.received = now_us();
    rec.epoch = epoch->index;
    tl.events.push_back(std::move(rec));
    ++bad_events;
    if (++epoch->bad_events_in_row > config.swap.max_bad_events)
      trigger("events_read_errors",
              "more than " + std::to_string(config.swap.max_bad_events) +
                  " consecutive events were not JSON (last: seq " + std::to_string(seq) + ", " +
                  e.describe() + ")",
              "runner_error");
  }

  void note_runner_error(std::string text) {
    if (runner_error_text.empty()) runner_error_text = std::move(text);
  }

  // ---- payments ----

  void start_payments() {
    if (!signer) return;  // off-chain: a priced orchestrator refused the start already
    orch::PaymentLoopOptions options;
    options.interval = config.payment_interval;
    options.tls.mode = http::TlsOptions::Mode::pin;
    options.tls.pinned_key = epoch->pin;
    auto weak = weak_from_this();
    orch::PaymentLoop::Callbacks callbacks;
    callbacks.on_call = [weak](const orch::PaymentCall& c) {
      auto self = weak.lock();
      if (!self) return;
      self->record_call({c.what == "payment" ? "payment" : "payment_" + c.what,
                         self->epoch ? self->epoch->info.transcoder() : ""},
                        c.started, c.finished, c.status, c.error ? c.error->describe() : "");
    };
    callbacks.on_end = [weak](orch::PaymentLoopEnd end, const std::optional<Error>& e) {
      auto self = weak.lock();
      if (!self || self->phase != Phase::streaming) return;
      const bool price = end == orch::PaymentLoopEnd::price_exceeded;
      self->trigger("payment_failed",
                    std::string("payments stopped: ") + orch::to_string(end) +
                        (e ? ": " + e->describe() : ""),
                    price ? "excused_no_capacity" : "auth_or_payment_failed");
    };
    const std::string address = epoch->address;
    auto refresh = [weak, address](orch::PaymentLoop::RefreshDone done) {
      auto self = weak.lock();
      if (!self) return;
      orch::ProbeOptions probe;
      probe.model_id = self->config.model_id;
      probe.deadline = self->config.rpc_deadline;
      probe.ignore_capacity_check = true;
      probe.expected_pin = self->epoch ? self->epoch->pin : "";
      if (self->signer_identity) {
        probe.sender_address = self->signer_identity->address;
        probe.sender_sig = self->signer_identity->signature;
      }
      self->services.probes.get_orchestrator(address, probe, self->engine.io().get_executor(),
                                             [done](Result<orch::OrchestratorProbe> r) {
                                               if (!r) return done(std::unexpected(r.error()));
                                               done(std::move(r->info));
                                             });
    };
    epoch->payments =
        orch::PaymentLoop::create(engine, epoch->info, epoch->urls.manifest_id,
                                  signer->credentials_fn(), refresh, options, callbacks);
    epoch->payments->start();
  }

  // ---- watchdogs (go-livepeer's triggers) ----

  void tick() {
    tick_timer.expires_after(250ms);
    tick_timer.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (!self || ec || self->phase == Phase::done) return;
      self->check_triggers();
      self->tick();
    });
  }

  void check_triggers() {
    if (phase != Phase::streaming || !epoch) return;
    const auto now = Clock::now();
    while (!recent_real.empty() && now - recent_real.front() > 1s) recent_real.pop_front();
    if (now - epoch->last_output > config.swap.output_timeout && input_recent()) {
      trigger("output_timeout",
              "timeout waiting for segments: no output segment for " +
                  std::to_string(config.swap.output_timeout.count() / 1000) + " s",
              epoch->any_real_frame ? "output_stalled"
                                    : (epoch->any_loading_frame ? "loading_only" : "no_output"));
      return;
    }
    if (now - epoch->last_events_check >= config.swap.events_check) {
      epoch->last_events_check = now;
      if (now - epoch->last_event > config.swap.events_timeout) {
        trigger("events_timeout",
                "timeout waiting for events: no event for " +
                    std::to_string(config.swap.events_timeout.count() / 1000) + " s",
                "runner_error");
        return;
      }
    }
    if (!epoch->any_real_frame && now - epoch->started > config.first_frame_timeout) {
      trigger("no_real_output",
              "no real output frame " + std::to_string(config.first_frame_timeout.count() / 1000) +
                  " s after the job started" +
                  (epoch->any_loading_frame ? " (only loading-overlay frames)" : ""),
              epoch->any_loading_frame ? "loading_only" : "no_output");
    }
  }

  void on_channel_end(const std::string& channel, const std::string& how,
                      const std::optional<Error>& error) {
    if (phase != Phase::streaming || channel_end_pending) return;
    std::string text = channel + " channel ended (" + how + ")";
    if (error) text += ": " + error->describe();
    if (channel == "input" && how == "channel_not_found")
      text = "stream no longer exists on orchestrator (input POST got 404)";
    if (channel == "control" && how == "channel_not_found")
      text = "control channel does not exist (keepalive got 404)";
    // An orchestrator closes all four channels at once; the runner's last events (the error
    // that explains the close) may still be in flight on the events channel. Give them a
    // moment before judging, so the outcome names the cause, not the symptom.
    channel_end_pending = true;
    const int index = epoch ? epoch->index : -1;
    grace_timer.expires_after(config.channel_end_grace);
    grace_timer.async_wait([weak = weak_from_this(), name = channel + "_" + how, text,
                            index](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (!self || ec) return;
      self->channel_end_pending = false;
      if (!self->current(index) || self->phase != Phase::streaming) return;
      if (self->runner_error_text.empty())
        self->trigger(name, text, "stream_lost");
      else
        self->trigger(name, self->runner_error_text + " (then the " + text + ")", "runner_error");
    });
  }

  // A trigger fired: swap in pool mode (within go-livepeer's limits), else end the session.
  void trigger(std::string name, std::string cause, std::string outcome) {
    if (phase != Phase::streaming) return;
    log::warn("swap_trigger", {{"stream_id", config.stream_id},
                               {"orchestrator", current_orchestrator},
                               {"trigger", name},
                               {"cause", cause}});
    reports::SwapRecord swap;
    swap.at = now_us();
    swap.trigger = name;
    swap.cause = cause;
    swap.from_orchestrator = current_orchestrator;
    swap.epoch = epoch ? epoch->index : 0;
    if (!runner_error_text.empty() && outcome == "stream_lost") outcome = "runner_error";
    signal(Kind::gateway_error, epoch.get(), cause);
    swap_outcome = outcome;
    swap_message = cause;
    const auto now = Clock::now();
    while (!swap_times.empty() && now - swap_times.front() > config.swap.swap_window)
      swap_times.pop_front();
    const bool pool_mode = config.orchestrators.size() > 1;
    if (!pool_mode || static_cast<int>(swap_times.size()) >= config.swap.max_swaps) {
      if (pool_mode) swap.cause += "; Too many swaps";
      tl.swaps.push_back(swap);
      result.trigger = name;
      finish(outcome, pool_mode ? cause + " (Too many swaps: " +
                                      std::to_string(config.swap.max_swaps) + " within " +
                                      std::to_string(config.swap.swap_window.count() / 1000) + " s)"
                                : cause);
      return;
    }
    swap_times.push_back(now);
    const std::size_t n = config.orchestrators.size();
    swap.to_orchestrator = config.orchestrators[(attempt_index + 1) % n];
    tl.swaps.push_back(swap);
    signal(Kind::swap, epoch.get(), name + ": " + cause);
    result.trigger = name;
    teardown_epoch();
    phase = Phase::connecting;
    start_failure_outcome.clear();
    start_failure_message.clear();
    // go-livepeer re-runs selection without the orchestrator it left: the others, in order.
    std::vector<std::size_t> order;
    for (std::size_t i = 1; i < n; ++i) order.push_back((attempt_index + i) % n);
    begin_selection(std::move(order));
  }

  // ---- stopping ----

  void stop_input(const std::string& why) {
    if (phase != Phase::streaming) return;
    log::info("session_input_stopping", {{"stream_id", config.stream_id}, {"why", why}});
    phase = Phase::draining;
    tl.input_stopped = now_us();
    signal_ingest_closed(why);
    pace_timer.cancel();
    prompt_timer.cancel();
    keepalive_timer.cancel();
    if (writer) writer->finish();
    if (epoch) {
      if (epoch->payments) epoch->payments->stop();
      // go-livepeer's stop: DELETE the input channel, DELETE the control channel.
      if (epoch->publisher) epoch->publisher->close();
      if (epoch->control) epoch->control->close();
    }
    drain_timer.expires_after(config.drain);
    drain_timer.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      if (auto self = weak.lock(); self && !ec) self->finish("ok", "");
    });
  }

  // Once per session, when input had started (go-livepeer closes ingest at the stream's end).
  void signal_ingest_closed(const std::string& why) {
    if (ingest_closed_signalled || tl.input_started == reports::k_never) return;
    ingest_closed_signalled = true;
    signal(Kind::ingest_closed, epoch.get(), why);
  }

  void teardown_epoch() {
    if (!epoch) return;
    pace_timer.cancel();
    if (writer) writer->finish();
    writer.reset();
    segment.reset();
    if (epoch->payments) epoch->payments->stop();
    if (epoch->pipeline) {
      epoch->pipeline->close();
      result.output_segments_corrupt += epoch->pipeline->corrupt_segments();
    }
    if (epoch->output) epoch->output->stop();
    if (epoch->loopback) epoch->loopback->stop();
    if (epoch->events) epoch->events->stop();
    if (epoch->control) epoch->control->close();
    if (epoch->publisher) epoch->publisher->close();
    // The clients finish their DELETEs on their own; they hold themselves while needed.
    retired.push_back(epoch);
    epoch.reset();
    pending_switch.reset();
    detector = media::PromptChangeDetector();
    detector_armed = false;
    // A runner error belongs to the orchestrator that had it: the swap record keeps it.
    runner_error_text.clear();
    runner_state.clear();
    grace_timer.cancel();
    channel_end_pending = false;
  }

  void finish(std::string outcome, std::string message) {
    if (phase == Phase::done) return;
    const bool normal_end = phase == Phase::draining && outcome == "ok";
    if (tl.input_stopped == reports::k_never && tl.input_started != reports::k_never)
      tl.input_stopped = now_us();
    phase = Phase::done;
    for (auto* t : {&pace_timer, &tick_timer, &keepalive_timer, &prompt_timer, &stop_timer,
                    &drain_timer, &grace_timer})
      t->cancel();
    signal_ingest_closed(message);
    const std::string runner_error = runner_error_text;  // teardown forgets the epoch's
    teardown_epoch();
    runner_error_text = runner_error;
    tl.ended = now_us();
    for (auto& [call, started, finished] : raw_calls) {
      call.started = us(started);
      call.finished = us(finished);
      tl.calls.push_back(std::move(call));
    }
    result.ended_at = std::chrono::system_clock::now();
    result.metrics = reports::compute_metrics(tl, config.metrics);
    result.breaches = reports::evaluate_sla(result.metrics, config.sla);
    if (normal_end) classify_normal_end(outcome, message);
    result.outcome = outcome;
    result.message = message;
    result.timeline = std::move(tl);
    log::info("session_ended", {{"stream_id", config.stream_id},
                                {"outcome", result.outcome},
                                {"message", result.message}});
    auto done = std::move(on_done);
    auto out = std::move(result);
    if (done) done(std::move(out));
  }

  // The session ran its course: what it saw decides between ok and the failure categories.
  void classify_normal_end(std::string& outcome, std::string& message) {
    const auto& m = result.metrics;
    if (!runner_error_text.empty()) {
      outcome = "runner_error";
      message = runner_error_text;
      return;
    }
    std::uint64_t real = 0, loading = 0, any = 0, undecodable = 0;
    for (const auto& f : tl.output_frames) {
      ++any;
      if (f.kind == FrameKind::real) ++real;
      if (f.kind == FrameKind::loading) ++loading;
      if (f.kind == FrameKind::undecodable) ++undecodable;
    }
    if (real == 0) {
      if (loading > 0) {
        outcome = "loading_only";
        message = std::to_string(loading) + " output frames, all loading overlays";
      } else {
        outcome = "no_output";
        message = any == 0 ? "no output frame arrived"
                           : std::to_string(any) + " output frames, none decodable as video";
      }
      return;
    }
    if (m.gateway_overloaded) {
      outcome = "gateway_error";
      message = "the gateway sent " + std::to_string(m.frames_late) +
                " input frames late: this machine was overloaded, the result says nothing "
                "about the orchestrator";
      return;
    }
    if (undecodable > 0 || result.output_segments_corrupt > 0) {
      outcome = "degraded";
      message = std::to_string(result.output_segments_corrupt) +
                " output segments were not clean MPEG-TS/H.264 and " + std::to_string(undecodable) +
                " output frames could not be decoded";
    }
    if (result.output_pts_regressions > 0) {
      outcome = "degraded";
      char text[160];
      std::snprintf(text, sizeof text,
                    "output PTS went backwards %llu times (by up to %.0f ms): frames after a "
                    "jump cannot be matched to their input",
                    static_cast<unsigned long long>(result.output_pts_regressions),
                    result.output_pts_max_regression_ms);
      message = message.empty() ? std::string(text) : message + "; " + text;
    }
    if (!result.breaches.empty()) {
      outcome = "degraded";
      std::string text;
      for (const auto& b : result.breaches) {
        if (!text.empty()) text += "; ";
        text += b.message;
      }
      message = message.empty() ? text : message + "; " + text;
    }
  }

  Progress progress() const {
    Progress p;
    p.elapsed_s =
        phase == Phase::idle ? 0 : std::chrono::duration<double>(Clock::now() - t0).count();
    p.fps = static_cast<double>(recent_real.size());
    p.latency_ms = last_latency_ms;
    switch (phase) {
      case Phase::idle:
        p.state = "idle";
        break;
      case Phase::connecting:
        p.state = "connecting";
        break;
      case Phase::streaming:
        p.state = first_real_seen ? "streaming" : "starting";
        break;
      case Phase::draining:
        p.state = "draining";
        break;
      case Phase::done:
        p.state = "done";
        break;
    }
    if (!runner_state.empty()) p.state += " / runner " + runner_state;
    p.orchestrator = current_orchestrator;
    return p;
  }

  SessionServices services;
  http::Engine& engine;
  WorkerPool& pool;
  std::shared_ptr<InputSource> input;
  SessionConfig config;
  DoneCallback on_done;
  asio::steady_timer pace_timer, tick_timer, keepalive_timer, prompt_timer, stop_timer, drain_timer,
      grace_timer;
  bool channel_end_pending = false;      // a channel ended; judged after the grace period
  bool ingest_closed_signalled = false;  // gateway_ingest_stream_closed reported
  Clock::time_point began;               // the session began (stream request)
  std::string attempt_address;           // host:port being tried
  std::string attempt_url;               // its transcoder URL, once GetOrchestrator answered
  std::string attempt_eth;               // its Ethereum address, once known

  Phase phase = Phase::idle;
  Clock::time_point t0;                         // the first start request
  reports::Timeline tl;                         // what we measure
  SessionResult result;                         // filled as we go
  std::shared_ptr<Epoch> epoch;                 // the orchestrator serving now
  std::vector<std::shared_ptr<Epoch>> retired;  // earlier epochs (their clients finish DELETEs)
  std::size_t attempt_index = 0;                // index into orchestrators being tried
  std::string current_orchestrator;             // address serving now
  std::string start_failure_outcome;            // from the first failed start attempt
  std::string start_failure_message;
  std::string excused_reason;                // "capacity" / "price"
  std::string swap_outcome, swap_message;    // the last trigger
  std::deque<Clock::time_point> swap_times;  // recent swaps
  std::vector<std::size_t> candidates;       // selection order
  std::size_t cursor = 0;                    // next candidate to try
  std::vector<std::tuple<reports::RpcCall, Clock::time_point, Clock::time_point>> raw_calls;
  std::unique_ptr<orch::RemoteSigner> signer;           // when a signer URL is configured
  std::optional<orch::SignerIdentity> signer_identity;  // /sign-orchestrator-info

  // input
  Clock::time_point media_t0;                 // due time of the first frame
  std::int64_t pts0 = -1;                     // its PTS
  std::optional<media::ClipSegment> segment;  // being sent
  std::size_t frame_index = 0;                // next frame of `segment`
  std::size_t offset = 0;                     // bytes of `segment` already written
  std::shared_ptr<trickle::SegmentWriter> writer;
  Clock::time_point last_input_sent;
  std::unordered_map<std::int64_t, Micros> input_due;  // pts → due, for the progress line

  // output / prompts / runner
  std::deque<Clock::time_point> recent_real;  // real frames of the last second
  double last_latency_ms = -1;
  bool first_real_seen = false;
  std::optional<std::size_t> pending_switch;  // prompt switch waiting for its effect
  media::PromptChangeDetector detector;
  bool detector_armed = false;
  std::string runner_state;       // last status state
  std::string runner_error_text;  // first runner error seen
  std::uint64_t bad_events = 0;   // non-JSON events
};

// ---- public face -----------------------------------------------------------------------------

std::shared_ptr<LiveSession> LiveSession::create(SessionServices services,
                                                 std::shared_ptr<InputSource> input,
                                                 SessionConfig config, DoneCallback on_done) {
  auto impl =
      std::make_unique<Impl>(services, std::move(input), std::move(config), std::move(on_done));
  return std::shared_ptr<LiveSession>(new LiveSession(std::move(impl)));
}

LiveSession::LiveSession(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

LiveSession::~LiveSession() {
  if (impl_ && impl_->phase != Impl::Phase::done) impl_->finish("aborted", "session destroyed");
}

void LiveSession::start() {
  impl_->start();
}
void LiveSession::abort(std::string reason) {
  impl_->finish("aborted", std::move(reason));
}
Progress LiveSession::progress() const {
  return impl_->progress();
}

}  // namespace naap::workloads
