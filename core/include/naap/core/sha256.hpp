// Incremental SHA-256 (OpenSSL EVP) for end-to-end segment integrity checks.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace naap {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(std::span<const std::byte> data);
  void update(std::string_view data);
  // Lowercase hex digest; the object is reset afterwards and can be reused.
  std::string hex_digest();

  static std::string hex(std::string_view data);

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

}  // namespace naap
