#include "storage/util/digest.h"

#include <endian.h>

#include <bit>
#include <cstring>

namespace kvpool {

namespace {

constexpr uint64_t kP1 = 0x9E3779B97F4A7C15ull;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4Full;
constexpr uint64_t kP3 = 0x165667B19E3779F9ull;

uint64_t Fmix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xFF51AFD7ED558CCDull;
  x ^= x >> 33;
  x *= 0xC4CEB9FE1A85EC53ull;
  x ^= x >> 33;
  return x;
}

uint64_t Round(uint64_t h, uint64_t w) {
  w = std::rotl(w * kP2, 31) * kP1;
  return std::rotl(h ^ w, 27) * kP1 + kP3;
}

}  // namespace

uint64_t Hash64(std::string_view data) {
  const char* p = data.data();
  size_t n = data.size();
  const uint64_t len = data.size();
  uint64_t h = kP3 ^ (len * kP1);
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    h = Round(h, le64toh(w));
  }
  if (n > 0) {
    uint64_t w = 0;
    for (size_t i = 0; i < n; ++i) w |= uint64_t{static_cast<uint8_t>(p[i])} << (8 * i);
    h = Round(h, w);
  }
  return Fmix64(h ^ len);
}

std::string Hex64(uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) out[i] = kDigits[v & 0xf];
  return out;
}

}  // namespace kvpool
