// The gateway side of an orchestrator (PROTOCOL.md §2–§4): GetOrchestrator over gRPC+TLS with
// the certificate pinned on first use, the off-chain credentials, POST /live-video-to-video with
// its outcome classified, POST /payment, and the loop that keeps a priced job paid.
//
// Threading: get_orchestrator() blocks (at most its deadline) and may be called from any thread
// except an event loop's; OrchestratorClient runs it on worker threads for loop code. Everything
// that takes an http::Engine follows the engine's rules: call on its io thread, callbacks arrive
// there.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "naap/core/clock.hpp"
#include "naap/core/error.hpp"
#include "naap/transport/http_engine.hpp"
#include "net.pb.h"

namespace naap::orch {

// go-livepeer core/capabilities.go: live video-to-video.
inline constexpr std::uint32_t k_capability_live_video_to_video = 35;
// Lifetime of an auth token (PROTOCOL.md §2.1), seconds.
inline constexpr std::int64_t k_auth_token_lifetime_s = 30 * 60;

// ---- address --------------------------------------------------------------------------------

// Where an orchestrator listens for gRPC and HTTPS (one port).
struct Address {
  std::string host;        // name or IP literal, IPv6 without brackets
  std::uint16_t port = 0;  // TCP port
  // "host:port", with brackets around an IPv6 literal (what gRPC dials).
  std::string host_port() const;
  // "https://host:port".
  std::string url() const;
};

// Accepts "host:port", "https://host:port" (a trailing '/' is allowed) and "[v6]:port".
// Errors (category config) quote the text and say what is wrong with it.
Result<Address> parse_address(std::string_view text);

// ---- GetOrchestrator ------------------------------------------------------------------------

struct ProbeOptions {
  std::string model_id;                      // asked for under capability 35; empty = none
  std::chrono::milliseconds deadline{5000};  // whole call: TCP connect, TLS, gRPC, answer
  // SPKI pin the certificate must have, "sha256//<base64>" or the bare base64; empty trusts the
  // certificate seen now (pin on first use; OrchestratorProbe::certificate_pin returns it).
  std::string expected_pin;
  bool ignore_capacity_check = false;  // OrchestratorRequest.ignoreCapacityCheck (session refresh)
  std::string sender_address;          // OrchestratorRequest.address, 20 bytes; empty off-chain
  std::string sender_sig;              // OrchestratorRequest.sig, bytes; empty off-chain
};

struct OrchestratorProbe {
  net::OrchestratorInfo info;   // the answer
  double latency_ms = 0;        // whole call, certificate fetch and dial included, ms
  double rpc_ms = 0;            // the gRPC part (dial + TLS + call), ms
  std::string certificate_pin;  // "sha256//<base64 SPKI SHA-256>" of the certificate served
  std::string certificate_pem;  // that certificate (PEM)
};

// The OrchestratorRequest sent for `options` (capacities[35] = 1, the model constraint, bit 35).
net::OrchestratorRequest make_orchestrator_request(const ProbeOptions& options);

// Blocking GetOrchestrator. Fetches the server certificate with a TLS handshake of its own
// (SNI = host, no verification), checks it against options.expected_pin, then calls gRPC over a
// fresh channel that trusts exactly that certificate. All of it is bounded by options.deadline.
// Errors carry context address, elapsed_ms and, for gRPC failures, grpc_code (name) and
// grpc_message; categories: config (bad address), network (connect, reset, deadline), tls
// (handshake, pin mismatch: context expected_pin and actual_pin), orchestrator (a refusal, e.g.
// OrchestratorCapped, see is_capped), protocol (other gRPC failures).
Result<OrchestratorProbe> get_orchestrator(std::string_view address, const ProbeOptions& options);

// True when the orchestrator refused because no requested model has an idle runner
// ("Invalid orchestrator request: OrchestratorCapped"); such errors also carry capped=true.
bool is_capped(const Error& error);

// Runs get_orchestrator on a few worker threads so event-loop code never blocks. Completions are
// posted to the executor given with each call. Destroying the client drops queued probes without
// calling back and waits for running ones (each bounded by its deadline); completions of those
// still reach the executor, so destroy the client before the executor's io_context.
class OrchestratorClient {
 public:
  using ProbeCallback = std::function<void(Result<OrchestratorProbe>)>;

  explicit OrchestratorClient(std::size_t threads = 2);
  ~OrchestratorClient();
  OrchestratorClient(const OrchestratorClient&) = delete;
  OrchestratorClient& operator=(const OrchestratorClient&) = delete;

  void get_orchestrator(std::string address, ProbeOptions options,
                        boost::asio::any_io_executor executor, ProbeCallback callback);

  std::size_t queued() const;  // probes waiting for a worker, count

 private:
  struct Job {
    std::string address;
    ProbeOptions options;
    boost::asio::any_io_executor executor;
    ProbeCallback callback;
  };
  void work();

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> jobs_;   // guarded by mutex_
  bool stopping_ = false;  // guarded by mutex_
  std::vector<std::thread> threads_;
};

// ---- reading an OrchestratorInfo ------------------------------------------------------------

// What the orchestrator says about one capability-35 model.
struct ModelInfo {
  bool warm = false;                    // loaded (ModelConstraint.warm)
  std::uint32_t capacity = 0;           // idle runner containers, count
  std::uint32_t capacity_in_use = 0;    // busy runner containers, count
  std::string runner_version;           // ModelConstraint.runnerVersion
  std::optional<net::PriceInfo> price;  // price_info when it is for this model (or carries no
                                        // constraint), else the capabilities_prices entry
};

// The model's entry, or nullopt when the orchestrator does not offer it.
std::optional<ModelInfo> model_info(const net::OrchestratorInfo& info, std::string_view model_id);

// True when the auth token is missing, expired, or in the last 10 % of its 30-min life.
bool auth_token_needs_refresh(const net::OrchestratorInfo& info, std::int64_t now_unix_s);

// True when the orchestrator charges (price_info.pricePerUnit > 0): payments are then needed.
bool is_priced(const net::OrchestratorInfo& info);

// The orchestrator's entry of go-livepeer's `network_capabilities` event (OrchNetworkCapabilities:
// {address, local_address, orch_uri, capabilities, capabilities_prices, hardware}), with the
// protobuf parts as Go's encoding/json writes them: proto field names, zero values omitted,
// 64-bit integers as numbers, map keys as strings. `address` and `local_address` are the
// 0x-hex address it answered with (we have no separate on-chain registry entry).
nlohmann::json network_capabilities_entry(const net::OrchestratorInfo& info);

// ---- credentials ----------------------------------------------------------------------------

// Livepeer-Segment for off-chain use: base64 of a SegData holding the auth token, and the
// manifest id when given (payments need it; the job start has none yet).
std::string segment_credentials(const net::AuthToken& token, std::string_view manifest_id = {});

// Livepeer-Payment off-chain: empty.
inline constexpr std::string_view k_offchain_payment_header = "";

// ---- job start ------------------------------------------------------------------------------

// Outcome categories (METRICS.md) a job start can end in.
inline constexpr std::string_view k_outcome_ok = "ok";
inline constexpr std::string_view k_outcome_excused_no_capacity = "excused_no_capacity";
inline constexpr std::string_view k_outcome_auth_or_payment_failed = "auth_or_payment_failed";
inline constexpr std::string_view k_outcome_start_failed = "start_failed";

struct LiveJobRequest {
  std::string model_id;                              // always sent (PROTOCOL.md §3.1)
  nlohmann::json params = nlohmann::json::object();  // initial pipeline parameters
  std::string gateway_request_id;                    // our request id
  std::string stream_id;                             // our stream id
  std::string payment_header;                        // Livepeer-Payment ("" off-chain)
  std::string segment_header;                        // Livepeer-Segment
  std::chrono::milliseconds timeout{5000};           // whole request
  // Orchestrators serve self-signed certificates: the default skips verification (as
  // go-livepeer does); set mode pin with pinned_key = OrchestratorProbe::certificate_pin to
  // require the certificate GetOrchestrator saw.
  http::TlsOptions tls;
};

// The four trickle channels of a started job, absolute URLs.
struct JobUrls {
  std::string publish_url;    // our input
  std::string subscribe_url;  // the output
  std::string control_url;    // parameter updates
  std::string events_url;     // runner events
  std::string manifest_id;    // the orchestrator's job id (mid)
};

struct LiveJobResult {
  int status = 0;               // HTTP status; 0 = no HTTP response
  std::string body;             // response body, the first k_max_body_bytes
  std::optional<JobUrls> urls;  // set when outcome == ok
  std::string outcome;          // one of the k_outcome_* values
  std::string message;          // what went wrong (status, body excerpt, URL); empty when ok
  std::optional<Error> error;   // the same as an Error, when not ok
  std::string url;              // the URL posted to
  http::Timings timings;        // libcurl's phase timings
  double duration_ms = 0;       // request sent to outcome known, ms
  static constexpr std::size_t k_max_body_bytes = 4096;  // bytes kept of the body
};

// Classification of a start response (exposed for tests and for replaying recorded answers).
// `content_type` may be empty. A 200 must carry a JSON object with a string control_url (as
// go-livepeer requires) and a publish_url and subscribe_url; a JSON body under another content
// type is accepted (go-livepeer does not check it) and noted in the message, anything that does
// not parse as JSON is start_failed naming the content type and a body excerpt.
LiveJobResult classify_start_response(int status, std::string_view content_type,
                                      std::string_view body, std::string_view url);

// POST {transcoder_url}/live-video-to-video. The callback runs once, on the engine's thread.
// The returned transfer may be cancelled (the callback then reports start_failed).
std::shared_ptr<http::Transfer> start_live_job(http::Engine& engine,
                                               const std::string& transcoder_url,
                                               LiveJobRequest request,
                                               std::function<void(LiveJobResult)> callback);

// ---- payments -------------------------------------------------------------------------------

// POST {transcoder_url}/payment with an empty body; the answer is a protobuf PaymentResult.
// Errors (category payment; network/tls for transport failures) carry url, status and body.
std::shared_ptr<http::Transfer> send_payment(
    http::Engine& engine, const std::string& transcoder_url, const std::string& payment_header,
    const std::string& segment_header, std::function<void(Result<net::PaymentResult>)> callback,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(5000), http::TlsOptions tls = {});

// What a credential source (remote signer or a local generator) answers for one payment.
struct PaymentCredentials {
  enum class Kind {
    ok,               // headers ready
    refresh_session,  // 480: refresh the OrchestratorInfo, then ask again
    price_exceeded,   // 481: do not use this orchestrator
    skip,             // 482: no tickets needed this cycle
    error,            // anything else
  };
  Kind kind = Kind::error;
  std::string payment_header;    // Livepeer-Payment (ok)
  std::string segment_header;    // Livepeer-Segment (ok)
  std::string orchestrator_url;  // Livepeer-Orchestrator-URL of a 480, may be empty
  int status = 0;                // HTTP status from the signer, 0 for local sources
  std::optional<Error> error;    // kind == error
};

const char* to_string(PaymentCredentials::Kind kind);

// One call a PaymentLoop made, for the session timeline.
struct PaymentCall {
  std::string what;  // "credentials", "payment" or "refresh"
  SteadyTime started;
  SteadyTime finished;
  int status = 0;              // HTTP status when there was one
  std::string result;          // "ok", a PaymentCredentials kind, or "error"
  std::optional<Error> error;  // failure detail
};

struct PaymentLoopOptions {
  std::chrono::milliseconds interval{5000};         // between payments (-livePaymentInterval)
  int max_refreshes = 3;                            // 480 → refresh → retry, per cycle
  std::chrono::milliseconds request_timeout{5000};  // each /payment POST
  http::TlsOptions tls;                             // for the /payment POSTs
  bool refresh_expiring_token = true;  // refresh before a cycle when auth_token_needs_refresh
};

enum class PaymentLoopEnd {
  stopped,         // stop() (no callback is made for it)
  price_exceeded,  // the signer answered 481
  refresh_failed,  // refresh() failed, or 480 persisted after max_refreshes
};
const char* to_string(PaymentLoopEnd end);

// Pays a running job on a priced orchestrator: every interval it asks for credentials and POSTs
// /payment (PROTOCOL.md §4.4). A failed /payment is recorded and the next cycle goes on (the
// orchestrator ends the job when the balance runs out, which the session sees on its channels).
// io-thread only; stop() cancels everything and no callback runs after it.
class PaymentLoop : public std::enable_shared_from_this<PaymentLoop> {
 public:
  using CredentialsDone = std::function<void(PaymentCredentials)>;
  // Produces credentials for `info` and the job's manifest id (a RemoteSigner, or a test).
  using CredentialsFn = std::function<void(const net::OrchestratorInfo& info,
                                           const std::string& manifest_id, CredentialsDone)>;
  using RefreshDone = std::function<void(Result<net::OrchestratorInfo>)>;
  // Re-runs GetOrchestrator (ignoreCapacityCheck = true) and answers the new info.
  using RefreshFn = std::function<void(RefreshDone)>;

  struct Callbacks {
    std::function<void(const PaymentCall&)> on_call;            // every call, as it finishes
    std::function<void(const net::OrchestratorInfo&)> on_info;  // info replaced (refresh/payment)
    std::function<void(PaymentLoopEnd, const std::optional<Error>&)> on_end;  // not for stop()
  };

  static std::shared_ptr<PaymentLoop> create(http::Engine& engine, net::OrchestratorInfo info,
                                             std::string manifest_id, CredentialsFn credentials,
                                             RefreshFn refresh, PaymentLoopOptions options,
                                             Callbacks callbacks);
  ~PaymentLoop();

  void start();  // first payment one interval from now (the start request paid the first)
  void stop();

  const net::OrchestratorInfo& info() const { return info_; }
  std::uint64_t payments_ok() const { return payments_ok_; }          // /payment 200s, count
  std::uint64_t payments_failed() const { return payments_failed_; }  // other ends, count
  std::uint64_t cycles_skipped() const { return cycles_skipped_; }    // 482s, count
  std::uint64_t refreshes() const { return refreshes_; }              // refresh() calls, count
  bool running() const { return running_; }

 private:
  PaymentLoop(http::Engine& engine, net::OrchestratorInfo info, std::string manifest_id,
              CredentialsFn credentials, RefreshFn refresh, PaymentLoopOptions options,
              Callbacks callbacks);
  void schedule();
  void cycle();
  void ask_credentials(int refreshes_left);
  void on_credentials(PaymentCredentials credentials, SteadyTime started, int refreshes_left);
  void refresh_then(std::function<void()> next, SteadyTime started);
  void pay(const PaymentCredentials& credentials);
  void cycle_done();
  void finish(PaymentLoopEnd end, std::optional<Error> error);
  void record(PaymentCall call);

  http::Engine& engine_;
  net::OrchestratorInfo info_;  // latest info (refresh / PaymentResult)
  std::string manifest_id_;     // the job's mid
  CredentialsFn credentials_;
  RefreshFn refresh_;
  PaymentLoopOptions options_;
  Callbacks callbacks_;
  boost::asio::steady_timer timer_;
  SteadyTime next_due_;                       // when the next cycle is due
  std::shared_ptr<http::Transfer> transfer_;  // /payment in flight
  std::uint64_t generation_ = 0;  // bumped by stop(): late completions of older work are dropped
  bool running_ = false;
  std::uint64_t payments_ok_ = 0;
  std::uint64_t payments_failed_ = 0;
  std::uint64_t cycles_skipped_ = 0;
  std::uint64_t refreshes_ = 0;
};

}  // namespace naap::orch
