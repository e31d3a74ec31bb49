// Identifiers: random UUID v4 strings for event ids, request ids and run ids.
#pragma once

#include <string>

namespace naap {

// A random RFC 4122 version-4 UUID, lowercase, e.g. "0f8b6c1e-5a0d-4c55-9a57-2f1f3b7e9d41".
std::string uuid_v4();

}  // namespace naap
