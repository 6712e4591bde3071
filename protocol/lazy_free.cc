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

  void Add(std::string* s) { Add({s, nullptr, s->capacity()}); }
  void Add(char* array, size_t bytes) { Add({nullptr, array, bytes}); }

  void Wait() {
    std::unique_lock<std::mutex> l(mu_);
    idle_cv_.wait(l, [&] { return queue_.empty() && !busy_; });
  }

  uint64_t freed() {
    std::lock_guard<std::mutex> l(mu_);
    return freed_;
  }

 private:
  // A string, or an array from new char[bytes].
  struct Garbage {
    std::string* s;
    char* array;
    size_t bytes;
  };

  void Add(Garbage g) {
    {
      std::lock_guard<std::mutex> l(mu_);
      queue_.push_back(g);
    }
    cv_.notify_all();
  }

  void Run() {
    for (;;) {
      std::vector<Garbage> batch;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return !queue_.empty(); });
        batch.swap(queue_);
        busy_ = true;
      }
      uint64_t bytes = 0;
      for (const Garbage& g : batch) {  // the frees
        bytes += g.bytes;
        delete g.s;
        delete[] g.array;
      }
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
  std::vector<Garbage> queue_;  // guarded by mu_
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

void DeleteArrayLater(char* array, size_t bytes) {
  if (bytes < kLazyFreeMinBytes) {
    delete[] array;
    return;
  }
  TheFreer().Add(array, bytes);
}

void WaitForLazyFrees() { TheFreer().Wait(); }

uint64_t LazyFreedBytes() { return TheFreer().freed(); }

}  // namespace kvpool::protocol
