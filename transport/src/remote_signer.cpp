// Remote signer client: /sign-orchestrator-info, /generate-live-payment, /discover-orchestrators.
#include "naap/transport/remote_signer.hpp"

#include <boost/asio/post.hpp>

#include "naap/transport/base64.hpp"

namespace naap::orch {
namespace {

using json = nlohmann::json;

std::string excerpt(std::string_view body, std::size_t max_chars = 200) {
  std::string out;
  for (char c : body.substr(0, max_chars)) {
    out.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? ' ' : c);
  }
  if (body.size() > max_chars) out += "...";
  return out;
}

// Percent-encodes everything outside RFC 3986's unreserved set and '/'.
std::string query_escape(std::string_view text) {
  static const char* k_hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(k_hex[c >> 4]);
      out.push_back(k_hex[c & 15]);
    }
  }
  return out;
}

}  // namespace

struct RemoteSigner::Alive {
  std::vector<std::weak_ptr<http::Transfer>> transfers;  // in flight, cancelled on destruction
};

struct RemoteSigner::Reply {
  int status = 0;              // HTTP status, 0 without a response
  http::Headers headers;       // response headers
  std::string body;            // response body (capped)
  std::optional<Error> error;  // transport failure
  std::string url;             // requested URL
};

Result<std::string> hex_to_bytes(std::string_view hex) {
  const std::string original(hex);
  if (hex.starts_with("0x") || hex.starts_with("0X")) hex.remove_prefix(2);
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) {
    return fail(Error(ErrorCategory::protocol, "odd number of hex digits in '" + original + "'"));
  }
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]);
    const int lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) {
      return fail(Error(ErrorCategory::protocol, "not hex: '" + original + "'")
                      .with("position", std::to_string(i)));
    }
    out.push_back(static_cast<char>((hi << 4) | lo));
  }
  return out;
}

RemoteSigner::RemoteSigner(http::Engine& engine, std::string base_url, http::Headers extra_headers,
                           RemoteSignerOptions options)
    : engine_(engine),
      base_url_(std::move(base_url)),
      extra_headers_(std::move(extra_headers)),
      options_(std::move(options)),
      alive_(std::make_shared<Alive>()) {
  while (!base_url_.empty() && base_url_.back() == '/') base_url_.pop_back();
}

RemoteSigner::~RemoteSigner() {
  auto transfers = std::move(alive_->transfers);
  alive_.reset();  // completions of the cancelled transfers find no signer and stay silent
  for (auto& weak : transfers) {
    if (auto transfer = weak.lock()) transfer->cancel();
  }
}

void RemoteSigner::request(std::string method, std::string path, std::optional<std::string> body,
                           std::function<void(const Reply&)> done) {
  http::Request req;
  req.method = std::move(method);
  req.url = base_url_ + path;
  req.headers = extra_headers_;
  if (body) req.headers.emplace_back("Content-Type", "application/json");
  req.body = std::move(body);
  if (req.method == "POST" && !req.body) req.body = std::string();
  req.connect_timeout = options_.timeout;
  req.total_timeout = options_.timeout;
  req.tls = options_.tls;
  auto reply = std::make_shared<Reply>();
  reply->url = req.url;
  constexpr std::size_t k_keep_bytes = 4 << 20;  // a discovery list can be long
  http::Handlers handlers;
  handlers.on_head = [reply](const http::ResponseHead& head) {
    reply->status = head.status;
    reply->headers = head.headers;
  };
  handlers.on_data = [reply](std::string_view bytes) {
    if (reply->body.size() < k_keep_bytes) {
      reply->body.append(bytes.substr(0, k_keep_bytes - reply->body.size()));
    }
    return http::DataAction::proceed;
  };
  handlers.on_complete = [reply, alive = std::weak_ptr<Alive>(alive_),
                          done = std::move(done)](const http::Outcome& outcome) {
    if (!alive.lock()) return;
    if (!outcome.ok()) {
      reply->error = outcome.error ? *outcome.error
                                   : Error(ErrorCategory::network, "signer request cancelled");
      reply->error->message = "signer " + reply->url + ": " + reply->error->message;
      if (reply->error->get("url").empty()) reply->error->with("url", reply->url);
    }
    done(*reply);
  };
  auto& transfers = alive_->transfers;
  std::erase_if(transfers, [](const std::weak_ptr<http::Transfer>& t) {
    auto locked = t.lock();
    return !locked || locked->done();
  });
  transfers.push_back(engine_.start(std::move(req), std::move(handlers)));
}

namespace {

Error status_error(std::string_view what, int status, std::string_view body, std::string url) {
  return Error(ErrorCategory::payment,
               "signer " + std::string(what) + " answered " + std::to_string(status) + ": " +
                   (body.empty() ? "(empty body)" : excerpt(body)),
               status >= 500)
      .with("url", std::move(url))
      .with("status", std::to_string(status))
      .with("body", excerpt(body));
}

}  // namespace

void RemoteSigner::sign_orchestrator_info(std::function<void(Result<SignerIdentity>)> callback) {
  if (identity_) {
    boost::asio::post(engine_.io(), [alive = std::weak_ptr<Alive>(alive_), identity = *identity_,
                                     callback = std::move(callback)] {
      if (alive.lock()) callback(identity);
    });
    return;
  }
  request("POST", "/sign-orchestrator-info", std::nullopt,
          [this, callback = std::move(callback)](const Reply& reply) {
            if (reply.error) return callback(fail(*reply.error));
            if (reply.status != 200) {
              return callback(fail(
                  status_error("/sign-orchestrator-info", reply.status, reply.body, reply.url)));
            }
            const json parsed = json::parse(reply.body, nullptr, false);
            if (!parsed.is_object() || !parsed.value("address", json()).is_string() ||
                !parsed.value("signature", json()).is_string()) {
              return callback(fail(Error(ErrorCategory::protocol,
                                         "signer /sign-orchestrator-info: expected JSON with "
                                         "string address and signature, got: " +
                                             excerpt(reply.body))
                                       .with("url", reply.url)));
            }
            auto address = hex_to_bytes(parsed["address"].get<std::string>());
            auto signature = hex_to_bytes(parsed["signature"].get<std::string>());
            if (!address) return callback(fail(address.error().with("url", reply.url)));
            if (!signature) return callback(fail(signature.error().with("url", reply.url)));
            identity_ = SignerIdentity{std::move(*address), std::move(*signature)};
            callback(*identity_);
          });
}

void RemoteSigner::generate_live_payment(const net::OrchestratorInfo& info,
                                         const std::string& manifest_id,
                                         std::function<void(PaymentCredentials)> callback,
                                         SignerState state) {
  if (!state) state = state_;
  json body{{"orchestrator", b64::encode(info.SerializeAsString())},
            {"type", "lv2v"},
            {"ManifestID", manifest_id}};
  if (!state->is_null()) body["state"] = *state;
  request(
      "POST", "/generate-live-payment", body.dump(),
      [state, callback = std::move(callback)](const Reply& reply) {
        PaymentCredentials out;
        out.status = reply.status;
        if (reply.error) {
          out.kind = PaymentCredentials::Kind::error;
          out.error = *reply.error;
          return callback(std::move(out));
        }
        switch (reply.status) {
          case 200:
            break;
          case 480:
            out.kind = PaymentCredentials::Kind::refresh_session;
            if (const std::string* url =
                    http::find_header(reply.headers, "Livepeer-Orchestrator-URL")) {
              out.orchestrator_url = *url;
            }
            return callback(std::move(out));
          case 481:
            out.kind = PaymentCredentials::Kind::price_exceeded;
            return callback(std::move(out));
          case 482:
            out.kind = PaymentCredentials::Kind::skip;
            return callback(std::move(out));
          default:
            out.kind = PaymentCredentials::Kind::error;
            out.error = status_error("/generate-live-payment", reply.status, reply.body, reply.url);
            return callback(std::move(out));
        }
        const json parsed = json::parse(reply.body, nullptr, false);
        const bool shaped = parsed.is_object() && parsed.value("segCreds", json()).is_string() &&
                            parsed.value("payment", json("")).is_string();
        if (!shaped || parsed["segCreds"].get<std::string>().empty()) {
          out.kind = PaymentCredentials::Kind::error;
          out.error = Error(ErrorCategory::protocol,
                            "signer /generate-live-payment: expected JSON with payment and "
                            "segCreds strings, got: " +
                                excerpt(reply.body))
                          .with("url", reply.url)
                          .with("status", "200");
          return callback(std::move(out));
        }
        out.kind = PaymentCredentials::Kind::ok;
        out.payment_header = parsed.value("payment", std::string());
        out.segment_header = parsed["segCreds"].get<std::string>();
        if (auto it = parsed.find("state"); it != parsed.end() && !it->is_null()) *state = *it;
        callback(std::move(out));
      });
}

void RemoteSigner::discover_orchestrators(
    const std::string& model_id,
    std::function<void(Result<std::vector<DiscoveredOrchestrator>>)> callback) {
  std::string path = "/discover-orchestrators";
  if (!model_id.empty()) path += "?caps=" + query_escape("live-video-to-video/" + model_id);
  request("GET", path, std::nullopt, [callback = std::move(callback)](const Reply& reply) {
    if (reply.error) return callback(fail(*reply.error));
    if (reply.status != 200) {
      return callback(
          fail(status_error("/discover-orchestrators", reply.status, reply.body, reply.url)));
    }
    const json parsed = json::parse(reply.body, nullptr, false);
    if (!parsed.is_array()) {
      return callback(fail(Error(ErrorCategory::protocol,
                                 "signer /discover-orchestrators: expected a JSON array, got: " +
                                     excerpt(reply.body))
                               .with("url", reply.url)));
    }
    std::vector<DiscoveredOrchestrator> out;
    for (const json& entry : parsed) {
      if (!entry.is_object() || !entry.value("address", json()).is_string()) continue;
      DiscoveredOrchestrator o;
      o.address = entry["address"].get<std::string>();
      if (auto it = entry.find("score"); it != entry.end() && it->is_number()) {
        o.score = it->get<double>();
      }
      if (auto it = entry.find("capabilities"); it != entry.end() && it->is_array()) {
        for (const json& c : *it) {
          if (c.is_string()) o.capabilities.push_back(c.get<std::string>());
        }
      }
      out.push_back(std::move(o));
    }
    callback(std::move(out));
  });
}

PaymentLoop::CredentialsFn RemoteSigner::credentials_fn() {
  return [this, alive = std::weak_ptr<Alive>(alive_)](const net::OrchestratorInfo& info,
                                                      const std::string& manifest_id,
                                                      PaymentLoop::CredentialsDone done) {
    if (!alive.lock()) {
      PaymentCredentials out;
      out.error = Error(ErrorCategory::internal, "remote signer destroyed before the payment loop");
      done(std::move(out));
      return;
    }
    generate_live_payment(info, manifest_id, std::move(done));
  };
}

}  // namespace naap::orch
