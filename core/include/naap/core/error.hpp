// The project's one error taxonomy and Result<T>: a failure is data a person can act on.
#pragma once

#include <expected>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace naap {

// Where a failure comes from. Reports and logs group failures by this.
enum class ErrorCategory {
  config,        // bad configuration or command line
  network,       // DNS, connect, reset, timeout: the peer was not reachable or vanished
  tls,           // handshake, certificate, pin mismatch
  protocol,      // the peer answered but broke the protocol (status, header, body)
  orchestrator,  // the orchestrator refused or failed the job (capacity, auth, 5xx)
  runner,        // the runner behind the orchestrator failed (events, output)
  payment,       // remote signer or payment failures
  media,         // encode, decode, demux
  sink,          // result delivery (Kafka, files)
  internal,      // a bug in this program
};

std::string_view to_string(ErrorCategory category);

// One failure: category, a message saying what went wrong, and the context that locates it.
struct Error {
  ErrorCategory category = ErrorCategory::internal;          // taxonomy bucket
  std::string message;                                       // human-readable cause
  std::vector<std::pair<std::string, std::string>> context;  // e.g. {"url", ...}, {"seq", "4"}
  bool retriable = false;  // true when the same operation may succeed if tried again

  Error() = default;
  Error(ErrorCategory c, std::string msg, bool can_retry = false)
      : category(c), message(std::move(msg)), retriable(can_retry) {}

  // Adds a key=value pair of context; returns *this for chaining.
  Error& with(std::string key, std::string value) &;
  Error&& with(std::string key, std::string value) &&;

  // The value of a context key, or empty when absent.
  std::string_view get(std::string_view key) const;

  // "protocol: unexpected status 500 (url=... seq=4)".
  std::string describe() const;
};

template <typename T>
using Result = std::expected<T, Error>;

// Shorthand for returning a failure: `return fail(ErrorCategory::network, "...")`.
inline std::unexpected<Error> fail(ErrorCategory category, std::string message,
                                   bool retriable = false) {
  return std::unexpected<Error>(Error(category, std::move(message), retriable));
}
inline std::unexpected<Error> fail(Error error) {
  return std::unexpected<Error>(std::move(error));
}

}  // namespace naap
