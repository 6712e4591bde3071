#include "protocol/lazy_free.h"

#include <pthread.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace kvpool::protocol {

namespace {

class Freer {
 public:
  Freer() {
    std::thread t([this] { Run(); });
    pthread_setname_np(t.native_handle(), "kvpool-free");
    t.detach();  // lives as long as the process; Freer is never destroyed
  }

  void Add(std::string* s) {
    {
      std::lock_guard<std::mutex> l(mu_);
      queue_.emplace_back(s);
    }
    cv_.notify_all();
  }

  void Wait() {
    std::unique_lock<std::mutex> l(mu_);
    idle_cv_.wait(l, [&] { return queue_.empty() && !busy_; });
  }

  uint64_t freed() {
    std::lock_guard<std::mutex> l(mu_);
    return freed_;
  }

 private:
  void Run() {
    for (;;) {
      std::vector<std::unique_ptr<std::string>> batch;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return !queue_.empty(); });
        batch.swap(queue_);
        busy_ = true;
      }
      uint64_t bytes = 0;
      for (auto& s : batch) bytes += s->capacity();
      batch.clear();  // the frees
      {
        std::lock_guard<std::mutex> l(mu_);
        freed_ += bytes;
        busy_ = false;
      }
      idle_cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::vector<std::unique_ptr<std::string>> queue_;  // guarded by mu_
  bool busy_ = false;                                 // guarded by mu_
  uint64_t freed_ = 0;                                // guarded by mu_
};

Freer& TheFreer() {
  static Freer* f = new Freer();  // never destroyed: its thread outlives static destructors
  return *f;
}

}  // namespace

void DeleteLater(std::string* s) {
  if (s->capacity() < kLazyFreeMinBytes) {
    delete s;
    return;
  }
  TheFreer().Add(s);
}

void WaitForLazyFrees() { TheFreer().Wait(); }

uint64_t LazyFreedBytes() { return TheFreer().freed(); }

}  // namespace kvpool::protocol
