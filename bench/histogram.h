// Latency histogram, HDR-like: exact below 64 ns, then 64 linear
// sub-buckets per power of two (relative error under 1.6%), up to ~18 min.
// Cheap to record into (no allocation) and to merge across threads.
#pragma once

#include <array>
#include <cstdint>

namespace kvbench {

class Histogram {
 public:
  static constexpr int kSubBits = 6;
  static constexpr int kSub = 1 << kSubBits;  // 64
  static constexpr int kMaxExp = 40;          // values up to 2^40 ns
  static constexpr int kBuckets = kSub + (kMaxExp - kSubBits + 1) * kSub;

  void Record(uint64_t ns);
  void Merge(const Histogram& other);

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ ? static_cast<double>(sum_) / count_ : 0; }
  // The value at quantile q (0..1): the upper bound of the bucket holding the
  // ceil(q*count)-th smallest sample, clamped to [min, max]; q = 0 gives the
  // minimum. 0 if empty.
  uint64_t Quantile(double q) const;

  static int BucketOf(uint64_t ns);
  static uint64_t BucketLow(int b);
  static uint64_t BucketHigh(int b);  // inclusive

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
  unsigned __int128 sum_ = 0;
};

}  // namespace kvbench
