// Dotted key paths for error messages about structured input ("sinks.kafka.brokers",
// "tests[2].pipeline"): the configuration and dataset validators name what was wrong this way.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace naap {

// "a.b" + "c" → "a.b.c"; "" + "c" → "c".
inline std::string join_key(std::string_view path, std::string_view key) {
  std::string out(path);
  if (!out.empty()) out += '.';
  out += key;
  return out;
}

// "tests" + 2 → "tests[2]".
inline std::string index_key(std::string_view path, std::size_t index) {
  return std::string(path) + "[" + std::to_string(index) + "]";
}

}  // namespace naap
