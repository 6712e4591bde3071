// TcpTransport: lanes, the listener, and the hand-off of authenticated
// connections from lane 0 to the lane the connector asked for.
#include "storage/transport/tcp_transport.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "storage/transport/tcp_internal.h"

namespace kvpool::transport {

StatusOr<std::unique_ptr<Transport>> CreateTcpTransport(const TransportOptions& o,
                                                        const TcpTuning& tuning) {
  if (o.self < 0 || o.self >= static_cast<int>(o.peers.size()))
    return Status::InvalidArgument("transport: self is not an index into peers");
  return std::unique_ptr<Transport>(new tcp::TcpTransport(o, tuning));
}

StatusOr<std::unique_ptr<Transport>> CreateTcpTransport(const TransportOptions& o) {
  return CreateTcpTransport(o, TcpTuning{});
}

namespace tcp {

TcpTransport::TcpTransport(const TransportOptions& o, const TcpTuning& tuning)
    : LanedTransport(o), tuning_(tuning) {}

TcpTransport::~TcpTransport() {
  // Lanes not stopped by StopLane: their loops must no longer run.
  for (auto& l : lanes_) StopLaneImpl(*l);
}

std::vector<TransportCounter> TcpTransport::Counters() const {
  auto ld = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  return {
      {"frames_sent", "Frames sent to peers (calls, replies, handshakes).",
       ld(frame_stats_.frames_sent)},
      {"frames_tagged", "Frames sent followed by a MAC tag (pool-secret set).",
       ld(frame_stats_.frames_tagged)},
      {"frames_refused",
       "Frames received that failed their MAC (forged, replayed, reordered); the link was closed.",
       ld(frame_stats_.frames_refused)},
      {"connections", "Links to or from peers that passed their handshake.", ld(connections_)},
  };
}

Status TcpTransport::StartLanes(const std::vector<event_base*>& bases) {
  for (size_t i = 0; i < bases.size(); ++i) {
    auto l = std::make_unique<Lane>();
    l->t = this;
    l->index = static_cast<int>(i);
    l->base = bases[i];
    l->scratch.reset(new char[kScratchSize]);
    for (size_t p = 0; p < o_.peers.size(); ++p)
      l->links.push_back(std::make_unique<OutLink>(this, l.get(), static_cast<int>(p)));
    Status st = l->inbox.Init(bases[i], &TcpTransport::WakeCb, l.get());
    lanes_.push_back(std::move(l));
    if (!st.ok()) return st;
  }
  const std::string unresolved = allowlist_.Init(o_.peers);
  if (!unresolved.empty())
    spdlog::warn("pool transport: cannot resolve peer host(s) {}; connections from them are "
                 "refused",
                 unresolved);
  sockaddr_storage ss;
  socklen_t len;
  Status st = ResolveAddress(o_.bind_host, o_.listen_port, &ss, &len);
  if (!st.ok()) return st;
  listener_ =
      evconnlistener_new_bind(bases[0], &TcpTransport::AcceptCb, this,
                              LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                              512, reinterpret_cast<sockaddr*>(&ss), static_cast<int>(len));
  if (!listener_)
    return Status::IOError("cannot listen for peers on " + o_.bind_host + ":" +
                           std::to_string(o_.listen_port) + ": " + std::strerror(errno));
  evconnlistener_set_error_cb(listener_, &TcpTransport::AcceptErrorCb);
  resume_accept_ = evtimer_new(bases[0], &TcpTransport::ResumeAcceptCb, this);
  return Status::OK();
}

void TcpTransport::StopLaneImpl(Lane& l) {
  if (l.stopped) return;
  l.stopped = true;
  for (const Handoff& h : l.inbox.Close()) close(h.fd);
  if (l.index == 0) {
    if (listener_) evconnlistener_free(listener_);
    listener_ = nullptr;
    if (resume_accept_) event_free(resume_accept_);
    resume_accept_ = nullptr;
    accepts_.clear();
    silent_by_source_.clear();
  }
  const Status why = Status::Unavailable("transport stopped");
  for (auto& link : l.links) link->Shutdown(why);
  auto conns = std::move(l.incoming);
  l.incoming.clear();
  for (auto& [raw, c] : conns) c->Close();
}

void TcpTransport::AcceptCb(evconnlistener*, evutil_socket_t fd, sockaddr* from, int, void* arg) {
  static_cast<TcpTransport*>(arg)->OnAccept(fd, from);
}

void TcpTransport::OnAccept(int fd, const sockaddr* from) {
  // Only the hosts of pool-nodes may start a handshake. Unauthenticated
  // connections are bounded in number, per source and in time, so a flood
  // of them costs a fixed amount of memory; the oldest silent ones make room
  // for new ones, so the flood cannot keep a genuine peer out.
  if (lanes_[0]->stopped || RefuseSource(from)) {
    close(fd);
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  const uint64_t seq = next_accept_++;
  auto a = std::make_unique<PendingAccept>(this, seq, AddressKey(from));
  PendingAccept* raw = a.get();
  const std::string source = raw->source();
  if (a->Start(fd).ok()) {
    ++silent_by_source_[source];
    accepts_.emplace(seq, std::move(a));
    // A peer that waited in the backlog has sent its HELLO already: read
    // it before the connection is counted against any bound.
    raw->ReadNow();  // may destroy raw
    EnforceBounds(source, seq);
  }
  YieldAfterBurst();
}

bool TcpTransport::RefuseSource(const sockaddr* from) {
  if (from && allowlist_.Allows(from)) return false;
  listen_.refused_sources.fetch_add(1, std::memory_order_relaxed);
  if (!refusal_logged_) {
    refusal_logged_ = true;
    spdlog::warn("pool transport: refused a connection on the pool port from {}, not a host in "
                 "pool-nodes (logged once; later ones are only counted)",
                 from ? AddressKeyText(AddressKey(from)) : std::string("?"));
  }
  return true;
}

void TcpTransport::EnforceBounds(const std::string& source, uint64_t newest) {
  const int per_source = std::max(1, tuning_.max_pending_per_source);
  const size_t total = static_cast<size_t>(std::max(1, tuning_.max_pending_handshakes));
  auto silent = [&] {
    auto it = silent_by_source_.find(source);
    return it == silent_by_source_.end() ? 0 : it->second;
  };
  while (silent() > per_source && EvictOldest(&source, newest)) {
  }
  while (accepts_.size() > total && EvictOldest(nullptr, newest)) {
  }
}

bool TcpTransport::EvictOldest(const std::string* source, uint64_t spare) {
  // Silent ones first (a genuine peer sends HELLO at once, so the oldest
  // silent one is the least likely to be one); a HELLO already received
  // is read before the choice, so it is never what gets a peer evicted.
  // Those waiting for PROOF only when no silent one is left, and only to
  // keep the total bound.
  for (const bool helloed : {false, true}) {
    if (helloed && source) break;
    for (auto& [seq, a] : accepts_) {
      if (seq == spare || a->said_hello() != helloed || (source && a->source() != *source))
        continue;
      const uint64_t key = seq;
      a->ReadNow();  // may complete a step, or close (and destroy) it
      auto at = accepts_.find(key);
      if (at == accepts_.end() || at->second->said_hello() != helloed) return true;
      listen_.dropped_handshakes.fetch_add(1, std::memory_order_relaxed);
      if (!eviction_logged_) {
        eviction_logged_ = true;
        spdlog::warn("pool transport: too many connections in their handshake from {}; closing "
                     "the oldest that has not finished its HELLO to make room (logged once)",
                     AddressKeyText(at->second->source()));
      }
      RemoveAccept(at->second.get());
      return true;
    }
  }
  return false;
}

void TcpTransport::YieldAfterBurst() {
  // evconnlistener accepts until the backlog is empty; a flood can keep it
  // full, and lane 0 also carries calls, handshake reads and timers.
  constexpr int kAcceptsPerTurn = 64;
  if (++accepts_in_burst_ < kAcceptsPerTurn || !listener_ || !resume_accept_) return;
  accepts_in_burst_ = 0;
  evconnlistener_disable(listener_);
  const timeval now{0, 0};
  evtimer_add(resume_accept_, &now);
}

void TcpTransport::HelloVerified(PendingAccept* a) { ForgetSilent(a->source()); }

void TcpTransport::ForgetSilent(const std::string& source) {
  auto it = silent_by_source_.find(source);
  if (it != silent_by_source_.end() && --it->second <= 0) silent_by_source_.erase(it);
}

void TcpTransport::RemoveAccept(PendingAccept* a) {
  auto at = accepts_.find(a->seq());
  if (at == accepts_.end() || at->second.get() != a) return;
  if (!a->said_hello()) ForgetSilent(a->source());
  accepts_.erase(at);  // destroys a
}

void TcpTransport::AcceptErrorCb(evconnlistener* lev, void* arg) {
  auto* t = static_cast<TcpTransport*>(arg);
  const int err = EVUTIL_SOCKET_ERROR();
  // Out of descriptors: the pending connection stays in the backlog and the
  // listener would spin, so pause accepting for a moment.
  if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
    evconnlistener_disable(lev);
    const timeval tv = MsToTimeval(100);
    if (t->resume_accept_) evtimer_add(t->resume_accept_, &tv);
  }
}

void TcpTransport::ResumeAcceptCb(evutil_socket_t, short, void* arg) {
  auto* t = static_cast<TcpTransport*>(arg);
  if (t->listener_) evconnlistener_enable(t->listener_);
}

void TcpTransport::HandOff(int fd, std::shared_ptr<TlsSession> tls, int peer, uint32_t conn_lane,
                           const std::optional<auth::FrameKeys>& keys) {
  const size_t target = conn_lane % lanes_.size();
  Lane& l = *lanes_[target];
  if (target == 0) return Adopt(l, fd, std::move(tls), peer, keys);
  if (!l.inbox.Push({fd, peer, std::move(tls), keys})) close(fd);
}

void TcpTransport::WakeCb(evutil_socket_t, short, void* arg) {
  auto* l = static_cast<Lane*>(arg);
  for (const Handoff& h : l->inbox.Take()) l->t->Adopt(*l, h.fd, h.tls, h.peer, h.keys);
}

void TcpTransport::Adopt(Lane& l, int fd, std::shared_ptr<TlsSession> tls, int peer,
                         const std::optional<auth::FrameKeys>& keys) {
  if (l.stopped) {
    tls.reset();
    close(fd);
    return;
  }
  auto c = std::make_shared<InConn>(this, &l, peer);
  if (!c->Start(fd, std::move(tls), keys).ok()) return;
  l.incoming.emplace(c.get(), std::move(c));
}

}  // namespace tcp
}  // namespace kvpool::transport
