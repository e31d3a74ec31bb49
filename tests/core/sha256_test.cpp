// SHA-256 and synthetic payloads: the integrity checks of every transport test rest on these.
#include "naap/core/sha256.hpp"

#include <gtest/gtest.h>

#include <string>

#include "naap/core/pattern.hpp"

namespace naap {
namespace {

TEST(CoreSha256, matches_known_vectors) {
  EXPECT_EQ(Sha256::hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256::hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(CoreSha256, incremental_equals_one_shot) {
  Sha256 h;
  h.update("a");
  h.update("bc");
  EXPECT_EQ(h.hex_digest(), Sha256::hex("abc"));
  h.update("abc");  // reusable after a digest
  EXPECT_EQ(h.hex_digest(), Sha256::hex("abc"));
}

TEST(CorePattern, any_chunking_produces_the_same_bytes) {
  std::string whole(1000, '\0');
  fill_pattern(42, 0, whole);
  std::string pieces(1000, '\0');
  for (std::size_t off = 0; off < pieces.size();) {
    std::size_t n = std::min<std::size_t>(pieces.size() - off, 1 + off % 13);
    fill_pattern(42, off, std::span<char>(pieces.data() + off, n));
    off += n;
  }
  EXPECT_EQ(whole, pieces);
  std::string other(1000, '\0');
  fill_pattern(43, 0, other);
  EXPECT_NE(whole, other) << "different seeds must give different payloads";
}

}  // namespace
}  // namespace naap
