// Trickle server (Boost.Beast): go-livepeer's trickle server semantics, for the emulator and tests.
//
// Routes under a base path (default /ai/trickle/):
//   POST {base}{ch}/{seq}   publish a segment (chunked body streamed to readers as it arrives)
//   GET  {base}{ch}/{seq}   read a segment; seq may be -1 (next) or -2 (current)
//   GET  {base}{ch}/next    the next write seq (body and Lp-Trickle-Latest)
//   DELETE {base}{ch}/{seq} close one segment;  DELETE {base}{ch}  close and remove the channel
//   POST {base}{ch}         create a channel (only when autocreate is on, or it exists)
// See ../shared/docs/PROTOCOL.md §1 for every status code and header.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "naap/core/error.hpp"

namespace naap::trickle {

struct ServerOptions {
  std::string base_path = "/ai/trickle/";  // must start and end with '/'
  bool autocreate = false;                 // create unknown channels on POST (never on GET)
  std::chrono::milliseconds keepalive_interval{10'000};  // 100 Continue on a POST with no byte yet
  std::chrono::milliseconds idle_timeout{300'000};       // close a channel with no new segment
  std::chrono::milliseconds sweep_interval{60'000};      // how often idle channels are swept
  std::size_t max_header_bytes = 16 * 1024;              // larger request headers get 431
  // Feature switches to emulate older go-livepeer servers (PROTOCOL.md "Versions").
  bool support_current_seq = true;  // GET -2 (off: connection dropped unanswered, as Go panics)
  bool support_next = true;         // GET {ch}/next (off: 400 "Invalid idx")
  bool support_reset = true;        // Lp-Trickle-Reset on POST
  // TLS: when set, the listener speaks HTTPS with this context.
  std::shared_ptr<boost::asio::ssl::context> tls;
};

// Counters for tests and the ops endpoint. Values are totals since start unless marked gauge.
struct ServerStats {
  std::uint64_t channels_open = 0;         // channels currently present
  std::uint64_t segments_started = 0;      // segments whose first byte arrived
  std::uint64_t bytes_in = 0;              // body bytes received on POSTs
  std::uint64_t bytes_out = 0;             // body bytes sent on GETs
  std::uint64_t continues_sent = 0;        // interim 100 Continue responses written
  std::uint64_t channels_swept = 0;        // channels closed by the idle sweep
  std::uint64_t connections_accepted = 0;  // TCP connections accepted
  std::uint64_t connections_open = 0;      // connections currently open (gauge, not a total)
  std::uint64_t segments_alive = 0;        // segments still in memory (gauge: ring + readers)
};

class TrickleServer {
 public:
  // All handlers run on `io`; every public method must be called on io's thread
  // (or before io.run() starts), except stats() which is safe from any thread.
  TrickleServer(boost::asio::io_context& io, ServerOptions options);
  ~TrickleServer();
  TrickleServer(const TrickleServer&) = delete;
  TrickleServer& operator=(const TrickleServer&) = delete;

  // Binds and starts accepting. port 0 picks an ephemeral port; returns the bound port.
  Result<std::uint16_t> listen(const std::string& address, std::uint16_t port);
  // Stops accepting and closes every connection; channels are dropped.
  void stop();

  // Pre-creates a channel (orchestrators create the four channels of a job this way).
  void create_channel(const std::string& name, const std::string& mime);
  // Closes a channel as DELETE {ch} does: readers get Lp-Trickle-Closed, later requests 404.
  bool close_channel(const std::string& name);
  bool has_channel(const std::string& name) const;
  // The server's nextWrite for a channel, or -1 when the channel does not exist.
  std::int64_t next_write(const std::string& name) const;

  std::uint16_t port() const;
  // "http://127.0.0.1:PORT/ai/trickle/" (https when TLS is on).
  std::string base_url() const;
  ServerStats stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace naap::trickle
