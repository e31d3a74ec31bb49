// GetOrchestrator / Ping for the emulated off-chain orchestrator, and the grpc::Server around it.
#include "naap/emulator/orchestrator_rpc.hpp"

#include <fcntl.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/server_context.h>
#include <grpcpp/server_posix.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <stdexcept>

#include "naap/core/log.hpp"

namespace naap::emulator {
namespace {

using std::chrono::system_clock;

constexpr auto k_hang_poll = std::chrono::milliseconds(50);  // how often a hung call looks up
// Ticket parameters of a priced orchestrator. Off-chain nobody redeems tickets, so these only
// need the right shape: 1e15 wei face value, win probability 1/1000 of 2^256.
constexpr std::uint64_t k_face_value_wei = 1'000'000'000'000'000ULL;
constexpr std::int64_t k_creation_round = 4000;         // protocol round number
constexpr std::int64_t k_ticket_lifetime_blocks = 100;  // blocks until expiration
constexpr std::int64_t k_block_time_s = 12;             // seconds per emulated block

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    throw std::runtime_error("RAND_bytes failed");  // the CSPRNG is broken: nothing to recover
  }
  return out;
}

std::string to_hex(std::string_view bytes) {
  static constexpr char k_digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += k_digits[c >> 4];
    out += k_digits[c & 0xf];
  }
  return out;
}

// Minimal big-endian encoding of an unsigned integer (how go-livepeer sends big.Int bytes).
std::string big_endian(std::uint64_t value) {
  std::string out;
  for (; value != 0; value >>= 8) out.insert(out.begin(), static_cast<char>(value & 0xff));
  return out;
}

Result<std::string> parse_address(const std::string& hex) {
  std::string_view digits = hex;
  if (digits.starts_with("0x") || digits.starts_with("0X")) digits.remove_prefix(2);
  if (digits.size() != 40) {
    return fail(Error(ErrorCategory::config, "eth address must be 20 bytes (40 hex digits)")
                    .with("eth_address", hex));
  }
  std::string out;
  for (std::size_t i = 0; i < digits.size(); i += 2) {
    auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    int hi = nibble(digits[i]);
    int lo = nibble(digits[i + 1]);
    if (hi < 0 || lo < 0) {
      return fail(Error(ErrorCategory::config, "eth address is not hex").with("eth_address", hex));
    }
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

std::int64_t unix_seconds(system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

grpc::Status invalid_request(const std::string& why) {
  return grpc::Status(grpc::StatusCode::UNKNOWN,
                      std::string(k_invalid_request_prefix) + ": " + why);
}

void fill_ticket_params(net::TicketParams& params, const std::string& recipient,
                        system_clock::time_point now) {
  const std::int64_t block = unix_seconds(now) / k_block_time_s;
  params.set_recipient(recipient);
  params.set_face_value(big_endian(k_face_value_wei));
  // win_prob is a fraction of 2^256: 2^256 / 1000 ~ 0x4189...; its top 8 bytes then 24 zeros.
  params.set_win_prob(big_endian(0x4189374BC6A7EF9DULL) + std::string(24, '\0'));
  params.set_recipient_rand_hash(random_bytes(32));
  params.set_seed(random_bytes(32));
  params.set_expiration_block(
      big_endian(static_cast<std::uint64_t>(block + k_ticket_lifetime_blocks)));
  params.mutable_expiration_params()->set_creation_round(k_creation_round);
  params.mutable_expiration_params()->set_creation_round_block_hash(random_bytes(32));
}

void fill_price(net::PriceInfo& price, const ModelOffer& model) {
  price.set_priceperunit(model.price_per_unit);
  price.set_pixelsperunit(model.pixels_per_unit);
  price.set_capability(k_capability_live_video_to_video);
  price.set_constraint(model.model_id);
}

}  // namespace

bool OrchestratorConfig::priced() const {
  return std::any_of(models.begin(), models.end(),
                     [](const ModelOffer& m) { return m.price_per_unit > 0; });
}

// ---------------------------------------------------------------------------------------------
// AuthTokens

const char* to_string(AuthTokens::TokenCheck check) {
  switch (check) {
    case AuthTokens::TokenCheck::valid:
      return "valid";
    case AuthTokens::TokenCheck::expired:
      return "expired";
    case AuthTokens::TokenCheck::unknown:
      return "unknown";
  }
  return "unknown";
}

AuthTokens::AuthTokens(std::chrono::seconds ttl, Clock clock)
    : ttl_(ttl), clock_(clock ? std::move(clock) : Clock([] { return system_clock::now(); })) {}

system_clock::time_point AuthTokens::now() const {
  return clock_();
}

AuthTokenData AuthTokens::issue() {
  return issue(now());
}

AuthTokenData AuthTokens::issue(system_clock::time_point now) {
  AuthTokenData data{.token = random_bytes(32), .session_id = to_hex(random_bytes(16))};
  const std::int64_t now_s = unix_seconds(now);
  std::lock_guard lock(mutex_);
  prune_locked(now_s);
  data.expiration = now_s + ttl_.count();
  expiry_s_.emplace(data.token, data.expiration);
  by_expiry_.emplace(data.expiration, data.token);
  return data;
}

AuthTokens::TokenCheck AuthTokens::check(std::string_view token_bytes) const {
  return check(token_bytes, now());
}

AuthTokens::TokenCheck AuthTokens::check(std::string_view token_bytes,
                                         system_clock::time_point now) const {
  std::lock_guard lock(mutex_);
  auto it = expiry_s_.find(std::string(token_bytes));
  if (it == expiry_s_.end()) return TokenCheck::unknown;
  return unix_seconds(now) < it->second ? TokenCheck::valid : TokenCheck::expired;
}

void AuthTokens::set_ttl(std::chrono::seconds ttl) {
  std::lock_guard lock(mutex_);
  ttl_ = ttl;
}

std::size_t AuthTokens::size() const {
  std::lock_guard lock(mutex_);
  return expiry_s_.size();
}

void AuthTokens::prune_locked(std::int64_t now_s) {
  // Forget tokens expired for longer than one TTL, and the earliest ones beyond the cap.
  const std::int64_t forget_before = now_s - ttl_.count();
  while (!by_expiry_.empty() &&
         (by_expiry_.begin()->first < forget_before || by_expiry_.size() >= k_max_tokens)) {
    expiry_s_.erase(by_expiry_.begin()->second);
    by_expiry_.erase(by_expiry_.begin());
  }
}

// ---------------------------------------------------------------------------------------------
// OrchestratorService

OrchestratorService::OrchestratorService(OrchestratorConfig config, InUseFn in_use,
                                         AuthTokens::Clock clock)
    : in_use_(std::move(in_use)), tokens_(config.token_ttl, std::move(clock)) {
  if (auto set = set_config(std::move(config)); !set) {
    throw std::invalid_argument(set.error().describe());
  }
}

OrchestratorService::~OrchestratorService() {
  stop();
}

std::shared_ptr<const OrchestratorService::State> OrchestratorService::state() const {
  std::lock_guard lock(mutex_);
  return state_;
}

Result<void> OrchestratorService::set_config(OrchestratorConfig config) {
  std::string address;
  if (!config.eth_address_hex.empty()) {
    auto parsed = parse_address(config.eth_address_hex);
    if (!parsed) return fail(parsed.error());
    address = std::move(*parsed);
  }
  tokens_.set_ttl(config.token_ttl);
  std::lock_guard lock(mutex_);
  if (address.empty()) {
    // Keep one random identity for the service's life unless an address is configured.
    address = state_ && state_->config.eth_address_hex.empty() ? state_->address : random_bytes(20);
  }
  state_ = std::make_shared<const State>(State{std::move(config), std::move(address)});
  return {};
}

OrchestratorConfig OrchestratorService::config() const {
  return state()->config;
}

std::string OrchestratorService::address() const {
  return state()->address;
}

void OrchestratorService::set_in_use(InUseFn in_use) {
  std::lock_guard lock(mutex_);
  in_use_ = std::move(in_use);
}

void OrchestratorService::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
}

grpc::Status OrchestratorService::hang(grpc::ServerContext* context) {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "hang fault");
    if (system_clock::now() >= context->deadline()) {
      return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "hang fault");
    }
    stop_cv_.wait_for(lock, k_hang_poll);
  }
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, "orchestrator shutting down");
}

grpc::Status OrchestratorService::GetOrchestrator(grpc::ServerContext* context,
                                                  const net::OrchestratorRequest* request,
                                                  net::OrchestratorInfo* response) {
  calls_.fetch_add(1);
  const RpcFaults faults = state()->config.faults;
  if (faults.hang) {
    log::debug("orchestrator_rpc_hang", {{"peer", context->peer()}});
    return hang(context);
  }
  if (faults.fail_code) {
    return grpc::Status(*faults.fail_code,
                        faults.fail_message.empty() ? "injected fault" : faults.fail_message);
  }
  auto info = build_info(*request);
  if (!info) {
    log::debug("orchestrator_rpc_refused",
               {{"peer", context->peer()}, {"message", info.error().error_message()}});
    return info.error();
  }
  *response = std::move(*info);
  return grpc::Status::OK;
}

std::expected<net::OrchestratorInfo, grpc::Status> OrchestratorService::build_info(
    const net::OrchestratorRequest& request) {
  std::shared_ptr<const State> current;
  InUseFn in_use;
  {
    std::lock_guard lock(mutex_);
    current = state_;
    in_use = in_use_;
  }
  const OrchestratorConfig& config = current->config;

  // One snapshot of busy slots per model, so the answer is self-consistent.
  std::map<std::string, std::uint32_t> busy;
  for (const ModelOffer& model : config.models) {
    busy[model.model_id] = in_use ? in_use(model.model_id) : 0;
  }
  auto idle = [&](const ModelOffer& model) {
    const std::uint32_t used = busy[model.model_id];
    return model.capacity > used ? model.capacity - used : 0;
  };
  auto offered = [&](const std::string& id) -> const ModelOffer* {
    auto it = std::find_if(config.models.begin(), config.models.end(),
                           [&](const ModelOffer& m) { return m.model_id == id; });
    return it == config.models.end() ? nullptr : &*it;
  };

  // Requested models, sorted so that choices below do not depend on protobuf map order.
  std::vector<const ModelOffer*> requested;
  const auto& per_capability = request.capabilities().constraints().percapability();
  if (auto it = per_capability.find(k_capability_live_video_to_video); it != per_capability.end()) {
    std::vector<std::string> ids;
    for (const auto& [id, constraint] : it->second.models()) ids.push_back(id);
    std::sort(ids.begin(), ids.end());
    for (const std::string& id : ids) {
      const ModelOffer* model = offered(id);
      if (model == nullptr) return std::unexpected(invalid_request("model not offered: " + id));
      requested.push_back(model);
    }
  }
  const ModelOffer* chosen = nullptr;  // the model whose price is answered
  for (const ModelOffer* model : requested) {
    if (idle(*model) > 0) {
      chosen = model;
      break;
    }
  }
  if (!requested.empty() && chosen == nullptr) {
    if (!request.ignorecapacitycheck()) {
      return std::unexpected(
          grpc::Status(grpc::StatusCode::UNKNOWN, std::string(k_capped_message)));
    }
    chosen = requested.front();
  }

  const system_clock::time_point now = tokens_.now();
  net::OrchestratorInfo info;
  info.set_transcoder(config.transcoder_url);
  info.set_address(current->address);
  for (const std::string& node : config.nodes) info.add_nodes(node);

  net::Capabilities& caps = *info.mutable_capabilities();
  caps.add_bitstring(std::uint64_t{1} << (k_capability_live_video_to_video % 64));
  std::uint32_t total_slots = 0;
  auto* models =
      (*caps.mutable_constraints()->mutable_percapability())[k_capability_live_video_to_video]
          .mutable_models();
  for (const ModelOffer& model : config.models) {
    total_slots += model.capacity;
    auto& constraint = (*models)[model.model_id];
    constraint.set_warm(model.warm);
    constraint.set_capacity(idle(model));
    constraint.set_capacityinuse(busy[model.model_id]);
    constraint.set_runnerversion(model.runner_version);
  }
  (*caps.mutable_capacities())[k_capability_live_video_to_video] = total_slots;

  const bool priced = config.priced();
  if (priced && chosen != nullptr) fill_price(*info.mutable_price_info(), *chosen);
  if (priced) fill_ticket_params(*info.mutable_ticket_params(), current->address, now);

  if (!request.has_capabilities()) {
    for (const ModelOffer& model : config.models) {
      net::HardwareInformation& hw = *info.add_hardware();
      hw.set_pipeline(std::string(k_live_pipeline));
      hw.set_model_id(model.model_id);
      for (const GpuOffer& gpu : config.gpus) {
        net::GPUComputeInfo& g = (*hw.mutable_gpu_info())[gpu.id];
        g.set_id(gpu.id);
        g.set_name(gpu.name);
        g.set_major(gpu.major);
        g.set_minor(gpu.minor);
        g.set_memory_free(gpu.memory_free);
        g.set_memory_total(gpu.memory_total);
      }
      fill_price(*info.add_capabilities_prices(), model);
    }
  }

  AuthTokenData token = tokens_.issue(now);
  net::AuthToken& auth = *info.mutable_auth_token();
  auth.set_token(std::move(token.token));
  auth.set_session_id(std::move(token.session_id));
  auth.set_expiration(token.expiration);
  return info;
}

grpc::Status OrchestratorService::Ping(grpc::ServerContext* /*context*/,
                                       const net::PingPong* request, net::PingPong* response) {
  // Off-chain there is no key to sign with; a SHA-256 of the value stands in for a signature.
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(request->value().data()), request->value().size(),
         digest.data());
  response->set_value(std::string(reinterpret_cast<const char*>(digest.data()), digest.size()));
  return grpc::Status::OK;
}

// ---------------------------------------------------------------------------------------------
// RpcServer

RpcServer::RpcServer(std::shared_ptr<OrchestratorService> service) : service_(std::move(service)) {}

RpcServer::~RpcServer() {
  shutdown(system_clock::now() + std::chrono::seconds(1));
}

bool RpcServer::running() const {
  std::lock_guard lock(mutex_);
  return server_ != nullptr && !shut_down_;
}

Result<void> RpcServer::start_locked(const std::string& listen_address,
                                     const std::shared_ptr<grpc::ServerCredentials>& credentials,
                                     int* bound_port) {
  if (shut_down_) return fail(ErrorCategory::internal, "gRPC server already shut down");
  if (server_) {
    return fail(Error(ErrorCategory::internal,
                      "gRPC server already started: listen_tls must come before adopt")
                    .with("address", listen_address));
  }
  grpc::ServerBuilder builder;
  // Without this, a fixed port already taken by another gRPC server would be shared silently.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  if (!listen_address.empty()) builder.AddListeningPort(listen_address, credentials, bound_port);
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (!server_) {
    return fail(Error(ErrorCategory::network, "gRPC server failed to start (port in use?)")
                    .with("address", listen_address));
  }
  return {};
}

Result<std::uint16_t> RpcServer::listen_tls(const std::string& address, std::uint16_t port,
                                            const tls::Identity& identity) {
  grpc::SslServerCredentialsOptions options(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  options.pem_key_cert_pairs.push_back({identity.key_pem, identity.cert_pem});
  const bool ipv6 = address.find(':') != std::string::npos && !address.starts_with('[');
  const std::string listen_address =
      (ipv6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
  int bound_port = 0;
  std::lock_guard lock(mutex_);
  auto started = start_locked(listen_address, grpc::SslServerCredentials(options), &bound_port);
  if (!started) return fail(started.error());
  if (bound_port <= 0) {
    return fail(Error(ErrorCategory::network, "gRPC server could not bind")
                    .with("address", listen_address));
  }
  log::info("orchestrator_rpc_listen", {{"address", address}, {"port", bound_port}, {"tls", 1}});
  return static_cast<std::uint16_t>(bound_port);
}

void RpcServer::adopt(int fd) {
  std::lock_guard lock(mutex_);
  if (!server_) {
    // gRPC 1.51 builds and starts a server with no listening port; sockets come only from here.
    if (auto started = start_locked("", nullptr, nullptr); !started) {
      log::error("orchestrator_rpc_adopt_failed", {{"error", started.error().describe()}});
      ::close(fd);
      return;
    }
  }
  if (shut_down_) {
    ::close(fd);
    return;
  }
  const int flags = ::fcntl(fd, F_GETFL, 0);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  grpc::AddInsecureChannelFromFd(server_.get(), fd);
}

void RpcServer::shutdown(system_clock::time_point deadline) {
  std::lock_guard lock(mutex_);
  if (shut_down_) return;
  shut_down_ = true;
  service_->stop();
  if (server_) {
    server_->Shutdown(deadline);
    server_->Wait();
  }
}

}  // namespace naap::emulator
