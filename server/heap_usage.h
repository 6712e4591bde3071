// Bytes the process's allocator has handed out and not yet freed: what
// INFO's used_memory adds to the items in the segment (connections, the
// index, pool buffers, replies in flight). glibc's count (mallinfo2: small
// chunks in every arena plus mmapped blocks) in a plain build; the
// sanitizer allocator's count in an ASan or TSan build, which replaces
// malloc. Takes every arena's lock for a moment: for INFO, MEMORY STATS and
// /metrics, not for a per-command path.
#pragma once

#include <cstdint>
#include <string>

namespace kvpool {

uint64_t HeapBytesInUse();
// Bytes the allocator holds free for reuse (glibc: mallinfo2's fordblks,
// some of it resident, some given back by malloc_trim); 0 under a
// sanitizer's allocator.
uint64_t HeapBytesFree();
// Gives the allocator's free pages back to the kernel (glibc: malloc_trim;
// nothing under a sanitizer). For MEMORY PURGE, and for the cron once much
// is free (Server::OnCron).
void ReleaseFreeHeap();
// The allocator's figures as text, a "name: bytes" line each (glibc's
// mallinfo2, or the sanitizer allocator's), for MEMORY MALLOC-STATS.
std::string HeapStatsText();

}  // namespace kvpool
