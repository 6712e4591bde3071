#include "storage/segment/index.h"

#include <cstdlib>
#include <cstring>

#include "storage/segment/hash.h"

namespace kvpool::storage {

Index::~Index() {
  for (auto& s : shards_) {
    if (s.buckets != nullptr) FreeBuckets(s.buckets, s.mask + 1);
  }
}

namespace {
// Key equality for equal lengths; short keys (the common case) without a
// call into libc.
inline bool SameBytes(const char* a, const char* b, uint32_t len) {
  if (len >= 8 && len <= 16) {
    uint64_t a0, a1, b0, b1;
    std::memcpy(&a0, a, 8);
    std::memcpy(&b0, b, 8);
    std::memcpy(&a1, a + len - 8, 8);
    std::memcpy(&b1, b + len - 8, 8);
    return ((a0 ^ b0) | (a1 ^ b1)) == 0;
  }
  return std::memcmp(a, b, len) == 0;
}
}  // namespace

Item** Index::Find(const Shard& s, uint64_t hash, std::string_view key) {
  if (s.buckets == nullptr) return nullptr;
  Item** pos = &s.buckets[hash & s.mask];
  const auto len = static_cast<uint32_t>(key.size());
  for (Item* it = *pos; it != nullptr; pos = &it->next, it = *pos) {
    if (it->key_len == len && SameBytes(it->data(), key.data(), len)) return pos;
  }
  return nullptr;
}

void Index::CountAdd(Shard& s, int64_t keys, int64_t expires) {
  if (keys != 0) {
    s.size.store(s.size.load(std::memory_order_relaxed) + keys, std::memory_order_relaxed);
    keys_.fetch_add(keys, std::memory_order_relaxed);
  }
  if (expires != 0) {
    s.expires.store(s.expires.load(std::memory_order_relaxed) + expires,
                    std::memory_order_relaxed);
    expires_.fetch_add(expires, std::memory_order_relaxed);
  }
}

void Index::Insert(Shard& s, uint64_t hash, Item* item) {
  if (s.buckets == nullptr) Resize(s, kMinBuckets);
  if (s.buckets == nullptr) std::abort();  // out of heap for a 32-byte array
  Item** head = &s.buckets[hash & s.mask];
  item->next = *head;
  *head = item;
  CountAdd(s, 1, item->expire_at_ms.load(std::memory_order_relaxed) != 0 ? 1 : 0);
  if (s.size.load(std::memory_order_relaxed) > s.mask + 1) Resize(s, (s.mask + 1) * 2);
}

Item* Index::Replace(Shard& s, Item** pos, Item* item) {
  Item* old = *pos;
  item->next = old->next;
  *pos = item;
  int64_t d = (item->expire_at_ms.load(std::memory_order_relaxed) != 0 ? 1 : 0) -
              (old->expire_at_ms.load(std::memory_order_relaxed) != 0 ? 1 : 0);
  CountAdd(s, 0, d);
  return old;
}

Item* Index::Unlink(Shard& s, Item** pos) {
  Item* old = *pos;
  *pos = old->next;
  old->next = nullptr;
  CountAdd(s, -1, old->expire_at_ms.load(std::memory_order_relaxed) != 0 ? -1 : 0);
  return old;
}

void Index::SetExpire(Shard& s, Item* item, int64_t expire_at_ms) {
  int64_t before = item->expire_at_ms.load(std::memory_order_relaxed);
  item->expire_at_ms.store(expire_at_ms, std::memory_order_relaxed);
  CountAdd(s, 0, (expire_at_ms != 0 ? 1 : 0) - (before != 0 ? 1 : 0));
}

void Index::MaybeShrink(Shard& s) {
  uint64_t n = s.nbuckets();
  uint64_t size = s.size.load(std::memory_order_relaxed);
  if (n <= kMinBuckets || size * 8 >= n) return;
  if (size == 0) {
    FreeBuckets(s.buckets, n);
    s.buckets = nullptr;
    s.mask = 0;
    s.capacity.store(0, std::memory_order_relaxed);
    return;
  }
  uint64_t want = kMinBuckets;
  while (want < size * 2) want *= 2;
  Resize(s, want);
}

uint64_t Index::GrowthBytesIfInsert(const Shard& s) {
  uint64_t n = s.capacity.load(std::memory_order_relaxed);
  if (n == 0) return kMinBuckets * sizeof(Item*);
  return s.size.load(std::memory_order_relaxed) + 1 > n ? n * sizeof(Item*) : 0;
}

void Index::Resize(Shard& s, uint64_t nbuckets) {
  auto* fresh = static_cast<Item**>(std::calloc(nbuckets, sizeof(Item*)));
  if (fresh == nullptr) return;  // keep the current table; chains get longer
  mem_->fetch_add(static_cast<int64_t>(nbuckets * sizeof(Item*)), std::memory_order_relaxed);
  const uint64_t mask = nbuckets - 1;
  for (uint64_t b = 0; b < s.nbuckets(); ++b) {
    for (Item* it = s.buckets[b]; it != nullptr;) {
      Item* next = it->next;
      Item** head = &fresh[HashKey(it->key()) & mask];
      it->next = *head;
      *head = it;
      it = next;
    }
  }
  if (s.buckets != nullptr) FreeBuckets(s.buckets, s.mask + 1);
  s.buckets = fresh;
  s.mask = mask;
  s.capacity.store(nbuckets, std::memory_order_relaxed);
}

Item** Index::Detach(Shard& s, uint64_t* nbuckets) {
  Item** b = s.buckets;
  *nbuckets = s.nbuckets();
  s.buckets = nullptr;
  s.mask = 0;
  s.capacity.store(0, std::memory_order_relaxed);
  CountAdd(s, -static_cast<int64_t>(s.size.load(std::memory_order_relaxed)),
           -static_cast<int64_t>(s.expires.load(std::memory_order_relaxed)));
  return b;
}

void Index::FreeBuckets(Item** buckets, uint64_t nbuckets) {
  std::free(buckets);
  mem_->fetch_sub(static_cast<int64_t>(nbuckets * sizeof(Item*)), std::memory_order_relaxed);
}

namespace {
uint64_t Rev(uint64_t v) {
  v = __builtin_bswap64(v);
  v = ((v >> 4) & 0x0f0f0f0f0f0f0f0full) | ((v & 0x0f0f0f0f0f0f0f0full) << 4);
  v = ((v >> 2) & 0x3333333333333333ull) | ((v & 0x3333333333333333ull) << 2);
  v = ((v >> 1) & 0x5555555555555555ull) | ((v & 0x5555555555555555ull) << 1);
  return v;
}
}  // namespace

uint64_t Index::NextCursor(uint64_t v, uint64_t mask) {
  v |= ~mask;
  v = Rev(v);
  ++v;
  return Rev(v);
}

}  // namespace kvpool::storage
