#include "storage/segment/page_heap.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace kvpool::storage {

StatusOr<Region> Region::Map(size_t bytes) {
  if (bytes == 0) return Status::InvalidArgument("segment size 0");
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    return Status::OutOfMemory("mmap of " + std::to_string(bytes) +
                               " bytes failed: " + std::strerror(errno));
  }
  // Transparent huge pages where the system allows them on request: random
  // lookups over a large keyspace are dominated by TLB misses otherwise.
  // Advisory; failure is harmless.
  madvise(p, bytes, MADV_HUGEPAGE);
  Region r;
  r.base_ = static_cast<char*>(p);
  r.size_ = bytes;
  return r;
}

Region& Region::operator=(Region&& o) noexcept {
  if (this != &o) {
    this->~Region();
    base_ = o.base_;
    size_ = o.size_;
    o.base_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

Region::~Region() {
  if (base_ != nullptr) munmap(base_, size_);
}

PageHeap::PageHeap(char* base, size_t npages, bool release)
    : base_(base), npages_(npages), release_(release), map_(npages, nullptr) {
  if (npages_ > 0) {
    auto* s = new Span;
    s->start = 0;
    s->npages = static_cast<uint32_t>(npages_);
    s->free = true;
    map_[0] = map_[npages_ - 1] = s;
    InsertFree(s);
  }
}

PageHeap::~PageHeap() {
  // Every span (free or not) maps its first page to itself: walk them all,
  // so spans still allocated at destruction are not leaked either.
  for (size_t p = 0; p < npages_;) {
    Span* s = map_[p];
    p += s->npages;
    delete s;
  }
}

void PageHeap::InsertFree(Span* s) {
  s->free = true;
  map_[s->start] = s;
  map_[s->start + s->npages - 1] = s;
  free_.emplace(s->npages, s->start);
}

void PageHeap::RemoveFree(Span* s) {
  free_.erase({s->npages, s->start});
  s->free = false;
}

Span* PageHeap::Alloc(size_t n) {
  if (n == 0 || n > npages_) return nullptr;
  std::unique_lock<std::mutex> l(mu_);
  auto it = free_.lower_bound({static_cast<uint32_t>(n), 0});
  while (it == free_.end()) {
    // Pages on their way back from Purge are free pages, not a full heap.
    if (purging_ == 0) return nullptr;
    purged_.wait(l, [this] { return purging_ == 0; });
    it = free_.lower_bound({static_cast<uint32_t>(n), 0});
  }
  Span* s = map_[it->second];
  RemoveFree(s);
  if (s->npages > n) {
    auto* rest = new Span;
    rest->start = s->start + static_cast<uint32_t>(n);
    rest->npages = s->npages - static_cast<uint32_t>(n);
    rest->dirty = s->dirty;
    InsertFree(rest);
    s->npages = static_cast<uint32_t>(n);
  }
  s->dirty = false;
  s->cls = 0;
  s->in_partial = false;
  s->used = s->carved = 0;
  s->free_list = nullptr;
  s->prev = s->next = nullptr;
  for (uint32_t i = 0; i < s->npages; ++i) map_[s->start + i] = s;
  used_pages_ += n;
  return s;
}

void PageHeap::Release(Span* s) {
  if (!release_) return;
  // Not under mu_: the span is reachable by nobody else here.
  madvise(SpanBase(s), size_t{s->npages} << kPageShift, MADV_DONTNEED);
  s->dirty = false;
}

void PageHeap::Free(Span* s) {
  s->dirty = true;
  if (s->npages >= kEagerReleasePages) Release(s);
  std::lock_guard<std::mutex> l(mu_);
  used_pages_ -= s->npages;
  FreeLocked(s);
}

void PageHeap::FreeLocked(Span* s) {
  // Coalesce with the left and right neighbours if they are free.
  if (s->start > 0) {
    Span* left = map_[s->start - 1];
    if (left->free) {
      RemoveFree(left);
      left->npages += s->npages;
      left->dirty |= s->dirty;
      delete s;
      s = left;
    }
  }
  size_t end = size_t{s->start} + s->npages;
  if (end < npages_) {
    Span* right = map_[end];
    if (right->free) {
      RemoveFree(right);
      s->npages += right->npages;
      s->dirty |= right->dirty;
      delete right;
    }
  }
  InsertFree(s);
}

size_t PageHeap::Purge(size_t max_pages) {
  if (!release_) return 0;
  std::vector<Span*> taken;
  size_t pages = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    // Largest first: fewest syscalls per page released.
    std::vector<Span*> dirty;
    size_t budget = 0;
    for (auto it = free_.rbegin(); it != free_.rend() && budget < max_pages; ++it) {
      Span* s = map_[it->second];
      if (s->dirty) {
        dirty.push_back(s);
        budget += s->npages;
      }
    }
    for (Span* s : dirty) {
      RemoveFree(s);
      size_t want = max_pages - pages;
      if (s->npages > want) {
        // Only `want` pages leave the heap; the rest stays free to allocate.
        auto* rest = new Span;
        rest->start = s->start + static_cast<uint32_t>(want);
        rest->npages = s->npages - static_cast<uint32_t>(want);
        rest->dirty = true;
        InsertFree(rest);
        s->npages = static_cast<uint32_t>(want);
        map_[s->start + s->npages - 1] = s;
      }
      // Taken spans are neither free nor allocated: neighbours do not merge
      // into them while we madvise without the lock.
      taken.push_back(s);
      pages += s->npages;
    }
    used_pages_ += pages;
    purging_ += pages;
  }
  if (purge_hook_ && pages > 0) purge_hook_();
  for (Span* s : taken) Release(s);
  {
    std::lock_guard<std::mutex> l(mu_);
    used_pages_ -= pages;
    purging_ -= pages;
    for (Span* s : taken) FreeLocked(s);
  }
  purged_.notify_all();
  return pages;
}

size_t PageHeap::used_pages() const {
  std::lock_guard<std::mutex> l(mu_);
  return used_pages_;
}

size_t PageHeap::LargestFreeRun() const {
  std::lock_guard<std::mutex> l(mu_);
  return free_.empty() ? 0 : free_.rbegin()->first;
}

}  // namespace kvpool::storage
