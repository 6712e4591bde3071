#include "storage/segment/index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "storage/segment/hash.h"

namespace kvpool::storage {
namespace {

Item* MakeItem(const std::string& key, int64_t expire = 0) {
  auto* it = static_cast<Item*>(std::malloc(Item::BytesFor(key.size(), 0)));
  new (it) Item;
  it->next = nullptr;
  it->version = 0;
  it->expire_at_ms.store(expire);
  it->refs.store(1);
  it->key_len = static_cast<uint32_t>(key.size());
  it->val_len = 0;
  it->cls = 0;
  std::memcpy(it->data(), key.data(), key.size());
  return it;
}

class IndexTest : public ::testing::Test {
 protected:
  ~IndexTest() override {
    for (auto& [k, it] : owned_) std::free(it);
  }
  void Insert(const std::string& key, int64_t expire = 0) {
    uint64_t h = HashKey(key);
    Shard& s = idx_.shard(Index::ShardOf(h));
    std::lock_guard<FutexMutex> g(s.mu);
    ASSERT_EQ(Index::Find(s, h, key), nullptr);
    Item* it = MakeItem(key, expire);
    owned_[key] = it;
    idx_.Insert(s, h, it);
  }
  Item* Find(const std::string& key) {
    uint64_t h = HashKey(key);
    Shard& s = idx_.shard(Index::ShardOf(h));
    std::lock_guard<FutexMutex> g(s.mu);
    Item** pos = Index::Find(s, h, key);
    return pos == nullptr ? nullptr : *pos;
  }
  bool Remove(const std::string& key) {
    uint64_t h = HashKey(key);
    Shard& s = idx_.shard(Index::ShardOf(h));
    std::lock_guard<FutexMutex> g(s.mu);
    Item** pos = Index::Find(s, h, key);
    if (pos == nullptr) return false;
    Item* it = idx_.Unlink(s, pos);
    idx_.MaybeShrink(s);
    std::free(it);
    owned_.erase(key);
    return true;
  }

  std::atomic<int64_t> mem_{0};
  Index idx_{&mem_};
  std::map<std::string, Item*> owned_;
};

TEST_F(IndexTest, InsertFindDeleteAndCounters) {
  Insert("a");
  Insert("b", 1234);
  Insert(std::string("\0x\xff", 3));
  EXPECT_EQ(idx_.keys(), 3u);
  EXPECT_EQ(idx_.expires(), 1u);
  EXPECT_NE(Find("a"), nullptr);
  EXPECT_EQ(Find("a")->key(), "a");
  EXPECT_NE(Find(std::string("\0x\xff", 3)), nullptr);
  EXPECT_EQ(Find(std::string("\0x", 2)), nullptr);
  EXPECT_EQ(Find("c"), nullptr);
  EXPECT_TRUE(Remove("b"));
  EXPECT_FALSE(Remove("b"));
  EXPECT_EQ(idx_.keys(), 2u);
  EXPECT_EQ(idx_.expires(), 0u);
  EXPECT_GT(mem_.load(), 0);
}

TEST_F(IndexTest, KeysDifferingInOneByteAreDistinct) {
  // Every length from 0 to 40 (covers the short-key compare), each key
  // differing from the next only in its last or a middle byte.
  std::vector<std::string> keys;
  for (size_t len = 0; len <= 40; ++len) {
    std::string k(len, 'a');
    keys.push_back(k);
    for (size_t p : {len / 2, len > 0 ? len - 1 : 0}) {
      if (len == 0) break;
      std::string v = k;
      v[p] = 'b';
      if (std::find(keys.begin(), keys.end(), v) == keys.end()) keys.push_back(v);
    }
  }
  for (const auto& k : keys) Insert(k);
  for (const auto& k : keys) {
    Item* it = Find(k);
    ASSERT_NE(it, nullptr) << k;
    EXPECT_EQ(it->key(), k);
  }
  EXPECT_EQ(Find(std::string(41, 'a')), nullptr);
  EXPECT_EQ(Find(std::string(16, 'c')), nullptr);
}

TEST_F(IndexTest, GrowsAndShrinksKeepingEveryKey) {
  const int n = 100000;
  for (int i = 0; i < n; ++i) Insert("key:" + std::to_string(i));
  EXPECT_EQ(idx_.keys(), static_cast<uint64_t>(n));
  uint64_t buckets = 0;
  for (uint32_t s = 0; s < Index::kShards; ++s) {
    const Shard& sh = idx_.shard(s);
    EXPECT_LE(sh.size.load(), sh.nbuckets()) << "load factor above 1 in shard " << s;
    buckets += sh.nbuckets();
    // The hash spreads keys evenly over shards.
    EXPECT_GT(sh.size.load(), n / Index::kShards / 2);
    EXPECT_LT(sh.size.load(), n / Index::kShards * 2);
  }
  EXPECT_EQ(mem_.load(), static_cast<int64_t>(buckets * sizeof(Item*)));
  for (int i = 0; i < n; ++i) ASSERT_NE(Find("key:" + std::to_string(i)), nullptr) << i;
  for (int i = 0; i < n; i += 1) {
    if (i % 100 != 0) {
      ASSERT_TRUE(Remove("key:" + std::to_string(i)));
    }
  }
  EXPECT_EQ(idx_.keys(), static_cast<uint64_t>(n / 100));
  EXPECT_LT(mem_.load(), static_cast<int64_t>(buckets * sizeof(Item*) / 8));  // shrunk
  for (int i = 0; i < n; i += 100) ASSERT_NE(Find("key:" + std::to_string(i)), nullptr) << i;
}

TEST_F(IndexTest, NextCursorCoversEveryBucketOnce) {
  for (uint64_t size : {1u, 2u, 8u, 1024u}) {
    std::set<uint64_t> seen;
    uint64_t v = 0;
    do {
      EXPECT_TRUE(seen.insert(v & (size - 1)).second);
      v = Index::NextCursor(v, size - 1);
    } while (v != 0);
    EXPECT_EQ(seen.size(), size);
  }
}

// Scans one shard with the reverse-binary cursor while the shard grows and
// shrinks between steps: every key present for the whole scan is returned.
TEST_F(IndexTest, ScanCompleteAcrossResizes) {
  // Keys of shard 0 only, so resizes of that shard happen often.
  std::vector<std::string> keys0;
  for (int i = 0; keys0.size() < 6000; ++i) {
    std::string k = "k" + std::to_string(i);
    if (Index::ShardOf(HashKey(k)) == 0) keys0.push_back(k);
  }
  for (int round = 0; round < 2; ++round) {
    // Round 0 grows during the scan; round 1 shrinks during it.
    std::set<std::string> stable, seen;
    size_t next_extra = 0;
    if (round == 0) {
      for (size_t i = 0; i < 50; ++i) Insert(keys0[i]);
      for (size_t i = 0; i < 50; ++i) stable.insert(keys0[i]);
      next_extra = 50;
    } else {
      for (size_t i = 50; i < keys0.size(); ++i) Insert(keys0[i]);
      for (size_t i = 0; i < 50; ++i) stable.insert(keys0[i]);
    }
    Shard& s = idx_.shard(0);
    uint64_t v = 0;
    size_t removed = 50;
    do {
      {
        std::lock_guard<FutexMutex> g(s.mu);
        if (s.buckets != nullptr) {
          for (Item* it = s.buckets[v & s.mask]; it != nullptr; it = it->next)
            seen.insert(std::string(it->key()));
          v = Index::NextCursor(v, s.mask);
        } else {
          v = 0;
        }
      }
      if (round == 0) {
        for (int j = 0; j < 40 && next_extra < keys0.size(); ++j) Insert(keys0[next_extra++]);
      } else {
        for (int j = 0; j < 200 && removed < keys0.size(); ++j) Remove(keys0[removed++]);
      }
    } while (v != 0);
    for (const auto& k : stable) EXPECT_TRUE(seen.count(k)) << "round " << round << " " << k;
    if (round == 0) {
      for (size_t i = 50; i < keys0.size(); ++i) Remove(keys0[i]);
    }
  }
}

TEST_F(IndexTest, DetachEmptiesTheShard) {
  for (int i = 0; i < 1000; ++i) Insert("d" + std::to_string(i), i % 2 ? 5 : 0);
  size_t total = 0;
  for (uint32_t si = 0; si < Index::kShards; ++si) {
    Shard& s = idx_.shard(si);
    uint64_t n;
    Item** b;
    {
      std::lock_guard<FutexMutex> g(s.mu);
      b = idx_.Detach(s, &n);
    }
    for (uint64_t i = 0; i < n; ++i)
      for (Item* it = b[i]; it != nullptr; it = it->next) ++total;
    if (b != nullptr) idx_.FreeBuckets(b, n);
  }
  EXPECT_EQ(total, 1000u);
  EXPECT_EQ(idx_.keys(), 0u);
  EXPECT_EQ(idx_.expires(), 0u);
  EXPECT_EQ(mem_.load(), 0);
}

}  // namespace
}  // namespace kvpool::storage
