// The owner side: calls from peers, run against this node's Store (or, for
// whole commands, through the server's CommandExecutor).
#include <spdlog/spdlog.h>

#include "storage/pool/pool_impl.h"

namespace kvpool::pool {

namespace {

using transport::IncomingCall;

void ReleaseToken(void* token) { storage::ItemRef::ReleasePin(token); }

Status Malformed() { return Status::InvalidArgument("malformed request"); }

// {db u32, n u32, key*n}; n is checked against what the body can hold.
bool ReadKeys(Reader& r, int databases, int* db, std::vector<std::string_view>* keys) {
  uint32_t d, n;
  if (!r.U32(&d) || d >= static_cast<uint32_t>(databases) || !r.Count(&n, 4)) return false;
  *db = static_cast<int>(d);
  keys->resize(n);
  for (uint32_t i = 0; i < n; ++i)
    if (!r.Bytes(&(*keys)[i])) return false;
  return true;
}

bool ReadArgv(Reader& r, std::vector<std::string_view>* argv) {
  uint32_t n;
  if (!r.Count(&n, 4) || n == 0) return false;
  argv->resize(n);
  for (uint32_t i = 0; i < n; ++i)
    if (!r.Bytes(&(*argv)[i])) return false;
  return true;
}

}  // namespace

void Pool::Impl::HandleCall(std::unique_ptr<IncomingCall> call) {
  storage::Store* store = pool->store_;
  const int dbs = store->databases();
  const int64_t now = WallMs();
  Reader r(call->body());
  int db = 0;
  std::vector<std::string_view> keys;

  switch (call->opcode()) {
    case kOpPing: {
      storage::StoreStats st = store->GetStats();
      std::string out = OkReply();
      Writer w(&out);
      w.U32(static_cast<uint32_t>(pool->self()));
      w.U64(st.keys);
      w.U64(st.used_memory);
      w.U64(st.maxmemory);
      bool syncing_now = syncing.load();
      w.U8(syncing_now ? 1 : 0);
      w.I64(syncing_now ? WallMs() - sync_stats_started_ms() : 0);
      // Whether this node counts the caller up, i.e. sends it writes: a
      // syncing caller scans only once every peer does.
      int caller = call->peer();
      bool known = caller >= 0 && caller < pool->nodes() && caller != pool->self();
      w.U8(known && health[caller].up.load() ? 1 : 0);
      w.U64(sync_gen.load());
      uint8_t stale;
      uint64_t gen;
      if (known && pool->replicas() > 1 && r.U8(&stale) && r.U64(&gen))
        NoteStaleFlag(caller, stale != 0, gen);
      return call->Reply(std::move(out));
    }

    case kOpMultiGet: {
      if (!ReadKeys(r, dbs, &db, &keys)) return call->Reply(ErrorReply(Malformed()));
      // A syncing replica may lack keys: the requester asks another copy.
      if (syncing.load()) return call->Reply(ErrorReply(Status::Unavailable("syncing")));
      std::vector<storage::ItemRef> items = store->MultiGet(db, keys, now);
      std::string out = OkReply();
      Writer w(&out);
      size_t room = call->bulk_out_capacity();
      for (auto& it : items) {
        if (!it) {
          w.U8(kKeyMissing);
          w.U64(0);
          w.U64(0);
          w.U64(0);
          continue;
        }
        size_t len = it.value().size();
        uint64_t version = it.version();
        uint64_t sent = 0;
        if (len <= room) {
          const char* p = it.value().data();
          size_t off;
          // The pin travels with the bytes and is dropped once they are gone.
          void* token = it.ReleaseToToken();
          if (call->WriteBulk(p, len, &ReleaseToken, token, &off).ok()) {
            sent = len;
            room -= len;
          } else {
            storage::ItemRef::ReleasePin(token);
          }
        }
        w.U8(kKeyFound);
        w.U64(len);
        w.U64(sent);
        w.U64(version);
      }
      return call->Reply(std::move(out));
    }

    case kOpGetChunk: {
      uint32_t d;
      std::string_view key;
      uint64_t version, off, len;
      if (!r.U32(&d) || d >= static_cast<uint32_t>(dbs) || !r.Bytes(&key) || !r.U64(&version) ||
          !r.U64(&off) || !r.U64(&len))
        return call->Reply(ErrorReply(Malformed()));
      storage::ItemRef it = store->Get(static_cast<int>(d), key, now);
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
      return call->Reply(std::move(out));
    }

    case kOpMultiSet:
    case kOpStageSet: {
      // kOpStageSet: into a staged batch, published later by kOpPutEnd.
      std::shared_ptr<PendingPut> batch;
      uint32_t d, n;
      if (call->opcode() == kOpStageSet) {
        uint64_t handle;
        if (!r.U64(&handle)) return call->Reply(ErrorReply(Malformed()));
        {
          std::lock_guard<std::mutex> l(puts_mu);
          auto it = puts.find(handle);
          if (it != puts.end() && it->second->staged) batch = it->second;
        }
        if (!batch) return call->Reply(ErrorReply(Status::NotFound("no such put")));
        d = static_cast<uint32_t>(batch->db);
      } else if (!r.U32(&d) || d >= static_cast<uint32_t>(dbs)) {
        return call->Reply(ErrorReply(Malformed()));
      }
      if (!r.Count(&n, 20)) return call->Reply(ErrorReply(Malformed()));
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
      put->db = static_cast<int>(d);
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
          return call->Reply(ErrorReply(Malformed()));
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
      IncomingCall* c = call.get();
      put->call = std::move(call);
      if (batch) {
        std::lock_guard<std::mutex> l(puts_mu);
        ++batch->receiving;
      }
      auto finish = [this, put, store, batch] {
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
        if (st.ok()) st = store->Publish(put->db, &put->items, WallMs());
        // Not applied here: fetched again if this node is catching up.
        if (!st.ok())
          for (const auto& it : put->items) Touch(put->db, it.key());
        put->call->Reply(st.ok() ? OkReply() : ErrorReply(st));
      };
      for (size_t i = 0; i < parts.size(); ++i) {
        if (parts[i].len == 0) continue;
        ++put->pending;
        c->ReadBulk(parts[i].off, parts[i].len, put->items[i].value_data(),
                    [put, finish](Status s) {
                      if (!s.ok() && put->error.ok()) put->error = s;
                      finish();
                    });
      }
      finish();
      return;
    }

    case kOpPutBegin: {
      uint32_t d;
      std::string_view key;
      uint64_t total;
      if (!r.U32(&d) || d >= static_cast<uint32_t>(dbs) || !r.Bytes(&key) || !r.U64(&total))
        return call->Reply(ErrorReply(Malformed()));
      auto item = store->Prepare(key, total, now);
      if (!item.ok()) return call->Reply(ErrorReply(item.status()));
      Touch(static_cast<int>(d), key, true);  // a put that does not end: kOpCatchUp
      uint64_t handle;
      {
        std::lock_guard<std::mutex> l(puts_mu);
        handle = next_put++;
        auto put = std::make_shared<PendingPut>();
        put->db = static_cast<int>(d);
        put->items.push_back(std::move(item.value()));
        put->started_ms = now;
        puts.emplace(handle, std::move(put));
      }
      std::string out = OkReply();
      Writer w(&out);
      w.U64(handle);
      return call->Reply(std::move(out));
    }

    case kOpPutChunk: {
      uint64_t handle, off;
      if (!r.U64(&handle) || !r.U64(&off)) return call->Reply(ErrorReply(Malformed()));
      std::shared_ptr<PendingPut> put;
      {
        std::lock_guard<std::mutex> l(puts_mu);
        auto it = puts.find(handle);
        if (it != puts.end() && !it->second->staged && off <= it->second->items[0].value_size() &&
            call->bulk_in_size() <= it->second->items[0].value_size() - off)
          put = it->second;
      }
      if (!put) return call->Reply(ErrorReply(Status::NotFound("no such put")));
      // The read holds the pending item: a PutEnd that drops it, or the
      // sweep, cannot free the memory while bytes may still land in it.
      char* dst = put->items[0].value_data() + off;
      IncomingCall* c = call.get();
      auto holder = std::make_shared<std::unique_ptr<IncomingCall>>(std::move(call));
      c->ReadBulk(0, c->bulk_in_size(), dst, [holder, put](Status s) {
        (*holder)->Reply(s.ok() ? OkReply() : ErrorReply(s));
      });
      return;
    }

    case kOpPutEnd: {
      uint64_t handle;
      uint8_t publish;
      if (!r.U64(&handle) || !r.U8(&publish)) return call->Reply(ErrorReply(Malformed()));
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
      Status s = store->Publish(p->db, &p->items, WallMs());
      if (!s.ok()) untouch();
      return call->Reply(s.ok() ? OkReply() : ErrorReply(s));
    }

    case kOpStageBegin: {
      uint32_t d;
      if (!r.U32(&d) || d >= static_cast<uint32_t>(dbs)) return call->Reply(ErrorReply(Malformed()));
      auto batch = std::make_shared<PendingPut>();
      batch->db = static_cast<int>(d);
      batch->started_ms = now;
      batch->staged = true;
      uint64_t handle;
      {
        std::lock_guard<std::mutex> l(puts_mu);
        handle = next_put++;
        puts.emplace(handle, std::move(batch));
      }
      std::string out = OkReply();
      Writer w(&out);
      w.U64(handle);
      return call->Reply(std::move(out));
    }

    case kOpMultiExists:
    case kOpMultiDel: {
      if (!ReadKeys(r, dbs, &db, &keys)) return call->Reply(ErrorReply(Malformed()));
      // A syncing replica may lack keys: the requester asks another copy.
      if (call->opcode() == kOpMultiExists && syncing.load())
        return call->Reply(ErrorReply(Status::Unavailable("syncing")));
      std::string out = OkReply();
      if (call->opcode() == kOpMultiExists) {
        // One lock per shard, buckets prefetched, no pin per key.
        for (uint8_t yes : store->MultiExists(db, keys, now)) out.push_back(yes ? 1 : 0);
        return call->Reply(std::move(out));
      }
      for (std::string_view k : keys) {
        Touch(db, k, true);
        out.push_back(store->Del(db, k, now) ? 1 : 0);
      }
      return call->Reply(std::move(out));
    }

    case kOpVersions: {
      if (!ReadKeys(r, dbs, &db, &keys)) return call->Reply(ErrorReply(Malformed()));
      std::string out = OkReply();
      Writer w(&out);
      for (std::string_view k : keys) {
        storage::ItemRef it = store->Peek(db, k, now);
        w.U64(it ? it.version() : 0);
      }
      return call->Reply(std::move(out));
    }

    case kOpCommand: {
      uint32_t d;
      uint8_t resp;
      std::vector<std::string_view> argv;
      if (!r.U32(&d) || d >= static_cast<uint32_t>(dbs) || !r.U8(&resp) || !ReadArgv(r, &argv))
        return call->Reply(ErrorReply(Malformed()));
      if (syncing.load() && pool->executor_->ReadsKeys(argv))
        return call->Reply(ErrorReply(Status::Unavailable("syncing")));
      NoteCommand(static_cast<int>(d), argv);
      std::string out = OkReply();
      out += pool->executor_->Execute(call->lane(), static_cast<int>(d), resp == 3 ? 3 : 2, argv);
      return call->Reply(std::move(out));
    }

    case kOpTransaction: {
      uint32_t d, ncmd, nwatch;
      uint8_t resp;
      if (!r.U32(&d) || d >= static_cast<uint32_t>(dbs) || !r.U8(&resp) || !r.Count(&ncmd, 8))
        return call->Reply(ErrorReply(Malformed()));
      std::vector<std::vector<std::string_view>> cmds(ncmd);
      for (auto& c : cmds)
        if (!ReadArgv(r, &c)) return call->Reply(ErrorReply(Malformed()));
      if (!r.Count(&nwatch, 12)) return call->Reply(ErrorReply(Malformed()));
      std::vector<std::pair<std::string_view, uint64_t>> watched(nwatch);
      for (auto& [k, v] : watched)
        if (!r.Bytes(&k) || !r.U64(&v)) return call->Reply(ErrorReply(Malformed()));
      for (const auto& c : cmds) NoteCommand(static_cast<int>(d), c);
      std::string out = OkReply();
      out += pool->executor_->ExecuteTransaction(call->lane(), static_cast<int>(d), resp == 3 ? 3 : 2, cmds,
                                                 watched);
      return call->Reply(std::move(out));
    }

    case kOpSyncScan:
    case kOpSyncKeys:
      return HandleSync(std::move(call));

    case kOpEvicted:
      return HandleEvicted(std::move(call));

    case kOpResync: {
      int caller = call->peer();
      if (pool->replicas() > 1 && caller >= 0 && caller < pool->nodes() && caller != pool->self())
        BeginResync(pool->node(caller).Addr() + " took writes without this node");
      return call->Reply(OkReply());
    }

    case kOpCatchUp: {
      if (!ReadKeys(r, dbs, &db, &keys)) return call->Reply(ErrorReply(Malformed()));
      int caller = call->peer();
      if (pool->replicas() > 1 && caller >= 0 && caller < pool->nodes() && caller != pool->self())
        CatchUpKeys(caller, db, keys);
      return call->Reply(OkReply());
    }

    default:
      return call->Reply(ErrorReply(Status::InvalidArgument("unknown opcode")));
  }
}

}  // namespace kvpool::pool
