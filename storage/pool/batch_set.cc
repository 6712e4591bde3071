// The requester side of MSET (Pool::MultiSet): split by owner (with
// replicas, by primary), the local part stored here, one call per remote
// node (staged, or in chunks, when a part or a value is larger than one
// call carries), all in flight at once.
#include <event2/event.h>

#include <algorithm>
#include <memory>

#include "storage/pool/fill_steps.h"
#include "storage/pool/pool_impl.h"
#include "storage/pool/requests.h"

namespace kvpool::pool {

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
  // Copies the values of `pairs` into `items` (prepared for them, in the
  // same order), at most `chunk` bytes per turn of this lane's loop (a
  // fresh segment page costs a fault: 300 MB took 0.9 s in one go), then
  // runs then(items). Items or values are kept alive by this op.
  void FillInSteps(std::vector<uint32_t> pairs, std::vector<storage::PendingItem> items,
                   std::function<void(std::vector<storage::PendingItem>&)> then);
  // This node's part without replicas: stored at once, or, when its values
  // are larger than one step, filled in steps and published at once.
  void StoreHere(std::vector<uint32_t> pairs);
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
  args.reset_on_timeout = true;
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
  pool->impl_->WriteCall(lane, node, std::move(args), deadline.RemainingMs(),
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
        // Published only if every part arrived; dropped otherwise. The end
        // has a timeout of its own, as each part had: the parts may have
        // used up the request's time (a 64 MiB value on a loaded node). An
        // ordered publish is answered once the primary relayed it, so it
        // may take as long as moving the values does.
        uint64_t bytes = 0;
        for (uint32_t p : *all) bytes += self->kvs[p + 1].size();
        auto end = [self, node, all, handle, bytes](Status parts) {
          transport::CallArgs a;
          a.opcode = kOpPutEnd;
          a.reset_on_timeout = parts.ok();  // a publish
          Writer w(&a.body);
          w.U64(handle);
          w.U8(!parts.ok() ? kPutEndDrop : self->ordered ? kPutEndOrdered : kPutEndPublish);
          const PoolOptions& o = self->pool->options_;
          int timeout = self->ordered ? TransferTimeoutMs(o, bytes) : o.timeout_ms;
          self->pool->impl_->WriteCall(
              self->lane, node, std::move(a), timeout,
              [self, node, all, parts](Status s, std::string_view reply, std::string_view) {
                std::string_view payload;
                bool publishing = parts.ok();
                // Only a publish lost in transit may still land there (an
                // ordered one the primary relays itself).
                if (!s.ok() && publishing && !self->ordered) self->Missed(node, *all, s);
                if (s.ok()) s = ParseReplyStatus(reply, &payload);
                if (!publishing) s = parts;
                if (!s.ok()) self->Failed(s.code() == Code::kAborted ? -1 : node, *all, s);
                self->Finish();
              });
        };
        // The parts, a few at a time, each with a timeout of its own.
        auto calls = std::make_shared<std::vector<transport::CallArgs>>(parts(handle));
        CallInWindow({.transport = self->transport,
                      .lane = self->lane,
                      .node = node,
                      .n = calls->size(),
                      .timeout_ms = self->pool->options_.timeout_ms,
                      .make = [calls](size_t i) { return std::move((*calls)[i]); },
                      .reply = [](size_t, Status s, std::string_view reply, std::string_view) {
                        std::string_view payload;
                        if (s.ok()) s = ParseReplyStatus(reply, &payload);
                        return s;
                      },
                      .done = end});
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
                  calls[c].reset_on_timeout = true;
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
  if (node == pool->self()) return StoreHere(std::move(pairs));
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

void SetOp::FillInSteps(std::vector<uint32_t> pairs, std::vector<storage::PendingItem> items,
                        std::function<void(std::vector<storage::PendingItem>&)> then) {
  std::vector<std::string_view> values;
  values.reserve(pairs.size());
  for (uint32_t p : pairs) values.push_back(kvs[p + 1]);
  const auto& lanes = pool->impl_->lanes;
  event_base* base = lane >= 0 && static_cast<size_t>(lane) < lanes.size() ? lanes[lane] : nullptr;
  pool::FillInSteps(base, chunk, std::move(values), std::move(items), shared_from_this(),
                    std::move(then));
}

namespace {

// The value bytes of `pairs`.
size_t ValueBytes(std::span<const std::string_view> kvs, std::span<const uint32_t> pairs) {
  size_t n = 0;
  for (uint32_t p : pairs) n += kvs[p + 1].size();
  return n;
}

}  // namespace

void SetOp::StoreHere(std::vector<uint32_t> pairs) {
  const int node = pool->self();
  storage::Store* store = pool->store_;
  for (uint32_t p : pairs) pool->impl_->Touch(db, kvs[p], true);
  if (ValueBytes(kvs, pairs) <= chunk) {
    std::vector<std::string_view> local;
    local.reserve(pairs.size() * 2);
    for (uint32_t p : pairs) {
      local.push_back(kvs[p]);
      local.push_back(kvs[p + 1]);
    }
    bool written = false;
    Status s = store->MultiSet(db, local, false, pool->WallNow(), &written);
    if (!s.ok()) {
      for (uint32_t p : pairs) pool->impl_->Touch(db, kvs[p]);  // not applied: fetched again
      Failed(node, pairs, s);
    }
    return;
  }
  std::vector<storage::PendingItem> items;
  items.reserve(pairs.size());
  for (uint32_t p : pairs) {
    auto item = store->Prepare(kvs[p], kvs[p + 1].size(), pool->WallNow());
    if (!item.ok()) {
      for (uint32_t q : pairs) pool->impl_->Touch(db, kvs[q]);
      return Failed(node, pairs, item.status());  // nothing applied
    }
    items.push_back(std::move(item.value()));
  }
  ++pending;
  FillInSteps(pairs, std::move(items), [self = shared_from_this(), pairs](auto& items) {
    Pool* pool = self->pool;
    if (Status s = pool->store_->Publish(self->db, &items, pool->WallNow()); !s.ok()) {
      for (uint32_t p : pairs) pool->impl_->Touch(self->db, self->kvs[p]);
      self->Failed(pool->self(), pairs, s);
    }
    self->Finish();
  });
}

void SetOp::StoreOrderedHere(std::vector<uint32_t> pairs) {
  const int node = pool->self();
  storage::Store* store = pool->store_;
  Pool::Impl* impl = pool->impl_.get();
  std::vector<std::string_view> keys;
  for (uint32_t p : pairs) keys.push_back(kvs[p]);
  if (!impl->PrimaryOfAll(keys))
    return Failed(-1, pairs, Status::Unavailable(pool->NoCopyError(pool->OwnerOf(keys[0]))));
  std::vector<storage::PendingItem> items;
  items.reserve(pairs.size());
  for (uint32_t p : pairs) {
    auto item = store->Prepare(kvs[p], kvs[p + 1].size(), pool->WallNow());
    if (!item.ok()) return Failed(node, pairs, item.status());  // nothing applied
    items.push_back(std::move(item.value()));
  }
  // Stamped and published once every value is in (maybe turns later, if
  // they are larger than one step), then relayed.
  ++pending;
  FillInSteps(pairs, std::move(items), [self = shared_from_this(), pairs](auto& items) {
    Pool* pool = self->pool;
    Pool::Impl* impl = pool->impl_.get();
    const int db = self->db;
    std::vector<std::string_view> keys;
    for (uint32_t p : pairs) keys.push_back(self->kvs[p]);
    if (!impl->PrimaryOfAll(keys)) {  // no longer the primary meanwhile
      self->Failed(-1, pairs, Status::Unavailable(pool->NoCopyError(pool->OwnerOf(keys[0]))));
      return self->Finish();
    }
    const uint64_t v = pool->store_->NewVersion();
    for (auto& item : items) item.set_version(v);
    for (std::string_view k : keys) impl->Touch(db, k, true);
    std::vector<storage::ItemRef> current;
    if (Status s = pool->store_->Publish(db, &items, pool->WallNow(),
                                        {.if_not_older = true, .current = &current});
        !s.ok()) {
      for (std::string_view k : keys) impl->Touch(db, k);  // not applied: fetched again
      self->Failed(pool->self(), pairs, s);
      return self->Finish();
    }
    impl->RelayPublished(self->lane, db, std::move(current), [self, pairs](Status s) {
      if (!s.ok()) self->Failed(-1, pairs, s);
      self->Finish();
    });
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
      if (primary_of[owner] != self())
        routed_.keys_elsewhere.fetch_add(1, std::memory_order_relaxed);
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
