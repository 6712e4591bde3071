// Item: one key/value in the segment. Layout (40-byte header, 8-aligned):
//
//   offset  field         notes
//   0       next          hash-chain link; guarded by the shard lock
//   8       version       set under the shard lock just before publication
//   16      expire_at_ms  atomic; 0 = none; SetExpire changes it in place
//   24      refs          atomic; 1 for the index link + 1 per pin (ItemRef)
//   28      key_len
//   32      val_len
//   36      lru[3]        24-bit seconds clock; guarded by the shard lock
//   39      cls           size class (SlabAllocator), immutable
//   40      key bytes, then value bytes
//
// An item unlinked from the index (overwrite, delete, expiry, eviction,
// flush) drops the index's reference; the last reference frees it, from any
// thread, through the allocator of the segment that contains it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kvpool::storage {

class SlabAllocator;

struct Item {
  Item* next;
  uint64_t version;
  std::atomic<int64_t> expire_at_ms;
  std::atomic<uint32_t> refs;
  uint32_t key_len;
  uint32_t val_len;
  uint8_t lru[3];
  uint8_t cls;

  char* data() { return reinterpret_cast<char*>(this + 1); }
  const char* data() const { return reinterpret_cast<const char*>(this + 1); }
  std::string_view key() const { return {data(), key_len}; }
  std::string_view value() const { return {data() + key_len, val_len}; }
  char* value_data() { return data() + key_len; }

  static size_t BytesFor(size_t key_len, size_t val_len) {
    return sizeof(Item) + key_len + val_len;
  }

  bool ExpiredAt(int64_t now_ms) const {
    int64_t e = expire_at_ms.load(std::memory_order_relaxed);
    return e != 0 && e <= now_ms;
  }
  uint32_t Lru() const { return lru[0] | (uint32_t{lru[1]} << 8) | (uint32_t{lru[2]} << 16); }
  void SetLru(uint32_t clock) {
    lru[0] = static_cast<uint8_t>(clock);
    lru[1] = static_cast<uint8_t>(clock >> 8);
    lru[2] = static_cast<uint8_t>(clock >> 16);
  }
  void Pin() { refs.fetch_add(1, std::memory_order_relaxed); }
};
static_assert(sizeof(Item) == 40);
static_assert(alignof(Item) == 8);

// The 24-bit LRU clock: seconds, wrapping every ~194 days.
inline constexpr uint32_t kLruMask = (1u << 24) - 1;
inline uint32_t LruClock(int64_t now_ms) {
  return static_cast<uint32_t>(now_ms / 1000) & kLruMask;
}
inline uint32_t LruIdle(uint32_t clock, uint32_t item_lru) { return (clock - item_lru) & kLruMask; }

// Drops one reference; frees the item when it was the last.
void ReleaseItem(Item* item);

// Segments whose items may be released through ReleaseItem (at most
// kMaxSegments open at once). Register returns a slot, or -1 if full.
inline constexpr int kMaxSegments = 64;
int RegisterSegment(const void* begin, size_t bytes, SlabAllocator* alloc);
void UnregisterSegment(int slot);

}  // namespace kvpool::storage
