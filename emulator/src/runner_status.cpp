// ai-runner's status logic replayed on an explicit clock. Sources read (livepeer/ai-runner):
// runner/app/live/process/process_guardian.py (state rules, monitor loop, FPSCounter, restarts),
// runner/app/live/streamer/status.py (schema, params hash), runner/app/live/streamer/streamer.py
// (report loop), runner/src/runner/live/streamer/protocol/trickle.py (event wrapper).
#include "naap/emulator/runner_status.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <utility>

namespace naap::emulator {

namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using TimePoint = std::chrono::steady_clock::time_point;
using Duration = std::chrono::steady_clock::duration;

constexpr seconds k_tick{1};            // guardian evaluation period (asyncio.sleep(1))
constexpr int k_fps_window_ticks = 10;  // FPS_LOG_INTERVAL: fps recomputed every 10 s
// "last_output_time or 0": never having output reads as decades without output.
constexpr Duration k_never = std::chrono::hours(24 * 365 * 50);

constexpr std::string_view k_queue_events = "ai_stream_events";
constexpr std::string_view k_queue_trace = "stream_trace";

double seconds_of(Duration d) {
  return std::chrono::duration<double>(d).count();
}

std::int64_t steady_ms(TimePoint t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}

// Python's float repr (shortest round trip; exponent form below 1e-4 and from 1e16) as
// json.dumps writes it, NaN and infinities included.
void append_python_float(double v, std::string& out) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v < 0 ? "-Infinity" : "Infinity";
    return;
  }
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<std::size_t>(res.ptr - buf));
  bool negative = false;
  if (!sci.empty() && sci.front() == '-') {
    negative = true;
    sci.remove_prefix(1);
  }
  const auto e_pos = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e_pos)) {
    if (c != '.') digits += c;
  }
  int exponent = 0;
  std::string_view exp_text = sci.substr(e_pos + 1);
  if (!exp_text.empty() && exp_text.front() == '+') exp_text.remove_prefix(1);
  std::from_chars(exp_text.data(), exp_text.data() + exp_text.size(), exponent);

  if (negative) out += '-';
  const int n = static_cast<int>(digits.size());
  if (exponent < -4 || exponent >= 16) {
    out += digits[0];
    if (n > 1) {
      out += '.';
      out.append(digits, 1);
    }
    const int magnitude = exponent < 0 ? -exponent : exponent;
    out += exponent < 0 ? "e-" : "e+";
    if (magnitude < 10) out += '0';  // at least two exponent digits, as C's %e
    out += std::to_string(magnitude);
  } else if (exponent < 0) {
    out += "0.";
    out.append(static_cast<std::size_t>(-exponent - 1), '0');
    out += digits;
  } else if (exponent + 1 >= n) {
    out += digits;
    out.append(static_cast<std::size_t>(exponent + 1 - n), '0');
    out += ".0";
  } else {
    out.append(digits, 0, static_cast<std::size_t>(exponent + 1));
    out += '.';
    out.append(digits, static_cast<std::size_t>(exponent + 1));
  }
}

void append_u_escape(unsigned unit, std::string& out) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\u%04x", unit);
  out += buf;
}

// One code point from UTF-8 at s[i]; malformed input reads as U+FFFD (Python strings cannot hold
// it, so there is nothing to match).
char32_t next_code_point(std::string_view s, std::size_t& i) {
  const auto lead = static_cast<unsigned char>(s[i]);
  int length = 0;
  char32_t cp = 0;
  if (lead < 0x80) {
    ++i;
    return lead;
  } else if ((lead & 0xE0) == 0xC0) {
    length = 2;
    cp = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3;
    cp = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4;
    cp = lead & 0x07;
  } else {
    ++i;
    return 0xFFFD;
  }
  if (i + static_cast<std::size_t>(length) > s.size()) {
    ++i;
    return 0xFFFD;
  }
  for (int k = 1; k < length; ++k) {
    const auto c = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
    if ((c & 0xC0) != 0x80) {
      ++i;
      return 0xFFFD;
    }
    cp = (cp << 6) | (c & 0x3F);
  }
  constexpr char32_t k_min_for_length[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < k_min_for_length[length] || cp > 0x10FFFF) {
    ++i;
    return 0xFFFD;
  }
  i += static_cast<std::size_t>(length);
  return cp;
}

// json.dumps' ensure_ascii string encoder (c_encode_basestring_ascii).
void append_python_string(std::string_view s, std::string& out) {
  out += '"';
  std::size_t i = 0;
  while (i < s.size()) {
    const char32_t cp = next_code_point(s, i);
    switch (cp) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (cp >= 0x20 && cp <= 0x7E) {
          out += static_cast<char>(cp);
        } else if (cp < 0x10000) {
          append_u_escape(static_cast<unsigned>(cp), out);
        } else {
          const char32_t v = cp - 0x10000;
          append_u_escape(static_cast<unsigned>(0xD800 | (v >> 10)), out);
          append_u_escape(static_cast<unsigned>(0xDC00 | (v & 0x3FF)), out);
        }
    }
  }
  out += '"';
}

template <typename Json>
void append_python_json(const Json& value, bool sort_keys, std::string& out) {
  switch (value.type()) {
    case nlohmann::json::value_t::null:
      out += "null";
      break;
    case nlohmann::json::value_t::boolean:
      out += value.template get<bool>() ? "true" : "false";
      break;
    case nlohmann::json::value_t::number_integer:
      out += std::to_string(value.template get<std::int64_t>());
      break;
    case nlohmann::json::value_t::number_unsigned:
      out += std::to_string(value.template get<std::uint64_t>());
      break;
    case nlohmann::json::value_t::number_float:
      append_python_float(value.template get<double>(), out);
      break;
    case nlohmann::json::value_t::string:
      append_python_string(value.template get_ref<const std::string&>(), out);
      break;
    case nlohmann::json::value_t::array: {
      out += '[';
      bool first = true;
      for (const auto& element : value) {
        if (!first) out += ", ";
        first = false;
        append_python_json(element, sort_keys, out);
      }
      out += ']';
      break;
    }
    case nlohmann::json::value_t::object: {
      std::vector<std::pair<const std::string*, const Json*>> items;
      items.reserve(value.size());
      for (auto it = value.begin(); it != value.end(); ++it) items.emplace_back(&it.key(), &*it);
      // Python sorts str keys by code point; byte order of UTF-8 is the same order.
      if (sort_keys) {
        std::sort(items.begin(), items.end(),
                  [](const auto& a, const auto& b) { return *a.first < *b.first; });
      }
      out += '{';
      bool first = true;
      for (const auto& [key, element] : items) {
        if (!first) out += ", ";
        first = false;
        append_python_string(*key, out);
        out += ": ";
        append_python_json(*element, sort_keys, out);
      }
      out += '}';
      break;
    }
    case nlohmann::json::value_t::binary:
    case nlohmann::json::value_t::discarded:
      out += "null";
      break;
  }
}

std::string md5_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_md5(), nullptr) != 1) return {};
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    hex += k_hex[digest[i] >> 4];
    hex += k_hex[digest[i] & 0x0F];
  }
  return hex;
}

nlohmann::ordered_json ms_or_null(const auto& stamp) {
  return stamp ? nlohmann::ordered_json(stamp->wall_ms) : nlohmann::ordered_json(nullptr);
}

}  // namespace

std::string_view to_string(RunnerState state) {
  switch (state) {
    case RunnerState::offline:
      return "OFFLINE";
    case RunnerState::loading:
      return "LOADING";
    case RunnerState::online:
      return "ONLINE";
    case RunnerState::degraded_input:
      return "DEGRADED_INPUT";
    case RunnerState::degraded_inference:
      return "DEGRADED_INFERENCE";
    case RunnerState::error:
      return "ERROR";
  }
  return "ERROR";
}

std::string python_json_dumps(const nlohmann::json& value, bool sort_keys) {
  std::string out;
  append_python_json(value, sort_keys, out);
  return out;
}

std::string python_json_dumps(const nlohmann::ordered_json& value, bool sort_keys) {
  std::string out;
  append_python_json(value, sort_keys, out);
  return out;
}

std::string params_hash(const nlohmann::json& params) {
  return md5_hex(python_json_dumps(params, true));
}

std::string params_hash(const nlohmann::ordered_json& params) {
  return md5_hex(python_json_dumps(params, true));
}

nlohmann::ordered_json wrap_event(nlohmann::ordered_json event, std::string_view queue_event_type) {
  nlohmann::ordered_json wrapped;
  wrapped["event"] = std::move(event);
  wrapped["queue_event_type"] = queue_event_type;
  return wrapped;
}

nlohmann::ordered_json stream_trace_event(std::string_view type, std::int64_t timestamp_ms) {
  nlohmann::ordered_json event;
  event["type"] = type;
  event["timestamp"] = timestamp_ms;
  return wrap_event(std::move(event), k_queue_trace);
}

nlohmann::ordered_json error_event(std::string_view pipeline, std::string_view message,
                                   double time_s, std::int64_t timestamp_ms) {
  nlohmann::ordered_json event;
  event["type"] = "error";
  event["pipeline"] = pipeline;
  event["message"] = message;
  event["time"] = time_s;
  event["timestamp"] = timestamp_ms;
  return wrap_event(std::move(event), k_queue_events);
}

nlohmann::ordered_json restart_event(std::string_view pipeline, int restart_count,
                                     double restart_time_s, const std::vector<std::string>& logs,
                                     std::int64_t timestamp_ms) {
  nlohmann::ordered_json event;
  event["type"] = "restart";
  event["pipeline"] = pipeline;
  event["restart_count"] = restart_count;
  event["restart_time"] = restart_time_s;
  event["restart_logs"] = logs;
  event["timestamp"] = timestamp_ms;
  return wrap_event(std::move(event), k_queue_events);
}

RunnerStatus::RunnerStatus(std::string pipeline, RunnerKind kind, RunnerStatusConfig config)
    : pipeline_(std::move(pipeline)), kind_(kind), config_(std::move(config)) {
  config_.fps_phase = std::clamp(config_.fps_phase, seconds(1), seconds(k_fps_window_ticks));
}

RunnerStatus::Stamp RunnerStatus::stamp(TimePoint at) const {
  return Stamp{at, steady_ms(at) + wall_offset_ms_};
}

void RunnerStatus::advance(const Now& now) {
  wall_offset_ms_ = now.wall_ms - steady_ms(now.mono);
  TimePoint t = now.mono;
  if (latest_ && t < *latest_) t = *latest_;
  latest_ = t;
  if (!start_) return;
  while (next_tick_ <= t) {
    ++tick_index_;
    monitor_tick(next_tick_);
    next_tick_ += k_tick;
  }
}

double RunnerStatus::take_fps(FpsCounter& counter, TimePoint at) {
  double fps = 0.0;
  if (counter.frames > 0 && counter.start && at > *counter.start) {
    fps = static_cast<double>(counter.frames) / seconds_of(at - *counter.start);
  }
  // The next window starts now, not at the next frame.
  counter.start = at;
  counter.frames = 0;
  return fps;
}

void RunnerStatus::set_state(RunnerState state, TimePoint at) {
  state_ = state;
  state_time_ = stamp(at);
}

void RunnerStatus::set_params(TimePoint at, nlohmann::ordered_json params) {
  params_hash_ = params_hash(params);
  last_params_ = std::move(params);
  params_time_ = stamp(at);
}

void RunnerStatus::restart_process(TimePoint at, std::vector<std::string> logs) {
  process_alive_ = true;
  process_start_ = at;
  pipeline_ready_ = false;
  loading_since_ = at;
  ready_time_.reset();
  set_state(RunnerState::loading, at);

  // The guardian replaces the whole inference status: only the restart fields survive.
  ++restart_count_;
  const Stamp when = stamp(at);
  restart_time_ = when;
  restart_logs_ = logs;
  last_output_.reset();
  output_fps_ = 0.0;
  params_time_.reset();
  last_params_.reset();
  params_hash_.reset();
  error_time_.reset();
  last_error_.reset();

  if (stream_running_) {
    events_.push_back(restart_event(
        pipeline_, restart_count_, static_cast<double>(when.wall_ms) / 1000.0, logs, when.wall_ms));
  }
}

RunnerStatus::Evaluation RunnerStatus::evaluate(TimePoint at) const {
  if (state_ == RunnerState::error) return {RunnerState::error};  // ERROR is permanent
  if (!process_alive_) return {RunnerState::error};

  // start_time = max(process start, stream start); the latest load is the latest of that, the
  // last params update and the moment the pipeline became ready (or started loading).
  std::optional<TimePoint> start;
  auto take_later = [](std::optional<TimePoint>& acc, std::optional<TimePoint> t) {
    if (t && (!acc || *t > *acc)) acc = t;
  };
  take_later(start, process_start_);
  if (start_) take_later(start, start_->mono);
  std::optional<TimePoint> load = start;
  if (params_time_) take_later(load, params_time_->mono);
  take_later(load, ready_time_);
  take_later(load, loading_since_);
  const TimePoint start_at = start.value_or(at);
  const TimePoint load_at = load.value_or(at);

  const Duration since_input = at - (last_input_ ? last_input_->mono : start_at);
  const Duration since_output = last_output_ ? at - last_output_->mono : k_never;
  // -2 s: the guardian's margin against races between its timestamps.
  const Duration since_load = std::max(Duration::zero(), at - load_at - seconds(2));

  if (!pipeline_ready_) {
    return {since_load > seconds(180) ? RunnerState::error : RunnerState::loading};
  }
  if (!stream_running_) {
    // 3 s of DEGRADED_INPUT grace after the stream ends.
    const bool offline = since_input > seconds(3) || !last_input_;
    return {offline ? RunnerState::offline : RunnerState::degraded_input};
  }
  if (since_input > seconds(60)) {
    // The guardian stops the stream and reports DEGRADED_INPUT while it shuts down.
    return {since_input < seconds(90) ? RunnerState::degraded_input : RunnerState::error, true};
  }
  // Output has not (re)appeared since the last start, update or reload.
  if (!(since_output < since_load)) {
    const seconds error_after = kind_ == RunnerKind::comfyui ? seconds(30) : seconds(10);
    if (since_load < seconds(2)) return {RunnerState::online};
    if (since_input > since_load) return {RunnerState::degraded_input};
    if (since_load < error_after) return {RunnerState::degraded_inference};
    return {RunnerState::error};
  }
  if (since_output > since_input + seconds(1) && since_output > seconds(5)) {
    return {RunnerState::error};  // stopped producing frames while input flows
  }
  const bool recent_error = error_time_ && error_time_->mono > at - seconds(15);
  const bool recent_restart = restart_time_ && restart_time_->mono > at - seconds(60);
  if (recent_error || recent_restart) return {RunnerState::degraded_inference};
  if (since_input > seconds(2) || input_fps_ < 15.0) return {RunnerState::degraded_input};
  if (since_output > seconds(2) || output_fps_ < std::min(10.0, 0.8 * input_fps_)) {
    return {RunnerState::degraded_inference};
  }
  return {RunnerState::online};
}

void RunnerStatus::monitor_tick(TimePoint at) {
  // The guardian polls the pipeline's error queue once a tick; only the latest error counts.
  if (pending_error_) {
    auto [message, when] = std::move(*pending_error_);
    pending_error_.reset();
    error_time_ = when;
    last_error_ = message;
    if (stream_running_) {
      events_.push_back(error_event(pipeline_, message, static_cast<double>(when.wall_ms) / 1000.0,
                                    stamp(at).wall_ms));
    }
  }

  const std::int64_t phase = config_.fps_phase.count();
  if (tick_index_ >= phase && (tick_index_ - phase) % k_fps_window_ticks == 0) {
    input_fps_ = take_fps(input_counter_, at);
    output_fps_ = take_fps(output_counter_, at);
  }

  const Evaluation evaluation = evaluate(at);
  if (evaluation.stop_stream) stop_requested_ = true;
  if (evaluation.state == state_) return;
  if (evaluation.state != RunnerState::error) {
    set_state(evaluation.state, at);
    return;
  }
  // ERROR: stop the stream so the gateway can swap, then restart the process when allowed.
  stop_requested_ = true;
  if (restart_count_ >= 3 || kind_ == RunnerKind::comfyui) {
    set_state(RunnerState::error, at);
    return;
  }
  restart_process(at, config_.restart_logs);
}

void RunnerStatus::stream_started(const Now& now, nlohmann::ordered_json params) {
  advance(now);
  const TimePoint t = *latest_;
  start_ = stamp(t);
  stream_running_ = true;
  stop_requested_ = false;
  last_input_.reset();
  input_fps_ = 0.0;
  input_counter_ = {};
  output_counter_ = {};
  set_params(t, std::move(params));
  set_state(RunnerState::online, t);
  next_tick_ = t + k_tick;
  tick_index_ = 0;
  next_report_ = t + status_interval();
  last_report_ = start_;
}

void RunnerStatus::input_frame(const Now& now) {
  advance(now);
  last_input_ = stamp(*latest_);
  if (!input_counter_.start) {
    input_counter_.start = *latest_;  // the first frame only opens the window
  } else {
    ++input_counter_.frames;
  }
}

void RunnerStatus::output_frame(const Now& now, bool loading_frame) {
  advance(now);
  if (loading_frame) return;
  last_output_ = stamp(*latest_);
  if (!output_counter_.start) {
    output_counter_.start = *latest_;
  } else {
    ++output_counter_.frames;
  }
}

void RunnerStatus::params_updated(const Now& now, nlohmann::ordered_json params,
                                  bool needs_reload) {
  advance(now);
  set_params(*latest_, std::move(params));
  if (needs_reload) {
    pipeline_ready_ = false;
    loading_since_ = *latest_;
    ready_time_.reset();
  }
}

void RunnerStatus::loading_started(const Now& now) {
  advance(now);
  pipeline_ready_ = false;
  loading_since_ = *latest_;
  ready_time_.reset();
}

void RunnerStatus::loading_finished(const Now& now) {
  advance(now);
  pipeline_ready_ = true;
  ready_time_ = *latest_;
}

void RunnerStatus::error(const Now& now, std::string message) {
  advance(now);
  pending_error_.emplace(std::move(message), stamp(*latest_));
  if (!start_) {
    // No guardian loop is replayed before the stream: record the error at once.
    error_time_ = pending_error_->second;
    last_error_ = std::move(pending_error_->first);
    pending_error_.reset();
  }
}

void RunnerStatus::restarted(const Now& now, std::vector<std::string> logs) {
  advance(now);
  restart_process(*latest_, std::move(logs));
}

void RunnerStatus::process_dead(const Now& now) {
  advance(now);
  process_alive_ = false;
}

void RunnerStatus::stream_stopped(const Now& now) {
  advance(now);
  stream_running_ = false;
}

RunnerState RunnerStatus::state(const Now& now) {
  advance(now);
  if (!start_) return evaluate(*latest_).state;
  return state_;
}

bool RunnerStatus::should_stop(const Now& now) {
  advance(now);
  return stop_requested_;
}

std::vector<nlohmann::ordered_json> RunnerStatus::take_events(const Now& now) {
  advance(now);
  return std::exchange(events_, {});
}

std::chrono::steady_clock::time_point RunnerStatus::first_status_due() const {
  return start_ ? start_->mono + status_interval() : TimePoint{};
}

std::chrono::steady_clock::time_point RunnerStatus::next_status_due() const {
  return start_ ? next_report_ : TimePoint{};
}

nlohmann::ordered_json RunnerStatus::status_event(const Now& now) {
  advance(now);
  const TimePoint t = *latest_;
  const Stamp report = stamp(t);

  nlohmann::ordered_json input;
  input["last_input_time"] = ms_or_null(last_input_);
  input["fps"] = input_fps_;

  nlohmann::ordered_json inference;
  inference["last_output_time"] = ms_or_null(last_output_);
  inference["fps"] = output_fps_;
  inference["last_params_update_time"] = ms_or_null(params_time_);
  inference["last_params"] = last_params_ ? *last_params_ : nlohmann::ordered_json(nullptr);
  inference["last_params_hash"] =
      params_hash_ ? nlohmann::ordered_json(*params_hash_) : nlohmann::ordered_json(nullptr);
  inference["last_error_time"] = ms_or_null(error_time_);
  inference["last_error"] =
      last_error_ ? nlohmann::ordered_json(*last_error_) : nlohmann::ordered_json(nullptr);
  inference["last_restart_time"] = ms_or_null(restart_time_);
  inference["last_restart_logs"] =
      restart_logs_ ? nlohmann::ordered_json(*restart_logs_) : nlohmann::ordered_json(nullptr);
  inference["restart_count"] = restart_count_;

  nlohmann::ordered_json event;
  event["type"] = "status";
  event["pipeline"] = pipeline_;
  event["start_time"] = start_ ? start_->wall_ms : std::int64_t{0};
  event["state"] = to_string(state_);
  event["last_state_update_time"] = ms_or_null(state_time_);
  event["input_status"] = std::move(input);
  event["inference_status"] = std::move(inference);
  if (last_report_) {
    if (config_.last_status_timestamp_ms) {
      event["last_status_timestamp"] = last_report_->wall_ms;
    } else {
      event["last_status_timestamp"] = static_cast<double>(last_report_->wall_ms) / 1000.0;
    }
  }
  event["timestamp"] = report.wall_ms;

  // get_status(clear_transient=True): the large fields go out once.
  last_params_.reset();
  restart_logs_.reset();
  last_report_ = report;
  if (start_ && t >= next_report_) {
    next_report_ = t - next_report_ < status_interval() ? next_report_ + status_interval()
                                                        : t + status_interval();
  }
  return event;
}

}  // namespace naap::emulator
