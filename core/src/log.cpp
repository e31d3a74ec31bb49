// Structured logging implementation: key=value lines on stderr.
#include "naap/core/log.hpp"

#include <unistd.h>

#include <atomic>

#include "naap/core/clock.hpp"

namespace naap::log {
namespace {

std::atomic<Level> g_level{Level::info};

std::string_view level_name(Level level) {
  switch (level) {
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warn:
      return "warn";
    case Level::error:
      return "error";
    case Level::off:
      return "off";
  }
  return "info";
}

bool needs_quotes(std::string_view v) {
  if (v.empty()) return true;
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || c == '\n' || c == '\t') return true;
  }
  return false;
}

void append_value(std::string& out, std::string_view v) {
  if (!needs_quotes(v)) {
    out += v;
    return;
  }
  out += '"';
  for (char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  out += '"';
}

}  // namespace

void set_level(Level level) {
  g_level.store(level, std::memory_order_relaxed);
}
Level level() {
  return g_level.load(std::memory_order_relaxed);
}
bool enabled(Level l) {
  return l >= level() && l != Level::off;
}

bool parse_level(std::string_view text, Level& out) {
  for (Level l : {Level::debug, Level::info, Level::warn, Level::error, Level::off}) {
    if (text == level_name(l)) {
      out = l;
      return true;
    }
  }
  return false;
}

std::string format_line(Level lvl, std::string_view event, std::initializer_list<Field> fields) {
  char ts[32];
  std::string out;
  out.reserve(128);
  out += "ts=";
  out += format_rfc3339_millis(unix_millis_now(), ts);
  out += " level=";
  out += level_name(lvl);
  out += " event=";
  append_value(out, event);
  for (const Field& f : fields) {
    out += ' ';
    out += f.key;
    out += '=';
    append_value(out, f.value);
  }
  out += '\n';
  return out;
}

void write(Level lvl, std::string_view event, std::initializer_list<Field> fields) {
  std::string line = format_line(lvl, event, fields);
  // One write(2) keeps concurrent lines whole; a short write on stderr is not retried.
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace naap::log
