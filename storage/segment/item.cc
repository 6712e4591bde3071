#include "storage/segment/item.h"

#include <cassert>
#include <cstdlib>

#include "storage/segment/slab_allocator.h"
#include "storage/segment/store.h"

namespace kvpool::storage {
namespace {

struct SegmentSlot {
  std::atomic<uintptr_t> begin{0};
  std::atomic<uintptr_t> end{0};
  std::atomic<SlabAllocator*> alloc{nullptr};
};
SegmentSlot g_segments[kMaxSegments];
std::atomic<int> g_high_water{0};

}  // namespace

int RegisterSegment(const void* begin, size_t bytes, SlabAllocator* alloc) {
  for (int i = 0; i < kMaxSegments; ++i) {
    SlabAllocator* expected = nullptr;
    if (g_segments[i].alloc.compare_exchange_strong(expected, alloc)) {
      auto b = reinterpret_cast<uintptr_t>(begin);
      g_segments[i].begin.store(b, std::memory_order_release);
      g_segments[i].end.store(b + bytes, std::memory_order_release);
      int hw = g_high_water.load();
      while (hw < i + 1 && !g_high_water.compare_exchange_weak(hw, i + 1)) {
      }
      return i;
    }
  }
  return -1;
}

void UnregisterSegment(int slot) {
  g_segments[slot].end.store(0, std::memory_order_release);
  g_segments[slot].begin.store(0, std::memory_order_release);
  g_segments[slot].alloc.store(nullptr, std::memory_order_release);
}

void ReleaseItem(Item* item) {
  if (item->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  auto a = reinterpret_cast<uintptr_t>(item);
  int hw = g_high_water.load(std::memory_order_acquire);
  for (int i = 0; i < hw; ++i) {
    if (a >= g_segments[i].begin.load(std::memory_order_acquire) &&
        a < g_segments[i].end.load(std::memory_order_acquire)) {
      g_segments[i].alloc.load(std::memory_order_acquire)->Free(item, item->cls);
      return;
    }
  }
  // An item outside every open segment: its Store was destroyed while the
  // item was pinned, which the contract forbids.
  assert(false && "ItemRef outlived its Store");
  std::abort();
}

// ---- ItemRef ----

ItemRef& ItemRef::operator=(ItemRef&& o) noexcept {
  if (this != &o) {
    Reset();
    item_ = o.item_;
    o.item_ = nullptr;
  }
  return *this;
}

std::string_view ItemRef::key() const { return item_->key(); }
std::string_view ItemRef::value() const { return item_->value(); }
int64_t ItemRef::expire_at_ms() const {
  return item_->expire_at_ms.load(std::memory_order_relaxed);
}
uint64_t ItemRef::version() const { return item_->version; }
size_t ItemRef::alloc_size() const {
  return SlabAllocator::AllocSize(Item::BytesFor(item_->key_len, item_->val_len));
}

ItemRef ItemRef::Clone() const {
  if (item_ == nullptr) return ItemRef();
  item_->Pin();
  return ItemRef(item_);
}

void* ItemRef::ReleaseToToken() {
  Item* it = item_;
  item_ = nullptr;
  return it;
}

void ItemRef::ReleasePin(void* token) {
  if (token != nullptr) ReleaseItem(static_cast<Item*>(token));
}

void ItemRef::Reset() {
  if (item_ != nullptr) {
    ReleaseItem(item_);
    item_ = nullptr;
  }
}

}  // namespace kvpool::storage
