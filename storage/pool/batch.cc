// The requester side of batch reads, exists and deletes (MSET is in
// batch_set.cc): split by owner, run the
// local part on the Store, one call per remote owner (more when a part is
// larger than one call may carry), all in flight at once, and write each
// result back at its key's original index.
#include <algorithm>
#include <atomic>
#include <map>

#include <spdlog/spdlog.h>

#include "storage/pool/pool_impl.h"
#include "storage/pool/requests.h"

namespace kvpool::pool {

namespace {

// Keys of `parts` (grouped by node) bound for another node: RouteCounters.
void CountElsewhere(const Pool& pool, const std::vector<std::vector<uint32_t>>& parts) {
  size_t n = 0;
  for (int node = 0; node < pool.nodes(); ++node)
    if (node != pool.self()) n += parts[node].size();
  if (n != 0) pool.routed().keys_elsewhere.fetch_add(n, std::memory_order_relaxed);
}

// Indices of `keys` grouped by the node that answers their reads (the
// owner, or with replicas the first copy in sync); parts[nodes()] holds keys
// no copy can answer.
std::vector<std::vector<uint32_t>> GroupForRead(const Pool& pool,
                                                std::span<const std::string_view> keys) {
  std::vector<std::vector<uint32_t>> parts(pool.nodes() + 1);
  for (size_t i = 0; i < keys.size(); ++i) {
    int node = pool.ReadNode(pool.OwnerOf(keys[i]));
    parts[node < 0 ? pool.nodes() : node].push_back(static_cast<uint32_t>(i));
  }
  CountElsewhere(pool, parts);
  return parts;
}

// A read from a node that is up failed (a call timed out, the link broke,
// a malformed reply): the keys read as unavailable. Logged at most once a
// second, so an operator can tell such a miss from a key that is not there.
void WarnReadFailed(int64_t now, const std::string& addr, size_t keys, uint64_t bytes,
                    const Status& s) {
  static std::atomic<int64_t> last_ms{-1000};
  int64_t last = last_ms.load(std::memory_order_relaxed);
  if (now - last < 1000 || !last_ms.compare_exchange_strong(last, now)) return;
  spdlog::warn("pool: a read of {} key(s){} from {} failed: {}", keys,
               bytes ? fmt::format(" ({} bytes)", bytes) : std::string(), addr, s.ToString());
}

// Indices of `keys` grouped by the primary of their slots (the first copy
// in sync, which orders their writes); parts[nodes()] holds keys no copy
// can take.
std::vector<std::vector<uint32_t>> GroupForOrderedWrite(const Pool& pool,
                                                        std::span<const std::string_view> keys) {
  std::vector<std::vector<uint32_t>> parts(pool.nodes() + 1);
  std::vector<int> primary_of(pool.nodes(), -2);
  for (size_t i = 0; i < keys.size(); ++i) {
    int owner = pool.OwnerOf(keys[i]);
    if (primary_of[owner] == -2)
      primary_of[owner] = pool.WriteNodes(owner).empty() ? -1 : pool.ReadNode(owner);
    int p = primary_of[owner];
    parts[p < 0 ? pool.nodes() : p].push_back(static_cast<uint32_t>(i));
  }
  CountElsewhere(pool, parts);
  return parts;
}

// The key list body of keys[idx[begin]] .. keys[idx[end - 1]].
std::string KeysBody(int db, std::span<const std::string_view> keys,
                     const std::vector<uint32_t>& idx, size_t begin, size_t end) {
  return pool::KeysBody(db, end - begin, [&](size_t i) { return keys[idx[begin + i]]; });
}

}  // namespace

std::vector<std::vector<uint32_t>> GroupForWrite(const Pool& pool,
                                                 std::span<const std::string_view> keys,
                                                 size_t stride) {
  std::vector<std::vector<uint32_t>> parts(pool.nodes() + 1);
  std::vector<std::vector<int>> to(pool.nodes());
  std::vector<bool> known(pool.nodes(), false);
  for (size_t i = 0; i < keys.size(); i += stride) {
    int owner = pool.OwnerOf(keys[i]);
    if (!known[owner]) {
      to[owner] = pool.WriteNodes(owner);
      known[owner] = true;
    }
    if (to[owner].empty()) parts[pool.nodes()].push_back(static_cast<uint32_t>(i));
    for (int node : to[owner]) parts[node].push_back(static_cast<uint32_t>(i));
    // Bound for another node unless its primary is this one.
    if (to[owner].empty() || to[owner][0] != pool.self())
      pool.routed().keys_elsewhere.fetch_add(1, std::memory_order_relaxed);
  }
  return parts;
}

// ---------------------------------------------------------------- MultiGet

namespace {

// The chunks of one large value being fetched.
struct Fetch {
  bool changed = false, failed = false;
  Status error;  // the first failed chunk's
  uint64_t new_total = 0, new_version = 0;
  // Chunks that arrived before the ones ahead of them, by offset, until the
  // value reaches them (at most the call window's worth).
  std::map<uint64_t, std::string> early;
  uint64_t total = 0;  // bytes expected
};

struct GetOp : std::enable_shared_from_this<GetOp> {
  Pool* pool;
  transport::Transport* transport;
  storage::Store* store;  // for a retry that lands on this node
  int lane, db;
  Deadline deadline;
  size_t chunk;
  size_t max_keys;  // per call (pool-max-batch)
  std::vector<std::string_view> keys;
  std::vector<GetResult> results;
  int pending = 0;
  Pool::GetDone done;

  void Finish() {
    if (--pending == 0) done(results);
  }
  // An unavailable key carries no bytes.
  void Fail(const std::vector<uint32_t>& idx, size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      results[idx[i]].state = GetResult::kUnavailable;
      results[idx[i]].DropRemote();
    }
  }
  void SendGets(int node, std::vector<uint32_t> idx, bool retry = true);
  // With replicas: keys whose read node failed are asked of another copy
  // in sync, once; false if none is left for any of them.
  bool Retry(int failed_node, const std::vector<uint32_t>& idx, size_t begin, size_t end);
  void FetchLarge(int node, uint32_t index, uint64_t total, uint64_t version, int attempts);
  // Every chunk call of a fetch ended (or the first failure did).
  void FetchDone(int node, uint32_t index, int attempts, Fetch& f);
};

bool GetOp::Retry(int failed_node, const std::vector<uint32_t>& idx, size_t begin, size_t end) {
  if (pool->replicas() == 1) return false;
  std::vector<std::vector<uint32_t>> by_node(pool->nodes());
  for (size_t i = begin; i < end; ++i) {
    int node = pool->ReadNodeAfter(pool->OwnerOf(keys[idx[i]]), failed_node);
    if (node < 0) return false;
    by_node[node].push_back(idx[i]);
  }
  for (int node = 0; node < pool->nodes(); ++node) {
    if (by_node[node].empty()) continue;
    if (node != pool->self()) {
      SendGets(node, std::move(by_node[node]), false);
      continue;
    }
    std::vector<std::string_view> local;
    for (uint32_t i : by_node[node]) local.push_back(keys[i]);
    std::vector<storage::ItemRef> items = store->MultiGet(db, local, deadline.options->wall_ms());
    for (size_t i = 0; i < items.size(); ++i) {
      GetResult& res = results[by_node[node][i]];
      res.DropRemote();
      res.state = items[i] ? GetResult::kFound : GetResult::kMissing;
      res.local = std::move(items[i]);
    }
  }
  return true;
}

void GetOp::SendGets(int node, std::vector<uint32_t> idx, bool retry) {
  auto self = shared_from_this();
  for (size_t begin = 0; begin < idx.size(); begin += max_keys) {
    size_t end = std::min(idx.size(), begin + max_keys);
    ++pending;
    transport::CallArgs args;
    args.opcode = kOpMultiGet;
    args.body = KeysBody(db, keys, idx, begin, end);
    args.bulk_out_capacity = chunk;
    transport->Call(
        lane, node, std::move(args), deadline.RemainingMs(),
        [self, node, idx, begin, end, retry](Status s, std::string_view reply,
                                             transport::BulkOut bulk) {
          std::string_view payload;
          if (s.ok()) s = ParseReplyStatus(reply, &payload);
          // The whole reply is checked before any key is acted on, so a
          // malformed one fails its keys without partial values or fetches.
          struct Entry {
            uint8_t state;
            uint64_t total, sent, version;
          };
          std::vector<Entry> entries(s.ok() ? end - begin : 0);
          Reader r(payload);
          size_t bytes = 0;
          for (Entry& e : entries) {
            if (!r.U8(&e.state) || !r.U64(&e.total) || !r.U64(&e.sent) || !r.U64(&e.version) ||
                (e.sent != 0 && e.sent != e.total) || e.sent > bulk.size() - bytes) {
              s = Status::Internal("malformed multiget reply");
              break;
            }
            bytes += e.sent;
          }
          if (!s.ok()) {
            WarnReadFailed(self->deadline.options->mono_ms(), self->pool->node(node).Addr(), end - begin, 0, s);
            if (!retry || !self->Retry(node, idx, begin, end)) self->Fail(idx, begin, end);
            return self->Finish();
          }
          size_t off = 0;
          std::vector<uint32_t> again;  // fit a later call
          // The values stay where they were received, not copied per key.
          std::shared_ptr<const void> held;
          if (bytes != 0) held = bulk.Keep();
          for (size_t i = begin; i < end; ++i) {
            const Entry& e = entries[i - begin];
            if (e.state != kKeyFound) continue;
            GetResult& res = self->results[idx[i]];
            if (e.sent == e.total) {
              res.state = GetResult::kFound;
              res.DropRemote();
              res.received = std::string_view(bulk.data() + off, e.sent);
              res.buffer = held;
              off += e.sent;
            } else if (e.total > self->chunk) {
              self->FetchLarge(node, idx[i], e.total, e.version, 0);
            } else {
              again.push_back(idx[i]);
            }
          }
          // Values that did not fit: their sizes are known now, so they are
          // packed into calls that each hold theirs whole, all in flight at
          // once (not fetched round after round).
          if (!again.empty()) {
            std::vector<uint32_t> pack;
            uint64_t pack_bytes = 0;
            for (uint32_t k : again) {
              uint64_t len = entries[std::find(idx.begin() + begin, idx.begin() + end, k) -
                                     (idx.begin() + begin)]
                                 .total;
              if (!pack.empty() && pack_bytes + len > self->chunk) {
                self->SendGets(node, std::move(pack));
                pack.clear();
                pack_bytes = 0;
              }
              pack.push_back(k);
              pack_bytes += len;
            }
            self->SendGets(node, std::move(pack));
          }
          self->Finish();
        });
  }
}

// A value larger than one call carries: its chunks, a few in flight at a
// time (each with a timeout of its own), each checked against the version
// first seen; if the key changes midway the fetch starts over (a few times,
// then it reads as unavailable).
void GetOp::FetchLarge(int node, uint32_t index, uint64_t total, uint64_t version,
                       int attempts) {
  auto self = shared_from_this();
  GetResult& res = results[index];
  if (attempts >= 4) {
    res.state = GetResult::kUnavailable;
    res.DropRemote();  // the last attempt's partial bytes
    return;
  }
  // Room without touching it: each chunk's pages are first written when it
  // lands, so no single step faults in the whole value.
  res.DropRemote();
  res.remote.reserve(total);
  auto f = std::make_shared<Fetch>();
  f->total = total;
  ++pending;  // the fetch as a whole
  const size_t step = chunk;
  const int db_ = db;
  CallInWindow(
      {.transport = transport,
       .lane = lane,
       .node = node,
       .n = (total + step - 1) / step,
       .timeout_ms = pool->timeout_ms(),
       .make =
           [self, index, version, total, step, db_](size_t i) {
             uint64_t off = i * step, len = std::min<uint64_t>(step, total - off);
             transport::CallArgs args;
             args.opcode = kOpGetChunk;
             Writer w(&args.body);
             w.U32(static_cast<uint32_t>(db_));
             w.Bytes(self->keys[index]);
             w.U64(version);
             w.U64(off);
             w.U64(len);
             args.bulk_out_capacity = len;
             return args;
           },
       .reply =
           [self, f, index, total, step](size_t i, Status s, std::string_view reply,
                                         std::string_view bulk) {
             uint64_t off = i * step, len = std::min<uint64_t>(step, total - off);
             std::string_view payload;
             if (s.ok()) s = ParseReplyStatus(reply, &payload);
             Reader r(payload);
             uint8_t state = 0;
             uint64_t now_total = 0, now_version = 0;
             if (s.ok() && (!r.U8(&state) || !r.U64(&now_total) || !r.U64(&now_version)))
               s = Status::Internal("malformed chunk reply");
             if (!s.ok()) return s;
             std::string& out = self->results[index].remote;
             if (state == kKeyFound && bulk.size() == len) {
               // In order (the usual case: one link answers in order), the
               // chunk is appended: one pass over its bytes. One that comes
               // early waits aside: zero-filling the room up to it would
               // fault in most of a large value in one turn of the loop.
               if (out.size() == off) {
                 out.append(bulk.data(), len);
                 for (auto it = f->early.begin(); it != f->early.end() && it->first == out.size();
                      it = f->early.erase(it))
                   out.append(it->second);
               } else if (off > out.size()) {
                 f->early.emplace(off, std::string(bulk));
               } else {
                 memcpy(out.data() + off, bulk.data(), std::min<uint64_t>(len, out.size() - off));
               }
               return Status::OK();
             }
             f->changed = true;
             f->new_total = state == kKeyFound || state == kKeyChanged ? now_total : 0;
             f->new_version = state == kKeyFound || state == kKeyChanged ? now_version : 0;
             return Status::Aborted("changed");  // no more chunks of this version
           },
       .done = [self, f, node, index, attempts](Status s) {
         if (!s.ok() && !f->changed) {
           f->failed = true;
           f->error = std::move(s);
         }
         self->FetchDone(node, index, attempts, *f);
       }});
}

void GetOp::FetchDone(int node, uint32_t index, int attempts, Fetch& f) {
  GetResult& res = results[index];
  if (!f.failed && !f.changed && res.remote.size() != f.total) {
    f.failed = true;  // a chunk never came (cannot happen with every reply OK)
    f.error = Status::Internal("chunks missing from a value read in steps");
  }
  if (f.failed) {
    WarnReadFailed(deadline.options->mono_ms(), pool->node(node).Addr(), 1, res.remote.capacity(), f.error);
    res.state = GetResult::kUnavailable;
    res.DropRemote();
  } else if (!f.changed) {
    res.state = GetResult::kFound;
  } else if (f.new_total == 0 && f.new_version == 0) {
    res.state = GetResult::kMissing;
    res.DropRemote();
  } else if (f.new_total <= chunk) {
    res.DropRemote();
    SendGets(node, {index});
  } else {
    FetchLarge(node, index, f.new_total, f.new_version, attempts + 1);
  }
  Finish();
}

}  // namespace

void Pool::MultiGet(int lane, int db, std::span<const std::string_view> keys, int64_t now_ms,
                    GetDone done) {
  auto op = std::make_shared<GetOp>();
  op->pool = this;
  op->transport = transport_;
  op->store = store_;
  op->lane = lane;
  op->db = db;
  op->deadline = Deadline::After(options_, options_.timeout_ms);
  op->chunk = impl_->chunk_bytes;
  op->max_keys = std::max<size_t>(1, options_.max_batch_keys);
  op->keys.assign(keys.begin(), keys.end());
  op->results.resize(keys.size());
  op->done = std::move(done);
  op->pending = 1;  // released at the end of this function

  auto parts = GroupForRead(*this, keys);
  for (int node = 0; node <= nodes(); ++node) {
    auto& idx = parts[node];
    if (idx.empty()) continue;
    if (node == nodes()) {
      op->Fail(idx, 0, idx.size());
    } else if (node == options_.self) {
      std::vector<std::string_view> local;
      local.reserve(idx.size());
      for (uint32_t i : idx) local.push_back(keys[i]);
      std::vector<storage::ItemRef> items = store_->MultiGet(db, local, now_ms);
      for (size_t i = 0; i < idx.size(); ++i) {
        if (!items[i]) continue;
        op->results[idx[i]].state = GetResult::kFound;
        op->results[idx[i]].local = std::move(items[i]);
      }
    } else if (!NodeUp(node)) {
      op->Fail(idx, 0, idx.size());
    } else {
      op->SendGets(node, std::move(idx));
    }
  }
  op->Finish();
}

// ------------------------------------------------- MultiExists and MultiDel

// Not in an anonymous namespace: Pool befriends it (an ordered delete here
// relays through Pool::Impl).

// Exists and Touch: asked of the node that answers reads (with replicas, a failed
// call is asked of the next copy in sync, once). Del: sent to every copy
// that takes writes; a key reads as removed if a copy removed it, and as
// failed (-1) if any copy could not answer. `touch` runs before a local
// delete (a syncing replica keeps track of what it was told).
struct FlagsOp : std::enable_shared_from_this<FlagsOp> {
  Pool* pool;
  transport::Transport* transport;
  storage::Store* store;
  uint16_t opcode;
  int lane, db;
  int64_t now_ms;
  Deadline deadline;
  size_t max_keys;
  std::vector<std::string_view> keys;  // views: the caller keeps them until done
  std::function<void(int, std::string_view)> touch;
  std::vector<int8_t> results;
  int pending = 1;
  Pool::ExistsDone done;
  // Del with replicas: sent to each key's primary (kOpOrderedDel), which
  // relays the deletes to the other copies.
  bool ordered = false;

  void Finish() {
    if (--pending == 0) done(results);
  }
  // One copy's answer for key i: a failure sticks.
  static void Merge(int8_t& r, int8_t v) {
    if (r >= 0) r = v < 0 ? -1 : std::max(r, v);
  }
  bool reads() const { return opcode == kOpMultiExists || opcode == kOpMultiTouch; }
  void Local(const std::vector<uint32_t>& idx) {
    if (opcode == kOpMultiTouch) {
      for (uint32_t i : idx) Merge(results[i], store->Get(db, keys[i], now_ms) ? 1 : 0);
      return;
    }
    if (opcode == kOpMultiExists) {
      // Never touches LRU or TTL; one lock per shard.
      std::vector<std::string_view> ks;
      ks.reserve(idx.size());
      for (uint32_t i : idx) ks.push_back(keys[i]);
      std::vector<uint8_t> yes = store->MultiExists(db, ks, now_ms);
      for (size_t j = 0; j < idx.size(); ++j) Merge(results[idx[j]], yes[j] ? 1 : 0);
      return;
    }
    for (uint32_t i : idx) {
      touch(db, keys[i]);
      Merge(results[i], store->Del(db, keys[i], now_ms) ? 1 : 0);
    }
    if (!ordered) return;
    std::vector<std::string> ks;
    for (uint32_t i : idx) ks.emplace_back(keys[i]);
    ++pending;
    pool->impl_->Relay(lane, db, std::move(ks), [self = shared_from_this(), idx](Status s) {
      if (!s.ok())
        for (uint32_t i : idx) self->results[i] = -1;
      self->Finish();
    });
  }
  void Send(int node, const std::vector<uint32_t>& idx, bool retry);
  // Exists with replicas: keys whose copy failed go to the next copy in sync.
  void Retry(int failed, const std::vector<uint32_t>& part);
};

void FlagsOp::Send(int node, const std::vector<uint32_t>& idx, bool retry) {
  auto self = shared_from_this();
  for (size_t begin = 0; begin < idx.size(); begin += max_keys) {
    size_t end = std::min(idx.size(), begin + max_keys);
    std::vector<uint32_t> part(idx.begin() + begin, idx.begin() + end);
    transport::CallArgs args;
    args.opcode = ordered ? static_cast<uint16_t>(kOpOrderedDel) : opcode;
    args.body = KeysBody(db, keys, idx, begin, end);
    args.reset_on_timeout = ordered || opcode == kOpMultiDel;
    ++pending;
    pool->impl_->WriteCall(lane, node, std::move(args), deadline.RemainingMs(),
                    [self, node, part, retry](Status s, std::string_view reply, std::string_view) {
                      std::string_view payload;
                      // A primary that took an ordered delete relayed it.
                      if (!s.ok() && self->opcode == kOpMultiDel && !self->ordered) {
                        std::vector<std::string_view> ks;
                        for (uint32_t i : part) ks.push_back(self->keys[i]);
                        self->pool->NoteWriteFailed(self->lane, node, self->db, ks, s);
                      }
                      if (s.ok()) s = ParseReplyStatus(reply, &payload);
                      if (s.ok() && payload.size() != part.size())
                        s = Status::Internal("malformed reply");
                      if (!s.ok() && retry && self->reads() &&
                          self->pool->replicas() > 1) {
                        self->Retry(node, part);
                        return self->Finish();
                      }
                      for (size_t i = 0; i < part.size(); ++i)
                        Merge(self->results[part[i]], s.ok() ? (payload[i] ? 1 : 0) : -1);
                      self->Finish();
                    });
  }
}

void FlagsOp::Retry(int failed, const std::vector<uint32_t>& part) {
  std::vector<std::vector<uint32_t>> by_node(pool->nodes());
  for (uint32_t i : part) {
    int node = pool->ReadNodeAfter(pool->OwnerOf(keys[i]), failed);
    if (node < 0) results[i] = -1;
    else by_node[node].push_back(i);
  }
  for (int node = 0; node < pool->nodes(); ++node) {
    if (by_node[node].empty()) continue;
    if (node == pool->self()) Local(by_node[node]);
    else Send(node, by_node[node], false);
  }
}

void KeyFlags(Pool* pool, transport::Transport* transport, storage::Store* store,
              uint16_t opcode, int lane, int db, std::span<const std::string_view> keys,
              int64_t now_ms, Deadline deadline, size_t max_keys,
              std::function<void(int, std::string_view)> touch, Pool::ExistsDone done) {
  auto op = std::make_shared<FlagsOp>();
  op->pool = pool;
  op->transport = transport;
  op->store = store;
  op->opcode = opcode;
  op->lane = lane;
  op->db = db;
  op->now_ms = now_ms;
  op->deadline = deadline;
  op->max_keys = max_keys;
  op->keys.assign(keys.begin(), keys.end());
  op->touch = std::move(touch);
  op->results.assign(keys.size(), 0);
  op->done = std::move(done);
  op->ordered = opcode == kOpMultiDel && pool->replicas() > 1;
  auto parts = op->reads()              ? GroupForRead(*pool, keys)
               : op->ordered            ? GroupForOrderedWrite(*pool, keys)
                                        : GroupForWrite(*pool, keys);
  for (int node = 0; node <= pool->nodes(); ++node) {
    auto& idx = parts[node];
    if (idx.empty()) continue;
    if (node == pool->nodes() || (node != pool->self() && !pool->NodeUp(node))) {
      for (uint32_t i : idx) op->results[i] = -1;
    } else if (node == pool->self()) {
      op->Local(idx);
    } else {
      op->Send(node, idx, true);
    }
  }
  op->Finish();
}

void Pool::MultiExists(int lane, int db, std::span<const std::string_view> keys, int64_t now_ms,
                       ExistsDone done) {
  KeyFlags(this, transport_, store_, kOpMultiExists, lane, db, keys, now_ms,
           Deadline::After(options_, options_.timeout_ms),
           std::max<size_t>(1, options_.max_batch_keys), nullptr, std::move(done));
}

void Pool::MultiTouch(int lane, int db, std::span<const std::string_view> keys, int64_t now_ms,
                      ExistsDone done) {
  KeyFlags(this, transport_, store_, kOpMultiTouch, lane, db, keys, now_ms,
           Deadline::After(options_, options_.timeout_ms),
           std::max<size_t>(1, options_.max_batch_keys), nullptr, std::move(done));
}

void Pool::MultiDel(int lane, int db, std::span<const std::string_view> keys, int64_t now_ms,
                    ExistsDone done) {
  Impl* impl = impl_.get();
  KeyFlags(this, transport_, store_, kOpMultiDel, lane, db, keys, now_ms,
           Deadline::After(options_, options_.timeout_ms),
           std::max<size_t>(1, options_.max_batch_keys),
           [impl](int d, std::string_view k) { impl->Touch(d, k, true); }, std::move(done));
}

}  // namespace kvpool::pool
