// The owner side: calls from peers, run against this node's Store (or, for
// whole commands, through the server's CommandExecutor). One handler per
// opcode; HandleCall finds it in a table indexed by opcode. Writes are in
// owner_put.cc, the catch-up reads in sync.cc, kOpEvicted in evict.cc,
// kOpCopy in copies.cc, the ordered writes in ordered.cc, kOpTokened and
// kOpFate in fate.cc.
#include <iterator>
#include <optional>

#include "storage/pool/pool_impl.h"

namespace kvpool::pool {

namespace {

using transport::IncomingCall;

void ReleaseToken(void* token) { storage::ItemRef::ReleasePin(token); }

// A key list body, {db u32, n u32, key*n}; n is checked against what the
// body can hold.
struct KeyList {
  int db = 0;
  std::vector<std::string_view> keys;  // views into the call's body
};

// The call's body as a key list; if it is not one, the call is answered
// (malformed) and nullopt returned.
std::optional<KeyList> KeyListOf(IncomingCall& call, int databases) {
  Reader r(call.body());
  KeyList l;
  uint32_t n;
  bool ok = ReadDb(r, databases, &l.db) && r.Count(&n, 4);
  if (ok) l.keys.resize(n);
  for (uint32_t i = 0; ok && i < n; ++i) ok = r.Bytes(&l.keys[i]);
  if (ok) return l;
  call.Reply(ErrorReply(MalformedRequest()));
  return std::nullopt;
}

}  // namespace

bool ReadArgv(Reader& r, std::vector<std::string_view>* argv) {
  uint32_t n;
  if (!r.Count(&n, 4) || n == 0) return false;
  argv->resize(n);
  for (uint32_t i = 0; i < n; ++i)
    if (!r.Bytes(&(*argv)[i])) return false;
  return true;
}

Status MalformedRequest() { return Status::InvalidArgument("malformed request"); }

bool ReadDb(Reader& r, int databases, int* db) {
  uint32_t d;
  if (!r.U32(&d) || d >= static_cast<uint32_t>(databases)) return false;
  *db = static_cast<int>(d);
  return true;
}

uint64_t SendValue(IncomingCall* call, storage::ItemRef& item, size_t* room) {
  size_t len = item.value().size();
  if (len > *room) return 0;
  const char* p = item.value().data();
  size_t off;
  void* token = item.ReleaseToToken();
  if (!call->WriteBulk(p, len, &ReleaseToken, token, &off).ok()) {
    storage::ItemRef::ReleasePin(token);
    return 0;
  }
  *room -= len;
  return len;
}

void Pool::Impl::HandleCall(InCall call) {
  using Handler = void (Impl::*)(InCall);
  struct Entry {
    uint16_t opcode;
    Handler handler;
  };
  // Entry i answers opcode i + 1 (checked below): messages.h numbers the
  // opcodes from 1 with no gap.
  static constexpr Entry kHandlers[] = {
      {kOpPing, &Impl::OnPing},
      {kOpMultiGet, &Impl::OnMultiGet},
      {kOpGetChunk, &Impl::OnGetChunk},
      {kOpMultiSet, &Impl::OnMultiSet},
      {kOpPutBegin, &Impl::OnPutBegin},
      {kOpPutChunk, &Impl::OnPutChunk},
      {kOpPutEnd, &Impl::OnPutEnd},
      {kOpMultiExists, &Impl::OnMultiExists},
      {kOpMultiDel, &Impl::OnMultiDel},
      {kOpCommand, &Impl::OnCommand},
      {kOpTransaction, &Impl::OnTransaction},
      {kOpVersions, &Impl::OnVersions},
      {kOpSyncScan, &Impl::OnSyncScan},
      {kOpSyncKeys, &Impl::OnSyncKeys},
      {kOpCatchUp, &Impl::OnCatchUp},
      {kOpEvicted, &Impl::OnEvicted},
      {kOpResync, &Impl::OnResync},
      {kOpStageBegin, &Impl::OnStageBegin},
      {kOpStageSet, &Impl::OnStageSet},
      {kOpCopy, &Impl::OnCopy},
      {kOpOrderedSet, &Impl::OnOrderedSet},
      {kOpOrderedCommand, &Impl::OnOrderedCommand},
      {kOpApply, &Impl::OnApply},
      {kOpOrderedDel, &Impl::OnOrderedDel},
      {kOpRelayAgain, &Impl::OnRelayAgain},
      {kOpMultiTouch, &Impl::OnMultiTouch},
      {kOpTokened, &Impl::OnTokened},
      {kOpFate, &Impl::OnFate},
      {kOpReplyChunk, &Impl::OnReplyChunk},
      {kOpArgBegin, &Impl::OnArgBegin},
      {kOpArgChunk, &Impl::OnArgChunk},
  };
  static_assert(
      [] {
        for (size_t i = 0; i < std::size(kHandlers); ++i)
          if (kHandlers[i].opcode != i + 1) return false;
        return true;
      }(),
      "kHandlers must list the opcodes in order, from 1, with no gap");
  const uint16_t op = call->opcode();
  if (op == 0 || op > std::size(kHandlers))
    return call->Reply(ErrorReply(Status::InvalidArgument("unknown opcode")));
  (this->*kHandlers[op - 1].handler)(std::move(call));
}

void Pool::Impl::OnPing(InCall call) {
  Reader r(call->body());
  storage::StoreStats st = pool->store_->GetStats();
  std::string out = OkReply();
  Writer w(&out);
  w.U32(static_cast<uint32_t>(pool->self()));
  w.U64(st.keys);
  w.U64(st.used_memory);
  w.U64(st.maxmemory);
  bool syncing_now = syncing.load();
  // 1: a whole catch-up (it was away); 2: only some keys fetched again.
  w.U8(!syncing_now ? 0 : keys_only.load() ? 2 : 1);
  w.I64(syncing_now ? pool->MonoNow() - sync_stats_started_ms() : 0);
  // Whether this node counts the caller up, i.e. sends it writes: a
  // syncing caller scans only once every peer does.
  int caller = call->peer();
  bool known = caller >= 0 && caller < pool->nodes() && caller != pool->self();
  w.U8(known && health[caller].up.load() ? 1 : 0);
  w.U64(sync_gen.load());
  // Every node's sync generation as this node knows it (0: never seen in
  // sync): a node that starts empty learns which copies may hold data.
  w.U32(static_cast<uint32_t>(pool->nodes()));
  for (int c = 0; c < pool->nodes(); ++c)
    w.U64(c == pool->self() ? sync_gen.load() : health[c].gen.load());
  {
    // The client address this node announces (empty / 0: none).
    std::lock_guard<std::mutex> l(announce_mu);
    w.Bytes(announced[pool->self()].first);
    w.U32(static_cast<uint32_t>(announced[pool->self()].second));
  }
  // The copies it caught up without (merges pending), as a mask.
  w.U64(pending_mask.load());
  uint8_t stale;
  uint64_t gen;
  if (known && pool->replicas() > 1 && r.U8(&stale) && r.U64(&gen))
    NoteStaleFlag(caller, stale != 0, gen);
  call->Reply(std::move(out));
}

void Pool::Impl::OnMultiGet(InCall call) {
  storage::Store* store = pool->store_;
  auto l = KeyListOf(*call, store->databases());
  if (!l) return;
  // A syncing replica may lack keys: the requester asks another copy.
  if (syncing.load()) return call->Reply(ErrorReply(Status::Unavailable("syncing")));
  std::vector<storage::ItemRef> items = store->MultiGet(l->db, l->keys, pool->WallNow());
  std::string out = OkReply();
  Writer w(&out);
  size_t room = call->bulk_out_capacity();
  for (auto& it : items) {
    const bool found = static_cast<bool>(it);
    uint64_t len = found ? it.value().size() : 0, version = found ? it.version() : 0;
    uint64_t sent = found ? SendValue(call.get(), it, &room) : 0;  // releases `it`
    w.U8(found ? kKeyFound : kKeyMissing);
    w.U64(len);
    w.U64(sent);
    w.U64(version);
  }
  call->Reply(std::move(out));
}

void Pool::Impl::OnGetChunk(InCall call) {
  storage::Store* store = pool->store_;
  Reader r(call->body());
  int db;
  std::string_view key;
  uint64_t version, off, len;
  if (!ReadDb(r, store->databases(), &db) || !r.Bytes(&key) || !r.U64(&version) || !r.U64(&off) ||
      !r.U64(&len))
    return call->Reply(ErrorReply(MalformedRequest()));
  storage::ItemRef it = store->Get(db, key, pool->WallNow());
  std::string out = OkReply();
  Writer w(&out);
  if (!it) {
    w.U8(kKeyMissing);
    w.U64(0);
    w.U64(0);
    return call->Reply(std::move(out));
  }
  uint64_t total = it.value().size(), v = it.version();
  if (v != version || off > total || len > total - off || len > call->bulk_out_capacity()) {
    w.U8(kKeyChanged);
    w.U64(total);
    w.U64(v);
    return call->Reply(std::move(out));
  }
  const char* p = it.value().data() + off;
  size_t at;
  void* token = it.ReleaseToToken();
  Status s = call->WriteBulk(p, len, &ReleaseToken, token, &at);
  if (!s.ok()) {
    storage::ItemRef::ReleasePin(token);
    return call->Reply(ErrorReply(s));
  }
  w.U8(kKeyFound);
  w.U64(total);
  w.U64(v);
  call->Reply(std::move(out));
}

void Pool::Impl::OnMultiExists(InCall call) { ReplyPresence(std::move(call), false); }

void Pool::Impl::OnMultiTouch(InCall call) { ReplyPresence(std::move(call), true); }

void Pool::Impl::ReplyPresence(InCall call, bool touch) {
  storage::Store* store = pool->store_;
  auto l = KeyListOf(*call, store->databases());
  if (!l) return;
  // A syncing replica may lack keys: the requester asks another copy.
  if (syncing.load()) return call->Reply(ErrorReply(Status::Unavailable("syncing")));
  std::string out = OkReply();
  const int64_t now = pool->WallNow();
  if (touch) {
    for (std::string_view k : l->keys) out.push_back(store->Get(l->db, k, now) ? 1 : 0);
  } else {
    // One lock per shard, buckets prefetched, no pin per key.
    for (uint8_t yes : store->MultiExists(l->db, l->keys, now)) out.push_back(yes ? 1 : 0);
  }
  call->Reply(std::move(out));
}

void Pool::Impl::OnMultiDel(InCall call) {
  storage::Store* store = pool->store_;
  auto l = KeyListOf(*call, store->databases());
  if (!l) return;
  const int64_t now = pool->WallNow();
  std::string out = OkReply();
  for (std::string_view k : l->keys) {
    Touch(l->db, k, true);
    out.push_back(store->Del(l->db, k, now) ? 1 : 0);
  }
  call->Reply(std::move(out));
}

void Pool::Impl::OnOrderedDel(InCall call) {
  storage::Store* store = pool->store_;
  auto l = KeyListOf(*call, store->databases());
  if (!l) return;
  if (!PrimaryOfAll(l->keys))
    return call->Reply(ErrorReply(Status::Aborted(
        "pool: " + pool->node(pool->self()).Addr() + " does not order writes of these keys now; try again")));
  const int64_t now = pool->WallNow();
  std::string out = OkReply();
  for (std::string_view k : l->keys) {
    Touch(l->db, k, true);
    out.push_back(store->Del(l->db, k, now) ? 1 : 0);
  }
  auto holder = std::make_shared<InCall>(std::move(call));
  Relay((*holder)->lane(), l->db, std::vector<std::string>(l->keys.begin(), l->keys.end()),
        [holder, out = std::move(out)](Status s) mutable {
          (*holder)->Reply(s.ok() ? std::move(out) : ErrorReply(s));
        });
}

void Pool::Impl::OnVersions(InCall call) {
  storage::Store* store = pool->store_;
  auto l = KeyListOf(*call, store->databases());
  if (!l) return;
  const int64_t now = pool->WallNow();
  std::string out = OkReply();
  Writer w(&out);
  for (std::string_view k : l->keys) {
    storage::ItemRef it = store->Peek(l->db, k, now);
    w.U64(it ? it.version() : 0);
  }
  call->Reply(std::move(out));
}

void Pool::Impl::OnCommand(InCall call) {
  Reader r(call->body());
  int db;
  uint8_t resp;
  std::vector<std::string_view> argv;
  if (!ReadDb(r, pool->store_->databases(), &db) || !r.U8(&resp) || !ReadArgv(r, &argv))
    return call->Reply(ErrorReply(MalformedRequest()));
  if (syncing.load() && pool->executor_->ReadsKeys(argv))
    return call->Reply(ErrorReply(Status::Unavailable("syncing")));
  uint8_t hold = 0;  // the caller fetches a large reply in chunks (held_reply.cc)
  if (!r.done() && (!r.U8(&hold) || hold > 1)) return call->Reply(ErrorReply(MalformedRequest()));
  std::vector<std::shared_ptr<HeldArg>> sent_ahead;  // held_args.cc
  if (Status s = TakeArgs(r, &argv, &sent_ahead); !s.ok()) return call->Reply(ErrorReply(s));
  NoteCommand(db, argv);
  call->Reply(CommandReply(pool->executor_->ExecuteHeld(call->lane(), db, resp == 3 ? 3 : 2, argv),
                           hold == 1));
}

void Pool::Impl::OnTransaction(InCall call) {
  Reader r(call->body());
  int db;
  uint32_t ncmd, nwatch;
  uint8_t resp;
  if (!ReadDb(r, pool->store_->databases(), &db) || !r.U8(&resp) || !r.Count(&ncmd, 8))
    return call->Reply(ErrorReply(MalformedRequest()));
  std::vector<std::vector<std::string_view>> cmds(ncmd);
  for (auto& c : cmds)
    if (!ReadArgv(r, &c)) return call->Reply(ErrorReply(MalformedRequest()));
  if (!r.Count(&nwatch, 12)) return call->Reply(ErrorReply(MalformedRequest()));
  std::vector<std::pair<std::string_view, uint64_t>> watched(nwatch);
  for (auto& [k, v] : watched)
    if (!r.Bytes(&k) || !r.U64(&v)) return call->Reply(ErrorReply(MalformedRequest()));
  uint8_t ordered = 0;  // absent from a peer of an older build
  if (!r.done() && (!r.U8(&ordered) || ordered > 1))
    return call->Reply(ErrorReply(MalformedRequest()));
  std::vector<std::pair<int, std::string>> written;
  if (ordered) {
    // As kOpOrderedCommand: only the primary of every key it writes runs it.
    std::vector<std::string_view> keys;
    for (const auto& [kdb, k] : pool->executor_->TransactionWrites(db, cmds)) {
      keys.push_back(k);
      written.emplace_back(kdb, std::string(k));
    }
    if (!PrimaryOfAll(keys))
      return call->Reply(ErrorReply(Status::Aborted(
          "pool: " + pool->node(pool->self()).Addr() +
          " does not order writes of these keys now; try again")));
  }
  for (const auto& c : cmds) NoteCommand(db, c);
  std::string out = OkReply();
  out += pool->executor_->ExecuteTransaction(call->lane(), db, resp == 3 ? 3 : 2, cmds, watched);
  if (written.empty()) return call->Reply(std::move(out));
  auto holder = std::make_shared<InCall>(std::move(call));
  pool->RelayWritten((*holder)->lane(), written, [holder, out = std::move(out)](Status s) mutable {
    (*holder)->Reply(s.ok() ? std::move(out) : ErrorReply(s));
  });
}

void Pool::Impl::OnResync(InCall call) {
  int caller = call->peer();
  if (pool->replicas() > 1 && caller >= 0 && caller < pool->nodes() && caller != pool->self())
    BeginResync(pool->node(caller).Addr() + " took writes without this node");
  call->Reply(OkReply());
}

void Pool::Impl::OnCatchUp(InCall call) {
  auto l = KeyListOf(*call, pool->store_->databases());
  if (!l) return;
  int caller = call->peer();
  if (pool->replicas() > 1 && caller >= 0 && caller < pool->nodes() && caller != pool->self())
    CatchUpKeys(caller, l->db, l->keys);
  call->Reply(OkReply());
}

}  // namespace kvpool::pool

namespace kvpool::pool {

void Pool::Impl::OnRelayAgain(InCall call) {
  auto l = KeyListOf(*call, pool->store_->databases());
  if (!l) return;
  std::vector<std::string> keys;
  for (std::string_view k : l->keys)
    if (IsCopy(pool->self(), k)) keys.emplace_back(k);
  auto holder = std::make_shared<InCall>(std::move(call));
  Relay((*holder)->lane(), l->db, std::move(keys),
        [holder](Status s) { (*holder)->Reply(s.ok() ? OkReply() : ErrorReply(s)); });
}

}  // namespace kvpool::pool
