// Error taxonomy: names and formatting.
#include "naap/core/error.hpp"

namespace naap {

std::string_view to_string(ErrorCategory category) {
  switch (category) {
    case ErrorCategory::config:
      return "config";
    case ErrorCategory::network:
      return "network";
    case ErrorCategory::tls:
      return "tls";
    case ErrorCategory::protocol:
      return "protocol";
    case ErrorCategory::orchestrator:
      return "orchestrator";
    case ErrorCategory::runner:
      return "runner";
    case ErrorCategory::payment:
      return "payment";
    case ErrorCategory::media:
      return "media";
    case ErrorCategory::sink:
      return "sink";
    case ErrorCategory::internal:
      return "internal";
  }
  return "internal";
}

Error& Error::with(std::string key, std::string value) & {
  context.emplace_back(std::move(key), std::move(value));
  return *this;
}

Error&& Error::with(std::string key, std::string value) && {
  context.emplace_back(std::move(key), std::move(value));
  return std::move(*this);
}

std::string_view Error::get(std::string_view key) const {
  for (const auto& [k, v] : context) {
    if (k == key) return v;
  }
  return {};
}

std::string Error::describe() const {
  std::string out{to_string(category)};
  out += ": ";
  out += message;
  if (!context.empty()) {
    out += " (";
    for (std::size_t i = 0; i < context.size(); ++i) {
      if (i != 0) out += ' ';
      out += context[i].first;
      out += '=';
      out += context[i].second;
    }
    out += ')';
  }
  if (retriable) out += " [retriable]";
  return out;
}

}  // namespace naap
