// HTTP client engine: libcurl's multi interface driven by a Boost.Asio event loop.
//
// Every transfer runs on the one thread that runs the io_context: no thread per request and no
// blocking call on the loop. Request bodies can be streamed (chunked upload fed incrementally
// through a BodyStream) and response bodies are delivered as they arrive, with receive-side
// back-pressure. Each transfer reports per-phase timings.
//
// Threading: Engine, Transfer and BodyStream methods must be called on the io_context's thread.
// Callbacks are always invoked on that thread. Use boost::asio::post(engine.io(), ...) from
// other threads.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "naap/core/error.hpp"

namespace naap::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

// Case-insensitive lookup of a header value; nullptr when absent.
const std::string* find_header(const Headers& headers, std::string_view name);

// Trust-on-first-use store of TLS public-key pins, keyed by "host:port".
class PinStore {
 public:
  // "sha256//<base64 SPKI digest>" as libcurl's CURLOPT_PINNEDPUBLICKEY expects, or empty.
  std::string get(const std::string& host_port) const;
  void put(const std::string& host_port, std::string pin);
  std::size_t size() const { return pins_.size(); }

 private:
  std::vector<std::pair<std::string, std::string>> pins_;
};

// TLS policy for one request. Orchestrators use self-signed certificates, so the default skips
// verification; `pin` trusts the first key seen per host:port and rejects any other later.
struct TlsOptions {
  enum class Mode {
    insecure,  // no verification (go-livepeer's default for orchestrator URLs)
    pin,       // trust on first use: remember the key, then require it
    verify,    // normal CA verification (ca_file, or the system store)
  };
  Mode mode = Mode::insecure;      // verification policy
  std::shared_ptr<PinStore> pins;  // required for Mode::pin
  std::string pinned_key;          // explicit "sha256//..." pin; overrides the store
  std::string ca_file;             // PEM bundle for Mode::verify; empty = system store
};

// Per-phase timings of one transfer, in microseconds from the start of the transfer, as libcurl
// measures them. A phase that did not happen (a reused connection, plain HTTP) is 0.
struct Timings {
  std::int64_t dns_us = 0;         // name resolved
  std::int64_t connect_us = 0;     // TCP connected
  std::int64_t tls_us = 0;         // TLS handshake done
  std::int64_t first_byte_us = 0;  // first response byte received
  std::int64_t total_us = 0;       // transfer finished
};

class Transfer;

// A request body fed incrementally (chunked transfer encoding). Bytes are buffered until curl
// takes them; the owner watches buffered_bytes() / on_drain to keep the buffer bounded.
class BodyStream {
 public:
  BodyStream() = default;
  BodyStream(const BodyStream&) = delete;
  BodyStream& operator=(const BodyStream&) = delete;

  // Appends bytes (moved in: no copy for an rvalue). Ignored after finish() or abort().
  void write(std::string bytes);
  // Ends the body: the final chunk is sent once every buffered byte is out.
  void finish();
  // Fails the upload: the transfer completes with an error and the server sees a broken body.
  void abort();

  std::size_t buffered_bytes() const { return buffered_; }  // written but not yet taken by curl
  std::uint64_t bytes_sent() const { return sent_; }        // taken by curl for sending
  std::uint64_t bytes_written() const { return written_; }  // accepted by write()
  bool finished() const { return finished_; }
  bool aborted() const { return aborted_; }

  // Called (on the loop) when buffered_bytes() falls to or below `low_water_bytes` after having
  // been above it. Used by producers that must not outrun the network.
  void set_on_drain(std::function<void()> callback, std::size_t low_water_bytes);

  // Moves every unsent byte out (for retrying a segment on a new connection). Only meaningful
  // when bytes_sent() == 0.
  std::deque<std::string> take_unsent();

 private:
  friend class Transfer;
  friend class Engine;
  friend struct EngineImpl;
  std::size_t read_into(char* dst, std::size_t capacity);
  void notify_writer();

  std::deque<std::string> chunks_;    // pending data; front is partially consumed by `offset_`
  std::size_t offset_ = 0;            // bytes of chunks_.front() already taken
  std::size_t buffered_ = 0;          // bytes pending across chunks_
  std::uint64_t sent_ = 0;            // bytes handed to curl
  std::uint64_t written_ = 0;         // bytes accepted by write()
  bool finished_ = false;             // finish() called
  bool aborted_ = false;              // abort() called
  std::function<void()> on_drain_;    // producer wake-up
  std::size_t low_water_ = 0;         // on_drain threshold in bytes
  bool above_low_water_ = false;      // armed when buffered_ exceeded low_water_
  std::weak_ptr<Transfer> transfer_;  // set when the stream is attached to a transfer
};

struct Request {
  std::string method = "GET";                         // GET, POST, DELETE, ...
  std::string url;                                    // absolute http:// or https:// URL
  Headers headers;                                    // extra request headers
  std::optional<std::string> body;                    // whole body (sent with Content-Length)
  std::shared_ptr<BodyStream> stream_body;            // streamed body (chunked); excludes `body`
  std::chrono::milliseconds connect_timeout{10'000};  // TCP+TLS connect limit
  std::chrono::milliseconds total_timeout{0};         // whole-transfer limit; 0 = none
  TlsOptions tls;                                     // certificate policy for https
  bool fresh_connection = false;  // never reuse a pooled connection, nor pool this one
};

// What the server said before the body: the final (non-1xx) status and headers.
struct ResponseHead {
  int status = 0;   // HTTP status code
  Headers headers;  // response headers in arrival order
  const std::string* header(std::string_view name) const { return find_header(headers, name); }
};

// How a transfer ended.
struct Outcome {
  std::optional<Error> error;        // set when the transfer failed (network, TLS, protocol)
  bool cancelled = false;            // ended by Transfer::cancel()
  int status = 0;                    // final HTTP status, 0 if none was received
  Timings timings;                   // per-phase timings
  std::uint64_t bytes_sent = 0;      // request body bytes handed to the network
  std::uint64_t bytes_received = 0;  // response body bytes delivered
  bool ok() const { return !error && !cancelled; }
};

enum class DataAction { proceed, pause };

struct Handlers {
  // Final response head, once, before any body byte.
  std::function<void(const ResponseHead&)> on_head;
  // A body piece. Return DataAction::pause to stop receiving until Transfer::resume_receive().
  std::function<DataAction(std::string_view)> on_data;
  // Interim 1xx response (e.g. the trickle server's 100 Continue keepalive).
  std::function<void(int status)> on_interim;
  // Exactly once, last.
  std::function<void(const Outcome&)> on_complete;
};

struct EngineOptions {
  std::size_t max_header_bytes = 64 * 1024;  // larger response headers fail the transfer
  long max_total_connections = 0;            // libcurl pool cap; 0 = unlimited
};

struct EngineImpl;

// One in-flight request. Shared by the engine (while running) and the caller.
class Transfer : public std::enable_shared_from_this<Transfer> {
 public:
  ~Transfer();
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;

  // Stops the transfer; on_complete then runs (asynchronously) with cancelled = true.
  void cancel();
  // Resumes a receive paused by returning DataAction::pause.
  void resume_receive();

  bool done() const { return done_; }
  bool head_received() const { return head_received_; }
  const std::string& url() const { return url_; }
  const std::string& method() const { return method_; }
  std::uint64_t bytes_received() const { return bytes_received_; }

  struct Private;  // construction token for the engine

 private:
  friend struct EngineImpl;
  friend class BodyStream;
  friend class Engine;
  Transfer() = default;
  void on_body_writable();  // the BodyStream has new bytes or ended

  std::weak_ptr<EngineImpl> engine_;
  void* easy_ = nullptr;         // CURL*, owned; freed by the engine
  void* header_list_ = nullptr;  // curl_slist*, owned
  std::string url_;
  Handlers handlers_;
  std::shared_ptr<BodyStream> body_;
  std::optional<std::string> whole_body_;
  ResponseHead head_;                         // head being parsed / delivered
  std::size_t header_bytes_ = 0;              // header bytes of the current response block
  bool head_received_ = false;                // final head delivered
  bool send_paused_ = false;                  // curl is waiting for BodyStream data
  bool recv_paused_ = false;                  // receiver asked to pause
  bool resume_scheduled_ = false;             // a pause update is posted
  bool cancel_requested_ = false;             // cancel() called
  bool early_response_ = false;               // final head arrived while the upload was still open
  bool done_ = false;                         // on_complete delivered
  std::optional<Error> abort_error_;          // error that made a callback abort the transfer
  std::uint64_t bytes_received_ = 0;          // body bytes delivered to on_data
  std::shared_ptr<PinStore> learn_pin_into_;  // TOFU: store the key seen on completion
  std::string pin_key_;                       // host:port key for the pin store
  std::string method_;                        // request method, for error context
  char errbuf_[256] = {};                     // libcurl's CURLOPT_ERRORBUFFER (CURL_ERROR_SIZE)
};

class Engine {
 public:
  explicit Engine(boost::asio::io_context& io, EngineOptions options = {});
  ~Engine();  // cancels every transfer without invoking callbacks
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Starts a transfer. Invalid requests (malformed URL, both body kinds) complete with an error
  // through on_complete, asynchronously, like any other failure.
  std::shared_ptr<Transfer> start(Request request, Handlers handlers);

  std::size_t active_transfers() const;
  boost::asio::io_context& io() const { return io_; }

 private:
  boost::asio::io_context& io_;
  std::shared_ptr<EngineImpl> impl_;
};

}  // namespace naap::http
