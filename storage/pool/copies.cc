// POOL COPIES: what every copy of a key holds (present, version, digest),
// so operators and tests can see that copies agree without moving values.
// The owner side answers kOpCopy from this node's Store; the requester
// side asks every copy of the key's slot at once.
#include "storage/pool/pool_impl.h"
#include "storage/util/digest.h"

namespace kvpool::pool {

CopyInfo ReadCopy(storage::Store& store, int db, std::string_view key, int64_t now_ms) {
  CopyInfo c;
  // Peek: looking does not refresh the key's place in the eviction order.
  storage::ItemRef it = store.Peek(db, key, now_ms);
  if (!it) return c;
  c.present = true;
  c.version = it.version();
  c.digest = Hash64(it.value());
  return c;
}

void Pool::Impl::OnCopy(InCall call) {
  storage::Store* store = pool->store_;
  Reader r(call->body());
  int db;
  std::string_view key;
  if (!ReadDb(r, store->databases(), &db) || !r.Bytes(&key))
    return call->Reply(ErrorReply(MalformedRequest()));
  CopyInfo c = ReadCopy(*store, db, key, pool->WallNow());
  std::string out = OkReply();
  Writer w(&out);
  w.U8(c.present ? 1 : 0);
  w.U64(c.version);
  w.U64(c.digest);
  call->Reply(std::move(out));
}

void Pool::Copies(int lane, int db, std::string_view key, CopiesDone done) {
  struct State {
    std::vector<CopyInfo> copies;
    int pending = 1;  // this function's own, dropped last: done runs once, at the end
    CopiesDone done;
  };
  auto st = std::make_shared<State>();
  st->copies.resize(replicas());
  st->done = std::move(done);
  auto finish_one = [st] {
    if (--st->pending == 0) st->done(st->copies);
  };
  const int slot = KeySlot(key);
  for (int i = 0; i < replicas(); ++i) {
    CopyInfo& c = st->copies[i];
    c.node = slots_.CopyOfSlot(slot, i);
    if (!NodeUp(c.node)) continue;  // kDown, asked nothing
    c.state = Serving(c.node) ? CopyInfo::kInSync : CopyInfo::kSyncing;
    if (c.node == options_.self) {
      CopyInfo here = ReadCopy(*store_, db, key, WallNow());
      c.present = here.present;
      c.version = here.version;
      c.digest = here.digest;
      continue;
    }
    ++st->pending;
    transport::CallArgs args;
    args.opcode = kOpCopy;
    Writer w(&args.body);
    w.U32(static_cast<uint32_t>(db));
    w.Bytes(key);
    transport_->Call(lane, c.node, std::move(args), options_.timeout_ms,
                     [st, i, finish_one](Status s, std::string_view reply, std::string_view) {
                       CopyInfo& c = st->copies[i];
                       std::string_view payload;
                       if (s.ok()) s = ParseReplyStatus(reply, &payload);
                       Reader r(payload);
                       uint8_t present;
                       if (s.ok() && r.U8(&present) && r.U64(&c.version) && r.U64(&c.digest)) {
                         c.present = present != 0;
                       } else {
                         // No answer in time (or none that decodes): down, as
                         // far as this question goes.
                         c.state = CopyInfo::kDown;
                         c.present = false;
                       }
                       if (!c.present) c.version = c.digest = 0;
                       finish_one();
                     });
  }
  finish_one();
}

}  // namespace kvpool::pool
