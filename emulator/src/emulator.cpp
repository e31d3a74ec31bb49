// The emulated orchestrator: one TLS port carrying gRPC (ALPN h2, relayed to the gRPC server),
// the job-start and payment routes, the trickle server, and the debug routes; one RunnerStream
// per job. PROTOCOL.md §2–§5 is the contract.
#include "naap/emulator/emulator.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <deque>
#include <map>
#include <mutex>

#include "naap/core/log.hpp"
#include "naap/transport/http_engine.hpp"
#include "naap/transport/tls_identity.hpp"
#include "naap/transport/trickle_server.hpp"
#include "net.pb.h"
#include "runner.hpp"

namespace naap::emulator {
namespace {

namespace asio = boost::asio;
using json = nlohmann::json;
using trickle::AppRequest;
using trickle::AppResponse;

AppResponse text(unsigned status, std::string body) {
  AppResponse r;
  r.status = status;
  r.body = std::move(body) + "\n";
  return r;
}

AppResponse json_response(unsigned status, const json& body) {
  AppResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.body = body.dump();
  return r;
}

// Standard base64 (with or without padding); nullopt on any other character.
std::optional<std::string> base64_decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  std::string out;
  out.reserve(in.size() * 3 / 4);
  std::uint32_t buffer = 0;
  int bits = 0;
  for (char c : in) {
    const int v = value(c);
    if (v < 0) return std::nullopt;
    buffer = (buffer << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  return out;
}

std::string random_hex(std::size_t bytes) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  static const char* k_digits = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < bytes; ++i) {
    const auto b = static_cast<unsigned>(rng() & 0xff);
    out.push_back(k_digits[b >> 4]);
    out.push_back(k_digits[b & 15]);
  }
  return out;
}

std::vector<ModelOffer> default_models() {
  std::vector<ModelOffer> models;
  for (const char* id : {"noop", "streamdiffusion", "streamdiffusion-sdxl", "comfyui"}) {
    ModelOffer m;
    m.model_id = id;
    models.push_back(m);
  }
  return models;
}

}  // namespace

struct Emulator::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io_context, EmulatorOptions opts)
      : io(io_context), options(std::move(opts)), engine(io_context), pool(options.workers) {}

  asio::io_context& io;
  EmulatorOptions options;
  http::Engine engine;                             // the runners' trickle clients
  WorkerPool pool;                                 // decode/encode threads
  std::unique_ptr<trickle::TrickleServer> server;  // HTTPS + trickle on the service port
  std::shared_ptr<OrchestratorService> service;    // GetOrchestrator
  std::unique_ptr<RpcServer> rpc;                  // gRPC behind the h2 relay
  std::string pin;                                 // serving certificate's SPKI pin
  std::string cert_pem;                            // serving certificate
  std::string host;                                // host used in URLs
  std::uint16_t bound_port = 0;                    // service port
  bool running = false;

  mutable std::mutex mutex;  // guards the two maps below (the gRPC thread reads in_use)
  std::map<std::string, std::shared_ptr<RunnerStream>> streams;  // live, by mid
  std::map<std::string, std::uint32_t> in_use;                   // live streams per model
  std::deque<std::shared_ptr<StreamTruth>> ended;                // recently ended, oldest first

  std::string base_url() const { return "https://" + host + ":" + std::to_string(bound_port); }

  const ModelOffer* find_model(const std::string& id) const {
    for (const auto& m : options.models) {
      if (m.model_id == id) return &m;
    }
    return nullptr;
  }

  Result<void> start() {
    if (options.models.empty()) options.models = default_models();
    if (options.gpus.empty()) {
      GpuOffer gpu;
      gpu.id = "0";
      options.gpus.push_back(gpu);
    }
    host = options.advertise_host;
    if (host.empty()) {
      host = options.listen_address == "0.0.0.0" || options.listen_address == "::"
                 ? "127.0.0.1"
                 : options.listen_address;
    }
    Result<tls::Identity> identity = options.cert_file.empty()
                                         ? tls::make_self_signed({host, "localhost"})
                                         : tls::load_identity(options.cert_file, options.key_file);
    if (!identity) return fail(identity.error());
    if (auto p = tls::spki_sha256_base64(identity->cert_pem)) pin = "sha256//" + *p;
    cert_pem = identity->cert_pem;

    auto context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    boost::system::error_code ec;
    context->use_certificate_chain(asio::buffer(identity->cert_pem), ec);
    if (!ec) context->use_private_key(asio::buffer(identity->key_pem), asio::ssl::context::pem, ec);
    if (ec) {
      return fail(Error(ErrorCategory::tls, "cannot use the certificate: " + ec.message())
                      .with("cert", options.cert_file.empty() ? "self-signed" : options.cert_file));
    }

    OrchestratorConfig config;
    config.models = options.models;
    config.gpus = options.gpus;
    std::weak_ptr<Impl> weak = weak_from_this();
    service = std::make_shared<OrchestratorService>(
        config, [weak](const std::string& model) -> std::uint32_t {
          auto self = weak.lock();
          if (!self) return 0;
          std::lock_guard lock(self->mutex);
          auto it = self->in_use.find(model);
          return it == self->in_use.end() ? 0 : it->second;
        });
    rpc = std::make_unique<RpcServer>(service);

    trickle::ServerOptions server_options;
    server_options.tls = context;
    server_options.app_handler = [weak](const AppRequest& request) {
      auto self = weak.lock();
      if (!self) return text(503, "shutting down");
      return self->handle(request);
    };
    server_options.h2_handler = [weak](int fd) {
      auto self = weak.lock();
      if (!self) {
        ::close(fd);
        return;
      }
      self->rpc->adopt(fd);
    };
    server = std::make_unique<trickle::TrickleServer>(io, server_options);
    auto port = server->listen(options.listen_address, options.port);
    if (!port) return fail(port.error());
    bound_port = *port;
    auto internal = server->listen_internal("127.0.0.1", 0);
    if (!internal) return fail(internal.error());
    config.transcoder_url = base_url();
    if (auto set = service->set_config(config); !set) return fail(set.error());
    running = true;
    log::info("emulator_listening", {{"address", host + ":" + std::to_string(bound_port)},
                                     {"transcoder", base_url()},
                                     {"models", options.models.size()},
                                     {"pin", pin}});
    return {};
  }

  void stop() {
    if (!running) return;
    running = false;
    std::map<std::string, std::shared_ptr<RunnerStream>> live;
    {
      std::lock_guard lock(mutex);
      live = streams;
    }
    for (auto& [mid, stream] : live) stream->stop("emulator shutting down");
    if (service) service->stop();
    if (rpc) rpc->shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    if (server) server->stop();
  }

  // ---- routes ---------------------------------------------------------------------------------

  AppResponse handle(const AppRequest& request) {
    const std::string_view path = request.path();
    if (path == "/live-video-to-video") {
      if (request.method != "POST") return text(405, "Method Not Allowed");
      return start_job(request);
    }
    if (path == "/payment") {
      if (request.method != "POST") return text(405, "Method Not Allowed");
      return payment(request);
    }
    if (path == "/healthz") return text(200, "ok");
    if (options.debug_routes && request.method == "GET") {
      if (path == "/debug/streams") return json_response(200, summary());
      constexpr std::string_view prefix = "/debug/streams/";
      if (path.starts_with(prefix)) {
        const std::string mid(path.substr(prefix.size()));
        const bool frames = request.target.find("frames=0") == std::string::npos;
        json truth = truth_for(mid, frames);
        if (truth.is_null()) return text(404, "no such stream: " + mid);
        return json_response(200, truth);
      }
    }
    return text(404, "404 page not found");
  }

  // The Livepeer-Segment credentials: a SegData with a valid auth token (PROTOCOL.md §3.1).
  std::optional<AppResponse> check_segment(const AppRequest& request, net::SegData& seg) {
    const std::string_view header = request.header("Livepeer-Segment");
    if (header.empty())
      return text(403, "Could not verify segment creds: missing Livepeer-Segment");
    auto bytes = base64_decode(header);
    if (!bytes || !seg.ParseFromString(*bytes)) {
      return text(403, "Could not verify segment creds: Livepeer-Segment is not base64 SegData");
    }
    if (!seg.has_auth_token() || seg.auth_token().token().empty()) {
      return text(403, "Could not verify segment creds: missing auth token");
    }
    switch (service->tokens().check(seg.auth_token().token())) {
      case AuthTokens::TokenCheck::valid:
        return std::nullopt;
      case AuthTokens::TokenCheck::expired:
        return text(403, "Could not verify segment creds: expired auth token");
      case AuthTokens::TokenCheck::unknown:
        break;
    }
    return text(403, "Could not verify segment creds: invalid auth token");
  }

  // Livepeer-Payment: empty is allowed (off-chain); anything else must decode (402).
  std::optional<AppResponse> decode_payment(const AppRequest& request, net::Payment& payment) {
    const std::string_view header = request.header("Livepeer-Payment");
    if (header.empty()) return std::nullopt;
    auto bytes = base64_decode(header);
    if (!bytes || !payment.ParseFromString(*bytes)) {
      return text(402, "Could not parse payment: Livepeer-Payment is not base64 Payment");
    }
    return std::nullopt;
  }

  bool priced(const ModelOffer& model) const { return model.price_per_unit > 0; }

  AppResponse start_job(const AppRequest& request) {
    json body = json::parse(request.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      return text(400, "invalid request body: not a JSON object");
    }
    auto model_field = body.find("model_id");
    if (model_field == body.end() || !model_field->is_string() ||
        model_field->get<std::string>().empty()) {
      return text(400, "invalid request body: model_id is required");
    }
    const std::string model_id = model_field->get<std::string>();
    const ModelOffer* model = find_model(model_id);
    if (!model) {
      std::string offered;
      for (const auto& m : options.models) offered += (offered.empty() ? "" : ", ") + m.model_id;
      return text(400, "unknown model_id '" + model_id + "' (offered: " + offered + ")");
    }
    json params = body.value("params", json::object());
    if (!params.is_object()) return text(400, "invalid request body: params must be an object");
    for (const char* key : {"width", "height"}) {
      if (!params.contains(key)) continue;
      const auto& v = params[key];
      if (!v.is_number_integer() || v.get<int>() < 384 || v.get<int>() > 1024 ||
          v.get<int>() % 64 != 0) {
        return text(400, std::string("invalid params: ") + key +
                             " must be a multiple of 64 between 384 and 1024");
      }
    }
    auto string_field = [&](const char* key, std::string_view header) {
      if (body.contains(key) && body[key].is_string()) return body[key].get<std::string>();
      return std::string(request.header(header));
    };
    const std::string stream_id = string_field("stream_id", "streamID");
    const std::string request_id = string_field("gateway_request_id", "requestID");
    FaultProfile faults = options.faults.for_stream(model_id, stream_id);
    if (faults.start_status) {
      const int status = *faults.start_status;
      log::info("emulator_start_fault", {{"model_id", model_id}, {"status", status}});
      return text(static_cast<unsigned>(status), status == 503
                                                     ? "insufficient capacity"
                                                     : "runner failed to start (emulated fault)");
    }
    {
      std::lock_guard lock(mutex);
      if (in_use[model_id] >= model->capacity) return text(503, "insufficient capacity");
    }
    net::Payment payment;
    if (auto refused = decode_payment(request, payment)) return *refused;
    net::SegData seg;
    if (auto refused = check_segment(request, seg)) return *refused;
    double balance = -1;
    if (priced(*model)) {
      const auto tickets = payment.ticket_sender_params_size();
      if (tickets == 0) return text(400, "Insufficient balance");
      balance = tickets * options.ticket_seconds;
    }

    StreamSetup setup;
    setup.manifest_id = random_hex(8);
    setup.stream_id = stream_id;
    setup.request_id = request_id;
    setup.model_id = model_id;
    setup.params = params;
    setup.faults = faults;
    setup.internal_base = server->internal_base_url();
    setup.load_time_s = options.load_time_s;
    setup.reload_time_s = options.reload_time_s;
    setup.no_input_stop_s = options.no_input_stop_s;
    setup.encoder_preset = options.encoder_preset;
    setup.balance_s = balance;
    const std::string mid = setup.manifest_id;
    // The orchestrator creates the four channels before it answers (PROTOCOL.md §1.2).
    server->create_channel(mid, "video/MP2T");
    server->create_channel(mid + "-out", "video/MP2T");
    server->create_channel(mid + "-control", "application/json");
    server->create_channel(mid + "-events", "application/json");
    std::weak_ptr<Impl> weak = weak_from_this();
    auto stream =
        std::make_shared<RunnerStream>(io, engine, pool, std::move(setup),
                                       [weak](const std::string& ended_mid, const std::string&) {
                                         if (auto self = weak.lock()) self->stream_ended(ended_mid);
                                       });
    {
      std::lock_guard lock(mutex);
      streams[mid] = stream;
      ++in_use[model_id];
    }
    stream->start();
    const std::string trickle_base = base_url() + "/ai/trickle/" + mid;
    return json_response(200, json{{"publish_url", trickle_base},
                                   {"subscribe_url", trickle_base + "-out"},
                                   {"control_url", trickle_base + "-control"},
                                   {"events_url", trickle_base + "-events"},
                                   {"manifest_id", mid}});
  }

  AppResponse payment(const AppRequest& request) {
    net::Payment payment;
    if (request.header("Livepeer-Payment").empty()) return text(402, "missing Livepeer-Payment");
    if (auto refused = decode_payment(request, payment)) return *refused;
    net::SegData seg;
    if (auto refused = check_segment(request, seg)) return *refused;
    std::shared_ptr<RunnerStream> stream;
    {
      std::lock_guard lock(mutex);
      auto it = streams.find(seg.manifestid());
      if (it != streams.end()) stream = it->second;
    }
    if (!stream) return text(400, "payment for an unknown manifest id '" + seg.manifestid() + "'");
    stream->credit(payment.ticket_sender_params_size() * options.ticket_seconds);
    net::PaymentResult result;
    net::OrchestratorRequest info_request;
    auto info = service->build_info(info_request);
    if (info) {
      *result.mutable_info() = *info;
      *result.mutable_info()->mutable_auth_token() = seg.auth_token();  // the token is kept
    }
    AppResponse r;
    r.content_type = "application/x-protobuf";
    r.body = result.SerializeAsString();
    return r;
  }

  void stream_ended(const std::string& mid) {
    std::shared_ptr<RunnerStream> stream;
    {
      std::lock_guard lock(mutex);
      auto it = streams.find(mid);
      if (it == streams.end()) return;
      stream = it->second;
      streams.erase(it);
      auto& count = in_use[stream->model_id()];
      if (count > 0) --count;
      ended.push_back(stream->truth());
      while (ended.size() > options.keep_ended_streams) ended.pop_front();
    }
    // A stopped runner means a closed job: all four channels go (PROTOCOL.md §5.1).
    for (const char* suffix : {"", "-out", "-control", "-events"}) {
      server->close_channel(mid + suffix);
    }
    // The stream object may be inside its own callback: release it later.
    asio::post(io, [stream] {});
  }

  json truth_for(const std::string& mid, bool frames) const {
    std::shared_ptr<StreamTruth> truth;
    {
      std::lock_guard lock(mutex);
      if (auto it = streams.find(mid); it != streams.end()) {
        truth = it->second->truth();
      } else {
        for (const auto& t : ended) {
          if (t->manifest_id == mid) truth = t;
        }
      }
    }
    return truth ? truth->to_json(frames) : json();
  }

  json summary() const {
    json live = json::array();
    json done = json::array();
    std::vector<std::shared_ptr<StreamTruth>> live_truths;
    std::vector<std::shared_ptr<StreamTruth>> ended_truths;
    {
      std::lock_guard lock(mutex);
      for (const auto& [mid, s] : streams) live_truths.push_back(s->truth());
      ended_truths.assign(ended.begin(), ended.end());
    }
    auto brief = [](const std::shared_ptr<StreamTruth>& t) {
      json full = t->to_json(false);
      return json{{"manifest_id", full["manifest_id"]},
                  {"stream_id", full["stream_id"]},
                  {"model_id", full["model_id"]},
                  {"started_us", full["started_us"]},
                  {"ended_us", full["ended_us"]},
                  {"end_reason", full["end_reason"]},
                  {"counts", full["counts"]}};
    };
    for (const auto& t : live_truths) live.push_back(brief(t));
    for (const auto& t : ended_truths) done.push_back(brief(t));
    return json{{"live", live}, {"ended", done}};
  }
};

Emulator::Emulator(asio::io_context& io, EmulatorOptions options)
    : impl_(std::make_shared<Impl>(io, std::move(options))) {}

Emulator::~Emulator() {
  impl_->stop();
}

Result<void> Emulator::start() {
  return impl_->start();
}

void Emulator::stop() {
  impl_->stop();
}

std::uint16_t Emulator::port() const {
  return impl_->bound_port;
}

std::string Emulator::address() const {
  return impl_->host + ":" + std::to_string(impl_->bound_port);
}

std::string Emulator::base_url() const {
  return impl_->base_url();
}

std::string Emulator::certificate_pin() const {
  return impl_->pin;
}

std::string Emulator::certificate_pem() const {
  return impl_->cert_pem;
}

std::size_t Emulator::active_streams() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->streams.size();
}

nlohmann::json Emulator::stream_truth(const std::string& manifest_id, bool with_frames) const {
  return impl_->truth_for(manifest_id, with_frames);
}

nlohmann::json Emulator::streams_summary() const {
  return impl_->summary();
}

OrchestratorService& Emulator::orchestrator() {
  return *impl_->service;
}

}  // namespace naap::emulator
