// SHA-256, HMAC-SHA-256 and a constant-time compare, from OpenSSL's
// libcrypto (libssl-dev), for the pool's challenge-response between nodes
// and the keys of its per-frame MACs. Thin wrappers: no crypto is written
// here.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kvpool {

using Sha256Digest = std::array<uint8_t, 32>;

Sha256Digest Sha256(std::string_view data);
Sha256Digest HmacSha256(std::string_view key, std::string_view message);

// Constant-time comparison (CRYPTO_memcmp), so a verifier leaks nothing
// through timing.
bool DigestEqual(const Sha256Digest& a, const Sha256Digest& b);
bool ConstantTimeEqual(const void* a, const void* b, size_t len);

}  // namespace kvpool
