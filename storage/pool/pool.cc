#include "storage/pool/pool.h"

#include <spdlog/spdlog.h>

#include <ctime>
#include <map>

#include "storage/pool/pool_impl.h"
#include "storage/pool/requests.h"

namespace kvpool::pool {

namespace {

int64_t ClockMs(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace

int64_t WallMs() { return ClockMs(CLOCK_REALTIME); }
int64_t MonoMs() { return ClockMs(CLOCK_MONOTONIC); }

std::string OkReply() { return std::string(1, '\0'); }

std::string ErrorReply(const Status& s) {
  std::string out;
  Writer w(&out);
  w.U8(static_cast<uint8_t>(s.code()));
  w.Bytes(s.message());
  return out;
}

Status ParseReplyStatus(std::string_view body, std::string_view* payload) {
  Reader r(body);
  uint8_t code;
  if (!r.U8(&code)) return Status::Internal("empty reply from peer");
  if (code == 0) {
    *payload = body.substr(1);
    return Status::OK();
  }
  std::string_view msg;
  if (!r.Bytes(&msg) || code > static_cast<uint8_t>(Code::kInternal))
    return Status::Internal("malformed error reply from peer");
  return Status(static_cast<Code>(code), std::string(msg));
}

Status ParseNodes(std::string_view text, std::vector<NodeSpec>* out) {
  out->clear();
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == ',' || text[i] == '\t')) ++i;
    if (i >= text.size()) break;
    size_t j = i;
    while (j < text.size() && text[j] != ' ' && text[j] != ',' && text[j] != '\t') ++j;
    std::string_view item = text.substr(i, j - i);
    i = j;
    NodeSpec n;
    std::string_view addr = item, cport;
    if (size_t at = item.find('@'); at != std::string_view::npos) {
      addr = item.substr(0, at);
      cport = item.substr(at + 1);
    }
    size_t colon = addr.rfind(':');
    if (colon == std::string_view::npos || colon == 0)
      return Status::InvalidArgument("pool-nodes: '" + std::string(item) + "' is not host:port");
    n.host = std::string(addr.substr(0, colon));
    if (n.host.size() > 2 && n.host.front() == '[' && n.host.back() == ']')
      n.host = n.host.substr(1, n.host.size() - 2);
    auto parse_port = [](std::string_view s, int* p) {
      if (s.empty() || s.size() > 5) return false;
      int v = 0;
      for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
      }
      *p = v;
      return v > 0 && v < 65536;
    };
    if (!parse_port(addr.substr(colon + 1), &n.port))
      return Status::InvalidArgument("pool-nodes: bad port in '" + std::string(item) + "'");
    if (cport.empty()) {
      n.pool_port = n.port + 10000;
      if (n.pool_port > 65535)
        return Status::InvalidArgument("pool-nodes: '" + std::string(item) +
                                       "' needs @poolport (port + 10000 is over 65535)");
    } else if (!parse_port(cport, &n.pool_port)) {
      return Status::InvalidArgument("pool-nodes: bad pool port in '" + std::string(item) + "'");
    }
    out->push_back(std::move(n));
  }
  if (out->size() > 1024) return Status::InvalidArgument("pool-nodes: at most 1024 nodes");
  return Status::OK();
}

Pool::Pool(PoolOptions options, storage::Store* store, transport::Transport* transport,
           CommandExecutor* executor)
    : options_(std::move(options)),
      slots_(static_cast<int>(options_.nodes.size()), options_.replicas),
      store_(store),
      transport_(transport),
      executor_(executor),
      impl_(std::make_unique<Impl>()) {
  impl_->pool = this;
  impl_->health = std::make_unique<PeerHealth[]>(options_.nodes.size());
  impl_->reported_gen =
      std::make_unique<std::atomic<uint64_t>[]>(options_.nodes.size() * options_.nodes.size());
  impl_->announced.resize(options_.nodes.size(), {std::string(), 0});
  int64_t now = MonoNow();
  for (size_t i = 0; i < options_.nodes.size(); ++i) impl_->health[i].last_ok_ms.store(now);
  impl_->chunk_bytes = std::min(transport_->max_bulk_per_call(), kTransferStep);
  impl_->beat_ms.store(now);
  // A node that starts with copies to hold starts empty: it catches up
  // before it serves reads of them.
  if (slots_.replicas() > 1) {
    impl_->syncing.store(true);
    impl_->sync.in_sync = false;
    impl_->sync.started_ms = now;
    Impl* impl = impl_.get();
    store_->SetEvictionListener([impl](int db, std::string_view key, std::string_view value) {
      impl->NoteEvicted(db, key, value);
    });
  }
}

Pool::~Pool() {
  if (slots_.replicas() > 1) store_->SetEvictionListener(nullptr);
  if (impl_->heartbeat) event_free(impl_->heartbeat);
  for (size_t l = 0; l < impl_->applies.size(); ++l) impl_->FreeApplies(static_cast<int>(l), false);
}

Status Pool::Start(std::vector<event_base*> lanes) {
  impl_->lanes = lanes;
  impl_->InitFates(lanes.size());
  impl_->InitApplies();
  Impl* impl = impl_.get();
  return transport_->Start(std::move(lanes), [impl](std::unique_ptr<transport::IncomingCall> c) {
    impl->HandleCall(std::move(c));
  });
}

void Pool::StartHeartbeats(event_base* base, int lane) {
  impl_->control_lane = lane;
  impl_->heartbeat = event_new(
      base, -1, EV_PERSIST,
      [](evutil_socket_t, short, void* arg) { static_cast<Impl*>(arg)->Heartbeat(); },
      impl_.get());
  timeval tv{options_.heartbeat_ms / 1000, (options_.heartbeat_ms % 1000) * 1000};
  event_add(impl_->heartbeat, &tv);
}

void Pool::StopLane(int lane) {
  if (lane == impl_->control_lane && impl_->heartbeat) {
    event_free(impl_->heartbeat);
    impl_->heartbeat = nullptr;
  }
  impl_->FreeApplies(lane, true);
  if (impl_->lane_tokens) impl_->lane_tokens[lane].stopped = true;
  transport_->StopLane(lane);
}

void Pool::Impl::Heartbeat() {
  int64_t now = pool->MonoNow();
  const PoolOptions& o = pool->options_;
  // If this loop itself stalled (a long request, a paused process), peers
  // had no chance to be heard: the stall is not their silence.
  if (last_heartbeat_ms != 0 && now - last_heartbeat_ms > 2 * int64_t{o.heartbeat_ms}) {
    int64_t stall = now - last_heartbeat_ms - o.heartbeat_ms;
    for (int n = 0; n < pool->nodes(); ++n) health[n].last_ok_ms.fetch_add(stall);
    // Its peers, meanwhile, may have counted this node down and written
    // without it.
    if (pool->replicas() > 1 && stall > o.down_after_ms)
      BeginResync("this node stalled for " + std::to_string(stall) + " ms");
  }
  last_heartbeat_ms = now;
  beat_ms.store(now, std::memory_order_relaxed);
  for (int n = 0; n < pool->nodes(); ++n) {
    if (n == o.self) continue;
    PeerHealth& h = health[n];
    if (!h.ping_in_flight) {
      h.ping_in_flight = true;
      transport::CallArgs args;
      args.opcode = kOpPing;
      // Tells the peer whether this node counts it stale (replicas).
      Writer pw(&args.body);
      pw.U8(h.stale.load() ? 1 : 0);
      pw.U64(h.stale_gen);
      Impl* self = this;
      pool->transport_->Call(
          control_lane, n, std::move(args), std::max(o.down_after_ms / 2, 1),
          [self, n](Status s, std::string_view reply, std::string_view) {
            PeerHealth& h = self->health[n];
            h.ping_in_flight = false;
            std::string_view payload;
            if (s.ok()) s = ParseReplyStatus(reply, &payload);
            if (!s.ok()) return;
            Reader r(payload);
            uint32_t node;
            uint64_t keys, used, maxmem;
            if (!r.U32(&node) || !r.U64(&keys) || !r.U64(&used) || !r.U64(&maxmem)) return;
            // Since replicas: whether it is catching up, and for how long.
            uint8_t syncing = 0, sees_me = 1;
            int64_t lag = 0;
            if (r.U8(&syncing) && r.I64(&lag) && !r.U8(&sees_me)) sees_me = 1;
            h.sees_me_up.store(sees_me != 0);
            bool was_up = h.up.load();
            uint64_t gen;
            if (r.U64(&gen)) {
              h.gen.store(gen);
              if (h.stale.load() && gen != h.stale_gen) {
                // It caught up since: with the writes taken without it.
                h.stale.store(false);
                h.wrote_without.store(false);
                h.resync_owed = false;
              }
            }
            // Every node's generation as it knows them.
            uint32_t count;
            const int nodes = self->pool->nodes();
            if (r.U32(&count) && count == static_cast<uint32_t>(nodes)) {
              bool all = true;
              for (int c = 0; c < nodes && all; ++c) {
                uint64_t g;
                if (!(all = r.U64(&g))) break;
                self->reported_gen[n * nodes + c].store(g);
              }
              // The client address it announces (cluster-announce-ip/-port).
              std::string_view host;
              uint32_t port;
              if (all && r.Bytes(&host) && r.U32(&port) && host.size() <= kMaxAnnouncedHost &&
                  port <= 65535) {
                std::lock_guard<std::mutex> l(self->announce_mu);
                self->announced[n] = {std::string(host), static_cast<int>(port)};
              }
              // The copies it has merges pending from (merge.cc).
              uint64_t pending = 0;
              h.pending.store(all && r.U64(&pending) ? pending : 0);
            }
            if (static_cast<int>(node) != n) {
              spdlog::warn("pool: {} answers as node {} but is node {} in pool-nodes",
                           self->pool->node(n).Addr(), node, n);
              return;
            }
            h.keys.store(keys, std::memory_order_relaxed);
            h.used_memory.store(used, std::memory_order_relaxed);
            h.maxmemory.store(maxmem, std::memory_order_relaxed);
            // Before `up`: a node seen up for the first time is never read
            // from before it is known to be in sync.
            h.keys_only.store(syncing == 2);
            h.syncing.store(syncing != 0);
            h.lag_ms.store(lag, std::memory_order_relaxed);
            h.last_ok_ms.store(self->pool->MonoNow(), std::memory_order_relaxed);
            if (!h.up.exchange(true)) spdlog::info("pool: node {} is up", self->pool->node(n).Addr());
            if (was_up && h.stale.load() && self->pool->replicas() > 1) self->SettleStale(n);
            if (self->pool->replicas() > 1 && (!was_up || sees_me == 0 || self->counted_down.load()))
              self->CheckMajority();
          });
    }
    if (h.up.load() && now - h.last_ok_ms.load() > o.down_after_ms) {
      if (pool->replicas() > 1) {
        h.stale_gen = h.gen.load();
        h.stale.store(true);
      }
      h.up.store(false);
      spdlog::warn("pool: node {} is down (no heartbeat answered for {} ms)",
                   pool->node(n).Addr(), now - h.last_ok_ms.load());
    }
  }
  if (pool->replicas() > 1) CheckMajority();
  if (syncing.load())
    SyncTick(now);
  else if (pool->replicas() > 1)
    MergeTick(now);
  if (pool->replicas() > 1) SendEvictions();
  SweepPuts(now);
}

void Pool::Impl::CheckMajority() {
  // A node cut off from most of the pool may miss writes the others take;
  // when it is back with a majority, it catches up.
  int up = 0, not_seen = 0;
  for (int n = 0; n < pool->nodes(); ++n) {
    if (!pool->NodeUp(n)) continue;
    ++up;
    not_seen += n != pool->self() && !health[n].sees_me_up.load();
  }
  counted_down.store(2 * not_seen > pool->nodes() - 1);
  bool few = 2 * up < pool->nodes();
  if (few && !minority.load())
    spdlog::warn("pool: only {} of {} nodes up: no reads or writes here until more are back", up,
                 pool->nodes());
  if (few) {
    lost_majority = true;
  } else if (lost_majority) {
    lost_majority = false;
    // Syncing before it stops counting itself the minority: in between, a
    // read here would be served from copies the others overwrote (seen in
    // CI: a stale read right as a partition healed).
    BeginResync("back with a majority of the pool");
  }
  minority.store(few);
}

bool Pool::AllLocal(std::span<const std::string_view> keys, bool write) const {
  for (std::string_view k : keys) {
    if (!write) {
      if (!IsLocal(k)) return false;
      continue;
    }
    std::vector<int> to = WriteNodes(OwnerOf(k));
    if (to.size() != 1 || to[0] != options_.self) return false;
  }
  return true;
}

bool Pool::NodeUp(int node) const {
  return node == options_.self || impl_->health[node].up.load(std::memory_order_relaxed);
}

std::vector<NodeStatus> Pool::Nodes() const {
  std::vector<NodeStatus> out;
  for (int n = 0; n < nodes(); ++n) {
    NodeStatus s{options_.nodes[n], NodeUp(n) ? NodeState::kUp : NodeState::kDown,
                 n == options_.self, 0, 0, 0, 0};
    if (s.state == NodeState::kUp && !Serving(n)) s.state = NodeState::kSyncing;
    if (n == options_.self) {
      storage::StoreStats st = store_->GetStats();
      s.keys = st.keys;
      s.used_memory = st.used_memory;
      s.maxmemory = st.maxmemory;
      s.last_seen_ms = WallNow();
      if (s.state == NodeState::kSyncing) s.lag_ms = MonoNow() - sync_stats().started_ms;
    } else {
      const PeerHealth& h = impl_->health[n];
      s.keys = h.keys.load();
      s.used_memory = h.used_memory.load();
      s.maxmemory = h.maxmemory.load();
      // Heard that long ago (monotonic), said as a wall-clock time.
      int64_t ago = MonoNow() - h.last_ok_ms.load();
      s.last_seen_ms = WallNow() - ago;
      if (s.state == NodeState::kDown) s.lag_ms = ago;
      else if (s.state == NodeState::kSyncing) s.lag_ms = h.lag_ms.load();
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<transport::TransportCounter> Pool::transport_counters() const {
  std::vector<transport::TransportCounter> out;
  for (transport::TransportCounter& c : transport_->Counters()) {
    if (!transport::IsTransportCounterName(c.name)) continue;
    bool seen = false;
    for (const transport::TransportCounter& o : out) seen |= o.name == c.name;
    if (seen) continue;
    // HELP is one line of text: no line breaks, no backslashes to escape.
    for (char& ch : c.help)
      if (ch == '\n' || ch == '\r' || ch == '\\') ch = ' ';
    out.push_back(std::move(c));
  }
  return out;
}

std::string Pool::NodeDownError(int node) const {
  return "pool node " + options_.nodes[node].Addr() + " is unavailable";
}

void EncodeArgv(Writer& w, std::span<const std::string_view> argv) {
  w.U32(static_cast<uint32_t>(argv.size()));
  for (std::string_view a : argv) w.Bytes(a);
}

void Pool::Forward(int lane, int node, int db, int resp, std::span<const std::string_view> argv,
                   ReplyDone done, bool ordered, std::shared_ptr<const void> owner) {
  if (!NodeUp(node)) return done(Status::Unavailable(NodeDownError(node)), {});
  routed_.commands_forwarded.fetch_add(1, std::memory_order_relaxed);
  std::string prefix;
  Writer w(&prefix);
  w.U32(static_cast<uint32_t>(db));
  w.U8(static_cast<uint8_t>(resp));
  // Arguments larger than a call go ahead in chunks (held_args.cc).
  impl_->SendArgs(lane, node, std::move(prefix), argv, std::move(owner),
                  [this, lane, node, ordered, done = std::move(done)](
                      Status s, std::string body, std::string tail) mutable {
                    if (!s.ok()) return done(Status(s.code(), NodeDownError(node) + " (" + s.message() + ")"), {});
                    transport::CallArgs args;
                    args.opcode = ordered ? kOpOrderedCommand : kOpCommand;
                    args.reset_on_timeout = true;  // it may write
                    args.body = std::move(body);
                    Writer w(&args.body);
                    if (ordered) w.U8(0);  // take
                    w.U8(1);               // hold a large reply (held_reply.cc)
                    args.body += tail;
                    SendCommand(lane, node, std::move(args), std::move(done));
                  });
}

void Pool::SendCommand(int lane, int node, transport::CallArgs args, ReplyDone done) {
  std::string down = NodeDownError(node);
  impl_->WriteCall(lane, node, std::move(args), options_.timeout_ms,
                   [this, lane, node, done = std::move(done), down](
                       Status s, std::string_view reply, std::string_view) mutable {
                     std::string_view payload;
                     if (s.ok()) s = ParseReplyStatus(reply, &payload);
                     if (!s.ok()) {
                       if (s.code() == Code::kUnavailable || s.code() == Code::kTimeout)
                         return done(Status(s.code(), down + " (" + s.message() + ")"), {});
                       return done(s, {});
                     }
                     impl_->FinishCommand(lane, node, payload, std::move(done));
                   });
}

void Pool::ForwardTransaction(int lane, int node, int db, int resp,
                              const std::vector<std::vector<std::string>>& cmds,
                              const std::vector<std::pair<std::string, uint64_t>>& watched,
                              ReplyDone done, bool ordered) {
  if (!NodeUp(node)) return done(Status::Unavailable(NodeDownError(node)), {});
  routed_.commands_forwarded.fetch_add(1, std::memory_order_relaxed);
  // Ordered, the keys of this node's copies it writes: if the call fails in
  // transit, it may still have run there, and this copy asks for them again.
  std::vector<std::pair<int, std::string>> mine;
  if (ordered) {
    std::vector<std::vector<std::string_view>> views;
    for (const auto& c : cmds) views.emplace_back(c.begin(), c.end());
    for (const auto& [kdb, k] : executor_->TransactionWrites(db, views))
      if (impl_->IsCopy(options_.self, k)) mine.emplace_back(kdb, std::string(k));
  }
  transport::CallArgs args;
  args.opcode = kOpTransaction;
  args.reset_on_timeout = true;
  Writer w(&args.body);
  w.U32(static_cast<uint32_t>(db));
  w.U8(static_cast<uint8_t>(resp));
  w.U32(static_cast<uint32_t>(cmds.size()));
  for (const auto& c : cmds) {
    w.U32(static_cast<uint32_t>(c.size()));
    for (const auto& a : c) w.Bytes(a);
  }
  w.U32(static_cast<uint32_t>(watched.size()));
  for (const auto& [k, v] : watched) {
    w.Bytes(k);
    w.U64(v);
  }
  w.U8(ordered ? 1 : 0);
  std::string down = NodeDownError(node);
  impl_->WriteCall(lane, node, std::move(args), options_.timeout_ms,
                   [this, lane, node, mine = std::move(mine), done = std::move(done), down](
                       Status s, std::string_view reply, std::string_view) {
                     if ((s.code() == Code::kTimeout || s.code() == Code::kUnavailable) &&
                         !mine.empty()) {
                       std::map<int, std::vector<std::string_view>> by_db;
                       for (const auto& [kdb, k] : mine) by_db[kdb].push_back(k);
                       for (const auto& [kdb, ks] : by_db) impl_->RelayAgain(lane, node, kdb, ks);
                     }
                     std::string_view payload;
                     if (s.ok()) s = ParseReplyStatus(reply, &payload);
                     if (!s.ok()) return done(Status(s.code(), down + " (" + s.message() + ")"), {});
                     done(Status::OK(), std::string(payload));
                   });
}

void Pool::RelayWritten(int lane, const std::vector<std::pair<int, std::string>>& written,
                        std::function<void(Status)> done) {
  std::map<int, std::vector<std::string>> by_db;
  for (const auto& [kdb, k] : written) by_db[kdb].push_back(k);
  if (by_db.empty()) return done(Status::OK());
  struct State {
    int pending;
    Status error;
    std::function<void(Status)> done;
  };
  auto st = std::make_shared<State>(State{static_cast<int>(by_db.size()), Status::OK(), std::move(done)});
  for (auto& [kdb, keys] : by_db) {
    impl_->Relay(lane, kdb, std::move(keys), [st](Status s) {
      if (!s.ok() && st->error.ok()) st->error = s;
      if (--st->pending == 0) st->done(st->error);
    });
  }
}

void Pool::Versions(int lane, int node, int db, std::span<const std::string_view> keys,
                    VersionsDone done) {
  std::vector<uint64_t> versions(keys.size(), 0);
  if (node == options_.self) {
    int64_t now = WallNow();
    for (size_t i = 0; i < keys.size(); ++i) {
      storage::ItemRef it = store_->Peek(db, keys[i], now);
      versions[i] = it ? it.version() : 0;
    }
    return done(Status::OK(), versions);
  }
  if (!NodeUp(node)) return done(Status::Unavailable(NodeDownError(node)), versions);
  transport::CallArgs args;
  args.opcode = kOpVersions;
  Writer w(&args.body);
  w.U32(static_cast<uint32_t>(db));
  EncodeArgv(w, keys);
  size_t n = keys.size();
  transport_->Call(lane, node, std::move(args), options_.timeout_ms,
                   [done = std::move(done), n](Status s, std::string_view reply, std::string_view) {
                     std::vector<uint64_t> versions(n, 0);
                     std::string_view payload;
                     if (s.ok()) s = ParseReplyStatus(reply, &payload);
                     Reader r(payload);
                     for (size_t i = 0; s.ok() && i < n; ++i)
                       if (!r.U64(&versions[i])) s = Status::Internal("malformed versions reply");
                     done(s, versions);
                   });
}

void Pool::Broadcast(int lane, int db, std::span<const std::string_view> argv,
                     BroadcastDone done) {
  struct State {
    std::vector<NodeReply> replies;
    int pending;
    BroadcastDone done;
  };
  auto st = std::make_shared<State>();
  st->replies.resize(nodes());
  st->pending = nodes();
  st->done = std::move(done);
  auto finish_one = [st] {
    if (--st->pending == 0) st->done(st->replies);
  };
  std::vector<std::string_view> local(argv.begin(), argv.end());
  for (int n = 0; n < nodes(); ++n) {
    st->replies[n].node = n;
    if (n == options_.self) {
      impl_->NoteCommand(db, local);
      st->replies[n].reply = executor_->Execute(lane, db, 2, local);
      finish_one();
      continue;
    }
    Forward(lane, n, db, 2, argv, [st, n, finish_one](Status s, std::string reply) {
      st->replies[n].status = std::move(s);
      st->replies[n].reply = std::move(reply);
      finish_one();
    });
  }
}

void Pool::SetAnnounce(std::string host, int port) {
  std::lock_guard<std::mutex> l(impl_->announce_mu);
  impl_->announced[options_.self] = {std::move(host), port};
}

NodeSpec Pool::Announced(int node) const {
  NodeSpec n = options_.nodes[node];
  std::lock_guard<std::mutex> l(impl_->announce_mu);
  const auto& [host, port] = impl_->announced[node];
  if (!host.empty()) n.host = host;
  if (port != 0) n.port = port;
  return n;
}

}  // namespace kvpool::pool
