// Trickle URL and header helpers shared by the publisher and subscriber.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "naap/core/error.hpp"

namespace naap::trickle {

// Header names (PROTOCOL.md §1.5).
inline constexpr std::string_view k_header_seq = "Lp-Trickle-Seq";
inline constexpr std::string_view k_header_latest = "Lp-Trickle-Latest";
inline constexpr std::string_view k_header_closed = "Lp-Trickle-Closed";
inline constexpr std::string_view k_header_reset = "Lp-Trickle-Reset";

// Checks that `url` names a channel: http(s)://host[:port]/path, no query or fragment, no
// trailing slash. Returns the URL unchanged, or a config error naming the URL.
Result<std::string> validate_channel_url(std::string_view url);

// "{channel}/{seq}".
std::string segment_url(std::string_view channel, std::int64_t seq);

// Parses a decimal (optionally negative) integer header value strictly: no spaces, no junk.
Result<std::int64_t> parse_seq(std::string_view text);

}  // namespace naap::trickle
