// `naap-loadtest emulate`: serve an emulated orchestrator (gRPC + HTTPS + trickle on one port)
// with its runner, fault injection and ground truth. See docs/emulator.md.
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstdio>
#include <cxxopts.hpp>

#include "commands.hpp"
#include "naap/core/log.hpp"
#include "naap/emulator/emulator.hpp"

namespace naap::cli {
namespace {

// "id[:capacity=N][:warm=BOOL][:price=WEI][:pixels=N]" (cxxopts splits list values on commas)
Result<emulator::ModelOffer> parse_model(const std::string& spec) {
  emulator::ModelOffer model;
  std::size_t start = 0;
  bool first = true;
  while (start <= spec.size()) {
    const auto comma = spec.find(':', start);
    const std::string part =
        spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? spec.size() + 1 : comma + 1;
    if (first) {
      model.model_id = part;
      first = false;
      continue;
    }
    const auto eq = part.find('=');
    const std::string key = part.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : part.substr(eq + 1);
    try {
      if (key == "capacity") {
        const long n = std::stol(value);
        if (n < 0) throw std::out_of_range("negative");
        model.capacity = static_cast<std::uint32_t>(n);
      } else if (key == "warm") {
        model.warm = value != "false" && value != "0";
      } else if (key == "price") {
        model.price_per_unit = std::stoll(value);
      } else if (key == "pixels") {
        model.pixels_per_unit = std::stoll(value);
      } else {
        return fail(Error(ErrorCategory::config,
                          "unknown model attribute '" + key + "' (capacity, warm, price, pixels)")
                        .with("model", spec));
      }
    } catch (const std::exception&) {
      return fail(Error(ErrorCategory::config, "'" + value + "' is not a number for " + key)
                      .with("model", spec));
    }
  }
  if (model.model_id.empty()) {
    return fail(Error(ErrorCategory::config, "empty model id").with("model", spec));
  }
  return model;
}

}  // namespace

int run_emulate(int argc, char** argv) {
  cxxopts::Options options("naap-loadtest emulate",
                           "Serve an emulated Livepeer orchestrator and runner (off-chain).");
  options.add_options()("listen", "IP address to bind",
                        cxxopts::value<std::string>()->default_value("127.0.0.1"))(
      "port", "service port for gRPC, HTTPS and trickle (0 = any free port)",
      cxxopts::value<int>()->default_value("8935"))(
      "advertise-host", "host name put in URLs (default: the listen address)",
      cxxopts::value<std::string>()->default_value(""))(
      "cert", "PEM certificate (default: self-signed, generated at start)",
      cxxopts::value<std::string>()->default_value(""))(
      "key", "PEM private key for --cert", cxxopts::value<std::string>()->default_value(""))(
      "model", "offered model: ID[:capacity=N][:warm=false][:price=WEI][:pixels=N] (repeatable)",
      cxxopts::value<std::vector<std::string>>())("gpu", "advertised GPU name (repeatable)",
                                                  cxxopts::value<std::vector<std::string>>())(
      "fault", "fault for every stream, KEY=VALUE (repeatable; docs/emulator.md)",
      cxxopts::value<std::vector<std::string>>())("faults",
                                                  "JSON fault plan: {default, models, streams}",
                                                  cxxopts::value<std::string>()->default_value(""))(
      "load-time", "seconds of LOADING at stream start",
      cxxopts::value<double>()->default_value("1.0"))(
      "reload-time", "seconds of LOADING after a reloading params update",
      cxxopts::value<double>()->default_value("2.0"))(
      "preset", "x264 preset of the runner's encoder",
      cxxopts::value<std::string>()->default_value("superfast"))(
      "workers", "codec threads (0 = one per core)", cxxopts::value<int>()->default_value("0"))(
      "ticket-seconds", "priced models: stream seconds one payment ticket buys",
      cxxopts::value<double>()->default_value("5"))("no-debug", "do not serve /debug/streams");
  int exit_code = k_exit_ok;
  auto args = parse_args(options, argc, argv, exit_code);
  if (!args) return exit_code;

  auto usage = [&](const Error& e) {
    std::fprintf(stderr, "naap-loadtest emulate: %s\n", e.describe().c_str());
    return k_exit_usage;
  };
  emulator::EmulatorOptions config;
  config.listen_address = (*args)["listen"].as<std::string>();
  const int port = (*args)["port"].as<int>();
  if (port < 0 || port > 65535) {
    return usage(Error(ErrorCategory::config, "--port must be 0..65535"));
  }
  config.port = static_cast<std::uint16_t>(port);
  config.advertise_host = (*args)["advertise-host"].as<std::string>();
  config.cert_file = (*args)["cert"].as<std::string>();
  config.key_file = (*args)["key"].as<std::string>();
  if (config.cert_file.empty() != config.key_file.empty()) {
    return usage(Error(ErrorCategory::config, "--cert and --key go together"));
  }
  if (args->count("model")) {
    for (const auto& spec : (*args)["model"].as<std::vector<std::string>>()) {
      auto model = parse_model(spec);
      if (!model) return usage(model.error());
      config.models.push_back(*model);
    }
  }
  if (args->count("gpu")) {
    int index = 0;
    for (const auto& name : (*args)["gpu"].as<std::vector<std::string>>()) {
      emulator::GpuOffer gpu;
      gpu.id = std::to_string(index++);
      gpu.name = name;
      config.gpus.push_back(gpu);
    }
  }
  if (const auto path = (*args)["faults"].as<std::string>(); !path.empty()) {
    auto plan = emulator::FaultPlan::load(path);
    if (!plan) return usage(plan.error());
    config.faults = *plan;
  }
  if (args->count("fault")) {
    for (const auto& kv : (*args)["fault"].as<std::vector<std::string>>()) {
      const auto eq = kv.find('=');
      auto set = config.faults.defaults.set(kv.substr(0, eq),
                                            eq == std::string::npos ? "" : kv.substr(eq + 1));
      if (!set) return usage(set.error());
    }
  }
  config.load_time_s = (*args)["load-time"].as<double>();
  config.reload_time_s = (*args)["reload-time"].as<double>();
  config.encoder_preset = (*args)["preset"].as<std::string>();
  config.workers = static_cast<unsigned>(std::max(0, (*args)["workers"].as<int>()));
  config.ticket_seconds = (*args)["ticket-seconds"].as<double>();
  config.debug_routes = args->count("no-debug") == 0;
  if (config.load_time_s < 0 || config.reload_time_s < 0 || config.ticket_seconds <= 0) {
    return usage(Error(ErrorCategory::config,
                       "--load-time and --reload-time must be >= 0, --ticket-seconds > 0"));
  }

  boost::asio::io_context io;
  emulator::Emulator emulated(io, config);
  if (auto started = emulated.start(); !started) {
    std::fprintf(stderr, "naap-loadtest emulate: %s\n", started.error().describe().c_str());
    return started.error().category == ErrorCategory::config ? k_exit_usage : k_exit_failed;
  }
  std::printf(
      "emulator listening on %s (gRPC GetOrchestrator, /live-video-to-video, trickle)\n"
      "  transcoder  %s\n  certificate %s\n  ground truth %s/debug/streams\n",
      emulated.address().c_str(), emulated.base_url().c_str(), emulated.certificate_pin().c_str(),
      emulated.base_url().c_str());
  std::fflush(stdout);
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) {
    emulated.stop();
    io.stop();
  });
  io.run();
  log::info("emulator_stopped", {});
  return k_exit_ok;
}

}  // namespace naap::cli
