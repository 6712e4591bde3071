// Store::Impl: shared by the store's .cc files (store.cc reads and setup,
// store_write.cc writes, keyspace.cc scan/flush/watch/stats, eviction.cc,
// expiry.cc). Not part of the contract.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "storage/segment/hash.h"
#include "storage/segment/index.h"
#include "storage/segment/item.h"
#include "storage/segment/page_heap.h"
#include "storage/segment/slab_allocator.h"
#include "storage/segment/store.h"
#include "storage/segment/watch.h"

namespace kvpool::storage {

struct ItemRefAccess {
  static Item* Get(const ItemRef& r) { return r.item_; }
};

// Why an item leaves the index (decides which counter moves).
enum class Removal { kDeleted, kExpired, kEvicted };

// What eviction may pick, beyond the policy: for allocator failures (the
// region is fragmented), prefer items that free memory of the needed shape.
struct EvictFilter {
  int cls = -1;          // -1: any; else only items of this class
  size_t min_alloc = 0;  // for kLargeClass: only items at least this big
};

// Best eviction candidates seen so far, across calls and threads (Redis's
// eviction pool): sampling a few keys per eviction approximates LRU/TTL much
// better when good candidates from earlier samples are remembered. Entries
// hold a copy of the key (buffers are reused) and are re-validated before
// eviction.
struct EvictionPool {
  static constexpr int kSize = 16;
  struct Entry {
    uint64_t score = 0;  // higher = better victim
    uint64_t check = 0;  // the LRU clock or expiry seen; changed = stale
    int db = 0;
    std::string key;
  };
  std::mutex mu;
  Entry entries[kSize];  // guarded by mu; [0, n) sorted by score, ascending
  int n = 0;             // guarded by mu
};

struct Store::Impl {
  Impl(const StoreOptions& o, Region r);
  ~Impl();

  // Where a key lives.
  struct Loc {
    int db;
    Index* idx;
    Shard* shard;
    uint64_t hash;
  };
  Loc Locate(int db, std::string_view key) {
    uint64_t h = HashKey(key);
    Index* idx = dbs[db].get();
    return {db, idx, &idx->shard(Index::ShardOf(h)), h};
  }

  size_t UsedMemory() const {
    return slabs.used_bytes() + static_cast<size_t>(index_bytes.load(std::memory_order_relaxed));
  }
  uint64_t NextVersion() {
    return ((version.fetch_add(1, std::memory_order_relaxed) + 1) << 8) | version_node;
  }
  // An explicit version given to this store: the clock moves past it.
  uint64_t Observe(uint64_t v) {
    uint64_t count = v >> 8, cur = version.load(std::memory_order_relaxed);
    while (cur < count && !version.compare_exchange_weak(cur, count, std::memory_order_relaxed)) {
    }
    return v;
  }

  // Drops a reference taken by the index or a pin.
  void Release(Item* it) {
    if (it->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) slabs.Free(it, it->cls);
  }
  // Frees an item that was never published.
  void Discard(Item* it) { slabs.Free(it, it->cls); }

  // (locked) Marks the key's watchers dirty if the shard has any.
  void TouchLocked(int db, Shard& s, std::string_view key) {
    if (s.watchers.load(std::memory_order_relaxed) != 0) watches.Touch(db, key);
  }
  // (locked) Unlinks *pos, counts it, touches its watchers; returns the item
  // with the index's reference, to Release after unlocking.
  Item* RemoveLocked(int db, Index& idx, Shard& s, Item** pos, Removal why);

  // Pinned live item or nullptr; removes an expired one it meets.
  Item* Lookup(int db, std::string_view key, int64_t now_ms, bool touch_lru, bool pin);

  // Allocates an item for key/value sizes (header initialized, refs = 1, no
  // bytes copied), evicting first if needed. `extra` = other bytes the write
  // will add (index growth); `credit` = bytes the write will free.
  Status AllocItem(std::string_view key, size_t val_len, size_t extra, size_t credit,
                   int64_t now_ms, Item** out);
  // Evicts until `need` more bytes fit under maxmemory. (eviction.cc)
  Status EnsureMemory(size_t need, int64_t now_ms);
  // Evicts one item per policy and filter; false if none could be found.
  bool EvictOne(int64_t now_ms, const EvictFilter& filter);
  int SampleAndEvict(int64_t now_ms, const EvictFilter& filter, EvictionPolicy pol, bool pooled,
                     int want, uint32_t clock);
  bool EvictFromPool(int64_t now_ms, EvictionPolicy pol, uint32_t clock);
  // Active expiry for about budget_us. (expiry.cc)
  void ActiveExpire(int64_t now_ms, int64_t budget_us);

  const int databases;
  Region region;
  PageHeap heap;
  SlabAllocator slabs;
  int segment_slot = -1;
  std::atomic<int64_t> index_bytes{0};
  std::vector<std::unique_ptr<Index>> dbs;

  std::atomic<size_t> maxmemory;
  std::atomic<int> policy;  // EvictionPolicy
  std::atomic<int> samples;
  std::atomic<uint64_t> version{0};  // the clock's count (NextVersion)
  uint8_t version_node = 0;
  std::atomic<uint64_t> evicted{0};
  Store::EvictionListener on_evict;  // set before the store is shared
  std::atomic<uint64_t> expired{0};
  WatchRegistry watches;
  EvictionPool pool;

  // Active expiry position, per db (Tick's thread only, under tick_mu).
  struct ExpireCursor {
    uint32_t shard = 0;
    uint64_t bucket = 0;
  };
  std::mutex tick_mu;
  std::vector<ExpireCursor> expire_cursors;
  int expire_db = 0;
};

}  // namespace kvpool::storage
