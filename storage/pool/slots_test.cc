#include "storage/pool/slots.h"

#include <gtest/gtest.h>

#include <string>

namespace kvpool::pool {
namespace {

// Values from Redis Cluster (CLUSTER KEYSLOT on redis-server 7).
TEST(SlotsTest, MatchesRedisCluster) {
  EXPECT_EQ(KeySlot("foo"), 12182);
  EXPECT_EQ(KeySlot("bar"), 5061);
  EXPECT_EQ(KeySlot("hello"), 866);
  EXPECT_EQ(KeySlot(""), 0);
  EXPECT_EQ(KeySlot("somekey"), 11058);
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("{user1000}.followers"));
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("user1000"));
}

TEST(SlotsTest, HashtagRules) {
  // Empty tag: the whole key is hashed.
  EXPECT_EQ(KeySlot("{}foo"), Crc16("{}foo", 5) & 16383);
  // Only the first {...} counts.
  EXPECT_EQ(KeySlot("{a}{b}"), KeySlot("a"));
  // An unterminated brace hashes the whole key.
  EXPECT_EQ(KeySlot("{abc"), Crc16("{abc", 4) & 16383);
  // "foo{}{bar}": the first '{' has an empty tag, so the whole key.
  EXPECT_EQ(KeySlot("foo{}{bar}"), Crc16("foo{}{bar}", 10) & 16383);
  // "foo{{bar}}zap": tag is "{bar".
  EXPECT_EQ(KeySlot("foo{{bar}}zap"), KeySlot("{bar"));
}

TEST(SlotsTest, Crc16KnownVector) {
  // CRC-16/XMODEM check value.
  EXPECT_EQ(Crc16("123456789", 9), 0x31C3);
  EXPECT_EQ(Crc16("12345678", 8), 0x9015);  // binascii.crc_hqx(b"12345678", 0)
}

// Two bytes at a time (Crc16) against the definition, bit by bit, at every
// length up to 64 and every byte value.
TEST(SlotsTest, Crc16MatchesTheBitwiseDefinition) {
  auto bitwise = [](const std::string& s) {
    uint16_t crc = 0;
    for (unsigned char c : s) {
      crc = static_cast<uint16_t>(crc ^ (c << 8));
      for (int b = 0; b < 8; ++b)
        crc = static_cast<uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
  };
  std::string s;
  uint32_t x = 12345;
  for (int len = 0; len <= 64; ++len) {
    EXPECT_EQ(Crc16(s.data(), s.size()), bitwise(s)) << "length " << len;
    x = x * 1103515245 + 12345;
    s.push_back(static_cast<char>(x >> 16));
  }
  for (int c = 0; c < 256; ++c) {
    std::string one(1, static_cast<char>(c)), two = one + "x", three = "y" + two;
    EXPECT_EQ(Crc16(one.data(), 1), bitwise(one));
    EXPECT_EQ(Crc16(two.data(), 2), bitwise(two));
    EXPECT_EQ(Crc16(three.data(), 3), bitwise(three));
  }
}

TEST(SlotsTest, EvenSpreadInListOrder) {
  SlotTable t(3);
  EXPECT_EQ(t.OwnerOfSlot(0), 0);
  EXPECT_EQ(t.OwnerOfSlot(5460), 0);
  EXPECT_EQ(t.OwnerOfSlot(5461), 1);
  EXPECT_EQ(t.OwnerOfSlot(10922), 1);
  EXPECT_EQ(t.OwnerOfSlot(10923), 2);
  EXPECT_EQ(t.OwnerOfSlot(16383), 2);
  auto r = t.RangesOf(1);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0], std::make_pair(5461, 10922));
  SlotTable one(1);
  EXPECT_EQ(one.RangesOf(0), (std::vector<std::pair<int, int>>{{0, 16383}}));
}

TEST(SlotsTest, ReplicasAreTheNextNodesInRingOrder) {
  SlotTable t(3, 2);
  EXPECT_EQ(t.replicas(), 2);
  EXPECT_EQ(t.CopyOfSlot(0, 0), 0);
  EXPECT_EQ(t.CopyOfSlot(0, 1), 1);
  EXPECT_EQ(t.CopyOfSlot(16383, 1), 0);  // wraps around
  EXPECT_TRUE(t.HoldsSlot(1, 0));
  EXPECT_FALSE(t.HoldsSlot(2, 0));
  EXPECT_TRUE(t.HoldsSlot(0, 16383));
  EXPECT_EQ(t.ReplicaRangesOf(0), (std::vector<std::pair<int, int>>{{10923, 16383}}));
  EXPECT_EQ(t.PrimarySlots(1) + t.ReplicaSlots(1), t.PrimarySlots(1) + t.PrimarySlots(0));
  SlotTable all(3, 3);
  for (int n = 0; n < 3; ++n) EXPECT_EQ(all.PrimarySlots(n) + all.ReplicaSlots(n), kSlots);
  EXPECT_EQ(SlotTable(2, 5).replicas(), 2) << "clamped to the node count";
  EXPECT_EQ(SlotTable(3).replicas(), 1);
  EXPECT_EQ(SlotTable(3).ReplicaSlots(0), 0);
}

TEST(SlotsTest, RandomKeysSpreadEvenly) {
  SlotTable t(3);
  int count[3] = {0, 0, 0};
  for (int i = 0; i < 30000; ++i) ++count[t.OwnerOfKey("key:" + std::to_string(i * 7919))];
  for (int c : count) EXPECT_NEAR(c, 10000, 1000);
}

}  // namespace
}  // namespace kvpool::pool
