// Ordered replicas: one node orders every write of a slot, its primary (the
// first copy in sync, Pool::ReadNode). A coordinator sends its part of a
// write there (kOpOrderedSet, kOpOrderedCommand); the primary applies it
// with versions from its store's Lamport clock, then relays the resulting
// state of each written key to the other copies (kOpApply), which keep a
// key only if its version is not older than theirs. So copies converge on
// the primary's order whatever order relays, retries and catch-ups arrive
// in, and two writers of one key through different nodes cannot fork it.
// While views of which copy is primary differ (a copy just came back in
// sync), two copies may each order some writes: each relays to the other
// and the higher version wins on both, so they still converge.
#include <spdlog/spdlog.h>

#include <utility>

#include "storage/pool/pool_impl.h"
#include "storage/pool/requests.h"

namespace kvpool::pool {

using transport::IncomingCall;

bool Pool::Impl::IsCopy(int node, std::string_view key) const {
  return HoldsCopy(node, pool->OwnerOf(key));
}

bool Pool::Impl::HoldsCopy(int node, int owner) const {
  for (int i = 0; i < pool->replicas(); ++i)
    if ((owner + i) % pool->nodes() == node) return true;
  return false;
}

bool Pool::Impl::PrimaryOfAll(std::span<const std::string_view> keys) const {
  const int self = pool->self();
  if (!pool->Serving(self)) return false;
  // Nor while another copy holds writes this one lacks (a read-modify-write
  // here would lose them): that copy orders (Pool::LacksWrites). Unless it
  // lacks some too (both caught up without the other): then the first
  // serving copy orders, as ReadNode says, until a merge ends.
  for (std::string_view k : keys) {
    const int owner = pool->OwnerOf(k);
    if (!HoldsCopy(self, owner)) return false;
    if (pool->LacksWrites(self, owner) && pool->ReadNode(owner) != self) return false;
  }
  return true;
}

namespace {

// {key, present u8, version u64, expire_at_ms i64, len u64, bulk_offset u64}
constexpr size_t kApplyEntryMin = 4 + 1 + 8 + 8 + 8 + 8;
// {key, present u8, version u64, expire_at_ms i64, value}
constexpr size_t kStateEntryMin = 4 + 1 + 8 + 8 + 4;

}  // namespace

void Pool::Impl::InitApplies() {
  applies.clear();
  for (size_t l = 0; l < lanes.size(); ++l) {
    auto a = std::make_unique<ApplyLane>();
    a->impl = this;
    a->lane = static_cast<int>(l);
    a->to.resize(pool->nodes());
    // Activated, never added: it runs after the events already active in
    // the loop's pass (the calls whose relays it gathers), in that pass.
    a->flush = event_new(
        lanes[l], -1, 0,
        [](evutil_socket_t, short, void* arg) {
          auto* a = static_cast<ApplyLane*>(arg);
          a->impl->FlushApplies(a->lane);
        },
        a.get());
    applies.push_back(std::move(a));
  }
}

void Pool::Impl::FreeApplies(int lane, bool send) {
  if (static_cast<size_t>(lane) >= applies.size() || !applies[lane]->flush) return;
  if (send) FlushApplies(lane);
  event_free(applies[lane]->flush);
  applies[lane]->flush = nullptr;
}

void Pool::Impl::FlushApplies(int lane, int copy) {
  ApplyLane& a = *applies[lane];
  const int first = copy < 0 ? 0 : copy, end = copy < 0 ? pool->nodes() : copy + 1;
  for (int c = first; c < end; ++c) {
    ApplyBatch b = std::exchange(a.to[c], ApplyBatch{});
    // A relay waits on a batch only for entries it added (Relay's wait()).
    if (b.n == 0) continue;
    transport::CallArgs args;
    args.opcode = kOpApply;
    Writer w(&args.body);
    w.U32(static_cast<uint32_t>(b.db));
    w.U32(b.n);
    args.body.append(b.entries);
    args.bulk_in = std::move(b.bulk);
    // Tokened: a relay that landed but lost its reply is not reported as
    // a copy missing the write.
    args.reset_on_timeout = true;
    WriteCall(lane, c, std::move(args), pool->options_.timeout_ms,
              [waiters = std::move(b.waiters)](Status s, std::string_view reply, std::string_view) {
                std::string_view payload;
                if (s.ok()) s = ParseReplyStatus(reply, &payload);
                for (const RelayDone& w : waiters) w(s);
              });
  }
}

// What a relay holds until every copy answered: the keys (views into
// `owned` or into `items`), their items pinned, and the caller's done.
struct Pool::Impl::RelayState {
  std::vector<std::string> owned;
  std::vector<std::string_view> keys;
  std::vector<storage::ItemRef> items;  // empty where the key is absent
  uint64_t del_version = 0;             // absent keys' state (a delete)
  int pending = 1;
  Status error;
  RelayDone done;
};

void Pool::Impl::Relay(int lane, int db, std::vector<std::string> keys, RelayDone done, int take,
                       std::string* state) {
  storage::Store* store = pool->store_;
  auto st = std::make_shared<RelayState>();
  st->owned = std::move(keys);
  st->keys.assign(st->owned.begin(), st->owned.end());
  st->done = std::move(done);
  // Taken before the keys are read: a write that lands after the read is
  // newer than a delete relayed here, so the delete cannot remove it.
  st->del_version = store->NewVersion();
  const int64_t now = pool->WallNow();
  st->items.reserve(st->keys.size());
  for (std::string_view k : st->keys) st->items.push_back(store->Peek(db, k, now));
  for (size_t i = 0; i < st->keys.size(); ++i)
    if (!st->items[i]) NoteDeleted(db, st->keys[i], st->del_version);  // while a copy is away
  RelayHeld(lane, db, std::move(st), take, state);
}

void Pool::Impl::RelayPublished(int lane, int db, std::vector<storage::ItemRef> items,
                                RelayDone done, int take, std::string* state) {
  auto st = std::make_shared<RelayState>();
  st->items = std::move(items);
  st->keys.reserve(st->items.size());
  for (const storage::ItemRef& item : st->items) st->keys.push_back(item.key());
  st->done = std::move(done);
  RelayHeld(lane, db, std::move(st), take, state);
}

void Pool::Impl::RelayHeld(int lane, int db, std::shared_ptr<RelayState> st, int take,
                           std::string* state) {
  Pool* p = pool;
  auto finish = [st] {
    if (--st->pending == 0) st->done(st->error);
  };
  Impl* impl = this;
  // A copy's call for keys `sent` failed with `s`: it fetches them again.
  auto failed = [impl, st, lane, db](int c, const std::vector<uint32_t>& sent, Status s) {
    Pool* p = impl->pool;
    std::vector<std::string_view> ks;
    for (uint32_t k : sent) ks.push_back(st->keys[k]);
    // It may still land, late, or never: it fetches them again.
    p->NoteWriteFailed(lane, c, db, ks, s);
    {
      std::lock_guard<std::mutex> l(impl->sync_mu);
      ++impl->sync.replica_write_errors;
    }
    if (st->error.ok())
      st->error = Status::Aborted("pool: the write reached " + p->node(p->self()).Addr() +
                                  " but not its copy on " + p->node(c).Addr() + " (" +
                                  s.ToString() + ")");
  };
  const size_t n = st->keys.size();
  const uint64_t del_version = st->del_version;

  std::vector<std::vector<uint32_t>> to(p->nodes());
  std::string taken;
  uint32_t n_taken = 0;
  Writer tw(&taken);
  for (uint32_t i = 0; i < n; ++i) {
    for (int c : p->WriteNodes(p->OwnerOf(st->keys[i]))) {
      if (c == p->self()) continue;
      const storage::ItemRef& item = st->items[i];
      if (c == take && state && (!item || item.value().size() <= chunk_bytes)) {
        // The caller's copy: in the reply (kTakeState).
        tw.Bytes(st->keys[i]);
        tw.U8(item ? 1 : 0);
        tw.U64(item ? item.version() : del_version);
        tw.I64(item ? item.expire_at_ms() : 0);
        tw.Bytes(item ? item.value() : std::string_view());
        ++n_taken;
        continue;
      }
      to[c].push_back(i);
    }
  }
  if (state) {
    Writer(state).U32(n_taken);
    state->append(taken);
  }
  const size_t max_keys = std::max<size_t>(1, p->options_.max_batch_keys);
  for (int c = 0; c < p->nodes(); ++c) {
    if (to[c].empty()) continue;
    ApplyBatch& b = applies[lane]->to[c];
    std::vector<uint32_t> sent;  // this relay's keys in the batch's call
    // The keys so far are in the batch's call: their outcome is its reply.
    auto wait = [&] {
      if (sent.empty()) return;
      ++st->pending;
      b.waiters.push_back([failed, finish, c, sent = std::move(sent)](Status s) {
        if (!s.ok()) failed(c, sent, s);
        finish();
      });
      sent.clear();
    };
    for (uint32_t k : to[c]) {
      const storage::ItemRef& item = st->items[k];
      const size_t len = item ? item.value().size() : 0;
      if (len > chunk_bytes) {
        ++st->pending;
        RelayLarge(lane, c, db, st->keys[k], item, [failed, finish, c, k](Status s) {
          if (!s.ok()) failed(c, {k}, s);
          finish();
        });
        continue;
      }
      if (b.n > 0 && (b.db != db || b.n >= max_keys || b.bytes + len > chunk_bytes)) {
        wait();
        FlushApplies(lane, c);
      }
      b.db = db;
      Writer w(&b.entries);
      w.Bytes(st->keys[k]);
      w.U8(item ? 1 : 0);
      w.U64(item ? item.version() : del_version);
      w.I64(item ? item.expire_at_ms() : 0);
      w.U64(len);
      w.U64(b.bytes);
      if (len != 0) b.bulk.push_back({const_cast<char*>(item.value().data()), len});
      b.bytes += len;
      ++b.n;
      sent.push_back(k);
    }
    wait();
    if (!b.waiters.empty()) event_active(applies[lane]->flush, EV_TIMEOUT, 0);
  }
  finish();
}

void Pool::Impl::RelayLarge(int lane, int copy, int db, std::string_view key,
                            const storage::ItemRef& item, RelayDone done) {
  Pool* p = pool;
  transport::CallArgs begin;
  begin.opcode = kOpPutBegin;
  Writer w(&begin.body);
  w.U32(static_cast<uint32_t>(db));
  w.Bytes(key);
  w.U64(item.value().size());
  w.U64(item.version());
  w.I64(item.expire_at_ms());
  // The value stays pinned by the caller's ItemRef until done runs.
  std::string_view value = item.value();
  const size_t chunk = chunk_bytes;
  const int timeout = p->options_.timeout_ms;
  transport::Transport* t = p->transport_;
  Impl* impl = this;
  t->Call(lane, copy, std::move(begin), timeout,
          [t, impl, lane, copy, value, chunk, timeout, done = std::move(done)](
              Status s, std::string_view reply, std::string_view) mutable {
            std::string_view payload;
            if (s.ok()) s = ParseReplyStatus(reply, &payload);
            uint64_t handle = 0;
            Reader r(payload);
            if (s.ok() && !r.U64(&handle)) s = Status::Internal("malformed put reply");
            if (!s.ok()) return done(s);
            // The chunks, a few at a time, each with a timeout of its own;
            // then kOpPutEnd, which drops the value unless every chunk landed.
            CallInWindow(
                {.transport = t,
                 .lane = lane,
                 .node = copy,
                 .n = (value.size() + chunk - 1) / chunk,
                 .timeout_ms = timeout,
                 .make =
                     [value, chunk, handle](size_t i) {
                       uint64_t off = i * chunk;
                       transport::CallArgs a;
                       a.opcode = kOpPutChunk;
                       Writer cw(&a.body);
                       cw.U64(handle);
                       cw.U64(off);
                       a.bulk_in.push_back({const_cast<char*>(value.data() + off),
                                            std::min<uint64_t>(chunk, value.size() - off)});
                       return a;
                     },
                 .reply = [](size_t, Status s, std::string_view reply, std::string_view) {
                   std::string_view payload;
                   if (s.ok()) s = ParseReplyStatus(reply, &payload);
                   return s;
                 },
                 .done = [impl, lane, copy, handle, timeout,
                          done = std::move(done)](Status chunks) mutable {
                   transport::CallArgs a;
                   a.opcode = kOpPutEnd;
                   a.reset_on_timeout = chunks.ok();  // a publish: tokened
                   Writer w(&a.body);
                   w.U64(handle);
                   w.U8(chunks.ok() ? kPutEndGiven : kPutEndDrop);
                   impl->WriteCall(lane, copy, std::move(a), timeout,
                           [chunks, done = std::move(done)](Status s, std::string_view reply,
                                                             std::string_view) {
                             std::string_view payload;
                             if (s.ok()) s = ParseReplyStatus(reply, &payload);
                             done(chunks.ok() ? s : chunks);
                           });
                 }});
          });
}

void Pool::Impl::OnApply(InCall call) {
  storage::Store* store = pool->store_;
  Reader r(call->body());
  int db;
  uint32_t n;
  if (!ReadDb(r, store->databases(), &db) || !r.Count(&n, kApplyEntryMin))
    return call->Reply(ErrorReply(MalformedRequest()));
  struct Entry {
    std::string_view key;
    uint8_t present;
    uint64_t version, len, off;
    int64_t expire;
  };
  std::vector<Entry> es(n);
  for (Entry& e : es) {
    if (!r.Bytes(&e.key) || !r.U8(&e.present) || !r.U64(&e.version) || !r.I64(&e.expire) ||
        !r.U64(&e.len) || !r.U64(&e.off) || e.version == 0 || e.off > call->bulk_in_size() ||
        e.len > call->bulk_in_size() - e.off || (!e.present && e.len != 0))
      return call->Reply(ErrorReply(MalformedRequest()));
  }
  const int64_t now = pool->WallNow();
  struct Put {
    InCall call;
    int db;
    std::vector<storage::PendingItem> items;
    int pending = 1;
    Status error;
  };
  auto put = std::make_shared<Put>();
  put->db = db;
  std::vector<const Entry*> reads;
  for (const Entry& e : es) {
    Touch(db, e.key, true);
    if (!e.present) {
      store->DelIfOlder(db, e.key, e.version, now);
      NoteDeleted(db, e.key, e.version);
      continue;
    }
    auto item = store->Prepare(e.key, e.len, now);
    if (!item.ok()) {
      for (const auto& it : put->items) Touch(db, it.key());  // not applied
      Touch(db, e.key);
      return call->Reply(ErrorReply(item.status()));
    }
    item.value().set_version(e.version);
    item.value().set_expire_at_ms(e.expire);
    put->items.push_back(std::move(item.value()));
    reads.push_back(&e);
  }
  IncomingCall* c = call.get();
  put->call = std::move(call);
  auto finish = [this, put, store] {
    if (--put->pending > 0) return;
    Status st = put->error;
    if (st.ok()) st = store->Publish(put->db, &put->items, pool->WallNow(), {.if_not_older = true});
    if (!st.ok())
      for (const auto& it : put->items) Touch(put->db, it.key());
    put->call->Reply(st.ok() ? OkReply() : ErrorReply(st));
  };
  for (size_t i = 0; i < reads.size(); ++i) {
    if (reads[i]->len == 0) continue;
    ++put->pending;
    c->ReadBulk(reads[i]->off, reads[i]->len, put->items[i].value_data(), [put, finish](Status s) {
      if (!s.ok() && put->error.ok()) put->error = s;
      finish();
    });
  }
  finish();
}

Status Pool::Impl::ApplyState(int db, std::string_view state) {
  storage::Store* store = pool->store_;
  Reader r(state);
  uint32_t n;
  if (!r.Count(&n, kStateEntryMin)) return Status::Internal("malformed state in an ordered reply");
  struct Entry {
    std::string_view key, value;
    uint8_t present;
    uint64_t version;
    int64_t expire;
  };
  std::vector<Entry> es(n);
  for (Entry& e : es) {
    if (!r.Bytes(&e.key) || !r.U8(&e.present) || !r.U64(&e.version) || !r.I64(&e.expire) ||
        !r.Bytes(&e.value) || e.version == 0 || (!e.present && !e.value.empty()) ||
        !IsCopy(pool->self(), e.key))
      return Status::Internal("malformed state in an ordered reply");
  }
  const int64_t now = pool->WallNow();
  std::vector<storage::PendingItem> items;
  items.reserve(n);
  for (const Entry& e : es) {
    Touch(db, e.key, true);
    if (!e.present) {
      store->DelIfOlder(db, e.key, e.version, now);
      NoteDeleted(db, e.key, e.version);
      continue;
    }
    auto item = store->Prepare(e.key, e.value.size(), now);
    if (!item.ok()) {
      for (const auto& it : items) Touch(db, it.key());  // not applied
      Touch(db, e.key);
      return item.status();
    }
    item.value().set_version(e.version);
    item.value().set_expire_at_ms(e.expire);
    if (!e.value.empty()) std::memcpy(item.value().value_data(), e.value.data(), e.value.size());
    items.push_back(std::move(item.value()));
  }
  Status st = store->Publish(db, &items, now, {.if_not_older = true});
  if (!st.ok())
    for (const auto& it : items) Touch(db, it.key());
  return st;
}

Status Pool::Impl::TakeOrdered(int lane, int primary, int db,
                               std::span<const std::string_view> keys, Status s,
                               std::string_view reply, std::string_view* rest) {
  Pool* p = pool;
  if (!s.ok()) {
    // Maybe applied there (now, or once a paused primary resumes) and
    // relayed to the other copies, but not here: it relays them again.
    // (Were this node to fetch them itself, it would stop serving them
    // until the primary answered, and a dead primary never does.)
    if (s.code() == Code::kTimeout || s.code() == Code::kUnavailable) {
      std::vector<std::string_view> mine;
      for (std::string_view k : keys)
        if (IsCopy(p->self(), k)) mine.push_back(k);
      if (!mine.empty()) RelayAgain(lane, primary, db, mine);
    }
    return s;
  }
  std::string_view payload;
  if (Status ps = ParseReplyStatus(reply, &payload); !ps.ok()) return ps;  // not applied there
  Reader r(payload);
  std::string_view out, relay_error;
  if (!r.Bytes(&out) || !r.Bytes(&relay_error)) return Status::Internal("malformed ordered reply");
  *rest = out;
  Status applied = ApplyState(db, r.rest());
  if (!applied.ok()) {
    {
      std::lock_guard<std::mutex> l(sync_mu);
      ++sync.replica_write_errors;
    }
    return Status::Aborted("pool: the write reached " + p->node(primary).Addr() +
                           " but not its copy on " + p->node(p->self()).Addr() + " (" +
                           applied.ToString() + ")");
  }
  if (!relay_error.empty()) return Status::Aborted(std::string(relay_error));
  return Status::OK();
}

void Pool::Impl::RelayAgain(int lane, int primary, int db, std::span<const std::string_view> keys) {
  Pool* p = pool;
  {
    std::lock_guard<std::mutex> l(sync_mu);
    ++sync.catch_ups_sent;
  }
  const size_t max_keys = std::max<size_t>(1, p->options_.max_batch_keys);
  for (size_t begin = 0; begin < keys.size(); begin += max_keys) {
    size_t end = std::min(keys.size(), begin + max_keys);
    transport::CallArgs args;
    args.opcode = kOpRelayAgain;
    args.body = KeysBody(db, end - begin, [&](size_t i) { return keys[begin + i]; });
    // No answer is needed: a paused primary relays once it resumes, a dead
    // one lost the write with the rest of its memory.
    p->transport_->Call(lane, primary, std::move(args), p->options_.timeout_ms,
                        [](Status, std::string_view, std::string_view) {});
  }
}

std::string Pool::Impl::TakenReply(std::string_view out, const Status& relayed,
                                   const std::string& state) {
  std::string reply = OkReply();
  Writer w(&reply);
  w.Bytes(out);
  w.Bytes(relayed.ok() ? std::string_view() : std::string_view(relayed.message()));
  reply += state;
  return reply;
}

void Pool::Impl::ForwardTaking(int lane, int primary, int db, int resp,
                               std::span<const std::string_view> argv,
                               std::span<const std::string_view> written, Pool::ReplyDone done,
                               std::shared_ptr<const void> owner) {
  Pool* p = pool;
  p->routed().commands_forwarded.fetch_add(1, std::memory_order_relaxed);
  std::string prefix;
  Writer w(&prefix);
  w.U32(static_cast<uint32_t>(db));
  w.U8(static_cast<uint8_t>(resp));
  std::vector<std::string> keys(written.begin(), written.end());
  // Arguments larger than a call go ahead in chunks (held_args.cc).
  SendArgs(lane, primary, std::move(prefix), argv, std::move(owner),
           [this, lane, primary, db, keys = std::move(keys), done = std::move(done)](
               Status s, std::string body, std::string tail) mutable {
             if (!s.ok())
               return done(Status(s.code(), pool->NodeDownError(primary) + " (" + s.message() + ")"), {});
             transport::CallArgs args;
             args.opcode = kOpOrderedCommand;
             args.reset_on_timeout = true;
             args.body = std::move(body);
             Writer w(&args.body);
             w.U8(1);  // take
             w.U8(1);  // hold a large reply (held_reply.cc)
             args.body += tail;
             SendTaking(lane, primary, db, std::move(keys), std::move(args), std::move(done));
           });
}

void Pool::Impl::SendTaking(int lane, int primary, int db, std::vector<std::string> keys,
                            transport::CallArgs args, Pool::ReplyDone done) {
  Pool* p = pool;
  WriteCall(
      lane, primary, std::move(args), p->options_.timeout_ms,
      [this, p, lane, primary, db, keys = std::move(keys), done = std::move(done)](
          Status s, std::string_view reply, std::string_view) {
        std::vector<std::string_view> ks(keys.begin(), keys.end());
        std::string_view out;
        s = TakeOrdered(lane, primary, db, ks, std::move(s), reply, &out);
        if (s.code() == Code::kUnavailable || s.code() == Code::kTimeout)
          return done(Status(s.code(), p->NodeDownError(primary) + " (" + s.message() + ")"), {});
        if (!s.ok()) return done(s, {});
        FinishCommand(lane, primary, out, std::move(done));
      });
}

void Pool::Impl::OnOrderedSet(InCall call) {
  Reader r(call->body());
  int db;
  if (!ReadDb(r, pool->store_->databases(), &db)) return call->Reply(ErrorReply(MalformedRequest()));
  ReceiveSet(std::move(call), r, db, nullptr, /*ordered=*/true);
}

void Pool::Impl::OnOrderedCommand(InCall call) {
  Reader r(call->body());
  int db;
  uint8_t resp;
  std::vector<std::string_view> argv;
  uint8_t take = 0, hold = 0;
  if (!ReadDb(r, pool->store_->databases(), &db) || !r.U8(&resp) || !ReadArgv(r, &argv) ||
      (!r.done() && (!r.U8(&take) || take > 1)) || (!r.done() && (!r.U8(&hold) || hold > 1)))
    return call->Reply(ErrorReply(MalformedRequest()));
  std::vector<std::shared_ptr<HeldArg>> sent_ahead;  // held_args.cc
  if (Status s = TakeArgs(r, &argv, &sent_ahead); !s.ok()) return call->Reply(ErrorReply(s));
  std::vector<std::string_view> written = pool->executor_->WriteKeys(argv);
  if (!PrimaryOfAll(written))
    return call->Reply(ErrorReply(Status::Aborted(
        "pool: " + pool->node(pool->self()).Addr() + " does not order writes of these keys now; try again")));
  NoteCommand(db, argv);
  std::string out =
      CommandReply(pool->executor_->ExecuteHeld(call->lane(), db, resp == 3 ? 3 : 2, argv), hold == 1);
  auto holder = std::make_shared<InCall>(std::move(call));
  int lane = (*holder)->lane();
  std::vector<std::string> keys(written.begin(), written.end());
  if (!take) {
    return Relay(lane, db, std::move(keys), [holder, out = std::move(out)](Status s) mutable {
      (*holder)->Reply(s.ok() ? std::move(out) : ErrorReply(s));
    });
  }
  auto state = std::make_shared<std::string>();
  Relay(
      lane, db, std::move(keys),
      [holder, out = std::move(out), state](Status s) {
        (*holder)->Reply(TakenReply(std::string_view(out).substr(OkReply().size()), s, *state));
      },
      (*holder)->peer(), state.get());
}

}  // namespace kvpool::pool
