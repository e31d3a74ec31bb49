// Clocks: steady time for every interval, system time only to stamp records.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

namespace naap {

using SteadyClock = std::chrono::steady_clock;
using SteadyTime = SteadyClock::time_point;
using Micros = std::chrono::microseconds;
using Millis = std::chrono::milliseconds;

// Microseconds between two steady instants (b - a), as an integer.
inline std::int64_t micros_between(SteadyTime a, SteadyTime b) {
  return std::chrono::duration_cast<Micros>(b - a).count();
}

// Wall-clock milliseconds since the Unix epoch, for stamping records and events.
inline std::int64_t unix_millis_now() {
  return std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// RFC 3339 UTC timestamp with milliseconds, e.g. 2026-11-27T17:00:00.123Z.
std::string_view format_rfc3339_millis(std::int64_t unix_ms, char (&buf)[32]);

}  // namespace naap
