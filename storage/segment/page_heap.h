// Region and PageHeap: the bottom of the segment.
//
// Region owns one anonymous mapping reserved at start (MAP_NORESERVE, so pages
// cost RSS only once touched). PageHeap cuts it into 64 KiB pages and hands
// out spans of contiguous pages: best fit (smallest free run that is long
// enough, lowest address on ties), coalescing with both neighbours on free.
// A page -> span map finds the span owning any address in O(1), which is how
// the slab allocator finds an object's slab.
//
// Freed pages can be given back to the kernel (madvise MADV_DONTNEED) so RSS
// drops after deletes: spans of >= kEagerReleasePages at once, smaller ones
// when Purge() runs (from Store::Tick). Release must be disabled when the
// region is registered for RDMA without on-demand paging: the NIC would keep
// the old physical pages while the CPU faults in new ones.
#pragma once

#include <cstddef>
#include <cstdint>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

#include "storage/util/status.h"

namespace kvpool::storage {

// An anonymous private mapping; munmap on destruction.
class Region {
 public:
  static StatusOr<Region> Map(size_t bytes);
  Region() = default;
  Region(Region&& o) noexcept : base_(o.base_), size_(o.size_) { o.base_ = nullptr, o.size_ = 0; }
  Region& operator=(Region&& o) noexcept;
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  ~Region();

  char* base() const { return base_; }
  size_t size() const { return size_; }

 private:
  char* base_ = nullptr;
  size_t size_ = 0;
};

// A run of contiguous pages. Owned by PageHeap; the slab fields are managed
// by SlabAllocator under its per-class lock while the span is allocated.
struct Span {
  uint32_t start = 0;   // first page index
  uint32_t npages = 0;
  bool free = false;    // guarded by the heap lock
  bool dirty = false;   // free pages that may hold RSS (not yet released)
  // ---- slab state (SlabAllocator) ----
  uint8_t cls = 0;         // size class; kLargeClass for a single large object
  bool in_partial = false; // linked in its class's partial list
  uint32_t used = 0;       // live objects
  uint32_t carved = 0;     // objects carved so far by the bump pointer
  void* free_list = nullptr;
  Span* prev = nullptr;
  Span* next = nullptr;
};

class PageHeap {
 public:
  static constexpr size_t kPageShift = 16;
  static constexpr size_t kPageSize = size_t{1} << kPageShift;  // 64 KiB
  static constexpr uint32_t kEagerReleasePages = 16;             // 1 MiB

  // Manages [base, base + npages * kPageSize). `release` enables madvise.
  PageHeap(char* base, size_t npages, bool release);
  ~PageHeap();
  PageHeap(const PageHeap&) = delete;
  PageHeap& operator=(const PageHeap&) = delete;

  // A span of exactly n pages (n >= 1), or nullptr if no free run is long
  // enough. While Purge is releasing pages, an allocation that finds no
  // run waits for them to come back rather than fail (a failed allocation
  // makes the store evict). Thread-safe.
  Span* Alloc(size_t n);
  // Returns a span from Alloc. Thread-safe.
  void Free(Span* span);
  // Gives free pages back to the kernel, at most `max_pages`; returns the
  // pages released. A free run longer than what is left of the budget is
  // split: only the part being released is out of the heap meanwhile. No-op
  // when release is disabled. Thread-safe.
  size_t Purge(size_t max_pages);
  // Called while Purge has pages out of the heap (tests).
  void SetPurgeHookForTest(std::function<void()> hook) { purge_hook_ = std::move(hook); }

  // The allocated span containing p. p must lie in a span returned by Alloc
  // and not yet freed (then no lock is needed: its map entries are stable).
  Span* SpanOf(const void* p) const { return map_[PageOf(p)]; }
  char* SpanBase(const Span* s) const { return base_ + (size_t{s->start} << kPageShift); }
  bool Contains(const void* p) const {
    auto a = reinterpret_cast<uintptr_t>(p), b = reinterpret_cast<uintptr_t>(base_);
    return a >= b && a < b + (npages_ << kPageShift);
  }

  size_t total_pages() const { return npages_; }
  size_t used_pages() const;
  // Length of the longest free run (for tests and diagnostics).
  size_t LargestFreeRun() const;

 private:
  size_t PageOf(const void* p) const {
    return (reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(base_)) >> kPageShift;
  }
  void InsertFree(Span* s);  // requires mu_
  void RemoveFree(Span* s);  // requires mu_
  void FreeLocked(Span* s);  // coalesce and insert; requires mu_
  void Release(Span* s);     // madvise; s must not be reachable by others

  char* const base_;
  const size_t npages_;
  const bool release_;
  mutable std::mutex mu_;
  // Free spans by (length, start): best fit is lower_bound({n, 0}).
  std::set<std::pair<uint32_t, uint32_t>> free_;  // guarded by mu_
  // page -> span: every page of an allocated span, and the first and last
  // page of a free span. Written under mu_.
  std::vector<Span*> map_;
  size_t used_pages_ = 0;  // guarded by mu_
  size_t purging_ = 0;     // pages Purge has out of the heap; guarded by mu_
  std::condition_variable purged_;  // purging_ went back to 0
  std::function<void()> purge_hook_;
};

}  // namespace kvpool::storage
