#include "bench/histogram.h"

#include <algorithm>
#include <cmath>

namespace kvbench {

int Histogram::BucketOf(uint64_t ns) {
  if (ns < kSub) return static_cast<int>(ns);
  int exp = 63 - __builtin_clzll(ns);  // >= kSubBits
  if (exp > kMaxExp) return kBuckets - 1;
  int sub = static_cast<int>(ns >> (exp - kSubBits)) - kSub;  // 0..63
  return kSub + (exp - kSubBits) * kSub + sub;
}

uint64_t Histogram::BucketLow(int b) {
  if (b < kSub) return static_cast<uint64_t>(b);
  int exp = (b - kSub) / kSub + kSubBits;
  uint64_t sub = static_cast<uint64_t>((b - kSub) % kSub) + kSub;
  return sub << (exp - kSubBits);
}

uint64_t Histogram::BucketHigh(int b) {
  if (b < kSub) return static_cast<uint64_t>(b);
  int exp = (b - kSub) / kSub + kSubBits;
  return BucketLow(b) + (uint64_t{1} << (exp - kSubBits)) - 1;
}

void Histogram::Record(uint64_t ns) {
  ++counts_[BucketOf(ns)];
  ++count_;
  min_ = std::min(min_, ns);
  max_ = std::max(max_, ns);
  sum_ += ns;
}

void Histogram::Merge(const Histogram& o) {
  for (int i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
  count_ += o.count_;
  min_ = std::min(min_, o.min_);
  max_ = std::max(max_, o.max_);
  sum_ += o.sum_;
}

uint64_t Histogram::Quantile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  if (q == 0) return min_;
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += counts_[b];
    if (seen >= rank) return std::clamp(BucketHigh(b), min_, max_);
  }
  return max_;
}

}  // namespace kvbench
