// Store: functional tests of reads and writes (keyspace operations, TTL,
// eviction and concurrency in their own files).
#include "storage/segment/store.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "storage/segment/store_test_util.h"

namespace kvpool::storage {
namespace {

TEST(StoreOpenTest, ValidatesOptionsAndDerivesSegmentSize) {
  StoreOptions o;
  o.databases = 0;
  EXPECT_EQ(Store::Open(o).status().code(), Code::kInvalidArgument);
  o = {};
  o.maxmemory = 0;
  EXPECT_EQ(Store::Open(o).status().code(), Code::kInvalidArgument);
  o.segment_bytes = 8 << 20;
  auto s = OpenStore(o);
  EXPECT_EQ(s->segment_size(), size_t{8} << 20);
  o = {};
  o.maxmemory = size_t{1} << 30;
  s = OpenStore(o);
  EXPECT_EQ(s->segment_size(), (size_t{1} << 30) + (size_t{128} << 20));
  EXPECT_EQ(s->databases(), 16);
  EXPECT_NE(s->segment_base(), nullptr);
  StoreStats st = s->GetStats();
  EXPECT_EQ(st.segment_bytes, s->segment_size());
  EXPECT_EQ(st.maxmemory, size_t{1} << 30);
  EXPECT_EQ(st.used_memory, 0u);
}

TEST(StorePolicyTest, NamesRoundTrip) {
  for (auto p : {EvictionPolicy::kNoEviction, EvictionPolicy::kAllKeysLru,
                 EvictionPolicy::kVolatileLru, EvictionPolicy::kAllKeysRandom,
                 EvictionPolicy::kVolatileTtl}) {
    EvictionPolicy q;
    ASSERT_TRUE(ParseEvictionPolicy(EvictionPolicyName(p), &q));
    EXPECT_EQ(p, q);
  }
  EvictionPolicy q;
  EXPECT_TRUE(ParseEvictionPolicy("ALLKEYS-LRU", &q));
  EXPECT_EQ(q, EvictionPolicy::kAllKeysLru);
  EXPECT_FALSE(ParseEvictionPolicy("allkeys-lfu", &q));
}

class StoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> s_ = OpenStore();
};

TEST_F(StoreTest, GetPeekExistsAndDatabasesAreSeparate) {
  EXPECT_FALSE(s_->Get(0, "k", kT0));
  MustSet(*s_, 0, "k", "v0");
  MustSet(*s_, 3, "k", "v3");
  EXPECT_EQ(GetStr(*s_, 0, "k"), "v0");
  EXPECT_EQ(GetStr(*s_, 3, "k"), "v3");
  EXPECT_EQ(GetStr(*s_, 1, "k"), "<nil>");
  ItemRef p = s_->Peek(3, "k", kT0);
  ASSERT_TRUE(p);
  EXPECT_EQ(p.key(), "k");
  EXPECT_EQ(p.value(), "v3");
  EXPECT_EQ(p.expire_at_ms(), 0);
  EXPECT_TRUE(s_->Exists(0, "k", kT0));
  EXPECT_FALSE(s_->Exists(2, "k", kT0));
  EXPECT_EQ(s_->DbSize(0), 1u);
  EXPECT_EQ(s_->DbSize(3), 1u);
}

TEST_F(StoreTest, EmptyAndBinaryKeysAndValues) {
  const std::string bkey("a\0b\r\n\xff", 6), bval("\0\0\x01\x80", 4);
  MustSet(*s_, 0, bkey, bval);
  MustSet(*s_, 0, "", "empty key");
  MustSet(*s_, 0, "empty value", "");
  EXPECT_EQ(GetStr(*s_, 0, bkey), bval);
  EXPECT_EQ(GetStr(*s_, 0, std::string("a\0b", 3)), "<nil>");
  EXPECT_EQ(GetStr(*s_, 0, ""), "empty key");
  ItemRef e = s_->Get(0, "empty value", kT0);
  ASSERT_TRUE(e);
  EXPECT_EQ(e.value().size(), 0u);
  EXPECT_EQ(s_->DbSize(0), 3u);
}

TEST_F(StoreTest, HugeValue) {
  std::string big(64 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i >> 12);
  MustSet(*s_, 0, "big", big);
  {
    ItemRef r = s_->Get(0, "big", kT0);
    ASSERT_TRUE(r);
    EXPECT_TRUE(r.value() == big);
    EXPECT_GE(r.alloc_size(), big.size());
    EXPECT_LT(r.alloc_size(), big.size() + (64 << 10) + 64);
    EXPECT_GE(s_->GetStats().used_memory, big.size());
  }
  EXPECT_TRUE(s_->Del(0, "big", kT0));
  EXPECT_LT(s_->GetStats().used_memory, 1u << 20);
}

size_t RssBytes() {
  long pages = 0, rss = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  if (std::fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
  std::fclose(f);
  return static_cast<size_t>(rss) * 4096;
}

TEST_F(StoreTest, RssFollowsUseOfLargeValues) {
  const size_t before = RssBytes();
  MustSet(*s_, 0, "big", std::string(32 << 20, 'x'));
  const size_t with = RssBytes();
  EXPECT_GT(with, before + (30u << 20));  // pages touched only when written
  EXPECT_TRUE(s_->Del(0, "big", kT0));
  EXPECT_LT(RssBytes(), with - (30u << 20));  // and given back on delete
}

TEST_F(StoreTest, SetConditionsKeepTtlAndGet) {
  SetOptions nx;
  nx.cond = SetCondition::kIfAbsent;
  SetOptions xx;
  xx.cond = SetCondition::kIfPresent;
  SetResult r;
  ASSERT_TRUE(s_->Set(0, "k", "1", xx, kT0, &r).ok());
  EXPECT_FALSE(r.written);
  EXPECT_FALSE(s_->Exists(0, "k", kT0));
  ASSERT_TRUE(s_->Set(0, "k", "1", nx, kT0, &r).ok());
  EXPECT_TRUE(r.written);
  ASSERT_TRUE(s_->Set(0, "k", "2", nx, kT0, &r).ok());
  EXPECT_FALSE(r.written);
  EXPECT_EQ(GetStr(*s_, 0, "k"), "1");
  ASSERT_TRUE(s_->Set(0, "k", "3", xx, kT0, &r).ok());
  EXPECT_TRUE(r.written);
  EXPECT_EQ(GetStr(*s_, 0, "k"), "3");

  // GET: the previous value, whether or not the write happened.
  SetOptions get;
  get.want_old = true;
  ASSERT_TRUE(s_->Set(0, "k", "4", get, kT0, &r).ok());
  EXPECT_TRUE(r.written);
  ASSERT_TRUE(r.old);
  EXPECT_EQ(r.old.value(), "3");
  get.cond = SetCondition::kIfAbsent;
  ASSERT_TRUE(s_->Set(0, "k", "5", get, kT0, &r).ok());
  EXPECT_FALSE(r.written);
  ASSERT_TRUE(r.old);
  EXPECT_EQ(r.old.value(), "4");
  ASSERT_TRUE(s_->Set(0, "new", "5", get, kT0, &r).ok());
  EXPECT_TRUE(r.written);
  EXPECT_FALSE(r.old);

  // TTL: a plain SET clears it, KEEPTTL keeps it.
  SetOptions ex;
  ex.expire_at_ms = kT0 + 10000;
  ASSERT_TRUE(s_->Set(0, "t", "a", ex, kT0, &r).ok());
  SetOptions keep;
  keep.keep_ttl = true;
  ASSERT_TRUE(s_->Set(0, "t", "b", keep, kT0, &r).ok());
  EXPECT_EQ(s_->Peek(0, "t", kT0).expire_at_ms(), kT0 + 10000);
  EXPECT_EQ(s_->GetDbStats(0).expires, 1u);
  ASSERT_TRUE(s_->Set(0, "t", "c", SetOptions{}, kT0, &r).ok());
  EXPECT_EQ(s_->Peek(0, "t", kT0).expire_at_ms(), 0);
  EXPECT_EQ(s_->GetDbStats(0).expires, 0u);
  // Null result pointer is allowed.
  ASSERT_TRUE(s_->Set(0, "t", "d", SetOptions{}, kT0, nullptr).ok());
}

TEST_F(StoreTest, VersionsAreUniqueAndGrow) {
  MustSet(*s_, 0, "a", "1");
  uint64_t v1 = s_->Peek(0, "a", kT0).version();
  MustSet(*s_, 0, "b", "1");
  uint64_t v2 = s_->Peek(0, "b", kT0).version();
  MustSet(*s_, 0, "a", "2");
  uint64_t v3 = s_->Peek(0, "a", kT0).version();
  EXPECT_LT(v1, v2);
  EXPECT_LT(v2, v3);
}

// Versions are a Lamport clock: the node in the low 8 bits, and past every
// version the store was given.
TEST(StoreVersionTest, VersionsCarryTheNodeAndPassEveryVersionGiven) {
  StoreOptions o;
  o.version_node = 7;
  auto s = OpenStore(o);
  MustSet(*s, 0, "a", "1");
  uint64_t v1 = s->Peek(0, "a", kT0).version();
  EXPECT_EQ(v1 & 0xff, 7u);
  SetOptions given;
  given.version = (1000ull << 8) | 3;  // another node's
  ASSERT_TRUE(s->Set(0, "b", "x", given, kT0, nullptr).ok());
  EXPECT_EQ(s->Peek(0, "b", kT0).version(), given.version);
  MustSet(*s, 0, "a", "2");
  uint64_t v2 = s->Peek(0, "a", kT0).version();
  EXPECT_GT(v2, given.version);
  EXPECT_EQ(v2 & 0xff, 7u);
  EXPECT_GT(s->NewVersion(), v2);
  // A clock moved forward stamps past the floor; moving it back does nothing.
  s->AdvanceClock(uint64_t{1} << 50);
  uint64_t v3 = s->NewVersion();
  EXPECT_GT(v3, uint64_t{1} << 50);
  EXPECT_EQ(v3 & 0xff, 7u);
  s->AdvanceClock(1 << 8);
  EXPECT_GT(s->NewVersion(), v3);
}

// A value published with an explicit version under if_not_older lands only
// if the value there is not newer; DelIfOlder deletes only older values.
// `v` prepared for `k` with an explicit version, not yet published.
PendingItem Prepared(Store& s, std::string_view k, std::string_view v, uint64_t version) {
  auto p = s.Prepare(k, v.size(), kT0);
  EXPECT_TRUE(p.ok());
  if (!p.ok()) return {};
  memcpy(p.value().value_data(), v.data(), v.size());
  p.value().set_version(version);
  return std::move(p.value());
}

TEST(StoreVersionTest, PublishIfNotOlderAndDelIfOlderKeepTheNewest) {
  auto s = OpenStore();
  auto put = [&](std::string_view k, std::string_view v, uint64_t version) {
    std::vector<PendingItem> items;
    items.push_back(Prepared(*s, k, v, version));
    size_t applied = 9;
    EXPECT_TRUE(s->Publish(0, &items, kT0, {.if_not_older = true, .applied = &applied}).ok());
    EXPECT_TRUE(items.empty());
    return applied;
  };
  EXPECT_EQ(put("k", "new", 5000), 1u);
  EXPECT_EQ(put("k", "old", 4000), 0u);  // arrives late: dropped
  EXPECT_EQ(GetStr(*s, 0, "k"), "new");
  EXPECT_EQ(put("k", "same", 5000), 1u);  // the same write again (a TTL change)
  EXPECT_EQ(GetStr(*s, 0, "k"), "same");
  EXPECT_EQ(put("k", "newer", 6000), 1u);
  EXPECT_EQ(GetStr(*s, 0, "k"), "newer");
  EXPECT_FALSE(s->DelIfOlder(0, "k", 5500, kT0));
  EXPECT_EQ(GetStr(*s, 0, "k"), "newer");
  EXPECT_TRUE(s->DelIfOlder(0, "k", 6500, kT0));
  EXPECT_EQ(GetStr(*s, 0, "k"), "<nil>");
  EXPECT_FALSE(s->DelIfOlder(0, "absent", 1, kT0));
  EXPECT_GT(s->NewVersion(), 6500u);
  // Without if_not_older an explicit version always lands (catch-up).
  auto p = s->Prepare("k2", 1, kT0);
  ASSERT_TRUE(p.ok());
  p.value().value_data()[0] = 'z';
  std::vector<PendingItem> items;
  items.push_back(std::move(p.value()));
  ASSERT_TRUE(s->Publish(0, &items, kT0).ok());
  EXPECT_EQ(GetStr(*s, 0, "k2"), "z");
}

// Publish's `current`: per item given, a pin of the key's live item after
// the publish: the item itself, or the newer one that made it drop.
TEST(StoreVersionTest, PublishPinsEachKeysCurrentItem) {
  auto s = OpenStore();
  auto prepare = [&](std::string_view k, std::string_view v, uint64_t version) {
    return Prepared(*s, k, v, version);
  };
  std::vector<PendingItem> items;
  items.push_back(prepare("a", "a1", 5000));
  ASSERT_TRUE(s->Publish(0, &items, kT0, {.if_not_older = true}).ok());
  items.push_back(prepare("b", "b1", 6000));
  items.push_back(prepare("a", "a0", 4000));  // older than what is there
  std::vector<ItemRef> current;
  size_t applied = 0;
  ASSERT_TRUE(s->Publish(0, &items, kT0, {.if_not_older = true, .applied = &applied, .current = &current})
                    .ok());
  EXPECT_EQ(applied, 1u);
  ASSERT_EQ(current.size(), 2u);
  EXPECT_EQ(current[0].key(), "b");
  EXPECT_EQ(current[0].value(), "b1");
  EXPECT_EQ(current[0].version(), 6000u);
  EXPECT_EQ(current[1].key(), "a");
  EXPECT_EQ(current[1].value(), "a1");  // the newer one, kept
  EXPECT_EQ(current[1].version(), 5000u);
  // Pins: overwriting and deleting leaves them readable.
  MustSet(*s, 0, "b", "b2");
  EXPECT_TRUE(s->Del(0, "a", kT0));
  EXPECT_EQ(current[0].value(), "b1");
  EXPECT_EQ(current[1].value(), "a1");
  current.clear();
  EXPECT_EQ(GetStr(*s, 0, "b"), "b2");
}

// Prefetch is a hint: any keys (present, absent, more than it takes), any
// db index, and the data reads the same afterwards.
TEST_F(StoreTest, PrefetchChangesNothing) {
  std::vector<std::string> names;
  for (int i = 0; i < 200; ++i) names.push_back("p" + std::to_string(i));
  for (int i = 0; i < 200; i += 2) MustSet(*s_, 0, names[i], "v" + std::to_string(i));
  std::vector<std::string_view> keys(names.begin(), names.end());
  s_->Prefetch(0, keys);  // 200 > kMaxPrefetch: the first 64
  s_->Prefetch(0, {});
  s_->Prefetch(-1, keys);
  s_->Prefetch(s_->databases(), keys);
  s_->Prefetch(1, std::span<const std::string_view>(keys).first(3));
  EXPECT_EQ(s_->DbSize(0), 100u);
  EXPECT_EQ(s_->DbSize(1), 0u);
  for (int i = 0; i < 200; ++i)
    EXPECT_EQ(GetStr(*s_, 0, names[i]), i % 2 == 0 ? "v" + std::to_string(i) : "<nil>");
}

TEST_F(StoreTest, PinsSurviveOverwriteDeleteAndFlush) {
  std::string v1(5000, 'a');
  MustSet(*s_, 0, "k", v1);
  ItemRef pin = s_->Get(0, "k", kT0);
  uint64_t ver = pin.version();
  MustSet(*s_, 0, "k", std::string(5000, 'b'));
  // The freed-then-reused memory would show 'c' if the pin did not hold.
  for (int i = 0; i < 100; ++i) MustSet(*s_, 0, "x" + std::to_string(i), std::string(5000, 'c'));
  EXPECT_EQ(pin.value(), v1);
  EXPECT_EQ(pin.key(), "k");
  EXPECT_EQ(pin.version(), ver);
  ItemRef pin2 = s_->Get(0, "k", kT0);
  EXPECT_TRUE(s_->Del(0, "k", kT0));
  s_->FlushAll();
  for (int i = 0; i < 100; ++i) MustSet(*s_, 0, "y" + std::to_string(i), std::string(5000, 'c'));
  EXPECT_EQ(pin.value(), v1);
  EXPECT_EQ(pin2.value(), std::string(5000, 'b'));
  // Clone and token round trip.
  ItemRef c = pin.Clone();
  pin.Reset();
  EXPECT_FALSE(pin);
  void* token = c.ReleaseToToken();
  EXPECT_FALSE(c);
  ItemRef::ReleasePin(token);
  ItemRef moved = std::move(pin2);
  EXPECT_EQ(moved.value(), std::string(5000, 'b'));
  moved = ItemRef();
  s_->FlushAll();
  EXPECT_EQ(s_->GetStats().used_memory, 0u);
}

TEST_F(StoreTest, MultiGetAlignsWithKeys) {
  MustSet(*s_, 0, "a", "1");
  MustSet(*s_, 0, "c", "3");
  std::vector<std::string_view> keys = {"a", "b", "c", "a"};
  auto refs = s_->MultiGet(0, keys, kT0);
  ASSERT_EQ(refs.size(), 4u);
  EXPECT_EQ(refs[0].value(), "1");
  EXPECT_FALSE(refs[1]);
  EXPECT_EQ(refs[2].value(), "3");
  EXPECT_EQ(refs[3].value(), "1");
  EXPECT_EQ(s_->MultiGet(0, {}, kT0).size(), 0u);
  EXPECT_EQ(s_->MultiGet(0, {"c"}, kT0)[0].value(), "3");
}

TEST_F(StoreTest, MultiExistsAlignsWithKeys) {
  MustSet(*s_, 0, "a", "1");
  MustSet(*s_, 0, "c", "3");
  MustSet(*s_, 0, "t", "x");
  ASSERT_TRUE(s_->SetExpire(0, "t", kT0 + 10, ExpireCondition::kAlways, kT0));
  MustSet(*s_, 1, "b", "other db");
  std::vector<std::string_view> keys = {"a", "b", "c", "a", "t"};
  EXPECT_EQ(s_->MultiExists(0, keys, kT0), (std::vector<uint8_t>{1, 0, 1, 1, 1}));
  EXPECT_EQ(s_->MultiExists(0, keys, kT0 + 10), (std::vector<uint8_t>{1, 0, 1, 1, 0}));
  EXPECT_FALSE(s_->Exists(0, "t", kT0));  // the expired key was removed
  EXPECT_EQ(s_->MultiExists(1, {"b"}, kT0), (std::vector<uint8_t>{1}));
  EXPECT_TRUE(s_->MultiExists(0, {}, kT0).empty());
}

TEST_F(StoreTest, MultiSetAndMsetnxAtomicity) {
  bool written = false;
  ASSERT_TRUE(s_->MultiSet(0, {"a", "1", "b", "2", "a", "3"}, false, kT0, &written).ok());
  EXPECT_TRUE(written);
  EXPECT_EQ(GetStr(*s_, 0, "a"), "3");  // last duplicate wins
  EXPECT_EQ(GetStr(*s_, 0, "b"), "2");
  EXPECT_EQ(s_->DbSize(0), 2u);
  // MSETNX: one existing key -> nothing written.
  ASSERT_TRUE(s_->MultiSet(0, {"x", "1", "b", "9", "y", "1"}, true, kT0, &written).ok());
  EXPECT_FALSE(written);
  EXPECT_FALSE(s_->Exists(0, "x", kT0));
  EXPECT_FALSE(s_->Exists(0, "y", kT0));
  EXPECT_EQ(GetStr(*s_, 0, "b"), "2");
  ASSERT_TRUE(s_->MultiSet(0, {"x", "1", "y", "2"}, true, kT0, &written).ok());
  EXPECT_TRUE(written);
  EXPECT_EQ(s_->DbSize(0), 4u);
  // MSET clears TTLs.
  MustSet(*s_, 0, "t", "v", kT0, kT0 + 1000);
  ASSERT_TRUE(s_->MultiSet(0, {"t", "w"}, false, kT0, &written).ok());
  EXPECT_EQ(s_->Peek(0, "t", kT0).expire_at_ms(), 0);
  EXPECT_EQ(s_->GetDbStats(0).expires, 0u);
  EXPECT_EQ(s_->MultiSet(0, {"odd"}, false, kT0, &written).code(), Code::kInvalidArgument);
  // Many keys over many shards.
  std::vector<std::string> store;
  for (int i = 0; i < 1000; ++i) {
    store.push_back("m" + std::to_string(i));
    store.push_back("v" + std::to_string(i));
  }
  std::vector<std::string_view> kvs(store.begin(), store.end());
  ASSERT_TRUE(s_->MultiSet(0, kvs, false, kT0, &written).ok());
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(GetStr(*s_, 0, store[2 * i]), store[2 * i + 1]);
}

TEST_F(StoreTest, MutateReadModifyWrite) {
  auto incr = [](const ItemRef* cur) {
    Mutation m;
    m.kind = Mutation::kWrite;
    m.value = std::to_string((cur ? std::stoll(std::string(cur->value())) : 0) + 1);
    m.expire_at_ms = cur ? cur->expire_at_ms() : 0;
    return m;
  };
  ASSERT_TRUE(s_->Mutate(0, "n", kT0, incr).ok());
  ASSERT_TRUE(s_->Mutate(0, "n", kT0, incr).ok());
  EXPECT_EQ(GetStr(*s_, 0, "n"), "2");
  int calls = 0;
  ASSERT_TRUE(s_->Mutate(0, "n", kT0, [&](const ItemRef* cur) {
                  ++calls;
                  EXPECT_TRUE(cur != nullptr);
                  return Mutation{};
                }).ok());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(GetStr(*s_, 0, "n"), "2");
  ASSERT_TRUE(s_->Mutate(0, "n", kT0, [](const ItemRef*) {
                  Mutation m;
                  m.kind = Mutation::kDelete;
                  return m;
                }).ok());
  EXPECT_FALSE(s_->Exists(0, "n", kT0));
  EXPECT_EQ(s_->DbSize(0), 0u);
  ASSERT_TRUE(s_->Mutate(0, "absent", kT0, [](const ItemRef* cur) {
                  EXPECT_EQ(cur, nullptr);
                  Mutation m;
                  m.kind = Mutation::kDelete;
                  return m;
                }).ok());
  // TTL chosen by the mutation.
  ASSERT_TRUE(s_->Mutate(0, "t", kT0, [](const ItemRef*) {
                  Mutation m;
                  m.kind = Mutation::kWrite;
                  m.value = "x";
                  m.expire_at_ms = kT0 + 500;
                  return m;
                }).ok());
  EXPECT_EQ(s_->Peek(0, "t", kT0).expire_at_ms(), kT0 + 500);
  EXPECT_EQ(s_->GetDbStats(0).expires, 1u);
}

TEST_F(StoreTest, Del) {
  EXPECT_FALSE(s_->Del(0, "k", kT0));
  MustSet(*s_, 0, "k", "v");
  EXPECT_TRUE(s_->Del(0, "k", kT0));
  EXPECT_FALSE(s_->Del(0, "k", kT0));
  EXPECT_FALSE(s_->Exists(0, "k", kT0));
  EXPECT_EQ(s_->DbSize(0), 0u);
}

TEST_F(StoreTest, SetExpireConditions) {
  EXPECT_FALSE(s_->SetExpire(0, "missing", kT0 + 1, ExpireCondition::kAlways, kT0));
  MustSet(*s_, 0, "k", "v");
  EXPECT_FALSE(s_->SetExpire(0, "k", 0, ExpireCondition::kAlways, kT0));  // PERSIST, no TTL
  EXPECT_FALSE(s_->SetExpire(0, "k", kT0 + 100, ExpireCondition::kXX, kT0));
  EXPECT_FALSE(s_->SetExpire(0, "k", kT0 + 100, ExpireCondition::kGT, kT0));  // no TTL = infinite
  EXPECT_TRUE(s_->SetExpire(0, "k", kT0 + 100, ExpireCondition::kNX, kT0));
  EXPECT_EQ(s_->GetDbStats(0).expires, 1u);
  EXPECT_FALSE(s_->SetExpire(0, "k", kT0 + 200, ExpireCondition::kNX, kT0));
  EXPECT_TRUE(s_->SetExpire(0, "k", kT0 + 200, ExpireCondition::kXX, kT0));
  EXPECT_FALSE(s_->SetExpire(0, "k", kT0 + 150, ExpireCondition::kGT, kT0));
  EXPECT_TRUE(s_->SetExpire(0, "k", kT0 + 300, ExpireCondition::kGT, kT0));
  EXPECT_FALSE(s_->SetExpire(0, "k", kT0 + 400, ExpireCondition::kLT, kT0));
  EXPECT_TRUE(s_->SetExpire(0, "k", kT0 + 250, ExpireCondition::kLT, kT0));
  EXPECT_EQ(s_->Peek(0, "k", kT0).expire_at_ms(), kT0 + 250);
  EXPECT_TRUE(s_->SetExpire(0, "k", 0, ExpireCondition::kAlways, kT0));  // PERSIST
  EXPECT_EQ(s_->Peek(0, "k", kT0).expire_at_ms(), 0);
  EXPECT_EQ(s_->GetDbStats(0).expires, 0u);
  EXPECT_TRUE(s_->SetExpire(0, "k", kT0 + 250, ExpireCondition::kLT, kT0));  // LT on no TTL
  // In the past: deletes and returns true.
  EXPECT_TRUE(s_->SetExpire(0, "k", kT0 - 1, ExpireCondition::kAlways, kT0));
  EXPECT_FALSE(s_->Exists(0, "k", kT0));
  EXPECT_EQ(s_->GetDbStats(0).keys, 0u);
  EXPECT_EQ(s_->GetDbStats(0).expires, 0u);
}

TEST_F(StoreTest, RenameKeepsTtlAndValue) {
  EXPECT_EQ(s_->Rename(0, "a", "b", false, kT0).code(), Code::kNotFound);
  EXPECT_EQ(s_->Rename(0, "a", "a", false, kT0).code(), Code::kNotFound);
  MustSet(*s_, 0, "a", "va", kT0, kT0 + 5000);
  MustSet(*s_, 0, "b", "vb");
  EXPECT_TRUE(s_->Rename(0, "a", "a", false, kT0).ok());
  EXPECT_EQ(s_->Rename(0, "a", "a", true, kT0).code(), Code::kAborted);
  EXPECT_EQ(s_->Rename(0, "a", "b", true, kT0).code(), Code::kAborted);
  EXPECT_EQ(GetStr(*s_, 0, "a"), "va");
  ASSERT_TRUE(s_->Rename(0, "a", "b", false, kT0).ok());
  EXPECT_FALSE(s_->Exists(0, "a", kT0));
  ItemRef b = s_->Peek(0, "b", kT0);
  EXPECT_EQ(b.value(), "va");
  EXPECT_EQ(b.expire_at_ms(), kT0 + 5000);
  EXPECT_EQ(s_->GetDbStats(0).keys, 1u);
  EXPECT_EQ(s_->GetDbStats(0).expires, 1u);
  ASSERT_TRUE(s_->Rename(0, "b", "c", true, kT0).ok());
  EXPECT_EQ(GetStr(*s_, 0, "c"), "va");
  // Many renames across shards keep counters exact.
  for (int i = 0; i < 500; ++i) MustSet(*s_, 0, "r" + std::to_string(i), std::to_string(i));
  for (int i = 0; i < 500; ++i)
    ASSERT_TRUE(s_->Rename(0, "r" + std::to_string(i), "s" + std::to_string(i), false, kT0).ok());
  for (int i = 0; i < 500; ++i) ASSERT_EQ(GetStr(*s_, 0, "s" + std::to_string(i)), std::to_string(i));
  EXPECT_EQ(s_->DbSize(0), 501u);
}

}  // namespace
}  // namespace kvpool::storage
