// Client of a go-livepeer remote signer (PROTOCOL.md §4.5): the gateway's signed identity for
// GetOrchestrator, per-job payment credentials for lv2v, and the signer's orchestrator list.
// io-thread only (http::Engine rules); callbacks run there and never after the signer is gone.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "naap/core/error.hpp"
#include "naap/transport/http_engine.hpp"
#include "naap/transport/orchestrator_client.hpp"
#include "net.pb.h"

namespace naap::orch {

// OrchestratorRequest.address / sig as the signer gives them (hex decoded to bytes).
struct SignerIdentity {
  std::string address;    // 20 bytes
  std::string signature;  // bytes (65 for an EIP-191 signature)
};

// One entry of GET /discover-orchestrators.
struct DiscoveredOrchestrator {
  std::string address;                    // "https://host:port"
  std::optional<double> score;            // optional ranking from the signer
  std::vector<std::string> capabilities;  // "<pipeline>/<model>" strings, when sent
};

struct RemoteSignerOptions {
  std::chrono::milliseconds timeout{5000};                                // each request
  http::TlsOptions tls{http::TlsOptions::Mode::verify, nullptr, "", ""};  // signer certificate
};

// The signer's opaque per-job payment state ({"State": ..., "Sig": ...}), null before the first
// payment. Shared so a caller can keep one per job on one RemoteSigner.
using SignerState = std::shared_ptr<nlohmann::json>;

class RemoteSigner {
 public:
  RemoteSigner(http::Engine& engine, std::string base_url, http::Headers extra_headers = {},
               RemoteSignerOptions options = {});
  ~RemoteSigner();  // cancels requests in flight without calling back
  RemoteSigner(const RemoteSigner&) = delete;
  RemoteSigner& operator=(const RemoteSigner&) = delete;

  // POST /sign-orchestrator-info; the first success is cached and answered at once afterwards.
  void sign_orchestrator_info(std::function<void(Result<SignerIdentity>)> callback);

  // POST /generate-live-payment for an lv2v job. manifest_id is empty for the start request and
  // the job's mid afterwards. `state` defaults to this signer's own (one job per signer); the
  // state the signer returns replaces it. 480/481/482 map to refresh_session/price_exceeded/skip.
  void generate_live_payment(const net::OrchestratorInfo& info, const std::string& manifest_id,
                             std::function<void(PaymentCredentials)> callback,
                             SignerState state = nullptr);

  // GET /discover-orchestrators?caps=live-video-to-video/<model> (no caps when model is empty).
  void discover_orchestrators(
      const std::string& model_id,
      std::function<void(Result<std::vector<DiscoveredOrchestrator>>)> callback);

  // A PaymentLoop credential source that calls generate_live_payment with this signer's state.
  // The signer must outlive the loop (or the loop be stopped first).
  PaymentLoop::CredentialsFn credentials_fn();

  const std::string& base_url() const { return base_url_; }
  SignerState state() const { return state_; }
  void reset_state() { *state_ = nullptr; }

 private:
  struct Reply;
  struct Alive;
  void request(std::string method, std::string path, std::optional<std::string> body,
               std::function<void(const Reply&)> done);

  http::Engine& engine_;
  std::string base_url_;         // without a trailing '/'
  http::Headers extra_headers_;  // added to every request
  RemoteSignerOptions options_;
  std::optional<SignerIdentity> identity_;                  // cached sign-orchestrator-info answer
  SignerState state_ = std::make_shared<nlohmann::json>();  // this signer's payment state
  std::shared_ptr<Alive> alive_;  // callbacks hold it weakly: none run after destruction
};

// Hex ("0x" optional, either case) to bytes; errors name the offending text (category protocol).
Result<std::string> hex_to_bytes(std::string_view hex);

}  // namespace naap::orch
