// TLS identities for our servers (emulated orchestrator, trickle server): self-signed
// certificates, PEM files from disk, and the SPKI pin a client uses to trust one on first use.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "naap/core/error.hpp"

namespace naap::tls {

// A certificate and its private key, both PEM text.
struct Identity {
  std::string cert_pem;  // X.509 certificate (a chain when loaded from a file that has one)
  std::string key_pem;   // private key, unencrypted PKCS#8 ("BEGIN PRIVATE KEY") when generated
};

// A fresh EC P-256 key and a self-signed X.509 v3 certificate for it: random serial, CN = the
// first name (else "localhost"), SAN = every name (IP literals as IP addresses, the rest as DNS
// names) plus localhost, 127.0.0.1 and ::1. The certificate is its own CA (CA:TRUE) so a client
// can use it directly as its trust root. Valid from one hour ago (clock skew) for `validity`.
Result<Identity> make_self_signed(const std::vector<std::string>& names,
                                  std::chrono::hours validity = std::chrono::hours(24 * 365));

// Reads a PEM certificate (chain) and a PEM private key and checks that they belong together.
// Errors name the path and carry OpenSSL's reason (context keys "path" and "reason").
Result<Identity> load_identity(const std::string& cert_path, const std::string& key_path);

// The public-key pin curl uses (--pinnedpubkey "sha256//<pin>"): base64 of the SHA-256 of the
// DER SubjectPublicKeyInfo of the first certificate in `cert_pem`. Always 44 characters.
Result<std::string> spki_sha256_base64(const std::string& cert_pem);

}  // namespace naap::tls
