#include "storage/util/digest.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace kvpool {
namespace {

// The digest is a contract between nodes of different builds: these values
// must never change. (Checked against an independent Python rendering of
// the formula in digest.h when they were set.)
TEST(DigestTest, FixedVectors) {
  EXPECT_EQ(Hex64(Hash64("")), "f490368aba8bfeac");
  EXPECT_EQ(Hex64(Hash64("a")), "69cdf9aaccf245d5");
  EXPECT_EQ(Hex64(Hash64("abcdefgh")), "34c41ecf8f161b28");
  EXPECT_EQ(Hex64(Hash64("hello, world")), "31b4f7f220c0b92b");
  EXPECT_EQ(Hex64(Hash64(std::string(1000, 'x'))), "5d095e2d65cdcf34");
}

TEST(DigestTest, HexIsSixteenLowercaseDigits) {
  EXPECT_EQ(Hex64(0), "0000000000000000");
  EXPECT_EQ(Hex64(0xABCDEF0123456789ull), "abcdef0123456789");
}

TEST(DigestTest, OneByteChangesTheDigest) {
  std::string base(37, 'q');
  const uint64_t h = Hash64(base);
  for (size_t i = 0; i < base.size(); ++i) {
    std::string v = base;
    v[i] ^= 1;
    EXPECT_NE(Hash64(v), h) << "byte " << i;
  }
}

TEST(DigestTest, LengthAloneChangesTheDigest) {
  // Trailing zero bytes look like the padding of a partial word: the length
  // tells them apart.
  std::string s("abc");
  uint64_t prev = Hash64(s);
  for (int i = 0; i < 16; ++i) {
    s.push_back('\0');
    uint64_t h = Hash64(s);
    EXPECT_NE(h, prev) << s.size();
    prev = h;
  }
  EXPECT_NE(Hash64(std::string(8, '\0')), Hash64(std::string(16, '\0')));
}

TEST(DigestTest, SpeedOf64MiB) {
  std::string v(64u << 20, '\0');
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<char>(i * 131);
  auto t0 = std::chrono::steady_clock::now();
  uint64_t h = Hash64(v);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("Hash64 of 64 MiB: %.1f ms (%.2f GB/s), %s\n", ms, v.size() / ms / 1e6,
              Hex64(h).c_str());
  EXPECT_NE(h, 0u);
}

}  // namespace
}  // namespace kvpool
