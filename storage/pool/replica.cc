// Replicas: where a slot's copies are read and written (placement in
// slots.h), whole commands run on every copy, and when a node must catch up
// again (sync.cc does the catching up).
#include <spdlog/spdlog.h>

#include <cctype>

#include "storage/pool/pool_impl.h"

namespace kvpool::pool {

// ------------------------------------------------------------- placement

bool Pool::Serving(int node) const {
  if (node == options_.self) {
    if (impl_->syncing.load(std::memory_order_relaxed)) return false;
    if (replicas() == 1) return true;
    // A node whose heartbeat loop has not run for long was paused (or
    // starved): its peers may have counted it down; it serves nothing
    // until its next heartbeat has had a chance to learn so. Nor does a
    // node that a peer counts stale, or most peers count down.
    if (MonoNow() - impl_->beat_ms.load(std::memory_order_relaxed) >= options_.down_after_ms)
      return false;
    if (impl_->counted_down.load(std::memory_order_relaxed)) return false;
    if (impl_->minority.load(std::memory_order_relaxed)) return false;
    for (int n = 0; n < nodes(); ++n)
      if (n != node && impl_->health[n].flags_me.load(std::memory_order_relaxed)) return false;
    return true;
  }
  if (!NodeUp(node)) return false;
  const PeerHealth& h = impl_->health[node];
  return replicas() == 1 || (!h.syncing.load(std::memory_order_relaxed) &&
                             !h.stale.load(std::memory_order_relaxed));
}

bool Pool::InSync() const { return !impl_->syncing.load(); }

// A copy with a merge pending from another copy of the slot that serves
// again may lack writes that one took alone; that one, having caught up
// from it keeping the newer of each key (Purge), holds them all: until the
// merge ends, it is read (and orders writes) first.
bool Pool::LacksWrites(int node, int owner) const {
  const uint64_t mask = node == options_.self ? impl_->pending_mask.load(std::memory_order_relaxed)
                                              : impl_->health[node].pending.load(std::memory_order_relaxed);
  if (mask == 0) return false;
  for (int i = 0; i < replicas(); ++i) {
    int c = (owner + i) % nodes();
    if (c != node && (c >= 64 || ((mask >> c) & 1)) && Serving(c)) return true;
  }
  return false;
}

int Pool::ReadNode(int owner) const {
  if (replicas() == 1) return owner;
  return ReadNodeAfter(owner, -1);
}

int Pool::ReadNodeAfter(int owner, int failed) const {
  int lacking = -1;
  for (int i = 0; i < replicas(); ++i) {
    int c = (owner + i) % nodes();
    if (c == failed || !Serving(c)) continue;
    if (!LacksWrites(c, owner)) return c;
    if (lacking < 0) lacking = c;
  }
  return lacking;
}

std::vector<int> Pool::WriteNodes(int owner) const {
  if (replicas() == 1) return {owner};
  std::vector<int> out;
  if (impl_->minority.load(std::memory_order_relaxed)) return out;
  if (!HasCopyServing(owner)) return out;
  for (int i = 0; i < replicas(); ++i) {
    int c = (owner + i) % nodes();
    if (NodeUp(c)) out.push_back(c);
    else impl_->health[c].wrote_without.store(true, std::memory_order_relaxed);
  }
  return out;
}

std::string Pool::NoCopyError(int owner) const {
  std::string slots;
  for (auto [a, b] : slots_.RangesOf(owner))
    slots += (slots.empty() ? "" : ",") + std::to_string(a) + (a == b ? "" : "-" + std::to_string(b));
  std::string copies;
  for (int i = 0; i < replicas(); ++i) {
    int c = (owner + i) % nodes();
    const char* state = !NodeUp(c) ? "down" : Serving(c) ? "in sync" : "syncing";
    copies += (copies.empty() ? "" : ", ") + node(c).Addr() + " " + state;
  }
  if (impl_->minority.load(std::memory_order_relaxed))
    return "pool: this node sees fewer than half of the pool up; slots " + slots +
           " are not served here (" + copies + ")";
  return "pool: no copy of slots " + slots + " is in sync (" + copies + "); try again";
}

SyncStats Pool::sync_stats() const {
  SyncStats s;
  {
    std::lock_guard<std::mutex> l(impl_->sync_mu);
    s = impl_->sync;
  }
  std::lock_guard<std::mutex> l(impl_->evicted_mu);
  s.evictions_applied = impl_->evictions_applied;
  s.evictions_unsent = impl_->evictions_unsent;
  return s;
}

int64_t Pool::Impl::sync_stats_started_ms() const {
  std::lock_guard<std::mutex> l(sync_mu);
  return sync.started_ms;
}


namespace {

bool EqualsLower(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != lower[i]) return false;
  return true;
}

}  // namespace

std::string KeyId(int db, std::string_view key) {
  std::string id;
  Writer w(&id);
  w.U32(static_cast<uint32_t>(db));
  id.append(key);
  return id;
}

void Pool::Impl::Touch(int db, std::string_view key, bool blind) {
  if (!syncing.load(std::memory_order_acquire) && !merging.load(std::memory_order_acquire)) return;
  std::string id = KeyId(db, key);
  std::lock_guard<std::mutex> l(sync_mu);
  touched[id] = ++touch_seq;
  if (blind) recheck.erase(id);
  else recheck.insert(std::move(id));
}

void Pool::Impl::NoteCommand(int db, const std::vector<std::string_view>& argv) {
  // A merge in progress (sync.cc) notes writes and flushes as a catch-up does.
  if (argv.empty() ||
      (!syncing.load(std::memory_order_acquire) && !merging.load(std::memory_order_acquire)))
    return;
  if (EqualsLower(argv[0], "flushall") || EqualsLower(argv[0], "flushdb")) {
    std::lock_guard<std::mutex> l(sync_mu);
    ++flush_seq;
    return;
  }
  for (std::string_view k : pool->executor_->WriteKeys(argv)) Touch(db, k);
}

// A node that was away (partitioned, paused) while it stayed up in its own
// eyes may hold values overwritten or deleted meanwhile. Its peers marked
// it down, and so stale; their pings say so (with the sync generation they
// saw). When more than half of its peers say so, it was the one away: it
// catches up again, dropping first the keys of slots another copy holds.
// A node flagged by a minority (it saw the others as away) does not.
void Pool::Impl::NoteStaleFlag(int caller, bool stale, uint64_t gen) {
  health[caller].flags_me.store(stale && gen == sync_gen.load());
  if (syncing.load()) return;
  int flagged = 0;
  for (int n = 0; n < pool->nodes(); ++n) flagged += n != pool->self() && health[n].flags_me.load();
  if (2 * flagged <= pool->nodes() - 1) return;
  BeginResync(std::to_string(flagged) + " of " + std::to_string(pool->nodes() - 1) +
              " peers counted this node down");
}

// A peer counted down and back may have missed writes this node took
// meanwhile; it learns so from this node (the majority rule in
// NoteStaleFlag covers the node that was away from most of the pool, not
// a peer that only this node lost for a moment).
void Pool::Impl::SettleStale(int n) {
  PeerHealth& h = health[n];
  if (h.wrote_without.exchange(false)) h.resync_owed = true;
  if (!h.resync_owed) {
    // Nothing was written without it (checked one heartbeat after it came
    // back, so a write that chose its copies just before has said so).
    h.stale.store(false);
    return;
  }
  // Sent to a peer catching up too: its pass may have begun before these
  // writes (BeginResync starts it over).
  if (h.resync_in_flight) return;
  h.resync_in_flight = true;
  transport::CallArgs args;
  args.opcode = kOpResync;
  Impl* self = this;
  pool->transport_->Call(control_lane, n, std::move(args), pool->options_.timeout_ms,
                         [self, n](Status s, std::string_view reply, std::string_view) {
                           PeerHealth& h = self->health[n];
                           h.resync_in_flight = false;
                           std::string_view payload;
                           if (s.ok()) s = ParseReplyStatus(reply, &payload);
                           // Stale until its generation changes (the ping).
                           if (s.ok()) h.resync_owed = false;
                         });
}

void Pool::Impl::BeginResync(const std::string& why) {
  std::lock_guard<std::mutex> l(sync_mu);
  // A pass in progress starts over, whole and from a clean slate: peers
  // wrote without this node meanwhile, maybe keys its scan already passed,
  // or keys touched here before (the scan skips those, and a relay's touch
  // is not rechecked). Ignoring this while a whole pass ran forked keys: a
  // node paused mid catch-up kept an old value its peer had overwritten
  // alone, with the newer one acknowledged (CI, TSan).
  if (syncing.load()) ++flush_seq;
  keys_only.store(false);
  touched.clear();
  recheck.clear();
  purge_first.store(true);
  syncing.store(true, std::memory_order_release);
  spdlog::warn("pool: {}: catching up again", why);
  sync.in_sync = false;
  sync.started_ms = pool->MonoNow();
  // It was the one away: the peers it saw down were not.
  for (int n = 0; n < pool->nodes(); ++n) {
    health[n].stale.store(false);
    health[n].flags_me.store(false);
    health[n].wrote_without.store(false);
  }
}


// A write that failed in transit to a copy may still reach it, late: after
// a newer write of the same key, sent by another node on another link, has
// been applied there. Or it never does, while the other copies took it.
// Either way the copies could disagree, so the copy is told to fetch those
// keys again (kOpCatchUp, on the same lane as the write: over an unbroken
// link it arrives after the write).
void Pool::NoteWriteFailed(int lane, int copy, int db, std::span<const std::string_view> keys,
                           const Status& s) {
  if (replicas() == 1 || copy == options_.self || copy < 0 || copy >= nodes() || keys.empty())
    return;
  if (s.code() != Code::kTimeout && s.code() != Code::kUnavailable) return;
  {
    std::lock_guard<std::mutex> l(impl_->sync_mu);
    ++impl_->sync.catch_ups_sent;
  }
  const size_t max_keys = std::max<size_t>(1, options_.max_batch_keys);
  for (size_t begin = 0; begin < keys.size(); begin += max_keys) {
    size_t end = std::min(keys.size(), begin + max_keys);
    transport::CallArgs args;
    args.opcode = kOpCatchUp;
    args.body = KeysBody(db, end - begin, [&](size_t i) { return keys[begin + i]; });
    Impl* impl = impl_.get();
    transport_->Call(lane, copy, std::move(args), options_.timeout_ms,
                     [this, impl, copy](Status s, std::string_view reply, std::string_view) {
                       std::string_view payload;
                       if (s.ok()) s = ParseReplyStatus(reply, &payload);
                       if (s.ok()) return;
                       // Unreachable (a dead node refuses every write until it
                       // is counted down): once a second in the log.
                       static std::atomic<int64_t> last_log{0};
                       int64_t now = MonoNow(), last = last_log.load();
                       if (now - last >= 1000 && last_log.compare_exchange_strong(last, now))
                         spdlog::warn("pool: could not tell {} to catch up: {}", node(copy).Addr(),
                                      s.ToString());
                       // If it is counted down later, it catches up when back.
                       impl->health[copy].wrote_without.store(true);
                     });
  }
}

void Pool::Impl::CatchUpKeys(int caller, int db, std::span<const std::string_view> keys) {
  std::lock_guard<std::mutex> l(sync_mu);
  ++sync.catch_ups_received;
  // Touched: fetched again at the end of a catch-up (this one, or the one in
  // progress; with exact state, so a missed delete is one too).
  for (std::string_view k : keys) {
    std::string id = KeyId(db, k);
    touched[id] = ++touch_seq;
    recheck.insert(std::move(id));
  }
  if (syncing.load()) return;
  spdlog::warn("pool: a write of {} key(s) from {} may not have reached this node in time: "
               "fetching them again", keys.size(), pool->node(caller).Addr());
  keys_only.store(true);
  syncing.store(true, std::memory_order_release);
  sync.in_sync = false;
  sync.started_ms = pool->MonoNow();
}

// ----------------------------------------------------- commands on copies

void Pool::RunOnCopies(int lane, int owner, int db, int resp,
                       std::span<const std::string_view> argv, bool write, ReplyDone done,
                       std::shared_ptr<const void> args_owner) {
  const int self = options_.self;
  auto run_here = [&] {
    std::vector<std::string_view> v(argv.begin(), argv.end());
    if (write) impl_->NoteCommand(db, v);
    return executor_->Execute(lane, db, resp, v);
  };
  if (!write || replicas() == 1) {
    int node = write ? owner : ReadNode(owner);
    if (node == self) return done(Status::OK(), run_here());
    if (node < 0) return done(Status::Unavailable(NodeDownError(owner)), {});
    if (write || replicas() == 1)
      return Forward(lane, node, db, resp, argv, std::move(done), false, std::move(args_owner));
    // A read whose copy fails (dead, not yet known down, or syncing) is
    // asked of the next copy in sync, once.
    std::vector<std::string> copy(argv.begin(), argv.end());
    return Forward(lane, node, db, resp, argv,
                   [this, lane, owner, node, db, resp, copy = std::move(copy),
                    done = std::move(done)](Status s, std::string r) mutable {
                     int next = ReadNodeAfter(owner, node);
                     if (s.ok() || next < 0) return done(std::move(s), std::move(r));
                     std::vector<std::string_view> av(copy.begin(), copy.end());
                     if (next != options_.self) return Forward(lane, next, db, resp, av, std::move(done));
                     done(Status::OK(), executor_->Execute(lane, db, resp, av));
                   });
  }
  // A write: ordered by the slot's primary (ordered.cc).
  int primary = ReadNode(owner);
  if (WriteNodes(owner).empty() || primary < 0)
    return done(Status::Unavailable(NoCopyError(owner)), {});
  std::vector<std::string_view> v(argv.begin(), argv.end());
  std::vector<std::string_view> written = executor_->WriteKeys(v);
  if (primary != self) {
    bool take = false;
    for (std::string_view k : written) take = take || impl_->IsCopy(self, k);
    if (!take || !NodeUp(primary))
      return Forward(lane, primary, db, resp, argv, std::move(done), true, std::move(args_owner));
    return impl_->ForwardTaking(lane, primary, db, resp, v, written, std::move(done),
                                std::move(args_owner));
  }
  if (!impl_->PrimaryOfAll(written)) return done(Status::Unavailable(NoCopyError(owner)), {});
  std::string reply = run_here();
  impl_->Relay(lane, db, std::vector<std::string>(written.begin(), written.end()),
               [done = std::move(done), reply = std::move(reply)](Status s) mutable {
                 if (!s.ok()) return done(std::move(s), {});
                 done(Status::OK(), std::move(reply));
               });
}


}  // namespace kvpool::pool
