// Store: keyspace operations (SCAN, RANDOMKEY, FLUSH*), statistics, WATCH.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "storage/segment/store.h"
#include "storage/segment/store_test_util.h"

namespace kvpool::storage {
namespace {

class StoreKeyspaceTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> s_ = OpenStore();
};

TEST_F(StoreKeyspaceTest, ScanReturnsEveryKeyAndFilters) {
  std::set<std::string> all;
  for (int i = 0; i < 5000; ++i) {
    all.insert("key:" + std::to_string(i));
    MustSet(*s_, 0, "key:" + std::to_string(i), "v");
  }
  MustSet(*s_, 0, "gone", "v", kT0, kT0 + 1);
  std::set<std::string> seen;
  uint64_t cursor = 0;
  int calls = 0;
  do {
    ScanResult r = s_->Scan(0, cursor, 100, nullptr, kT0 + 10);
    seen.insert(r.keys.begin(), r.keys.end());
    cursor = r.next_cursor;
    ++calls;
  } while (cursor != 0);
  EXPECT_EQ(seen, all);  // expired "gone" skipped
  EXPECT_GT(calls, 10);
  // Filter.
  seen.clear();
  cursor = 0;
  do {
    ScanResult r = s_->Scan(0, cursor, 1000,
                            [](std::string_view k) { return k.size() == 5; }, kT0);
    seen.insert(r.keys.begin(), r.keys.end());
    cursor = r.next_cursor;
  } while (cursor != 0);
  EXPECT_EQ(seen.size(), 10u);  // key:0 .. key:9
  // One call with a huge count covers everything.
  EXPECT_EQ(s_->Scan(0, 0, SIZE_MAX, nullptr, kT0 + 10).keys.size(), all.size());
  // Empty db.
  ScanResult r = s_->Scan(5, 0, 10, nullptr, kT0);
  EXPECT_EQ(r.next_cursor, 0u);
  EXPECT_TRUE(r.keys.empty());
}

TEST_F(StoreKeyspaceTest, ScanCompleteWhileKeysAreAddedAndRemoved) {
  std::set<std::string> stable;
  for (int i = 0; i < 2000; ++i) {
    stable.insert("s" + std::to_string(i));
    MustSet(*s_, 0, "s" + std::to_string(i), "v");
  }
  std::set<std::string> seen;
  uint64_t cursor = 0;
  int step = 0;
  do {
    ScanResult r = s_->Scan(0, cursor, 20, nullptr, kT0);
    seen.insert(r.keys.begin(), r.keys.end());
    cursor = r.next_cursor;
    // Grow (and later shrink) tables between calls.
    for (int j = 0; j < 200 && step < 200; ++j) {
      if (step < 100) {
        MustSet(*s_, 0, "t" + std::to_string(step * 200 + j), "v");
      } else {
        ASSERT_TRUE(s_->Del(0, "t" + std::to_string((step - 100) * 200 + j), kT0));
      }
    }
    ++step;
  } while (cursor != 0);
  for (const auto& k : stable) EXPECT_TRUE(seen.count(k)) << k;
}

TEST_F(StoreKeyspaceTest, RandomKey) {
  std::string k;
  EXPECT_FALSE(s_->RandomKey(0, kT0, &k));
  std::set<std::string> keys, got;
  for (int i = 0; i < 50; ++i) {
    keys.insert("r" + std::to_string(i));
    MustSet(*s_, 0, "r" + std::to_string(i), "v");
  }
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE(s_->RandomKey(0, kT0, &k));
    got.insert(k);
  }
  EXPECT_EQ(got, keys);
  // Only expired keys left: none is returned, and they get removed.
  s_->FlushDb(0);
  for (int i = 0; i < 100; ++i) MustSet(*s_, 0, "e" + std::to_string(i), "v", kT0, kT0 + 1);
  EXPECT_FALSE(s_->RandomKey(0, kT0 + 2, &k));
  EXPECT_EQ(s_->DbSize(0), 0u);
}

TEST_F(StoreKeyspaceTest, FlushDbAndFlushAll) {
  for (int db = 0; db < 3; ++db)
    for (int i = 0; i < 100; ++i) MustSet(*s_, db, "k" + std::to_string(i), "v", kT0, i % 2 ? kT0 + 9999 : 0);
  EXPECT_EQ(s_->GetStats().keys, 300u);
  s_->FlushDb(1);
  EXPECT_EQ(s_->DbSize(1), 0u);
  EXPECT_EQ(s_->GetDbStats(1).expires, 0u);
  EXPECT_EQ(s_->DbSize(0), 100u);
  EXPECT_EQ(s_->GetDbStats(0).expires, 50u);
  EXPECT_FALSE(s_->Exists(1, "k1", kT0));
  EXPECT_TRUE(s_->Exists(2, "k1", kT0));
  s_->FlushAll();
  EXPECT_EQ(s_->GetStats().keys, 0u);
  EXPECT_EQ(s_->GetStats().used_memory, 0u);
  MustSet(*s_, 1, "again", "v");
  EXPECT_EQ(GetStr(*s_, 1, "again"), "v");
}

TEST_F(StoreKeyspaceTest, StatsAreExact) {
  StoreStats st = s_->GetStats();
  EXPECT_EQ(st.used_memory, 0u);
  EXPECT_EQ(st.segment_used, 0u);
  MustSet(*s_, 0, "key", std::string(100, 'v'));
  st = s_->GetStats();
  ItemRef r = s_->Peek(0, "key", kT0);
  EXPECT_EQ(r.alloc_size(), 144u);  // 40 header + 3 + 100 -> class 144
  EXPECT_EQ(st.used_memory, r.alloc_size() + 4 * sizeof(void*));  // item + one 4-bucket array
  EXPECT_EQ(st.segment_used, 64u << 10);
  EXPECT_EQ(st.keys, 1u);
  r.Reset();
  MustSet(*s_, 0, "key", std::string(1000, 'v'));
  EXPECT_EQ(s_->GetStats().used_memory,
            s_->Peek(0, "key", kT0).alloc_size() + 4 * sizeof(void*));
  MustSet(*s_, 0, "t", "v", kT0, kT0 + 1);
  EXPECT_FALSE(s_->Exists(0, "t", kT0 + 1));
  EXPECT_EQ(s_->GetStats().expired_keys, 1u);
  s_->ResetStats();
  EXPECT_EQ(s_->GetStats().expired_keys, 0u);
  s_->SetMaxMemory(12345);
  EXPECT_EQ(s_->GetStats().maxmemory, 12345u);
}

TEST_F(StoreKeyspaceTest, WatchTokensDirtiedByEveryModification) {
  auto fresh = [&](int db, const char* key) {
    auto t = std::make_shared<WatchToken>();
    s_->Watch(db, key, t);
    return t;
  };
  MustSet(*s_, 0, "k", "v");
  auto t = fresh(0, "k");
  EXPECT_FALSE(t->dirty);
  EXPECT_EQ(GetStr(*s_, 0, "k"), "v");  // reads do not dirty
  MustSet(*s_, 0, "other", "v");
  MustSet(*s_, 1, "k", "v");  // same key, other db
  EXPECT_FALSE(t->dirty);
  MustSet(*s_, 0, "k", "w");
  EXPECT_TRUE(t->dirty);
  s_->Unwatch(t);

  using Fn = std::function<void()>;
  std::vector<std::pair<const char*, Fn>> mods = {
      {"del", [&] { EXPECT_TRUE(s_->Del(0, "k", kT0)); }},
      {"mset", [&] { ASSERT_TRUE(s_->MultiSet(0, {"z", "1", "k", "2"}, false, kT0, nullptr).ok()); }},
      {"mutate", [&] {
         ASSERT_TRUE(s_->Mutate(0, "k", kT0, [](const ItemRef*) {
                         Mutation m;
                         m.kind = Mutation::kWrite;
                         m.value = "m";
                         return m;
                       }).ok());
       }},
      {"expire", [&] { EXPECT_TRUE(s_->SetExpire(0, "k", kT0 + 100, ExpireCondition::kAlways, kT0)); }},
      {"rename src", [&] { ASSERT_TRUE(s_->Rename(0, "k", "k2", false, kT0).ok()); }},
      {"rename dst", [&] {
         MustSet(*s_, 0, "src", "s");
         ASSERT_TRUE(s_->Rename(0, "src", "k", false, kT0).ok());
       }},
      {"lazy expiry", [&] {
         EXPECT_TRUE(s_->SetExpire(0, "k", kT0 + 1, ExpireCondition::kAlways, kT0));
         t->dirty = false;  // the SetExpire itself dirtied it
         EXPECT_FALSE(s_->Exists(0, "k", kT0 + 2));
       }},
      {"active expiry", [&] {
         EXPECT_TRUE(s_->SetExpire(0, "k", kT0 + 1, ExpireCondition::kAlways, kT0));
         t->dirty = false;
         s_->Tick(kT0 + 2, 1000000);
       }},
      {"flushdb", [&] { s_->FlushDb(0); }},
      {"flushall", [&] { s_->FlushAll(); }},
  };
  for (auto& [name, fn] : mods) {
    MustSet(*s_, 0, "k", "v");
    t = fresh(0, "k");
    fn();
    EXPECT_TRUE(t->dirty) << name;
    s_->Unwatch(t);
    // After Unwatch, writes no longer touch it.
    t->dirty = false;
    MustSet(*s_, 0, "k", "again");
    EXPECT_FALSE(t->dirty) << name;
  }
  // Flush of another db does not dirty.
  t = fresh(0, "k");
  s_->FlushDb(3);
  EXPECT_FALSE(t->dirty);
  // Watching a missing key: its creation dirties.
  auto t2 = fresh(0, "newkey");
  MustSet(*s_, 0, "newkey", "v");
  EXPECT_TRUE(t2->dirty);
  s_->Unwatch(t);
  s_->Unwatch(t2);
}

}  // namespace
}  // namespace kvpool::storage
