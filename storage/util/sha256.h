// SHA-256 and HMAC-SHA-256 (FIPS 180-4, RFC 2104), for the pool's
// challenge-response between nodes. Small and dependency-free because the
// project's dependency list has no crypto library.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kvpool {

using Sha256Digest = std::array<uint8_t, 32>;

class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t len);
  void Update(std::string_view s) { Update(s.data(), s.size()); }
  Sha256Digest Final();

 private:
  void Block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

Sha256Digest HmacSha256(std::string_view key, std::string_view message);

// Constant-time comparison, so a verifier leaks nothing through timing.
bool DigestEqual(const Sha256Digest& a, const Sha256Digest& b);

}  // namespace kvpool
