// Clock helpers.
#include "naap/core/clock.hpp"

#include <cstdio>
#include <ctime>
#include <string_view>

namespace naap {

std::string_view format_rfc3339_millis(std::int64_t unix_ms, char (&buf)[32]) {
  std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  int millis = static_cast<int>(unix_ms % 1000);
  if (millis < 0) {
    millis += 1000;
    secs -= 1;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return std::string_view(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
}

}  // namespace naap
