// What INFO commandstats, latencystats and errorstats report, and the slow
// log (SLOWLOG). Every I/O thread updates them: per-command counters and
// latency histograms are relaxed atomics; error codes and the slow log sit
// behind a mutex (errors and slow commands are the rare case).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvpool {

// Log-linear buckets of microseconds: exact below 16 µs, then 16 per power
// of two (at most 1/16 = 6.25% off), up to 2^40 µs.
class LatencyHistogram {
 public:
  void Record(uint64_t us);
  // The value at percentile p (0 < p <= 100), µs; 0 when empty.
  double Percentile(double p) const;
  uint64_t Count() const;
  void Reset();

 private:
  static constexpr int kSub = 16, kPowers = 40;
  static int Bucket(uint64_t us);
  static double Value(int bucket);  // the middle of the bucket
  std::array<std::atomic<uint64_t>, kSub * (kPowers - 3)> b_{};
};

struct CommandCounters {
  std::atomic<uint64_t> calls{0};     // executed (here, or forwarded from here)
  std::atomic<uint64_t> usec{0};      // time spent in them, µs
  std::atomic<uint64_t> rejected{0};  // refused before running (arity, auth, OOM ...)
  std::atomic<uint64_t> failed{0};    // ran and answered an error
  LatencyHistogram latency;
};

class CommandStats {
 public:
  // One entry per command of the table, by its index there.
  explicit CommandStats(size_t commands);
  CommandCounters& at(size_t i) { return *c_[i]; }
  const CommandCounters& at(size_t i) const { return *c_[i]; }
  size_t size() const { return c_.size(); }
  // An error reply was sent: counted under its first word ("ERR",
  // "WRONGTYPE"), at most kMaxCodes distinct codes (then under the others'
  // total only), as Redis does.
  void CountError(std::string_view error_text, uint64_t n = 1);
  std::vector<std::pair<std::string, uint64_t>> Errors() const;
  uint64_t total_errors() const { return total_errors_.load(std::memory_order_relaxed); }
  void Reset();  // CONFIG RESETSTAT
  static constexpr size_t kMaxCodes = 128;

 private:
  std::vector<std::unique_ptr<CommandCounters>> c_;
  mutable std::mutex mu_;
  std::map<std::string, uint64_t, std::less<>> errors_;  // guarded by mu_
  std::atomic<uint64_t> total_errors_{0};
};

// SLOWLOG: commands that ran at least slowlog-log-slower-than µs, the
// newest first, at most slowlog-max-len of them.
class SlowLog {
 public:
  struct Entry {
    uint64_t id;
    int64_t unix_time;
    uint64_t duration_us;
    std::vector<std::string> args;  // cut as Redis: 32 arguments, 128 bytes each
    std::string client_addr, client_name;
  };
  void Add(std::span<const std::string_view> args, uint64_t duration_us, int64_t unix_time,
           std::string client_addr, std::string client_name, size_t max_len);
  std::vector<Entry> Get(size_t count) const;  // newest first
  size_t Len() const;
  void Reset();
  void Trim(size_t max_len);

 private:
  mutable std::mutex mu_;
  std::deque<Entry> entries_;  // guarded by mu_, newest at the front
  uint64_t next_id_ = 0;       // guarded by mu_
};

}  // namespace kvpool
