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

// Log-linear buckets of microseconds: exact below 8 µs, then 8 per power of
// two (at most 1/8 = 12.5% off), up to 2^36 µs.
class LatencyHistogram {
 public:
  void Record(uint64_t us);
  uint64_t Count() const;
  void Reset();
  // The value at percentile p (0 < p <= 100) of the samples of all `hs`
  // together, µs; 0 when there are none.
  static double Percentile(std::span<const LatencyHistogram* const> hs, double p);
  double Percentile(double p) const {
    const LatencyHistogram* self = this;
    return Percentile({&self, 1}, p);
  }
  // Samples of all `hs` whose bucket starts at or below `us` (LATENCY
  // HISTOGRAM's cumulative counts).
  static uint64_t AtMost(std::span<const LatencyHistogram* const> hs, uint64_t us);

 private:
  static constexpr int kSub = 8, kShift = 3, kPowers = 36;
  static int Bucket(uint64_t us);
  static double Value(int bucket);   // the middle of the bucket
  static uint64_t Lower(int bucket);  // the lowest value in it
  std::array<std::atomic<uint64_t>, kSub * (kPowers - kShift + 1)> b_{};
};

// One command's counters, as one thread (shard) sees them.
struct alignas(64) CommandCounters {
  std::atomic<uint64_t> calls{0};     // executed (here, or forwarded from here)
  std::atomic<uint64_t> usec{0};      // time spent in them, µs
  std::atomic<uint64_t> rejected{0};  // refused before running (arity, auth, OOM ...)
  std::atomic<uint64_t> failed{0};    // ran and answered an error
  LatencyHistogram latency;
};

class CommandStats {
 public:
  // One entry per command of the table, by its index there, in each of
  // kShards shards: a thread adds to its own shard (no cache line shared
  // between I/O threads on every command); reads add the shards up.
  static constexpr int kShards = 4;
  explicit CommandStats(size_t commands);
  // The calling thread's counters of command i.
  CommandCounters& Mine(size_t i);
  struct Totals {
    uint64_t calls = 0, usec = 0, rejected = 0, failed = 0;
  };
  Totals Sum(size_t i) const;
  // Command i's latency at percentile p over every shard, µs (0: none).
  double LatencyPercentile(size_t i, double p) const;
  uint64_t LatencyCount(size_t i) const;
  // Command i's histogram in every shard.
  std::array<const LatencyHistogram*, kShards> Histograms(size_t i) const;
  size_t size() const { return n_; }
  // An error reply was sent: counted under its first word ("ERR",
  // "WRONGTYPE"), at most kMaxCodes distinct codes (then under the others'
  // total only), as Redis does.
  void CountError(std::string_view error_text, uint64_t n = 1);
  std::vector<std::pair<std::string, uint64_t>> Errors() const;
  uint64_t total_errors() const { return total_errors_.load(std::memory_order_relaxed); }
  void Reset();  // CONFIG RESETSTAT
  static constexpr size_t kMaxCodes = 128;

 private:
  size_t n_;
  std::vector<std::unique_ptr<CommandCounters[]>> shards_;
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

// LATENCY: per event ("command", "fast-command"), the spikes at or over
// latency-monitor-threshold ms, one sample per second (the highest), the
// last kHistory of them, and the highest ever.
class LatencyMonitor {
 public:
  static constexpr size_t kHistory = 160;
  struct Sample {
    int64_t unix_time;
    uint64_t ms;
  };
  struct Event {
    std::string name;
    std::deque<Sample> samples;  // oldest first
    uint64_t max_ms = 0;
  };
  void Add(std::string_view event, uint64_t ms, int64_t unix_time);
  std::vector<Event> All() const;
  std::vector<Sample> History(std::string_view event) const;
  // Forgets the named events (all when empty); how many there were.
  size_t Reset(std::span<const std::string_view> events);

 private:
  mutable std::mutex mu_;
  std::map<std::string, Event, std::less<>> events_;  // guarded by mu_
};

}  // namespace kvpool
