// Deterministic, position-addressable test payloads: any byte range of segment `seed` can be
// produced (and so verified) independently on both ends of a transfer.
#pragma once

#include <cstdint>
#include <span>

namespace naap {

// Fills `out` with the bytes of stream `seed` starting at byte `offset`.
void fill_pattern(std::uint64_t seed, std::uint64_t offset, std::span<char> out);

}  // namespace naap
