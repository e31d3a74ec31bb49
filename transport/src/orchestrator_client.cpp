// GetOrchestrator with pin-on-first-use TLS, job start and payments against an orchestrator.
#include "naap/transport/orchestrator_client.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>

#include "naap/transport/base64.hpp"
#include "naap/transport/tls_identity.hpp"
#include "net.grpc.pb.h"

namespace naap::orch {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string format_ms(double ms) {
  return std::to_string(static_cast<long long>(ms + 0.5));
}

// A printable excerpt of a peer's body for messages: control bytes replaced, length capped.
std::string excerpt(std::string_view body, std::size_t max_chars = 200) {
  std::string out;
  for (char c : body.substr(0, max_chars)) {
    out.push_back((c == '\n' || c == '\r' || c == '\t')                 ? ' '
                  : (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?'
                                                                        : c);
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (body.size() > max_chars) out += "...";
  return out;
}

// ---- RAII for the C handles of the certificate fetch -----------------------------------------

struct FdCloser {
  int fd = -1;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};
struct SslCtxFree {
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
};
struct SslFree {
  void operator()(SSL* p) const { SSL_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct NamesFree {
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
};

std::string openssl_reason() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "no OpenSSL reason" : out;
}

std::string to_pem(X509* cert) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return {};
  char* data = nullptr;
  const long len = BIO_ctrl(bio.get(), BIO_CTRL_INFO, 0, &data);  // BIO_get_mem_data
  return std::string(data, static_cast<std::size_t>(len));
}

// A name the certificate is valid for, to check it against: first DNS SAN, else the CN, else
// the first IP SAN.
std::string certificate_name(X509* cert) {
  std::unique_ptr<GENERAL_NAMES, NamesFree> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  std::string ip_name;
  if (names) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
      if (name->type == GEN_DNS) {
        const ASN1_IA5STRING* dns = name->d.dNSName;
        return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                           static_cast<std::size_t>(ASN1_STRING_length(dns)));
      }
      if (name->type == GEN_IPADD && ip_name.empty()) {
        const ASN1_OCTET_STRING* ip = name->d.iPAddress;
        char text[INET6_ADDRSTRLEN] = {};
        const int family = ASN1_STRING_length(ip) == 4 ? AF_INET : AF_INET6;
        if (inet_ntop(family, ASN1_STRING_get0_data(ip), text, sizeof(text))) ip_name = text;
      }
    }
  }
  X509_NAME* subject = X509_get_subject_name(cert);
  const int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index >= 0) {
    const ASN1_STRING* cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
    std::string out(reinterpret_cast<const char*>(ASN1_STRING_get0_data(cn)),
                    static_cast<std::size_t>(ASN1_STRING_length(cn)));
    if (!out.empty()) return out;
  }
  return ip_name;
}

struct ServerCertificate {
  std::string leaf_pem;   // the certificate the server presented
  std::string roots_pem;  // every certificate it presented (trust roots for the gRPC channel)
  std::string name;       // a name the leaf is valid for
};

bool is_ip_literal(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Waits for `events` on fd until the deadline; false on timeout.
bool wait_fd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    const int left = remaining_ms(deadline);
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, left);
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return true;  // let the next I/O call report the error
  }
}

Error deadline_error(const Address& address, std::chrono::milliseconds deadline,
                     std::string_view phase) {
  return Error(ErrorCategory::network,
               "deadline of " + std::to_string(deadline.count()) + " ms exceeded during " +
                   std::string(phase),
               true)
      .with("address", address.host_port())
      .with("phase", std::string(phase));
}

// TCP connect to any resolved address of `address`, non-blocking, bounded by the deadline.
Result<int> connect_tcp(const Address& address, Clock::time_point deadline,
                        std::chrono::milliseconds budget) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(address.port);
  if (int rc = ::getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return fail(Error(ErrorCategory::network,
                      "cannot resolve the host: " + std::string(::gai_strerror(rc)), true)
                    .with("address", address.host_port()));
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> list(found, ::freeaddrinfo);
  std::string last_error = "no address";
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    FdCloser sock{
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol)};
    if (sock.fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    if (::connect(sock.fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        last_error = std::strerror(errno);
        continue;
      }
      if (!wait_fd(sock.fd, POLLOUT, deadline)) {
        return fail(deadline_error(address, budget, "TCP connect"));
      }
      int so_error = 0;
      socklen_t len = sizeof(so_error);
      ::getsockopt(sock.fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
      if (so_error != 0) {
        last_error = std::strerror(so_error);
        continue;
      }
    }
    const int fd = sock.fd;
    sock.fd = -1;
    return fd;
  }
  return fail(Error(ErrorCategory::network, "cannot connect: " + last_error, true)
                  .with("address", address.host_port()));
}

// The certificate the server presents, by a TLS handshake with verification off (we decide
// trust by pin afterwards). SNI carries the host unless it is an IP literal.
Result<ServerCertificate> fetch_certificate(const Address& address, Clock::time_point deadline,
                                            std::chrono::milliseconds budget) {
  auto fd = connect_tcp(address, deadline, budget);
  if (!fd) return fail(fd.error());
  FdCloser sock{*fd};
  ERR_clear_error();
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return fail(Error(ErrorCategory::internal, "SSL_CTX_new: " + openssl_reason()));
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
  if (!ssl) return fail(Error(ErrorCategory::internal, "SSL_new: " + openssl_reason()));
  SSL_set_fd(ssl.get(), sock.fd);
  if (!is_ip_literal(address.host)) {
    // SSL_set_tlsext_host_name without its macro's C cast.
    SSL_ctrl(ssl.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(address.host.c_str()));
  }
  for (;;) {
    const int rc = SSL_connect(ssl.get());
    if (rc == 1) break;
    const int err = SSL_get_error(ssl.get(), rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      if (!wait_fd(sock.fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
        return fail(deadline_error(address, budget, "TLS handshake"));
      }
      continue;
    }
    if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN) {
      const std::string why =
          errno != 0 && err == SSL_ERROR_SYSCALL ? std::strerror(errno) : "connection closed";
      return fail(Error(ErrorCategory::network, "TLS handshake failed: " + std::string(why), true)
                      .with("address", address.host_port()));
    }
    return fail(Error(ErrorCategory::tls, "TLS handshake failed: " + openssl_reason())
                    .with("address", address.host_port()));
  }
  std::unique_ptr<X509, X509Free> leaf(SSL_get1_peer_certificate(ssl.get()));
  if (!leaf) {
    return fail(Error(ErrorCategory::tls, "the server presented no certificate")
                    .with("address", address.host_port()));
  }
  ServerCertificate out;
  out.leaf_pem = to_pem(leaf.get());
  out.roots_pem = out.leaf_pem;
  if (STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl.get())) {
    for (int i = 0; i < sk_X509_num(chain); ++i) {
      X509* cert = sk_X509_value(chain, i);
      if (X509_cmp(cert, leaf.get()) != 0) out.roots_pem += to_pem(cert);
    }
  }
  out.name = certificate_name(leaf.get());
  SSL_shutdown(ssl.get());  // best effort close_notify; the socket is non-blocking
  if (out.leaf_pem.empty()) {
    return fail(Error(ErrorCategory::internal, "cannot encode the server certificate as PEM"));
  }
  if (out.name.empty()) {
    return fail(
        Error(ErrorCategory::tls, "its certificate names no host (no SAN, no CN) to verify against")
            .with("address", address.host_port()));
  }
  return out;
}

std::string bare_pin(std::string_view pin) {
  constexpr std::string_view prefix = "sha256//";
  if (pin.starts_with(prefix)) pin.remove_prefix(prefix.size());
  return std::string(pin);
}

const char* status_code_name(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNRECOGNISED";
  }
}

bool contains_ci(std::string_view text, std::string_view word) {
  auto it = std::search(text.begin(), text.end(), word.begin(), word.end(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) ==
           std::tolower(static_cast<unsigned char>(b));
  });
  return it != text.end();
}

Error grpc_error(const Address& address, const grpc::Status& status) {
  const std::string& text = status.error_message();
  const bool capped = text.find("OrchestratorCapped") != std::string::npos;
  ErrorCategory category = ErrorCategory::protocol;
  bool retriable = false;
  switch (status.error_code()) {
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      category = ErrorCategory::network;
      retriable = true;
      break;
    case grpc::StatusCode::UNAVAILABLE:
      // A failed TLS handshake on the gRPC channel (certificate changed since the fetch) also
      // reads UNAVAILABLE; its message names the handshake.
      category = (contains_ci(text, "ssl") || contains_ci(text, "handshake") ||
                  contains_ci(text, "certificate"))
                     ? ErrorCategory::tls
                     : ErrorCategory::network;
      retriable = true;
      break;
    case grpc::StatusCode::UNKNOWN:  // go-livepeer's refusals are plain Go errors
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      category = ErrorCategory::orchestrator;
      retriable = capped;
      break;
    default:
      break;
  }
  Error error(category, std::string(status_code_name(status.error_code())) + ": " + text,
              retriable);
  error.with("address", address.host_port())
      .with("grpc_code", status_code_name(status.error_code()))
      .with("grpc_message", text);
  if (capped) error.with("capped", "true");
  return error;
}

Error with_elapsed(Error error, Clock::time_point start, std::chrono::milliseconds deadline) {
  error.with("elapsed_ms", format_ms(ms_since(start)))
      .with("deadline_ms", std::to_string(deadline.count()));
  return error;
}

}  // namespace

// ---- address ------------------------------------------------------------------------------------

std::string Address::host_port() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string Address::url() const {
  return "https://" + host_port();
}

Result<Address> parse_address(std::string_view text) {
  const std::string quoted = "'" + std::string(text) + "'";
  auto bad = [&](const std::string& why) {
    return fail(Error(ErrorCategory::config, "bad orchestrator address " + quoted + ": " + why)
                    .with("address", std::string(text)));
  };
  std::string_view rest = text;
  if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
  } else if (rest.find("://") != std::string_view::npos) {
    return bad("only https:// URLs are supported");
  }
  if (rest.ends_with('/')) rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos) return bad("a path is not allowed");
  if (rest.empty()) return bad("empty");
  Address out;
  std::string_view port_text;
  if (rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) return bad("missing ']' after an IPv6 address");
    out.host = std::string(rest.substr(1, close - 1));
    if (close + 1 >= rest.size() || rest[close + 1] != ':')
      return bad("expected ':port' after ']'");
    port_text = rest.substr(close + 2);
    unsigned char buf[sizeof(in6_addr)];
    if (inet_pton(AF_INET6, out.host.c_str(), buf) != 1) return bad("not an IPv6 address in []");
  } else {
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) return bad("expected host:port");
    out.host = std::string(rest.substr(0, colon));
    if (out.host.find(':') != std::string::npos) {
      return bad("an IPv6 address must be written in brackets, [addr]:port");
    }
    port_text = rest.substr(colon + 1);
  }
  if (out.host.empty()) return bad("empty host");
  if (port_text.empty() || port_text.size() > 5 ||
      !std::all_of(port_text.begin(), port_text.end(),
                   [](char c) { return c >= '0' && c <= '9'; })) {
    return bad("port must be a number");
  }
  const int port = std::stoi(std::string(port_text));
  if (port < 1 || port > 65535) return bad("port out of range 1-65535");
  out.port = static_cast<std::uint16_t>(port);
  return out;
}

// ---- GetOrchestrator ----------------------------------------------------------------------------

net::OrchestratorRequest make_orchestrator_request(const ProbeOptions& options) {
  net::OrchestratorRequest request;
  request.set_address(options.sender_address);
  request.set_sig(options.sender_sig);
  request.set_ignorecapacitycheck(options.ignore_capacity_check);
  net::Capabilities& caps = *request.mutable_capabilities();
  constexpr std::uint32_t cap = k_capability_live_video_to_video;
  for (std::uint32_t word = 0; word <= cap / 64; ++word) {
    caps.add_bitstring(word == cap / 64 ? std::uint64_t{1} << (cap % 64) : 0);
  }
  (*caps.mutable_capacities())[cap] = 1;
  if (!options.model_id.empty()) {
    auto& models = *(*caps.mutable_constraints()->mutable_percapability())[cap].mutable_models();
    models[options.model_id];  // an empty ModelConstraint: "this model, any state"
  }
  return request;
}

namespace {

// GetOrchestrator at a parsed address. Its errors say what failed; get_orchestrator names the
// call and the address in front of them, once.
Result<OrchestratorProbe> probe_at(const Address& address, const ProbeOptions& options) {
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = start + options.deadline;
  auto cert = fetch_certificate(address, deadline, options.deadline);
  if (!cert) return fail(with_elapsed(cert.error(), start, options.deadline));
  auto pin = tls::spki_sha256_base64(cert->leaf_pem);
  if (!pin) return fail(pin.error());
  if (!options.expected_pin.empty() && bare_pin(options.expected_pin) != *pin) {
    return fail(Error(ErrorCategory::tls, "certificate does not match the pin: expected sha256//" +
                                              bare_pin(options.expected_pin) + ", got sha256//" +
                                              *pin)
                    .with("address", address.host_port())
                    .with("expected_pin", "sha256//" + bare_pin(options.expected_pin))
                    .with("actual_pin", "sha256//" + *pin));
  }

  // Trust exactly the certificate just seen, checked against a name it carries (the address
  // may be an IP the certificate does not list).
  const Clock::time_point rpc_start = Clock::now();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = cert->roots_pem;
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride(cert->name);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a new connection per call, as go-livepeer
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  auto channel = grpc::CreateCustomChannel(address.host_port(), grpc::SslCredentials(ssl), args);
  auto stub = net::Orchestrator::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(std::max(remaining_ms(deadline), 1)));
  OrchestratorProbe probe;
  const grpc::Status status =
      stub->GetOrchestrator(&context, make_orchestrator_request(options), &probe.info);
  if (!status.ok()) {
    return fail(with_elapsed(grpc_error(address, status), start, options.deadline));
  }
  probe.rpc_ms = ms_since(rpc_start);
  probe.latency_ms = ms_since(start);
  probe.certificate_pin = "sha256//" + *pin;
  probe.certificate_pem = std::move(cert->leaf_pem);
  return probe;
}

}  // namespace

Result<OrchestratorProbe> get_orchestrator(std::string_view address_text,
                                           const ProbeOptions& options) {
  auto address = parse_address(address_text);
  if (!address) return fail(address.error());
  auto probe = probe_at(*address, options);
  if (!probe) {
    Error error = std::move(probe.error());
    error.message = "GetOrchestrator to " + address->host_port() + ": " + error.message;
    return fail(std::move(error));
  }
  return probe;
}

bool is_capped(const Error& error) {
  return error.get("capped") == "true";
}

// ---- OrchestratorClient -------------------------------------------------------------------------

OrchestratorClient::OrchestratorClient(std::size_t threads) {
  threads = std::max<std::size_t>(threads, 1);
  for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
}

OrchestratorClient::~OrchestratorClient() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    jobs_.clear();
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void OrchestratorClient::get_orchestrator(std::string address, ProbeOptions options,
                                          boost::asio::any_io_executor executor,
                                          ProbeCallback callback) {
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(
        Job{std::move(address), std::move(options), std::move(executor), std::move(callback)});
  }
  wake_.notify_one();
}

std::size_t OrchestratorClient::queued() const {
  std::lock_guard lock(mutex_);
  return jobs_.size();
}

void OrchestratorClient::work() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    auto result = orch::get_orchestrator(job.address, job.options);
    boost::asio::post(job.executor,
                      [callback = std::move(job.callback), result = std::move(result)]() mutable {
                        callback(std::move(result));
                      });
  }
}

// ---- reading an OrchestratorInfo ----------------------------------------------------------------

std::optional<ModelInfo> model_info(const net::OrchestratorInfo& info, std::string_view model_id) {
  const auto& per_capability = info.capabilities().constraints().percapability();
  auto cap = per_capability.find(k_capability_live_video_to_video);
  if (cap == per_capability.end()) return std::nullopt;
  auto model = cap->second.models().find(std::string(model_id));
  if (model == cap->second.models().end()) return std::nullopt;
  ModelInfo out;
  out.warm = model->second.warm();
  out.capacity = model->second.capacity();
  out.capacity_in_use = model->second.capacityinuse();
  out.runner_version = model->second.runnerversion();
  if (info.has_price_info()) {
    const net::PriceInfo& price = info.price_info();
    const bool for_capability =
        price.capability() == 0 || price.capability() == k_capability_live_video_to_video;
    if (for_capability && (price.constraint().empty() || price.constraint() == model_id)) {
      out.price = price;
    }
  }
  if (!out.price) {
    for (const net::PriceInfo& price : info.capabilities_prices()) {
      if (price.capability() == k_capability_live_video_to_video &&
          price.constraint() == model_id) {
        out.price = price;
        break;
      }
    }
  }
  return out;
}

bool auth_token_needs_refresh(const net::OrchestratorInfo& info, std::int64_t now_unix_s) {
  if (!info.has_auth_token() || info.auth_token().token().empty()) return true;
  return info.auth_token().expiration() - now_unix_s <= k_auth_token_lifetime_s / 10;
}

bool is_priced(const net::OrchestratorInfo& info) {
  return info.has_price_info() && info.price_info().priceperunit() > 0;
}

// ---- credentials --------------------------------------------------------------------------------

std::string segment_credentials(const net::AuthToken& token, std::string_view manifest_id) {
  net::SegData seg;
  if (!manifest_id.empty()) seg.set_manifestid(std::string(manifest_id));
  *seg.mutable_auth_token() = token;
  return b64::encode(seg.SerializeAsString());
}

// ---- job start ----------------------------------------------------------------------------------

namespace {

// "https://host:port" of an absolute URL (scheme and authority), or empty.
std::string origin_of(std::string_view url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return {};
  const auto path = url.find('/', scheme_end + 3);
  return std::string(url.substr(0, path));
}

std::string absolute_url(std::string_view value, std::string_view base_url) {
  if (value.starts_with("http://") || value.starts_with("https://")) return std::string(value);
  const std::string origin = origin_of(base_url);
  if (value.starts_with("//")) {
    return origin.substr(0, origin.find("://") + 1) + std::string(value);
  }
  if (value.starts_with('/')) return origin + std::string(value);
  return origin + "/" + std::string(value);
}

std::string trim_slash(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

void set_failure(LiveJobResult& result, std::string_view outcome, ErrorCategory category,
                 std::string message, bool retriable) {
  result.outcome = std::string(outcome);
  result.message = message;
  Error error(category, std::move(message), retriable);
  error.with("url", result.url);
  if (result.status != 0) error.with("status", std::to_string(result.status));
  if (!result.body.empty()) error.with("body", excerpt(result.body));
  result.error = std::move(error);
}

}  // namespace

LiveJobResult classify_start_response(int status, std::string_view content_type,
                                      std::string_view body, std::string_view url) {
  LiveJobResult result;
  result.status = status;
  result.url = std::string(url);
  result.body = std::string(body.substr(0, LiveJobResult::k_max_body_bytes));
  const std::string where = "POST " + std::string(url) + " answered " + std::to_string(status);
  const std::string said = body.empty() ? " (empty body)" : ": " + excerpt(body);
  if (status == 503) {
    set_failure(result, k_outcome_excused_no_capacity, ErrorCategory::orchestrator, where + said,
                true);
    return result;
  }
  if (status == 402 || status == 400) {
    set_failure(result, k_outcome_auth_or_payment_failed, ErrorCategory::payment, where + said,
                false);
    return result;
  }
  if (status == 403) {
    set_failure(result, k_outcome_auth_or_payment_failed, ErrorCategory::orchestrator, where + said,
                false);
    return result;
  }
  if (status != 200) {
    set_failure(result, k_outcome_start_failed,
                status >= 500 ? ErrorCategory::orchestrator : ErrorCategory::protocol, where + said,
                status >= 500);
    return result;
  }
  const std::string type = content_type.empty() ? "no content type" : std::string(content_type);
  const json parsed = json::parse(body, nullptr, false);
  if (parsed.is_discarded()) {
    set_failure(result, k_outcome_start_failed, ErrorCategory::protocol,
                where + " but the body is not JSON (" + type + ")" + said, false);
    return result;
  }
  if (!parsed.is_object()) {
    set_failure(result, k_outcome_start_failed, ErrorCategory::protocol,
                where + " but the body is not a JSON object" + said, false);
    return result;
  }
  auto field = [&](const char* key) -> std::string {
    auto it = parsed.find(key);
    return it != parsed.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  for (const char* key : {"control_url", "publish_url", "subscribe_url"}) {
    if (field(key).empty()) {
      set_failure(result, k_outcome_start_failed, ErrorCategory::protocol,
                  where + " but the JSON has no " + key + said, false);
      return result;
    }
  }
  JobUrls urls;
  urls.publish_url = absolute_url(field("publish_url"), url);
  urls.subscribe_url = absolute_url(field("subscribe_url"), url);
  urls.control_url = absolute_url(field("control_url"), url);
  if (const std::string events = field("events_url"); !events.empty()) {
    urls.events_url = absolute_url(events, url);
  }
  urls.manifest_id = field("manifest_id");
  if (urls.manifest_id.empty()) urls.manifest_id = field("request_id");  // before January 2026
  result.urls = std::move(urls);
  result.outcome = std::string(k_outcome_ok);
  if (!content_type.empty() && !contains_ci(content_type, "json")) {
    result.message = "accepted a JSON body sent as '" + type + "'";
  }
  return result;
}

std::shared_ptr<http::Transfer> start_live_job(http::Engine& engine,
                                               const std::string& transcoder_url,
                                               LiveJobRequest request,
                                               std::function<void(LiveJobResult)> callback) {
  http::Request http_request;
  http_request.method = "POST";
  http_request.url = trim_slash(transcoder_url) + "/live-video-to-video";
  http_request.body = json{
      {"model_id", request.model_id},
      {"params", request.params},
      {"gateway_request_id", request.gateway_request_id},
      {"stream_id",
       request.stream_id}}.dump();
  http_request.headers = {{"Content-Type", "application/json"},
                          {"Livepeer-Payment", request.payment_header},
                          {"Livepeer-Segment", request.segment_header},
                          {"Authorization", "Livepeer-AI-Worker-1.0"}};
  http_request.connect_timeout = request.timeout;
  http_request.total_timeout = request.timeout;
  http_request.tls = request.tls;

  struct State {
    int status = 0;
    std::string content_type;
    std::string body;
  };
  auto state = std::make_shared<State>();
  constexpr std::size_t k_keep_bytes = 64 * 1024;  // enough for any start answer
  const Clock::time_point start = Clock::now();
  http::Handlers handlers;
  handlers.on_head = [state](const http::ResponseHead& head) {
    state->status = head.status;
    if (const std::string* type = head.header("Content-Type")) state->content_type = *type;
  };
  handlers.on_data = [state](std::string_view bytes) {
    if (state->body.size() < k_keep_bytes) {
      state->body.append(bytes.substr(0, k_keep_bytes - state->body.size()));
    }
    return http::DataAction::proceed;
  };
  handlers.on_complete = [state, start, url = http_request.url,
                          callback = std::move(callback)](const http::Outcome& outcome) {
    LiveJobResult result;
    if (outcome.ok()) {
      result = classify_start_response(state->status, state->content_type, state->body, url);
    } else {
      result.status = state->status;
      result.url = url;
      result.body = state->body.substr(0, LiveJobResult::k_max_body_bytes);
      const std::string what = outcome.cancelled ? "cancelled"
                               : outcome.error   ? outcome.error->message
                                                 : "failed";
      const std::string when =
          state->status != 0 ? " after status " + std::to_string(state->status) : "";
      const ErrorCategory category =
          outcome.error ? outcome.error->category : ErrorCategory::network;
      set_failure(result, k_outcome_start_failed, category,
                  "POST " + url + " failed" + when + ": " + what, !outcome.cancelled);
      if (outcome.error) {
        for (const auto& [k, v] : outcome.error->context) {
          if (result.error->get(k).empty()) result.error->with(k, v);
        }
      }
    }
    result.timings = outcome.timings;
    result.duration_ms = ms_since(start);
    callback(std::move(result));
  };
  return engine.start(std::move(http_request), std::move(handlers));
}

// ---- payments -----------------------------------------------------------------------------------

std::shared_ptr<http::Transfer> send_payment(
    http::Engine& engine, const std::string& transcoder_url, const std::string& payment_header,
    const std::string& segment_header, std::function<void(Result<net::PaymentResult>)> callback,
    std::chrono::milliseconds timeout, http::TlsOptions tls) {
  http::Request request;
  request.method = "POST";
  request.url = trim_slash(transcoder_url) + "/payment";
  request.body = std::string();
  request.headers = {{"Livepeer-Payment", payment_header},
                     {"Livepeer-Segment", segment_header},
                     {"Authorization", "Livepeer-AI-Worker-1.0"}};
  request.connect_timeout = timeout;
  request.total_timeout = timeout;
  request.tls = std::move(tls);
  struct State {
    int status = 0;
    std::string body;
  };
  auto state = std::make_shared<State>();
  constexpr std::size_t k_keep_bytes = 1 << 20;  // a PaymentResult is a few KiB
  http::Handlers handlers;
  handlers.on_head = [state](const http::ResponseHead& head) { state->status = head.status; };
  handlers.on_data = [state](std::string_view bytes) {
    if (state->body.size() < k_keep_bytes) {
      state->body.append(bytes.substr(0, k_keep_bytes - state->body.size()));
    }
    return http::DataAction::proceed;
  };
  handlers.on_complete = [state, url = request.url,
                          callback = std::move(callback)](const http::Outcome& outcome) {
    if (!outcome.ok()) {
      Error error = outcome.error ? *outcome.error
                                  : Error(ErrorCategory::network, "payment request cancelled");
      error.message = "POST " + url + " failed: " + error.message;
      if (error.get("url").empty()) error.with("url", url);
      if (state->status != 0) error.with("status", std::to_string(state->status));
      callback(fail(std::move(error)));
      return;
    }
    if (state->status != 200) {
      callback(fail(Error(ErrorCategory::payment,
                          "POST " + url + " answered " + std::to_string(state->status) + ": " +
                              (state->body.empty() ? "(empty body)" : excerpt(state->body)),
                          state->status >= 500)
                        .with("url", url)
                        .with("status", std::to_string(state->status))
                        .with("body", excerpt(state->body))));
      return;
    }
    net::PaymentResult result;
    if (!result.ParseFromString(state->body)) {
      callback(fail(Error(ErrorCategory::protocol,
                          "POST " + url + " answered 200 but the body is not a PaymentResult (" +
                              std::to_string(state->body.size()) + " bytes)")
                        .with("url", url)
                        .with("status", "200")));
      return;
    }
    callback(std::move(result));
  };
  return engine.start(std::move(request), std::move(handlers));
}

const char* to_string(PaymentCredentials::Kind kind) {
  switch (kind) {
    case PaymentCredentials::Kind::ok:
      return "ok";
    case PaymentCredentials::Kind::refresh_session:
      return "refresh_session";
    case PaymentCredentials::Kind::price_exceeded:
      return "price_exceeded";
    case PaymentCredentials::Kind::skip:
      return "skip";
    case PaymentCredentials::Kind::error:
      return "error";
  }
  return "error";
}

const char* to_string(PaymentLoopEnd end) {
  switch (end) {
    case PaymentLoopEnd::stopped:
      return "stopped";
    case PaymentLoopEnd::price_exceeded:
      return "price_exceeded";
    case PaymentLoopEnd::refresh_failed:
      return "refresh_failed";
  }
  return "stopped";
}

// ---- PaymentLoop --------------------------------------------------------------------------------

std::shared_ptr<PaymentLoop> PaymentLoop::create(http::Engine& engine, net::OrchestratorInfo info,
                                                 std::string manifest_id, CredentialsFn credentials,
                                                 RefreshFn refresh, PaymentLoopOptions options,
                                                 Callbacks callbacks) {
  return std::shared_ptr<PaymentLoop>(
      new PaymentLoop(engine, std::move(info), std::move(manifest_id), std::move(credentials),
                      std::move(refresh), std::move(options), std::move(callbacks)));
}

PaymentLoop::PaymentLoop(http::Engine& engine, net::OrchestratorInfo info, std::string manifest_id,
                         CredentialsFn credentials, RefreshFn refresh, PaymentLoopOptions options,
                         Callbacks callbacks)
    : engine_(engine),
      info_(std::move(info)),
      manifest_id_(std::move(manifest_id)),
      credentials_(std::move(credentials)),
      refresh_(std::move(refresh)),
      options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      timer_(engine.io()) {}

PaymentLoop::~PaymentLoop() {
  timer_.cancel();
  if (transfer_) transfer_->cancel();
}

void PaymentLoop::start() {
  if (running_) return;
  running_ = true;
  next_due_ = SteadyClock::now() + options_.interval;
  schedule();
}

void PaymentLoop::stop() {
  if (!running_) return;
  running_ = false;
  ++generation_;
  timer_.cancel();
  if (transfer_) {
    transfer_->cancel();
    transfer_.reset();
  }
}

void PaymentLoop::schedule() {
  timer_.expires_at(next_due_);
  timer_.async_wait(
      [weak = weak_from_this(), generation = generation_](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (ec || !self || self->generation_ != generation || !self->running_) return;
        self->cycle();
      });
}

void PaymentLoop::cycle() {
  // Keep the cadence: the next cycle is due one interval after this one was, not after it ends.
  const SteadyTime now = SteadyClock::now();
  while (next_due_ <= now) next_due_ += options_.interval;
  const std::int64_t now_unix = std::chrono::duration_cast<std::chrono::seconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count();
  if (options_.refresh_expiring_token && refresh_ && auth_token_needs_refresh(info_, now_unix)) {
    refresh_then([this] { ask_credentials(options_.max_refreshes); }, now);
    return;
  }
  ask_credentials(options_.max_refreshes);
}

void PaymentLoop::ask_credentials(int refreshes_left) {
  const SteadyTime started = SteadyClock::now();
  credentials_(info_, manifest_id_,
               [weak = weak_from_this(), generation = generation_, started,
                refreshes_left](PaymentCredentials credentials) {
                 auto self = weak.lock();
                 if (!self || self->generation_ != generation || !self->running_) return;
                 self->on_credentials(std::move(credentials), started, refreshes_left);
               });
}

void PaymentLoop::on_credentials(PaymentCredentials credentials, SteadyTime started,
                                 int refreshes_left) {
  PaymentCall call;
  call.what = "credentials";
  call.started = started;
  call.finished = SteadyClock::now();
  call.status = credentials.status;
  call.result = to_string(credentials.kind);
  call.error = credentials.error;
  const std::uint64_t generation = generation_;
  record(std::move(call));
  if (generation_ != generation || !running_) return;  // stopped by on_call
  switch (credentials.kind) {
    case PaymentCredentials::Kind::ok:
      pay(credentials);
      return;
    case PaymentCredentials::Kind::refresh_session:
      if (refreshes_left <= 0 || !refresh_) {
        finish(
            PaymentLoopEnd::refresh_failed,
            Error(ErrorCategory::payment, "the signer still asks for a session refresh after " +
                                              std::to_string(options_.max_refreshes) + " refreshes")
                .with("orchestrator", info_.transcoder()));
        return;
      }
      refresh_then([this, refreshes_left] { ask_credentials(refreshes_left - 1); },
                   SteadyClock::now());
      return;
    case PaymentCredentials::Kind::price_exceeded:
      finish(PaymentLoopEnd::price_exceeded,
             Error(ErrorCategory::payment, "the orchestrator's price exceeds the signer's maximum")
                 .with("orchestrator", info_.transcoder())
                 .with("status", std::to_string(credentials.status)));
      return;
    case PaymentCredentials::Kind::skip:
      ++cycles_skipped_;
      cycle_done();
      return;
    case PaymentCredentials::Kind::error:
      ++payments_failed_;
      cycle_done();
      return;
  }
}

void PaymentLoop::refresh_then(std::function<void()> next, SteadyTime started) {
  ++refreshes_;
  refresh_([weak = weak_from_this(), generation = generation_, started,
            next = std::move(next)](Result<net::OrchestratorInfo> info) {
    auto self = weak.lock();
    if (!self || self->generation_ != generation || !self->running_) return;
    PaymentCall call;
    call.what = "refresh";
    call.started = started;
    call.finished = SteadyClock::now();
    call.result = info ? "ok" : "error";
    if (!info) call.error = info.error();
    self->record(std::move(call));
    if (self->generation_ != generation || !self->running_) return;  // stopped by on_call
    if (!info) {
      self->finish(PaymentLoopEnd::refresh_failed, info.error());
      return;
    }
    self->info_ = std::move(*info);
    if (self->callbacks_.on_info) self->callbacks_.on_info(self->info_);
    if (self->generation_ != generation || !self->running_) return;  // stopped by on_info
    next();
  });
}

void PaymentLoop::pay(const PaymentCredentials& credentials) {
  const SteadyTime started = SteadyClock::now();
  transfer_ = send_payment(
      engine_, info_.transcoder(), credentials.payment_header, credentials.segment_header,
      [weak = weak_from_this(), generation = generation_,
       started](Result<net::PaymentResult> result) {
        auto self = weak.lock();
        if (!self || self->generation_ != generation || !self->running_) return;
        self->transfer_.reset();
        PaymentCall call;
        call.what = "payment";
        call.started = started;
        call.finished = SteadyClock::now();
        if (result) {
          call.status = 200;
          call.result = "ok";
        } else {
          const std::string_view status = result.error().get("status");
          call.status = status.empty() ? 0 : std::atoi(std::string(status).c_str());
          call.result = "error";
          call.error = result.error();
        }
        self->record(std::move(call));
        if (self->generation_ != generation || !self->running_) return;
        if (!result) {
          ++self->payments_failed_;
          self->cycle_done();
          return;
        }
        ++self->payments_ok_;
        if (result->has_info()) {
          // New ticket parameters; the auth token stays valid even when the answer omits it.
          net::OrchestratorInfo info = std::move(*result->mutable_info());
          if (!info.has_auth_token()) *info.mutable_auth_token() = self->info_.auth_token();
          if (info.transcoder().empty()) info.set_transcoder(self->info_.transcoder());
          self->info_ = std::move(info);
          if (self->callbacks_.on_info) self->callbacks_.on_info(self->info_);
          if (self->generation_ != generation || !self->running_) return;
        }
        self->cycle_done();
      },
      options_.request_timeout, options_.tls);
}

void PaymentLoop::cycle_done() {
  if (running_) schedule();
}

void PaymentLoop::finish(PaymentLoopEnd end, std::optional<Error> error) {
  running_ = false;
  ++generation_;
  timer_.cancel();
  if (transfer_) {
    transfer_->cancel();
    transfer_.reset();
  }
  if (callbacks_.on_end) callbacks_.on_end(end, error);
}

void PaymentLoop::record(PaymentCall call) {
  if (callbacks_.on_call) callbacks_.on_call(call);
}

}  // namespace naap::orch

namespace naap::orch {

namespace {

using json = nlohmann::json;

// Go's encoding/json with protoc-gen-go tags: `omitempty` drops zero values and empty maps.
void put(json& j, const char* key, std::uint64_t v) {
  if (v != 0) j[key] = v;
}
void put(json& j, const char* key, std::int64_t v) {
  if (v != 0) j[key] = v;
}
void put(json& j, const char* key, const std::string& v) {
  if (!v.empty()) j[key] = v;
}

json capabilities_json(const net::Capabilities& c) {
  json j = json::object();
  if (c.bitstring_size() > 0)
    j["bitstring"] = std::vector<std::uint64_t>(c.bitstring().begin(), c.bitstring().end());
  if (c.mandatories_size() > 0)
    j["mandatories"] = std::vector<std::uint64_t>(c.mandatories().begin(), c.mandatories().end());
  if (!c.capacities().empty()) {
    json m = json::object();
    for (const auto& [cap, n] : c.capacities()) m[std::to_string(cap)] = n;
    j["capacities"] = std::move(m);
  }
  put(j, "version", c.version());
  if (c.has_constraints()) {
    json constraints = json::object();
    put(constraints, "minVersion", c.constraints().minversion());
    if (!c.constraints().percapability().empty()) {
      json per = json::object();
      for (const auto& [cap, cc] : c.constraints().percapability()) {
        json models = json::object();
        for (const auto& [model, mc] : cc.models()) {
          json m = json::object();
          if (mc.warm()) m["warm"] = true;
          put(m, "capacity", static_cast<std::uint64_t>(mc.capacity()));
          put(m, "runnerVersion", mc.runnerversion());
          put(m, "capacityInUse", static_cast<std::uint64_t>(mc.capacityinuse()));
          models[model] = std::move(m);
        }
        json entry = json::object();
        if (!models.empty()) entry["models"] = std::move(models);
        per[std::to_string(cap)] = std::move(entry);
      }
      constraints["PerCapability"] = std::move(per);
    }
    j["constraints"] = std::move(constraints);
  }
  return j;
}

json price_json(const net::PriceInfo& p) {
  json j = json::object();
  put(j, "pricePerUnit", static_cast<std::int64_t>(p.priceperunit()));
  put(j, "pixelsPerUnit", static_cast<std::int64_t>(p.pixelsperunit()));
  put(j, "capability", static_cast<std::uint64_t>(p.capability()));
  put(j, "constraint", p.constraint());
  return j;
}

json hardware_json(const net::HardwareInformation& h) {
  json j = json::object();
  put(j, "pipeline", h.pipeline());
  put(j, "model_id", h.model_id());
  if (!h.gpu_info().empty()) {
    json gpus = json::object();
    for (const auto& [id, g] : h.gpu_info()) {
      json gpu = json::object();
      put(gpu, "id", g.id());
      put(gpu, "name", g.name());
      put(gpu, "major", static_cast<std::uint64_t>(g.major()));
      put(gpu, "minor", static_cast<std::uint64_t>(g.minor()));
      put(gpu, "memory_free", static_cast<std::int64_t>(g.memory_free()));
      put(gpu, "memory_total", static_cast<std::int64_t>(g.memory_total()));
      gpus[id] = std::move(gpu);
    }
    j["gpu_info"] = std::move(gpus);
  }
  return j;
}

}  // namespace

json network_capabilities_entry(const net::OrchestratorInfo& info) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string address;
  if (!info.address().empty()) {
    address = "0x";
    for (unsigned char c : info.address()) {
      address += hex[c >> 4];
      address += hex[c & 15];
    }
  }
  json prices = json();  // Go: a nil slice is null
  if (info.capabilities_prices_size() > 0) {
    prices = json::array();
    for (const auto& p : info.capabilities_prices()) prices.push_back(price_json(p));
  } else if (info.has_price_info()) {
    prices = json::array({price_json(info.price_info())});
  }
  json hardware = json();
  if (info.hardware_size() > 0) {
    hardware = json::array();
    for (const auto& h : info.hardware()) hardware.push_back(hardware_json(h));
  }
  return {
      {"address", address},
      {"local_address", address},
      {"orch_uri", info.transcoder()},
      {"capabilities", info.has_capabilities() ? capabilities_json(info.capabilities()) : json()},
      {"capabilities_prices", std::move(prices)},
      {"hardware", std::move(hardware)}};
}

}  // namespace naap::orch
