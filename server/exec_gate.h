// Isolation for MULTI/EXEC across I/O threads: every command runs holding
// its thread's slot shared; EXEC holds every slot, so no other client's
// command runs in the middle of a transaction (as in single-threaded Redis).
// Each thread locks only its own cache line, so the common path never
// bounces a line between cores.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

namespace kvpool {

class ExecGate {
 public:
  explicit ExecGate(int threads) : slots_(std::make_unique<Slot[]>(threads)), n_(threads) {}

  // Re-entrant on one thread: a command that runs another command in
  // process (a pool broadcast's local part, EXEC's queued commands) does not
  // lock again what its thread already holds.
  void LockShared(int thread) {
    if (depth_++ == 0) slots_[thread].mu.lock();
  }
  void UnlockShared(int thread) {
    if (--depth_ == 0) slots_[thread].mu.unlock();
  }
  // Must not be called while holding a shared slot.
  void LockExclusive() {
    if (depth_++ > 0) return;
    for (int i = 0; i < n_; ++i) slots_[i].mu.lock();
  }
  void UnlockExclusive() {
    if (--depth_ > 0) return;
    for (int i = n_ - 1; i >= 0; --i) slots_[i].mu.unlock();
  }

 private:
  struct alignas(64) Slot {
    std::mutex mu;
  };
  std::unique_ptr<Slot[]> slots_;
  int n_;
  // How deep this thread is in the gate (shared or exclusive).
  static inline thread_local int depth_ = 0;
};

}  // namespace kvpool
