// go-livepeer's Kafka event envelope {id, type, timestamp, gateway, data} (EVENTS.md §1).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "naap/core/error.hpp"

namespace naap::reports {

struct Envelope {
  std::string id;                 // UUID v4, unique per event; consumers dedupe by it
  std::string type;               // family: stream_trace, ai_stream_status, ...
  std::int64_t timestamp_ms = 0;  // when the observation was made (Unix ms); kept on resend
  std::string gateway;            // our gateway id, never empty
  nlohmann::json data;            // payload object or array
  std::string key;                // message key: request_id, test_run_id or orchestrator URL
};

// A new envelope with a fresh id, stamped now.
Envelope make_envelope(std::string type, std::string gateway, nlohmann::json data, std::string key);

// The wire form: `timestamp` is decimal text, `data` a JSON value (not a string).
std::string serialize(const Envelope& envelope);

// Parses and checks the wire form (id, type and gateway non-empty strings, timestamp decimal
// text, data an object or array). The key is not part of the value and stays empty.
Result<Envelope> parse_envelope(std::string_view text);

}  // namespace naap::reports
