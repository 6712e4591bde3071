// Store: setup, reads, and the helpers every write shares.
#include "storage/segment/store.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "storage/segment/store_impl.h"

namespace kvpool::storage {

namespace {
constexpr struct {
  EvictionPolicy p;
  const char* name;
} kPolicies[] = {
    {EvictionPolicy::kNoEviction, "noeviction"},
    {EvictionPolicy::kAllKeysLru, "allkeys-lru"},
    {EvictionPolicy::kVolatileLru, "volatile-lru"},
    {EvictionPolicy::kAllKeysRandom, "allkeys-random"},
    {EvictionPolicy::kVolatileTtl, "volatile-ttl"},
};

constexpr size_t kMinSlack = size_t{64} << 20;
constexpr int kMaxDatabases = 1 << 16;
constexpr int kMaxSamples = 64;

// The segment Open reserves for `maxmemory`: room for allocator fragmentation too.
size_t SegmentBytesFor(size_t maxmemory) {
  size_t bytes = maxmemory + std::max(kMinSlack, maxmemory / 8);
  return (bytes + PageHeap::kPageSize - 1) & ~(PageHeap::kPageSize - 1);
}
}  // namespace

bool ParseEvictionPolicy(std::string_view name, EvictionPolicy* out) {
  for (const auto& e : kPolicies) {
    if (name.size() == std::strlen(e.name) &&
        std::equal(name.begin(), name.end(), e.name,
                   [](char a, char b) { return (a | 0x20) == b || a == b; })) {
      *out = e.p;
      return true;
    }
  }
  return false;
}

const char* EvictionPolicyName(EvictionPolicy p) {
  for (const auto& e : kPolicies) {
    if (e.p == p) return e.name;
  }
  return "unknown";
}

// ---- setup ----

Store::Impl::Impl(const StoreOptions& o, Region r)
    : databases(o.databases),
      region(std::move(r)),
      heap(region.base(), region.size() >> PageHeap::kPageShift, o.release_free_pages),
      slabs(&heap),
      maxmemory(o.maxmemory),
      policy(static_cast<int>(o.policy)),
      samples(std::clamp(o.maxmemory_samples, 1, kMaxSamples)),
      expire_cursors(o.databases) {
  version_node = o.version_node;
  dbs.reserve(databases);
  for (int i = 0; i < databases; ++i) dbs.push_back(std::make_unique<Index>(&index_bytes));
}

Store::Impl::~Impl() {
  if (segment_slot >= 0) UnregisterSegment(segment_slot);
}

StatusOr<std::unique_ptr<Store>> Store::Open(const StoreOptions& o) {
  if (o.databases < 1 || o.databases > kMaxDatabases)
    return Status::InvalidArgument("databases must be in [1, 65536]");
  if (o.maxmemory == 0 && o.segment_bytes == 0)
    return Status::InvalidArgument("maxmemory 0 (unbounded) needs segment_bytes");
  size_t bytes = o.segment_bytes != 0 ? o.segment_bytes : SegmentBytesFor(o.maxmemory);
  bytes = (bytes + PageHeap::kPageSize - 1) & ~(PageHeap::kPageSize - 1);
  if ((bytes >> PageHeap::kPageShift) > UINT32_MAX)
    return Status::InvalidArgument("segment too large");
  auto region = Region::Map(bytes);
  if (!region.ok()) return region.status();
  auto impl = std::make_unique<Impl>(o, std::move(region.value()));
  impl->segment_slot = RegisterSegment(impl->region.base(), impl->region.size(), &impl->slabs);
  if (impl->segment_slot < 0) return Status::Internal("too many open stores");
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Store::~Store() { FlushAll(); }

int Store::databases() const { return impl_->databases; }
void* Store::segment_base() const { return impl_->region.base(); }
size_t Store::segment_size() const { return impl_->region.size(); }

size_t Store::MaxMemoryLimit() const {
  // SegmentBytesFor grows with maxmemory: the largest that fits, by bisection.
  size_t lo = 0, hi = impl_->region.size();
  while (lo < hi) {
    size_t mid = lo + (hi - lo + 1) / 2;
    if (SegmentBytesFor(mid) <= impl_->region.size()) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

// ---- shared helpers ----

Item* Store::Impl::RemoveLocked(int db, Index& idx, Shard& s, Item** pos, Removal why) {
  Item* it = idx.Unlink(s, pos);
  if (why == Removal::kExpired) expired.fetch_add(1, std::memory_order_relaxed);
  if (why == Removal::kEvicted) {
    evicted.fetch_add(1, std::memory_order_relaxed);
    if (on_evict) on_evict(db, it->key(), it->value());
  }
  TouchLocked(db, s, it->key());
  return it;
}

Item* Store::Impl::Lookup(int db, std::string_view key, int64_t now_ms, bool touch_lru,
                          bool pin) {
  Loc l = Locate(db, key);
  Shard& s = *l.shard;
  Item* dead = nullptr;
  Item* it = nullptr;
  {
    std::lock_guard<FutexMutex> g(s.mu);
    Item** pos = Index::Find(s, l.hash, key);
    if (pos == nullptr) return nullptr;
    it = *pos;
    if (it->ExpiredAt(now_ms)) {
      dead = RemoveLocked(db, *l.idx, s, pos, Removal::kExpired);
      l.idx->MaybeShrink(s);
      it = nullptr;
    } else {
      if (touch_lru) it->SetLru(LruClock(now_ms));
      if (pin) it->Pin();
    }
  }
  if (dead != nullptr) Release(dead);
  return it;
}

Status Store::Impl::AllocItem(std::string_view key, size_t val_len, size_t extra, size_t credit,
                              int64_t now_ms, Item** out) {
  if (key.size() > UINT32_MAX || val_len > UINT32_MAX)
    return Status::InvalidArgument("key or value too large");
  const size_t bytes = Item::BytesFor(key.size(), val_len);
  const size_t asz = SlabAllocator::AllocSize(bytes);
  const size_t need = asz + extra;
  if (Status st = EnsureMemory(need > credit ? need - credit : 0, now_ms); !st.ok()) return st;
  uint8_t cls;
  void* p = slabs.Alloc(bytes, &cls);
  // The region is full although used memory is within bounds: free memory
  // sits in other classes' partly used slabs. First evict per policy (the
  // idle items are likely those of classes the workload no longer uses, so
  // their slabs drain and go back to the heap; evicting the needed class
  // first would keep that memory stuck), then items of the needed class
  // (each frees a usable object), then any items; bounded.
  constexpr int kPolicyFirst = 64, kShaped = 32, kAny = 256;
  EvictFilter shaped{cls, cls == SlabAllocator::kLargeClass ? asz : 0};
  for (int attempt = 0; p == nullptr && attempt < kPolicyFirst + kShaped + kAny; ++attempt) {
    if (static_cast<EvictionPolicy>(policy.load()) == EvictionPolicy::kNoEviction) break;
    const bool use_shape = attempt >= kPolicyFirst && attempt < kPolicyFirst + kShaped;
    if (!EvictOne(now_ms, use_shape ? shaped : EvictFilter{})) {
      if (!use_shape) break;                  // nothing evictable at all
      attempt = kPolicyFirst + kShaped - 1;   // no item of that shape: go on with any
    }
    p = slabs.Alloc(bytes, &cls);
  }
  if (p == nullptr) return Status::OutOfMemory("segment full");
  auto* it = new (p) Item;
  it->next = nullptr;
  it->version = 0;
  it->expire_at_ms.store(0, std::memory_order_relaxed);
  it->refs.store(1, std::memory_order_relaxed);
  it->key_len = static_cast<uint32_t>(key.size());
  it->val_len = static_cast<uint32_t>(val_len);
  it->SetLru(LruClock(now_ms));
  it->cls = cls;
  if (!key.empty()) std::memcpy(it->data(), key.data(), key.size());
  *out = it;
  return Status::OK();
}

// ---- reads ----

ItemRef Store::Get(int db, std::string_view key, int64_t now_ms) {
  return ItemRef(impl_->Lookup(db, key, now_ms, /*touch_lru=*/true, /*pin=*/true));
}

ItemRef Store::Peek(int db, std::string_view key, int64_t now_ms) {
  return ItemRef(impl_->Lookup(db, key, now_ms, /*touch_lru=*/false, /*pin=*/true));
}

bool Store::Exists(int db, std::string_view key, int64_t now_ms) {
  return impl_->Lookup(db, key, now_ms, /*touch_lru=*/false, /*pin=*/false) != nullptr;
}

template <typename OnLive>
void Store::ForEachLive(int db, const std::vector<std::string_view>& keys, int64_t now_ms,
                        OnLive&& on_live) {
  Index& idx = *impl_->dbs[db];
  std::vector<uint64_t> hashes(keys.size());
  ShardSet shards;
  for (size_t i = 0; i < keys.size(); ++i) {
    hashes[i] = HashKey(keys[i]);
    shards.Add(Index::ShardOf(hashes[i]));
  }
  std::vector<Item*> dead;
  shards.ForEach([&](uint32_t si) { idx.shard(si).mu.lock(); });
  idx.PrefetchAll(hashes);
  for (size_t i = 0; i < keys.size(); ++i) {
    Shard& s = idx.shard(Index::ShardOf(hashes[i]));
    Item** pos = Index::Find(s, hashes[i], keys[i]);
    if (pos == nullptr) continue;
    Item* it = *pos;
    if (it->ExpiredAt(now_ms)) {
      dead.push_back(impl_->RemoveLocked(db, idx, s, pos, Removal::kExpired));
      continue;
    }
    on_live(i, it);
  }
  if (!dead.empty()) shards.ForEach([&](uint32_t si) { idx.MaybeShrink(idx.shard(si)); });
  shards.ForEach([&](uint32_t si) { idx.shard(si).mu.unlock(); });
  for (Item* it : dead) impl_->Release(it);
}

void Store::Prefetch(int db, std::span<const std::string_view> keys) {
  const size_t n = std::min(keys.size(), kMaxPrefetch);
  if (n == 0 || db < 0 || db >= databases()) return;
  Index& idx = *impl_->dbs[db];
  uint64_t hashes[kMaxPrefetch];
  ShardSet shards;
  for (size_t i = 0; i < n; ++i) {
    hashes[i] = HashKey(keys[i]);
    shards.Add(Index::ShardOf(hashes[i]));
  }
  // Under the shards' locks: a bucket array may be replaced (resized) and
  // its chains change meanwhile; one lock each, uncontended as a rule.
  shards.ForEach([&](uint32_t si) { idx.shard(si).mu.lock(); });
  idx.PrefetchAll(std::span<const uint64_t>(hashes, n));
  shards.ForEach([&](uint32_t si) { idx.shard(si).mu.unlock(); });
}

std::vector<ItemRef> Store::MultiGet(int db, const std::vector<std::string_view>& keys,
                                     int64_t now_ms) {
  std::vector<ItemRef> out(keys.size());
  if (keys.size() == 1) {
    out[0] = Get(db, keys[0], now_ms);
    return out;
  }
  const uint32_t clock = LruClock(now_ms);
  ForEachLive(db, keys, now_ms, [&](size_t i, Item* it) {
    it->SetLru(clock);
    it->Pin();
    out[i] = ItemRef(it);
  });
  return out;
}

std::vector<uint8_t> Store::MultiExists(int db, const std::vector<std::string_view>& keys,
                                        int64_t now_ms) {
  std::vector<uint8_t> out(keys.size(), 0);
  if (keys.size() == 1) {
    out[0] = Exists(db, keys[0], now_ms);
    return out;
  }
  ForEachLive(db, keys, now_ms, [&](size_t i, Item*) { out[i] = 1; });
  return out;
}

}  // namespace kvpool::storage
