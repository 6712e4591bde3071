// Replicas and eviction: a key evicted under maxmemory on one copy is
// dropped from its other copies too, so copies never disagree about it for
// long (one copy serving the value while another reads as a miss).
//
// The store reports each eviction under its shard lock; this node queues
// the key with a fingerprint of the value it dropped, and lane 0 sends the
// queue to the other copies every heartbeat (kOpEvicted). A copy drops the
// key only if it holds the same value: a write that reached it since (a
// newer value) is kept.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>

#include "storage/pool/pool_impl.h"

namespace kvpool::pool {

namespace {
// Bound on keys queued between two heartbeats; more are not propagated
// (counted) and those copies keep the key until it is evicted there too.
constexpr size_t kMaxQueued = 1 << 16;
// Head and tail: quick under the shard lock, and a rewrite with another
// value of the same length almost always differs there.
constexpr size_t kFingerprintBytes = 4096;
}  // namespace

uint64_t ValueFingerprint(std::string_view v) {
  std::hash<std::string_view> h;
  size_t n = std::min(v.size(), kFingerprintBytes);
  uint64_t a = h(v.substr(0, n));
  uint64_t b = v.size() > n ? h(v.substr(v.size() - std::min(v.size() - n, kFingerprintBytes))) : 0;
  return a ^ (b * 0x9e3779b97f4a7c15ull) ^ v.size();
}

void Pool::Impl::NoteEvicted(int db, std::string_view key, std::string_view value) {
  std::lock_guard<std::mutex> l(evicted_mu);
  if (evicted_q.size() >= kMaxQueued) {
    ++evictions_unsent;
    return;
  }
  evicted_q.push_back({db, std::string(key), value.size(), ValueFingerprint(value)});
}

void Pool::Impl::SendEvictions() {
  std::vector<EvictedKey> q;
  {
    std::lock_guard<std::mutex> l(evicted_mu);
    q.swap(evicted_q);
  }
  if (q.empty()) return;
  const int self = pool->self();
  const size_t max_keys = std::max<size_t>(1, pool->options_.max_batch_keys);
  // Per copy and db: one call per max_keys keys.
  std::vector<std::vector<size_t>> by_node(pool->nodes());
  for (size_t i = 0; i < q.size(); ++i)
    for (int c : pool->WriteNodes(pool->OwnerOf(q[i].key)))
      if (c != self) by_node[c].push_back(i);
  auto shared = std::make_shared<std::vector<EvictedKey>>(std::move(q));
  for (int node = 0; node < pool->nodes(); ++node) {
    auto& idx = by_node[node];
    std::stable_sort(idx.begin(), idx.end(),
                     [&](size_t a, size_t b) { return (*shared)[a].db < (*shared)[b].db; });
    for (size_t begin = 0; begin < idx.size();) {
      int db = (*shared)[idx[begin]].db;
      size_t end = begin;
      while (end < idx.size() && end - begin < max_keys && (*shared)[idx[end]].db == db) ++end;
      transport::CallArgs args;
      args.opcode = kOpEvicted;
      Writer w(&args.body);
      w.U32(static_cast<uint32_t>(db));
      w.U32(static_cast<uint32_t>(end - begin));
      for (size_t i = begin; i < end; ++i) {
        const EvictedKey& e = (*shared)[idx[i]];
        w.Bytes(e.key);
        w.U64(e.len);
        w.U64(e.fingerprint);
      }
      Impl* impl = this;
      size_t n = end - begin;
      pool->transport_->Call(control_lane, node, std::move(args), pool->options_.timeout_ms,
                             [impl, n, shared](Status s, std::string_view reply, std::string_view) {
                               std::string_view payload;
                               if (s.ok()) s = ParseReplyStatus(reply, &payload);
                               if (s.ok()) return;
                               std::lock_guard<std::mutex> l(impl->evicted_mu);
                               impl->evictions_unsent += n;
                             });
      begin = end;
    }
  }
}

void Pool::Impl::OnEvicted(InCall call) {
  storage::Store* store = pool->store_;
  Reader r(call->body());
  int db;
  uint32_t n;
  if (!ReadDb(r, store->databases(), &db) || !r.Count(&n, 20))
    return call->Reply(ErrorReply(MalformedRequest()));
  const int64_t now = pool->WallNow();
  uint64_t dropped = 0;
  for (uint32_t i = 0; i < n; ++i) {
    std::string_view key;
    uint64_t len, fingerprint;
    if (!r.Bytes(&key) || !r.U64(&len) || !r.U64(&fingerprint))
      return call->Reply(ErrorReply(MalformedRequest()));
    {
      storage::ItemRef it = store->Peek(db, key, now);
      if (!it || it.value().size() != len || ValueFingerprint(it.value()) != fingerprint) continue;
    }
    Touch(db, key, true);
    dropped += store->Del(db, key, now) ? 1 : 0;
  }
  {
    std::lock_guard<std::mutex> l(evicted_mu);
    evictions_applied += dropped;
  }
  call->Reply(OkReply());
}

}  // namespace kvpool::pool
