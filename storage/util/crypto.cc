#include "storage/util/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdlib>

namespace kvpool {

// Both one-shot calls fail only on allocation failure inside OpenSSL with
// these fixed algorithms; a node that cannot hash cannot authenticate
// anyone, so that is fatal rather than a silently wrong digest.
Sha256Digest Sha256(std::string_view data) {
  Sha256Digest out{};
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr) != 1 ||
      len != out.size())
    std::abort();
  return out;
}

Sha256Digest HmacSha256(std::string_view key, std::string_view message) {
  Sha256Digest out{};
  unsigned int len = 0;
  // OpenSSL takes a null key pointer for an empty key only with length 0;
  // pass a valid pointer either way.
  static const unsigned char kEmpty = 0;
  const void* k = key.empty() ? static_cast<const void*>(&kEmpty) : key.data();
  if (HMAC(EVP_sha256(), k, static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), out.data(),
           &len) == nullptr ||
      len != out.size())
    std::abort();
  return out;
}

bool DigestEqual(const Sha256Digest& a, const Sha256Digest& b) {
  return ConstantTimeEqual(a.data(), b.data(), a.size());
}

bool ConstantTimeEqual(const void* a, const void* b, size_t len) {
  return CRYPTO_memcmp(a, b, len) == 0;
}

}  // namespace kvpool
