// Test support for transport suites: a scripted raw-TCP HTTP peer for faults the real server
// cannot produce, a trickle server on its own thread, and an io_context runner with a deadline.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "naap/transport/trickle_server.hpp"

namespace naap::test {

// Runs `io` on the calling thread until `done()` is true or `timeout` passes. Returns done().
inline bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
                      std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  io.restart();
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    io.run_for(std::chrono::milliseconds(10));
    if (io.stopped()) io.restart();
  }
  return done();
}

// Runs `io` for a fixed time (lets timers and transfers progress).
inline void run_for(boost::asio::io_context& io, std::chrono::milliseconds d) {
  auto deadline = std::chrono::steady_clock::now() + d;
  io.restart();
  while (std::chrono::steady_clock::now() < deadline) {
    io.run_for(std::chrono::milliseconds(10));
    if (io.stopped()) io.restart();
  }
}

// Blocking socket helpers for RawServer handlers.
inline bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Reads until `needle` appears (returns everything read) or the peer closes / times out.
inline std::string recv_until(int fd, std::string_view needle, int timeout_ms = 5000) {
  std::string got;
  char buf[16384];
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (got.find(needle) == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

// The request body bytes that arrived with the head, plus more until `needle` is seen.
inline std::string body_until(int fd, const std::string& head, std::string_view needle,
                              int timeout_ms = 5000) {
  auto at = head.find("\r\n\r\n");
  std::string body = at == std::string::npos ? std::string() : head.substr(at + 4);
  if (body.find(needle) == std::string::npos) body += recv_until(fd, needle, timeout_ms);
  return body;
}

// Makes the coming close of `fd` (by RawServer, when the handler returns) a reset (RST).
inline void arm_reset(int fd) {
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

// A scripted HTTP peer on 127.0.0.1: each accepted connection runs `handler(fd, head)` on its
// own thread, where `head` is the request line and headers. The handler owns the socket and
// must not close it: it is closed when the handler returns (call arm_reset() first for a RST).
class RawServer {
 public:
  using Handler = std::function<void(int fd, const std::string& head)>;

  explicit RawServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(listen_fd_, 512);
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~RawServer() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    acceptor_.join();
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mu_);
      threads.swap(threads_);
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : threads) t.join();
  }

  std::uint16_t port() const { return port_; }
  std::string url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
  }
  int connections() const { return connections_.load(); }
  std::vector<std::string> request_lines() const {
    std::lock_guard lock(mu_);
    return request_lines_;
  }

 private:
  void accept_loop() {
    while (!stopping_) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (stopping_) return;
        continue;
      }
      ++connections_;
      std::lock_guard lock(mu_);
      open_fds_.push_back(fd);
      threads_.emplace_back([this, fd] {
        std::string head = recv_until(fd, "\r\n\r\n");
        {
          std::lock_guard l2(mu_);
          request_lines_.push_back(head.substr(0, head.find("\r\n")));
        }
        if (!head.empty()) handler_(fd, head);
        std::lock_guard l3(mu_);
        auto it = std::find(open_fds_.begin(), open_fds_.end(), fd);
        if (it != open_fds_.end()) open_fds_.erase(it);
        ::close(fd);
      });
    }
  }

  Handler handler_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::vector<std::thread> threads_;
  std::vector<int> open_fds_;
  std::vector<std::string> request_lines_;
};

// Our trickle server on its own io thread, for client tests.
class ServerThread {
 public:
  explicit ServerThread(trickle::ServerOptions options = {}) : server_(io_, std::move(options)) {
    auto port = server_.listen("127.0.0.1", 0);
    if (!port) throw std::runtime_error(port.error().describe());
    thread_ = std::thread([this] {
      auto guard = boost::asio::make_work_guard(io_);
      io_.run();
    });
  }
  ~ServerThread() {
    call([this] { server_.stop(); });
    io_.stop();
    thread_.join();
  }
  // Runs fn on the server's thread and waits for it.
  template <typename Fn>
  auto call(Fn fn) -> decltype(fn()) {
    std::packaged_task<decltype(fn())()> task(std::move(fn));
    auto fut = task.get_future();
    boost::asio::post(io_, [&task] { task(); });
    return fut.get();
  }
  void create_channel(const std::string& name, const std::string& mime = "video/MP2T") {
    call([&] { server_.create_channel(name, mime); });
  }
  bool has_channel(const std::string& name) {
    return call([&] { return server_.has_channel(name); });
  }
  std::int64_t next_write(const std::string& name) {
    return call([&] { return server_.next_write(name); });
  }
  std::string channel_url(const std::string& name) const { return server_.base_url() + name; }
  trickle::ServerStats stats() const { return server_.stats(); }

 private:
  boost::asio::io_context io_;
  trickle::TrickleServer server_;
  std::thread thread_;
};

// A self-signed certificate and key for 127.0.0.1, generated with the openssl CLI.
struct SelfSignedCert {
  std::filesystem::path dir;
  std::filesystem::path cert;
  std::filesystem::path key;
};

inline SelfSignedCert make_self_signed_cert(const std::string& tag) {
  SelfSignedCert c;
  c.dir = std::filesystem::temp_directory_path() /
          ("naap-cert-" + tag + "-" + std::to_string(::getpid()));
  std::filesystem::create_directories(c.dir);
  c.cert = c.dir / "cert.pem";
  c.key = c.dir / "key.pem";
  std::string cmd =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "-days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " +
      c.key.string() + " -out " + c.cert.string() + " >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("openssl req failed");
  return c;
}

inline std::shared_ptr<boost::asio::ssl::context> server_tls(const SelfSignedCert& c) {
  auto ctx = std::make_shared<boost::asio::ssl::context>(boost::asio::ssl::context::tls_server);
  ctx->use_certificate_chain_file(c.cert.string());
  ctx->use_private_key_file(c.key.string(), boost::asio::ssl::context::pem);
  return ctx;
}

}  // namespace naap::test
