// Standard base64 encode/decode with strict input checking.
#include "naap/transport/base64.hpp"

#include <array>
#include <cstdint>

namespace naap::b64 {
namespace {

constexpr std::string_view k_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<std::int8_t, 256> make_table() {
  std::array<std::int8_t, 256> table{};
  for (auto& v : table) v = -1;
  for (std::size_t i = 0; i < k_alphabet.size(); ++i) {
    table[static_cast<unsigned char>(k_alphabet[i])] = static_cast<std::int8_t>(i);
  }
  return table;
}
constexpr std::array<std::int8_t, 256> k_table = make_table();

Error bad_input(std::string why, std::size_t position) {
  return Error(ErrorCategory::protocol, "invalid base64: " + std::move(why))
      .with("position", std::to_string(position));
}

}  // namespace

std::string encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t n = (static_cast<unsigned char>(bytes[i]) << 16) |
                            (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                            static_cast<unsigned char>(bytes[i + 2]);
    out.push_back(k_alphabet[(n >> 18) & 63]);
    out.push_back(k_alphabet[(n >> 12) & 63]);
    out.push_back(k_alphabet[(n >> 6) & 63]);
    out.push_back(k_alphabet[n & 63]);
  }
  const std::size_t rest = bytes.size() - i;
  if (rest == 1) {
    const std::uint32_t n = static_cast<unsigned char>(bytes[i]) << 16;
    out.push_back(k_alphabet[(n >> 18) & 63]);
    out.push_back(k_alphabet[(n >> 12) & 63]);
    out.append("==");
  } else if (rest == 2) {
    const std::uint32_t n = (static_cast<unsigned char>(bytes[i]) << 16) |
                            (static_cast<unsigned char>(bytes[i + 1]) << 8);
    out.push_back(k_alphabet[(n >> 18) & 63]);
    out.push_back(k_alphabet[(n >> 12) & 63]);
    out.push_back(k_alphabet[(n >> 6) & 63]);
    out.push_back('=');
  }
  return out;
}

Result<std::string> decode(std::string_view text) {
  // Split off the padding first: up to two '=' and only at the very end.
  std::size_t data_len = text.size();
  while (data_len > 0 && text[data_len - 1] == '=') --data_len;
  const std::size_t padding = text.size() - data_len;
  if (padding > 2) return fail(bad_input("more than two '=' padding characters", data_len));
  if (padding > 0 && text.size() % 4 != 0) {
    return fail(bad_input("padded text is not a multiple of 4 characters", text.size()));
  }
  if (data_len % 4 == 1) {
    return fail(bad_input("length leaves a dangling character", data_len - 1));
  }
  std::string out;
  out.reserve(data_len / 4 * 3 + 2);
  std::uint32_t buffer = 0;
  int bits = 0;
  for (std::size_t i = 0; i < data_len; ++i) {
    const std::int8_t v = k_table[static_cast<unsigned char>(text[i])];
    if (v < 0) {
      const char c = text[i];
      std::string shown = (c >= 0x21 && c < 0x7f) ? std::string("'") + c + "'" : "a control byte";
      if (c == '=') shown = "'=' before the end";
      return fail(bad_input("unexpected character " + shown, i));
    }
    buffer = (buffer << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  // Leftover bits must be zero, as an encoder writes them (rejects non-canonical text).
  if (bits > 0 && (buffer & ((1u << bits) - 1)) != 0) {
    return fail(bad_input("non-zero trailing bits", data_len - 1));
  }
  return out;
}

}  // namespace naap::b64
