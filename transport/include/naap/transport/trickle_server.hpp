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
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "naap/core/error.hpp"

namespace naap::trickle {

// A request outside the trickle base path (an orchestrator's /live-video-to-video, /payment,
// debug routes), read whole and handed to ServerOptions::app_handler on the io thread.
struct AppRequest {
  std::string method;                                        // "GET", "POST", ...
  std::string target;                                        // path and query as sent
  std::vector<std::pair<std::string, std::string>> headers;  // in arrival order
  std::string body;                                          // whole request body
  std::string peer;                                          // remote "ip:port"
  // The first header with this name (case-insensitive), or empty.
  std::string_view header(std::string_view name) const;
  // The path without the query string.
  std::string_view path() const;
};

struct AppResponse {
  unsigned status = 200;                                     // HTTP status code
  std::string content_type = "text/plain; charset=utf-8";    // Content-Type of body
  std::vector<std::pair<std::string, std::string>> headers;  // extra response headers
  std::string body;                                          // whole response body
};

using AppHandler = std::function<AppResponse(const AppRequest&)>;

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
  // Requests outside base_path go here (404 when unset). Bodies over max_app_body_bytes get 413.
  AppHandler app_handler;
  std::size_t max_app_body_bytes = 1 << 20;  // bytes
  // TLS connections that negotiate ALPN "h2" (gRPC clients) are decrypted and handed to this
  // callback as one end of a connected plaintext socket pair; the server relays the bytes. The
  // callback owns the descriptor. When set, the TLS context offers h2 and http/1.1 by ALPN,
  // which puts gRPC and HTTP/1.1 on one port as on a real orchestrator.
  std::function<void(int fd)> h2_handler;
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
  std::uint64_t app_requests = 0;          // requests handed to the app handler
  std::uint64_t h2_connections = 0;        // TLS connections handed to the h2 handler
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
  // A second, plain-HTTP listener on the same channels (the orchestrator-to-runner hop, which
  // is plain HTTP inside a real orchestrator's host). Call after listen().
  Result<std::uint16_t> listen_internal(const std::string& address, std::uint16_t port);
  // "http://127.0.0.1:PORT/ai/trickle/" of the internal listener (empty before it listens).
  std::string internal_base_url() const;
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
