// A counter that many threads add to and few read (INFO, /metrics): one
// cache line per slot, each thread adds to its own slot, reads sum them.
// A plain shared std::atomic would bounce its line between the I/O threads
// on every command. Same surface as std::atomic<uint64_t> where used.
#pragma once

#include <atomic>
#include <cstdint>

namespace kvpool {

class Counter {
 public:
  static constexpr int kSlots = 16;

  void fetch_add(uint64_t n, std::memory_order = std::memory_order_relaxed) {
    slots_[Slot()].v.fetch_add(n, std::memory_order_relaxed);
  }
  uint64_t load(std::memory_order = std::memory_order_relaxed) const {
    uint64_t sum = 0;
    for (const auto& s : slots_) sum += s.v.load(std::memory_order_relaxed);
    return sum;
  }
  operator uint64_t() const { return load(); }
  Counter& operator=(uint64_t v) {
    store(v);
    return *this;
  }
  // Not atomic with concurrent adds (CONFIG RESETSTAT tolerates that).
  void store(uint64_t v, std::memory_order = std::memory_order_relaxed) {
    for (auto& s : slots_) s.v.store(0, std::memory_order_relaxed);
    slots_[0].v.store(v, std::memory_order_relaxed);
  }

 private:
  static int Slot() {
    static std::atomic<int> next{0};
    static thread_local int slot = next.fetch_add(1, std::memory_order_relaxed) % kSlots;
    return slot;
  }
  struct alignas(64) Cell {
    std::atomic<uint64_t> v{0};
  };
  Cell slots_[kSlots];
};

}  // namespace kvpool
