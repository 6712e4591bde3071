#include "server/heap_usage.h"

#include <malloc.h>

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define KVPOOL_SANITIZER_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define KVPOOL_SANITIZER_ALLOCATOR 1
#endif
#endif

#ifdef KVPOOL_SANITIZER_ALLOCATOR
// The sanitizer runtimes' allocator statistics (ASan and TSan both export
// it). Declared here: gcc 12 on Debian does not install
// <sanitizer/allocator_interface.h>, only clang does.
extern "C" size_t __sanitizer_get_current_allocated_bytes();
#endif

namespace kvpool {

uint64_t HeapBytesInUse() {
#ifdef KVPOOL_SANITIZER_ALLOCATOR
  return static_cast<uint64_t>(__sanitizer_get_current_allocated_bytes());
#else
  struct mallinfo2 mi = mallinfo2();
  return static_cast<uint64_t>(mi.uordblks) + static_cast<uint64_t>(mi.hblkhd);
#endif
}

void ReleaseFreeHeap() {
#ifndef KVPOOL_SANITIZER_ALLOCATOR
  malloc_trim(0);
#endif
}

std::string HeapStatsText() {
#ifdef KVPOOL_SANITIZER_ALLOCATOR
  return "allocator: sanitizer\nin_use: " + std::to_string(HeapBytesInUse()) + "\n";
#else
  struct mallinfo2 mi = mallinfo2();
  return "allocator: glibc\n"
         "arena: " + std::to_string(mi.arena) + "\n"
         "in_use: " + std::to_string(mi.uordblks) + "\n"
         "free: " + std::to_string(mi.fordblks) + "\n"
         "mmapped: " + std::to_string(mi.hblkhd) + "\n"
         "top_releasable: " + std::to_string(mi.keepcost) + "\n";
#endif
}

uint64_t HeapBytesFree() {
#ifdef KVPOOL_SANITIZER_ALLOCATOR
  return 0;
#else
  return static_cast<uint64_t>(mallinfo2().fordblks);
#endif
}

}  // namespace kvpool
