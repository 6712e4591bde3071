#include "storage/segment/slab_allocator.h"

#include <algorithm>
#include <array>

namespace kvpool::storage {
namespace {

constexpr int kMaxClasses = 128;

struct ClassTable {
  std::array<uint32_t, kMaxClasses> size{};
  std::array<uint32_t, kMaxClasses> pages{};
  std::array<uint32_t, kMaxClasses> objs{};
  int n = 0;
};

constexpr uint32_t RoundUp(uint32_t v, uint32_t a) { return (v + a - 1) / a * a; }

constexpr ClassTable BuildTable() {
  ClassTable t;
  for (uint32_t s = 8; s <= 256; s += 8) t.size[t.n++] = s;
  uint32_t s = 256;
  while (s < SlabAllocator::kMaxSmallSize) {
    uint32_t align = s < 1024 ? 16 : s < 8192 ? 128 : 1024;
    s = RoundUp(s + s / 8, align);
    if (s > SlabAllocator::kMaxSmallSize) s = SlabAllocator::kMaxSmallSize;
    t.size[t.n++] = s;
  }
  for (int i = 0; i < t.n; ++i) {
    // At least 8 objects per slab keeps the tail waste under 1/8.
    uint64_t want = uint64_t{t.size[i]} * 8;
    uint64_t pages = (want + PageHeap::kPageSize - 1) / PageHeap::kPageSize;
    t.pages[i] = static_cast<uint32_t>(pages);
    t.objs[i] = static_cast<uint32_t>(pages * PageHeap::kPageSize / t.size[i]);
  }
  return t;
}

constexpr ClassTable kTable = BuildTable();
static_assert(kTable.n < SlabAllocator::kLargeClass);
static_assert(kTable.size[kTable.n - 1] == SlabAllocator::kMaxSmallSize);

}  // namespace

int SlabAllocator::NumClasses() { return kTable.n; }

uint8_t SlabAllocator::ClassFor(size_t bytes) {
  if (bytes <= 256) return static_cast<uint8_t>(bytes == 0 ? 0 : (bytes - 1) / 8);
  if (bytes > kMaxSmallSize) return kLargeClass;
  const uint32_t* first = kTable.size.data() + 32;
  const uint32_t* last = kTable.size.data() + kTable.n;
  return static_cast<uint8_t>(std::lower_bound(first, last, bytes) - kTable.size.data());
}

size_t SlabAllocator::ClassSize(uint8_t cls) { return kTable.size[cls]; }
size_t SlabAllocator::SlabPages(uint8_t cls) { return kTable.pages[cls]; }

size_t SlabAllocator::AllocSize(size_t bytes) {
  uint8_t cls = ClassFor(bytes);
  if (cls != kLargeClass) return kTable.size[cls];
  return (bytes + PageHeap::kPageSize - 1) & ~(PageHeap::kPageSize - 1);
}

SlabAllocator::SlabAllocator(PageHeap* heap)
    : heap_(heap), classes_(std::make_unique<Class[]>(kTable.n)) {}

SlabAllocator::~SlabAllocator() {
  for (int i = 0; i < kTable.n; ++i) {
    Class& c = classes_[i];
    while (c.partial != nullptr) {
      Span* s = c.partial;
      RemovePartial(c, s);
      if (s->used == 0) heap_->Free(s);  // else leaked objects: pages die with the heap
    }
    if (c.empty != nullptr) heap_->Free(c.empty);
  }
}

void SlabAllocator::PushPartial(Class& c, Span* s) {
  s->prev = nullptr;
  s->next = c.partial;
  if (c.partial != nullptr) c.partial->prev = s;
  c.partial = s;
  s->in_partial = true;
}

void SlabAllocator::RemovePartial(Class& c, Span* s) {
  if (s->prev != nullptr) s->prev->next = s->next;
  else c.partial = s->next;
  if (s->next != nullptr) s->next->prev = s->prev;
  s->prev = s->next = nullptr;
  s->in_partial = false;
}

void* SlabAllocator::Alloc(size_t bytes, uint8_t* cls_out) {
  uint8_t cls = ClassFor(bytes);
  *cls_out = cls;
  if (cls == kLargeClass) {
    size_t n = (bytes + PageHeap::kPageSize - 1) >> PageHeap::kPageShift;
    Span* s = heap_->Alloc(n);
    if (s == nullptr) return nullptr;
    s->cls = kLargeClass;
    s->used = 1;
    used_.fetch_add(n << PageHeap::kPageShift, std::memory_order_relaxed);
    return heap_->SpanBase(s);
  }
  const uint32_t size = kTable.size[cls];
  const uint32_t objs = kTable.objs[cls];
  Class& c = classes_[cls];
  void* p;
  {
    std::lock_guard<FutexMutex> l(c.mu);
    Span* s = c.partial;
    if (s == nullptr) {
      if (c.empty != nullptr) {
        s = c.empty;
        c.empty = nullptr;
      } else {
        s = heap_->Alloc(kTable.pages[cls]);
        if (s == nullptr) return nullptr;
        s->cls = cls;
      }
      PushPartial(c, s);
    }
    if (s->free_list != nullptr) {
      p = s->free_list;
      s->free_list = *static_cast<void**>(p);
    } else {
      p = heap_->SpanBase(s) + size_t{s->carved} * size;
      ++s->carved;
    }
    if (++s->used == objs) RemovePartial(c, s);
  }
  used_.fetch_add(size, std::memory_order_relaxed);
  return p;
}

void SlabAllocator::Free(void* p, uint8_t cls) {
  Span* s = heap_->SpanOf(p);
  if (cls == kLargeClass) {
    used_.fetch_sub(size_t{s->npages} << PageHeap::kPageShift, std::memory_order_relaxed);
    heap_->Free(s);
    return;
  }
  const uint32_t objs = kTable.objs[cls];
  Class& c = classes_[cls];
  Span* give_back = nullptr;
  {
    std::lock_guard<FutexMutex> l(c.mu);
    *static_cast<void**>(p) = s->free_list;
    s->free_list = p;
    if (s->used-- == objs) PushPartial(c, s);
    if (s->used == 0) {
      RemovePartial(c, s);
      // Reset carving so a reused slab touches pages in order again.
      s->free_list = nullptr;
      s->carved = 0;
      if (c.empty == nullptr) c.empty = s;
      else give_back = s;
    }
  }
  used_.fetch_sub(kTable.size[cls], std::memory_order_relaxed);
  if (give_back != nullptr) heap_->Free(give_back);
}

}  // namespace kvpool::storage
