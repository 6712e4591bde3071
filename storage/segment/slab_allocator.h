// SlabAllocator: size classes over the PageHeap.
//
// Classes: 8-byte steps from 8 to 256 bytes, then steps of about 12.5% up to
// 256 KiB (about 90 classes; every size a multiple of 8, so objects are
// 8-aligned). Each class carves slabs (spans of one or more pages, sized to
// hold at least 8 objects) into equal objects with a bump pointer, so untouched
// objects cost no RSS, and keeps freed objects on a per-slab free list. A slab
// that becomes entirely free goes back to the PageHeap, except one empty slab
// cached per class against alloc/free ping-pong. Objects larger than the
// biggest class get a span of their own (class kLargeClass).
//
// Thread-safety: all methods may be called concurrently; one mutex per class.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include "storage/segment/lock.h"
#include "storage/segment/page_heap.h"

namespace kvpool::storage {

class SlabAllocator {
 public:
  static constexpr uint8_t kLargeClass = 255;
  static constexpr size_t kMaxSmallSize = 256 * 1024;

  // `heap` must outlive the allocator.
  explicit SlabAllocator(PageHeap* heap);
  // Returns cached and partially used slabs to the heap. Objects still
  // allocated are not reclaimed (their pages die with the heap).
  ~SlabAllocator();
  SlabAllocator(const SlabAllocator&) = delete;
  SlabAllocator& operator=(const SlabAllocator&) = delete;

  static int NumClasses();
  // The class for an object of `bytes`, or kLargeClass if > kMaxSmallSize.
  static uint8_t ClassFor(size_t bytes);
  // Object size of a class (not valid for kLargeClass).
  static size_t ClassSize(uint8_t cls);
  // Pages per slab of a class.
  static size_t SlabPages(uint8_t cls);
  // Bytes an object of `bytes` occupies: its class size, or whole pages.
  static size_t AllocSize(size_t bytes);

  // Memory for `bytes` (8-aligned), and its class in *cls; nullptr if the
  // region has no room (no free object in the class and no free run of pages).
  void* Alloc(size_t bytes, uint8_t* cls);
  // Frees p, allocated with class cls (as returned by Alloc).
  void Free(void* p, uint8_t cls);

  // Sum of AllocSize over live objects.
  size_t used_bytes() const { return used_.load(std::memory_order_relaxed); }
  PageHeap* heap() const { return heap_; }

 private:
  struct alignas(64) Class {
    FutexMutex mu;  // spins briefly before sleeping: critical sections are tiny
    Span* partial = nullptr;  // slabs with a free or uncarved object; guarded by mu
    Span* empty = nullptr;    // one cached empty slab; guarded by mu
  };
  static void PushPartial(Class& c, Span* s);
  static void RemovePartial(Class& c, Span* s);

  PageHeap* const heap_;
  std::unique_ptr<Class[]> classes_;
  std::atomic<size_t> used_{0};
};

}  // namespace kvpool::storage
