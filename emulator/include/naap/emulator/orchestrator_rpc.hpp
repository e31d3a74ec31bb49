// The emulated orchestrator's gRPC side: net.Orchestrator/GetOrchestrator and Ping as an
// OFF-CHAIN go-livepeer orchestrator answers them (PROTOCOL.md §2), with auth tokens, prices,
// live capacity per model and injectable faults.
//
// Errors: the refusals go-livepeer makes in GetOrchestrator are plain Go errors, which grpc-go
// sends as status UNKNOWN with the error text as message. We answer the same way (UNKNOWN,
// message starting "Invalid orchestrator request"), so a gateway that classifies real
// orchestrators by message text classifies the emulator identically.
#pragma once

#include <grpcpp/server.h>
#include <grpcpp/support/status.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "naap/core/error.hpp"
#include "naap/transport/tls_identity.hpp"
#include "net.grpc.pb.h"

namespace naap::emulator {

// go-livepeer core/capabilities.go: live video-to-video.
inline constexpr std::uint32_t k_capability_live_video_to_video = 35;
// HardwareInformation.pipeline for capability 35.
inline constexpr std::string_view k_live_pipeline = "live-video-to-video";
// go-livepeer's message when no requested model has an idle runner (server/rpc.go).
inline constexpr std::string_view k_capped_message =
    "Invalid orchestrator request: OrchestratorCapped";
// Prefix of every GetOrchestrator refusal (status UNKNOWN, see the file comment).
inline constexpr std::string_view k_invalid_request_prefix = "Invalid orchestrator request";

// One model the orchestrator serves for capability 35.
struct ModelOffer {
  std::string model_id;                   // pipeline name, e.g. "streamdiffusion"
  bool warm = true;                       // loaded (ModelConstraint.warm)
  std::uint32_t capacity = 4;             // runner slots in total (idle + in use), count
  std::int64_t price_per_unit = 0;        // wei per pixels_per_unit; 0 = free
  std::int64_t pixels_per_unit = 1;       // pixels
  std::string runner_version = "0.14.1";  // ai-runner version (ModelConstraint.runnerVersion)
};

// One GPU listed in OrchestratorInfo.hardware.
struct GpuOffer {
  std::string id;                                // GPU id, the gpu_info map key (e.g. "0")
  std::string name = "NVIDIA GeForce RTX 4090";  // product name
  std::uint32_t major = 8;                       // compute capability major, number
  std::uint32_t minor = 9;                       // compute capability minor, number
  std::int64_t memory_total = 24LL << 30;        // bytes
  std::int64_t memory_free = 20LL << 30;         // bytes
};

// Faults injected into GetOrchestrator (not Ping).
struct RpcFaults {
  bool hang = false;  // never answer; the client's deadline (or server shutdown) ends the call
  std::optional<grpc::StatusCode> fail_code;  // answer this status instead of the info
  std::string fail_message;                   // message sent with fail_code (text)
};

struct OrchestratorConfig {
  std::string transcoder_url;      // OrchestratorInfo.transcoder, e.g. "https://h:8935"
  std::string eth_address_hex;     // 20 bytes as 40 hex digits ("0x" optional); random if empty
  std::vector<ModelOffer> models;  // capability-35 models offered
  std::vector<GpuOffer> gpus;      // listed under every model in hardware
  std::chrono::seconds token_ttl{1800};  // auth token lifetime, seconds
  std::vector<std::string> nodes;        // OrchestratorInfo.nodes, URIs
  RpcFaults faults;                      // injected failures

  // Priced when any model has a non-zero price: price_info and ticket_params are then sent.
  bool priced() const;
};

// One issued auth token (the fields of net.AuthToken).
struct AuthTokenData {
  std::string token;        // 32 random bytes (binary)
  std::string session_id;   // 32 hex digits
  std::int64_t expiration;  // unix seconds
};

// Auth tokens issued by GetOrchestrator, checked later by the job-start and payment routes.
// Thread-safe. Expired tokens are remembered for one more TTL (so they read "expired"), then
// forgotten ("unknown"); at most k_max_tokens are kept, dropping those that expire first.
class AuthTokens {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;
  enum class TokenCheck { valid, expired, unknown };
  static constexpr std::size_t k_max_tokens = 100'000;  // count

  // An empty clock means std::chrono::system_clock::now.
  explicit AuthTokens(std::chrono::seconds ttl = std::chrono::seconds(1800), Clock clock = {});

  AuthTokenData issue();  // at the injected clock's now
  AuthTokenData issue(std::chrono::system_clock::time_point now);
  TokenCheck check(std::string_view token_bytes) const;  // at the injected clock's now
  TokenCheck check(std::string_view token_bytes, std::chrono::system_clock::time_point now) const;

  void set_ttl(std::chrono::seconds ttl);
  std::chrono::system_clock::time_point now() const;
  std::size_t size() const;  // tokens remembered, count

 private:
  void prune_locked(std::int64_t now_s);

  mutable std::mutex mutex_;
  std::chrono::seconds ttl_;                                // guarded by mutex_
  Clock clock_;                                             // set once
  std::unordered_map<std::string, std::int64_t> expiry_s_;  // token -> expiration, unix s
  std::multimap<std::int64_t, std::string> by_expiry_;      // expiration (unix s) -> token
};

const char* to_string(AuthTokens::TokenCheck check);

// Busy runner slots of a model right now (the emulator counts running streams), count.
using InUseFn = std::function<std::uint32_t(const std::string& model_id)>;

class OrchestratorService final : public net::Orchestrator::Service {
 public:
  // Throws std::invalid_argument on a malformed eth_address_hex (start-up boundary).
  // An empty in_use means nothing is in use; an empty clock means system_clock::now.
  explicit OrchestratorService(OrchestratorConfig config, InUseFn in_use = {},
                               AuthTokens::Clock clock = {});
  ~OrchestratorService() override;

  grpc::Status GetOrchestrator(grpc::ServerContext* context,
                               const net::OrchestratorRequest* request,
                               net::OrchestratorInfo* response) override;
  grpc::Status Ping(grpc::ServerContext* context, const net::PingPong* request,
                    net::PingPong* response) override;

  // The GetOrchestrator answer without faults and without counting a call; the emulator's
  // /payment route uses it for PaymentResult.info. Refusals as a status (UNKNOWN, see above).
  std::expected<net::OrchestratorInfo, grpc::Status> build_info(
      const net::OrchestratorRequest& request);

  // Swaps the configuration for later calls; a bad eth_address_hex leaves the old one in place.
  Result<void> set_config(OrchestratorConfig config);
  OrchestratorConfig config() const;
  void set_in_use(InUseFn in_use);
  // The 20 address bytes answered in OrchestratorInfo.address.
  std::string address() const;

  AuthTokens& tokens() { return tokens_; }
  // GetOrchestrator calls received, faulted ones included, count.
  std::uint64_t calls() const { return calls_.load(); }
  // Ends hung calls now and makes later hang faults return at once (RpcServer::shutdown).
  void stop();

 private:
  struct State {
    OrchestratorConfig config;  // as given
    std::string address;        // 20 bytes
  };
  std::shared_ptr<const State> state() const;
  grpc::Status hang(grpc::ServerContext* context);

  mutable std::mutex mutex_;
  std::shared_ptr<const State> state_;  // guarded by mutex_; replaced whole by set_config
  InUseFn in_use_;                      // guarded by mutex_
  AuthTokens tokens_;
  std::atomic<std::uint64_t> calls_{0};
  bool stopping_ = false;            // guarded by mutex_
  std::condition_variable stop_cv_;  // wakes hung calls on stop()
};

// A grpc::Server for one OrchestratorService, reached over its own TLS port and/or through
// plaintext sockets handed over by a listener that terminates TLS itself (ALPN "h2").
class RpcServer {
 public:
  explicit RpcServer(std::shared_ptr<OrchestratorService> service);
  ~RpcServer();  // shutdown with a 1 s grace period
  RpcServer(const RpcServer&) = delete;
  RpcServer& operator=(const RpcServer&) = delete;

  // Builds and starts the server listening with TLS on address:port (port 0 = ephemeral);
  // returns the bound port. Must come before any adopt(): gRPC fixes ports at start.
  Result<std::uint16_t> listen_tls(const std::string& address, std::uint16_t port,
                                   const tls::Identity& identity);
  // Serves gRPC (plaintext HTTP/2) on an already-connected socket, taking ownership of fd.
  // Starts the server without listening ports on first use. The fd is closed on failure.
  void adopt(int fd);
  // Ends hung calls, then stops; calls still running at the deadline are cancelled.
  void shutdown(std::chrono::system_clock::time_point deadline);

  bool running() const;
  OrchestratorService& service() { return *service_; }

 private:
  Result<void> start_locked(const std::string& listen_address,
                            const std::shared_ptr<grpc::ServerCredentials>& credentials,
                            int* bound_port);

  mutable std::mutex mutex_;
  std::shared_ptr<OrchestratorService> service_;
  std::unique_ptr<grpc::Server> server_;  // guarded by mutex_; null until started
  bool shut_down_ = false;                // guarded by mutex_
};

}  // namespace naap::emulator
