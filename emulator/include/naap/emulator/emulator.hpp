// The emulated orchestrator: gRPC GetOrchestrator, POST /live-video-to-video, /payment and the
// trickle server on one TLS port, plus an emulated ai-runner per stream (decode, prompt-tinted
// frames, re-encode keeping every input PTS, events, fault injection) and ground truth under
// /debug/streams. See docs/emulator.md and ../shared/docs/PROTOCOL.md.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "naap/core/error.hpp"
#include "naap/emulator/faults.hpp"
#include "naap/emulator/orchestrator_rpc.hpp"

namespace naap::emulator {

struct EmulatorOptions {
  std::string listen_address = "127.0.0.1";  // IP to bind
  std::uint16_t port = 8935;                 // service port (gRPC + HTTPS); 0 = ephemeral
  std::string
      advertise_host;     // host put in URLs; default: the listen address (127.0.0.1 for 0.0.0.0)
  std::string cert_file;  // PEM certificate; empty = self-signed, generated at start
  std::string key_file;   // PEM private key for cert_file
  std::vector<ModelOffer> models;  // offered models; empty = noop, streamdiffusion,
                                   // streamdiffusion-sdxl, comfyui with 4 slots each
  std::vector<GpuOffer> gpus;      // advertised GPUs; empty = one RTX 4090
  FaultPlan faults;                // fault profiles per model and stream
  double load_time_s = 1.0;        // LOADING at stream start unless a fault profile says otherwise
  double reload_time_s = 2.0;      // LOADING after a reloading params update
  std::string encoder_preset = "superfast";  // x264 preset of the runner's encoder
  unsigned workers = 0;                      // codec threads; 0 = one per CPU core
  double ticket_seconds = 5.0;               // priced mode: stream seconds one payment ticket buys
  double no_input_stop_s = 60.0;         // the runner stops a stream after this long without input
  bool debug_routes = true;              // serve /debug/streams (ground truth)
  std::size_t keep_ended_streams = 256;  // ground truth of ended streams kept, count
};

class Emulator {
 public:
  // Everything network-side runs on `io`; call start()/stop() on io's thread or before run().
  Emulator(boost::asio::io_context& io, EmulatorOptions options);
  ~Emulator();
  Emulator(const Emulator&) = delete;
  Emulator& operator=(const Emulator&) = delete;

  Result<void> start();
  // Stops every stream (channels closed), the gRPC service and the listener.
  void stop();

  std::uint16_t port() const;
  // "host:port" as a gateway's --orchestrator flag takes it.
  std::string address() const;
  // "https://host:port", OrchestratorInfo.transcoder.
  std::string base_url() const;
  // SPKI pin of the serving certificate ("sha256//...").
  std::string certificate_pin() const;
  // The serving certificate (PEM), for clients that verify against it.
  std::string certificate_pem() const;

  std::size_t active_streams() const;
  // Ground truth of one stream (live or recently ended), null when unknown.
  nlohmann::json stream_truth(const std::string& manifest_id, bool with_frames = true) const;
  // Summaries of live and recently ended streams.
  nlohmann::json streams_summary() const;
  OrchestratorService& orchestrator();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace naap::emulator
