// Throughput and memory sanity benchmark for the Store (not a test).
//   store_bench [keys=1000000] [value_bytes=100] [threads=2]
// Prints single-thread SET/GET/MSET/MGET ops per CPU-second, multi-thread
// GET/SET ops per wall second,
// and bytes per key (used_memory and RSS growth).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "storage/segment/store.h"

using namespace kvpool::storage;

namespace {

constexpr int64_t kNow = 1'700'000'000'000;

size_t RssBytes() {
  long pages = 0, rss = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  if (std::fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
  std::fclose(f);
  return static_cast<size_t>(rss) * 4096;
}

// Timer: CPU time of this thread (robust when the machine is shared and the
// thread gets preempted); multi-thread sections use wall time.
struct Timer {
  static double CpuNow() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
  }
  double start = CpuNow();
};
double Seconds(const Timer& t) { return Timer::CpuNow() - t.start; }
double ProcessCpu() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}
double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string Key(size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "key:%012zu", i);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  const size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000000;
  const size_t vlen = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 100;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 2;
  // Read loops run at least this many operations (small key sets repeat).
  const size_t ops = std::max<size_t>(n, 2000000);
  std::vector<std::string> keys(n);
  for (size_t i = 0; i < n; ++i) keys[i] = Key(i);
  const std::string value(vlen, 'v');

  StoreOptions o;
  o.maxmemory = size_t{4} << 30;
  auto s = std::move(Store::Open(o).value());
  const size_t rss0 = RssBytes();

  Timer t0;
  for (size_t i = 0; i < n; ++i) {
    if (!s->Set(0, keys[i], value, SetOptions{}, kNow, nullptr).ok()) std::abort();
  }
  double set_s = Seconds(t0);
  const size_t rss1 = RssBytes();
  StoreStats st = s->GetStats();
  std::printf("keys=%zu value=%zuB key=%zuB\n", n, vlen, keys[0].size());
  std::printf("memory: used_memory %.1f B/key, segment_used %.1f B/key, RSS growth %.1f B/key\n",
              double(st.used_memory) / n, double(st.segment_used) / n, double(rss1 - rss0) / n);
  std::printf("1 thread SET (new keys)  %.2f M ops/s\n", n / set_s / 1e6);

  t0 = Timer();
  for (size_t i = 0; i < n; ++i) {
    if (!s->Set(0, keys[i], value, SetOptions{}, kNow, nullptr).ok()) std::abort();
  }
  std::printf("1 thread SET (overwrite) %.2f M ops/s\n", n / Seconds(t0) / 1e6);

  size_t sum = 0;
  t0 = Timer();
  for (size_t i = 0; i < ops; ++i) {
    ItemRef r = s->Get(0, keys[(i * 7919) % n], kNow);
    sum += static_cast<unsigned char>(r.value()[vlen / 2]);
  }
  std::printf("1 thread GET (random)    %.2f M ops/s\n", ops / Seconds(t0) / 1e6);
  t0 = Timer();
  for (size_t i = 0; i < ops; ++i) {
    ItemRef r = s->Get(0, keys[i % n], kNow);
    sum += static_cast<unsigned char>(r.value()[vlen / 2]);
  }
  std::printf("1 thread GET (in order)  %.2f M ops/s\n", ops / Seconds(t0) / 1e6);
  t0 = Timer();
  for (size_t i = 0; i < ops; ++i) {
    if (!s->Set(0, keys[i % n], value, SetOptions{}, kNow, nullptr).ok()) std::abort();
  }
  std::printf("1 thread SET (in order)  %.2f M ops/s\n", ops / Seconds(t0) / 1e6);

  const size_t batch = 100;
  t0 = Timer();
  std::vector<std::string_view> kvs;
  for (size_t i = 0; i + batch <= n; i += batch) {
    kvs.clear();
    for (size_t j = 0; j < batch; ++j) {
      kvs.push_back(keys[i + j]);
      kvs.push_back(value);
    }
    if (!s->MultiSet(0, kvs, false, kNow, nullptr).ok()) std::abort();
  }
  std::printf("1 thread MSET x%zu       %.2f M keys/s\n", batch, n / Seconds(t0) / 1e6);

  t0 = Timer();
  std::vector<std::string_view> ks;
  for (size_t i = 0; i + batch <= n; i += batch) {
    ks.clear();
    for (size_t j = 0; j < batch; ++j) ks.push_back(keys[((i + j) * 7919) % n]);
    for (auto& r : s->MultiGet(0, ks, kNow)) sum += r.value().size();
  }
  std::printf("1 thread MGET x%zu       %.2f M keys/s\n", batch, n / Seconds(t0) / 1e6);

  for (int mode = 0; mode < 2; ++mode) {
    auto w0 = std::chrono::steady_clock::now();
    const double c0 = ProcessCpu();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&, t] {
        size_t local = 0;
        for (size_t i = t; i < ops; i += threads) {
          const std::string& k = keys[(i * 7919) % n];
          if (mode == 0) {
            local += s->Get(0, k, kNow).value().size();
          } else if (!s->Set(0, k, value, SetOptions{}, kNow, nullptr).ok()) {
            std::abort();
          }
        }
        if (local == 42) std::puts("");
      });
    }
    for (auto& t : ts) t.join();
    const double wall = Seconds(w0), cpu = ProcessCpu() - c0;
    std::printf("%d threads %s            %.2f M ops/s wall, %.2f M ops per CPU-second\n", threads,
                mode == 0 ? "GET" : "SET", ops / wall / 1e6, ops / cpu / 1e6);
  }
  return sum == 42 ? 1 : 0;
}
