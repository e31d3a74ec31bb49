// Self-signed certificates, PEM identity files and SPKI pins with OpenSSL 3 (every handle RAII).
#include "naap/transport/tls_identity.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <climits>
#include <cstring>
#include <memory>

namespace naap::tls {
namespace {

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;
using GeneralNamePtr = std::unique_ptr<GENERAL_NAME, Deleter<GENERAL_NAME_free>>;
using OctetStringPtr = std::unique_ptr<ASN1_OCTET_STRING, Deleter<ASN1_OCTET_STRING_free>>;
using Ia5StringPtr = std::unique_ptr<ASN1_IA5STRING, Deleter<ASN1_IA5STRING_free>>;
using ExtensionPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;

// Drains OpenSSL's error queue into one readable line ("reason; reason").
std::string openssl_reason() {
  std::string out;
  for (unsigned long code = ERR_get_error(); code != 0; code = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(code);
    std::string text;
    if (ERR_GET_LIB(code) == ERR_LIB_SYS) {
      text = std::strerror(ERR_GET_REASON(code));  // errno from fopen and friends
    } else if (reason != nullptr) {
      text = reason;
    } else {
      std::array<char, 256> buf{};
      ERR_error_string_n(code, buf.data(), buf.size());
      text = buf.data();
    }
    // OpenSSL often queues the same cause twice ("No such file or directory", "no such file").
    const auto lower = [](std::string v) {
      for (char& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return v;
    };
    if (lower(out).find(lower(text)) != std::string::npos) continue;
    if (!out.empty()) out += "; ";
    out += text;
  }
  return out.empty() ? std::string("unknown OpenSSL error") : out;
}

Error tls_error(std::string what) {
  std::string reason = openssl_reason();
  return Error(ErrorCategory::tls, what + ": " + reason).with("reason", reason);
}

// Everything written to a memory BIO, as a string.
std::string drain(BIO* bio) {
  std::string out(BIO_ctrl_pending(bio), '\0');
  if (out.empty()) return out;
  int n = BIO_read(bio, out.data(), static_cast<int>(out.size()));
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return out;
}

BioPtr memory_reader(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// Never prompt on a terminal for an encrypted key: treat it as unreadable instead.
int no_password(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*user*/) {
  return -1;
}

Result<std::string> read_file(const std::string& path, const char* what) {
  ERR_clear_error();
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) {
    std::string reason = openssl_reason();
    return fail(Error(ErrorCategory::config,
                      std::string("cannot open ") + what + " file " + path + ": " + reason)
                    .with("path", path)
                    .with("reason", reason));
  }
  std::string data;
  std::array<char, 4096> buf{};
  for (int n = BIO_read(bio.get(), buf.data(), static_cast<int>(buf.size())); n > 0;
       n = BIO_read(bio.get(), buf.data(), static_cast<int>(buf.size()))) {
    data.append(buf.data(), static_cast<std::size_t>(n));
  }
  return data;
}

// `origin` names where the PEM came from in the error message (a path, or empty).
Result<X509Ptr> parse_cert(const std::string& pem, const std::string& origin = {}) {
  ERR_clear_error();
  BioPtr bio = memory_reader(pem);
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, no_password, nullptr) : nullptr);
  if (!cert) {
    return fail(tls_error(origin.empty() ? std::string("cannot parse PEM certificate")
                                         : "cannot parse PEM certificate " + origin));
  }
  return cert;
}

Result<PkeyPtr> make_p256_key() {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) <= 0 ||
      EVP_PKEY_CTX_set_group_name(ctx.get(), "P-256") <= 0 ||
      EVP_PKEY_keygen(ctx.get(), &raw) <= 0) {
    return fail(tls_error("cannot generate EC P-256 key"));
  }
  return PkeyPtr(raw);
}

bool valid_dns_name(const std::string& name) {
  return !name.empty() && name.size() <= 253 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '*';
  });
}

// SAN entries: IP literals as iPAddress, everything else as dNSName.
Result<GeneralNamesPtr> subject_alt_names(const std::vector<std::string>& names) {
  GeneralNamesPtr gens(GENERAL_NAMES_new());
  if (!gens) return fail(tls_error("cannot allocate subjectAltName"));
  for (const std::string& name : names) {
    GeneralNamePtr gen(GENERAL_NAME_new());
    if (!gen) return fail(tls_error("cannot allocate subjectAltName entry"));
    if (OctetStringPtr ip(a2i_IPADDRESS(name.c_str())); ip) {
      GENERAL_NAME_set0_value(gen.get(), GEN_IPADD, ip.release());
    } else {
      ERR_clear_error();  // a2i_IPADDRESS may queue an error for a host name
      if (!valid_dns_name(name)) {
        return fail(
            Error(ErrorCategory::config, "certificate name is neither an IP address nor a DNS name")
                .with("name", name));
      }
      Ia5StringPtr dns(ASN1_IA5STRING_new());
      if (!dns || ASN1_STRING_set(dns.get(), name.data(), static_cast<int>(name.size())) != 1) {
        return fail(tls_error("cannot encode DNS name " + name));
      }
      GENERAL_NAME_set0_value(gen.get(), GEN_DNS, dns.release());
    }
    if (sk_GENERAL_NAME_push(gens.get(), gen.get()) <= 0) {
      return fail(tls_error("cannot add subjectAltName entry"));
    }
    gen.release();  // owned by the stack now
  }
  return gens;
}

Result<void> add_extension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return fail(tls_error(std::string("cannot add certificate extension ") + OBJ_nid2sn(nid)));
  }
  return {};
}

}  // namespace

Result<Identity> make_self_signed(const std::vector<std::string>& names,
                                  std::chrono::hours validity) {
  ERR_clear_error();
  std::vector<std::string> all;
  for (const std::string& name : names) {
    if (!name.empty()) all.push_back(name);
  }
  for (const char* loopback : {"localhost", "127.0.0.1", "::1"}) all.emplace_back(loopback);
  std::vector<std::string> unique;
  for (const std::string& name : all) {
    if (std::find(unique.begin(), unique.end(), name) == unique.end()) unique.push_back(name);
  }
  const std::string& common_name = unique.front();

  auto key = make_p256_key();
  if (!key) return fail(key.error());

  X509Ptr cert(X509_new());
  BnPtr serial(BN_new());
  if (!cert || !serial || X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      // 159 random bits with the top one set: positive, at most 20 octets (RFC 5280 §4.1.2.2).
      BN_rand(serial.get(), 159, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return fail(tls_error("cannot create certificate"));
  }
  const long valid_s = static_cast<long>(
      std::min<std::int64_t>(std::chrono::seconds(validity).count(), std::int64_t{LONG_MAX}));
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), valid_s) == nullptr) {
    return fail(tls_error("cannot set certificate validity"));
  }
  X509_NAME* subject = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                 -1, 0) != 1) {
    return fail(tls_error("cannot set certificate common name").with("name", common_name));
  }
  if (X509_set_issuer_name(cert.get(), subject) != 1 ||
      X509_set_pubkey(cert.get(), key->get()) != 1) {
    return fail(tls_error("cannot set certificate issuer or key"));
  }

  // The extensions `openssl req -x509` adds by default, so clients may trust it as a root.
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE"},
                            std::pair{NID_subject_key_identifier, "hash"},
                            std::pair{NID_authority_key_identifier, "keyid:always"}}) {
    if (auto added = add_extension(cert.get(), &ctx, nid, value); !added) {
      return fail(added.error());
    }
  }
  auto san = subject_alt_names(unique);
  if (!san) return fail(san.error());
  if (X509_add1_ext_i2d(cert.get(), NID_subject_alt_name, san->get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return fail(tls_error("cannot add subjectAltName"));
  }
  if (X509_sign(cert.get(), key->get(), EVP_sha256()) <= 0) {
    return fail(tls_error("cannot sign certificate"));
  }

  BioPtr cert_out(BIO_new(BIO_s_mem()));
  BioPtr key_out(BIO_new(BIO_s_mem()));
  if (!cert_out || !key_out || PEM_write_bio_X509(cert_out.get(), cert.get()) != 1 ||
      PEM_write_bio_PrivateKey(key_out.get(), key->get(), nullptr, nullptr, 0, nullptr, nullptr) !=
          1) {
    return fail(tls_error("cannot write PEM"));
  }
  return Identity{.cert_pem = drain(cert_out.get()), .key_pem = drain(key_out.get())};
}

Result<Identity> load_identity(const std::string& cert_path, const std::string& key_path) {
  auto cert_pem = read_file(cert_path, "certificate");
  if (!cert_pem) return fail(cert_pem.error());
  auto key_pem = read_file(key_path, "private key");
  if (!key_pem) return fail(key_pem.error());

  auto cert = parse_cert(*cert_pem, cert_path);
  if (!cert) return fail(Error(cert.error()).with("path", cert_path));
  ERR_clear_error();
  BioPtr key_bio = memory_reader(*key_pem);
  PkeyPtr key(key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, no_password, nullptr)
                      : nullptr);
  if (!key) {
    return fail(
        tls_error("cannot parse PEM private key " + key_path + " (unencrypted PEM expected)")
            .with("path", key_path));
  }
  if (X509_check_private_key(cert->get(), key.get()) != 1) {
    return fail(tls_error("private key " + key_path + " does not match certificate " + cert_path)
                    .with("path", key_path)
                    .with("cert_path", cert_path));
  }
  return Identity{.cert_pem = std::move(*cert_pem), .key_pem = std::move(*key_pem)};
}

Result<std::string> spki_sha256_base64(const std::string& cert_pem) {
  auto cert = parse_cert(cert_pem);
  if (!cert) return fail(cert.error());
  X509_PUBKEY* spki = X509_get_X509_PUBKEY(cert->get());  // owned by the certificate
  int der_len = spki != nullptr ? i2d_X509_PUBKEY(spki, nullptr) : -1;
  if (der_len <= 0) return fail(tls_error("cannot encode SubjectPublicKeyInfo"));
  std::vector<unsigned char> der(static_cast<std::size_t>(der_len));
  unsigned char* cursor = der.data();
  i2d_X509_PUBKEY(spki, &cursor);

  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
  SHA256(der.data(), der.size(), digest.data());
  std::array<unsigned char, 4 * ((SHA256_DIGEST_LENGTH + 2) / 3) + 1> b64{};
  int n = EVP_EncodeBlock(b64.data(), digest.data(), static_cast<int>(digest.size()));
  return std::string(reinterpret_cast<const char*>(b64.data()), static_cast<std::size_t>(n));
}

}  // namespace naap::tls
