// Discovery sources (see discovery.hpp).
#include "naap/transport/discovery.hpp"

#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "naap/transport/orchestrator_client.hpp"

namespace naap::orch {

namespace {

using json = nlohmann::json;

std::string first_bytes(std::string_view body) {
  std::string out(body.substr(0, 120));
  for (char& c : out)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  return body.size() > 120 ? out + "…" : out;
}

}  // namespace

Result<std::string> normalize_orchestrator_address(std::string_view text) {
  std::string s(text);
  while (!s.empty() && s.back() == '/') s.pop_back();
  // A URL without an explicit port: go-livepeer's default service port.
  for (std::string_view scheme : {"https://", "http://"}) {
    if (s.starts_with(scheme)) {
      const std::string rest = s.substr(scheme.size());
      const bool bracketed = rest.starts_with('[');
      const auto colon = rest.rfind(':');
      const bool has_port = colon != std::string::npos && (!bracketed || colon > rest.find(']'));
      if (!has_port && !rest.empty() && rest.find('/') == std::string::npos)
        s = "https://" + rest + ":8935";
      else if (scheme == "http://")
        s = "https://" + rest;
    }
  }
  auto address = parse_address(s);
  if (!address) return fail(address.error());
  return address->host_port();
}

Result<std::vector<DiscoveredAddress>> parse_discovery_list(std::string_view body,
                                                            std::string_view content_type,
                                                            std::string_view source) {
  auto bad = [&](const std::string& why) {
    return fail(Error(ErrorCategory::protocol, std::string(source) + ": " + why +
                                                   " (Content-Type '" + std::string(content_type) +
                                                   "', body starts: " + first_bytes(body) + ")")
                    .with("source", std::string(source)));
  };
  const json parsed = json::parse(body, nullptr, false);
  if (parsed.is_discarded())
    return bad(body.find('<') != std::string_view::npos
                   ? "expected a JSON array of {address, score}, got HTML or other markup"
                   : "expected a JSON array of {address, score}, got text that is not JSON");
  if (!parsed.is_array())
    return bad("expected a JSON array of {address, score}, got a JSON " +
               std::string(parsed.type_name()));
  std::vector<DiscoveredAddress> out;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < parsed.size(); ++i) {
    const json& entry = parsed[i];
    const std::string where = "entry " + std::to_string(i);
    if (!entry.is_object() || !entry.contains("address") || !entry["address"].is_string())
      return bad(where + " has no string 'address'");
    auto address = normalize_orchestrator_address(entry["address"].get<std::string>());
    if (!address) return bad(where + ": " + address.error().message);
    DiscoveredAddress d;
    d.address = *address;
    d.source = std::string(source);
    if (entry.contains("score")) {
      if (!entry["score"].is_number()) return bad(where + ": 'score' is not a number");
      d.score = entry["score"].get<double>();
    }
    if (seen.insert(d.address).second) out.push_back(std::move(d));
  }
  return out;
}

void fetch_webhook(http::Engine& engine, const std::string& url, std::chrono::milliseconds timeout,
                   std::function<void(Result<std::vector<DiscoveredAddress>>)> done) {
  struct Reply {
    int status = 0;
    std::string content_type;
    std::string body;
  };
  constexpr std::size_t k_max_body = 4 << 20;
  auto reply = std::make_shared<Reply>();
  http::Request request;
  request.url = url;
  request.connect_timeout = timeout;
  request.total_timeout = timeout;
  request.tls.mode = http::TlsOptions::Mode::verify;
  http::Handlers handlers;
  handlers.on_head = [reply](const http::ResponseHead& head) {
    reply->status = head.status;
    if (const std::string* type = head.header("Content-Type")) reply->content_type = *type;
  };
  handlers.on_data = [reply](std::string_view bytes) {
    if (reply->body.size() < k_max_body)
      reply->body.append(bytes.substr(0, k_max_body - reply->body.size()));
    return http::DataAction::proceed;
  };
  handlers.on_complete = [reply, url, done = std::move(done)](const http::Outcome& outcome) {
    const std::string source = "discovery webhook " + url;
    if (!outcome.ok()) {
      Error e = outcome.error ? *outcome.error : Error(ErrorCategory::network, "request cancelled");
      e.message = source + ": " + e.message;
      return done(fail(e.with("url", url)));
    }
    if (reply->status != 200)
      return done(fail(Error(ErrorCategory::protocol, source + " answered HTTP " +
                                                          std::to_string(reply->status) + ": " +
                                                          first_bytes(reply->body))
                           .with("url", url)));
    done(parse_discovery_list(reply->body, reply->content_type, source));
  };
  engine.start(std::move(request), std::move(handlers));
}

}  // namespace naap::orch
