// Replicas (replica.cc): the catch-up of a node that starts (empty), or comes back,
// while other copies of its slots hold data.
//
// Catch-up: a syncing node takes writes at once (coordinators send them to
// every copy that is up) but serves no reads. Once membership has settled it
// scans, from one in-sync copy per slot, the live keys of the slots it holds
// (values, TTLs as absolute times) and stores them, except keys written here
// since it started syncing: those are newer, and are fetched again (their
// exact current state, present or not) in a last pass. Then it reports
// itself in sync (pings carry the flag) and reads come back to it. A failed
// pass starts over from scratch; a flush seen meanwhile restarts it too.
// A node that was in sync catches slots whose other copies are all down up
// "from no one" (it keeps what it held) and merges from those copies once
// they are back (merge.cc).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "storage/pool/pool_impl.h"
#include "storage/pool/sync_op.h"

namespace kvpool::pool {

void Pool::Impl::Purge(std::vector<int> slot_source) {
  // A source that itself caught up without another copy of a slot (this
  // node, say) may lack writes only that copy holds: the slot is kept, and
  // the catch-up stores only the newer of each key.
  const SlotTable& t = pool->slots_;
  for (int s = 0; s < kSlots; ++s) {
    int src = slot_source[s];
    uint64_t mask = src >= 0 ? health[src].pending.load() : 0;
    for (int i = 0; mask != 0 && i < t.replicas(); ++i) {
      int c = t.CopyOfSlot(s, i);
      if (c != src && (c >= 64 || ((mask >> c) & 1))) {
        slot_source[s] = -1;
        break;
      }
    }
  }
  storage::Store* store = pool->store_;
  const int64_t now = pool->WallNow();
  size_t dropped = 0;
  for (int db = 0; db < store->databases(); ++db) {
    uint64_t cursor = 0;
    do {
      storage::ScanResult sr = store->Scan(
          db, cursor, 1024, [&](std::string_view k) { return slot_source[KeySlot(k)] >= 0; }, now);
      cursor = sr.next_cursor;
      std::lock_guard<std::mutex> l(sync_mu);
      for (const auto& k : sr.keys)
        if (!touched.count(KeyId(db, k))) dropped += store->Del(db, k, now);
    } while (cursor != 0);
  }
  spdlog::info("pool: dropped {} keys before catching up again", dropped);
}


// ------------------------------------------------------ owner of a catch-up

namespace {

// One entry of a sync reply; the value goes to bulk_out when it fits.
void WriteEntry(Writer& w, transport::IncomingCall* call, storage::ItemRef& it, size_t* room) {
  if (!it) {
    w.U8(kKeyMissing);
    w.I64(0);
    w.U64(0);
    w.U64(0);
    w.U64(0);
    return;
  }
  size_t len = it.value().size();
  int64_t expire = it.expire_at_ms();
  uint64_t version = it.version();
  uint64_t sent = SendValue(call, it, room);
  w.U8(kKeyFound);
  w.I64(expire);
  w.U64(len);
  w.U64(sent);
  w.U64(version);
}

}  // namespace

void Pool::Impl::OnSyncKeys(InCall call) {
  storage::Store* store = pool->store_;
  const int64_t now = pool->WallNow();
  Reader r(call->body());
  std::string out = OkReply();
  Writer w(&out);
  size_t room = call->bulk_out_capacity();
  uint32_t n;
  if (!r.Count(&n, 8)) return call->Reply(ErrorReply(MalformedRequest()));
  for (uint32_t i = 0; i < n; ++i) {
    int db;
    std::string_view key;
    if (!ReadDb(r, store->databases(), &db) || !r.Bytes(&key))
      return call->Reply(ErrorReply(MalformedRequest()));
    storage::ItemRef it = store->Peek(db, key, now);
    WriteEntry(w, call.get(), it, &room);
  }
  call->Reply(std::move(out));
}

void Pool::Impl::OnSyncScan(InCall call) {
  storage::Store* store = pool->store_;
  Reader r(call->body());
  int db;
  uint32_t max_keys;
  uint64_t cursor;
  std::string_view bitmap;
  if (!ReadDb(r, store->databases(), &db) || !r.U64(&cursor) || !r.U32(&max_keys) ||
      !r.Bytes(&bitmap) || bitmap.size() != kSlots / 8)
    return call->Reply(ErrorReply(MalformedRequest()));
  const int64_t now = pool->WallNow(), started = pool->MonoNow();
  size_t room = call->bulk_out_capacity();
  auto wanted = [&](std::string_view key) {
    int s = KeySlot(key);
    return (static_cast<uint8_t>(bitmap[s / 8]) >> (s % 8)) & 1;
  };
  // Scan steps until the batch is full (keys or bytes) or the db is done,
  // bounded in time so a large sparse db does not hold the lane.
  std::vector<std::string> keys;
  size_t bytes = 0;
  do {
    storage::ScanResult sr = store->Scan(db, cursor, 256, wanted, now);
    cursor = sr.next_cursor;
    for (auto& k : sr.keys) keys.push_back(std::move(k));
    bytes = 0;
    for (const auto& k : keys) bytes += k.size();
  } while (cursor != 0 && keys.size() < max_keys && bytes < room &&
           pool->MonoNow() - started < 20);
  std::string out = OkReply();
  Writer w(&out);
  w.U64(cursor);
  std::string entries;
  Writer we(&entries);
  uint32_t n = 0;
  for (const auto& k : keys) {
    storage::ItemRef it = store->Peek(db, k, now);
    if (!it) continue;  // gone since the scan step
    we.Bytes(k);
    WriteEntry(we, call.get(), it, &room);
    ++n;
  }
  w.U32(n);
  out += entries;
  call->Reply(std::move(out));
}

// -------------------------------------------------- requester of a catch-up


void SyncOp::Apply(const Entry& e, std::string_view value, uint64_t since, bool exact) {
  const int64_t now = pool->WallNow();
  std::lock_guard<std::mutex> l(impl->sync_mu);
  if (impl->flush_seq != flush_seq) return;
  // A catch-up begun during a merge owns the touched set from then on.
  if (merge_node >= 0 && impl->syncing.load()) {
    failed = true;
    return;
  }
  const std::string id = KeyId(e.db, e.key);
  auto t = impl->touched.find(id);
  if (t != impl->touched.end() && t->second > since) return;
  // Deleted here at that version or later while the copy it came from was
  // away: not taken back (merge.cc).
  if (e.state == kKeyFound && impl->Tombstoned(id, e.version)) return;
  if (e.state != kKeyFound || (e.expire != 0 && e.expire <= now)) {
    if (exact) store->Del(e.db, e.key, now);
    return;
  }
  Status s;
  size_t applied = 1;
  if (exact) {
    storage::SetOptions o;
    o.expire_at_ms = e.expire;
    o.version = e.version;  // the source's: the copies agree on it
    s = store->Set(e.db, e.key, value, o, now, nullptr);
  } else {
    StatusOr<storage::PendingItem> item = store->Prepare(e.key, value.size(), now);
    s = item.status();
    if (s.ok()) {
      item.value().set_version(e.version);
      item.value().set_expire_at_ms(e.expire);
      if (!value.empty()) std::memcpy(item.value().value_data(), value.data(), value.size());
      std::vector<storage::PendingItem> items;
      items.push_back(std::move(item.value()));
      s = store->Publish(e.db, &items, now, {.if_not_older = true, .applied = &applied});
    }
  }
  if (!s.ok()) {
    spdlog::warn("pool: catch-up could not store a key: {}", s.ToString());
    failed = true;
    return;
  }
  if (applied == 0) return;
  ++(exact ? impl->sync.keys_rechecked
           : merge_node >= 0 ? impl->sync.keys_merged : impl->sync.keys_pulled);
}

bool SyncOp::ReadEntries(Reader& r, std::string_view bulk, int node, std::vector<Entry>& es,
                         uint64_t since, bool exact) {
  size_t off = 0;
  for (Entry& e : es) {
    if (!r.U8(&e.state) || !r.I64(&e.expire) || !r.U64(&e.total) || !r.U64(&e.sent) ||
        !r.U64(&e.version) || (e.sent != 0 && e.sent != e.total) || e.sent > bulk.size() - off)
      return false;
    if (e.state == kKeyFound && e.sent != e.total) {
      FetchLarge(node, e, std::make_shared<std::string>(), 0, since, exact);
      continue;
    }
    Apply(e, bulk.substr(off, e.sent), since, exact);
    off += e.sent;
  }
  return true;
}

// One chunk at a time (a catch-up is not in a hurry); if the value changes
// meanwhile the key was written since, and so is fetched in the last pass.
void SyncOp::FetchLarge(int node, Entry e, std::shared_ptr<std::string> buf, uint64_t off,
                        uint64_t since, bool exact) {
  if (off == e.total) {
    Apply(e, *buf, since, exact);
    return;
  }
  if (buf->empty()) buf->reserve(e.total);
  size_t chunk = impl->chunk_bytes;
  uint64_t len = std::min<uint64_t>(chunk, e.total - off);
  transport::CallArgs args;
  args.opcode = kOpGetChunk;
  Writer w(&args.body);
  w.U32(static_cast<uint32_t>(e.db));
  w.Bytes(e.key);
  w.U64(e.version);
  w.U64(off);
  w.U64(len);
  args.bulk_out_capacity = len;
  ++pending;
  auto self = shared_from_this();
  transport->Call(impl->control_lane, node, std::move(args), Timeout(),
                  [self, node, e, buf, off, len, since, exact](Status s, std::string_view reply,
                                                               std::string_view bulk) {
                    std::string_view payload;
                    if (s.ok()) s = ParseReplyStatus(reply, &payload);
                    Reader r(payload);
                    uint8_t state = 0;
                    uint64_t total, version;
                    if (s.ok() && (!r.U8(&state) || !r.U64(&total) || !r.U64(&version)))
                      s = Status::Internal("malformed chunk reply");
                    if (!s.ok()) {
                      self->failed = true;
                    } else if (state == kKeyFound && bulk.size() == len) {
                      buf->append(bulk.data(), len);
                      self->FetchLarge(node, e, buf, off + len, since, exact);
                    } else if (self->merge_node >= 0) {
                      // Changed at the source by a write this node took too.
                    } else if (!exact) {
                      // Changed at the source: skipped here, unless the
                      // change reaches this node too (then it is touched).
                      std::lock_guard<std::mutex> l(self->impl->sync_mu);
                      std::string id = KeyId(e.db, e.key);
                      self->impl->touched.try_emplace(id, 1);
                      self->impl->recheck.insert(std::move(id));
                    } else {
                      self->failed = true;  // the last pass must see it whole
                    }
                    self->Done();
                  });
}

void SyncOp::Scan(size_t i) {
  Source& src = sources[i];
  if (src.db >= store->databases()) return;
  transport::CallArgs args;
  args.opcode = kOpSyncScan;
  Writer w(&args.body);
  w.U32(static_cast<uint32_t>(src.db));
  w.U64(src.cursor);
  w.U32(static_cast<uint32_t>(std::max<size_t>(1, pool->options_.max_batch_keys)));
  w.Bytes(src.bitmap);
  args.bulk_out_capacity = impl->chunk_bytes;
  ++pending;
  auto self = shared_from_this();
  transport->Call(
      impl->control_lane, src.node, std::move(args), Timeout(),
      [self, i](Status s, std::string_view reply, std::string_view bulk) {
        Source& src = self->sources[i];
        std::string_view payload;
        if (s.ok()) s = ParseReplyStatus(reply, &payload);
        Reader r(payload);
        uint64_t next = 0;
        uint32_t n = 0;
        if (s.ok() && (!r.U64(&next) || !r.Count(&n, 37))) s = Status::Internal("malformed scan");
        std::vector<SyncOp::Entry> es(s.ok() ? n : 0);
        // Keys first (the entries follow each key; read them in one pass).
        size_t off = 0;
        for (size_t k = 0; s.ok() && k < es.size(); ++k) {
          SyncOp::Entry& e = es[k];
          std::string_view key;
          e.db = src.db;
          if (!r.Bytes(&key) || !r.U8(&e.state) || !r.I64(&e.expire) || !r.U64(&e.total) ||
              !r.U64(&e.sent) || !r.U64(&e.version) || (e.sent != 0 && e.sent != e.total) ||
              e.sent > bulk.size() - off) {
            s = Status::Internal("malformed scan entry");
            break;
          }
          e.key.assign(key);
          if (e.state == kKeyFound && e.sent != e.total) {
            self->FetchLarge(src.node, e, std::make_shared<std::string>(), 0, 0, false);
            continue;
          }
          self->Apply(e, bulk.substr(off, e.sent), 0, false);
          off += e.sent;
        }
        if (!s.ok()) {
          spdlog::warn("pool: catch-up from {} failed: {}", self->pool->node(src.node).Addr(),
                       s.ToString());
          self->failed = true;
          return self->Done();
        }
        src.cursor = next;
        if (next == 0) ++src.db;
        if (!self->failed) self->Scan(i);
        self->Done();
      });
}

// The last pass, in rounds: the keys written here during the catch-up (and,
// from the second round, during the previous round) are fetched again and
// stored exactly as their source holds them now.
void SyncOp::NextRound() {
  constexpr int kMaxRounds = 4;
  uint64_t since = round_seq;
  std::vector<std::pair<int, std::string>> keys;  // (db, key)
  bool restart;
  {
    std::lock_guard<std::mutex> l(impl->sync_mu);
    restart = impl->flush_seq != flush_seq;
    for (const auto& [id, seq] : impl->touched) {
      if (seq <= since || !impl->recheck.count(id)) continue;
      Reader r(id);
      uint32_t db;
      if (!r.U32(&db)) continue;
      keys.emplace_back(static_cast<int>(db), id.substr(4));
    }
    round_seq = impl->touch_seq;
  }
  if (restart) return impl->SyncDone(false);
  if (keys.empty() || round >= kMaxRounds) return impl->SyncDone(true);
  ++round;
  const size_t max_keys = std::max<size_t>(1, pool->options_.max_batch_keys);
  std::vector<std::vector<size_t>> by_node(pool->nodes());
  for (size_t i = 0; i < keys.size(); ++i) {
    int src = slot_source[KeySlot(keys[i].second)];
    if (src >= 0) by_node[src].push_back(i);
  }
  auto shared_keys = std::make_shared<std::vector<std::pair<int, std::string>>>(std::move(keys));
  pending = 1;
  for (int node = 0; node < pool->nodes(); ++node) {
    auto& idx = by_node[node];
    for (size_t begin = 0; begin < idx.size(); begin += max_keys) {
      size_t end = std::min(idx.size(), begin + max_keys);
      std::vector<size_t> part(idx.begin() + begin, idx.begin() + end);
      transport::CallArgs args;
      args.opcode = kOpSyncKeys;
      Writer w(&args.body);
      w.U32(static_cast<uint32_t>(part.size()));
      for (size_t k : part) {
        w.U32(static_cast<uint32_t>((*shared_keys)[k].first));
        w.Bytes((*shared_keys)[k].second);
      }
      args.bulk_out_capacity = impl->chunk_bytes;
      ++pending;
      auto self = shared_from_this();
      transport->Call(impl->control_lane, node, std::move(args), Timeout(),
                      [self, node, part, shared_keys, since = round_seq](
                          Status s, std::string_view reply, std::string_view bulk) {
                        std::string_view payload;
                        if (s.ok()) s = ParseReplyStatus(reply, &payload);
                        std::vector<SyncOp::Entry> es(part.size());
                        for (size_t k = 0; k < part.size(); ++k) {
                          es[k].db = (*shared_keys)[part[k]].first;
                          es[k].key = (*shared_keys)[part[k]].second;
                        }
                        Reader r(payload);
                        if (!s.ok() || !self->ReadEntries(r, bulk, node, es, since, true))
                          self->failed = true;
                        self->Done();
                      });
    }
  }
  Done();
}

// A slot with no copy in sync to catch up from (source -1) while another
// copy of it is up and catching up itself: that copy took the writes this
// node missed while it was away (it is only fetching some keys again), or
// both were away. Caught up "from no one", this node would serve what it
// held before (the nemesis read values dozens of writes old this way, right
// after a partition healed). A whole catch-up waits for that copy; when both
// catch up whole, the lower index goes first, so two never wait for each
// other. A pass over some keys waits for no one. And a node never in sync
// holds only what it was sent since it started, so it catches no slot up
// "from no one" while another copy may hold its data. True (logged once per
// set of copies) while this node waits.
bool Pool::Impl::WaitsBeforeCatchingUp(const std::vector<int>& slot_source) {
  std::vector<int> wait;
  const char* why = nullptr;
  if (!keys_only.load()) {
    wait = CopiesCatchingUp(slot_source);
    why = "to catch up before catching up from it: no copy in sync holds some of this "
          "node's slots";
  }
  if (wait.empty() && sync_gen.load() == 0) {
    wait = CopiesToWaitFor(slot_source);
    why = "before catching up: no copy in sync holds some of this node's slots, and it may "
          "hold their data";
  }
  if (wait.empty()) return false;
  std::lock_guard<std::mutex> l(sync_mu);
  if (wait != sync.waiting_for) {
    std::string names;
    for (int c : wait) names += (names.empty() ? "" : ", ") + pool->node(c).Addr();
    spdlog::warn("pool: waiting for {} {}", names, why);
    sync.waiting_for = std::move(wait);
  }
  return true;
}

void Pool::Impl::SyncTick(int64_t now) {
  if (sync_op || now < sync_retry_ms) return;
  const PoolOptions& o = pool->options_;
  const int self = o.self;
  int64_t started;
  {
    std::lock_guard<std::mutex> l(sync_mu);
    started = sync.started_ms;
  }
  // Membership first: every peer has answered (and said whether it is in
  // sync), or long enough has passed that the silent ones are down.
  if (now - started < o.down_after_ms + 2 * int64_t{o.heartbeat_ms}) {
    for (int n = 0; n < pool->nodes(); ++n)
      if (n != self && !health[n].up.load()) return;
  }
  // Then every live peer must count this node up, so that the writes it
  // coordinates reach this node too: a write that reached only the other
  // copies after they were scanned would be missed. Writes a peer began
  // before it counted this node up end (acknowledged or failed) within
  // pool-timeout-ms, so the scan waits that long more: a heartbeat was not
  // enough on a loaded machine (a load test read values two writes old).
  // (Bounded: a peer that never says so does not block the catch-up forever.)
  bool seen = true;
  for (int n = 0; n < pool->nodes(); ++n)
    if (n != self && health[n].up.load() && !health[n].sees_me_up.load()) seen = false;
  if (!seen && now - started < 10 * int64_t{o.down_after_ms}) {
    sync_ready_ms = 0;
    return;
  }
  if (sync_ready_ms == 0) sync_ready_ms = now;
  if (now - sync_ready_ms < std::max<int64_t>(o.heartbeat_ms, o.timeout_ms)) return;
  auto op = std::make_shared<SyncOp>();
  op->pool = pool;
  op->impl = this;
  op->store = pool->store_;
  op->transport = pool->transport_;
  op->slot_source.assign(kSlots, -1);
  std::vector<int> source_index(pool->nodes(), -1);
  const SlotTable& t = pool->slots_;
  for (int s = 0; s < kSlots; ++s) {
    if (!t.HoldsSlot(self, s)) continue;
    for (int i = 0; i < t.replicas(); ++i) {
      int c = t.CopyOfSlot(s, i);
      if (c == self || !pool->Serving(c)) continue;
      op->slot_source[s] = c;
      if (source_index[c] < 0) {
        source_index[c] = static_cast<int>(op->sources.size());
        op->sources.push_back({c, std::string(kSlots / 8, '\0')});
      }
      op->sources[source_index[c]].bitmap[s / 8] |= static_cast<char>(1 << (s % 8));
      break;
    }
  }
  if (WaitsBeforeCatchingUp(op->slot_source)) {
    sync_retry_ms = now + o.heartbeat_ms;
    return;
  }
  op->whole = !keys_only.load();
  // A node that was in sync catches up "from no one" for slots whose other
  // copies are all down (WaitsBeforeCatchingUp waits only when it never
  // was): they may hold writes it missed, so it merges from them later.
  if (op->whole) op->missed = CopiesToWaitFor(op->slot_source);
  {
    std::lock_guard<std::mutex> l(sync_mu);
    op->flush_seq = flush_seq;
    ++sync.attempts;
    sync.waiting_for.clear();
  }
  if (!op->missed.empty()) {
    std::string names;
    for (int c : op->missed) names += (names.empty() ? "" : ", ") + pool->node(c).Addr();
    spdlog::warn("pool: catching up without {} (down, and may hold writes this node missed): "
                 "merging from {} once back",
                 names, op->missed.size() == 1 ? "it" : "them");
  }
  std::string from;
  for (const auto& src : op->sources) from += (from.empty() ? "" : ", ") + pool->node(src.node).Addr();
  spdlog::info("pool: catching up{} from {}", keys_only.load() ? " (some keys)" : "",
               from.empty() ? "no one (no other copy is in sync)" : from);
  if (purge_first.load()) Purge(op->slot_source);
  sync_op = op;
  if (!keys_only.load())
    for (size_t i = 0; i < op->sources.size(); ++i) op->Scan(i);
  op->Done();
}

bool Pool::Impl::MayHoldData(int node) const {
  const int n = pool->nodes();
  if (node == pool->self()) return sync_gen.load() != 0;
  if (health[node].up.load()) return health[node].gen.load() != 0;
  if (health[node].gen.load() != 0) return true;
  for (int r = 0; r < n; ++r)
    if (r != pool->self() && r != node && reported_gen[r * n + node].load() != 0) return true;
  return false;
}

std::vector<int> Pool::Impl::CopiesToWaitFor(const std::vector<int>& slot_source) const {
  const SlotTable& t = pool->slots_;
  std::vector<bool> wait(pool->nodes(), false);
  int last_owner = -1;
  for (int s = 0; s < kSlots; ++s) {
    // A slot's copies are its owner's (slots.h): one check per owner run.
    if (slot_source[s] >= 0 || !t.HoldsSlot(pool->self(), s) || t.OwnerOfSlot(s) == last_owner)
      continue;
    last_owner = t.OwnerOfSlot(s);
    for (int i = 0; i < t.replicas(); ++i) {
      int c = t.CopyOfSlot(s, i);
      if (c != pool->self() && MayHoldData(c)) wait[c] = true;
    }
  }
  std::vector<int> out;
  for (int c = 0; c < pool->nodes(); ++c)
    if (wait[c]) out.push_back(c);
  return out;
}

std::vector<int> Pool::Impl::CopiesCatchingUp(const std::vector<int>& slot_source) const {
  const SlotTable& t = pool->slots_;
  const int self = pool->self();
  std::vector<bool> wait(pool->nodes(), false);
  int last_owner = -1;
  for (int s = 0; s < kSlots; ++s) {
    if (slot_source[s] >= 0 || !t.HoldsSlot(self, s) || t.OwnerOfSlot(s) == last_owner) continue;
    last_owner = t.OwnerOfSlot(s);
    for (int i = 0; i < t.replicas(); ++i) {
      int c = t.CopyOfSlot(s, i);
      const PeerHealth& h = health[c];
      // One never in sync (generation 0) holds nothing to wait for.
      if (c != self && h.up.load() && h.syncing.load() && h.gen.load() != 0 &&
          (h.keys_only.load() || c < self))
        wait[c] = true;
    }
  }
  std::vector<int> out;
  for (int c = 0; c < pool->nodes(); ++c)
    if (wait[c]) out.push_back(c);
  return out;
}

void Pool::Impl::SyncDone(bool ok) {
  std::shared_ptr<SyncOp> op = std::move(sync_op);
  sync_op.reset();
  std::lock_guard<std::mutex> l(sync_mu);
  // A flush, or a whole catch-up asked for, since the pass's last check.
  if (!ok || (op && op->flush_seq != flush_seq)) {
    spdlog::warn("pool: catch-up did not finish; starting over");
    sync_retry_ms = pool->MonoNow() + pool->options_.heartbeat_ms * 2;
    return;
  }
  sync_ready_ms = 0;
  purge_first.store(false);
  keys_only.store(false);
  merging.store(false);
  merge_ready_ms = 0;
  if (op && op->whole) {
    // Before the flag drops: a peer that sees this node in sync sees this too.
    SetPending(op->missed);
    // Its writes must be newer than the ones it missed, which a copy
    // stamped meanwhile from its own clock, and than deletes a copy made
    // while it was away (their tombstones reach it later: merge.cc): the
    // clock moves to at least wall-clock ms x 8192 (a hybrid clock;
    // overflows in the year 2500).
    pool->store_->AdvanceClock((static_cast<uint64_t>(pool->WallNow()) << 13) << 8);
  }
  sync_gen.store(std::max<uint64_t>(sync_gen.load() + 1, pool->WallNow()));
  // Under the lock: no touch is recorded after the flag drops, and none is
  // needed (this node is a full copy from here on).
  syncing.store(false, std::memory_order_release);
  touched.clear();
  recheck.clear();
  sync.in_sync = true;
  sync.finished_ms = pool->MonoNow();
  spdlog::info("pool: in sync ({} keys pulled, {} rechecked, {} ms)", sync.keys_pulled,
               sync.keys_rechecked, sync.finished_ms - sync.started_ms);
}

}  // namespace kvpool::pool
