// Active expiry, after Redis's activeExpireCycle: per db, walk the table from
// a cursor that persists across ticks, looking at items with a TTL ("samples")
// and removing the expired ones; keep going while more than 25% of a sample
// had expired and the time budget lasts. Lazy expiry (on access) does the rest.
#include <chrono>
#include <vector>

#include "storage/segment/store_impl.h"

namespace kvpool::storage {

namespace {
constexpr int kSampleKeys = 20;         // TTL keys per sample (Redis: 20)
constexpr uint64_t kSampleBuckets = 400;  // buckets per sample at most
constexpr size_t kPurgePagesPerTick = 1024;  // 64 MiB
}  // namespace

void Store::Impl::ActiveExpire(int64_t now_ms, int64_t budget_us) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::microseconds(budget_us);
  std::vector<Item*> dead;
  for (int n = 0; n < databases; ++n) {
    const int db = (expire_db + n) % databases;
    Index& idx = *dbs[db];
    ExpireCursor& c = expire_cursors[db];
    while (idx.expires() > 0) {
      int sampled = 0, removed = 0;
      uint64_t visited = 0;
      while (sampled < kSampleKeys && visited < kSampleBuckets) {
        Shard& s = idx.shard(c.shard);
        if (s.expires.load(std::memory_order_relaxed) == 0) {
          c.shard = (c.shard + 1) % Index::kShards;
          c.bucket = 0;
          ++visited;
          continue;
        }
        {
          std::lock_guard<FutexMutex> g(s.mu);
          const uint64_t nb = s.nbuckets();
          for (; c.bucket < nb && sampled < kSampleKeys && visited < kSampleBuckets;
               ++c.bucket, ++visited) {
            for (Item** pp = &s.buckets[c.bucket]; *pp != nullptr;) {
              Item* it = *pp;
              const int64_t e = it->expire_at_ms.load(std::memory_order_relaxed);
              if (e == 0) {
                pp = &it->next;
                continue;
              }
              ++sampled;
              if (e <= now_ms) {
                dead.push_back(RemoveLocked(db, idx, s, pp, Removal::kExpired));  // *pp advances
                ++removed;
              } else {
                pp = &it->next;
              }
            }
          }
          if (c.bucket >= nb) {
            c.shard = (c.shard + 1) % Index::kShards;
            c.bucket = 0;
          }
          if (!dead.empty()) idx.MaybeShrink(s);
        }
        for (Item* it : dead) Release(it);
        dead.clear();
      }
      if (sampled == 0 || removed * 4 <= sampled) break;  // mostly live: next db
      if (Clock::now() >= deadline) {
        expire_db = db;
        return;
      }
    }
    if (Clock::now() >= deadline) {
      expire_db = (db + 1) % databases;
      return;
    }
  }
}

void Store::Tick(int64_t now_ms, int64_t budget_us) {
  std::unique_lock<std::mutex> l(impl_->tick_mu, std::try_to_lock);
  if (!l.owns_lock()) return;
  impl_->ActiveExpire(now_ms, budget_us);
  impl_->heap.Purge(kPurgePagesPerTick);
}

}  // namespace kvpool::storage
