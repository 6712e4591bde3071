// The owner side of writes (owner.cc has the table): a part of an MSET
// published at once (kOpMultiSet), one large value received in chunks
// (kOpPutBegin, kOpPutChunk, kOpPutEnd), and a part too large for one call,
// staged call by call and published at once (kOpStageBegin, kOpStageSet,
// kOpPutEnd). Pending puts whose requester went away are swept on the
// heartbeat (SweepPuts). Only this file touches the pending puts.
#include "storage/pool/pool_impl.h"

namespace kvpool::pool {

using transport::IncomingCall;

void Pool::Impl::OnMultiSet(InCall call) {
  Reader r(call->body());
  int db;
  if (!ReadDb(r, pool->store_->databases(), &db)) return call->Reply(ErrorReply(MalformedRequest()));
  ReceiveSet(std::move(call), r, db, nullptr);
}

// Into a staged batch, published later by kOpPutEnd.
void Pool::Impl::OnStageSet(InCall call) {
  Reader r(call->body());
  uint64_t handle;
  if (!r.U64(&handle)) return call->Reply(ErrorReply(MalformedRequest()));
  std::shared_ptr<PendingPut> batch;
  {
    std::lock_guard<std::mutex> l(puts_mu);
    auto it = puts.find(handle);
    if (it != puts.end() && it->second->staged) {
      batch = it->second;
      batch->active_ms = pool->MonoNow();
    }
  }
  if (!batch) return call->Reply(ErrorReply(Status::NotFound("no such put")));
  int db = batch->db;
  ReceiveSet(std::move(call), r, db, std::move(batch));
}

void Pool::Impl::ReceiveSet(InCall call, Reader& r, int db, std::shared_ptr<PendingPut> batch,
                            bool ordered) {
  storage::Store* store = pool->store_;
  const int64_t now = pool->WallNow();
  uint32_t n;
  if (!r.Count(&n, 20)) return call->Reply(ErrorReply(MalformedRequest()));
  // Phase one: space for every value, invisible to readers; phase two:
  // the values are pulled straight into it (RDMA READ); phase three:
  // all published at once (or, staged, handed to the batch).
  struct Put {
    std::unique_ptr<IncomingCall> call;
    int db;
    std::vector<storage::PendingItem> items;
    int pending = 1;
    Status error;
  };
  auto put = std::make_shared<Put>();
  put->db = db;
  put->items.reserve(n);
  struct Part {
    uint64_t off, len;
  };
  std::vector<Part> parts;
  parts.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    std::string_view key;
    uint64_t len, off;
    if (!r.Bytes(&key) || !r.U64(&len) || !r.U64(&off) || off > call->bulk_in_size() ||
        len > call->bulk_in_size() - off)
      return call->Reply(ErrorReply(MalformedRequest()));
    auto item = store->Prepare(key, len, now);
    if (!item.ok()) {
      for (const auto& it : put->items) Touch(put->db, it.key());  // not applied
      Touch(put->db, key);
      return call->Reply(ErrorReply(item.status()));
    }
    Touch(put->db, key, true);
    put->items.push_back(std::move(item.value()));
    parts.push_back({off, len});
  }
  // kOpOrderedSet may end with {take u8}: the caller's copies take the
  // state in the reply.
  uint8_t take = 0;
  if (ordered) {
    std::vector<std::string_view> keys;
    for (const auto& it : put->items) keys.push_back(it.key());
    Status refused;
    if (!r.done() && (!r.U8(&take) || take > 1 || !r.done())) refused = MalformedRequest();
    else if (!PrimaryOfAll(keys))
      refused = Status::Aborted("pool: " + pool->node(pool->self()).Addr() +
                                " does not order writes of these keys now; try again");
    if (!refused.ok()) {
      for (std::string_view k : keys) Touch(put->db, k);  // not applied
      return call->Reply(ErrorReply(refused));
    }
  }
  IncomingCall* c = call.get();
  put->call = std::move(call);
  if (batch) {
    std::lock_guard<std::mutex> l(puts_mu);
    ++batch->receiving;
  }
  auto finish = [this, put, store, batch, ordered, take] {
    if (--put->pending > 0) return;
    Status st = put->error;
    if (batch) {
      // Done with the batch before the reply: the caller's publish may
      // follow at once. A batch already ended (published, dropped or
      // swept) takes nothing more.
      std::lock_guard<std::mutex> l(puts_mu);
      --batch->receiving;
      if (st.ok() && batch->ended) st = Status::Aborted("staged batch already ended");
      if (st.ok())
        for (auto& it : put->items) batch->items.push_back(std::move(it));
    }
    if (st.ok() && batch) return put->call->Reply(OkReply());
    if (st.ok() && ordered) {
      const uint64_t v = store->NewVersion();
      for (auto& it : put->items) it.set_version(v);
      std::vector<storage::ItemRef> current;
      st = store->Publish(put->db, &put->items, pool->WallNow(),
                             {.if_not_older = true, .current = &current});
      if (!st.ok()) {
        for (const auto& it : put->items) Touch(put->db, it.key());
        return put->call->Reply(ErrorReply(st));
      }
      auto p = put;
      if (!take)
        return RelayPublished(p->call->lane(), p->db, std::move(current),
                              [p](Status s) { p->call->Reply(s.ok() ? OkReply() : ErrorReply(s)); });
      auto state = std::make_shared<std::string>();
      return RelayPublished(
          p->call->lane(), p->db, std::move(current),
          [p, state](Status s) { p->call->Reply(TakenReply({}, s, *state)); }, p->call->peer(),
          state.get());
    }
    if (st.ok()) st = store->Publish(put->db, &put->items, pool->WallNow());
    // Not applied here: fetched again if this node is catching up.
    if (!st.ok())
      for (const auto& it : put->items) Touch(put->db, it.key());
    put->call->Reply(st.ok() ? OkReply() : ErrorReply(st));
  };
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].len == 0) continue;
    ++put->pending;
    c->ReadBulk(parts[i].off, parts[i].len, put->items[i].value_data(), [put, finish](Status s) {
      if (!s.ok() && put->error.ok()) put->error = s;
      finish();
    });
  }
  finish();
}

namespace {

std::string HandleReply(uint64_t handle) {
  std::string out = OkReply();
  Writer w(&out);
  w.U64(handle);
  return out;
}

}  // namespace

void Pool::Impl::OnPutBegin(InCall call) {
  storage::Store* store = pool->store_;
  Reader r(call->body());
  int db;
  std::string_view key;
  uint64_t total;
  if (!ReadDb(r, store->databases(), &db) || !r.Bytes(&key) || !r.U64(&total))
    return call->Reply(ErrorReply(MalformedRequest()));
  uint64_t version = 0;
  int64_t expire = 0;
  if (!r.done() && (!r.U64(&version) || !r.I64(&expire) || version == 0))
    return call->Reply(ErrorReply(MalformedRequest()));
  auto item = store->Prepare(key, total, pool->WallNow());
  if (!item.ok()) return call->Reply(ErrorReply(item.status()));
  item.value().set_version(version);
  item.value().set_expire_at_ms(expire);
  Touch(db, key, true);  // a put that does not end: kOpCatchUp
  uint64_t handle;
  {
    std::lock_guard<std::mutex> l(puts_mu);
    handle = next_put++;
    auto put = std::make_shared<PendingPut>();
    put->db = db;
    put->items.push_back(std::move(item.value()));
    put->active_ms = pool->MonoNow();
    puts.emplace(handle, std::move(put));
  }
  call->Reply(HandleReply(handle));
}

void Pool::Impl::OnPutChunk(InCall call) {
  Reader r(call->body());
  uint64_t handle, off;
  if (!r.U64(&handle) || !r.U64(&off)) return call->Reply(ErrorReply(MalformedRequest()));
  std::shared_ptr<PendingPut> put;
  {
    std::lock_guard<std::mutex> l(puts_mu);
    auto it = puts.find(handle);
    if (it != puts.end() && !it->second->staged && off <= it->second->items[0].value_size() &&
        call->bulk_in_size() <= it->second->items[0].value_size() - off) {
      put = it->second;
      put->active_ms = pool->MonoNow();
    }
  }
  if (!put) return call->Reply(ErrorReply(Status::NotFound("no such put")));
  // The read holds the pending item: a PutEnd that drops it, or the
  // sweep, cannot free the memory while bytes may still land in it.
  char* dst = put->items[0].value_data() + off;
  IncomingCall* c = call.get();
  auto holder = std::make_shared<InCall>(std::move(call));
  c->ReadBulk(0, c->bulk_in_size(), dst, [holder, put](Status s) {
    (*holder)->Reply(s.ok() ? OkReply() : ErrorReply(s));
  });
}

void Pool::Impl::OnPutEnd(InCall call) {
  Reader r(call->body());
  uint64_t handle;
  uint8_t publish;
  if (!r.U64(&handle) || !r.U8(&publish) || publish > kPutEndGiven)
    return call->Reply(ErrorReply(MalformedRequest()));
  std::shared_ptr<PendingPut> p;
  bool receiving;
  {
    std::lock_guard<std::mutex> l(puts_mu);
    auto it = puts.find(handle);
    if (it == puts.end()) return call->Reply(ErrorReply(Status::NotFound("no such put")));
    p = std::move(it->second);
    puts.erase(it);
    p->ended = true;
    // A chunk still being read holds the put; a batch counts its calls.
    receiving = p->staged ? p->receiving > 0 : p.use_count() > 1;
  }
  // Not applied: fetched again if this node is catching up.
  auto untouch = [&] {
    if (p->staged)
      for (const auto& it : p->items) Touch(p->db, it.key());
  };
  if (!publish) {
    untouch();
    return call->Reply(OkReply());
  }
  if (receiving) {
    untouch();
    return call->Reply(ErrorReply(Status::Aborted("put still receiving chunks")));
  }
  std::vector<std::string> keys;
  if (publish == kPutEndOrdered) {
    std::vector<std::string_view> views;
    for (const auto& it : p->items) views.push_back(it.key());
    if (!PrimaryOfAll(views)) {
      untouch();
      return call->Reply(ErrorReply(Status::Aborted(
          "pool: " + pool->node(pool->self()).Addr() + " does not order writes of these keys now; try again")));
    }
    const uint64_t v = pool->store_->NewVersion();
    for (auto& it : p->items) {
      keys.emplace_back(it.key());
      it.set_version(v);
    }
  } else if (publish == kPutEndPublish) {
    for (auto& it : p->items) it.set_version(0);  // fresh ones
  }
  Status s = pool->store_->Publish(p->db, &p->items, pool->WallNow(),
                                   {.if_not_older = publish != kPutEndPublish});
  if (!s.ok()) untouch();
  if (!s.ok() || publish != kPutEndOrdered) return call->Reply(s.ok() ? OkReply() : ErrorReply(s));
  auto holder = std::make_shared<InCall>(std::move(call));
  Relay((*holder)->lane(), p->db, std::move(keys), [holder](Status s) {
    (*holder)->Reply(s.ok() ? OkReply() : ErrorReply(s));
  });
}

void Pool::Impl::OnStageBegin(InCall call) {
  Reader r(call->body());
  int db;
  if (!ReadDb(r, pool->store_->databases(), &db)) return call->Reply(ErrorReply(MalformedRequest()));
  auto batch = std::make_shared<PendingPut>();
  batch->db = db;
  batch->active_ms = pool->MonoNow();
  batch->staged = true;
  uint64_t handle;
  {
    std::lock_guard<std::mutex> l(puts_mu);
    handle = next_put++;
    puts.emplace(handle, std::move(batch));
  }
  call->Reply(HandleReply(handle));
}

// Large puts whose requester went away (no call for them for a while) are
// dropped.
void Pool::Impl::SweepPuts(int64_t now) {
  SweepHeld(now);
  SweepHeldArgs(now);
  const int64_t max_age = 4 * int64_t{pool->options_.timeout_ms} + 1000;
  std::lock_guard<std::mutex> l(puts_mu);
  for (auto it = puts.begin(); it != puts.end();) {
    if (now - it->second->active_ms > max_age) {
      it->second->ended = true;
      it = puts.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace kvpool::pool
