// Discovery sources (the scheduler merges them): a webhook that answers go-livepeer's webhook
// discovery list `[{"address": "https://host:port", "score": 0.9}, …]`, and the same list from a
// remote signer's /discover-orchestrators (remote_signer.hpp). Addresses are normalised to
// HOST:PORT, the form every session and record uses.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "naap/core/error.hpp"
#include "naap/transport/http_engine.hpp"

namespace naap::orch {

struct DiscoveredAddress {
  std::string address;          // HOST:PORT
  std::optional<double> score;  // as the source gave it
  std::string source;           // "static", "webhook", "signer"
};

// "https://host:port/", "host:port" or "[v6]:port" → "host:port"; a URL without a port gets
// go-livepeer's default service port 8935. Errors quote the text.
Result<std::string> normalize_orchestrator_address(std::string_view text);

// Parses a discovery list. The body must be a JSON array of objects with a string `address`
// (and an optional numeric `score`); anything else — HTML, a JSON object, a bad address — is a
// protocol error naming `source`, the content type and the first bytes of the body. Entries
// repeated in the list are kept once.
Result<std::vector<DiscoveredAddress>> parse_discovery_list(std::string_view body,
                                                            std::string_view content_type,
                                                            std::string_view source);

// GET `url` (http or https; certificates verified) and parse the list; `done` runs on the
// engine's io thread. A non-200 answer is an error naming the status and the URL.
void fetch_webhook(http::Engine& engine, const std::string& url, std::chrono::milliseconds timeout,
                   std::function<void(Result<std::vector<DiscoveredAddress>>)> done);

}  // namespace naap::orch
