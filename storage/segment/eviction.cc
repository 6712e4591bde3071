// Eviction under maxmemory, approximated as Redis does: sample a few keys
// (consecutive buckets from a random point of a random shard, more shards if
// one has too few), merge them into a pool of the best candidates seen so far,
// and evict the best candidate that is still valid. Only one shard lock is
// held at a time and never a writer's: writers evict before they lock
// anything. Lock order: shard lock, then the pool's mutex.
#include <algorithm>
#include <vector>

#include "storage/segment/store_impl.h"

namespace kvpool::storage {

namespace {

constexpr int kMaxShardsPerSample = 8;
constexpr uint64_t kMaxBucketsPerShard = 1024;

bool VolatileOnly(EvictionPolicy p) {
  return p == EvictionPolicy::kVolatileLru || p == EvictionPolicy::kVolatileTtl;
}

uint64_t Eligible(const Shard& s, bool volatile_only) {
  return (volatile_only ? s.expires : s.size).load(std::memory_order_relaxed);
}

// A db chosen with probability proportional to its eligible keys; -1 if none.
int PickDb(const std::vector<std::unique_ptr<Index>>& dbs, bool volatile_only) {
  uint64_t total = 0;
  for (const auto& d : dbs) total += volatile_only ? d->expires() : d->keys();
  if (total == 0) return -1;
  uint64_t r = RandomU64() % total;
  for (size_t i = 0; i < dbs.size(); ++i) {
    uint64_t n = volatile_only ? dbs[i]->expires() : dbs[i]->keys();
    if (r < n) return static_cast<int>(i);
    r -= n;
  }
  return static_cast<int>(dbs.size()) - 1;  // counters moved meanwhile
}

int PickShard(const Index& idx, bool volatile_only) {
  for (int i = 0; i < 8; ++i) {
    uint32_t si = static_cast<uint32_t>(RandomU64()) & (Index::kShards - 1);
    if (Eligible(idx.shard(si), volatile_only) > 0) return static_cast<int>(si);
  }
  uint32_t start = static_cast<uint32_t>(RandomU64());
  for (uint32_t i = 0; i < Index::kShards; ++i) {
    uint32_t si = (start + i) & (Index::kShards - 1);
    if (Eligible(idx.shard(si), volatile_only) > 0) return static_cast<int>(si);
  }
  return -1;
}

// Score (higher = better victim) and check value (what must not change for a
// pooled candidate to stay valid).
void Score(EvictionPolicy pol, uint32_t clock, const Item* it, uint64_t* score, uint64_t* check) {
  if (pol == EvictionPolicy::kVolatileTtl) {
    auto e = static_cast<uint64_t>(it->expire_at_ms.load(std::memory_order_relaxed));
    *score = ~e;  // sooner expiry scores higher
    *check = e;
  } else if (pol == EvictionPolicy::kAllKeysRandom) {
    *score = 0;
    *check = 0;
  } else {
    *score = LruIdle(clock, it->Lru());
    *check = it->Lru();
  }
}

// Inserts a candidate unless the pool is full of better ones (or has it).
void PoolInsert(EvictionPool& p, uint64_t score, uint64_t check, int db, std::string_view key) {
  std::lock_guard<std::mutex> l(p.mu);
  for (int i = 0; i < p.n; ++i) {
    if (p.entries[i].db == db && p.entries[i].key == key) return;
  }
  int pos = 0;
  while (pos < p.n && p.entries[pos].score < score) ++pos;
  if (p.n == EvictionPool::kSize) {
    if (pos == 0) return;  // worse than everything pooled
    // Drop the worst (index 0) and shift the lower part down by one.
    std::string reuse = std::move(p.entries[0].key);
    for (int i = 0; i < pos - 1; ++i) p.entries[i] = std::move(p.entries[i + 1]);
    --pos;
    p.entries[pos].key = std::move(reuse);
  } else {
    std::string reuse = std::move(p.entries[p.n].key);
    for (int i = p.n; i > pos; --i) p.entries[i] = std::move(p.entries[i - 1]);
    p.entries[pos].key = std::move(reuse);
    ++p.n;
  }
  EvictionPool::Entry& e = p.entries[pos];
  e.score = score;
  e.check = check;
  e.db = db;
  e.key.assign(key);
}

}  // namespace

Status Store::Impl::EnsureMemory(size_t need, int64_t now_ms) {
  const size_t max = maxmemory.load(std::memory_order_relaxed);
  if (max == 0) return Status::OK();  // bounded by the segment only
  if (need > max) return Status::OutOfMemory("value larger than maxmemory");
  while (UsedMemory() + need > max) {
    if (static_cast<EvictionPolicy>(policy.load(std::memory_order_relaxed)) ==
        EvictionPolicy::kNoEviction)
      return Status::OutOfMemory("maxmemory reached (noeviction)");
    if (!EvictOne(now_ms, EvictFilter{}))
      return Status::OutOfMemory("maxmemory reached and nothing is evictable");
  }
  return Status::OK();
}

bool Store::Impl::EvictOne(int64_t now_ms, const EvictFilter& filter) {
  const auto pol = static_cast<EvictionPolicy>(policy.load(std::memory_order_relaxed));
  if (pol == EvictionPolicy::kNoEviction) return false;
  // Random, or a shaped request (a free object of one class): no pool, the
  // first eligible sample is the victim. Otherwise sample `samples` keys.
  const bool pooled = pol != EvictionPolicy::kAllKeysRandom && filter.cls < 0;
  const int want = pooled ? samples.load(std::memory_order_relaxed) : 1;
  const uint32_t clock = LruClock(now_ms);

  // Pooled candidates may all turn out stale (deleted, or used since): then
  // sample again, a few times.
  for (int attempt = 0; attempt < 4; ++attempt) {
    if (int r = SampleAndEvict(now_ms, filter, pol, pooled, want, clock); r >= 0) return r > 0;
    if (EvictFromPool(now_ms, pol, clock)) return true;
  }
  return false;
}

// Samples keys; returns 1 if it removed an item itself (an expired one, or
// the direct victim when not pooled), 0 if it found nothing to remove (not
// pooled), -1 when the candidates went to the pool.
int Store::Impl::SampleAndEvict(int64_t now_ms, const EvictFilter& filter, EvictionPolicy pol,
                                bool pooled, int want, uint32_t clock) {
  const bool volatile_only = VolatileOnly(pol);
  Item* victim = nullptr;  // pinned direct victim (not pooled)
  int victim_db = -1;
  int collected = 0;
  for (int round = 0; round < kMaxShardsPerSample && collected < want; ++round) {
    const int db = PickDb(dbs, volatile_only);
    if (db < 0) break;
    Index& idx = *dbs[db];
    const int si = PickShard(idx, volatile_only);
    if (si < 0) continue;
    Shard& s = idx.shard(si);
    Item* dead = nullptr;
    {
      std::lock_guard<FutexMutex> g(s.mu);
      const uint64_t n = s.nbuckets();
      const uint64_t b = RandomU64() & s.mask;
      for (uint64_t v = 0; v < n && v < kMaxBucketsPerShard && collected < want && !dead; ++v) {
        for (Item** pp = &s.buckets[(b + v) & s.mask]; *pp != nullptr; pp = &(*pp)->next) {
          Item* it = *pp;
          const int64_t exp = it->expire_at_ms.load(std::memory_order_relaxed);
          if (volatile_only && exp == 0) continue;
          if (exp != 0 && exp <= now_ms) {
            // Already expired: the best victim there is.
            dead = RemoveLocked(db, idx, s, pp, Removal::kExpired);
            idx.MaybeShrink(s);
            break;
          }
          if (filter.cls >= 0) {
            if (it->cls != filter.cls) continue;
            if (filter.cls == SlabAllocator::kLargeClass &&
                SlabAllocator::AllocSize(Item::BytesFor(it->key_len, it->val_len)) <
                    filter.min_alloc)
              continue;
          }
          ++collected;
          if (!pooled) {
            it->Pin();
            victim = it;
            victim_db = db;
            break;
          }
          uint64_t score, check;
          Score(pol, clock, it, &score, &check);
          PoolInsert(pool, score, check, db, it->key());
          if (collected >= want) break;
        }
      }
    }
    if (dead != nullptr) {
      Release(dead);
      if (victim != nullptr) Release(victim);
      return 1;
    }
  }

  if (!pooled) {
    if (victim == nullptr) return 0;
    Loc l = Locate(victim_db, victim->key());
    Item* removed = nullptr;
    {
      std::lock_guard<FutexMutex> g(l.shard->mu);
      Item** pos = Index::Find(*l.shard, l.hash, victim->key());
      // Still the sampled item? (Our pin keeps its address from being reused.)
      if (pos != nullptr && *pos == victim) {
        removed = RemoveLocked(victim_db, *l.idx, *l.shard, pos, Removal::kEvicted);
        l.idx->MaybeShrink(*l.shard);
      }
    }
    Release(victim);
    if (removed != nullptr) Release(removed);
    // If it changed meanwhile, another writer made progress; the caller
    // re-checks memory and calls again.
    return 1;
  }
  return -1;
}

bool Store::Impl::EvictFromPool(int64_t now_ms, EvictionPolicy pol, uint32_t clock) {
  const bool volatile_only = VolatileOnly(pol);

  // Evict the best pooled candidate that is still there and unchanged.
  std::string key;
  for (;;) {
    int db;
    uint64_t check;
    {
      std::lock_guard<std::mutex> l(pool.mu);
      if (pool.n == 0) return false;
      EvictionPool::Entry& e = pool.entries[--pool.n];
      key.swap(e.key);  // the entry keeps our old buffer for reuse
      db = e.db;
      check = e.check;
    }
    if (db >= databases) continue;
    Loc l = Locate(db, key);
    Item* removed = nullptr;
    {
      std::lock_guard<FutexMutex> g(l.shard->mu);
      Item** pos = Index::Find(*l.shard, l.hash, key);
      if (pos != nullptr) {
        uint64_t score, now_check;
        Score(pol, clock, *pos, &score, &now_check);
        const bool eligible =
            !volatile_only || (*pos)->expire_at_ms.load(std::memory_order_relaxed) != 0;
        if (eligible && now_check == check) {
          removed = RemoveLocked(db, *l.idx, *l.shard, pos,
                                 (*pos)->ExpiredAt(now_ms) ? Removal::kExpired : Removal::kEvicted);
          l.idx->MaybeShrink(*l.shard);
        }
      }
    }
    if (removed != nullptr) {
      Release(removed);
      return true;
    }
  }
}

}  // namespace kvpool::storage
