#include "server/command_stats.h"

#include <algorithm>
#include <bit>

namespace kvpool {

// ------------------------------------------------------------ histogram

int LatencyHistogram::Bucket(uint64_t us) {
  if (us < kSub) return static_cast<int>(us);
  int p = std::min(static_cast<int>(std::bit_width(us)) - 1, kPowers);  // floor(log2) >= kShift
  uint64_t sub = (us >> (p - kShift)) & (kSub - 1);
  return kSub + (p - kShift) * kSub + static_cast<int>(sub);
}

double LatencyHistogram::Value(int bucket) {
  if (bucket < kSub) return bucket;
  int p = (bucket - kSub) / kSub + kShift;
  uint64_t sub = static_cast<uint64_t>((bucket - kSub) % kSub);
  double lo = static_cast<double>((uint64_t{1} << p) + (sub << (p - kShift)));
  return lo + static_cast<double>(uint64_t{1} << (p - kShift)) / 2;
}

uint64_t LatencyHistogram::Lower(int bucket) {
  if (bucket < kSub) return static_cast<uint64_t>(bucket);
  int p = (bucket - kSub) / kSub + kShift;
  uint64_t sub = static_cast<uint64_t>((bucket - kSub) % kSub);
  return (uint64_t{1} << p) + (sub << (p - kShift));
}

uint64_t LatencyHistogram::AtMost(std::span<const LatencyHistogram* const> hs, uint64_t us) {
  uint64_t n = 0;
  const int buckets = static_cast<int>(hs[0]->b_.size());
  for (int i = 0; i < buckets && Lower(i) <= us; ++i)
    for (const LatencyHistogram* h : hs) n += h->b_[i].load(std::memory_order_relaxed);
  return n;
}

void LatencyHistogram::Record(uint64_t us) {
  int b = std::min<int>(Bucket(us), static_cast<int>(b_.size()) - 1);
  b_[b].fetch_add(1, std::memory_order_relaxed);
}

uint64_t LatencyHistogram::Count() const {
  uint64_t n = 0;
  for (const auto& c : b_) n += c.load(std::memory_order_relaxed);
  return n;
}

double LatencyHistogram::Percentile(std::span<const LatencyHistogram* const> hs, double p) {
  uint64_t total = 0;
  for (const LatencyHistogram* h : hs) total += h->Count();
  if (total == 0) return 0;
  // The smallest value with at least p% of the samples at or below it.
  auto rank = static_cast<uint64_t>(p / 100.0 * static_cast<double>(total) + 0.5);
  rank = std::clamp<uint64_t>(rank, 1, total);
  uint64_t seen = 0;
  const size_t buckets = hs[0]->b_.size();
  for (size_t i = 0; i < buckets; ++i) {
    for (const LatencyHistogram* h : hs) seen += h->b_[i].load(std::memory_order_relaxed);
    if (seen >= rank) return Value(static_cast<int>(i));
  }
  return Value(static_cast<int>(buckets) - 1);
}

void LatencyHistogram::Reset() {
  for (auto& c : b_) c.store(0, std::memory_order_relaxed);
}

// ----------------------------------------------------------- commands

CommandStats::CommandStats(size_t commands) : n_(commands) {
  for (int s = 0; s < kShards; ++s) shards_.push_back(std::make_unique<CommandCounters[]>(commands));
}

CommandCounters& CommandStats::Mine(size_t i) {
  static std::atomic<int> next{0};
  static thread_local int shard = next.fetch_add(1, std::memory_order_relaxed) % kShards;
  return shards_[shard][i];
}

CommandStats::Totals CommandStats::Sum(size_t i) const {
  Totals t;
  for (const auto& sh : shards_) {
    const CommandCounters& c = sh[i];
    t.calls += c.calls.load(std::memory_order_relaxed);
    t.usec += c.usec.load(std::memory_order_relaxed);
    t.rejected += c.rejected.load(std::memory_order_relaxed);
    t.failed += c.failed.load(std::memory_order_relaxed);
  }
  return t;
}

double CommandStats::LatencyPercentile(size_t i, double p) const {
  const LatencyHistogram* hs[kShards];
  for (int s = 0; s < kShards; ++s) hs[s] = &shards_[s][i].latency;
  return LatencyHistogram::Percentile(hs, p);
}

std::array<const LatencyHistogram*, CommandStats::kShards> CommandStats::Histograms(size_t i) const {
  std::array<const LatencyHistogram*, kShards> hs;
  for (int s = 0; s < kShards; ++s) hs[s] = &shards_[s][i].latency;
  return hs;
}

uint64_t CommandStats::LatencyCount(size_t i) const {
  uint64_t n = 0;
  for (const auto& sh : shards_) n += sh[i].latency.Count();
  return n;
}

void CommandStats::CountError(std::string_view text, uint64_t n) {
  total_errors_.fetch_add(n, std::memory_order_relaxed);
  std::string_view code = text.substr(0, text.find(' '));
  std::lock_guard<std::mutex> l(mu_);
  auto it = errors_.find(code);
  if (it != errors_.end()) {
    it->second += n;
  } else if (errors_.size() < kMaxCodes) {
    errors_.emplace(std::string(code), n);
  }
}

std::vector<std::pair<std::string, uint64_t>> CommandStats::Errors() const {
  std::lock_guard<std::mutex> l(mu_);
  return {errors_.begin(), errors_.end()};
}

void CommandStats::Reset() {
  for (auto& sh : shards_) {
    for (size_t i = 0; i < n_; ++i) {
      CommandCounters& c = sh[i];
      c.calls.store(0, std::memory_order_relaxed);
      c.usec.store(0, std::memory_order_relaxed);
      c.rejected.store(0, std::memory_order_relaxed);
      c.failed.store(0, std::memory_order_relaxed);
      c.latency.Reset();
    }
  }
  std::lock_guard<std::mutex> l(mu_);
  errors_.clear();
  total_errors_.store(0, std::memory_order_relaxed);
}

// ------------------------------------------------------------ slow log

namespace {

constexpr size_t kMaxArgs = 32, kMaxArgLen = 128;

std::vector<std::string> CutArgs(std::span<const std::string_view> args) {
  std::vector<std::string> out;
  size_t n = std::min(args.size(), kMaxArgs);
  // With more than 32 arguments, the 32nd says how many more there were.
  if (args.size() > kMaxArgs) n = kMaxArgs - 1;
  for (size_t i = 0; i < n; ++i) {
    std::string_view a = args[i];
    if (a.size() > kMaxArgLen) {
      out.push_back(std::string(a.substr(0, kMaxArgLen)) + "... (" +
                    std::to_string(a.size() - kMaxArgLen) + " more bytes)");
    } else {
      out.emplace_back(a);
    }
  }
  if (args.size() > kMaxArgs)
    out.push_back("... (" + std::to_string(args.size() - n) + " more arguments)");
  return out;
}

}  // namespace

void SlowLog::Add(std::span<const std::string_view> args, uint64_t duration_us, int64_t unix_time,
                  std::string client_addr, std::string client_name, size_t max_len) {
  Entry e{0, unix_time, duration_us, CutArgs(args), std::move(client_addr), std::move(client_name)};
  std::lock_guard<std::mutex> l(mu_);
  e.id = next_id_++;
  entries_.push_front(std::move(e));
  while (entries_.size() > max_len) entries_.pop_back();
}

std::vector<SlowLog::Entry> SlowLog::Get(size_t count) const {
  std::lock_guard<std::mutex> l(mu_);
  size_t n = std::min(count, entries_.size());
  return {entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(n)};
}

size_t SlowLog::Len() const {
  std::lock_guard<std::mutex> l(mu_);
  return entries_.size();
}

void SlowLog::Reset() {
  std::lock_guard<std::mutex> l(mu_);
  entries_.clear();
}

void SlowLog::Trim(size_t max_len) {
  std::lock_guard<std::mutex> l(mu_);
  while (entries_.size() > max_len) entries_.pop_back();
}

// ------------------------------------------------------ latency monitor

void LatencyMonitor::Add(std::string_view event, uint64_t ms, int64_t unix_time) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = events_.find(event);
  if (it == events_.end()) it = events_.emplace(std::string(event), Event{std::string(event), {}, 0}).first;
  Event& e = it->second;
  e.max_ms = std::max(e.max_ms, ms);
  if (!e.samples.empty() && e.samples.back().unix_time == unix_time) {
    e.samples.back().ms = std::max(e.samples.back().ms, ms);
    return;
  }
  e.samples.push_back(Sample{unix_time, ms});
  while (e.samples.size() > kHistory) e.samples.pop_front();
}

std::vector<LatencyMonitor::Event> LatencyMonitor::All() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<Event> out;
  for (const auto& [name, e] : events_) out.push_back(e);
  return out;
}

std::vector<LatencyMonitor::Sample> LatencyMonitor::History(std::string_view event) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = events_.find(event);
  if (it == events_.end()) return {};
  return {it->second.samples.begin(), it->second.samples.end()};
}

size_t LatencyMonitor::Reset(std::span<const std::string_view> events) {
  std::lock_guard<std::mutex> l(mu_);
  if (events.empty()) {
    size_t n = events_.size();
    events_.clear();
    return n;
  }
  size_t n = 0;
  for (std::string_view e : events) {
    auto it = events_.find(e);
    if (it != events_.end()) {
      events_.erase(it);
      ++n;
    }
  }
  return n;
}

}  // namespace kvpool
