// A remote signer stand-in for tests: plain HTTP on loopback (our trickle server's app handler)
// answering /sign-orchestrator-info, /generate-live-payment and /discover-orchestrators in
// go-livepeer's shapes, with scripted 480/481/482/5xx answers. Lives on the test's io thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <deque>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "naap/transport/base64.hpp"
#include "naap/transport/trickle_server.hpp"
#include "net.pb.h"

namespace naap::test {

class SignerStandin {
 public:
  explicit SignerStandin(boost::asio::io_context& io) {
    trickle::ServerOptions options;
    options.app_handler = [this](const trickle::AppRequest& request) { return handle(request); };
    server_ = std::make_unique<trickle::TrickleServer>(io, options);
  }
  // Call on the io thread.
  void start() { port_ = server_->listen("127.0.0.1", 0).value(); }
  void stop() { server_->stop(); }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  int tickets_per_payment = 1;           // ticket_sender_params in each Payment, count
  std::deque<int> scripted;              // statuses answered before normal service, in order
  std::string orchestrator_url_for_480;  // Livepeer-Orchestrator-URL sent with a 480
  std::vector<nlohmann::json> payment_requests;  // /generate-live-payment bodies received
  int sign_calls = 0;                            // /sign-orchestrator-info requests, count
  std::string last_discover_target;              // request target of the last discovery call
  // What /discover-orchestrators answers (go-livepeer's webhook list shape).
  nlohmann::json discovered =
      nlohmann::json::array({{{"address", "https://o1.example:8935"}, {"score", 0.9}},
                             {{"address", "https://o2.example:8935"}}});
  // Served at /webhook when set, so one stand-in can also play a discovery webhook.
  std::optional<nlohmann::json> webhook_list;

 private:
  static trickle::AppResponse json_reply(unsigned status, const nlohmann::json& body) {
    trickle::AppResponse r;
    r.status = status;
    r.content_type = "application/json";
    r.body = body.dump();
    return r;
  }

  trickle::AppResponse handle(const trickle::AppRequest& request) {
    const std::string_view path = request.path();
    if (path == "/sign-orchestrator-info" && request.method == "POST") {
      ++sign_calls;
      return json_reply(200, {{"address", "0x" + std::string(40, 'a')},
                              {"signature", "0x" + std::string(130, '1')}});
    }
    if (path == "/discover-orchestrators" && request.method == "GET") {
      last_discover_target = request.target;
      return json_reply(200, discovered);
    }
    if (path == "/webhook" && request.method == "GET" && webhook_list) {
      return json_reply(200, *webhook_list);
    }
    if (path != "/generate-live-payment" || request.method != "POST") {
      return json_reply(404, {{"error", "not found"}});
    }
    const nlohmann::json body = nlohmann::json::parse(request.body, nullptr, false);
    payment_requests.push_back(body);
    if (!scripted.empty()) {
      const int status = scripted.front();
      scripted.pop_front();
      auto r = json_reply(static_cast<unsigned>(status), {{"error", "scripted"}});
      if (status == 480 && !orchestrator_url_for_480.empty()) {
        r.headers.emplace_back("Livepeer-Orchestrator-URL", orchestrator_url_for_480);
      }
      return r;
    }
    if (!body.is_object() || !body.value("orchestrator", nlohmann::json()).is_string()) {
      return json_reply(400, {{"error", "missing orchestrator"}});
    }
    auto info_bytes = b64::decode(body["orchestrator"].get<std::string>());
    net::OrchestratorInfo info;
    if (!info_bytes || !info.ParseFromString(*info_bytes)) {
      return json_reply(400, {{"error", "orchestrator is not base64 OrchestratorInfo"}});
    }
    net::Payment payment;
    *payment.mutable_ticket_params() = info.ticket_params();
    payment.set_sender(std::string(20, '\xaa'));
    for (int i = 0; i < tickets_per_payment; ++i) {
      auto* ticket = payment.add_ticket_sender_params();
      ticket->set_sender_nonce(static_cast<std::uint32_t>(++nonce_));
      ticket->set_sig(std::string(65, '\x01'));
    }
    net::SegData seg;
    seg.set_manifestid(body.value("ManifestID", std::string()));
    *seg.mutable_auth_token() = info.auth_token();
    return json_reply(200, {{"payment", b64::encode(payment.SerializeAsString())},
                            {"segCreds", b64::encode(seg.SerializeAsString())},
                            {"state", {{"State", "s" + std::to_string(nonce_)}, {"Sig", "x"}}}});
  }

  std::unique_ptr<trickle::TrickleServer> server_;
  std::uint16_t port_ = 0;
  int nonce_ = 0;
};

}  // namespace naap::test
