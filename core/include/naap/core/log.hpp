// Structured logging: one line per event, `ts=... level=... event=... key=value ...`.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace naap::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3, off = 4 };

// One key=value field. Values with spaces, quotes or '=' are quoted on output.
struct Field {
  std::string_view key;
  std::string value;

  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(v) {}
  template <typename N>
  requires std::is_arithmetic_v<N> Field(std::string_view k, N n)
      : key(k), value(std::to_string(n)) {}
};

void set_level(Level level);
Level level();
bool enabled(Level level);
// Parses "debug|info|warn|error|off"; returns false on anything else.
bool parse_level(std::string_view text, Level& out);

// Writes one line to stderr (thread-safe, one write(2) per line).
void write(Level level, std::string_view event, std::initializer_list<Field> fields);

// Formats a line without writing it (used by write and by tests).
std::string format_line(Level level, std::string_view event, std::initializer_list<Field> fields);

inline void debug(std::string_view event, std::initializer_list<Field> fields = {}) {
  if (enabled(Level::debug)) write(Level::debug, event, fields);
}
inline void info(std::string_view event, std::initializer_list<Field> fields = {}) {
  if (enabled(Level::info)) write(Level::info, event, fields);
}
inline void warn(std::string_view event, std::initializer_list<Field> fields = {}) {
  if (enabled(Level::warn)) write(Level::warn, event, fields);
}
inline void error(std::string_view event, std::initializer_list<Field> fields = {}) {
  if (enabled(Level::error)) write(Level::error, event, fields);
}

}  // namespace naap::log
