// The measurement timeline of one session (METRICS.md, "Session timeline"): the raw material
// every metric is computed from, and what `--timeline` dumps so any number can be re-derived.
// Every time is microseconds of steady_clock since the session's t0, the moment the (first)
// start request was sent; -1 means "did not happen". PTS are 90 kHz ticks, unwrapped (no 33-bit
// wrap), as the input was sent and as the output came back.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace naap::reports {

using Micros = std::int64_t;  // µs since t0
inline constexpr Micros k_never = -1;

// How a decoded output frame looked (media::classify_frame): AI output, the runner's loading
// overlay, black, or a frame the decoder could not produce (its PES arrived, decoding failed).
enum class FrameKind { real, loading, black, undecodable };
std::string_view to_string(FrameKind kind);

// One request to the orchestrator or the signer outside the trickle channels.
struct RpcCall {
  std::string what;    // "get_orchestrator", "start", "payment", "sign_orchestrator_info", ...
  std::string target;  // URL or host:port
  Micros started = k_never;
  Micros finished = k_never;
  int status = 0;     // HTTP status; gRPC: 0 ok, else the gRPC status code
  std::string error;  // error text or error body, empty on success
};

// One input segment (one POST on the input channel).
struct InputSegment {
  std::int64_t seq = 0;
  Micros opened = k_never;      // POST opened
  Micros first_byte = k_never;  // first body byte handed to the transport
  Micros last_byte = k_never;   // last body byte handed to the transport
  Micros completed = k_never;   // POST answered
  std::uint64_t bytes = 0;
  int status = 0;  // HTTP status of the POST, 0 if none
  int epoch = 0;   // orchestrator epoch (a swap starts a new one)
};

// One input frame as scheduled and sent. due = t0_media + pts (open loop, never slid).
struct InputFrame {
  std::int64_t pts = 0;   // 90 kHz, as sent
  Micros due = k_never;   // when it should have gone out
  Micros sent = k_never;  // when its last byte was handed to the transport
  int epoch = 0;
};

// One output segment (one GET on the output channel).
struct OutputSegment {
  std::int64_t seq = 0;  // Lp-Trickle-Seq
  Micros requested = k_never;
  Micros first_byte = k_never;
  Micros last_byte = k_never;
  std::uint64_t bytes = 0;
  int epoch = 0;
};

// One output frame. `received` is when the TS packet starting its PES (and carrying its PTS)
// arrived; `decoded` when the decoder delivered it (k_never when not decoded: demux-only mode or
// undecodable). decode_delay = decoded - received.
struct OutputFrame {
  std::int64_t pts = 0;  // 90 kHz, as received
  Micros received = k_never;
  Micros decoded = k_never;
  FrameKind kind = FrameKind::real;
  int epoch = 0;
};

// An input frame seen again through our own subscription to the input channel (transport RTT).
struct LoopbackFrame {
  std::int64_t pts = 0;
  Micros received = k_never;  // arrival of the TS packet starting its PES
  int epoch = 0;
};

// One message written on the control channel.
struct ControlMessage {
  Micros written = k_never;  // POST completed (the message is on the server)
  std::string sha256;        // hex SHA-256 of the body
  bool keepalive = false;    // {"keep":"alive"}
  int status = 0;            // HTTP status of the POST
};

// A prompt taking effect. The first prompt of a session is carried by the start request
// (written = 0); later ones by a control message. The effect is the first output frame that
// shows the new prompt (frame probe), or the runner's status naming its params hash.
struct PromptSwitch {
  int index = 0;                     // 0 = the start request's prompt
  std::string prompt;                // the prompt text (or a summary for structured prompts)
  std::string params_hash;           // md5 of json.dumps(params, sort_keys=True)
  Micros written = k_never;          // control write completed (0 for the first)
  Micros effect_received = k_never;  // receipt of the first output frame showing it
  std::int64_t effect_pts = -1;      // its PTS
  std::string detection;             // "pixels", "first_real_frame", "none"
  int epoch = 0;
};

// One event read from the events channel.
struct EventRecord {
  Micros received = k_never;
  std::string type;     // event.type ("status", "error", ...), "" when not JSON
  std::string family;   // queue_event_type, "" for a bare event
  nlohmann::json body;  // the event object as read (wrapper removed); null when not JSON
  int epoch = 0;
};

// A swap trigger (go-livepeer's rules, PROTOCOL.md §5.2), fired or acted on.
struct SwapRecord {
  Micros at = k_never;
  std::string trigger;            // machine name: "output_timeout", "events_timeout", ...
  std::string cause;              // human text, go-livepeer's wording where it has one
  std::string from_orchestrator;  // the orchestrator being left
  std::string to_orchestrator;    // "" when the session ended instead (single mode, no more)
  int epoch = 0;                  // the epoch that ended
};

// One orchestrator epoch: the stretch of a session served by one orchestrator.
struct Epoch {
  std::string orchestrator;             // host:port as given
  std::string url;                      // transcoder URL
  Micros start_request_sent = k_never;  // its start request
  Micros start_response = k_never;      // its start response
  int start_status = 0;                 // HTTP status of the start response, 0 if none
  std::string manifest_id;
};

struct Timeline {
  double input_fps = 0;            // nominal input frame rate
  double runner_fps_cap = 24;      // the runner's input cap: expected frames are counted after it
  std::vector<Epoch> epochs;       // in order; epochs[0].start_request_sent == 0
  Micros input_started = k_never;  // t0_media: due time of the first frame
  Micros input_stopped = k_never;  // when we stopped sending input (end of the measurement window)
  Micros ended = k_never;          // session end (everything closed)
  std::vector<RpcCall> calls;
  std::vector<InputSegment> input_segments;
  std::vector<InputFrame> input_frames;
  std::vector<OutputSegment> output_segments;
  std::vector<OutputFrame> output_frames;
  std::vector<LoopbackFrame> loopback_frames;
  std::vector<ControlMessage> control;
  std::vector<PromptSwitch> prompts;
  std::vector<EventRecord> events;
  std::vector<SwapRecord> swaps;
};

// The timeline as JSON (what --timeline writes): one object with one array per list above;
// frames as compact arrays, documented in docs/results.md.
nlohmann::json to_json(const Timeline& timeline);

}  // namespace naap::reports
