// splitmix64 over 8-byte blocks: fast (several GB/s) and independent of chunking.
#include "naap/core/pattern.hpp"

#include <cstring>

namespace naap {
namespace {

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

void fill_pattern(std::uint64_t seed, std::uint64_t offset, std::span<char> out) {
  const std::uint64_t key = splitmix64(seed);
  std::size_t i = 0;
  while (i < out.size()) {
    std::uint64_t pos = offset + i;
    std::uint64_t block = pos / 8;
    std::size_t within = static_cast<std::size_t>(pos % 8);
    std::uint64_t word = splitmix64(key ^ block);
    std::size_t take = 8 - within;
    if (take > out.size() - i) take = out.size() - i;
    std::memcpy(out.data() + i, reinterpret_cast<const char*>(&word) + within, take);
    i += take;
  }
}

}  // namespace naap
