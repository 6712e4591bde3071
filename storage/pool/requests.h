// Helpers of the requester side of batch reads and writes (batch.cc,
// batch_set.cc).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "storage/pool/pool.h"
#include "storage/transport/transport.h"

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

// The bytes one call of a large transfer carries (a chunk of a value, a
// staged part of an MSET, a step of a local fill): at most this, so that no
// event loop spends more than a few ms on one call (copying it in or out:
// about 12 ms into fresh pages here, whose faults cost more than the copy;
// 8 MiB steps left loops late by 25-45 ms), and a small call on the same
// lane waits behind at most kTransferWindow of them.
inline constexpr size_t kTransferStep = 4u << 20;
// Longest client host a node announces (cluster-announce-ip) in its heartbeat answers.
inline constexpr size_t kMaxAnnouncedHost = 255;
// Calls of one transfer in flight at once: enough to keep the link busy
// while the owner handles the previous one.
inline constexpr size_t kTransferWindow = 2;
// A call that waits for `bytes` to move on (a large value the owner relays
// to its copies before it answers) may take pool-timeout-ms plus this much
// time: 1 ms per 32 KiB (a floor of 32 MB/s).
inline int TransferTimeoutMs(const PoolOptions& o, uint64_t bytes) {
  return static_cast<int>(std::min<uint64_t>(o.timeout_ms + bytes / (32u << 10), 1u << 30));
}

// Runs the calls make(0) .. make(n - 1) to `node` on `lane`, at most
// `window` in flight at once, each with a timeout of its own (a transfer
// of any size may take as long as it keeps moving). reply(i, status, body,
// bulk) judges call i's answer; after the first failure no call is made.
// done(the first failure, or OK) runs once, after every call made ended,
// maybe before this returns.
struct WindowedCalls {
  transport::Transport* transport;
  int lane, node;
  size_t n, window = kTransferWindow;
  int timeout_ms;
  std::function<transport::CallArgs(size_t i)> make;
  std::function<Status(size_t i, Status s, std::string_view reply, std::string_view bulk)> reply;
  std::function<void(Status)> done;
};
void CallInWindow(WindowedCalls calls);

}  // namespace kvpool::pool
