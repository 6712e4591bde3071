// Store: keyspace-wide operations (counts, SCAN, RANDOMKEY, FLUSH), WATCH,
// runtime configuration and statistics.
#include <algorithm>
#include <cstdint>

#include "storage/segment/store_impl.h"

namespace kvpool::storage {

uint64_t Store::DbSize(int db) const { return impl_->dbs[db]->keys(); }

DbStats Store::GetDbStats(int db) const {
  const Index& idx = *impl_->dbs[db];
  return DbStats{idx.keys(), idx.expires()};
}

ScanResult Store::Scan(int db, uint64_t cursor, size_t count,
                       const std::function<bool(std::string_view)>& match, int64_t now_ms) {
  ScanResult r;
  if (count == 0) count = 10;
  Index& idx = *impl_->dbs[db];
  uint32_t si = static_cast<uint32_t>(cursor & (Index::kShards - 1));
  uint64_t v = cursor >> Index::kShardBits;
  const size_t max_visits = count > SIZE_MAX / 10 ? SIZE_MAX : count * 10;
  size_t visits = 0;
  for (;;) {
    Shard& s = idx.shard(si);
    if (s.size.load(std::memory_order_relaxed) == 0) {
      // Empty shard (a key present for the whole scan would make it
      // non-empty): skip it without a lock or a visit.
      v = 0;
    } else {
      std::lock_guard<FutexMutex> g(s.mu);
      if (s.buckets == nullptr) {
        v = 0;
      } else {
        do {
          for (Item* it = s.buckets[v & s.mask]; it != nullptr; it = it->next) {
            if (!it->ExpiredAt(now_ms)) r.keys.emplace_back(it->key());
          }
          v = Index::NextCursor(v, s.mask);
          ++visits;
        } while (v != 0 && visits < max_visits && r.keys.size() < count);
      }
    }
    if (v == 0 && ++si == Index::kShards) {
      r.next_cursor = 0;
      break;
    }
    if (visits >= max_visits || r.keys.size() >= count) {
      r.next_cursor = (v << Index::kShardBits) | si;
      break;
    }
  }
  if (match) {
    r.keys.erase(std::remove_if(r.keys.begin(), r.keys.end(),
                                [&](const std::string& k) { return !match(k); }),
                 r.keys.end());
  }
  return r;
}

bool Store::RandomKey(int db, int64_t now_ms, std::string* key) {
  Impl& im = *impl_;
  Index& idx = *im.dbs[db];
  for (int attempt = 0; attempt < 128; ++attempt) {
    if (idx.keys() == 0) return false;
    // A random non-empty shard, a random non-empty bucket, a random chain
    // item: retries at random first (close to uniform), then probes linearly
    // (sparse tables).
    uint32_t si = static_cast<uint32_t>(RandomU64()) & (Index::kShards - 1);
    for (int t = 0; t < 32 && idx.shard(si).size.load(std::memory_order_relaxed) == 0; ++t)
      si = static_cast<uint32_t>(RandomU64()) & (Index::kShards - 1);
    for (uint32_t i = 0; i < Index::kShards && idx.shard(si).size.load() == 0; ++i)
      si = (si + 1) & (Index::kShards - 1);
    Shard& s = idx.shard(si);
    Item* dead = nullptr;
    {
      std::lock_guard<FutexMutex> g(s.mu);
      const uint64_t n = s.nbuckets();
      uint64_t b = RandomU64() & s.mask;
      for (int t = 0; t < 32 && n > 0 && s.buckets[b] == nullptr; ++t) b = RandomU64() & s.mask;
      Item** head = nullptr;
      for (uint64_t i = 0; i < n; ++i, b = (b + 1) & s.mask) {
        if (s.buckets[b] != nullptr) {
          head = &s.buckets[b];
          break;
        }
      }
      if (head == nullptr) continue;
      size_t len = 0;
      for (Item* it = *head; it != nullptr; it = it->next) ++len;
      Item** pos = head;
      for (size_t k = RandomU64() % len; k > 0; --k) pos = &(*pos)->next;
      if ((*pos)->ExpiredAt(now_ms)) {
        dead = im.RemoveLocked(db, idx, s, pos, Removal::kExpired);
        idx.MaybeShrink(s);
      } else {
        key->assign((*pos)->key());
        return true;
      }
    }
    if (dead != nullptr) im.Release(dead);
  }
  // Mostly expired keys met: walk the shards in order, removing expired items.
  std::vector<Item*> dead;
  bool found = false;
  for (uint32_t si = 0; si < Index::kShards && !found; ++si) {
    Shard& s = idx.shard(si);
    {
      std::lock_guard<FutexMutex> g(s.mu);
      for (uint64_t b = 0; b < s.nbuckets() && !found; ++b) {
        for (Item** pp = &s.buckets[b]; *pp != nullptr;) {
          if ((*pp)->ExpiredAt(now_ms)) {
            dead.push_back(im.RemoveLocked(db, idx, s, pp, Removal::kExpired));
          } else {
            key->assign((*pp)->key());
            found = true;
            break;
          }
        }
      }
      if (!dead.empty()) idx.MaybeShrink(s);
    }
    for (Item* it : dead) im.Release(it);
    dead.clear();
  }
  return found;
}

void Store::FlushDb(int db) {
  Impl& im = *impl_;
  Index& idx = *im.dbs[db];
  for (uint32_t si = 0; si < Index::kShards; ++si) {
    Shard& s = idx.shard(si);
    uint64_t n;
    Item** buckets;
    {
      std::lock_guard<FutexMutex> g(s.mu);
      if (s.buckets == nullptr) continue;
      buckets = idx.Detach(s, &n);
    }
    for (uint64_t b = 0; b < n; ++b) {
      for (Item* it = buckets[b]; it != nullptr;) {
        Item* next = it->next;
        im.Release(it);
        it = next;
      }
    }
    idx.FreeBuckets(buckets, n);
  }
  im.watches.TouchDb(db);
}

void Store::FlushAll() {
  for (int db = 0; db < impl_->databases; ++db) FlushDb(db);
}

void Store::Watch(int db, std::string_view key, std::shared_ptr<WatchToken> token) {
  Impl& im = *impl_;
  Impl::Loc l = im.Locate(db, key);
  // Count the watcher first, under the shard lock: any write ordered after
  // this point sees it and goes to the registry (which, by then, has the
  // token unless the write is ordered before Watch returns).
  {
    std::lock_guard<FutexMutex> g(l.shard->mu);
    l.shard->watchers.fetch_add(1, std::memory_order_relaxed);
  }
  if (!im.watches.Add(db, key, std::move(token))) {
    std::lock_guard<FutexMutex> g(l.shard->mu);
    l.shard->watchers.fetch_sub(1, std::memory_order_relaxed);
  }
}

void Store::Unwatch(const std::shared_ptr<WatchToken>& token) {
  Impl& im = *impl_;
  for (const auto& [db, key] : im.watches.Remove(token.get())) {
    Impl::Loc l = im.Locate(db, key);
    std::lock_guard<FutexMutex> g(l.shard->mu);
    l.shard->watchers.fetch_sub(1, std::memory_order_relaxed);
  }
}

void Store::SetMaxMemory(size_t bytes) { impl_->maxmemory.store(bytes); }
void Store::SetPolicy(EvictionPolicy p) { impl_->policy.store(static_cast<int>(p)); }
void Store::SetMaxMemorySamples(int n) { impl_->samples.store(std::clamp(n, 1, 64)); }
void Store::SetEvictionListener(EvictionListener listener) { impl_->on_evict = std::move(listener); }

StoreStats Store::GetStats() const {
  const Impl& im = *impl_;
  StoreStats st;
  st.used_memory = im.UsedMemory();
  st.items_bytes = im.slabs.used_bytes();
  st.index_bytes = static_cast<uint64_t>(im.index_bytes.load(std::memory_order_relaxed));
  st.maxmemory = im.maxmemory.load();
  st.segment_bytes = im.region.size();
  st.segment_used = im.heap.used_pages() << PageHeap::kPageShift;
  st.evicted_keys = im.evicted.load();
  st.expired_keys = im.expired.load();
  for (const auto& idx : im.dbs) st.keys += idx->keys();
  return st;
}

void Store::ResetStats() {
  impl_->evicted.store(0);
  impl_->expired.store(0);
}

}  // namespace kvpool::storage
