// Trickle server on Boost.Beast: go-livepeer's trickle semantics (PROTOCOL.md §1) for the
// emulator and tests. Everything runs on one io_context thread; only the counters are atomic.
#include "naap/transport/trickle_server.hpp"

#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_cat.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>

#include "naap/core/log.hpp"

namespace naap::trickle {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using Clock = std::chrono::steady_clock;
using TlsStream = asio::ssl::stream<tcp::socket>;

constexpr std::int64_t k_ring_slots = 5;                        // go-livepeer maxSegmentsPerStream
constexpr std::size_t k_first_block_bytes = 64 * 1024;          // first storage block of a segment
constexpr std::size_t k_max_block_bytes = 1024 * 1024;          // blocks double up to this size
constexpr std::size_t k_read_chunk_bytes = 64 * 1024;           // one POST body read
constexpr std::size_t k_monitor_bytes = 4096;                   // one read while a GET is streaming
constexpr std::int64_t k_max_seq = std::int64_t{1} << 62;       // keeps seq + 1 far from overflow
constexpr auto k_linger = std::chrono::seconds(2);              // graceful close deadline
constexpr auto k_handshake_timeout = std::chrono::seconds(10);  // TLS handshake deadline
constexpr auto k_accept_retry = std::chrono::milliseconds(50);  // wait after a failed accept
constexpr std::size_t k_bridge_bytes = 64 * 1024;               // one h2 relay read
constexpr std::string_view k_continue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr std::string_view k_last_chunk = "0\r\n\r\n";

// Shared by the server and every segment/connection, so gauges stay valid whoever dies last.
struct Counters {
  std::atomic<std::uint64_t> channels_open{0};         // channels in the map (gauge)
  std::atomic<std::uint64_t> segments_started{0};      // segments whose first byte arrived
  std::atomic<std::uint64_t> bytes_in{0};              // POST body bytes received
  std::atomic<std::uint64_t> bytes_out{0};             // GET body bytes written
  std::atomic<std::uint64_t> continues_sent{0};        // interim 100 Continue written
  std::atomic<std::uint64_t> channels_swept{0};        // channels closed by the idle sweep
  std::atomic<std::uint64_t> connections_accepted{0};  // TCP connections accepted
  std::atomic<std::uint64_t> connections_open{0};      // sockets not yet closed (gauge)
  std::atomic<std::uint64_t> segments_alive{0};        // Segment objects alive (gauge)
  std::atomic<std::uint64_t> app_requests{0};          // requests given to the app handler
  std::atomic<std::uint64_t> h2_connections{0};        // connections given to the h2 handler
};

// Something waiting for a segment to grow or close. Notified once per registration.
class SegmentWatcher {
 public:
  virtual ~SegmentWatcher() = default;
  virtual void on_segment_update() = 0;
};

// A reader's position inside a segment's block list.
struct Cursor {
  std::size_t block = 0;   // index of the block being read
  std::size_t offset = 0;  // bytes of that block already sent, in bytes
};

// One segment: an append-only list of blocks. Blocks never move, so a reader can write straight
// from them while the publisher keeps appending; readers hold a shared_ptr and a Cursor.
class Segment {
 public:
  Segment(std::int64_t seq, std::shared_ptr<Counters> counters)
      : seq_(seq), counters_(std::move(counters)) {
    counters_->segments_alive.fetch_add(1, std::memory_order_relaxed);
  }
  ~Segment() { counters_->segments_alive.fetch_sub(1, std::memory_order_relaxed); }
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  std::int64_t seq() const { return seq_; }
  bool closed() const { return closed_; }
  std::uint64_t size() const { return size_; }
  // Fresh = opened (by a GET or a preconnected POST) but nothing written and not closed.
  bool fresh() const { return !closed_ && size_ == 0; }

  // Bytes that arrive after close are dropped: readers have already seen the end.
  void append(const char* data, std::size_t n) {
    if (closed_ || n == 0) return;
    while (n > 0) {
      if (blocks_.empty() || blocks_.back().used == blocks_.back().capacity) {
        const std::size_t capacity = blocks_.empty()
                                         ? k_first_block_bytes
                                         : std::min(k_max_block_bytes, blocks_.back().capacity * 2);
        blocks_.push_back(Block{std::make_unique_for_overwrite<char[]>(capacity), capacity, 0});
      }
      Block& block = blocks_.back();
      const std::size_t take = std::min(n, block.capacity - block.used);
      std::memcpy(block.data.get() + block.used, data, take);
      block.used += take;
      size_ += take;
      data += take;
      n -= take;
    }
    notify();
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    notify();
  }

  // The contiguous bytes available at `cursor` (empty when the reader is caught up).
  std::span<const char> readable(const Cursor& cursor) const {
    if (cursor.block >= blocks_.size()) return {};
    const Block& block = blocks_[cursor.block];
    return {block.data.get() + cursor.offset, block.used - cursor.offset};
  }

  void advance(Cursor& cursor, std::size_t n) const {
    cursor.offset += n;
    if (cursor.block < blocks_.size() && cursor.offset == blocks_[cursor.block].capacity) {
      ++cursor.block;
      cursor.offset = 0;
    }
  }

  void watch(std::weak_ptr<SegmentWatcher> watcher) {
    // Readers that vanished while waiting leave expired entries; drop them so a segment nobody
    // writes to does not accumulate one per dead reader.
    std::erase_if(watchers_, [](const auto& w) { return w.expired(); });
    watchers_.push_back(std::move(watcher));
  }

 private:
  struct Block {
    std::unique_ptr<char[]> data;  // storage, `capacity` bytes
    std::size_t capacity = 0;      // allocated size, in bytes
    std::size_t used = 0;          // filled prefix, in bytes
  };

  void notify() {
    auto watchers = std::move(watchers_);
    watchers_.clear();
    for (auto& w : watchers) {
      if (auto watcher = w.lock()) watcher->on_segment_update();
    }
  }

  std::int64_t seq_;                                     // segment number in its channel
  std::shared_ptr<Counters> counters_;                   // for the segments_alive gauge
  std::vector<Block> blocks_;                            // data, append-only
  std::uint64_t size_ = 0;                               // total bytes appended
  bool closed_ = false;                                  // no more bytes will come
  std::vector<std::weak_ptr<SegmentWatcher>> watchers_;  // one-shot wake-ups
};

// One named stream of segments with go-livepeer's ring of five slots.
struct Channel {
  std::string name;                                         // channel name from the URL
  std::string mime;                                         // Content-Type for readers
  std::array<std::shared_ptr<Segment>, k_ring_slots> ring;  // slot = seq % 5
  std::int64_t next_write = 0;                              // go-livepeer nextWrite
  Clock::time_point write_time = Clock::now();              // last segment start (sweep)
  bool closed = false;                                      // deleted or swept

  std::shared_ptr<Segment>& slot(std::int64_t seq) {
    return ring[static_cast<std::size_t>(seq % k_ring_slots)];
  }
  // The segment for `seq` if its slot still holds it.
  std::shared_ptr<Segment> find(std::int64_t seq) {
    auto& s = slot(seq);
    return (s && s->seq() == seq) ? s : nullptr;
  }
  bool holds(const std::shared_ptr<Segment>& segment) {
    return segment && slot(segment->seq()) == segment;
  }
};

class ConnectionBase : public SegmentWatcher, public std::enable_shared_from_this<ConnectionBase> {
 public:
  virtual void start() = 0;
  // Closes the socket now; pending handlers finish with errors and release the connection.
  virtual void abort() = 0;
};

// Accepts "+5", "-1", "12"; rejects empty, "--1", "1x" and values that would overflow seq + 1.
std::optional<std::int64_t> parse_seq(std::string_view text) {
  if (text.empty()) return std::nullopt;
  bool negative = false;
  std::size_t i = 0;
  if (text[0] == '+' || text[0] == '-') {
    negative = text[0] == '-';
    i = 1;
  }
  if (i >= text.size() || text[i] < '0' || text[i] > '9') return std::nullopt;
  std::int64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data() + i, end, value);
  if (ec != std::errc{} || ptr != end || value > k_max_seq) return std::nullopt;
  return negative ? -value : value;
}

std::string_view to_std(beast::string_view text) {
  return {text.data(), text.size()};
}

std::string_view reason_for(unsigned status) {
  switch (status) {
    case 470:
      return "Entry Not Found";  // go-livepeer's private "segment not available" status
    case 431:
      return "Request Header Fields Too Large";
    default:
      break;
  }
  return to_std(http::obsolete_reason(http::int_to_status(status)));
}

using Fields = std::vector<std::pair<std::string_view, std::string>>;

// How the end of a response body is marked.
enum class Framing { length, chunked, until_close };

// Responses are built by hand so that tests (and clients) see exactly these bytes.
std::string build_response(unsigned status, const Fields& fields, std::string_view body,
                           bool keep_alive, Framing framing = Framing::length) {
  std::string out;
  out.reserve(256 + body.size());
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += reason_for(status);
  out += "\r\n";
  for (const auto& [name, value] : fields) {
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  if (framing == Framing::chunked) {
    out += "Transfer-Encoding: chunked\r\n";
  } else if (framing == Framing::length) {
    out += "Content-Length: ";
    out += std::to_string(body.size());
    out += "\r\n";
  }
  if (!keep_alive || framing == Framing::until_close) out += "Connection: close\r\n";
  out += "\r\n";
  out += body;
  return out;
}

// The part of the target after the base path: "{ch}" or "{ch}/{seq}".
struct Route {
  std::string channel;   // channel name
  std::string seq;       // seq text, "next", or empty
  bool has_seq = false;  // the target had a second path element
};

std::optional<Route> parse_target(std::string_view target, std::string_view base) {
  if (auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
  if (!target.starts_with(base)) return std::nullopt;
  std::string_view rest = target.substr(base.size());
  Route route;
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) {
    route.channel = std::string(rest);
  } else {
    route.channel = std::string(rest.substr(0, slash));
    std::string_view seq = rest.substr(slash + 1);
    if (seq.empty() || seq.find('/') != std::string_view::npos) return std::nullopt;
    route.seq = std::string(seq);
    route.has_seq = true;
  }
  if (route.channel.empty()) return std::nullopt;
  return route;
}

// Server state shared by the public object and every connection.
class ServerCore : public std::enable_shared_from_this<ServerCore> {
 public:
  ServerCore(asio::io_context& io_context, ServerOptions opts)
      : io(io_context),
        options(std::move(opts)),
        acceptor(io_context),
        internal_acceptor(io_context),
        sweep_timer(io_context) {
    if (options.tls && options.h2_handler) {
      SSL_CTX_set_alpn_select_cb(options.tls->native_handle(), &ServerCore::select_alpn, nullptr);
    }
  }

  // Prefers h2 (gRPC) over http/1.1; a client offering neither gets no ALPN answer.
  static int select_alpn(SSL*, const unsigned char** out, unsigned char* out_len,
                         const unsigned char* in, unsigned int in_len, void*) {
    const unsigned char* http11 = nullptr;
    for (unsigned int i = 0; i < in_len;) {
      const unsigned int len = in[i];
      if (i + 1 + len > in_len) break;
      const std::string_view proto(reinterpret_cast<const char*>(in + i + 1), len);
      if (proto == "h2") {
        *out = in + i + 1;
        *out_len = static_cast<unsigned char>(len);
        return SSL_TLSEXT_ERR_OK;
      }
      if (proto == "http/1.1") http11 = in + i + 1;
      i += 1 + len;
    }
    if (!http11) return SSL_TLSEXT_ERR_NOACK;
    *out = http11;
    *out_len = 8;
    return SSL_TLSEXT_ERR_OK;
  }
  virtual ~ServerCore() = default;
  ServerCore(const ServerCore&) = delete;
  ServerCore& operator=(const ServerCore&) = delete;

  asio::io_context& io;                                               // every handler runs here
  ServerOptions options;                                              // as given at construction
  std::shared_ptr<Counters> counters = std::make_shared<Counters>();  // stats()
  tcp::acceptor acceptor;                                             // listening socket
  tcp::acceptor internal_acceptor;  // plain-HTTP listener for the runner hop (optional)
  std::uint16_t internal_port = 0;  // its port once listening
  asio::steady_timer sweep_timer;   // idle channel sweep
  std::map<std::string, std::shared_ptr<Channel>, std::less<>> channels;  // open channels
  std::vector<std::weak_ptr<ConnectionBase>> connections;                 // for stop()
  std::size_t prune_at = 64;     // connections size that triggers a prune
  std::uint16_t bound_port = 0;  // port after listen()
  bool listening = false;        // listen() succeeded
  bool stopped = false;          // stop() ran

  std::shared_ptr<Channel> find_channel(std::string_view name) const {
    auto it = channels.find(name);
    return it == channels.end() ? nullptr : it->second;
  }

  std::shared_ptr<Channel> create_channel(std::string_view name, std::string_view mime) {
    if (auto existing = find_channel(name)) return existing;
    auto channel = std::make_shared<Channel>();
    channel->name = std::string(name);
    channel->mime = std::string(mime);
    channels.emplace(channel->name, channel);
    counters->channels_open.fetch_add(1, std::memory_order_relaxed);
    log::debug("trickle_channel_created", {{"channel", name}, {"mime", mime}});
    return channel;
  }

  // DELETE {ch}: waiting readers and preconnected publishers are released, then it is gone.
  bool close_channel(std::string_view name) {
    auto it = channels.find(name);
    if (it == channels.end()) return false;
    auto channel = it->second;
    channels.erase(it);
    counters->channels_open.fetch_sub(1, std::memory_order_relaxed);
    close_all_segments(*channel);
    log::debug("trickle_channel_closed", {{"channel", name}});
    return true;
  }

  static void close_all_segments(Channel& channel) {
    channel.closed = true;
    for (auto& segment : channel.ring) {
      if (segment) segment->close();
      segment.reset();
    }
  }

  // Puts a new segment in seq's slot; whatever was there ends now (its readers get their end).
  std::shared_ptr<Segment> open_segment(Channel& channel, std::int64_t seq) {
    auto& slot = channel.slot(seq);
    if (slot) slot->close();
    slot = std::make_shared<Segment>(seq, counters);
    return slot;
  }

  void accept_next(tcp::acceptor& from, bool tls);
  void schedule_sweep() {
    if (options.sweep_interval.count() <= 0 || stopped) return;
    sweep_timer.expires_after(options.sweep_interval);
    sweep_timer.async_wait([weak = weak_from_this()](error_code ec) {
      if (ec) return;
      if (auto self = weak.lock()) {
        self->sweep();
        self->schedule_sweep();
      }
    });
  }

  void sweep() {
    const auto now = Clock::now();
    std::vector<std::string> idle;
    for (const auto& [name, channel] : channels) {
      // Internal channels (go-livepeer's _changes feed) are never swept.
      if (name.starts_with('_')) continue;
      if (now - channel->write_time > options.idle_timeout) idle.push_back(name);
    }
    for (const auto& name : idle) {
      if (close_channel(name)) {
        counters->channels_swept.fetch_add(1, std::memory_order_relaxed);
        log::info("trickle_channel_swept", {{"channel", name}});
      }
    }
  }

  void stop() {
    if (stopped) return;
    stopped = true;
    error_code ec;
    acceptor.close(ec);
    internal_acceptor.close(ec);
    sweep_timer.cancel();
    auto live = std::move(connections);
    connections.clear();
    for (auto& weak : live) {
      if (auto connection = weak.lock()) connection->abort();
    }
    auto all = std::move(channels);
    channels.clear();
    counters->channels_open.store(0, std::memory_order_relaxed);
    for (auto& [name, channel] : all) close_all_segments(*channel);
  }
};

// One HTTP/1.1 connection over a plain socket or a TLS stream. At most one request is handled
// at a time; during a POST body or a GET the socket may have one read and one write in flight.
template <class Stream>
class Connection final : public ConnectionBase {
 public:
  static constexpr bool k_tls = std::is_same_v<Stream, TlsStream>;

  template <class... Args>
  explicit Connection(std::shared_ptr<ServerCore> core, Args&&... args)
      : core_(std::move(core)),
        stream_(std::forward<Args>(args)...),
        keepalive_timer_(core_->io),
        linger_timer_(core_->io) {
    core_->counters->connections_open.fetch_add(1, std::memory_order_relaxed);
  }

  ~Connection() override {
    if (!closed_) core_->counters->connections_open.fetch_sub(1, std::memory_order_relaxed);
  }

  void start() override {
    if constexpr (k_tls) {
      linger_timer_.expires_after(k_handshake_timeout);
      linger_timer_.async_wait([self = shared_this()](error_code ec) {
        if (!ec) self->abort();
      });
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = shared_this()](error_code ec) {
                                self->linger_timer_.cancel();
                                if (ec) {
                                  self->abort();
                                  return;
                                }
                                if (self->negotiated_h2()) {
                                  self->start_bridge();
                                  return;
                                }
                                self->start_read_header();
                              });
    } else {
      start_read_header();
    }
  }

  void abort() override {
    if (closed_) return;
    closed_ = true;
    closing_ = true;
    mode_ = Mode::idle;
    keepalive_timer_.cancel();
    linger_timer_.cancel();
    error_code ec;
    raw().shutdown(tcp::socket::shutdown_both, ec);
    raw().close(ec);
    if (bridge_) bridge_->close(ec);
    core_->counters->connections_open.fetch_sub(1, std::memory_order_relaxed);
  }

  void on_segment_update() override {
    asio::post(core_->io, [self = shared_this()] { self->on_wake(); });
  }

 private:
  enum class Mode { idle, get, post, app };
  // What to do once a queued write has gone out.
  enum class After { nothing, next_request, close };
  struct Out {
    std::string bytes;  // serialized response or interim response
    After after;        // follow-up once written
  };

  std::shared_ptr<Connection> shared_this() {
    return std::static_pointer_cast<Connection>(shared_from_this());
  }

  tcp::socket& raw() {
    if constexpr (k_tls) {
      return stream_.next_layer();
    } else {
      return stream_;
    }
  }

  const ServerOptions& options() const { return core_->options; }
  Counters& counters() { return *core_->counters; }

  // ---- request reading ------------------------------------------------------------------

  void start_read_header() {
    if (closing_) return;
    // Beast sizes each socket read by the buffer's free capacity (512 bytes at least): without
    // room, bodies arrive 512 bytes per read and a loaded server falls behind its publishers.
    if (buffer_.capacity() < k_read_chunk_bytes) buffer_.reserve(k_read_chunk_bytes);
    mode_ = Mode::idle;
    channel_.reset();
    segment_.reset();
    post_bytes_ = 0;
    headers_sent_ = false;
    cursor_ = {};
    parser_.emplace();
    const auto limit = std::min<std::size_t>(options().max_header_bytes,
                                             std::numeric_limits<std::uint32_t>::max());
    parser_->header_limit(static_cast<std::uint32_t>(limit));
    // Boost 1.74 mishandles body_limit(boost::none) (every sized body "exceeds" it), so use max.
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());  // no maximum segment size
    read_pending_ = true;
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_this()](error_code ec, std::size_t) { self->on_header(ec); });
  }

  void on_header(error_code ec) {
    read_pending_ = false;
    if (closing_) {
      continue_close();
      return;
    }
    if (ec == http::error::header_limit) {
      keep_alive_ = false;
      respond(431, "Request Header Fields Too Large\n");
      return;
    }
    if (ec) {
      const bool peer_gone =
          ec == http::error::end_of_stream || ec == http::error::partial_message ||
          ec.category() != http::make_error_code(http::error::bad_method).category();
      if (peer_gone) {
        abort();
      } else {
        log::debug("trickle_bad_request", {{"error", ec.message()}});
        keep_alive_ = false;
        respond(400, "Bad Request\n");
      }
      return;
    }
    dispatch();
  }

  void dispatch() {
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    chunked_ = req.version() >= 11;
    const bool is_publish = req.method() == http::verb::post;
    // Request bodies are only read for POSTs; anything else with a body ends the connection
    // after the answer instead of misparsing the body as the next request.
    if (!is_publish && !parser_->is_done()) keep_alive_ = false;

    auto route = parse_target(to_std(req.target()), options().base_path);
    if (!route) {
      if (options().app_handler) {
        handle_app();
      } else {
        respond(404, "404 page not found\n");
      }
      return;
    }
    switch (req.method()) {
      case http::verb::get:
        if (!route->has_seq) {
          respond(405, "Method Not Allowed\n");
        } else {
          handle_get(*route);
        }
        return;
      case http::verb::post:
        if (route->has_seq) {
          handle_post(*route);
        } else {
          handle_create(*route);
        }
        return;
      case http::verb::delete_:
        if (route->has_seq) {
          handle_delete_segment(*route);
        } else {
          handle_delete_channel(*route);
        }
        return;
      default:
        respond(405, "Method Not Allowed\n");
        return;
    }
  }

  // ---- handlers ---------------------------------------------------------------------------

  void handle_create(const Route& route) {
    const auto& req = parser_->get();
    if (core_->find_channel(route.channel) || options().autocreate) {
      core_->create_channel(route.channel, to_std(req["Expect-Content"]));
      respond(200, "");
      return;
    }
    respond(404, "Stream not found\n");
  }

  void handle_delete_channel(const Route& route) {
    if (!core_->close_channel(route.channel)) {
      respond(400, "Invalid stream\n");
      return;
    }
    respond(200, "");
  }

  void handle_delete_segment(const Route& route) {
    auto channel = core_->find_channel(route.channel);
    if (!channel) {
      respond(404, "Stream not found\n");
      return;
    }
    auto seq = parse_seq(route.seq);
    if (!seq || *seq < 0) {
      respond(400, "Invalid idx\n");
      return;
    }
    auto segment = channel->find(*seq);
    if (!segment) {
      respond(400, "Nonexistent segment\n");
      return;
    }
    segment->close();
    respond(200, "");
  }

  void handle_get(const Route& route) {
    // Reads never create channels, autocreate or not (go-livepeer autocreates on publish only).
    auto channel = core_->find_channel(route.channel);
    if (!channel) {
      respond(404, "Stream not found\n");
      return;
    }
    if (route.seq == "next" && options().support_next) {
      const std::string next = std::to_string(channel->next_write);
      Fields fields{{"Content-Type", "text/plain; charset=utf-8"}, {"Lp-Trickle-Latest", next}};
      if (channel->closed) fields.emplace_back("Lp-Trickle-Closed", "terminated");
      respond_fields(200, fields, next);
      return;
    }
    auto requested = parse_seq(route.seq);
    if (!requested) {
      respond(400, "Invalid idx\n");
      return;
    }
    if (*requested == -2 && !options().support_current_seq) {
      // Old servers index the ring with -2 and panic; Go drops the connection unanswered.
      abort();
      return;
    }
    if (*requested < -2) {
      respond(400, "Invalid idx\n");
      return;
    }
    const std::int64_t latest = channel->next_write;
    std::int64_t seq = *requested;
    if (seq == -1) seq = latest;
    if (seq == -2) seq = latest > 0 ? latest - 1 : 0;

    auto segment = channel->find(seq);
    // A reader slightly ahead of the writer waits instead of getting 470.
    if (!segment && !channel->closed && (seq == latest || (latest == 0 && seq == 1))) {
      segment = core_->open_segment(*channel, seq);
    }
    if (!segment) {
      Fields fields{{"Content-Type", "text/plain; charset=utf-8"},
                    {"Lp-Trickle-Latest", std::to_string(latest)},
                    {"Lp-Trickle-Seq", std::to_string(*requested)}};
      if (channel->closed) {
        fields.emplace_back("Lp-Trickle-Closed", "terminated");
        respond_fields(200, fields, "Entry not found");
      } else {
        respond_fields(470, fields, "Entry not found");
      }
      return;
    }
    mode_ = Mode::get;
    channel_ = std::move(channel);
    segment_ = std::move(segment);
    cursor_ = {};
    headers_sent_ = false;
    latest_at_request_ = latest;
    start_monitor();
    pump();
  }

  void handle_post(const Route& route) {
    const auto& req = parser_->get();
    auto channel = core_->find_channel(route.channel);
    if (!channel && options().autocreate) {
      channel = core_->create_channel(route.channel, to_std(req[http::field::content_type]));
    }
    if (!channel) {
      // Connection: close wakes publishers that preconnected to a channel that is gone.
      keep_alive_ = false;
      respond(404, "Stream not found\n");
      return;
    }
    auto requested = parse_seq(route.seq);
    if (!requested || *requested < -1) {
      respond(400, "Invalid idx\n");
      return;
    }
    const std::int64_t seq = *requested == -1 ? channel->next_write : *requested;
    if (channel->mime.empty()) channel->mime = std::string(to_std(req[http::field::content_type]));

    auto segment = channel->find(seq);
    // Reuse a slot some GET or an earlier zero-byte POST opened; a finished segment with the
    // same seq is replaced so that a retried publish is not appended to a closed one.
    if (!segment || segment->closed()) segment = core_->open_segment(*channel, seq);
    if (options().support_reset && !req["Lp-Trickle-Reset"].empty()) {
      // Publisher restart: release readers stuck on older segments, keep preconnected ones.
      for (auto& other : channel->ring) {
        if (!other || other == segment) continue;
        if (other->seq() > seq && other->fresh()) continue;
        other->close();
      }
    }

    mode_ = Mode::post;
    channel_ = std::move(channel);
    segment_ = std::move(segment);
    post_seq_ = seq;
    post_bytes_ = 0;
    segment_->watch(weak_from_this());
    if (beast::iequals(req[http::field::expect], "100-continue")) {
      counters().continues_sent.fetch_add(1, std::memory_order_relaxed);
      send(std::string(k_continue), After::nothing);
    }
    arm_keepalive();
    if (parser_->is_done()) {
      finish_post();
    } else {
      read_body();
    }
  }

  // ---- application routes (outside the trickle base path) ---------------------------------

  void handle_app() {
    const auto length = parser_->content_length();
    if (length.value_or(0) > options().max_app_body_bytes) {
      keep_alive_ = false;
      respond(413, "Request body too large\n");
      return;
    }
    mode_ = Mode::app;
    app_body_.clear();
    if (parser_->is_done()) {
      finish_app();
    } else {
      read_body();
    }
  }

  void on_app_body(error_code ec) {
    read_pending_ = false;
    if (closing_) {
      continue_close();
      return;
    }
    if (ec == http::error::need_buffer) ec = {};
    const std::size_t got = scratch_.size() - parser_->get().body().size;
    if (ec) {
      abort();  // the client went away mid-body: nobody to answer
      return;
    }
    if (app_body_.size() + got > options().max_app_body_bytes) {
      keep_alive_ = false;
      respond(413, "Request body too large\n");
      return;
    }
    app_body_.append(scratch_.data(), got);
    if (parser_->is_done()) {
      finish_app();
    } else {
      read_body();
    }
  }

  void finish_app() {
    const auto& req = parser_->get();
    AppRequest request;
    request.method = std::string(to_std(req.method_string()));
    request.target = std::string(to_std(req.target()));
    for (const auto& field : req) {
      request.headers.emplace_back(std::string(to_std(field.name_string())),
                                   std::string(to_std(field.value())));
    }
    request.body = std::move(app_body_);
    app_body_.clear();
    error_code ec;
    const auto peer = raw().remote_endpoint(ec);
    if (!ec) request.peer = peer.address().to_string() + ":" + std::to_string(peer.port());
    counters().app_requests.fetch_add(1, std::memory_order_relaxed);
    AppResponse response;
    try {
      response = options().app_handler(request);
    } catch (const std::exception& e) {
      log::error("app_handler_failed", {{"target", request.target}, {"error", e.what()}});
      response = AppResponse{500, "text/plain; charset=utf-8", {}, "Internal Server Error\n"};
    }
    std::vector<std::pair<std::string, std::string>> owned = std::move(response.headers);
    owned.emplace(owned.begin(), "Content-Type", response.content_type);
    Fields fields;
    for (const auto& [name, value] : owned) fields.emplace_back(name, value);
    respond_fields(response.status, fields, response.body);
  }

  // ---- h2 bridge (gRPC on the same TLS port) ------------------------------------------------

  bool negotiated_h2() {
    if constexpr (k_tls) {
      if (!options().h2_handler) return false;
      const unsigned char* proto = nullptr;
      unsigned int len = 0;
      SSL_get0_alpn_selected(stream_.native_handle(), &proto, &len);
      return len == 2 && proto[0] == 'h' && proto[1] == '2';
    } else {
      return false;
    }
  }

  // Relays decrypted bytes between the TLS stream and one end of a socket pair whose other end
  // belongs to the h2 handler (gRPC). Either side ending closes both.
  void start_bridge() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
      log::warn("h2_bridge_failed", {{"error", std::strerror(errno)}});
      abort();
      return;
    }
    error_code ec;
    bridge_.emplace(core_->io);
    bridge_->assign(asio::local::stream_protocol(), fds[1], ec);
    if (ec) {
      ::close(fds[0]);
      ::close(fds[1]);
      abort();
      return;
    }
    counters().h2_connections.fetch_add(1, std::memory_order_relaxed);
    options().h2_handler(fds[0]);
    bridge_up_.resize(k_bridge_bytes);
    bridge_down_.resize(k_bridge_bytes);
    bridge_read_client();
    bridge_read_handler();
  }

  void bridge_read_client() {
    stream_.async_read_some(asio::buffer(bridge_up_),
                            [self = shared_this()](error_code ec, std::size_t n) {
                              if (ec || self->closed_) {
                                self->abort();
                                return;
                              }
                              asio::async_write(*self->bridge_, asio::buffer(self->bridge_up_, n),
                                                [self](error_code wec, std::size_t) {
                                                  if (wec || self->closed_) {
                                                    self->abort();
                                                    return;
                                                  }
                                                  self->bridge_read_client();
                                                });
                            });
  }

  void bridge_read_handler() {
    bridge_->async_read_some(asio::buffer(bridge_down_),
                             [self = shared_this()](error_code ec, std::size_t n) {
                               if (ec || self->closed_) {
                                 self->abort();
                                 return;
                               }
                               asio::async_write(self->stream_, asio::buffer(self->bridge_down_, n),
                                                 [self](error_code wec, std::size_t) {
                                                   if (wec || self->closed_) {
                                                     self->abort();
                                                     return;
                                                   }
                                                   self->bridge_read_handler();
                                                 });
                             });
  }

  // ---- POST body --------------------------------------------------------------------------

  // One body read for a trickle POST or an application request (by mode_).
  void read_body() {
    if (scratch_.empty()) scratch_.resize(k_read_chunk_bytes);
    auto& body = parser_->get().body();
    body.data = scratch_.data();
    body.size = scratch_.size();
    read_pending_ = true;
    http::async_read_some(stream_, buffer_, *parser_,
                          [self = shared_this()](error_code ec, std::size_t) {
                            if (self->mode_ == Mode::app) {
                              self->on_app_body(ec);
                            } else {
                              self->on_body(ec);
                            }
                          });
  }

  void on_body(error_code ec) {
    read_pending_ = false;
    if (closing_) {
      continue_close();
      return;
    }
    // The POST was already answered (its segment closed before any byte); close follows.
    if (mode_ != Mode::post) return;
    if (ec == http::error::need_buffer) ec = {};
    const std::size_t got = scratch_.size() - parser_->get().body().size;
    if (got > 0) on_post_bytes(scratch_.data(), got);
    if (ec) {
      fail_post(ec);
      return;
    }
    if (parser_->is_done()) {
      finish_post();
    } else {
      read_body();
    }
  }

  void on_post_bytes(const char* data, std::size_t n) {
    if (post_bytes_ == 0) {
      keepalive_timer_.cancel();
      // nextWrite moves on the first byte, not when the POST opens (PROTOCOL.md §1.4).
      channel_->next_write = post_seq_ + 1;
      channel_->write_time = Clock::now();
      counters().segments_started.fetch_add(1, std::memory_order_relaxed);
    }
    post_bytes_ += n;
    counters().bytes_in.fetch_add(n, std::memory_order_relaxed);
    segment_->append(data, n);
  }

  Fields post_fields() const {
    Fields fields{{"Lp-Trickle-Seq", std::to_string(post_seq_)}};
    if (channel_->closed) fields.emplace_back("Lp-Trickle-Closed", "terminated");
    return fields;
  }

  // A POST that ended or was released before its first byte: the segment is done, empty.
  void end_empty_post() {
    keepalive_timer_.cancel();
    mode_ = Mode::idle;
    if (channel_->holds(segment_)) {
      channel_->next_write = std::max(channel_->next_write, post_seq_ + 1);
      channel_->write_time = Clock::now();
    }
    segment_->close();
    keep_alive_ = false;
    respond_fields(200, post_fields(), "");
  }

  void finish_post() {
    if (post_bytes_ == 0) {
      end_empty_post();
      return;
    }
    keepalive_timer_.cancel();
    mode_ = Mode::idle;
    segment_->close();
    respond_fields(200, post_fields(), "");
  }

  void fail_post(error_code ec) {
    keepalive_timer_.cancel();
    mode_ = Mode::idle;
    log::debug("trickle_post_failed", {{"channel", channel_->name},
                                       {"seq", post_seq_},
                                       {"bytes", post_bytes_},
                                       {"error", ec.message()}});
    // The segment stays open on purpose (go-livepeer does the same): its readers wait for slot
    // reuse, channel close or DELETE {ch}/{seq}. The 500 only reaches a peer that is still there.
    keep_alive_ = false;
    respond(500, "Server error\n");
  }

  void arm_keepalive() {
    if (options().keepalive_interval.count() <= 0) return;
    keepalive_timer_.expires_after(options().keepalive_interval);
    keepalive_timer_.async_wait([self = shared_this()](error_code ec) {
      if (!ec) self->on_keepalive();
    });
  }

  void on_keepalive() {
    if (closing_ || mode_ != Mode::post || post_bytes_ > 0) return;
    counters().continues_sent.fetch_add(1, std::memory_order_relaxed);
    send(std::string(k_continue), After::nothing);
    arm_keepalive();
  }

  void on_wake() {
    if (closing_) return;
    if (mode_ == Mode::get) {
      pump();
    } else if (mode_ == Mode::post && post_bytes_ == 0) {
      if (segment_->closed()) {
        end_empty_post();  // slot reused, DELETEd, reset or channel closed
      } else {
        segment_->watch(weak_from_this());
      }
    }
  }

  // ---- GET body ---------------------------------------------------------------------------

  // Watches for the peer going away while a GET waits; stops at the first byte of a pipelined
  // request (those bytes stay in buffer_ for the next parse).
  void start_monitor() {
    if (read_pending_ || closing_ || buffer_.size() > 0) return;
    read_pending_ = true;
    stream_.async_read_some(
        buffer_.prepare(k_monitor_bytes),
        [self = shared_this()](error_code ec, std::size_t n) { self->on_monitor(ec, n); });
  }

  void on_monitor(error_code ec, std::size_t n) {
    read_pending_ = false;
    if (closing_) {
      continue_close();
      return;
    }
    if (ec) {
      abort();
      return;
    }
    buffer_.commit(n);
    if (want_header_) {
      want_header_ = false;
      start_read_header();
    }
  }

  std::string get_headers() const {
    Fields fields;
    if (!channel_->mime.empty()) fields.emplace_back("Content-Type", channel_->mime);
    fields.emplace_back("Lp-Trickle-Seq", std::to_string(segment_->seq()));
    if (segment_->seq() != latest_at_request_) {
      fields.emplace_back("Lp-Trickle-Latest", std::to_string(latest_at_request_));
    }
    return build_response(200, fields, "", keep_alive_,
                          chunked_ ? Framing::chunked : Framing::until_close);
  }

  void get_step() {
    auto data = segment_->readable(cursor_);
    if (!data.empty()) {
      const std::size_t n = data.size();
      head_.clear();
      if (!headers_sent_) {
        head_ = get_headers();
        headers_sent_ = true;
      }
      writing_ = true;
      auto done = [self = shared_this(), n](error_code ec, std::size_t) {
        self->on_chunk_written(ec, n);
      };
      const asio::const_buffer payload(data.data(), n);
      if (chunked_) {
        asio::async_write(stream_,
                          beast::buffers_cat(asio::buffer(head_), http::make_chunk(payload)),
                          std::move(done));
      } else {
        asio::async_write(stream_, std::array{asio::const_buffer(asio::buffer(head_)), payload},
                          std::move(done));
      }
      return;
    }
    if (segment_->closed()) {
      finish_get();
      return;
    }
    segment_->watch(weak_from_this());
  }

  void on_chunk_written(error_code ec, std::size_t n) {
    writing_ = false;
    if (ec) {
      abort();
      return;
    }
    if (closing_) return;
    segment_->advance(cursor_, n);
    counters().bytes_out.fetch_add(n, std::memory_order_relaxed);
    pump();
  }

  void finish_get() {
    mode_ = Mode::idle;
    const bool keep = keep_alive_ && chunked_;
    if (headers_sent_) {
      send(chunked_ ? std::string(k_last_chunk) : std::string(),
           keep ? After::next_request : After::close);
    } else {
      // Nothing was ever written: an empty segment, or readers released by a channel close.
      Fields fields;
      if (!channel_->mime.empty()) fields.emplace_back("Content-Type", channel_->mime);
      fields.emplace_back("Lp-Trickle-Seq", std::to_string(segment_->seq()));
      if (channel_->closed) {
        fields.emplace_back("Lp-Trickle-Closed", "terminated");
      } else {
        fields.emplace_back("Lp-Trickle-Latest", std::to_string(channel_->next_write));
      }
      send(build_response(200, fields, "", keep_alive_),
           keep_alive_ ? After::next_request : After::close);
    }
    segment_.reset();
    channel_.reset();
  }

  // ---- writing ----------------------------------------------------------------------------

  void respond(unsigned status, std::string_view body) {
    respond_fields(status, {{"Content-Type", "text/plain; charset=utf-8"}}, body);
  }

  void respond_fields(unsigned status, const Fields& fields, std::string_view body) {
    mode_ = Mode::idle;
    // An unread request body would be parsed as the next request: close instead.
    if (!parser_ || !parser_->is_done()) keep_alive_ = false;
    send(build_response(status, fields, body, keep_alive_),
         keep_alive_ ? After::next_request : After::close);
  }

  void send(std::string bytes, After after) {
    if (closing_) return;
    out_.push_back(Out{std::move(bytes), after});
    pump();
  }

  void pump() {
    if (writing_ || closing_) return;
    if (!out_.empty()) {
      writing_ = true;
      asio::async_write(
          stream_, asio::buffer(out_.front().bytes),
          [self = shared_this()](error_code ec, std::size_t) { self->on_out_written(ec); });
      return;
    }
    if (mode_ == Mode::get) get_step();
  }

  void on_out_written(error_code ec) {
    writing_ = false;
    if (ec) {
      abort();
      return;
    }
    if (closing_) return;
    const After after = out_.front().after;
    out_.pop_front();
    if (after == After::close) {
      begin_close();
      return;
    }
    if (after == After::next_request) next_request();
    pump();
  }

  void next_request() {
    mode_ = Mode::idle;
    segment_.reset();
    channel_.reset();
    // A monitor read may still be pending; it starts the header read when bytes arrive.
    if (read_pending_) {
      want_header_ = true;
    } else {
      start_read_header();
    }
  }

  // ---- closing ----------------------------------------------------------------------------

  // After a "Connection: close" answer: stop sending, let the peer read the answer, then close.
  // Closing at once with unread request bytes would send RST and could destroy the answer.
  void begin_close() {
    if (closing_) return;
    closing_ = true;
    mode_ = Mode::idle;
    keepalive_timer_.cancel();
    linger_timer_.expires_after(k_linger);
    linger_timer_.async_wait([self = shared_this()](error_code ec) {
      if (!ec) self->abort();
    });
    if constexpr (!k_tls) {
      error_code ignored;
      raw().shutdown(tcp::socket::shutdown_send, ignored);
    }
    if (!read_pending_) continue_close();
  }

  // Runs once no read is pending any more.
  void continue_close() {
    if (closed_) return;
    read_pending_ = true;
    if constexpr (k_tls) {
      // close_notify so TLS clients see a clean end of stream.
      stream_.async_shutdown([self = shared_this()](error_code) {
        self->read_pending_ = false;
        self->abort();
      });
    } else {
      if (scratch_.empty()) scratch_.resize(k_read_chunk_bytes);
      raw().async_read_some(asio::buffer(scratch_),
                            [self = shared_this()](error_code ec, std::size_t) {
                              self->read_pending_ = false;
                              if (ec) {
                                self->abort();
                              } else {
                                self->continue_close();
                              }
                            });
    }
  }

  std::shared_ptr<ServerCore> core_;    // keeps the server state alive while handlers run
  Stream stream_;                       // socket or TLS stream
  asio::steady_timer keepalive_timer_;  // 100 Continue while a POST has no byte yet
  asio::steady_timer linger_timer_;     // TLS handshake and graceful close deadlines
  beast::flat_buffer buffer_;           // bytes read but not yet parsed
  std::optional<http::request_parser<http::buffer_body>> parser_;  // current request
  std::vector<char> scratch_;  // POST body reads, allocated on first POST
  std::string app_body_;       // body of an application request being read
  std::optional<asio::local::stream_protocol::socket> bridge_;  // h2 relay to the handler
  std::vector<char> bridge_up_;                                 // client → handler relay buffer
  std::vector<char> bridge_down_;                               // handler → client relay buffer
  std::deque<Out> out_;        // queued writes, one in flight at a time
  std::string head_;           // response header that goes out with a GET's first chunk
  Mode mode_ = Mode::idle;     // what the current request is doing
  bool keep_alive_ = true;     // keep the connection after this response
  bool chunked_ = true;        // HTTP/1.1 peer: GET bodies are chunked
  bool writing_ = false;       // a write is in flight
  bool read_pending_ = false;  // a read is in flight
  bool want_header_ = false;   // read the next request once the monitor read ends
  bool closing_ = false;       // final answer sent; no more requests
  bool closed_ = false;        // socket closed
  // GET state
  std::shared_ptr<Channel> channel_;    // channel of the current GET or POST
  std::shared_ptr<Segment> segment_;    // segment being read or written
  Cursor cursor_;                       // GET position in segment_
  bool headers_sent_ = false;           // GET response header already written
  std::int64_t latest_at_request_ = 0;  // nextWrite when the GET arrived
  // POST state
  std::int64_t post_seq_ = 0;     // seq being published (after -1 resolution)
  std::uint64_t post_bytes_ = 0;  // body bytes received, in bytes
};

void ServerCore::accept_next(tcp::acceptor& from, bool tls) {
  from.async_accept([self = shared_from_this(), &from, tls](error_code ec, tcp::socket socket) {
    if (self->stopped) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      // Out of descriptors and similar: retry a little later instead of spinning.
      log::warn("trickle_accept_failed", {{"error", ec.message()}});
      // One timer per retry: both listeners may be backing off at the same time.
      auto timer = std::make_shared<asio::steady_timer>(self->io, k_accept_retry);
      timer->async_wait([self, timer, &from, tls](error_code wait_ec) {
        if (!wait_ec && !self->stopped) self->accept_next(from, tls);
      });
      return;
    }
    self->counters->connections_accepted.fetch_add(1, std::memory_order_relaxed);
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    std::shared_ptr<ConnectionBase> connection;
    if (tls) {
      connection.reset(new Connection<TlsStream>(self, std::move(socket), *self->options.tls));
    } else {
      connection.reset(new Connection<tcp::socket>(self, std::move(socket)));
    }
    if (self->connections.size() >= self->prune_at) {
      // Amortized: forget closed connections once the list has doubled since the last prune.
      std::erase_if(self->connections, [](const auto& w) { return w.expired(); });
      self->prune_at = 2 * self->connections.size() + 64;
    }
    self->connections.push_back(connection);
    connection->start();
    self->accept_next(from, tls);
  });
}

}  // namespace

struct TrickleServer::Impl : ServerCore {
  using ServerCore::ServerCore;
};

TrickleServer::TrickleServer(boost::asio::io_context& io, ServerOptions options)
    : impl_(std::make_shared<Impl>(io, std::move(options))) {}

TrickleServer::~TrickleServer() {
  impl_->stop();
}

namespace {

Result<std::uint16_t> bind_acceptor(tcp::acceptor& acceptor, const std::string& address,
                                    std::uint16_t port) {
  error_code ec;
  const auto ip = asio::ip::make_address(address, ec);
  if (ec) {
    return fail(Error(ErrorCategory::config, "invalid listen address: " + ec.message())
                    .with("address", address));
  }
  const tcp::endpoint endpoint(ip, port);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    error_code ignored;
    acceptor.close(ignored);
    return fail(Error(ErrorCategory::network, "cannot listen: " + ec.message())
                    .with("address", address)
                    .with("port", std::to_string(port)));
  }
  const auto bound = acceptor.local_endpoint(ec).port();
  return bound;
}

}  // namespace

Result<std::uint16_t> TrickleServer::listen(const std::string& address, std::uint16_t port) {
  if (impl_->stopped || impl_->listening) {
    return fail(Error(ErrorCategory::internal, "trickle server already listening or stopped")
                    .with("address", address));
  }
  auto& acceptor = impl_->acceptor;
  auto bound = bind_acceptor(acceptor, address, port);
  if (!bound) return bound;
  impl_->bound_port = *bound;
  impl_->listening = true;
  impl_->accept_next(acceptor, bool(impl_->options.tls));
  impl_->schedule_sweep();
  log::debug(
      "trickle_server_listening",
      {{"address", address}, {"port", impl_->bound_port}, {"tls", bool(impl_->options.tls)}});
  return impl_->bound_port;
}

Result<std::uint16_t> TrickleServer::listen_internal(const std::string& address,
                                                     std::uint16_t port) {
  if (impl_->stopped || !impl_->listening || impl_->internal_port != 0) {
    return fail(Error(ErrorCategory::internal,
                      "internal listener needs a listening server and can start once")
                    .with("address", address));
  }
  auto bound = bind_acceptor(impl_->internal_acceptor, address, port);
  if (!bound) return bound;
  impl_->internal_port = *bound;
  impl_->accept_next(impl_->internal_acceptor, false);
  return impl_->internal_port;
}

std::string TrickleServer::internal_base_url() const {
  if (impl_->internal_port == 0) return {};
  return "http://127.0.0.1:" + std::to_string(impl_->internal_port) + impl_->options.base_path;
}

void TrickleServer::stop() {
  impl_->stop();
}

void TrickleServer::create_channel(const std::string& name, const std::string& mime) {
  impl_->create_channel(name, mime);
}

bool TrickleServer::close_channel(const std::string& name) {
  return impl_->close_channel(name);
}

bool TrickleServer::has_channel(const std::string& name) const {
  return impl_->find_channel(name) != nullptr;
}

std::int64_t TrickleServer::next_write(const std::string& name) const {
  auto channel = impl_->find_channel(name);
  return channel ? channel->next_write : -1;
}

std::uint16_t TrickleServer::port() const {
  return impl_->bound_port;
}

std::string TrickleServer::base_url() const {
  return std::string(impl_->options.tls ? "https" : "http") +
         "://127.0.0.1:" + std::to_string(impl_->bound_port) + impl_->options.base_path;
}

std::string_view AppRequest::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (beast::iequals(beast::string_view(key.data(), key.size()),
                       beast::string_view(name.data(), name.size()))) {
      return value;
    }
  }
  return {};
}

std::string_view AppRequest::path() const {
  std::string_view p = target;
  if (auto q = p.find('?'); q != std::string_view::npos) p = p.substr(0, q);
  return p;
}

ServerStats TrickleServer::stats() const {
  const Counters& c = *impl_->counters;
  constexpr auto relaxed = std::memory_order_relaxed;
  ServerStats s;
  s.channels_open = c.channels_open.load(relaxed);
  s.segments_started = c.segments_started.load(relaxed);
  s.bytes_in = c.bytes_in.load(relaxed);
  s.bytes_out = c.bytes_out.load(relaxed);
  s.continues_sent = c.continues_sent.load(relaxed);
  s.channels_swept = c.channels_swept.load(relaxed);
  s.connections_accepted = c.connections_accepted.load(relaxed);
  s.connections_open = c.connections_open.load(relaxed);
  s.segments_alive = c.segments_alive.load(relaxed);
  s.app_requests = c.app_requests.load(relaxed);
  s.h2_connections = c.h2_connections.load(relaxed);
  return s;
}

}  // namespace naap::trickle
