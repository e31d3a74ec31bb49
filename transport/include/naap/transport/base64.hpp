// Standard base64 (RFC 4648 §4, "+/" alphabet, '=' padding) for Livepeer's protobuf headers
// (Livepeer-Payment, Livepeer-Segment) and the remote signer's JSON fields.
#pragma once

#include <string>
#include <string_view>

#include "naap/core/error.hpp"

namespace naap::b64 {

// Padded standard base64 of `bytes`.
std::string encode(std::string_view bytes);

// Decodes standard base64. Padding may be omitted; whitespace, URL-safe characters, misplaced
// '=', a dangling sixth of a byte and non-zero trailing bits are errors (category protocol) that
// name the offending position.
Result<std::string> decode(std::string_view text);

}  // namespace naap::b64
