// FutexMutex: a 4-byte mutex for the index shards (std::mutex is 40 bytes and
// there are databases x 256 shards). Uncontended lock/unlock is one atomic
// RMW each; a waiter spins briefly, then sleeps on a futex (three-state
// protocol from Drepper, "Futexes Are Tricky"), so a preempted holder does
// not make waiters burn a core. Satisfies BasicLockable (std::lock_guard).
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

namespace kvpool::storage {

class FutexMutex {
 public:
  FutexMutex() = default;
  FutexMutex(const FutexMutex&) = delete;
  FutexMutex& operator=(const FutexMutex&) = delete;

  void lock() {
    uint32_t c = 0;
    if (state_.compare_exchange_strong(c, 1, std::memory_order_acquire, std::memory_order_relaxed))
      return;
    LockSlow();
  }
  bool try_lock() {
    uint32_t c = 0;
    return state_.compare_exchange_strong(c, 1, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }
  void unlock() {
    if (state_.exchange(0, std::memory_order_release) == 2) Wake();
  }

 private:
  // 0 = free, 1 = locked, 2 = locked and maybe waiters.
  std::atomic<uint32_t> state_{0};

  void LockSlow() {
    for (int i = 0; i < 128; ++i) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
      uint32_t c = 0;
      if (state_.load(std::memory_order_relaxed) == 0 &&
          state_.compare_exchange_weak(c, 1, std::memory_order_acquire, std::memory_order_relaxed))
        return;
    }
    uint32_t c = state_.exchange(2, std::memory_order_acquire);
    while (c != 0) {
      syscall(SYS_futex, reinterpret_cast<uint32_t*>(&state_), FUTEX_WAIT_PRIVATE, 2, nullptr,
              nullptr, 0);
      c = state_.exchange(2, std::memory_order_acquire);
    }
  }
  void Wake() {
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&state_), FUTEX_WAKE_PRIVATE, 1, nullptr,
            nullptr, 0);
  }
};
static_assert(sizeof(FutexMutex) == 4);

}  // namespace kvpool::storage
