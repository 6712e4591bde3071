// Store under concurrency (also the binary to run under -fsanitize=thread).
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "storage/segment/store.h"
#include "storage/segment/store_test_util.h"

namespace kvpool::storage {
namespace {

Mutation Increment(const ItemRef* cur) {
  Mutation m;
  m.kind = Mutation::kWrite;
  m.value = std::to_string((cur ? std::stoll(std::string(cur->value())) : 0) + 1);
  m.expire_at_ms = cur ? cur->expire_at_ms() : 0;
  return m;
}

TEST(StoreConcurrencyTest, MutateIncrementsAreExact) {
  auto s = OpenStore();
  constexpr int kThreads = 4, kIncrements = 10000;
  std::atomic<int> retries{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        int calls = 0;
        ASSERT_TRUE(s->Mutate(0, "counter", kT0, [&](const ItemRef* cur) {
                        ++calls;
                        return Increment(cur);
                      }).ok());
        retries += calls - 1;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(GetStr(*s, 0, "counter"), std::to_string(kThreads * kIncrements));
  EXPECT_EQ(s->DbSize(0), 1u);
  // Whatever the retries, no memory is left behind.
  s->FlushAll();
  EXPECT_EQ(s->GetStats().used_memory, 0u);
}

TEST(StoreConcurrencyTest, ReadersSeeWholeValuesAndPinsStayValid) {
  auto s = OpenStore();
  std::atomic<bool> stop{false};
  // Each value is one repeated letter; a torn or reused value would mix.
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) {
      char c = static_cast<char>('a' + i % 26);
      MustSet(*s, 0, "k" + std::to_string(i % 16), std::string(100 + i % 3000, c));
      if (i % 7 == 0) s->Del(0, "k" + std::to_string((i / 7) % 16), kT0);
    }
  });
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&, r] {
      for (int i = 0; i < 20000; ++i) {
        ItemRef ref;
        if (r == 0) ref = s->Get(0, "k" + std::to_string(i % 16), kT0);
        else ref = std::move(s->MultiGet(0, {"k1", "k2", "k3"}, kT0)[i % 3]);
        if (!ref) continue;
        std::string_view v = ref.value();
        if (i % 64 == 0) std::this_thread::yield();  // let the writer overwrite meanwhile
        ASSERT_EQ(v.find_first_not_of(v[0]), std::string_view::npos);
      }
    });
  }
  for (auto& t : readers) t.join();
  stop = true;
  writer.join();
}

TEST(StoreConcurrencyTest, MultiSetIsAtomicForMultiGet) {
  auto s = OpenStore();
  std::vector<std::string> keys;
  for (int i = 0; i < 64; ++i) keys.push_back("m" + std::to_string(i));
  std::vector<std::string_view> kv(keys.begin(), keys.end());
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int gen = 0; !stop; ++gen) {
      std::string val = std::to_string(gen);
      std::vector<std::string_view> kvs;
      for (auto& k : keys) {
        kvs.push_back(k);
        kvs.push_back(val);
      }
      ASSERT_TRUE(s->MultiSet(0, kvs, false, kT0, nullptr).ok());
    }
  });
  for (int i = 0; i < 3000; ++i) {
    auto refs = s->MultiGet(0, kv, kT0);
    if (!refs[0]) continue;
    for (auto& r : refs) ASSERT_EQ(r.value(), refs[0].value()) << "torn MultiSet";
  }
  stop = true;
  writer.join();
}

TEST(StoreConcurrencyTest, MsetnxRacesHaveOneWinner) {
  for (int round = 0; round < 50; ++round) {
    auto s = OpenStore();
    std::atomic<int> winners{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
      ts.emplace_back([&, t] {
        bool w = false;
        std::string v = std::to_string(t);
        ASSERT_TRUE(s->MultiSet(0, {"a", v, "b", v, "c", v}, true, kT0, &w).ok());
        winners += w;
      });
    }
    for (auto& t : ts) t.join();
    ASSERT_EQ(winners, 1);
    std::string a = GetStr(*s, 0, "a");
    ASSERT_EQ(GetStr(*s, 0, "b"), a);
    ASSERT_EQ(GetStr(*s, 0, "c"), a);
  }
}

TEST(StoreConcurrencyTest, MixedWorkloadWithEvictionExpiryAndTick) {
  StoreOptions o;
  o.maxmemory = 2 << 20;
  o.policy = EvictionPolicy::kAllKeysLru;
  auto s = OpenStore(o);
  std::atomic<bool> stop{false};
  std::atomic<int64_t> now{kT0};
  std::thread ticker([&] {
    while (!stop) {
      now += 10;
      s->Tick(now, 1000);
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      auto token = std::make_shared<WatchToken>();
      for (int i = 0; i < 20000; ++i) {
        std::string k = "k" + std::to_string((i * 7 + t) % 3000);
        const int64_t n = now;
        switch (i % 8) {
          case 0: case 1: case 2: {
            SetOptions so;
            if (i % 3 == 0) so.expire_at_ms = n + 50;
            ASSERT_TRUE(s->Set(t % 2, k, std::string(100 + i % 1500, 'x'), so, n, nullptr).ok());
            break;
          }
          case 3: s->Get(t % 2, k, n); break;
          case 4: s->Del(t % 2, k, n); break;
          case 5: s->SetExpire(t % 2, k, n + 20, ExpireCondition::kAlways, n); break;
          case 6: {
            Status st = s->Rename(t % 2, k, k + "r", false, n);
            ASSERT_TRUE(st.ok() || st.code() == Code::kNotFound) << st.ToString();
            break;
          }
          case 7:
            s->Watch(t % 2, k, token);
            if (i % 64 == 7) s->Unwatch(token);
            s->MultiGet(t % 2, {k, "k1", "k2"}, n);
            break;
        }
      }
      s->Unwatch(token);
    });
  }
  for (auto& t : ts) t.join();
  stop = true;
  ticker.join();
  // Counters match the contents.
  for (int db = 0; db < 2; ++db) {
    uint64_t n = 0, cursor = 0;
    do {
      ScanResult r = s->Scan(db, cursor, 1000, nullptr, 0);  // now=0: nothing expired
      n += r.keys.size();
      cursor = r.next_cursor;
    } while (cursor != 0);
    EXPECT_EQ(n, s->DbSize(db));
  }
  EXPECT_LE(s->GetStats().used_memory, (2u << 20) + (64u << 10));
  s->FlushAll();
  EXPECT_EQ(s->GetStats().used_memory, 0u);
}

}  // namespace
}  // namespace kvpool::storage
