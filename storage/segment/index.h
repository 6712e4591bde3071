// Index: one database's hash table, split into kShards shards.
//
// A key's 64-bit hash picks its shard with the top kShardBits bits and its
// bucket with the low bits. Each shard is a lock plus a chained table: a
// power-of-two array of Item* (malloc'd, counted in `mem`), chains through
// Item::next. A shard doubles when it holds more items than buckets, rehashing
// the whole shard under its lock (a shard is 1/256 of a db, so this is short),
// and shrinks when under 1/8 full after removals.
//
// Counters: per shard (read racily to choose shards to sample) and per db
// (exact, for DBSIZE). "expires" counts items with expire_at_ms != 0.
// Expired-but-not-yet-removed items are still counted, as in Redis.
//
// Locking: methods marked "locked" require the caller to hold shard.mu.
// Multi-shard callers lock shards in ascending index order.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "storage/segment/item.h"
#include "storage/segment/lock.h"

namespace kvpool::storage {

struct alignas(64) Shard {
  FutexMutex mu;
  Item** buckets = nullptr;  // guarded by mu; nullptr when the shard is empty
  uint64_t mask = 0;         // guarded by mu; bucket count - 1
  // Written under mu, readable without it.
  std::atomic<uint64_t> size{0};
  std::atomic<uint64_t> expires{0};
  // Watches registered on keys of this shard; writers look here (one relaxed
  // load) before touching the watch registry. Written under mu.
  std::atomic<uint32_t> watchers{0};
  // Bucket count, readable without mu (memory estimates before a write).
  std::atomic<uint64_t> capacity{0};

  uint64_t nbuckets() const { return buckets == nullptr ? 0 : mask + 1; }
};

// A set of shard numbers, iterated in ascending order: the lock order of
// multi-key operations.
struct ShardSet {
  uint64_t bits[4] = {0, 0, 0, 0};
  void Add(uint32_t si) { bits[si >> 6] |= uint64_t{1} << (si & 63); }
  template <typename F>
  void ForEach(F&& f) const {
    for (uint32_t w = 0; w < 4; ++w) {
      for (uint64_t b = bits[w]; b != 0; b &= b - 1) f(w * 64 + static_cast<uint32_t>(__builtin_ctzll(b)));
    }
  }
};

class Index {
 public:
  static constexpr int kShardBits = 8;
  static constexpr uint32_t kShards = 1u << kShardBits;
  static_assert(kShards == 256, "ShardSet holds 256 shards");
  static constexpr uint64_t kMinBuckets = 4;

  // `mem` accumulates the bytes of bucket arrays (shared by all dbs).
  explicit Index(std::atomic<int64_t>* mem) : mem_(mem) {}
  // Frees the bucket arrays; the owner must have released the items.
  ~Index();
  Index(const Index&) = delete;
  Index& operator=(const Index&) = delete;

  static uint32_t ShardOf(uint64_t hash) { return static_cast<uint32_t>(hash >> (64 - kShardBits)); }
  Shard& shard(uint32_t i) { return shards_[i]; }
  const Shard& shard(uint32_t i) const { return shards_[i]; }

  uint64_t keys() const { return keys_.load(std::memory_order_relaxed); }
  uint64_t expires() const { return expires_.load(std::memory_order_relaxed); }

  // (locked) The link that points at the item with `key`, or nullptr.
  static Item** Find(const Shard& s, uint64_t hash, std::string_view key);
  // (locked) Prefetch hints for a later Find of `hash`: first the bucket
  // slot, then (once that has arrived) the chain's first item. Batched
  // lookups issue these for all keys first, so cache misses overlap.
  static void PrefetchBucket(const Shard& s, uint64_t hash) {
    if (s.buckets != nullptr) __builtin_prefetch(&s.buckets[hash & s.mask]);
  }
  static void PrefetchHead(const Shard& s, uint64_t hash) {
    if (s.buckets != nullptr) __builtin_prefetch(s.buckets[hash & s.mask]);
  }
  // (the shards of all `hashes` locked) Both hints for every hash: all the
  // buckets, then all the chains' first items.
  void PrefetchAll(std::span<const uint64_t> hashes) const {
    for (uint64_t h : hashes) PrefetchBucket(shard(ShardOf(h)), h);
    for (uint64_t h : hashes) PrefetchHead(shard(ShardOf(h)), h);
  }
  // (locked) Links a new item whose key is absent. May grow the table, which
  // invalidates links returned by Find.
  void Insert(Shard& s, uint64_t hash, Item* item);
  // (locked) Puts `item` in place of *pos (same key); returns the old item,
  // whose index reference passes to the caller.
  Item* Replace(Shard& s, Item** pos, Item* item);
  // (locked) Unlinks *pos; returns it with the index's reference.
  Item* Unlink(Shard& s, Item** pos);
  // (locked) Changes a linked item's expiry, keeping the counters.
  void SetExpire(Shard& s, Item* item, int64_t expire_at_ms);
  // (locked) Shrinks a sparse table. Invalidates links.
  void MaybeShrink(Shard& s);
  // (locked) Bytes the table would grow by if one more key were inserted.
  static uint64_t GrowthBytesIfInsert(const Shard& s);
  // (locked) Detaches the whole table: returns the bucket array (to be walked,
  // its items released, then freed with FreeBuckets) and its bucket count.
  Item** Detach(Shard& s, uint64_t* nbuckets);
  void FreeBuckets(Item** buckets, uint64_t nbuckets);

  // Reverse-binary cursor step (Redis dictScan): the next bucket cursor after
  // v in a table of mask+1 buckets, 0 when the table has been covered. Keys
  // present throughout are visited at least once even if the table is resized
  // between steps.
  static uint64_t NextCursor(uint64_t v, uint64_t mask);

 private:
  void Resize(Shard& s, uint64_t nbuckets);
  void CountAdd(Shard& s, int64_t keys, int64_t expires);

  std::atomic<int64_t>* const mem_;
  Shard shards_[kShards];
  std::atomic<uint64_t> keys_{0};
  std::atomic<uint64_t> expires_{0};
};

}  // namespace kvpool::storage
