// Replicas (replica.cc, sync.cc): merges.
//
// A node that caught up without some copies of its slots (they were down)
// may lack writes only those copies took while it was away; they, back,
// may lack the writes it took since. Each side keeps what it has and takes
// the newer version of each key from the other: the returning copy by a
// catch-up that does not purge (Purge), this node by a merge once that
// copy is in sync again: a scan of the slots they share, each value stored
// over an older one only.
//
// Deletes: a node that deletes a key while another copy of it is down or
// has a merge pending remembers the delete's version (a tombstone). No
// catch-up or merge takes an older value of that key back from a copy
// (SyncOp::Apply), and once the copy serves again, and was merged from,
// the deletes are sent to it (kOpApply; it drops only an older value).
// Either side of a double pause may hold them: the one that deleted alone
// while the other was away, before or after catching up from no one.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "storage/pool/pool_impl.h"
#include "storage/pool/sync_op.h"

namespace kvpool::pool {

void Pool::Impl::MergeTick(int64_t now) {
  PushOwedTombstones();
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

void Pool::Impl::NoteDeleted(int db, std::string_view key, uint64_t version) {
  // Only while another copy of the key is down (the delete does not reach
  // it) or has a merge pending (it may hold an older value to merge).
  const uint64_t mask = pending_mask.load();
  const int owner = pool->OwnerOf(key);
  bool away = false;
  for (int i = 0; i < pool->replicas() && !away; ++i) {
    const int c = (owner + i) % pool->nodes();
    away = c != pool->self() && ((c < 64 ? (mask >> c) & 1 : mask != 0) || !pool->NodeUp(c));
  }
  if (!away) return;
  std::string id = KeyId(db, key);
  std::lock_guard<std::mutex> l(sync_mu);
  tombstones_dirty = true;
  auto it = tombstones.find(id);
  if (it != tombstones.end()) {
    it->second.version = std::max(it->second.version, version);
    it->second.sent = 0;
    return;
  }
  if (tombstones.size() >= kMaxTombstones) {
    if (!tombstones_full_logged)
      spdlog::warn("pool: {} deletes remembered while copies are away; later ones may come "
                   "back when they return", kMaxTombstones);
    tombstones_full_logged = true;
    return;
  }
  tombstones.emplace(std::move(id), Tombstone{version, 0});
}

bool Pool::Impl::Tombstoned(const std::string& id, uint64_t version) const {
  auto it = tombstones.find(id);
  return it != tombstones.end() && it->second.version >= version;
}

void Pool::Impl::PushOwedTombstones() {
  uint64_t serving = 0;
  for (int c = 0; c < pool->nodes() && c < 64; ++c)
    if (c != pool->self() && pool->Serving(c)) serving |= uint64_t{1} << c;
  const uint64_t pending = pending_mask.load();
  {
    std::lock_guard<std::mutex> l(sync_mu);
    if (tombstones.empty() ||
        (!tombstones_dirty && serving == tomb_serving && pending == tomb_pending))
      return;
    tombstones_dirty = false;
  }
  tomb_serving = serving;
  tomb_pending = pending;
  for (int c = 0; c < pool->nodes() && c < 64; ++c)
    if ((serving >> c) & 1) PushTombstones(c);
}

void Pool::Impl::PushTombstones(int node) {
  // (db, key, version) of the deletes of keys `node` holds a copy of.
  struct Gone {
    int db;
    std::string key;
    uint64_t version;
  };
  std::vector<Gone> gone;
  const uint64_t bit = uint64_t{1} << node;
  {
    std::lock_guard<std::mutex> l(sync_mu);
    // Kept while a merge from it is pending: the merge must not take an
    // older value back (sent once, and again after a newer delete).
    const bool keep = std::find(sync.merge_pending.begin(), sync.merge_pending.end(), node) !=
                      sync.merge_pending.end();
    for (auto it = tombstones.begin(); it != tombstones.end();) {
      Reader r(it->first);
      uint32_t db = 0;
      std::string_view key = std::string_view(it->first).substr(4);
      if (!r.U32(&db) || !IsCopy(node, key)) {
        ++it;
        continue;
      }
      if (!(it->second.sent & bit))
        gone.push_back({static_cast<int>(db), std::string(key), it->second.version});
      if (keep) {
        it->second.sent |= bit;
        ++it;
      } else {
        it = tombstones.erase(it);
      }
    }
    if (tombstones.empty()) tombstones_full_logged = false;
  }
  if (gone.empty()) return;
  std::sort(gone.begin(), gone.end(), [](const Gone& a, const Gone& b) { return a.db < b.db; });
  // Shared with the callbacks (one may run before the last call is made).
  auto all = std::make_shared<std::vector<Gone>>(std::move(gone));
  const std::vector<Gone>& list = *all;
  const size_t max_keys = std::max<size_t>(1, pool->options_.max_batch_keys);
  auto left = std::make_shared<size_t>(0);
  auto failed = std::make_shared<bool>(false);
  Impl* impl = this;
  const size_t total = list.size();
  for (size_t begin = 0; begin < list.size();) {
    size_t end = begin;
    while (end < list.size() && end - begin < max_keys && list[end].db == list[begin].db) ++end;
    transport::CallArgs args;
    args.opcode = kOpApply;
    Writer w(&args.body);
    w.U32(static_cast<uint32_t>(list[begin].db));
    w.U32(static_cast<uint32_t>(end - begin));
    for (size_t i = begin; i < end; ++i) {
      w.Bytes(list[i].key);
      w.U8(0);
      w.U64(list[i].version);
      w.I64(0);
      w.U64(0);
      w.U64(0);
    }
    ++*left;
    pool->transport_->Call(control_lane, node, std::move(args), pool->options_.timeout_ms,
                           [impl, node, left, failed, total, all](
                               Status s, std::string_view reply, std::string_view) {
                             std::string_view payload;
                             if (s.ok()) s = ParseReplyStatus(reply, &payload);
                             if (!s.ok() && !*failed) {
                               *failed = true;
                               // Remembered again (all of them: a batch may have
                               // failed after others landed; a second delete of a
                               // key is harmless), sent at a later heartbeat.
                               spdlog::warn("pool: deletes made while {} was away did not reach "
                                            "it ({}): sending them again",
                                            impl->pool->node(node).Addr(), s.ToString());
                               std::lock_guard<std::mutex> l(impl->sync_mu);
                               impl->tombstones_dirty = true;
                               for (const Gone& g : *all) {
                                 Tombstone& t = impl->tombstones[KeyId(g.db, g.key)];
                                 t.version = std::max(t.version, g.version);
                                 t.sent &= ~(uint64_t{1} << node);
                               }
                             }
                             if (--*left == 0 && !*failed)
                               spdlog::info("pool: {} deletes made while {} was away sent to it",
                                            total, impl->pool->node(node).Addr());
                           });
    begin = end;
  }
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
