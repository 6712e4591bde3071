// Hash for the index: a 64-bit wyhash-style function (multiply-fold mixing).
// The index uses the top bits to pick a shard and the low bits to pick a
// bucket, so both ends must be well mixed; a final multiply-fold ensures it.
// Also a small thread-local PRNG for sampling (eviction, RandomKey, expiry).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace kvpool::storage {

namespace hash_detail {
inline constexpr uint64_t kP0 = 0xa0761d6478bd642full;
inline constexpr uint64_t kP1 = 0xe7037ed1a0b428dbull;
inline constexpr uint64_t kP2 = 0x8ebc6af09c88c6e3ull;
inline constexpr uint64_t kP3 = 0x589965cc75374cc3ull;

inline uint64_t Mix(uint64_t a, uint64_t b) {
  __uint128_t r = static_cast<__uint128_t>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}
inline uint64_t R8(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint64_t R4(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
}  // namespace hash_detail

inline uint64_t HashKey(std::string_view key) {
  using namespace hash_detail;
  const auto* p = reinterpret_cast<const uint8_t*>(key.data());
  size_t len = key.size();
  uint64_t seed = kP0 ^ Mix(len ^ kP1, kP2);
  uint64_t a, b;
  if (len <= 16) {
    if (len >= 4) {
      a = (R4(p) << 32) | R4(p + ((len >> 3) << 2));
      b = (R4(p + len - 4) << 32) | R4(p + len - 4 - ((len >> 3) << 2));
    } else if (len > 0) {
      a = (uint64_t{p[0]} << 16) | (uint64_t{p[len >> 1]} << 8) | p[len - 1];
      b = 0;
    } else {
      a = b = 0;
    }
  } else {
    size_t i = len;
    if (i > 48) {
      uint64_t s1 = seed, s2 = seed;
      do {
        seed = Mix(R8(p) ^ kP1, R8(p + 8) ^ seed);
        s1 = Mix(R8(p + 16) ^ kP2, R8(p + 24) ^ s1);
        s2 = Mix(R8(p + 32) ^ kP3, R8(p + 40) ^ s2);
        p += 48;
        i -= 48;
      } while (i > 48);
      seed ^= s1 ^ s2;
    }
    while (i > 16) {
      seed = Mix(R8(p) ^ kP1, R8(p + 8) ^ seed);
      i -= 16;
      p += 16;
    }
    a = R8(p + i - 16);
    b = R8(p + i - 8);
  }
  return Mix(kP1 ^ len, Mix(a ^ kP1, b ^ seed));
}

// Fast non-cryptographic per-thread random numbers (wyrand).
inline uint64_t RandomU64() {
  // Seeded from the thread-local's own address: distinct per thread.
  thread_local uint64_t state = reinterpret_cast<uintptr_t>(&state) ^ 0x9e3779b97f4a7c15ull;
  state += hash_detail::kP0;
  return hash_detail::Mix(state, state ^ hash_detail::kP1);
}

}  // namespace kvpool::storage
