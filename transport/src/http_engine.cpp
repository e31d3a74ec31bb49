// libcurl multi on Boost.Asio: socket and timer callbacks map curl's interest onto async_wait.
#include "naap/transport/http_engine.hpp"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cctype>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "naap/core/log.hpp"

namespace naap::http {

namespace asio = boost::asio;

// ---------------------------------------------------------------------------------------------
// Small helpers

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

struct CurlUrl {
  CURLU* h = curl_url();
  ~CurlUrl() { curl_url_cleanup(h); }
  std::string part(CURLUPart which, unsigned flags = 0) const {
    char* out = nullptr;
    if (curl_url_get(h, which, &out, flags) != CURLUE_OK || out == nullptr) return {};
    std::string s(out);
    curl_free(out);
    return s;
  }
};

// "sha256//<base64>" of the leaf certificate's SubjectPublicKeyInfo, from CURLINFO_CERTINFO.
std::string spki_pin_from_certinfo(CURL* easy) {
  curl_certinfo* info = nullptr;
  if (curl_easy_getinfo(easy, CURLINFO_CERTINFO, &info) != CURLE_OK || info == nullptr ||
      info->num_of_certs < 1) {
    return {};
  }
  std::string pem;
  for (curl_slist* s = info->certinfo[0]; s != nullptr; s = s->next) {
    std::string_view line(s->data);
    if (line.starts_with("Cert:")) {
      pem.assign(line.substr(5));
      break;
    }
  }
  if (pem.empty()) return {};
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), &X509_free);
  if (!cert) return {};
  unsigned char* der = nullptr;
  int der_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert.get()), &der);
  if (der_len <= 0) return {};
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  EVP_Digest(der, static_cast<std::size_t>(der_len), digest, &digest_len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  unsigned char b64[128];
  int b64_len = EVP_EncodeBlock(b64, digest, static_cast<int>(digest_len));
  return "sha256//" + std::string(reinterpret_cast<char*>(b64), static_cast<std::size_t>(b64_len));
}

Error error_from_curl(CURLcode code, const Transfer& t, const char* errbuf) {
  std::string detail = errbuf[0] != '\0' ? std::string(errbuf) : curl_easy_strerror(code);
  ErrorCategory category = ErrorCategory::network;
  bool retriable = false;
  std::string what;
  switch (code) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
      category = ErrorCategory::config;
      what = "invalid URL";
      break;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      what = "could not resolve host";
      retriable = true;
      break;
    case CURLE_COULDNT_CONNECT:
      what = "could not connect";
      retriable = true;
      break;
    case CURLE_OPERATION_TIMEDOUT:
      what = "timed out";
      retriable = true;
      break;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_ISSUER_ERROR:
      category = ErrorCategory::tls;
      what = code == CURLE_SSL_PINNEDPUBKEYNOTMATCH ? "certificate does not match the pinned key"
                                                    : "TLS failure";
      break;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
      category = ErrorCategory::protocol;
      what = "malformed response";
      break;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
      what = "connection failed mid-transfer";
      retriable = true;
      break;
    case CURLE_ABORTED_BY_CALLBACK:
    case CURLE_READ_ERROR:
      what = "upload aborted";
      break;
    default:
      what = "transfer failed";
      break;
  }
  Error e(category, what + ": " + detail, retriable);
  e.with("method", t.method()).with("url", t.url()).with("curl_code", std::to_string(code));
  return e;
}

std::once_flag g_curl_init;

}  // namespace

const std::string* find_header(const Headers& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return &v;
  }
  return nullptr;
}

std::string PinStore::get(const std::string& host_port) const {
  for (const auto& [k, v] : pins_) {
    if (k == host_port) return v;
  }
  return {};
}

void PinStore::put(const std::string& host_port, std::string pin) {
  for (auto& [k, v] : pins_) {
    if (k == host_port) {
      v = std::move(pin);
      return;
    }
  }
  pins_.emplace_back(host_port, std::move(pin));
}

// ---------------------------------------------------------------------------------------------
// Engine internals

struct EngineImpl : std::enable_shared_from_this<EngineImpl> {
  // One socket curl asked us to watch. `want` is curl's current interest (CURL_POLL_*).
  struct Socket {
    asio::posix::stream_descriptor desc;  // wraps curl's fd; released, never closed, by asio
    curl_socket_t fd;                     // the descriptor number
    int want = 0;                         // CURL_POLL_IN / OUT / INOUT, 0 = none
    bool read_pending = false;            // an async_wait(read) is outstanding
    bool write_pending = false;           // an async_wait(write) is outstanding
    bool owned = true;                    // created by our opensocket callback
    Socket(asio::io_context& io, curl_socket_t s) : desc(io, s), fd(s) {}
  };

  asio::io_context& io;
  EngineOptions options;
  CURLM* multi = nullptr;
  asio::steady_timer timer;
  std::unordered_map<curl_socket_t, std::shared_ptr<Socket>> sockets;
  std::unordered_map<CURL*, std::shared_ptr<Transfer>> transfers;
  bool shutting_down = false;

  EngineImpl(asio::io_context& ctx, EngineOptions opts) : io(ctx), options(opts), timer(ctx) {}

  void init() {
    std::call_once(g_curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &EngineImpl::socket_cb);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &EngineImpl::timer_cb);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, this);
    if (options.max_total_connections > 0) {
      curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, options.max_total_connections);
    }
  }

  void shutdown() {
    shutting_down = true;
    for (auto& [easy, t] : transfers) {
      curl_multi_remove_handle(multi, easy);
      t->done_ = true;
      if (t->body_) t->body_->transfer_.reset();
    }
    transfers.clear();
    curl_multi_cleanup(multi);  // closes pooled connections through closesocket_cb
    multi = nullptr;
    timer.cancel();
    for (auto& [fd, s] : sockets) {
      s->desc.release();
      if (s->owned) ::close(fd);
    }
    sockets.clear();
  }

  // --- curl callbacks (called from inside curl_multi_socket_action) ---

  static curl_socket_t open_socket_cb(void* clientp, curlsocktype, curl_sockaddr* addr) {
    auto* self = static_cast<EngineImpl*>(clientp);
    int fd = ::socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
    if (fd < 0) return CURL_SOCKET_BAD;
    auto sock = std::make_shared<Socket>(self->io, fd);
    self->sockets[fd] = std::move(sock);
    return fd;
  }

  static int close_socket_cb(void* clientp, curl_socket_t fd) {
    auto* self = static_cast<EngineImpl*>(clientp);
    auto it = self->sockets.find(fd);
    if (it != self->sockets.end()) {
      it->second->want = 0;
      it->second->desc.release();  // cancels pending waits; their handlers see no socket
      self->sockets.erase(it);
    }
    return ::close(fd);
  }

  static int socket_cb(CURL*, curl_socket_t fd, int what, void* userp, void*) {
    auto* self = static_cast<EngineImpl*>(userp);
    auto it = self->sockets.find(fd);
    if (what == CURL_POLL_REMOVE) {
      if (it != self->sockets.end()) {
        it->second->want = 0;
        if (!it->second->owned) {
          it->second->desc.release();
          self->sockets.erase(it);
        }
      }
      return 0;
    }
    if (it == self->sockets.end()) {
      // A descriptor curl created itself (not through open_socket_cb); watch, never close.
      auto sock = std::make_shared<Socket>(self->io, fd);
      sock->owned = false;
      it = self->sockets.emplace(fd, std::move(sock)).first;
    }
    it->second->want = what;
    self->arm(it->second);
    return 0;
  }

  static int timer_cb(CURLM*, long timeout_ms, void* userp) {
    auto* self = static_cast<EngineImpl*>(userp);
    if (timeout_ms < 0) {
      self->timer.cancel();
      return 0;
    }
    self->timer.expires_after(std::chrono::milliseconds(timeout_ms));
    self->timer.async_wait([weak = self->weak_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto me = weak.lock()) me->socket_action(CURL_SOCKET_TIMEOUT, 0);
    });
    return 0;
  }

  static std::size_t write_cb(char* data, std::size_t size, std::size_t n, void* userp) {
    auto* t = static_cast<Transfer*>(userp);
    std::size_t len = size * n;
    if (t->cancel_requested_) return len;  // discard: the cancel is on its way
    if (t->handlers_.on_data) {
      if (t->handlers_.on_data(std::string_view(data, len)) == DataAction::pause) {
        t->recv_paused_ = true;
        return CURL_WRITEFUNC_PAUSE;  // curl keeps these bytes and delivers them again
      }
    }
    t->bytes_received_ += len;
    return len;
  }

  static std::size_t header_cb(char* data, std::size_t size, std::size_t n, void* userp) {
    auto* t = static_cast<Transfer*>(userp);
    std::size_t len = size * n;
    if (t->head_received_) return len;  // trailers: not used by any peer we speak to
    t->header_bytes_ += len;
    if (auto engine = t->engine_.lock();
        engine && t->header_bytes_ > engine->options.max_header_bytes) {
      t->abort_error_ = Error(ErrorCategory::protocol,
                              "response headers exceed " +
                                  std::to_string(engine->options.max_header_bytes) + " bytes")
                            .with("method", t->method_)
                            .with("url", t->url());
      return 0;
    }
    std::string_view line(data, len);
    if (line.starts_with("HTTP/")) {
      t->head_ = ResponseHead{};
      auto sp = line.find(' ');
      int status = 0;
      if (sp != std::string_view::npos) {
        for (std::size_t i = sp + 1;
             i < line.size() && std::isdigit(static_cast<unsigned char>(line[i])); ++i) {
          status = status * 10 + (line[i] - '0');
        }
      }
      t->head_.status = status;
      return len;
    }
    if (trim(line).empty()) {
      if (t->head_.status >= 100 && t->head_.status < 200) {
        int interim = t->head_.status;
        t->head_ = ResponseHead{};
        t->header_bytes_ = 0;
        if (t->handlers_.on_interim) t->handlers_.on_interim(interim);
        return len;
      }
      t->head_received_ = true;
      if (t->body_ && !t->body_->finished_) {
        // The server answered before the body ended: it is done with this request (a trickle
        // server does this when the channel is gone or the slot was closed). Stop uploading.
        t->early_response_ = true;
        if (auto engine = t->engine_.lock()) engine->schedule_pause_update(t->shared_from_this());
      }
      if (t->handlers_.on_head && !t->cancel_requested_) t->handlers_.on_head(t->head_);
      return len;
    }
    auto colon = line.find(':');
    if (colon != std::string_view::npos) {
      t->head_.headers.emplace_back(std::string(trim(line.substr(0, colon))),
                                    std::string(trim(line.substr(colon + 1))));
    }
    return len;
  }

  static std::size_t read_cb(char* dst, std::size_t size, std::size_t n, void* userp) {
    auto* t = static_cast<Transfer*>(userp);
    BodyStream* body = t->body_.get();
    if (body == nullptr) return 0;
    if (body->aborted_ || t->cancel_requested_ || t->early_response_) return CURL_READFUNC_ABORT;
    std::size_t got = body->read_into(dst, size * n);
    if (got > 0) return got;
    if (body->finished_) return 0;
    t->send_paused_ = true;
    return CURL_READFUNC_PAUSE;
  }

  // --- event loop side ---

  void arm(const std::shared_ptr<Socket>& sock) {
    if ((sock->want & CURL_POLL_IN) && !sock->read_pending) {
      sock->read_pending = true;
      sock->desc.async_wait(
          asio::posix::stream_descriptor::wait_read,
          [weak = weak_from_this(), ws = std::weak_ptr<Socket>(sock)](
              const boost::system::error_code& ec) { on_ready(weak, ws, ec, CURL_CSELECT_IN); });
    }
    if ((sock->want & CURL_POLL_OUT) && !sock->write_pending) {
      sock->write_pending = true;
      sock->desc.async_wait(
          asio::posix::stream_descriptor::wait_write,
          [weak = weak_from_this(), ws = std::weak_ptr<Socket>(sock)](
              const boost::system::error_code& ec) { on_ready(weak, ws, ec, CURL_CSELECT_OUT); });
    }
  }

  static void on_ready(const std::weak_ptr<EngineImpl>& weak, const std::weak_ptr<Socket>& ws,
                       const boost::system::error_code& ec, int direction) {
    auto self = weak.lock();
    auto sock = ws.lock();
    if (!self || !sock) return;
    if (direction == CURL_CSELECT_IN) {
      sock->read_pending = false;
    } else {
      sock->write_pending = false;
    }
    if (ec == asio::error::operation_aborted) return;
    int interest = direction == CURL_CSELECT_IN ? CURL_POLL_IN : CURL_POLL_OUT;
    if (!(sock->want & interest)) return;
    self->socket_action(sock->fd, ec ? CURL_CSELECT_ERR : direction);
    // curl may have closed the socket or changed interest during the action.
    auto it = self->sockets.find(sock->fd);
    if (it != self->sockets.end() && it->second == sock) self->arm(sock);
  }

  void socket_action(curl_socket_t fd, int events) {
    if (multi == nullptr) return;
    int running = 0;
    curl_multi_socket_action(multi, fd, events, &running);
    reap();
  }

  void reap() {
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
      if (msg->msg != CURLMSG_DONE) continue;
      finish(msg->easy_handle, msg->data.result);
    }
  }

  void add(const std::shared_ptr<Transfer>& t) {
    if (shutting_down || t->done_) return;
    if (t->cancel_requested_) {
      Outcome out;
      out.cancelled = true;
      complete(t, std::move(out));
      return;
    }
    CURL* easy = static_cast<CURL*>(t->easy_);
    transfers[easy] = t;
    CURLMcode rc = curl_multi_add_handle(multi, easy);
    if (rc != CURLM_OK) {
      transfers.erase(easy);
      Outcome out;
      out.error = Error(ErrorCategory::internal,
                        std::string("curl_multi_add_handle: ") + curl_multi_strerror(rc))
                      .with("url", t->url());
      complete(t, std::move(out));
    }
  }

  void finish(CURL* easy, CURLcode code) {
    auto it = transfers.find(easy);
    if (it == transfers.end()) return;
    std::shared_ptr<Transfer> t = it->second;
    Outcome out;
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    out.status = t->head_received_ ? t->head_.status : static_cast<int>(status);
    curl_off_t v = 0;
    if (curl_easy_getinfo(easy, CURLINFO_NAMELOOKUP_TIME_T, &v) == CURLE_OK) out.timings.dns_us = v;
    if (curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &v) == CURLE_OK)
      out.timings.connect_us = v;
    if (curl_easy_getinfo(easy, CURLINFO_APPCONNECT_TIME_T, &v) == CURLE_OK) out.timings.tls_us = v;
    if (curl_easy_getinfo(easy, CURLINFO_STARTTRANSFER_TIME_T, &v) == CURLE_OK)
      out.timings.first_byte_us = v;
    if (curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &v) == CURLE_OK) out.timings.total_us = v;
    if (code == CURLE_OK && t->learn_pin_into_) {
      std::string pin = spki_pin_from_certinfo(easy);
      if (!pin.empty()) t->learn_pin_into_->put(t->pin_key_, std::move(pin));
    }
    if (code != CURLE_OK && t->early_response_ && t->head_received_ && !t->abort_error_) {
      code = CURLE_OK;  // the response is complete; only our unfinished upload was cut
    }
    if (code != CURLE_OK) {
      if (t->abort_error_) {
        out.error = *t->abort_error_;
      } else if (t->body_ && t->body_->aborted_) {
        out.error = Error(ErrorCategory::network, "upload aborted by the sender")
                        .with("method", t->method_)
                        .with("url", t->url());
      } else {
        out.error = error_from_curl(code, *t, t->errbuf_);
      }
      if (out.status != 0) out.error->with("status", std::to_string(out.status));
    }
    curl_multi_remove_handle(multi, easy);
    transfers.erase(it);
    complete(t, std::move(out));
  }

  void cancel_now(const std::shared_ptr<Transfer>& t) {
    if (t->done_) return;
    CURL* easy = static_cast<CURL*>(t->easy_);
    auto it = transfers.find(easy);
    if (it != transfers.end()) {
      curl_multi_remove_handle(multi, easy);
      transfers.erase(it);
    }
    Outcome out;
    out.cancelled = true;
    out.status = t->head_received_ ? t->head_.status : 0;
    complete(t, std::move(out));
  }

  void complete(const std::shared_ptr<Transfer>& t, Outcome out) {
    if (t->done_) return;
    t->done_ = true;
    out.bytes_received = t->bytes_received_;
    if (t->body_) {
      out.bytes_sent = t->body_->sent_;
      t->body_->transfer_.reset();
    } else if (t->whole_body_) {
      out.bytes_sent = t->whole_body_->size();
    }
    auto on_complete = std::move(t->handlers_.on_complete);
    t->handlers_ = Handlers{};  // drop user captures: breaks reference cycles
    if (on_complete) on_complete(out);
  }

  void update_pause(const std::shared_ptr<Transfer>& t) {
    t->resume_scheduled_ = false;
    if (t->done_ || multi == nullptr) return;
    if (t->send_paused_ && t->body_ &&
        (t->body_->buffered_ > 0 || t->body_->finished_ || t->body_->aborted_ ||
         t->early_response_)) {
      t->send_paused_ = false;
    }
    int bits = (t->recv_paused_ ? CURLPAUSE_RECV : 0) | (t->send_paused_ ? CURLPAUSE_SEND : 0);
    curl_easy_pause(static_cast<CURL*>(t->easy_), bits);
    reap();
  }

  void schedule_pause_update(const std::shared_ptr<Transfer>& t) {
    if (t->resume_scheduled_ || t->done_) return;
    t->resume_scheduled_ = true;
    asio::post(io, [weak = weak_from_this(), t] {
      if (auto me = weak.lock()) me->update_pause(t);
    });
  }
};

// ---------------------------------------------------------------------------------------------
// BodyStream

void BodyStream::write(std::string bytes) {
  if (finished_ || aborted_ || bytes.empty()) return;
  written_ += bytes.size();
  buffered_ += bytes.size();
  chunks_.push_back(std::move(bytes));
  if (on_drain_ && buffered_ > low_water_) above_low_water_ = true;
  notify_writer();
}

void BodyStream::finish() {
  if (finished_ || aborted_) return;
  finished_ = true;
  notify_writer();
}

void BodyStream::abort() {
  if (finished_ || aborted_) return;
  aborted_ = true;
  notify_writer();
}

void BodyStream::set_on_drain(std::function<void()> callback, std::size_t low_water_bytes) {
  on_drain_ = std::move(callback);
  low_water_ = low_water_bytes;
  above_low_water_ = buffered_ > low_water_;
}

std::deque<std::string> BodyStream::take_unsent() {
  if (offset_ > 0 && !chunks_.empty()) {
    chunks_.front().erase(0, offset_);
    offset_ = 0;
  }
  buffered_ = 0;
  return std::exchange(chunks_, {});
}

std::size_t BodyStream::read_into(char* dst, std::size_t capacity) {
  std::size_t copied = 0;
  while (copied < capacity && !chunks_.empty()) {
    std::string& front = chunks_.front();
    std::size_t take = std::min(capacity - copied, front.size() - offset_);
    std::memcpy(dst + copied, front.data() + offset_, take);
    copied += take;
    offset_ += take;
    if (offset_ == front.size()) {
      chunks_.pop_front();
      offset_ = 0;
    }
  }
  buffered_ -= copied;
  sent_ += copied;
  if (above_low_water_ && buffered_ <= low_water_ && on_drain_) {
    above_low_water_ = false;
    // Deferred: the producer may write more, which must not re-enter curl's read callback.
    if (auto t = transfer_.lock()) {
      if (auto engine = t->engine_.lock()) {
        asio::post(engine->io, [weak = transfer_, cb = on_drain_] {
          if (weak.lock()) cb();
        });
      }
    }
  }
  return copied;
}

void BodyStream::notify_writer() {
  if (auto t = transfer_.lock()) t->on_body_writable();
}

// ---------------------------------------------------------------------------------------------
// Transfer

Transfer::~Transfer() {
  if (easy_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(easy_));
  if (header_list_ != nullptr) curl_slist_free_all(static_cast<curl_slist*>(header_list_));
}

void Transfer::cancel() {
  if (done_ || cancel_requested_) return;
  cancel_requested_ = true;
  if (auto engine = engine_.lock()) {
    asio::post(engine->io, [weak = engine_, self = shared_from_this()] {
      if (auto me = weak.lock()) me->cancel_now(self);
    });
  }
}

void Transfer::resume_receive() {
  if (!recv_paused_ || done_) return;
  recv_paused_ = false;
  if (auto engine = engine_.lock()) engine->schedule_pause_update(shared_from_this());
}

void Transfer::on_body_writable() {
  if (!send_paused_ || done_) return;
  if (auto engine = engine_.lock()) engine->schedule_pause_update(shared_from_this());
}

// ---------------------------------------------------------------------------------------------
// Engine

Engine::Engine(asio::io_context& io, EngineOptions options)
    : io_(io), impl_(std::make_shared<EngineImpl>(io, options)) {
  impl_->init();
}

Engine::~Engine() {
  impl_->shutdown();
}

std::size_t Engine::active_transfers() const {
  return impl_->transfers.size();
}

std::shared_ptr<Transfer> Engine::start(Request req, Handlers handlers) {
  std::shared_ptr<Transfer> t(new Transfer());
  t->engine_ = impl_;
  t->url_ = req.url;
  t->method_ = req.method;
  t->handlers_ = std::move(handlers);

  auto fail_async = [&](Error e) {
    asio::post(io_, [weak = std::weak_ptr<EngineImpl>(impl_), t, e = std::move(e)] {
      if (auto me = weak.lock()) {
        Outcome out;
        out.error = e;
        me->complete(t, std::move(out));
      }
    });
    return t;
  };

  CurlUrl parsed;
  if (curl_url_set(parsed.h, CURLUPART_URL, req.url.c_str(), 0) != CURLUE_OK) {
    return fail_async(Error(ErrorCategory::config, "malformed URL").with("url", req.url));
  }
  std::string scheme = parsed.part(CURLUPART_SCHEME);
  if (scheme != "http" && scheme != "https") {
    return fail_async(
        Error(ErrorCategory::config, "URL scheme must be http or https").with("url", req.url));
  }
  if (req.body && req.stream_body) {
    return fail_async(Error(ErrorCategory::internal, "request has both a body and a stream body")
                          .with("url", req.url));
  }

  CURL* e = curl_easy_init();
  t->easy_ = e;
  curl_easy_setopt(e, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf_);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &EngineImpl::write_cb);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &EngineImpl::header_cb);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &EngineImpl::open_socket_cb);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, impl_.get());
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, &EngineImpl::close_socket_cb);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, impl_.get());
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(req.connect_timeout.count()));
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(req.total_timeout.count()));
  curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, nullptr);
  if (req.fresh_connection) {
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
  }

  curl_slist* list = nullptr;
  list = curl_slist_append(list, "Expect:");  // never wait for 100-continue before a body
  if (req.method == "GET") {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else if (req.method == "POST" || req.stream_body || req.body) {
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    if (req.method != "POST") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  } else {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }
  if (req.stream_body) {
    t->body_ = req.stream_body;
    t->body_->transfer_ = t;
    curl_easy_setopt(e, CURLOPT_READFUNCTION, &EngineImpl::read_cb);
    curl_easy_setopt(e, CURLOPT_READDATA, t.get());
    list = curl_slist_append(list, "Transfer-Encoding: chunked");
  } else if (req.body) {
    t->whole_body_ = std::move(req.body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(t->whole_body_->size()));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->whole_body_->data());
  } else if (req.method == "POST") {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
  }
  for (const auto& [k, v] : req.headers) {
    std::string line = k + ": " + v;
    if (v.empty()) line = k + ";";  // curl's syntax for a header with an empty value
    list = curl_slist_append(list, line.c_str());
  }
  t->header_list_ = list;
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, list);

  if (scheme == "https") {
    switch (req.tls.mode) {
      case TlsOptions::Mode::insecure:
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
        break;
      case TlsOptions::Mode::pin: {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
        std::string key =
            parsed.part(CURLUPART_HOST) + ":" + parsed.part(CURLUPART_PORT, CURLU_DEFAULT_PORT);
        std::string pin = req.tls.pinned_key;
        if (pin.empty() && req.tls.pins) pin = req.tls.pins->get(key);
        if (!pin.empty()) {
          curl_easy_setopt(e, CURLOPT_PINNEDPUBLICKEY, pin.c_str());
        } else if (req.tls.pins) {
          curl_easy_setopt(e, CURLOPT_CERTINFO, 1L);
          curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);  // the key is read at handshake
          t->learn_pin_into_ = req.tls.pins;
          t->pin_key_ = key;
        }
        break;
      }
      case TlsOptions::Mode::verify:
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
        if (!req.tls.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, req.tls.ca_file.c_str());
        break;
    }
  }

  // Deferred: start() may be called from inside a callback of another transfer, where curl
  // forbids re-entering the multi handle.
  asio::post(io_, [weak = std::weak_ptr<EngineImpl>(impl_), t] {
    if (auto me = weak.lock()) me->add(t);
  });
  return t;
}

}  // namespace naap::http
