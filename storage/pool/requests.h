// Helpers of the requester side of batch reads and writes (batch.cc,
// batch_set.cc).
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "storage/pool/pool.h"

namespace kvpool::pool {

// When a request must end, on the pool's monotonic clock: a step of the
// wall clock neither cuts its calls short nor lets them outlive it.
struct Deadline {
  const PoolOptions* options = nullptr;
  int64_t at_ms = 0;
  static Deadline After(const PoolOptions& o, int ms) { return {&o, o.mono_ms() + ms}; }
  // What the next call may take: at least 1 ms (a call past the deadline
  // fails quickly rather than not at all).
  int RemainingMs() const {
    return static_cast<int>(std::max<int64_t>(1, at_ms - options->mono_ms()));
  }
};

// Indices of `keys` grouped by the nodes that take their writes: the owner,
// or with replicas every copy that is up (a key is then in several parts);
// parts[nodes()] holds keys no copy can take. WriteNodes is asked once per
// owner (it checks every copy's state), so the keys of one owner share one
// answer. stride 2: keys at kvs[0], kvs[2]...
std::vector<std::vector<uint32_t>> GroupForWrite(const Pool& pool,
                                                 std::span<const std::string_view> keys,
                                                 size_t stride = 1);

}  // namespace kvpool::pool
