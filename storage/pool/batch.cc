// The requester side of batch reads and writes: split by owner, run the
// local part on the Store, one call per remote owner (more when a part is
// larger than one call may carry), all in flight at once, and write each
// result back at its key's original index.
#include <algorithm>
#include <atomic>

#include <spdlog/spdlog.h>

#include "storage/pool/pool_impl.h"

namespace kvpool::pool {

namespace {

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
  return parts;
}

// Indices of `keys` grouped by the nodes that take their writes: the owner,
// or with replicas every copy that is up (a key is then in several parts);
// parts[nodes()] holds keys no copy can take. WriteNodes is asked once per
// owner (it checks every copy's state), so the keys of one owner share one
// answer.
std::vector<std::vector<uint32_t>> GroupForWrite(const Pool& pool,
                                                 std::span<const std::string_view> keys,
                                                 size_t stride = 1) {
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
  }
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
  return parts;
}

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

// The key list body of keys[idx[begin]] .. keys[idx[end - 1]].
std::string KeysBody(int db, std::span<const std::string_view> keys,
                     const std::vector<uint32_t>& idx, size_t begin, size_t end) {
  return pool::KeysBody(db, end - begin, [&](size_t i) { return keys[idx[begin + i]]; });
}

}  // namespace

// ---------------------------------------------------------------- MultiGet

namespace {

// The chunks of one large value being fetched.
struct Fetch {
  int pending = 1;  // chunk calls in flight, plus the loop issuing them
  bool changed = false, failed = false;
  Status error;  // the first failed chunk's
  uint64_t new_total = 0, new_version = 0;
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
      results[idx[i]].remote.clear();
    }
  }
  void SendGets(int node, std::vector<uint32_t> idx, bool retry = true);
  // With replicas: keys whose read node failed are asked of another copy
  // in sync, once; false if none is left for any of them.
  bool Retry(int failed_node, const std::vector<uint32_t>& idx, size_t begin, size_t end);
  void FetchLarge(int node, uint32_t index, uint64_t total, uint64_t version, int attempts);
  // One chunk call of a fetch (or the loop issuing them) is done.
  void FetchPartDone(int node, uint32_t index, int attempts, Fetch& f);
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
      res.remote.clear();
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
                                             std::string_view bulk) {
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
          for (size_t i = begin; i < end; ++i) {
            const Entry& e = entries[i - begin];
            if (e.state != kKeyFound) continue;
            GetResult& res = self->results[idx[i]];
            if (e.sent == e.total) {
              res.state = GetResult::kFound;
              res.remote.assign(bulk.data() + off, e.sent);
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

// A value larger than one call carries: its chunks, all in flight at once,
// each checked against the version first seen; if the key changes midway
// the fetch starts over (a few times, then it reads as unavailable).
void GetOp::FetchLarge(int node, uint32_t index, uint64_t total, uint64_t version,
                       int attempts) {
  auto self = shared_from_this();
  GetResult& res = results[index];
  if (attempts >= 4) {
    res.state = GetResult::kUnavailable;
    res.remote.clear();  // the last attempt's partial bytes
    return;
  }
  res.remote.assign(total, '\0');
  auto f = std::make_shared<Fetch>();
  ++pending;  // the fetch as a whole
  for (uint64_t off = 0; off < total; off += chunk) {
    uint64_t len = std::min<uint64_t>(chunk, total - off);
    transport::CallArgs args;
    args.opcode = kOpGetChunk;
    Writer w(&args.body);
    w.U32(static_cast<uint32_t>(db));
    w.Bytes(keys[index]);
    w.U64(version);
    w.U64(off);
    w.U64(len);
    args.bulk_out_capacity = len;
    ++f->pending;
    transport->Call(
        lane, node, std::move(args), deadline.RemainingMs(),
        [self, f, node, index, off, len, attempts](Status s, std::string_view reply,
                                                   std::string_view bulk) {
          std::string_view payload;
          if (s.ok()) s = ParseReplyStatus(reply, &payload);
          Reader r(payload);
          uint8_t state = 0;
          uint64_t total = 0, version = 0;
          if (s.ok() && (!r.U8(&state) || !r.U64(&total) || !r.U64(&version)))
            s = Status::Internal("malformed chunk reply");
          GetResult& res = self->results[index];
          if (!s.ok()) {
            if (!f->failed) f->error = s;
            f->failed = true;
          } else if (state == kKeyFound && bulk.size() == len) {
            memcpy(res.remote.data() + off, bulk.data(), len);
          } else if (state == kKeyFound || state == kKeyChanged) {
            f->changed = true;
            f->new_total = total;
            f->new_version = version;
          } else {
            f->changed = true;  // gone meanwhile
            f->new_total = 0;
          }
          self->FetchPartDone(node, index, attempts, *f);
        });
  }
  // A chunk call may fail before Call returns: the fetch ends only once the
  // loop is done too.
  FetchPartDone(node, index, attempts, *f);
}

void GetOp::FetchPartDone(int node, uint32_t index, int attempts, Fetch& f) {
  if (--f.pending > 0) return;
  GetResult& res = results[index];
  if (f.failed) {
    WarnReadFailed(deadline.options->mono_ms(), pool->node(node).Addr(), 1, res.remote.size(), f.error);
    res.state = GetResult::kUnavailable;
    res.remote.clear();
  } else if (!f.changed) {
    res.state = GetResult::kFound;
  } else if (f.new_total == 0 && f.new_version == 0) {
    res.state = GetResult::kMissing;
    res.remote.clear();
  } else if (f.new_total <= chunk) {
    res.remote.clear();
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

// Exists: asked of the node that answers reads (with replicas, a failed
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
  void Local(const std::vector<uint32_t>& idx) {
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
    args.opcode = ordered ? kOpOrderedDel : opcode;
    args.body = KeysBody(db, keys, idx, begin, end);
    ++pending;
    transport->Call(lane, node, std::move(args), deadline.RemainingMs(),
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
                      if (!s.ok() && retry && self->opcode == kOpMultiExists &&
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
  auto parts = opcode == kOpMultiExists ? GroupForRead(*pool, keys)
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

void Pool::MultiDel(int lane, int db, std::span<const std::string_view> keys, int64_t now_ms,
                    ExistsDone done) {
  Impl* impl = impl_.get();
  KeyFlags(this, transport_, store_, kOpMultiDel, lane, db, keys, now_ms,
           Deadline::After(options_, options_.timeout_ms),
           std::max<size_t>(1, options_.max_batch_keys),
           [impl](int d, std::string_view k) { impl->Touch(d, k, true); }, std::move(done));
}

// ---------------------------------------------------------------- MultiSet

// Not in an anonymous namespace: Pool befriends it (it stores local parts
// and relays through Pool::Impl).

struct SetOp : std::enable_shared_from_this<SetOp> {
  Pool* pool;
  transport::Transport* transport;
  int lane, db;
  Deadline deadline;
  size_t chunk;
  std::vector<std::string_view> kvs;
  std::shared_ptr<const void> owner;  // keeps kvs' memory alive
  int pending = 1;
  std::vector<uint8_t> failed;  // per pair: some copy did not store it
  Status first_error;
  Pool::SetDone done;

  // pairs: indices of keys in kvs. node < 0: no copy could take them, `s`
  // says why.
  void Failed(int node, std::span<const uint32_t> pairs, const Status& s) {
    for (uint32_t p : pairs) failed[p / 2] = 1;
    if (first_error.ok() && node < 0) first_error = s;
    if (first_error.ok()) {
      std::string why = s.code() == Code::kOutOfMemory
                            ? "out of memory (maxmemory) on " + pool->node(node).Addr()
                            : pool->NodeDownError(node) + (s.message().empty() ? "" : " (" + s.message() + ")");
      first_error = Status(s.code(), why);
    }
  }
  void Finish() {
    if (--pending > 0) return;
    done(first_error, static_cast<size_t>(std::count(failed.begin(), failed.end(), 1)));
  }
  // A call to `node` carrying these pairs failed: it may take them late.
  void Missed(int node, std::span<const uint32_t> pairs, const Status& s) {
    std::vector<std::string_view> keys;
    for (uint32_t p : pairs) keys.push_back(kvs[p]);
    pool->NoteWriteFailed(lane, node, db, keys, s);
  }
  // With replicas: every part goes to its keys' primary (kOpOrderedSet, or
  // kOpPutEnd kPutEndOrdered), which relays it to the other copies.
  bool ordered = false;
  // pairs: indices of keys in kvs (values at +1).
  void SendSets(int node, const std::vector<uint32_t>& pairs, size_t begin, size_t end);
  // Pairs for one node: stored here, sent in one call, staged, or in chunks.
  void SendPart(int node, std::vector<uint32_t> pairs);
  // Ordered pairs whose primary is this node: stored with one fresh
  // version, then relayed to the other copies.
  void StoreOrderedHere(std::vector<uint32_t> pairs);
  // Stores `pairs` on `node` in steps, published there at once: `begin`
  // (its reply: a handle), the calls parts(handle) makes, all in flight
  // together, then kOpPutEnd, which publishes if every part arrived and
  // drops otherwise.
  void SendInSteps(int node, std::vector<uint32_t> pairs, transport::CallArgs begin,
                   std::function<std::vector<transport::CallArgs>(uint64_t handle)> parts);
  // A node's part that needs several calls (cuts: where each call starts):
  // staged call by call (kOpStageSet).
  void SendStaged(int node, std::vector<uint32_t> pairs, std::vector<size_t> cuts);
  // A value larger than a call carries, in chunks (kOpPutChunk). Not atomic
  // with the rest of its MSET.
  void SendLarge(int node, uint32_t pair);
  // The entries and values of pairs[begin, end) (kOpMultiSet, kOpStageSet).
  void AddPairs(transport::CallArgs* args, const std::vector<uint32_t>& pairs, size_t begin,
                size_t end);
};

void SetOp::AddPairs(transport::CallArgs* args, const std::vector<uint32_t>& pairs, size_t begin,
                     size_t end) {
  Writer w(&args->body);
  w.U32(static_cast<uint32_t>(end - begin));
  uint64_t off = 0;
  for (size_t i = begin; i < end; ++i) {
    std::string_view k = kvs[pairs[i]], v = kvs[pairs[i] + 1];
    w.Bytes(k);
    w.U64(v.size());
    w.U64(off);
    off += v.size();
    if (!v.empty()) args->bulk_in.push_back({const_cast<char*>(v.data()), v.size()});
  }
}

void SetOp::SendSets(int node, const std::vector<uint32_t>& pairs, size_t begin, size_t end) {
  transport::CallArgs args;
  args.opcode = ordered ? kOpOrderedSet : kOpMultiSet;
  Writer(&args.body).U32(static_cast<uint32_t>(db));
  AddPairs(&args, pairs, begin, end);
  // This node's copies of the part take their state from the primary's
  // reply, not from a call of their own.
  bool take = false;
  for (size_t i = begin; ordered && !take && i < end; ++i)
    take = pool->impl_->IsCopy(pool->self(), kvs[pairs[i]]);
  if (take) Writer(&args.body).U8(1);
  ++pending;
  std::vector<uint32_t> part(pairs.begin() + begin, pairs.begin() + end);
  auto self = shared_from_this();
  transport->Call(lane, node, std::move(args), deadline.RemainingMs(),
                  [self, node, take, part = std::move(part)](Status s, std::string_view reply,
                                                             std::string_view) {
                    std::string_view payload;
                    if (take) {
                      std::vector<std::string_view> keys;
                      for (uint32_t p : part) keys.push_back(self->kvs[p]);
                      s = self->pool->impl_->TakeOrdered(self->lane, node, self->db, keys, std::move(s), reply,
                                                         &payload);
                    }
                    // A primary that took the write has relayed it (or told
                    // the copy that missed it to catch up): nothing to note.
                    else if (!s.ok() && !self->ordered) self->Missed(node, part, s);
                    else if (s.ok()) s = ParseReplyStatus(reply, &payload);
                    // The primary's own account (kAborted) names the copy.
                    if (!s.ok()) self->Failed(s.code() == Code::kAborted ? -1 : node, part, s);
                    self->Finish();
                  });
}

void SetOp::SendInSteps(int node, std::vector<uint32_t> pairs, transport::CallArgs begin,
                        std::function<std::vector<transport::CallArgs>(uint64_t)> parts) {
  auto self = shared_from_this();
  auto all = std::make_shared<std::vector<uint32_t>>(std::move(pairs));
  ++pending;
  transport->Call(
      lane, node, std::move(begin), deadline.RemainingMs(),
      [self, node, all, parts = std::move(parts)](Status s, std::string_view reply,
                                                  std::string_view) {
        std::string_view payload;
        if (s.ok()) s = ParseReplyStatus(reply, &payload);
        uint64_t handle = 0;
        Reader r(payload);
        if (s.ok() && !r.U64(&handle)) s = Status::Internal("malformed put reply");
        if (!s.ok()) {  // nothing there can ever be published
          self->Failed(node, *all, s);
          return self->Finish();
        }
        struct Steps {
          int pending = 1;  // part calls in flight, plus the loop issuing them
          Status error;
        };
        auto st = std::make_shared<Steps>();
        // Published only if every part arrived; dropped otherwise.
        auto end = [self, node, all, handle, st] {
          transport::CallArgs a;
          a.opcode = kOpPutEnd;
          Writer w(&a.body);
          w.U64(handle);
          w.U8(!st->error.ok() ? kPutEndDrop : self->ordered ? kPutEndOrdered : kPutEndPublish);
          self->transport->Call(
              self->lane, node, std::move(a), self->deadline.RemainingMs(),
              [self, node, all, st](Status s, std::string_view reply, std::string_view) {
                std::string_view payload;
                bool publishing = st->error.ok();
                // Only a publish lost in transit may still land there (an
                // ordered one the primary relays itself).
                if (!s.ok() && publishing && !self->ordered) self->Missed(node, *all, s);
                if (s.ok()) s = ParseReplyStatus(reply, &payload);
                if (!publishing) s = st->error;
                if (!s.ok()) self->Failed(s.code() == Code::kAborted ? -1 : node, *all, s);
                self->Finish();
              });
        };
        for (transport::CallArgs& a : parts(handle)) {
          ++st->pending;
          self->transport->Call(self->lane, node, std::move(a), self->deadline.RemainingMs(),
                                [st, end](Status s, std::string_view reply, std::string_view) {
                                  std::string_view payload;
                                  if (s.ok()) s = ParseReplyStatus(reply, &payload);
                                  if (!s.ok() && st->error.ok()) st->error = s;
                                  if (--st->pending == 0) end();
                                });
        }
        // A part may fail before Call returns: the steps end once, after the
        // loop too.
        if (--st->pending == 0) end();
      });
}

void SetOp::SendStaged(int node, std::vector<uint32_t> pairs, std::vector<size_t> cuts) {
  transport::CallArgs begin;
  begin.opcode = kOpStageBegin;
  Writer(&begin.body).U32(static_cast<uint32_t>(db));
  auto kept = std::make_shared<std::vector<uint32_t>>(pairs);
  SendInSteps(node, std::move(pairs), std::move(begin),
              [self = shared_from_this(), kept, cuts = std::move(cuts)](uint64_t handle) {
                std::vector<transport::CallArgs> calls(cuts.size());
                for (size_t c = 0; c < cuts.size(); ++c) {
                  calls[c].opcode = kOpStageSet;
                  Writer(&calls[c].body).U64(handle);
                  size_t end = c + 1 < cuts.size() ? cuts[c + 1] : kept->size();
                  self->AddPairs(&calls[c], *kept, cuts[c], end);
                }
                return calls;
              });
}

void SetOp::SendLarge(int node, uint32_t pair) {
  std::string_view key = kvs[pair], value = kvs[pair + 1];
  transport::CallArgs begin;
  begin.opcode = kOpPutBegin;
  Writer w(&begin.body);
  w.U32(static_cast<uint32_t>(db));
  w.Bytes(key);
  w.U64(value.size());
  SendInSteps(node, {pair}, std::move(begin), [value, chunk = chunk](uint64_t handle) {
    std::vector<transport::CallArgs> calls;
    for (uint64_t off = 0; off < value.size(); off += chunk) {
      size_t len = std::min<uint64_t>(chunk, value.size() - off);
      transport::CallArgs& a = calls.emplace_back();
      a.opcode = kOpPutChunk;
      Writer w(&a.body);
      w.U64(handle);
      w.U64(off);
      a.bulk_in.push_back({const_cast<char*>(value.data() + off), len});
    }
    return calls;
  });
}

void SetOp::SendPart(int node, std::vector<uint32_t> pairs) {
  if (node == pool->self() && ordered) return StoreOrderedHere(std::move(pairs));
  if (node == pool->self()) {
    std::vector<std::string_view> local;
    local.reserve(pairs.size() * 2);
    for (uint32_t p : pairs) {
      pool->impl_->Touch(db, kvs[p], true);
      local.push_back(kvs[p]);
      local.push_back(kvs[p + 1]);
    }
    bool written = false;
    Status s = pool->store_->MultiSet(db, local, false, pool->WallNow(), &written);
    if (!s.ok()) {
      for (uint32_t p : pairs) pool->impl_->Touch(db, kvs[p]);  // not applied: fetched again
      Failed(node, pairs, s);
    }
    return;
  }
  if (!pool->NodeUp(node)) {
    Failed(node, pairs, Status::Unavailable(""));
    return;
  }
  // Pack pairs into calls of at most `chunk` value bytes; a value larger
  // than that travels on its own in chunks.
  std::vector<uint32_t> small;
  for (uint32_t p : pairs) {
    if (kvs[p + 1].size() > chunk) SendLarge(node, p);
    else small.push_back(p);
  }
  const size_t max_keys = std::max<size_t>(1, pool->options_.max_batch_keys);
  std::vector<size_t> cuts;  // where each call starts
  size_t bytes = 0;
  for (size_t i = 0; i < small.size(); ++i) {
    size_t v = kvs[small[i] + 1].size();
    if (cuts.empty() || bytes + v > chunk || i - cuts.back() >= max_keys) {
      cuts.push_back(i);
      bytes = 0;
    }
    bytes += v;
  }
  if (cuts.size() == 1) SendSets(node, small, 0, small.size());
  else if (cuts.size() > 1) SendStaged(node, std::move(small), std::move(cuts));
}

void SetOp::StoreOrderedHere(std::vector<uint32_t> pairs) {
  const int node = pool->self();
  storage::Store* store = pool->store_;
  Pool::Impl* impl = pool->impl_.get();
  const int64_t now = pool->WallNow();
  std::vector<std::string_view> keys;
  for (uint32_t p : pairs) keys.push_back(kvs[p]);
  if (!impl->PrimaryOfAll(keys))
    return Failed(-1, pairs, Status::Unavailable(pool->NoCopyError(pool->OwnerOf(keys[0]))));
  std::vector<storage::PendingItem> items;
  items.reserve(pairs.size());
  const uint64_t v = store->NewVersion();
  for (uint32_t p : pairs) {
    auto item = store->Prepare(kvs[p], kvs[p + 1].size(), now);
    if (!item.ok()) return Failed(node, pairs, item.status());  // nothing applied
    if (!kvs[p + 1].empty()) memcpy(item.value().value_data(), kvs[p + 1].data(), kvs[p + 1].size());
    item.value().set_version(v);
    impl->Touch(db, kvs[p], true);
    items.push_back(std::move(item.value()));
  }
  if (Status s = store->Publish(db, &items, now, true); !s.ok()) {
    for (std::string_view k : keys) impl->Touch(db, k);  // not applied: fetched again
    return Failed(node, pairs, s);
  }
  ++pending;
  impl->Relay(lane, db, std::vector<std::string>(keys.begin(), keys.end()),
              [self = shared_from_this(), pairs = std::move(pairs)](Status s) {
                if (!s.ok()) self->Failed(-1, pairs, s);
                self->Finish();
              });
}



void Pool::MultiSet(int lane, int db, std::span<const std::string_view> kvs, int64_t now_ms,
                    std::shared_ptr<const void> owner, SetDone done) {
  auto op = std::make_shared<SetOp>();
  op->pool = this;
  op->transport = transport_;
  op->lane = lane;
  op->db = db;
  op->deadline = Deadline::After(options_, options_.timeout_ms);
  op->chunk = impl_->chunk_bytes;
  op->kvs.assign(kvs.begin(), kvs.end());
  op->done = std::move(done);
  op->owner = std::move(owner);
  op->failed.assign(kvs.size() / 2, 0);

  if (replicas() > 1) {
    // Ordered: each pair to its slot's primary, which relays it.
    op->ordered = true;
    std::vector<std::vector<uint32_t>> by_primary(nodes());
    std::vector<int> primary_of(nodes(), -2);
    for (uint32_t p = 0; p < kvs.size(); p += 2) {
      int owner = OwnerOf(kvs[p]);
      if (primary_of[owner] == -2)
        primary_of[owner] = WriteNodes(owner).empty() ? -1 : ReadNode(owner);
      if (primary_of[owner] < 0) {
        op->Failed(-1, std::vector<uint32_t>{p}, Status::Unavailable(NoCopyError(owner)));
        continue;
      }
      by_primary[primary_of[owner]].push_back(p);
    }
    for (int node = 0; node < nodes(); ++node)
      if (!by_primary[node].empty()) op->SendPart(node, std::move(by_primary[node]));
    return op->Finish();
  }
  auto parts = GroupForWrite(*this, kvs, 2);
  for (int node = 0; node <= nodes(); ++node) {
    auto& pairs = parts[node];
    if (pairs.empty()) continue;
    if (node == nodes()) {
      // No copy can take them: named after the first key's owner.
      int owner = OwnerOf(kvs[pairs[0]]);
      if (replicas() == 1) op->Failed(owner, pairs, Status::Unavailable(""));
      else op->Failed(-1, pairs, Status::Unavailable(NoCopyError(owner)));
      continue;
    }
    op->SendPart(node, std::move(pairs));
  }
  op->Finish();
}

}  // namespace kvpool::pool
