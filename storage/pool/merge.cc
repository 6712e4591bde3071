// Replicas (replica.cc, sync.cc): merges.
//
// A node that caught up without some copies of its slots (they were down)
// may lack writes only those copies took while it was away; they, back,
// may lack the writes it took since. Each side keeps what it has and takes
// the newer version of each key from the other: the returning copy by a
// catch-up that does not purge (Purge), this node by a merge once that
// copy is in sync again: a scan of the slots they share, each value stored
// over an older one only. A key deleted on one side while the other was
// away comes back (there are no tombstones).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "storage/pool/pool_impl.h"
#include "storage/pool/sync_op.h"

namespace kvpool::pool {

void Pool::Impl::MergeTick(int64_t now) {
  if (merge_op || !partial.load() || now < merge_retry_ms) return;
  const PoolOptions& o = pool->options_;
  int node = -1;
  {
    std::lock_guard<std::mutex> l(sync_mu);
    auto& pending = sync.merge_pending;
    for (auto it = pending.begin(); it != pending.end();) {
      // Up, never in sync since it started: it came back empty.
      if (health[*it].up.load() && health[*it].gen.load() == 0) {
        spdlog::warn("pool: {} came back empty: nothing to merge from it",
                     pool->node(*it).Addr());
        it = pending.erase(it);
      } else {
        ++it;
      }
    }
    SetPending(pending);
    if (pending.empty()) {
      merging.store(false);
      merge_ready_ms = 0;
      return;
    }
    for (int c : pending)
      if (pool->Serving(c)) {
        node = c;
        break;
      }
  }
  if (node < 0) return;
  // Writes begun before `merging` was set end within pool-timeout-ms; the
  // scan starts after them (each later one is touched, and so kept).
  if (!merging.load()) {
    merging.store(true);
    merge_ready_ms = now + std::max<int64_t>(o.heartbeat_ms, o.timeout_ms);
  }
  if (now < merge_ready_ms) return;
  auto op = std::make_shared<SyncOp>();
  op->pool = pool;
  op->impl = this;
  op->store = pool->store_;
  op->transport = pool->transport_;
  op->merge_node = node;
  op->slot_source.assign(kSlots, -1);
  SyncOp::Source src{node, std::string(kSlots / 8, '\0')};
  const SlotTable& t = pool->slots_;
  for (int s = 0; s < kSlots; ++s) {
    if (!t.HoldsSlot(o.self, s) || !t.HoldsSlot(node, s)) continue;
    op->slot_source[s] = node;
    src.bitmap[s / 8] |= static_cast<char>(1 << (s % 8));
  }
  op->sources.push_back(std::move(src));
  {
    std::lock_guard<std::mutex> l(sync_mu);
    op->flush_seq = flush_seq;
  }
  spdlog::info("pool: merging from {} (it was down when this node caught up)",
               pool->node(node).Addr());
  merge_op = op;
  op->Scan(0);
  op->Done();
}

void Pool::Impl::MergeDone(int node, bool ok) {
  std::shared_ptr<SyncOp> op = std::move(merge_op);
  merge_op.reset();
  std::lock_guard<std::mutex> l(sync_mu);
  if (syncing.load()) return;  // a catch-up began: it works out what is pending
  merging.store(false);
  merge_ready_ms = 0;
  touched.clear();
  recheck.clear();
  if (!ok || (op && op->flush_seq != flush_seq)) {
    spdlog::warn("pool: merge from {} did not finish; starting over", pool->node(node).Addr());
    merge_retry_ms = pool->MonoNow() + pool->options_.heartbeat_ms * 2;
    return;
  }
  std::vector<int> pending = sync.merge_pending;
  pending.erase(std::remove(pending.begin(), pending.end(), node), pending.end());
  SetPending(std::move(pending));
  spdlog::info("pool: merged from {} ({} keys taken in all)", pool->node(node).Addr(),
               sync.keys_merged);
}

void Pool::Impl::SetPending(std::vector<int> copies) {
  uint64_t mask = 0;
  for (int c : copies) mask |= c < 64 ? uint64_t{1} << c : ~uint64_t{0};
  sync.merge_pending = std::move(copies);
  // Before a ping can say this node is in sync (SyncDone drops `syncing`
  // after this), it says what it lacks.
  pending_mask.store(mask);
  partial.store(mask != 0);
}

}  // namespace kvpool::pool
