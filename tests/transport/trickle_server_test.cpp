// Trickle server against a raw HTTP/1.1 client: exact status codes, headers and chunked bodies
// as go-livepeer clients see them (PROTOCOL.md §1), plus TLS and hostile input.
#include "naap/transport/trickle_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <cctype>
#include <chrono>
#include <csignal>
#include <functional>
#include <future>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;
using naap::trickle::AppRequest;
using naap::trickle::AppResponse;
using naap::trickle::ServerOptions;
using naap::trickle::ServerStats;
using naap::trickle::TrickleServer;

// A peer that vanished must not kill the test process when we write to it.
[[maybe_unused]] const bool k_sigpipe_ignored = [] {
  std::signal(SIGPIPE, SIG_IGN);
  return true;
}();

constexpr auto k_io_timeout = 5s;  // longest any single read in these tests may wait

// ---- server on its own io_context thread ----------------------------------------------------

class Harness {
 public:
  explicit Harness(ServerOptions options) : server_(io_, std::move(options)) {
    auto port = server_.listen("127.0.0.1", 0);
    if (!port) throw std::runtime_error(port.error().describe());
    port_ = *port;
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Harness() { stop(); }
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  // Runs `fn(server)` on the io thread (the server's API is single-threaded) and waits.
  template <class Fn>
  auto on_io(Fn fn) {
    using R = decltype(fn(server_));
    std::packaged_task<R()> task([&] { return fn(server_); });
    auto result = task.get_future();
    asio::post(io_, [&task] { task(); });
    return result.get();
  }

  void create(const std::string& name, const std::string& mime = "video/MP2T") {
    on_io([&](TrickleServer& s) { s.create_channel(name, mime); });
  }
  std::int64_t next_write(const std::string& name) {
    return on_io([&](TrickleServer& s) { return s.next_write(name); });
  }
  bool has_channel(const std::string& name) {
    return on_io([&](TrickleServer& s) { return s.has_channel(name); });
  }

  // stop() must leave the io_context with nothing to do: run() returning proves every
  // connection, timer and handler is gone (LeakSanitizer checks the memory).
  void stop() {
    if (!thread_.joinable()) return;
    on_io([](TrickleServer& s) { s.stop(); });
    work_.reset();
    thread_.join();
  }

  ServerStats stats() const { return server_.stats(); }
  std::uint16_t port() const { return port_; }
  TrickleServer& server() { return server_; }

 private:
  asio::io_context io_;  // the server's only thread runs this
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{
      io_.get_executor()};  // keeps run() going between requests
  TrickleServer server_;    // server under test
  std::uint16_t port_ = 0;  // ephemeral port it listens on
  std::thread thread_;      // runs io_
};

ServerOptions test_options() {
  ServerOptions options;
  options.keepalive_interval = 200ms;
  return options;
}

template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout = 3000ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

// ---- raw HTTP/1.1 client -------------------------------------------------------------------

std::string lower(std::string_view text) {
  std::string out(text);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

struct Response {
  int status = 0;                                            // HTTP status code
  std::vector<std::pair<std::string, std::string>> headers;  // as received, in order
  std::string body;                                          // de-chunked body

  std::optional<std::string> header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (lower(k) == lower(name)) return v;
    }
    return std::nullopt;
  }
  bool has(std::string_view name) const { return header(name).has_value(); }
  std::string get(std::string_view name) const { return header(name).value_or("<absent>"); }
};

class RawClient {
 public:
  explicit RawClient(std::uint16_t port, SSL_CTX* tls = nullptr) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      throw std::runtime_error("connect failed");
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (tls != nullptr) {
      ssl_ = SSL_new(tls);
      SSL_set_fd(ssl_, fd_);
      if (SSL_connect(ssl_) != 1) throw std::runtime_error("TLS handshake failed");
      // Non-blocking from here so that reads honour our timeouts even for TLS records.
      ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
    }
  }
  ~RawClient() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  void send(std::string_view bytes) {
    while (!bytes.empty()) {
      long n = 0;
      if (ssl_ != nullptr) {
        n = SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()));
        if (n <= 0) {
          if (SSL_get_error(ssl_, static_cast<int>(n)) == SSL_ERROR_WANT_WRITE ||
              SSL_get_error(ssl_, static_cast<int>(n)) == SSL_ERROR_WANT_READ) {
            wait_fd(POLLOUT | POLLIN, 1000);
            continue;
          }
          throw std::runtime_error("TLS write failed");
        }
      } else {
        n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0) throw std::runtime_error("send failed");
      }
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  // Raw bytes, for non-HTTP protocols relayed by the server (h2).
  std::string read_bytes(std::size_t n) { return read_exact(n); }

  // Closes with RST: a publisher or subscriber that crashed.
  void reset() {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    if (ssl_ != nullptr) {
      SSL_free(ssl_);
      ssl_ = nullptr;
    }
    ::close(fd_);
    fd_ = -1;
  }

  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

  Response read_head() {
    std::size_t end = 0;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) need_more();
    const std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    Response r;
    std::size_t line_end = head.find("\r\n");
    const std::string status_line = head.substr(0, line_end);
    if (!status_line.starts_with("HTTP/1.1 ")) throw std::runtime_error("bad status line");
    r.status = std::stoi(status_line.substr(9, 3));
    while (line_end != std::string::npos) {
      const std::size_t start = line_end + 2;
      line_end = head.find("\r\n", start);
      const std::string line = head.substr(start, line_end - start);
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      r.headers.emplace_back(line.substr(0, colon), value);
    }
    return r;
  }

  // One chunk of a chunked body; nullopt for the last chunk.
  std::optional<std::string> read_chunk() {
    const std::string size_line = read_line();
    const std::size_t size = std::stoul(size_line, nullptr, 16);
    if (size == 0) {
      if (read_line() != "") throw std::runtime_error("trailers not expected");
      return std::nullopt;
    }
    std::string data = read_exact(size);
    if (read_exact(2) != "\r\n") throw std::runtime_error("bad chunk end");
    return data;
  }

  std::string read_chunked_rest() {
    std::string body;
    while (auto chunk = read_chunk()) body += *chunk;
    return body;
  }

  // One response, 1xx included; the body according to its framing.
  Response read_response() {
    Response r = read_head();
    if (r.status < 200) return r;
    if (lower(r.get("Transfer-Encoding")) == "chunked") {
      r.body = read_chunked_rest();
    } else if (r.has("Content-Length")) {
      r.body = read_exact(std::stoul(r.get("Content-Length")));
    } else {
      while (fill(k_io_timeout) > 0) {
      }
      r.body = std::exchange(buf_, {});
    }
    return r;
  }

  // The final response, skipping interim 100 Continue; `continues` counts them.
  Response read_final(int* continues = nullptr) {
    for (;;) {
      Response r = read_response();
      if (r.status >= 200) return r;
      if (continues != nullptr) ++*continues;
    }
  }

  // True when no byte (and no EOF) arrives within `window`: a reader that is still waiting.
  bool silent_for(std::chrono::milliseconds window) {
    if (!buf_.empty()) return false;
    return fill(window) == -1;
  }

  // True when the peer closes (EOF or RST) within `timeout`; data before it is discarded.
  bool closed_within(std::chrono::milliseconds timeout = 3000ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      const long n = fill(std::max(left, 1ms));
      if (n == 0) return true;
      if (n < 0) return false;
    }
    return false;
  }

 private:
  void wait_fd(short events, int timeout_ms) {
    pollfd p{fd_, events, 0};
    ::poll(&p, 1, timeout_ms);
  }

  // >0 bytes appended, 0 on EOF or reset, -1 on timeout.
  long fill(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    char tmp[16384];
    for (;;) {
      if (ssl_ == nullptr || SSL_pending(ssl_) == 0) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return -1;
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) == 0) return -1;
      }
      long n = 0;
      if (ssl_ != nullptr) {
        n = SSL_read(ssl_, tmp, sizeof tmp);
        if (n <= 0) {
          const int err = SSL_get_error(ssl_, static_cast<int>(n));
          if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) continue;
          ERR_clear_error();
          return 0;
        }
      } else {
        n = ::recv(fd_, tmp, sizeof tmp, 0);
        if (n <= 0) return 0;
      }
      buf_.append(tmp, static_cast<std::size_t>(n));
      return n;
    }
  }

  void need_more() {
    const long n = fill(k_io_timeout);
    if (n == 0) throw std::runtime_error("connection closed by server");
    if (n < 0) throw std::runtime_error("timed out waiting for the server");
  }

  std::string read_line() {
    std::size_t end = 0;
    while ((end = buf_.find("\r\n")) == std::string::npos) need_more();
    std::string line = buf_.substr(0, end);
    buf_.erase(0, end + 2);
    return line;
  }

  std::string read_exact(std::size_t n) {
    while (buf_.size() < n) need_more();
    std::string out = buf_.substr(0, n);
    buf_.erase(0, n);
    return out;
  }

  int fd_ = -1;         // socket, -1 once reset
  SSL* ssl_ = nullptr;  // TLS session when connected with a context
  std::string buf_;     // received bytes not yet consumed
};

const std::string k_base = "/ai/trickle/";

std::string request(std::string_view method, std::string_view path, std::string_view extra = "",
                    std::optional<std::string_view> body = std::nullopt) {
  std::string out = std::string(method) + " " + k_base + std::string(path) +
                    " HTTP/1.1\r\nHost: test\r\n" + std::string(extra);
  if (body) out += "Content-Length: " + std::to_string(body->size()) + "\r\n";
  out += "\r\n";
  if (body) out += *body;
  return out;
}

// Opens a chunked POST without sending a body byte (a preconnected publisher).
std::string open_post(std::string_view path, std::string_view extra = "") {
  return request("POST", path,
                 std::string("Transfer-Encoding: chunked\r\nContent-Type: video/MP2T\r\n") +
                     std::string(extra));
}

std::string chunk(std::string_view data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return std::string(size) + std::string(data) + "\r\n";
}

Response get(std::uint16_t port, std::string_view path) {
  RawClient c(port);
  c.send(request("GET", path));
  return c.read_response();
}

Response post(std::uint16_t port, std::string_view path, std::string_view body,
              std::string_view extra = "") {
  RawClient c(port);
  c.send(request("POST", path, extra, body));
  return c.read_final();
}

Response del(std::uint16_t port, std::string_view path) {
  RawClient c(port);
  c.send(request("DELETE", path));
  return c.read_response();
}

// ---- TLS material --------------------------------------------------------------------------

struct TlsMaterial {
  std::string cert_pem;  // self-signed certificate for CN=localhost
  std::string key_pem;   // its P-256 private key
};

std::string bio_string(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

TlsMaterial make_self_signed() {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "prime256v1");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509_sign(cert, key, EVP_sha256());
  BIO* cert_bio = BIO_new(BIO_s_mem());
  BIO* key_bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(cert_bio, cert);
  PEM_write_bio_PrivateKey(key_bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  TlsMaterial out{bio_string(cert_bio), bio_string(key_bio)};
  BIO_free(cert_bio);
  BIO_free(key_bio);
  X509_free(cert);
  EVP_PKEY_free(key);
  return out;
}

// test_options() serving HTTPS with a fresh self-signed certificate.
ServerOptions tls_test_options() {
  const TlsMaterial material = make_self_signed();
  auto context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  context->use_certificate_chain(asio::buffer(material.cert_pem));
  context->use_private_key(asio::buffer(material.key_pem), asio::ssl::context::pem);
  ServerOptions options = test_options();
  options.tls = context;
  return options;
}

// ---- tests ---------------------------------------------------------------------------------

TEST(TrickleServer, streams_segment_bytes_to_readers_while_the_post_is_still_open) {
  Harness h(test_options());
  h.create("job");
  RawClient pub(h.port());
  pub.send(open_post("job/0") + chunk("hello"));
  ASSERT_TRUE(wait_until([&] { return h.next_write("job") == 1; }));

  RawClient sub(h.port());
  sub.send(request("GET", "job/0"));
  const Response head = sub.read_head();
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.get("Content-Type"), "video/MP2T");
  EXPECT_EQ(head.get("Lp-Trickle-Seq"), "0");
  EXPECT_EQ(head.get("Lp-Trickle-Latest"), "1");  // reading the segment being written
  EXPECT_EQ(head.get("Transfer-Encoding"), "chunked");
  EXPECT_FALSE(head.has("Content-Length"));
  EXPECT_EQ(sub.read_chunk(), "hello");  // delivered before the publisher finished

  // A reader that joins mid-segment starts from byte 0.
  RawClient late(h.port());
  late.send(request("GET", "job/0"));
  EXPECT_EQ(late.read_head().status, 200);

  pub.send(chunk(" world"));
  EXPECT_EQ(sub.read_chunk(), " world");
  pub.send("0\r\n\r\n");
  const Response done = pub.read_final();
  EXPECT_EQ(done.status, 200);
  EXPECT_EQ(done.get("Lp-Trickle-Seq"), "0");
  EXPECT_EQ(sub.read_chunk(), std::nullopt);  // end of segment = end of chunked body
  EXPECT_EQ(late.read_chunked_rest(), "hello world");

  EXPECT_EQ(h.stats().bytes_in, 11u);
  EXPECT_TRUE(wait_until([&] { return h.stats().bytes_out == 22u; }));  // each reader got 11
  EXPECT_EQ(h.stats().segments_started, 1u);
}

TEST(TrickleServer, keeps_an_idle_post_alive_with_100_continue_until_its_first_byte) {
  Harness h(test_options());
  h.create("job");
  RawClient pub(h.port());
  pub.send(open_post("job/0"));
  // Two interim responses in a row, byte-exact, before any final status.
  EXPECT_EQ(pub.read_response().status, 100);
  EXPECT_EQ(pub.read_response().status, 100);
  EXPECT_GE(h.stats().continues_sent, 2u);

  pub.send(chunk("x"));
  ASSERT_TRUE(wait_until([&] { return h.next_write("job") == 1; }));
  const auto continues = h.stats().continues_sent;
  std::this_thread::sleep_for(450ms);
  EXPECT_EQ(h.stats().continues_sent, continues);  // no keepalive once bytes flow
  pub.send("0\r\n\r\n");
  const Response r = pub.read_final();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.get("Lp-Trickle-Seq"), "0");

  // A client that asks with Expect: 100-continue gets it at once, not after the interval.
  ServerOptions slow = test_options();
  slow.keepalive_interval = 10s;
  Harness h2(slow);
  h2.create("job");
  RawClient c(h2.port());
  c.send(open_post("job/0", "Expect: 100-continue\r\n"));
  EXPECT_EQ(c.read_response().status, 100);
}

TEST(TrickleServer, answers_470_with_latest_and_requested_seq_for_a_seq_too_far_ahead) {
  Harness h(test_options());
  h.create("job");
  const Response ahead = get(h.port(), "job/3");
  EXPECT_EQ(ahead.status, 470);
  EXPECT_EQ(ahead.get("Lp-Trickle-Latest"), "0");
  EXPECT_EQ(ahead.get("Lp-Trickle-Seq"), "3");
  EXPECT_EQ(ahead.body, "Entry not found");

  ASSERT_EQ(post(h.port(), "job/0", "a").status, 200);
  const Response later = get(h.port(), "job/5");
  EXPECT_EQ(later.status, 470);
  EXPECT_EQ(later.get("Lp-Trickle-Latest"), "1");
  EXPECT_EQ(later.get("Lp-Trickle-Seq"), "5");
}

TEST(TrickleServer, serves_past_segments_from_byte_zero_until_evicted_five_later) {
  Harness h(test_options());
  h.create("job");
  RawClient pub(h.port());  // one keep-alive connection publishes every segment
  for (int seq = 0; seq < 7; ++seq) {
    pub.send(request("POST", "job/" + std::to_string(seq), "", "seg-" + std::to_string(seq)));
    const Response r = pub.read_final();
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.get("Lp-Trickle-Seq"), std::to_string(seq));
  }
  const Response old = get(h.port(), "job/2");
  EXPECT_EQ(old.status, 200);
  EXPECT_EQ(old.body, "seg-2");
  EXPECT_EQ(old.get("Lp-Trickle-Seq"), "2");
  EXPECT_EQ(old.get("Lp-Trickle-Latest"), "7");  // lagging by five

  const Response evicted = get(h.port(), "job/1");
  EXPECT_EQ(evicted.status, 470);
  EXPECT_EQ(evicted.get("Lp-Trickle-Latest"), "7");
  // Evicted segments are freed: only the five in the ring remain.
  EXPECT_TRUE(wait_until([&] { return h.stats().segments_alive == 5; }));
}

TEST(TrickleServer, waits_on_minus_one_for_the_next_segment_and_reports_its_seq) {
  Harness h(test_options());
  h.create("job");
  ASSERT_EQ(post(h.port(), "job/0", "a").status, 200);
  ASSERT_EQ(post(h.port(), "job/1", "b").status, 200);

  RawClient sub(h.port());
  sub.send(request("GET", "job/-1"));
  EXPECT_TRUE(sub.silent_for(200ms));  // headers come only with the first byte
  ASSERT_EQ(post(h.port(), "job/2", "seg-2").status, 200);
  const Response r = sub.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.get("Lp-Trickle-Seq"), "2");
  EXPECT_FALSE(r.has("Lp-Trickle-Latest"));  // it was nextWrite when asked
  EXPECT_EQ(r.body, "seg-2");

  // ai-runner sends Connection: close on every request: same body, then the server closes.
  RawClient once(h.port());
  once.send(request("GET", "job/2", "Connection: close\r\n"));
  const Response closing = once.read_response();
  EXPECT_EQ(closing.body, "seg-2");
  EXPECT_EQ(closing.get("Connection"), "close");
  EXPECT_TRUE(once.closed_within());
}

TEST(TrickleServer, publishes_at_next_write_for_post_minus_one_and_rejects_post_minus_two) {
  Harness h(test_options());
  h.create("job");
  ASSERT_EQ(post(h.port(), "job/0", "a").status, 200);
  const Response r = post(h.port(), "job/-1", "b");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.get("Lp-Trickle-Seq"), "1");
  EXPECT_EQ(h.next_write("job"), 2);
  EXPECT_EQ(get(h.port(), "job/1").body, "b");
  EXPECT_EQ(post(h.port(), "job/-2", "c").status, 400);
  EXPECT_EQ(h.next_write("job"), 2);
}

TEST(TrickleServer, serves_the_segment_being_written_for_minus_two) {
  Harness h(test_options());
  h.create("job");
  RawClient first(h.port());
  first.send(request("GET", "job/-2"));  // nothing written yet: waits for seq 0
  EXPECT_TRUE(first.silent_for(150ms));
  ASSERT_EQ(post(h.port(), "job/0", "zero").status, 200);
  const Response r0 = first.read_response();
  EXPECT_EQ(r0.get("Lp-Trickle-Seq"), "0");
  EXPECT_EQ(r0.body, "zero");

  RawClient pub(h.port());
  pub.send(open_post("job/1") + chunk("one"));
  ASSERT_TRUE(wait_until([&] { return h.next_write("job") == 2; }));
  RawClient sub(h.port());
  sub.send(request("GET", "job/-2"));
  const Response head = sub.read_head();
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.get("Lp-Trickle-Seq"), "1");
  EXPECT_EQ(head.get("Lp-Trickle-Latest"), "2");  // Latest - Seq = 1: the live segment
  EXPECT_EQ(sub.read_chunk(), "one");

  // Servers before May 2025 panic on -2 and drop the connection without an answer.
  ServerOptions old = test_options();
  old.support_current_seq = false;
  Harness h_old(old);
  h_old.create("job");
  RawClient c(h_old.port());
  c.send(request("GET", "job/-2"));
  EXPECT_TRUE(c.closed_within());
}

TEST(TrickleServer, waits_for_seq_one_while_nothing_is_written_but_not_for_seq_two) {
  Harness h(test_options());
  h.create("job");
  RawClient sub(h.port());
  sub.send(request("GET", "job/1"));
  EXPECT_TRUE(sub.silent_for(150ms));
  EXPECT_EQ(get(h.port(), "job/2").status, 470);
  ASSERT_EQ(post(h.port(), "job/0", "zero").status, 200);
  ASSERT_EQ(post(h.port(), "job/1", "one").status, 200);
  const Response r = sub.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "one");
}

TEST(TrickleServer, lets_a_reader_wait_on_a_seq_a_publisher_preconnected) {
  Harness h(test_options());
  h.create("job");
  RawClient pub(h.port());
  pub.send(open_post("job/3"));
  ASSERT_EQ(pub.read_response().status, 100);  // the server has opened slot 3
  EXPECT_EQ(h.next_write("job"), 0);           // opening a POST does not move nextWrite

  RawClient sub(h.port());
  sub.send(request("GET", "job/3"));
  EXPECT_TRUE(sub.silent_for(150ms));  // waits instead of 470
  pub.send(chunk("late") + "0\r\n\r\n");
  EXPECT_EQ(pub.read_final().status, 200);
  const Response r = sub.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.get("Lp-Trickle-Seq"), "3");
  EXPECT_EQ(r.body, "late");
  EXPECT_EQ(h.next_write("job"), 4);
}

TEST(TrickleServer, closes_an_empty_post_and_serves_its_segment_as_empty_200) {
  Harness h(test_options());
  h.create("job");
  RawClient pub(h.port());
  pub.send(request("POST", "job/0", "", ""));
  const Response r = pub.read_final();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.get("Connection"), "close");
  EXPECT_EQ(r.get("Lp-Trickle-Seq"), "0");
  EXPECT_TRUE(pub.closed_within());
  EXPECT_EQ(h.next_write("job"), 1);  // an empty segment still advances nextWrite

  const Response empty = get(h.port(), "job/0");
  EXPECT_EQ(empty.status, 200);
  EXPECT_EQ(empty.body, "");
  EXPECT_EQ(empty.get("Lp-Trickle-Seq"), "0");
  EXPECT_EQ(empty.get("Lp-Trickle-Latest"), "1");
  EXPECT_FALSE(empty.has("Lp-Trickle-Closed"));
}

TEST(TrickleServer, delete_segment_releases_its_readers_and_a_preconnected_post) {
  Harness h(test_options());
  h.create("job");
  RawClient pub(h.port());
  pub.send(open_post("job/0") + chunk("abc"));
  RawClient sub(h.port());
  sub.send(request("GET", "job/0"));
  ASSERT_EQ(sub.read_head().status, 200);
  EXPECT_EQ(sub.read_chunk(), "abc");

  EXPECT_EQ(del(h.port(), "job/0").status, 200);
  EXPECT_EQ(sub.read_chunk(), std::nullopt);  // the reader sees the end of the segment

  const Response missing = del(h.port(), "job/9");
  EXPECT_EQ(missing.status, 400);
  EXPECT_EQ(missing.body, "Nonexistent segment\n");
  EXPECT_EQ(del(h.port(), "nochan/0").status, 404);

  RawClient pre(h.port());
  pre.send(open_post("job/1"));
  ASSERT_EQ(pre.read_response().status, 100);
  EXPECT_EQ(del(h.port(), "job/1").status, 200);
  const Response released = pre.read_final();
  EXPECT_EQ(released.status, 200);
  EXPECT_EQ(released.get("Connection"), "close");
  EXPECT_FALSE(released.has("Lp-Trickle-Closed"));
  EXPECT_TRUE(pre.closed_within());
}

TEST(TrickleServer, leaves_the_segment_open_when_the_publisher_dies_mid_body) {
  Harness h(test_options());
  h.create("job");
  RawClient sub(h.port());
  {
    RawClient pub(h.port());
    pub.send(open_post("job/0") + chunk("abc"));
    sub.send(request("GET", "job/0"));
    ASSERT_EQ(sub.read_head().status, 200);
    EXPECT_EQ(sub.read_chunk(), "abc");
    pub.reset();
  }
  EXPECT_TRUE(sub.silent_for(300ms));  // not ended: a reader cannot tell a stall from a crash
  EXPECT_EQ(get(h.port(), "job/next").status, 200);  // the server is fine

  // A publisher that half-closes mid-body is still there to read the 500.
  RawClient pub2(h.port());
  pub2.send(open_post("job/1") + chunk("xyz"));
  ASSERT_TRUE(wait_until([&] { return h.next_write("job") == 2; }));
  pub2.shutdown_write();
  EXPECT_EQ(pub2.read_final().status, 500);

  EXPECT_EQ(del(h.port(), "job/0").status, 200);  // the §1.8 rule releases the reader
  EXPECT_EQ(sub.read_chunk(), std::nullopt);
}

TEST(TrickleServer, delete_channel_ends_waiting_requests_with_closed_and_then_answers_404) {
  Harness h(test_options());
  h.create("job");
  RawClient sub(h.port());
  sub.send(request("GET", "job/-1"));
  RawClient pre(h.port());
  pre.send(open_post("job/1"));
  ASSERT_EQ(pre.read_response().status, 100);
  ASSERT_TRUE(wait_until([&] { return h.stats().segments_alive == 2; }));

  EXPECT_EQ(del(h.port(), "job").status, 200);
  const Response r = sub.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.get("Lp-Trickle-Closed"), "terminated");
  EXPECT_EQ(r.get("Lp-Trickle-Seq"), "0");
  const Response p = pre.read_final();
  EXPECT_EQ(p.status, 200);
  EXPECT_EQ(p.get("Lp-Trickle-Closed"), "terminated");
  EXPECT_EQ(p.get("Connection"), "close");

  EXPECT_FALSE(h.has_channel("job"));
  EXPECT_EQ(get(h.port(), "job/0").status, 404);
  EXPECT_EQ(get(h.port(), "job/next").status, 404);
  const Response late_post = post(h.port(), "job/2", "x");
  EXPECT_EQ(late_post.status, 404);
  EXPECT_EQ(late_post.get("Connection"), "close");
  const Response again = del(h.port(), "job");
  EXPECT_EQ(again.status, 400);
  EXPECT_EQ(again.body, "Invalid stream\n");
  EXPECT_TRUE(wait_until([&] { return h.stats().segments_alive == 0; }));
}

TEST(TrickleServer, close_channel_api_releases_readers_like_delete) {
  Harness h(test_options());
  h.create("job");
  RawClient sub(h.port());
  sub.send(request("GET", "job/0"));
  ASSERT_TRUE(wait_until([&] { return h.stats().segments_alive == 1; }));
  EXPECT_TRUE(h.on_io([](TrickleServer& s) { return s.close_channel("job"); }));
  EXPECT_EQ(sub.read_response().get("Lp-Trickle-Closed"), "terminated");
  EXPECT_FALSE(h.on_io([](TrickleServer& s) { return s.close_channel("job"); }));
  EXPECT_EQ(h.next_write("job"), -1);
}

TEST(TrickleServer, reset_header_releases_readers_of_earlier_segments_only) {
  Harness h(test_options());
  h.create("job");
  RawClient pub0(h.port());
  pub0.send(open_post("job/0") + chunk("old"));
  RawClient sub0(h.port());
  sub0.send(request("GET", "job/0"));
  ASSERT_EQ(sub0.read_head().status, 200);
  EXPECT_EQ(sub0.read_chunk(), "old");

  RawClient pub2(h.port());  // preconnected ahead of the restart
  pub2.send(open_post("job/2"));
  ASSERT_EQ(pub2.read_response().status, 100);
  RawClient sub2(h.port());
  sub2.send(request("GET", "job/2"));

  const Response r = post(h.port(), "job/1", "new", "Lp-Trickle-Reset: 1\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(sub0.read_chunk(), std::nullopt);  // stuck reader released
  EXPECT_TRUE(sub2.silent_for(150ms));         // the preconnected segment is kept
  pub2.send(chunk("ahead") + "0\r\n\r\n");
  EXPECT_EQ(sub2.read_response().body, "ahead");

  // Without support (older servers) the header is ignored.
  ServerOptions old = test_options();
  old.support_reset = false;
  Harness h_old(old);
  h_old.create("job");
  RawClient p(h_old.port());
  p.send(open_post("job/0") + chunk("old"));
  RawClient s(h_old.port());
  s.send(request("GET", "job/0"));
  ASSERT_EQ(s.read_head().status, 200);
  EXPECT_EQ(s.read_chunk(), "old");
  EXPECT_EQ(post(h_old.port(), "job/1", "new", "Lp-Trickle-Reset: 1\r\n").status, 200);
  EXPECT_TRUE(s.silent_for(150ms));
}

TEST(TrickleServer, post_skipping_ahead_takes_the_slot_and_ends_its_occupant) {
  Harness h(test_options());
  h.create("job");
  RawClient pub(h.port());
  pub.send(open_post("job/0") + chunk("zero"));
  RawClient sub(h.port());
  sub.send(request("GET", "job/0"));
  ASSERT_EQ(sub.read_head().status, 200);
  EXPECT_EQ(sub.read_chunk(), "zero");

  const Response r = post(h.port(), "job/5", "five");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.get("Lp-Trickle-Seq"), "5");
  EXPECT_EQ(sub.read_chunk(), std::nullopt);
  EXPECT_EQ(h.next_write("job"), 6);
  EXPECT_EQ(get(h.port(), "job/0").status, 470);
  EXPECT_EQ(get(h.port(), "job/5").body, "five");
}

TEST(TrickleServer, next_reports_next_write_and_old_servers_answer_invalid_idx) {
  Harness h(test_options());
  h.create("job");
  const Response first = get(h.port(), "job/next");
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.body, "0");
  EXPECT_EQ(first.get("Lp-Trickle-Latest"), "0");
  EXPECT_FALSE(first.has("Lp-Trickle-Closed"));
  ASSERT_EQ(post(h.port(), "job/0", "a").status, 200);
  EXPECT_EQ(get(h.port(), "job/next").body, "1");
  EXPECT_EQ(get(h.port(), "nochan/next").status, 404);

  ServerOptions old = test_options();
  old.support_next = false;
  Harness h_old(old);
  h_old.create("job");
  const Response r = get(h_old.port(), "job/next");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body, "Invalid idx\n");
}

TEST(TrickleServer, idle_sweep_closes_quiet_channels_and_skips_underscore_names) {
  ServerOptions options = test_options();
  options.idle_timeout = 300ms;
  options.sweep_interval = 50ms;
  Harness h(options);
  h.create("quiet");
  h.create("busy");
  h.create("_changes", "application/json");
  RawClient sub(h.port());
  sub.send(request("GET", "quiet/-1"));

  for (int seq = 0; seq < 10; ++seq) {  // a new segment every 60 ms keeps "busy" alive
    ASSERT_EQ(post(h.port(), "busy/" + std::to_string(seq), "x").status, 200);
    std::this_thread::sleep_for(60ms);
  }
  EXPECT_FALSE(h.has_channel("quiet"));
  EXPECT_TRUE(h.has_channel("busy"));
  EXPECT_TRUE(h.has_channel("_changes"));
  EXPECT_EQ(h.stats().channels_swept, 1u);
  EXPECT_EQ(h.stats().channels_open, 2u);
  EXPECT_EQ(sub.read_response().get("Lp-Trickle-Closed"), "terminated");
}

TEST(TrickleServer, rejects_unknown_channels_without_autocreate_but_accepts_pre_created_ones) {
  Harness h(test_options());
  const Response p = post(h.port(), "nochan/0", "data");
  EXPECT_EQ(p.status, 404);
  EXPECT_EQ(p.get("Connection"), "close");  // wakes preconnected publishers
  EXPECT_EQ(post(h.port(), "nochan", "", "Expect-Content: video/MP2T\r\n").status, 404);
  EXPECT_EQ(get(h.port(), "nochan/0").status, 404);
  EXPECT_FALSE(h.has_channel("nochan"));

  h.create("job", "application/json");
  EXPECT_EQ(post(h.port(), "job", "").status, 200);  // create on an existing channel is fine
  ASSERT_EQ(post(h.port(), "job/0", "{}", "Content-Type: text/plain\r\n").status, 200);
  EXPECT_EQ(get(h.port(), "job/0").get("Content-Type"), "application/json");
  EXPECT_EQ(get(h.port(), "other/path/0").status, 404);
  EXPECT_EQ(h.stats().channels_open, 1u);
}

TEST(TrickleServer, autocreates_a_channel_with_its_expect_content_mime_when_enabled) {
  ServerOptions options = test_options();
  options.autocreate = true;
  Harness h(options);
  EXPECT_EQ(get(h.port(), "unknown/0").status, 404) << "reads never create channels";
  EXPECT_FALSE(h.has_channel("unknown"));
  EXPECT_EQ(post(h.port(), "made", "", "Expect-Content: application/json\r\n").status, 200);
  EXPECT_TRUE(h.has_channel("made"));
  ASSERT_EQ(post(h.port(), "made/0", "{\"a\":1}", "Content-Type: text/plain\r\n").status, 200);
  const Response r = get(h.port(), "made/0");
  EXPECT_EQ(r.get("Content-Type"), "application/json");
  EXPECT_EQ(r.body, "{\"a\":1}");

  // A publish to an unknown channel creates it with the POST's Content-Type.
  ASSERT_EQ(post(h.port(), "other/0", "ts", "Content-Type: video/MP2T\r\n").status, 200);
  EXPECT_EQ(get(h.port(), "other/0").get("Content-Type"), "video/MP2T");
}

TEST(TrickleServer, serves_publish_and_subscribe_over_tls_with_a_self_signed_certificate) {
  ServerOptions options = tls_test_options();
  Harness h(options);
  h.create("job");
  EXPECT_TRUE(h.server().base_url().starts_with("https://127.0.0.1:"));

  SSL_CTX* client = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(client, SSL_VERIFY_NONE, nullptr);  // orchestrators are self-signed
  {
    RawClient pub(h.port(), client);
    pub.send(open_post("job/0"));
    EXPECT_EQ(pub.read_response().status, 100);  // keepalive works over TLS too
    pub.send(chunk("secure"));
    RawClient sub(h.port(), client);
    sub.send(request("GET", "job/0"));
    const Response head = sub.read_head();
    EXPECT_EQ(head.status, 200);
    EXPECT_EQ(head.get("Lp-Trickle-Seq"), "0");
    EXPECT_EQ(sub.read_chunk(), "secure");
    pub.send("0\r\n\r\n");
    EXPECT_EQ(pub.read_final().get("Lp-Trickle-Seq"), "0");
    EXPECT_EQ(sub.read_chunk(), std::nullopt);

    // Connection: close answers end with a clean TLS close.
    RawClient gone(h.port(), client);
    gone.send(request("POST", "nochan/0", "", "x"));
    EXPECT_EQ(gone.read_final().status, 404);
    EXPECT_TRUE(gone.closed_within());
  }
  // A plain-text client on the TLS port is dropped, and the server keeps serving.
  RawClient plain(h.port());
  plain.send(request("GET", "job/next"));
  EXPECT_TRUE(plain.closed_within());
  RawClient again(h.port(), client);
  again.send(request("GET", "job/next"));
  EXPECT_EQ(again.read_response().body, "1");
  SSL_CTX_free(client);
}

TEST(TrickleServer, answers_400_to_bad_seqs_and_keeps_the_connection_usable) {
  Harness h(test_options());
  h.create("job");
  RawClient c(h.port());
  const std::vector<std::string> bad = {
      request("GET", "job/abc"),         request("GET", "job/-3"),
      request("GET", "job/1x"),          request("GET", "job/99999999999999999999"),
      request("POST", "job/-2", "", ""), request("POST", "job/-7", "", ""),
      request("POST", "job/zz", "", ""), request("DELETE", "job/-1"),
  };
  for (const auto& req : bad) {
    c.send(req);
    const Response r = c.read_final();
    EXPECT_EQ(r.status, 400) << req;
    EXPECT_EQ(r.body, "Invalid idx\n") << req;
  }
  c.send(request("GET", "job/next"));  // same keep-alive connection still works
  EXPECT_EQ(c.read_response().status, 200);
  EXPECT_EQ(h.next_write("job"), 0);
}

TEST(TrickleServer, answers_431_to_oversized_headers_and_keeps_serving) {
  Harness h(test_options());
  h.create("job");
  RawClient c(h.port());
  c.send(request("GET", "job/next", "X-Pad: " + std::string(20 * 1024, 'a') + "\r\n"));
  const Response r = c.read_response();
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(r.get("Connection"), "close");
  EXPECT_TRUE(c.closed_within());
  EXPECT_EQ(get(h.port(), "job/next").status, 200);
}

TEST(TrickleServer, answers_400_to_garbage_and_survives_abrupt_clients) {
  Harness h(test_options());
  h.create("job");
  RawClient c(h.port());
  c.send("\x16\x03\x01 garbage \x01\x02\r\n\r\n");
  const Response r = c.read_response();
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.get("Connection"), "close");
  EXPECT_TRUE(c.closed_within());

  {
    RawClient half(h.port());
    half.send("GET /ai/trickle/job/0 HTT");  // half a request line, then a reset
    half.reset();
  }
  {
    RawClient bad_chunk(h.port());  // invalid chunk size mid-body
    bad_chunk.send(open_post("job/0") + chunk("ok") + "zz\r\n");
    EXPECT_EQ(bad_chunk.read_final().status, 500);
  }
  EXPECT_EQ(get(h.port(), "job/next").status, 200);
  EXPECT_EQ(get(h.port(), "job").status, 405);
}

TEST(TrickleServer, releases_connections_and_memory_when_peers_vanish) {
  Harness h(test_options());
  h.create("job");
  {
    std::vector<std::unique_ptr<RawClient>> readers;
    for (int i = 0; i < 3; ++i) {
      readers.push_back(std::make_unique<RawClient>(h.port()));
      readers.back()->send(request("GET", "job/-1"));
    }
    RawClient idle_post(h.port());
    idle_post.send(open_post("job/0"));
    ASSERT_TRUE(wait_until([&] { return h.stats().connections_open == 4; }));
    for (auto& r : readers) r->reset();
    idle_post.reset();
  }
  EXPECT_TRUE(wait_until([&] { return h.stats().connections_open == 0; }));

  for (int seq = 0; seq < 12; ++seq) {
    ASSERT_EQ(post(h.port(), "job/" + std::to_string(seq), std::string(100'000, 'x')).status, 200);
  }
  EXPECT_TRUE(wait_until([&] { return h.stats().segments_alive == 5; }));
  EXPECT_TRUE(wait_until([&] { return h.stats().connections_open == 0; }));
}

TEST(TrickleServer, streams_a_multi_megabyte_segment_intact) {
  Harness h(test_options());
  h.create("job");
  std::string payload(3 * 1024 * 1024 + 123, '\0');
  for (std::size_t i = 0; i < payload.size(); ++i) {
    payload[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
  }
  RawClient pub(h.port());
  pub.send(open_post("job/0") + chunk(std::string_view(payload).substr(0, 1000)));
  RawClient sub(h.port());
  sub.send(request("GET", "job/0"));
  ASSERT_EQ(sub.read_head().status, 200);
  std::thread writer([&] {
    for (std::size_t off = 1000; off < payload.size(); off += 100'000) {
      pub.send(chunk(std::string_view(payload).substr(off, 100'000)));
    }
    pub.send("0\r\n\r\n");
  });
  const std::string got = sub.read_chunked_rest();
  writer.join();
  EXPECT_EQ(pub.read_final().status, 200);
  EXPECT_EQ(got.size(), payload.size());
  EXPECT_TRUE(got == payload);
  EXPECT_EQ(h.stats().bytes_in, payload.size());
}

TEST(TrickleServer, stop_closes_every_open_connection) {
  Harness h(test_options());
  h.create("job");
  RawClient sub(h.port());
  sub.send(request("GET", "job/-1"));
  RawClient pub(h.port());
  pub.send(open_post("job/0"));
  ASSERT_TRUE(wait_until([&] { return h.stats().connections_open == 2; }));
  h.stop();
  EXPECT_TRUE(sub.closed_within());
  EXPECT_TRUE(pub.closed_within());
  EXPECT_EQ(h.stats().connections_open, 0u);
  EXPECT_EQ(h.stats().channels_open, 0u);
}

TEST(TrickleServer, leaks_nothing_when_destroyed_with_requests_in_flight_and_io_stopped) {
  // Owners may stop the io_context first and destroy everything without running it again:
  // pending handlers are then destroyed, not run, and must not keep anything alive.
  auto io = std::make_unique<asio::io_context>();
  auto server = std::make_unique<TrickleServer>(*io, test_options());
  auto port = server->listen("127.0.0.1", 0);
  ASSERT_TRUE(port.has_value());
  server->create_channel("job", "video/MP2T");
  std::thread runner([&] { io->run_for(2s); });
  RawClient sub(*port);
  sub.send(request("GET", "job/-1"));
  RawClient pub(*port);
  pub.send(open_post("job/0") + chunk("partial"));
  RawClient reader(*port);
  reader.send(request("GET", "job/0"));
  EXPECT_EQ(reader.read_head().status, 200);
  ASSERT_TRUE(wait_until([&] { return server->stats().connections_open == 3; }));
  io->stop();
  runner.join();
  server.reset();  // runs stop(): sockets closed, channels dropped, handlers still queued
  io.reset();      // destroys the queued handlers; LeakSanitizer checks the rest
  EXPECT_TRUE(sub.closed_within());
}

}  // namespace

// ---- orchestrator extensions: app routes, internal listener, gRPC (h2) on the same port -----

std::string raw_request(std::string_view method, std::string_view target, std::string_view extra,
                        std::string_view body) {
  return std::string(method) + " " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" +
         std::string(extra) + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
         std::string(body);
}

TEST(TrickleServer, hands_requests_outside_the_base_path_to_the_app_handler_whole) {
  ServerOptions options = test_options();
  options.max_app_body_bytes = 1024;
  std::vector<AppRequest> seen;  // touched on the io thread only, read after stop()
  options.app_handler = [&seen](const AppRequest& request) {
    seen.push_back(request);
    AppResponse response;
    response.status = request.path() == "/live-video-to-video" ? 200 : 404;
    response.content_type = "application/json";
    response.headers.emplace_back("X-Echo", std::string(request.header("livepeer-segment")));
    response.body = "{\"got\":" + std::to_string(request.body.size()) + "}";
    return response;
  };
  Harness h(options);
  h.create("job");

  RawClient c(h.port());
  c.send(raw_request("POST", "/live-video-to-video?x=1", "Livepeer-Segment: abc\r\n",
                     std::string(700, 'p')));
  const Response ok = c.read_response();
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.get("Content-Type"), "application/json");
  EXPECT_EQ(ok.get("X-Echo"), "abc");
  EXPECT_EQ(ok.body, "{\"got\":700}");
  // Keep-alive: the same connection serves the next application request and trickle requests.
  c.send(raw_request("GET", "/nothing", "", ""));
  EXPECT_EQ(c.read_response().status, 404);
  c.send(request("GET", "job/next"));
  EXPECT_EQ(c.read_response().body, "0");

  // Bodies above the limit are refused before the handler runs.
  RawClient big(h.port());
  big.send(raw_request("POST", "/live-video-to-video", "", std::string(2000, 'x')));
  EXPECT_EQ(big.read_response().status, 413);
  h.stop();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].target, "/live-video-to-video?x=1");
  EXPECT_EQ(seen[0].body, std::string(700, 'p'));
  EXPECT_TRUE(seen[0].peer.starts_with("127.0.0.1:"));
  EXPECT_EQ(h.stats().app_requests, 2u);
}

TEST(TrickleServer, internal_plain_listener_serves_the_same_channels_as_the_tls_port) {
  ServerOptions options = tls_test_options();
  Harness h(options);
  h.create("job");
  auto internal = h.on_io([](TrickleServer& s) { return s.listen_internal("127.0.0.1", 0); });
  ASSERT_TRUE(internal) << internal.error().describe();
  EXPECT_EQ(h.server().internal_base_url(),
            "http://127.0.0.1:" + std::to_string(*internal) + "/ai/trickle/");

  // Published over TLS, read in plain text on the internal port (the runner's side).
  SSL_CTX* client = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(client, SSL_VERIFY_NONE, nullptr);
  {
    RawClient pub(h.port(), client);
    pub.send(request("POST", "job/0", "", "over-tls"));
    EXPECT_EQ(pub.read_final().status, 200);
  }
  SSL_CTX_free(client);
  const Response got = get(*internal, "job/0");
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.body, "over-tls");
}

TEST(TrickleServer, relays_h2_connections_to_the_h2_handler_and_keeps_http1_on_the_same_port) {
  ServerOptions options = tls_test_options();
  // The handler echoes everything back upper-cased, on its own thread, as gRPC would serve.
  std::vector<std::thread> echoers;
  options.h2_handler = [&echoers](int fd) {
    echoers.emplace_back([fd] {
      char buffer[256];
      for (;;) {
        const auto n = ::read(fd, buffer, sizeof buffer);
        if (n <= 0) break;
        for (auto i = 0; i < n; ++i) {
          buffer[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(buffer[i])));
        }
        if (::write(fd, buffer, static_cast<std::size_t>(n)) != n) break;
      }
      ::close(fd);
    });
  };
  Harness h(options);
  h.create("job");

  SSL_CTX* h2 = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(h2, SSL_VERIFY_NONE, nullptr);
  static const unsigned char k_h2_then_http[] = "\x02h2\x08http/1.1";
  SSL_CTX_set_alpn_protos(h2, k_h2_then_http, sizeof k_h2_then_http - 1);
  {
    RawClient grpc(h.port(), h2);
    grpc.send("preface bytes");
    EXPECT_EQ(grpc.read_bytes(13), "PREFACE BYTES");
  }
  // A client offering only http/1.1 still speaks trickle on the same port.
  SSL_CTX* http11 = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(http11, SSL_VERIFY_NONE, nullptr);
  static const unsigned char k_http_only[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(http11, k_http_only, sizeof k_http_only - 1);
  {
    RawClient trickle(h.port(), http11);
    trickle.send(request("GET", "job/next"));
    EXPECT_EQ(trickle.read_response().body, "0");
  }
  SSL_CTX_free(h2);
  SSL_CTX_free(http11);
  EXPECT_TRUE(wait_until([&] { return h.stats().h2_connections == 1; }));
  h.stop();  // closes the relay; the echo thread sees EOF
  for (auto& t : echoers) t.join();
}
