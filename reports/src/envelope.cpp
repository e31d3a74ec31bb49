// Envelope construction, serialization and validation.
#include "naap/reports/envelope.hpp"

#include <charconv>

#include "naap/core/clock.hpp"
#include "naap/core/ids.hpp"

namespace naap::reports {

Envelope make_envelope(std::string type, std::string gateway, nlohmann::json data,
                       std::string key) {
  return Envelope{uuid_v4(),          std::move(type), unix_millis_now(),
                  std::move(gateway), std::move(data), std::move(key)};
}

std::string serialize(const Envelope& e) {
  nlohmann::json j = {{"id", e.id},
                      {"type", e.type},
                      {"timestamp", std::to_string(e.timestamp_ms)},
                      {"gateway", e.gateway},
                      {"data", e.data}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<Envelope> parse_envelope(std::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  auto bad = [&](std::string why) {
    return fail(Error(ErrorCategory::sink, "invalid event envelope: " + why)
                    .with("value", std::string(text.substr(0, 120))));
  };
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  for (const char* field : {"id", "type", "timestamp", "gateway"}) {
    auto it = j.find(field);
    if (it == j.end() || !it->is_string() || it->get<std::string>().empty()) {
      return bad(std::string("missing or empty string field '") + field + "'");
    }
  }
  auto data = j.find("data");
  if (data == j.end() || !(data->is_object() || data->is_array())) {
    return bad("'data' must be a JSON object or array");
  }
  const std::string ts = j["timestamp"].get<std::string>();
  std::int64_t ms = 0;
  auto [ptr, ec] = std::from_chars(ts.data(), ts.data() + ts.size(), ms);
  if (ec != std::errc{} || ptr != ts.data() + ts.size() || ms <= 0) {
    return bad("'timestamp' must be Unix milliseconds as decimal text");
  }
  return Envelope{j["id"].get<std::string>(),
                  j["type"].get<std::string>(),
                  ms,
                  j["gateway"].get<std::string>(),
                  std::move(*data),
                  ""};
}

}  // namespace naap::reports
