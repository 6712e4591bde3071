// TcpTransport: lanes, the listener, and the hand-off of authenticated
// connections from lane 0 to the lane the connector asked for.
#include "storage/transport/tcp_transport.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

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
  }
  const Status why = Status::Unavailable("transport stopped");
  for (auto& link : l.links) link->Shutdown(why);
  auto conns = std::move(l.incoming);
  l.incoming.clear();
  for (auto& [raw, c] : conns) c->Close();
}

void TcpTransport::AcceptCb(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg) {
  static_cast<TcpTransport*>(arg)->OnAccept(fd);
}

void TcpTransport::OnAccept(int fd) {
  // Unauthenticated connections are bounded in number and in time, so a
  // flood of them costs a fixed amount of memory.
  if (lanes_[0]->stopped || static_cast<int>(accepts_.size()) >= tuning_.max_pending_handshakes) {
    close(fd);
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  auto a = std::make_unique<PendingAccept>(this);
  PendingAccept* raw = a.get();
  if (!a->Start(fd).ok()) return;
  accepts_.emplace(raw, std::move(a));
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

void TcpTransport::HandOff(int fd, int peer, uint32_t conn_lane) {
  const size_t target = conn_lane % lanes_.size();
  Lane& l = *lanes_[target];
  if (target == 0) return Adopt(l, fd, peer);
  if (!l.inbox.Push({fd, peer})) close(fd);
}

void TcpTransport::WakeCb(evutil_socket_t, short, void* arg) {
  auto* l = static_cast<Lane*>(arg);
  for (const Handoff& h : l->inbox.Take()) l->t->Adopt(*l, h.fd, h.peer);
}

void TcpTransport::Adopt(Lane& l, int fd, int peer) {
  if (l.stopped) {
    close(fd);
    return;
  }
  auto c = std::make_shared<InConn>(this, &l, peer);
  if (!c->Start(fd).ok()) return;
  l.incoming.emplace(c.get(), std::move(c));
}

}  // namespace tcp
}  // namespace kvpool::transport
