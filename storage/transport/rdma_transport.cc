// RdmaTransport: device and memory at Start, lanes and their channels, the
// listener (lane 0) and the hand-off of connection requests to the lane the
// requester asked for.
//
// Events: each lane has one rdma_cm event channel and one completion
// channel, both non-blocking fds watched by the lane's libevent loop (no
// busy polling). A CQ event is acked at once, the CQ re-armed, then polled
// until empty (with a budget per callback). A cm event is copied and acked
// before it is handled, so handling may destroy its id.
//
// Accepting: lane 0 gets every connect request. The request names the
// requester's lane (unauthenticated: used only for placement, the signed
// HELLO must repeat it); lane 0 picks lane (requester lane mod lanes) as
// TCP does, and that lane migrates the id to its own event channel, builds
// the QP on its own completion channel and accepts. The handshake then runs
// on that lane over SEND/RECV before any call (and so any rkey) flows.
#include "storage/transport/rdma_transport.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "storage/transport/rdma_internal.h"

namespace kvpool::transport {

StatusOr<std::unique_ptr<Transport>> CreateRdmaTransport(const TransportOptions& o,
                                                         const RdmaTuning& tuning) {
  if (o.self < 0 || o.self >= static_cast<int>(o.peers.size()))
    return Status::InvalidArgument("transport: self is not an index into peers");
  if (o.staging_buffers < 2)
    return Status::InvalidArgument("rdma: staging_buffers must be at least 2");
  if (o.staging_bytes < 4096 || o.staging_bytes > (1u << 30))
    return Status::InvalidArgument("rdma: staging_bytes must be between 4 KiB and 1 GiB");
  if (o.rdma_queue_depth < 8 || o.rdma_queue_depth > 65536)
    return Status::InvalidArgument("rdma: rdma_queue_depth must be between 8 and 65536");
  if (tuning.bounce_buffers < 1 || tuning.bounce_bytes < 4096)
    return Status::InvalidArgument("rdma: at least one bounce buffer of 4 KiB or more");
  StatusOr<std::unique_ptr<rdma::Device>> dev = rdma::OpenDevice(o);
  if (!dev.ok()) return dev.status();
  return std::unique_ptr<Transport>(new rdma::RdmaTransport(o, tuning, std::move(dev.value())));
}

StatusOr<std::unique_ptr<Transport>> CreateRdmaTransport(const TransportOptions& o) {
  return CreateRdmaTransport(o, RdmaTuning{});
}

std::vector<TransportCounter> RdmaCounters(const RdmaStats& s) {
  auto ld = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  return {
      {"direct_reads", "RDMA READs straight into the segment.", ld(s.direct_reads)},
      {"bounced_reads", "RDMA READs through a bounce buffer.", ld(s.bounced_reads)},
      {"direct_writes", "RDMA WRITEs straight from the segment.", ld(s.direct_writes)},
      {"bounced_writes", "RDMA WRITEs through a bounce buffer.", ld(s.bounced_writes)},
      {"staging_waits", "Calls that waited for a free staging buffer.", ld(s.staging_waits)},
      {"zombie_resets", "Connections reset to reclaim the staging buffers of timed-out calls.",
       ld(s.zombie_resets)},
      {"segments_sent", "SENDs posted (messages, continuations, credits).", ld(s.segments_sent)},
      {"segments_tagged", "SENDs posted carrying a MAC (pool-secret set).", ld(s.segments_tagged)},
      {"segments_refused", "Segments received that failed their MAC; the link was closed.",
       ld(s.segments_refused)},
      {"connections", "Queue pairs established (both roles).", ld(s.connections)},
      {"extra_msg_blocks", "Message blocks registered after Start (more connections than planned).",
       ld(s.extra_msg_blocks)},
  };
}

const RdmaStats* GetRdmaStats(const Transport& t) {
  const auto* r = dynamic_cast<const rdma::RdmaTransport*>(&t);
  return r ? &r->stats() : nullptr;
}

namespace rdma {

namespace {

// The listener's context, inherited by the ids of connect requests until a
// lane adopts them: events for such ids are ignored.
char kListenerTag;

void CmCb(evutil_socket_t, short, void* arg) { static_cast<Lane*>(arg)->OnCmReadable(); }
void CompCb(evutil_socket_t, short, void* arg) { static_cast<Lane*>(arg)->OnCompReadable(); }
void ReapCb(evutil_socket_t, short, void* arg) {
  auto* l = static_cast<Lane*>(arg);
  auto graves = std::move(l->graveyard);
  auto dead = std::move(l->dead_in);
  l->graveyard.clear();
  l->dead_in.clear();
}

bool SetNonBlocking(int fd) {
  const int fl = fcntl(fd, F_GETFL);
  return fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0;
}

void RejectAndDestroy(rdma_cm_id* id) {
  if (rdma_reject(id, nullptr, 0) != 0)
    spdlog::debug("rdma: rdma_reject: {}", std::strerror(errno));
  CmId owned(id);
}

}  // namespace

bool IsWildcard(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET)
    return reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr.s_addr == htonl(INADDR_ANY);
  if (ss.ss_family == AF_INET6)
    return IN6_IS_ADDR_UNSPECIFIED(&reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr);
  return false;
}

// ---- Lane ----

Lane::~Lane() {
  // Connections first (they hold QPs/CQs on `comp` and ids on `cm`); the
  // members below then go in the order written in rdma_verbs.h.
  links.clear();
  incoming.clear();
  dead_in.clear();
  graveyard.clear();
}

StagingGrant Lane::RequestStaging(OutCall* c) {
  if (staging_waiters.empty() && staging.free_count() >= c->need) {
    AssignStaging(c);
    return StagingGrant::kGranted;
  }
  if (staging_waiters.size() >= t->tuning().max_waiting_calls) return StagingGrant::kFull;
  staging_waiters.push_back(c);
  c->wait_it = std::prev(staging_waiters.end());
  c->waiting = true;
  t->stats().staging_waits.fetch_add(1, std::memory_order_relaxed);
  return StagingGrant::kQueued;
}

void Lane::AssignStaging(OutCall* c) {
  if (c->in_len) {
    c->in_buf = staging.Take();
    c->held[0] = c->in_buf;
  }
  if (c->cap) {
    if (c->in_len && c->need == 1) {
      c->out_buf = c->in_buf;
    } else {
      c->out_buf = staging.Take();
      c->held[1] = c->out_buf;
    }
  }
}

void Lane::PumpStaging() {
  // FIFO: a call needing two buffers is not overtaken by later ones (no
  // starvation), and no call ever holds one buffer while waiting for another.
  while (!staging_waiters.empty()) {
    OutCall* c = staging_waiters.front();
    if (staging.free_count() < c->need) return;
    staging_waiters.pop_front();
    c->waiting = false;
    AssignStaging(c);
    static_cast<OutLink*>(c->link)->OnStaging(c);
  }
}

void Lane::CancelStaging(OutCall* c) {
  if (!c->waiting) return;
  const bool head = c->wait_it == staging_waiters.begin();
  staging_waiters.erase(c->wait_it);
  c->waiting = false;
  if (head) PumpStaging();
}

void Lane::ReturnStaging(OutCall* c) {
  bool gave = false;
  for (int& b : c->held) {
    if (b >= 0) {
      staging.Give(b);
      gave = true;
    }
    b = -1;
  }
  c->in_buf = c->out_buf = -1;
  if (gave) PumpStaging();
}

void Lane::AcquireBounce(std::function<void(int)> fn) {
  if (stopped) return fn(-1);
  if (bounce_waiters.empty()) {
    const int i = bounce.Take();
    if (i >= 0) return fn(i);
  }
  bounce_waiters.push_back(std::move(fn));
}

void Lane::ReleaseBounce(int i) {
  bounce.Give(i);
  if (bounce_draining) return;  // the loop below picks it up
  bounce_draining = true;
  while (!bounce_waiters.empty()) {
    int j = -1;
    if (!stopped) {
      j = bounce.Take();
      if (j < 0) break;
    }
    auto fn = std::move(bounce_waiters.front());
    bounce_waiters.pop_front();
    fn(j);
  }
  bounce_draining = false;
}

void Lane::Bury(std::shared_ptr<Conn> c) {
  graveyard.push_back(std::move(c));
  if (reap && !stopped) event_active(reap, EV_TIMEOUT, 0);
}

void Lane::Bury(std::unique_ptr<InConn> c) {
  dead_in.push_back(std::move(c));
  if (reap && !stopped) event_active(reap, EV_TIMEOUT, 0);
}

void Lane::RemoveIncoming(InConn* c) {
  auto it = incoming.find(c);
  if (it == incoming.end()) return;
  std::unique_ptr<InConn> owned = std::move(it->second);
  incoming.erase(it);
  Bury(std::move(owned));
}

void Lane::OnCmReadable() {
  for (int i = 0; i < 64; ++i) {
    rdma_cm_event* e = nullptr;
    if (rdma_get_cm_event(cm.get(), &e) != 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        spdlog::warn("rdma: rdma_get_cm_event: {}", std::strerror(errno));
      return;
    }
    CmEvent ev;
    ev.type = e->event;
    ev.status = e->status;
    ev.id = e->id;
    ev.listen_id = e->listen_id;
    ev.context = e->id ? e->id->context : nullptr;
    ev.responder_resources = e->param.conn.responder_resources;
    ev.initiator_depth = e->param.conn.initiator_depth;
    if (e->param.conn.private_data && e->param.conn.private_data_len)
      ev.private_data.assign(static_cast<const char*>(e->param.conn.private_data),
                             e->param.conn.private_data_len);
    rdma_ack_cm_event(e);
    if (ev.type == RDMA_CM_EVENT_CONNECT_REQUEST) {
      t->OnConnectRequest(ev);
    } else if (ev.id == listener.get()) {
      spdlog::warn("rdma: listener event {} (status {})", rdma_event_str(ev.type), ev.status);
    } else if (ev.context && ev.context != &kListenerTag) {
      static_cast<Conn*>(ev.context)->OnCmEvent(ev);
    }
    if (stopped) return;
  }
}

void Lane::OnCompReadable() {
  // One event at a time: handling it may close (and so destroy the CQ of)
  // any connection of this lane, and the kernel then drops its pending events.
  for (int i = 0; i < 64 && !stopped; ++i) {
    ibv_cq* cq = nullptr;
    void* ctx = nullptr;
    if (ibv_get_cq_event(comp.get(), &cq, &ctx) != 0) return;
    ibv_ack_cq_events(cq, 1);
    static_cast<Conn*>(ctx)->OnCqEvent();
  }
}

// ---- RdmaTransport ----

RdmaTransport::RdmaTransport(const TransportOptions& o, const RdmaTuning& tuning,
                             std::unique_ptr<Device> dev)
    : LanedTransport(o), tuning_(tuning), dev_(std::move(dev)) {}

RdmaTransport::~RdmaTransport() {
  // Lanes not stopped by StopLane: their loops must no longer run.
  for (auto& l : lanes_) StopLaneImpl(*l);
  lanes_.clear();    // connections, channels, lane MRs, listener, event channels
  regions_.clear();  // then region MRs; dev_ (PD, then contexts) last
}

const ibv_mr* RdmaTransport::FindRegion(const void* p, size_t len) const {
  const char* c = static_cast<const char*>(p);
  for (const RegionMr& r : regions_)
    if (c >= r.base && len <= r.len && static_cast<size_t>(c - r.base) <= r.len - len)
      return r.mr.get();
  return nullptr;
}

Status RdmaTransport::StartLanes(const std::vector<event_base*>& bases) {
  ibv_pd* pd = dev_->pd.get();
  // The segment: the owner READs into it and WRITEs from it, always as the
  // initiator, so local access is all it needs; no rkey for it exists.
  for (size_t i = 0; i < o_.regions.size(); ++i) {
    const auto& r = o_.regions[i];
    if (!r.base || !r.len) continue;
    StatusOr<Mr> mr =
        Register(pd, r.base, r.len, IBV_ACCESS_LOCAL_WRITE, "region " + std::to_string(i));
    if (!mr.ok()) return mr.status();
    regions_.push_back({static_cast<const char*>(r.base), r.len, std::move(mr.value())});
  }
  const int depth = dev_->queue_depth;
  // Enough message blocks for an outgoing and an incoming connection per
  // peer (and self), capped: a lane with more connections at once registers
  // one more block then, never per call.
  const int blocks = std::min(2 * static_cast<int>(o_.peers.size()) + 2, 16);
  const size_t bounce = std::min(tuning_.bounce_bytes, o_.staging_bytes);
  for (size_t i = 0; i < bases.size(); ++i) {
    auto l = std::make_unique<Lane>(this, static_cast<int>(i), bases[i]);
    Lane* lp = l.get();
    lanes_.push_back(std::move(l));
    rdma_event_channel* ch = rdma_create_event_channel();
    if (!ch)
      return Status::Unavailable(std::string("rdma_create_event_channel: ") + std::strerror(errno));
    lp->cm = EventChannel(ch);
    ibv_comp_channel* cc = ibv_create_comp_channel(dev_->ctx);
    if (!cc)
      return Status::Unavailable(std::string("ibv_create_comp_channel: ") + std::strerror(errno));
    lp->comp = CompChannel(cc);
    if (!SetNonBlocking(ch->fd) || !SetNonBlocking(cc->fd))
      return Status::Internal(std::string("fcntl(O_NONBLOCK): ") + std::strerror(errno));
    Status st =
        lp->staging.Init(pd, o_.staging_buffers, o_.staging_bytes,
                         IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE,
                         "staging buffers");
    if (st.ok())
      st = lp->bounce.Init(pd, tuning_.bounce_buffers, bounce, IBV_ACCESS_LOCAL_WRITE,
                           "bounce buffers");
    if (st.ok()) st = lp->msgs.Init(pd, 2 * depth, blocks);
    if (!st.ok()) return st;
    for (size_t p = 0; p < o_.peers.size(); ++p)
      lp->links.push_back(std::make_unique<OutLink>(this, lp, static_cast<int>(p)));
    lp->cm_ev = event_new(bases[i], ch->fd, EV_READ | EV_PERSIST, &CmCb, lp);
    lp->comp_ev = event_new(bases[i], cc->fd, EV_READ | EV_PERSIST, &CompCb, lp);
    lp->reap = event_new(bases[i], -1, 0, &ReapCb, lp);
    if (!lp->inbox.Init(bases[i], &RdmaTransport::WakeCb, lp).ok() || !lp->cm_ev || !lp->comp_ev ||
        !lp->reap || event_add(lp->cm_ev, nullptr) != 0 || event_add(lp->comp_ev, nullptr) != 0)
      return Status::Internal("libevent: cannot create lane events");
  }

  const std::string unresolved = allowlist_.Init(o_.peers);
  if (!unresolved.empty())
    spdlog::warn("rdma: cannot resolve peer host(s) {}; connections from them are refused",
                 unresolved);
  Lane& l0 = *lanes_[0];
  const std::string where =
      (o_.bind_host.empty() ? "127.0.0.1" : o_.bind_host) + ":" + std::to_string(o_.listen_port);
  sockaddr_storage ss;
  Status st = ResolveAddress(o_.bind_host, o_.listen_port, &ss);
  if (!st.ok()) return st;
  rdma_cm_id* id = nullptr;
  if (rdma_create_id(l0.cm.get(), &id, &kListenerTag, RDMA_PS_TCP) != 0)
    return Status::Unavailable(std::string("rdma_create_id: ") + std::strerror(errno));
  l0.listener = CmId(id);
  if (rdma_bind_addr(id, reinterpret_cast<sockaddr*>(&ss)) != 0 || rdma_listen(id, 512) != 0)
    return Status::IOError("cannot listen for peers on " + where +
                           " (rdma_cm): " + std::strerror(errno));
  spdlog::info(
      "rdma: {} port {} listening on {}; {} lane(s), each {} x {} KiB staging, QP depth {}, {} "
      "region(s) registered",
      dev_->name, dev_->port, where, bases.size(), o_.staging_buffers, o_.staging_bytes >> 10,
      depth, regions_.size());
  return Status::OK();
}

void RdmaTransport::StopLaneImpl(Lane& l) {
  if (l.stopped) return;
  l.stopped = true;
  for (const Handoff& h : l.inbox.Close()) RejectAndDestroy(h.id);
  l.listener.reset();  // lane 0: no new requests
  const Status why = Status::Unavailable("transport stopped");
  for (auto& link : l.links) link->Shutdown(why);
  auto conns = std::move(l.incoming);
  l.incoming.clear();
  for (auto& [raw, c] : conns) c->Close();
  for (auto& [raw, c] : conns) l.dead_in.push_back(std::move(c));
  // Bounce waiters whose connections are gone learn it now.
  while (!l.bounce_waiters.empty()) {
    auto fn = std::move(l.bounce_waiters.front());
    l.bounce_waiters.pop_front();
    fn(-1);
  }
  for (event** ev : {&l.cm_ev, &l.comp_ev, &l.reap}) {
    if (*ev) event_free(*ev);
    *ev = nullptr;
  }
  // Closed connections stay in the graveyard until the transport is
  // destroyed: StopLane may run inside one of their callbacks.
}

Status RdmaTransport::CheckBulk(int peer, uint64_t bulk, const CallArgs& args) {
  if (bulk <= o_.staging_bytes && args.bulk_out_capacity <= o_.staging_bytes) return Status::OK();
  peers_.at(peer).errors.fetch_add(1, std::memory_order_relaxed);
  return Status::InvalidArgument(
      "bulk of " + std::to_string(std::max<uint64_t>(bulk, args.bulk_out_capacity)) +
      " bytes exceeds max_bulk_per_call (" + std::to_string(o_.staging_bytes) + "); split it");
}

void RdmaTransport::OnConnectRequest(const CmEvent& ev) {
  Lane& l0 = *lanes_[0];
  rdma_cm_id* id = ev.id;
  if (l0.stopped || !l0.listener) return RejectAndDestroy(id);
  if (id->verbs != dev_->ctx) {
    spdlog::warn("rdma: connect request arrived on device {}, this transport uses {}",
                 id->verbs ? ibv_get_device_name(id->verbs->device) : "(none)", dev_->name);
    return RejectAndDestroy(id);
  }
  // Only the hosts of pool-nodes may connect (as for TCP).
  const sockaddr* from = rdma_get_peer_addr(id);
  if (!from || !allowlist_.Allows(from)) {
    listen_.refused_sources.fetch_add(1, std::memory_order_relaxed);
    if (!refusal_logged_)
      spdlog::warn("rdma: refused a connect request from {}, not a host in pool-nodes "
                   "(logged once)",
                   from ? AddressKeyText(AddressKey(from)) : std::string("?"));
    refusal_logged_ = true;
    return RejectAndDestroy(id);
  }
  ConnRequest req;
  Status st = DecodeConnRequest(ev.private_data.data(), ev.private_data.size(), &req);
  if (!st.ok() || req.server != static_cast<uint32_t>(o_.self) || req.client >= o_.peers.size()) {
    spdlog::debug("rdma: rejecting a connect request: {}",
                  st.ok() ? "addressed to another node" : st.message());
    return RejectAndDestroy(id);
  }
  const Handoff h{id, req, std::min(ev.responder_resources, dev_->rd_atomic),
                  std::min(ev.initiator_depth, dev_->rd_atomic)};
  const size_t target = req.lane % lanes_.size();
  if (target == 0) return Adopt(l0, h);
  if (!lanes_[target]->inbox.Push(h)) RejectAndDestroy(id);
}

void RdmaTransport::WakeCb(evutil_socket_t, short, void* arg) {
  auto* l = static_cast<Lane*>(arg);
  for (const Handoff& h : l->inbox.Take()) l->t->Adopt(*l, h);
}

void RdmaTransport::Adopt(Lane& l, const Handoff& h) {
  if (l.stopped) return RejectAndDestroy(h.id);
  if (l.pending_handshakes >= tuning_.max_pending_handshakes) {
    listen_.dropped_handshakes.fetch_add(1, std::memory_order_relaxed);
    return RejectAndDestroy(h.id);
  }
  // From now on this id's events arrive on this lane's channel. (Lane 0 acks
  // every event before handling it, so this never waits.)
  if (l.index != 0 && rdma_migrate_id(h.id, l.cm.get()) != 0) {
    spdlog::warn("rdma: rdma_migrate_id: {}", std::strerror(errno));
    return RejectAndDestroy(h.id);
  }
  auto in = std::make_unique<InConn>(this, &l, h.req);
  Status st = in->Start(h.id, h.responder_resources, h.initiator_depth);
  if (!st.ok()) {
    spdlog::warn("rdma: cannot accept a connection from node {}: {}", h.req.client, st.message());
    return;
  }
  InConn* raw = in.get();
  l.incoming.emplace(raw, std::move(in));
}

}  // namespace rdma
}  // namespace kvpool::transport
