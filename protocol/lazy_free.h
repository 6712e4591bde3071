// Frees large heap strings and arrays on a background thread, as Redis's lazyfree does
// for big values: unmapping 300 MB of touched pages took 45-52 ms here, time
// the event loop that sent them would otherwise spend before its next
// client.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace kvpool::protocol {

// Strings with at least this much capacity are freed in the background.
inline constexpr size_t kLazyFreeMinBytes = 16u << 20;

// Takes `s` (a heap string) and deletes it: at once when small, else on the
// background thread, started on first use. Thread-safe.
void DeleteLater(std::string* s);

// The same for an array from new char[bytes] (a connection's input buffer
// that held a large request).
void DeleteArrayLater(char* array, size_t bytes);

// Tests: waits until every string handed over so far is freed; the bytes
// freed in the background since start.
void WaitForLazyFrees();
uint64_t LazyFreedBytes();

}  // namespace kvpool::protocol
