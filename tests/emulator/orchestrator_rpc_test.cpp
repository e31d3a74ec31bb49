// The emulated orchestrator's gRPC service through a real grpc++ client (TLS port and adopted
// socket), its auth tokens and fault injection, and the TLS identities it serves with.
#include "naap/emulator/orchestrator_rpc.hpp"

#include <grpcpp/create_channel.h>
#include <grpcpp/create_channel_posix.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "naap/transport/tls_identity.hpp"

namespace {

using namespace std::chrono_literals;
using naap::emulator::AuthTokens;
using naap::emulator::InUseFn;
using naap::emulator::k_capability_live_video_to_video;
using naap::emulator::ModelOffer;
using naap::emulator::OrchestratorConfig;
using naap::emulator::OrchestratorService;
using naap::emulator::RpcServer;
using std::chrono::system_clock;
using TokenCheck = AuthTokens::TokenCheck;

constexpr std::uint32_t k_lv2v = k_capability_live_video_to_video;

OrchestratorConfig two_models() {
  OrchestratorConfig config;
  config.transcoder_url = "https://orch.test:8935";
  config.models = {ModelOffer{.model_id = "streamdiffusion", .capacity = 4},
                   ModelOffer{.model_id = "noop", .warm = false, .capacity = 2}};
  config.gpus = {{.id = "0"}, {.id = "1", .name = "NVIDIA L40S", .memory_total = 48LL << 30}};
  config.nodes = {"https://node-b.test:8935"};
  return config;
}

OrchestratorConfig priced_models() {
  OrchestratorConfig config = two_models();
  config.models[0].price_per_unit = 1200;
  config.models[0].pixels_per_unit = 3;
  return config;
}

// What the Python gateway sends: bit 35, capacities[35] = 1, one empty ModelConstraint per model.
net::OrchestratorRequest lv2v_request(std::initializer_list<std::string> models,
                                      bool ignore_capacity = false) {
  net::OrchestratorRequest request;
  net::Capabilities& caps = *request.mutable_capabilities();
  caps.add_bitstring(std::uint64_t{1} << k_lv2v);
  (*caps.mutable_capacities())[k_lv2v] = 1;
  auto& per = (*caps.mutable_constraints()->mutable_percapability())[k_lv2v];
  for (const std::string& model : models) (*per.mutable_models())[model];
  request.set_ignorecapacitycheck(ignore_capacity);
  return request;
}

// Busy slots per model, changed by the test while the server runs.
class InUse {
 public:
  void set(const std::string& model, std::uint32_t busy) {
    std::lock_guard lock(mutex_);
    busy_[model] = busy;
  }
  InUseFn fn() {
    return [this](const std::string& model) {
      std::lock_guard lock(mutex_);
      auto it = busy_.find(model);
      return it == busy_.end() ? 0u : it->second;
    };
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::uint32_t> busy_;
};

// Service + server + client stub over a socketpair handed to RpcServer::adopt (no port).
struct Harness {
  std::shared_ptr<OrchestratorService> service;   // shared with the server
  std::unique_ptr<RpcServer> server;              // serves the adopted socket
  std::unique_ptr<net::Orchestrator::Stub> stub;  // client on the other end

  explicit Harness(OrchestratorConfig config, InUseFn in_use = {})
      : service(std::make_shared<OrchestratorService>(std::move(config), std::move(in_use))),
        server(std::make_unique<RpcServer>(service)) {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    server->adopt(fds[0]);
    stub = net::Orchestrator::NewStub(grpc::CreateInsecureChannelFromFd("adopted", fds[1]));
  }

  grpc::Status get(const net::OrchestratorRequest& request, net::OrchestratorInfo& info,
                   std::chrono::milliseconds deadline = 5s) {
    grpc::ClientContext context;
    context.set_deadline(system_clock::now() + deadline);
    return stub->GetOrchestrator(&context, request, &info);
  }
};

bool has_bit(const net::Capabilities& caps, std::uint32_t capability) {
  const int word = static_cast<int>(capability / 64);
  return caps.bitstring_size() > word && ((caps.bitstring(word) >> (capability % 64)) & 1) != 0;
}

const net::Capabilities::CapabilityConstraints::ModelConstraint& model_of(
    const net::OrchestratorInfo& info, const std::string& model) {
  return info.capabilities().constraints().percapability().at(k_lv2v).models().at(model);
}

// ---- TLS identities -----------------------------------------------------------------------

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free_all(b); }
};
struct NamesFree {
  void operator()(GENERAL_NAMES* n) const { GENERAL_NAMES_free(n); }
};

std::unique_ptr<X509, X509Free> parse(const std::string& pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return std::unique_ptr<X509, X509Free>(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

struct SanList {
  std::vector<std::string> dns;  // dNSName entries
  std::vector<std::string> ip;   // iPAddress entries as raw octets
};

SanList san_of(X509* cert) {
  SanList out;
  std::unique_ptr<GENERAL_NAMES, NamesFree> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    int type = 0;
    auto* value = static_cast<ASN1_STRING*>(GENERAL_NAME_get0_value(name, &type));
    std::string text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(value)),
                     static_cast<std::size_t>(ASN1_STRING_length(value)));
    (type == GEN_DNS ? out.dns : out.ip).push_back(text);
  }
  return out;
}

bool contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

TEST(OrchestratorRpc, self_signed_identity_parses_and_names_loopback_when_generated) {
  auto identity = naap::tls::make_self_signed({"orch.test", "10.1.2.3"});
  ASSERT_TRUE(identity) << identity.error().describe();
  EXPECT_TRUE(identity->key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
  auto cert = parse(identity->cert_pem);
  ASSERT_NE(cert, nullptr);
  EXPECT_EQ(X509_get_version(cert.get()), X509_VERSION_3);

  std::array<char, 256> cn{};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, cn.data(),
                            static_cast<int>(cn.size()));
  EXPECT_STREQ(cn.data(), "orch.test");

  const SanList san = san_of(cert.get());
  EXPECT_TRUE(contains(san.dns, "orch.test"));
  EXPECT_TRUE(contains(san.dns, "localhost"));
  EXPECT_TRUE(contains(san.ip, std::string("\x0a\x01\x02\x03", 4)));
  EXPECT_TRUE(contains(san.ip, std::string("\x7f\x00\x00\x01", 4)));
  EXPECT_TRUE(contains(san.ip, std::string(15, '\0') + "\x01"));  // ::1
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "127.0.0.1", 0), 1);

  // Valid now, and for about the requested year.
  EXPECT_LT(X509_cmp_current_time(X509_get0_notBefore(cert.get())), 0);
  EXPECT_GT(X509_cmp_time(X509_get0_notAfter(cert.get()), nullptr), 0);
  int days = 0;
  int seconds = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(cert.get())), 1);
  EXPECT_NEAR(days, 365, 1);
}

TEST(OrchestratorRpc, self_signed_identity_rejects_name_that_is_not_a_host) {
  auto identity = naap::tls::make_self_signed({"https://orch.test:8935"});
  ASSERT_FALSE(identity);
  EXPECT_EQ(identity.error().category, naap::ErrorCategory::config);
  EXPECT_EQ(identity.error().get("name"), "https://orch.test:8935");
}

TEST(OrchestratorRpc, load_identity_names_missing_path_and_reason_when_file_absent) {
  const std::string missing = "/nonexistent-naap-dir/orch-cert.pem";
  auto loaded = naap::tls::load_identity(missing, "/nonexistent-naap-dir/orch-key.pem");
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().get("path"), missing);
  EXPECT_NE(loaded.error().message.find(missing), std::string::npos) << loaded.error().message;
  EXPECT_FALSE(loaded.error().get("reason").empty());
}

TEST(OrchestratorRpc, load_identity_returns_files_and_rejects_mismatched_key) {
  auto first = naap::tls::make_self_signed({"a.test"});
  auto second = naap::tls::make_self_signed({"b.test"});
  ASSERT_TRUE(first && second);
  const auto dir =
      std::filesystem::temp_directory_path() / ("naap-rpc-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  };
  const std::string cert = write("cert.pem", first->cert_pem);
  const std::string key = write("key.pem", first->key_pem);
  const std::string other_key = write("other-key.pem", second->key_pem);

  auto loaded = naap::tls::load_identity(cert, key);
  ASSERT_TRUE(loaded) << loaded.error().describe();
  EXPECT_EQ(loaded->cert_pem, first->cert_pem);
  EXPECT_EQ(loaded->key_pem, first->key_pem);

  auto mismatched = naap::tls::load_identity(cert, other_key);
  ASSERT_FALSE(mismatched);
  EXPECT_EQ(mismatched.error().category, naap::ErrorCategory::tls);
  EXPECT_EQ(mismatched.error().get("path"), other_key);
  std::filesystem::remove_all(dir);
}

TEST(OrchestratorRpc, spki_pin_is_44_base64_chars_of_sha256_of_public_key) {
  auto identity = naap::tls::make_self_signed({"pin.test"});
  ASSERT_TRUE(identity);
  auto pin = naap::tls::spki_sha256_base64(identity->cert_pem);
  ASSERT_TRUE(pin) << pin.error().describe();
  EXPECT_EQ(pin->size(), 44u);
  EXPECT_EQ(pin->back(), '=');

  // Same digest computed independently from the certificate's public key.
  auto cert = parse(identity->cert_pem);
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(X509_get0_pubkey(cert.get()), &der);
  ASSERT_GT(len, 0);
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
  SHA256(der, static_cast<std::size_t>(len), digest.data());
  OPENSSL_free(der);
  std::array<unsigned char, 64> b64{};
  EVP_EncodeBlock(b64.data(), digest.data(), static_cast<int>(digest.size()));
  EXPECT_EQ(*pin, reinterpret_cast<const char*>(b64.data()));

  auto other = naap::tls::make_self_signed({"pin.test"});
  EXPECT_NE(*naap::tls::spki_sha256_base64(other->cert_pem), *pin);  // fresh key each time
  EXPECT_FALSE(naap::tls::spki_sha256_base64("not a certificate"));
}

// ---- GetOrchestrator over TLS ---------------------------------------------------------------

TEST(OrchestratorRpc, answers_over_tls_with_capability_35_and_live_model_capacity) {
  InUse in_use;
  in_use.set("streamdiffusion", 1);
  auto service = std::make_shared<OrchestratorService>(two_models(), in_use.fn());
  RpcServer server(service);
  auto identity = naap::tls::make_self_signed({"orch.test"});
  ASSERT_TRUE(identity);
  auto port = server.listen_tls("127.0.0.1", 0, *identity);
  ASSERT_TRUE(port) << port.error().describe();
  ASSERT_GT(*port, 0);

  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = identity->cert_pem;
  grpc::ChannelArguments args;
  args.SetString(GRPC_SSL_TARGET_NAME_OVERRIDE_ARG, "localhost");
  auto stub = net::Orchestrator::NewStub(grpc::CreateCustomChannel(
      "127.0.0.1:" + std::to_string(*port), grpc::SslCredentials(ssl), args));

  net::OrchestratorInfo info;
  grpc::ClientContext context;
  context.set_deadline(system_clock::now() + 5s);
  const auto asked_at = system_clock::now();
  grpc::Status status = stub->GetOrchestrator(&context, lv2v_request({"streamdiffusion"}), &info);
  ASSERT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();

  EXPECT_TRUE(has_bit(info.capabilities(), k_lv2v));
  EXPECT_EQ(info.capabilities().capacities().at(k_lv2v), 6u);
  EXPECT_EQ(info.transcoder(), "https://orch.test:8935");
  EXPECT_EQ(info.address().size(), 20u);
  ASSERT_EQ(info.nodes_size(), 1);
  EXPECT_EQ(info.nodes(0), "https://node-b.test:8935");

  const auto& sd = model_of(info, "streamdiffusion");
  EXPECT_TRUE(sd.warm());
  EXPECT_EQ(sd.capacity(), 3u);  // idle = 4 slots - 1 busy
  EXPECT_EQ(sd.capacityinuse(), 1u);
  EXPECT_EQ(sd.runnerversion(), "0.14.1");
  const auto& noop = model_of(info, "noop");
  EXPECT_FALSE(noop.warm());
  EXPECT_EQ(noop.capacity(), 2u);
  EXPECT_EQ(noop.capacityinuse(), 0u);

  // Auth token: 32 bytes, valid 30 min, known to the service.
  EXPECT_EQ(info.auth_token().token().size(), 32u);
  EXPECT_FALSE(info.auth_token().session_id().empty());
  const auto expected_expiry = system_clock::to_time_t(asked_at) + 1800;
  EXPECT_NEAR(static_cast<double>(info.auth_token().expiration()),
              static_cast<double>(expected_expiry), 5.0);
  EXPECT_EQ(service->tokens().check(info.auth_token().token()), TokenCheck::valid);

  // Unpriced and capabilities sent: no prices, tickets or hardware.
  EXPECT_FALSE(info.has_price_info());
  EXPECT_FALSE(info.has_ticket_params());
  EXPECT_EQ(info.hardware_size(), 0);
  EXPECT_EQ(info.capabilities_prices_size(), 0);

  // The live in-use source is read on every call.
  in_use.set("streamdiffusion", 3);
  in_use.set("noop", 5);  // more busy than slots: idle stays 0
  net::OrchestratorInfo again;
  grpc::ClientContext context2;
  context2.set_deadline(system_clock::now() + 5s);
  ASSERT_TRUE(stub->GetOrchestrator(&context2, lv2v_request({"streamdiffusion"}), &again).ok());
  EXPECT_EQ(model_of(again, "streamdiffusion").capacity(), 1u);
  EXPECT_EQ(model_of(again, "streamdiffusion").capacityinuse(), 3u);
  EXPECT_EQ(model_of(again, "noop").capacity(), 0u);
  EXPECT_EQ(model_of(again, "noop").capacityinuse(), 5u);
  EXPECT_NE(again.auth_token().token(), info.auth_token().token());  // fresh per call
  EXPECT_EQ(service->calls(), 2u);
  server.shutdown(system_clock::now() + 1s);
}

TEST(OrchestratorRpc, listen_tls_fails_when_server_already_started_by_adopt) {
  Harness h(two_models());
  auto identity = naap::tls::make_self_signed({});
  ASSERT_TRUE(identity);
  auto port = h.server->listen_tls("127.0.0.1", 0, *identity);
  EXPECT_FALSE(port);
}

// ---- GetOrchestrator over an adopted socket --------------------------------------------------

TEST(OrchestratorRpc, adopted_socket_serves_calls_when_no_port_listens) {
  Harness h(two_models());
  net::OrchestratorInfo info;
  grpc::Status status = h.get(lv2v_request({"noop"}), info);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(has_bit(info.capabilities(), k_lv2v));
  EXPECT_EQ(info.transcoder(), "https://orch.test:8935");
  EXPECT_TRUE(h.server->running());

  // Ping: SHA-256 of the value stands in for the signature.
  net::PingPong ping;
  ping.set_value("hello");
  net::PingPong pong;
  grpc::ClientContext context;
  context.set_deadline(system_clock::now() + 5s);
  ASSERT_TRUE(h.stub->Ping(&context, ping, &pong).ok());
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
  SHA256(reinterpret_cast<const unsigned char*>("hello"), 5, digest.data());
  EXPECT_EQ(pong.value(), std::string(reinterpret_cast<const char*>(digest.data()), 32));
}

TEST(OrchestratorRpc, refuses_with_orchestrator_capped_when_requested_model_is_full) {
  InUse in_use;
  in_use.set("streamdiffusion", 4);
  Harness h(two_models(), in_use.fn());
  net::OrchestratorInfo info;
  grpc::Status status = h.get(lv2v_request({"streamdiffusion"}), info);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_EQ(status.error_message(), "Invalid orchestrator request: OrchestratorCapped");

  // One requested model with an idle slot is enough.
  net::OrchestratorInfo either;
  EXPECT_TRUE(h.get(lv2v_request({"streamdiffusion", "noop"}), either).ok());
}

TEST(OrchestratorRpc, answers_full_model_when_ignore_capacity_check_is_set) {
  InUse in_use;
  in_use.set("streamdiffusion", 4);
  Harness h(two_models(), in_use.fn());
  net::OrchestratorInfo info;
  grpc::Status status = h.get(lv2v_request({"streamdiffusion"}, true), info);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(model_of(info, "streamdiffusion").capacity(), 0u);
  EXPECT_EQ(model_of(info, "streamdiffusion").capacityinuse(), 4u);
  EXPECT_EQ(info.auth_token().token().size(), 32u);
}

TEST(OrchestratorRpc, rejects_request_when_model_is_not_offered) {
  Harness h(two_models());
  net::OrchestratorInfo info;
  for (bool ignore_capacity : {false, true}) {
    grpc::Status status = h.get(lv2v_request({"comfyui"}, ignore_capacity), info);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNKNOWN);
    EXPECT_TRUE(status.error_message().starts_with("Invalid orchestrator request"))
        << status.error_message();
    EXPECT_NE(status.error_message().find("comfyui"), std::string::npos);
  }
}

TEST(OrchestratorRpc, prices_requested_model_and_sends_ticket_params_when_priced) {
  Harness h(priced_models());
  net::OrchestratorInfo info;
  ASSERT_TRUE(h.get(lv2v_request({"streamdiffusion"}), info).ok());
  ASSERT_TRUE(info.has_price_info());
  EXPECT_EQ(info.price_info().priceperunit(), 1200);
  EXPECT_EQ(info.price_info().pixelsperunit(), 3);
  EXPECT_EQ(info.price_info().capability(), k_lv2v);
  EXPECT_EQ(info.price_info().constraint(), "streamdiffusion");

  ASSERT_TRUE(info.has_ticket_params());
  const net::TicketParams& ticket = info.ticket_params();
  EXPECT_EQ(ticket.recipient(), info.address());
  EXPECT_FALSE(ticket.face_value().empty());
  EXPECT_FALSE(ticket.win_prob().empty());
  EXPECT_EQ(ticket.recipient_rand_hash().size(), 32u);
  EXPECT_EQ(ticket.seed().size(), 32u);
  EXPECT_FALSE(ticket.expiration_block().empty());
  EXPECT_GT(ticket.expiration_params().creation_round(), 0);
  EXPECT_EQ(ticket.expiration_params().creation_round_block_hash().size(), 32u);

  // The free model of a priced orchestrator is answered with its zero price.
  net::OrchestratorInfo free_model;
  ASSERT_TRUE(h.get(lv2v_request({"noop"}), free_model).ok());
  EXPECT_EQ(free_model.price_info().priceperunit(), 0);
  EXPECT_EQ(free_model.price_info().constraint(), "noop");
}

TEST(OrchestratorRpc, lists_hardware_and_prices_only_when_no_capabilities_sent) {
  Harness h(priced_models());
  net::OrchestratorInfo info;
  ASSERT_TRUE(h.get(net::OrchestratorRequest(), info).ok());
  ASSERT_EQ(info.hardware_size(), 2);
  for (const net::HardwareInformation& hw : info.hardware()) {
    EXPECT_EQ(hw.pipeline(), "live-video-to-video");
    ASSERT_EQ(hw.gpu_info_size(), 2);
    EXPECT_EQ(hw.gpu_info().at("0").name(), "NVIDIA GeForce RTX 4090");
    EXPECT_EQ(hw.gpu_info().at("0").major(), 8u);
    EXPECT_EQ(hw.gpu_info().at("0").minor(), 9u);
    EXPECT_EQ(hw.gpu_info().at("1").memory_total(), 48LL << 30);
  }
  EXPECT_EQ(info.hardware(0).model_id(), "streamdiffusion");
  EXPECT_EQ(info.hardware(1).model_id(), "noop");
  ASSERT_EQ(info.capabilities_prices_size(), 2);
  EXPECT_EQ(info.capabilities_prices(0).constraint(), "streamdiffusion");
  EXPECT_EQ(info.capabilities_prices(0).priceperunit(), 1200);
  EXPECT_EQ(info.capabilities_prices(0).capability(), k_lv2v);
  EXPECT_EQ(info.capabilities_prices(1).constraint(), "noop");
  EXPECT_EQ(info.capabilities_prices(1).priceperunit(), 0);
  EXPECT_TRUE(has_bit(info.capabilities(), k_lv2v));

  net::OrchestratorInfo with_caps;
  ASSERT_TRUE(h.get(lv2v_request({"noop"}), with_caps).ok());
  EXPECT_EQ(with_caps.hardware_size(), 0);
  EXPECT_EQ(with_caps.capabilities_prices_size(), 0);
}

TEST(OrchestratorRpc, uses_configured_address_and_new_config_when_swapped) {
  OrchestratorConfig config = two_models();
  config.eth_address_hex = "0x00112233445566778899AABBCCDDEEFF00112233";
  Harness h(config);
  net::OrchestratorInfo info;
  ASSERT_TRUE(h.get(lv2v_request({"noop"}), info).ok());
  EXPECT_EQ(info.address(), std::string("\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd"
                                        "\xee\xff\x00\x11\x22\x33",
                                        20));

  config.transcoder_url = "https://moved.test:9000";
  config.models.push_back(ModelOffer{.model_id = "comfyui"});
  ASSERT_TRUE(h.service->set_config(config));
  ASSERT_TRUE(h.get(lv2v_request({"comfyui"}), info).ok());
  EXPECT_EQ(info.transcoder(), "https://moved.test:9000");
  EXPECT_EQ(info.capabilities().capacities().at(k_lv2v), 10u);

  config.eth_address_hex = "0xnothex";
  EXPECT_FALSE(h.service->set_config(config));
  EXPECT_EQ(h.service->config().transcoder_url, "https://moved.test:9000");  // old one kept
  EXPECT_EQ(h.service->calls(), 2u);
}

// ---- auth tokens -----------------------------------------------------------------------------

TEST(OrchestratorRpc, auth_tokens_read_valid_expired_unknown_with_simulated_clock) {
  system_clock::time_point now = system_clock::from_time_t(1'700'000'000);
  AuthTokens tokens(1800s, [&now] { return now; });
  const auto issued = tokens.issue();
  EXPECT_EQ(issued.token.size(), 32u);
  EXPECT_EQ(issued.expiration, 1'700'000'000 + 1800);
  EXPECT_EQ(tokens.check(issued.token), TokenCheck::valid);

  now += 1799s;
  EXPECT_EQ(tokens.check(issued.token), TokenCheck::valid);
  now += 1s;
  EXPECT_EQ(tokens.check(issued.token), TokenCheck::expired);
  EXPECT_EQ(tokens.check(std::string(32, 'x')), TokenCheck::unknown);
  EXPECT_EQ(tokens.check(""), TokenCheck::unknown);
  EXPECT_STREQ(naap::emulator::to_string(TokenCheck::expired), "expired");
}

TEST(OrchestratorRpc, auth_tokens_forget_long_expired_tokens_when_issuing) {
  system_clock::time_point now = system_clock::from_time_t(1'700'000'000);
  AuthTokens tokens(60s, [&now] { return now; });
  std::vector<std::string> old;
  for (int i = 0; i < 100; ++i) old.push_back(tokens.issue().token);
  EXPECT_EQ(tokens.size(), 100u);

  now += 121s;  // expired for more than one TTL
  const auto fresh = tokens.issue();
  EXPECT_EQ(tokens.size(), 1u);
  EXPECT_EQ(tokens.check(old.front()), TokenCheck::unknown);
  EXPECT_EQ(tokens.check(fresh.token), TokenCheck::valid);
}

// ---- faults and shutdown ---------------------------------------------------------------------

TEST(OrchestratorRpc, hang_fault_lets_client_deadline_fire) {
  OrchestratorConfig config = two_models();
  config.faults.hang = true;
  Harness h(config);
  net::OrchestratorInfo info;
  const auto started = std::chrono::steady_clock::now();
  grpc::Status status = h.get(lv2v_request({"noop"}), info, 300ms);
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_GE(took, 290ms);
  EXPECT_LT(took, 2s);
  EXPECT_EQ(h.service->calls(), 1u);

  // Clearing the fault at run time restores answers.
  config.faults.hang = false;
  ASSERT_TRUE(h.service->set_config(config));
  EXPECT_TRUE(h.get(lv2v_request({"noop"}), info).ok());
}

TEST(OrchestratorRpc, fail_code_fault_reaches_client_with_its_message) {
  OrchestratorConfig config = two_models();
  config.faults.fail_code = grpc::StatusCode::RESOURCE_EXHAUSTED;
  config.faults.fail_message = "emulated overload";
  Harness h(config);
  net::OrchestratorInfo info;
  grpc::Status status = h.get(lv2v_request({"noop"}), info);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(status.error_message(), "emulated overload");
  EXPECT_EQ(h.service->calls(), 1u);
}

TEST(OrchestratorRpc, shutdown_returns_promptly_with_hung_call_in_flight) {
  OrchestratorConfig config = two_models();
  config.faults.hang = true;
  Harness h(config);
  std::atomic<int> code{-1};
  std::thread caller([&] {
    net::OrchestratorInfo info;
    code = static_cast<int>(h.get(lv2v_request({"noop"}), info, 30s).error_code());
  });
  for (int i = 0; i < 200 && h.service->calls() == 0; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(h.service->calls(), 1u);

  const auto started = std::chrono::steady_clock::now();
  h.server->shutdown(system_clock::now() + 10s);
  const auto took = std::chrono::steady_clock::now() - started;
  caller.join();
  EXPECT_LT(took, 2s);
  EXPECT_NE(code.load(), static_cast<int>(grpc::StatusCode::OK));
  EXPECT_NE(code.load(), static_cast<int>(grpc::StatusCode::DEADLINE_EXCEEDED));
  EXPECT_FALSE(h.server->running());
}

}  // namespace
