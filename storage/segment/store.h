// Store: this node's keyspace. Values live in one Segment (a region reserved
// once at start and carved by a size-class allocator, so a transport can
// register it once); a sharded concurrent hash index maps (db, key) to items.
//
// Threading: every method may be called from any thread concurrently, unless
// stated otherwise. Each key's writes are linearizable. Multi-key calls
// (MultiGet, MultiSet, Rename) are atomic: no reader sees half of them.
//
// Time: callers pass now_ms (milliseconds since the Unix epoch) so tests can
// control time; an item with expire_at_ms != 0 and expire_at_ms <= now_ms is
// absent for every read and is removed lazily (on access) or actively (Tick).
// The LRU clock (24 bits, seconds) is derived from the now_ms of each access.
//
// Lifetime: every ItemRef must be released before the Store is destroyed.
// See storage/segment/README.md for the layout (item header, size classes,
// shards, SCAN cursor).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storage/util/status.h"

namespace kvpool::storage {

enum class EvictionPolicy { kNoEviction, kAllKeysLru, kVolatileLru, kAllKeysRandom, kVolatileTtl };

// Names as in Redis's maxmemory-policy; false if unknown.
bool ParseEvictionPolicy(std::string_view name, EvictionPolicy* out);
const char* EvictionPolicyName(EvictionPolicy p);

struct StoreOptions {
  // Bound on used memory (items as allocated + index). Writes that would
  // exceed it evict per `policy`, or fail with kOutOfMemory. 0 = no bound but
  // the segment itself (as Redis's maxmemory 0); then segment_bytes is required.
  size_t maxmemory = 256ull << 20;
  EvictionPolicy policy = EvictionPolicy::kAllKeysLru;
  int maxmemory_samples = 5;
  int databases = 16;
  // Size of the reserved region. 0 = derived from maxmemory (maxmemory plus
  // room for allocator fragmentation: max(64 MiB, maxmemory/8)). Pages are
  // touched lazily.
  size_t segment_bytes = 0;
  // Give freed pages back to the kernel (madvise MADV_DONTNEED) so RSS drops
  // after deletes. Must be false if the segment is registered for RDMA
  // without on-demand paging (the NIC would keep the old physical pages).
  bool release_free_pages = true;
  // Written into the low 8 bits of every version this store stamps, so the
  // versions of different nodes never collide (a pool's node index).
  uint8_t version_node = 0;
};

struct Item;  // opaque; lives in the segment

// A pinned item: while an ItemRef lives, its key, value and version do not
// change and its memory is not reused, even if the key is overwritten,
// deleted, expired or evicted meanwhile. Move-only. Cheap (one pointer).
class ItemRef {
 public:
  ItemRef() = default;
  explicit ItemRef(Item* item) : item_(item) {}  // adopts one pin
  ItemRef(ItemRef&& o) noexcept : item_(o.item_) { o.item_ = nullptr; }
  ItemRef& operator=(ItemRef&& o) noexcept;
  ItemRef(const ItemRef&) = delete;
  ItemRef& operator=(const ItemRef&) = delete;
  ~ItemRef() { Reset(); }

  explicit operator bool() const { return item_ != nullptr; }
  std::string_view key() const;
  std::string_view value() const;
  int64_t expire_at_ms() const;  // 0 = no expiry
  // A Lamport clock: (count << 8) | StoreOptions::version_node, where count
  // is past every count this store has stamped or been given (an explicit
  // version in SetOptions, PendingItem or Publish). Unique per write of this
  // node; a write stamped here is newer than every version the store holds.
  uint64_t version() const;
  size_t alloc_size() const;     // bytes this item takes in the segment

  // Another pin of the same item.
  ItemRef Clone() const;
  // Gives up ownership of the pin as an opaque token, for C callbacks such as
  // evbuffer_add_reference's cleanup; ReleasePin(token) drops it.
  void* ReleaseToToken();
  static void ReleasePin(void* token);

  void Reset();

 private:
  friend struct ItemRefAccess;  // the Store reads the pinned Item*
  Item* item_ = nullptr;
};

// Space for one value, taken from the segment but not yet visible to any
// reader (two-phase put: Store::Prepare, fill value_data() — e.g. by an
// RDMA READ straight into it — then Store::Publish). Move-only; destroying
// it unpublished gives the space back.
class PendingItem {
 public:
  PendingItem() = default;
  PendingItem(PendingItem&& o) noexcept : item_(o.item_) { o.item_ = nullptr; }
  PendingItem& operator=(PendingItem&& o) noexcept;
  PendingItem(const PendingItem&) = delete;
  PendingItem& operator=(const PendingItem&) = delete;
  ~PendingItem();

  explicit operator bool() const { return item_ != nullptr; }
  char* value_data();
  size_t value_size() const;
  std::string_view key() const;
  // Published with this version (0: a fresh one stamped at Publish) and
  // expiry (0: none).
  void set_version(uint64_t version);
  void set_expire_at_ms(int64_t ms);

 private:
  friend class Store;
  explicit PendingItem(Item* item) : item_(item) {}
  Item* item_ = nullptr;
};

enum class SetCondition { kAlways, kIfAbsent /*NX*/, kIfPresent /*XX*/ };

struct SetOptions {
  SetCondition cond = SetCondition::kAlways;
  int64_t expire_at_ms = 0;  // 0 = no expiry (unless keep_ttl)
  bool keep_ttl = false;     // keep the old item's expiry (KEEPTTL)
  bool want_old = false;     // fill SetResult::old with the previous value (GET)
  uint64_t version = 0;      // 0 = stamp a fresh one; else this one (a copy's)
};

struct SetResult {
  bool written = false;  // false when NX/XX prevented the write
  ItemRef old;           // previous live item, if want_old and it existed
};

// What a read-modify-write callback decides, given the current item.
struct Mutation {
  enum Kind { kKeep, kDelete, kWrite } kind = kKeep;
  // kWrite: the new value (copied into the segment) and its expiry.
  std::string value;
  int64_t expire_at_ms = 0;
};

// Relative to a key's current expiry, as Redis's EXPIRE NX|XX|GT|LT.
enum class ExpireCondition { kAlways, kNX, kXX, kGT, kLT };

struct ScanResult {
  uint64_t next_cursor = 0;  // 0 when the scan is complete
  std::vector<std::string> keys;
};

struct DbStats {
  uint64_t keys = 0;
  uint64_t expires = 0;  // keys with a TTL
};

struct StoreStats {
  uint64_t used_memory = 0;      // items as allocated + index, bytes (what maxmemory bounds)
  uint64_t items_bytes = 0;      // items as allocated (in the segment)
  uint64_t index_bytes = 0;      // the databases' hash tables (on the heap)
  uint64_t maxmemory = 0;
  uint64_t segment_bytes = 0;    // reserved region size
  uint64_t segment_used = 0;     // bytes of the region handed out to slabs/spans
  uint64_t evicted_keys = 0;
  uint64_t expired_keys = 0;
  uint64_t keys = 0;             // all databases
};

// A watcher (MULTI/WATCH): Touch() sets `dirty` for every watcher of a key
// when the key is written, deleted, expired, evicted or flushed.
struct WatchToken {
  std::atomic<bool> dirty{false};
};

// Store::Publish's options. if_not_older: an item with an explicit version
// replaces the current value only if that value's version is not newer
// (else it is dropped). *applied (if set) counts the items that were
// published. *current (if set) gets, aligned with the items as given, a pin
// of each key's live item once published: the item itself, or the newer one
// that made it drop (what a read right after would see, without looking the
// keys up again).
struct PublishOptions {
  bool if_not_older = false;
  size_t* applied = nullptr;
  std::vector<ItemRef>* current = nullptr;
};

class Store {
 public:
  // Reserves the segment and builds empty databases. kInvalidArgument for
  // bad options, kOutOfMemory if the region cannot be mapped, kInternal if
  // more than 64 stores are open in the process.
  static StatusOr<std::unique_ptr<Store>> Open(const StoreOptions& options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  int databases() const;

  // ---- reads (db must be in [0, databases())) ----
  // Pinned live item, or empty if absent or expired. Updates LRU.
  ItemRef Get(int db, std::string_view key, int64_t now_ms);
  // Same without touching LRU (MEXISTS, TTL, TYPE: no effect on eviction).
  ItemRef Peek(int db, std::string_view key, int64_t now_ms);
  bool Exists(int db, std::string_view key, int64_t now_ms);
  // One pin per key, aligned with `keys` (empty where absent), taken
  // atomically with respect to MultiSet.
  std::vector<ItemRef> MultiGet(int db, const std::vector<std::string_view>& keys, int64_t now_ms);
  // 1 where the key is live, 0 where absent or expired, aligned with `keys`;
  // no pin, no effect on LRU or TTL (MEXISTS). One lock per shard touched.
  std::vector<uint8_t> MultiExists(int db, const std::vector<std::string_view>& keys,
                                   int64_t now_ms);

  // Cache hints only, no effect on data: brings the index buckets and the
  // first item of each key's chain into the cache, so the lookups of a
  // pipeline's next commands overlap their misses instead of paying them
  // one after another. At most kMaxPrefetch keys are taken.
  static constexpr size_t kMaxPrefetch = 64;
  void Prefetch(int db, std::span<const std::string_view> keys);

  // ---- writes ----
  // kOutOfMemory if the value cannot be placed within maxmemory;
  // kInvalidArgument if the key or the value is 4 GiB or longer.
  Status Set(int db, std::string_view key, std::string_view value, const SetOptions& opts,
             int64_t now_ms, SetResult* result);
  // Sets every pair atomically. `if_none_exist` (MSETNX): writes nothing and
  // sets *written=false if any key exists. `kvs` = k1, v1, k2, v2, ...
  Status MultiSet(int db, const std::vector<std::string_view>& kvs, bool if_none_exist,
                  int64_t now_ms, bool* written);
  // Two-phase put. Prepare takes space for `key` with a value of
  // `value_len` bytes (evicting as Set does; kOutOfMemory, or
  // kInvalidArgument past 4 GiB). Publish makes every prepared item visible
  // at once in `db`, replacing current values, with no expiry (as MultiSet
  // does); it consumes the items (the vector is left empty).
  StatusOr<PendingItem> Prepare(std::string_view key, size_t value_len, int64_t now_ms);
  Status Publish(int db, std::vector<PendingItem>* items, int64_t now_ms,
                 const PublishOptions& opts = {});
  // Sets StoreOptions::version_node, before the store is shared (a pool
  // learns its node index after the store is open).
  void SetVersionNode(uint8_t node);
  // A fresh version from this store's clock (for a write ordered here and
  // sent on to other copies with it).
  uint64_t NewVersion();
  // Moves this store's clock past `version`'s count (as an explicit version
  // given to a write does): every version stamped here afterwards is newer.
  void AdvanceClock(uint64_t version);
  // Deletes the key if its live value is older than `version` (a delete
  // ordered elsewhere, arriving after the value it removes or not); true if
  // it deleted.
  bool DelIfOlder(int db, std::string_view key, uint64_t version, int64_t now_ms);
  // Read-modify-write, atomic for this key: `fn` sees the live item (or
  // nullptr) and decides; it may run more than once if the key changes
  // concurrently, and must not call back into the Store. Returns
  // kOutOfMemory if a kWrite could not be placed; any other outcome (e.g. "not
  // an integer") is for fn to record in what it captures.
  using MutateFn = std::function<Mutation(const ItemRef* current)>;
  Status Mutate(int db, std::string_view key, int64_t now_ms, const MutateFn& fn);
  // true if the key existed (and was live) and is now gone.
  bool Del(int db, std::string_view key, int64_t now_ms);
  // Sets/clears expiry on a live key. expire_at_ms 0 = PERSIST. Returns true
  // if the key exists and the condition held (and so the TTL changed). An
  // expire_at_ms <= now_ms deletes the key (as Redis does) and returns true.
  bool SetExpire(int db, std::string_view key, int64_t expire_at_ms, ExpireCondition cond,
                 int64_t now_ms);
  // RENAME/RENAMENX within one db, keeping TTL. kNotFound if src is absent;
  // kAborted if nx and dst exists. src == dst changes nothing: OK, or
  // kAborted with nx (as Redis's RENAMENX k k answers 0). kOutOfMemory if the
  // renamed item (the key is stored in it) cannot be placed.
  Status Rename(int db, std::string_view src, std::string_view dst, bool nx, int64_t now_ms);

  // ---- keyspace ----
  uint64_t DbSize(int db) const;
  DbStats GetDbStats(int db) const;
  // Redis SCAN semantics: every key present for the whole scan is returned at
  // least once; `count` is a hint of how many slots to visit. `match`, if set,
  // filters keys (glob); expired keys are skipped. `match` runs with no lock
  // held. Cursor: low 8 bits = shard, the rest = Redis's reverse-binary
  // bucket cursor within that shard; 0 starts and ends a scan.
  ScanResult Scan(int db, uint64_t cursor, size_t count,
                  const std::function<bool(std::string_view)>& match, int64_t now_ms);
  // A random live key, or false if the db is empty.
  bool RandomKey(int db, int64_t now_ms, std::string* key);
  void FlushDb(int db);
  void FlushAll();

  // ---- transactions ----
  void Watch(int db, std::string_view key, std::shared_ptr<WatchToken> token);
  // Forgets every watch registered with `token`.
  void Unwatch(const std::shared_ptr<WatchToken>& token);

  // ---- housekeeping ----
  // Runs active expiry (Redis activeExpireCycle-like: samples keys with a TTL,
  // removes the expired, goes on while more than 25% of a sample had expired)
  // for up to about `budget_us`, then gives free pages back to the kernel.
  // Called periodically (hz) from one thread; a concurrent call returns at once.
  void Tick(int64_t now_ms, int64_t budget_us);
  // maxmemory and policy may change at run time (CONFIG SET). Lowering
  // maxmemory evicts on the next writes. Samples are clamped to [1, 64].
  void SetMaxMemory(size_t bytes);
  // The largest maxmemory the reserved segment can honour: one whose own
  // segment (maxmemory plus the fragmentation room Open adds) fits in it.
  // Past it, writes would fail for want of pages before maxmemory evicts.
  size_t MaxMemoryLimit() const;
  void SetPolicy(EvictionPolicy p);
  void SetMaxMemorySamples(int n);
  // Called for every key evicted under maxmemory (not expired, not
  // deleted), with its value, under the key's shard lock: it must be quick
  // and must not call into the store. Set before the store is shared.
  using EvictionListener =
      std::function<void(int db, std::string_view key, std::string_view value)>;
  void SetEvictionListener(EvictionListener listener);
  StoreStats GetStats() const;
  void ResetStats();  // evicted/expired counters

  // The reserved region, for one-time RDMA registration.
  void* segment_base() const;
  size_t segment_size() const;

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  // Looks `keys` up with each shard locked once (buckets prefetched first),
  // removes expired items, and calls on_live(i, item) under the locks.
  template <typename OnLive>
  void ForEachLive(int db, const std::vector<std::string_view>& keys, int64_t now_ms,
                   OnLive&& on_live);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvpool::storage
