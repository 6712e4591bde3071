// TcpTransport: lanes, the listener, and the hand-off of authenticated
// connections from lane 0 to the lane the connector asked for.
#include "storage/transport/tcp_transport.h"

#include <netdb.h>
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

timeval MsToTimeval(int ms) {
  timeval tv;
  tv.tv_sec = ms / 1000;
  tv.tv_usec = (ms % 1000) * 1000;
  return tv;
}

Status ResolveAddress(const std::string& host, int port, sockaddr_storage* out, socklen_t* len) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string h = host.empty() ? "127.0.0.1" : host;
  int rc = getaddrinfo(h.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0 || !res)
    return Status::InvalidArgument("cannot resolve " + h + ": " + gai_strerror(rc));
  std::memcpy(out, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return Status::OK();
}

TcpTransport::TcpTransport(const TransportOptions& o, const TcpTuning& tuning)
    : o_(o),
      tuning_(tuning),
      counters_(new PeerCounters[o.peers.size()]),
      up_(new std::atomic<bool>[o.peers.size()]) {
  for (size_t i = 0; i < o.peers.size(); ++i) up_[i].store(true);
}

TcpTransport::~TcpTransport() {
  // Lanes not stopped by StopLane: their loops must no longer run.
  for (auto& l : lanes_) StopLaneImpl(*l);
}

Status TcpTransport::Start(std::vector<event_base*> bases, CallHandler handler) {
  if (!lanes_.empty()) return Status::InvalidArgument("transport already started");
  if (bases.empty()) return Status::InvalidArgument("transport needs at least one lane");
  handler_ = std::move(handler);
  Status st = StartLanes(bases);
  if (!st.ok()) {
    // Leave the transport as if Start had not run.
    for (auto& l : lanes_) StopLaneImpl(*l);
    lanes_.clear();
    listener_ = nullptr;
  }
  return st;
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
    l->wake = event_new(bases[i], -1, 0, &TcpTransport::WakeCb, l.get());
    if (!l->wake) return Status::Internal("libevent: event_new");
    lanes_.push_back(std::move(l));
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

void TcpTransport::StopLane(int lane) {
  if (lane < 0 || lane >= static_cast<int>(lanes_.size())) return;
  StopLaneImpl(*lanes_[lane]);
}

void TcpTransport::StopLaneImpl(Lane& l) {
  if (l.stopped) return;
  l.stopped = true;
  std::vector<Handoff> orphans;
  {
    std::lock_guard<std::mutex> lk(l.mu);
    l.inbox_closed = true;
    orphans.swap(l.inbox);
  }
  for (const Handoff& h : orphans) close(h.fd);
  // Safe: lane 0 only activates `wake` under mu while inbox_closed is false.
  if (l.wake) event_free(l.wake);
  l.wake = nullptr;
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

void TcpTransport::Call(int lane, int peer, CallArgs args, int timeout_ms, CallDone done) {
  if (lanes_.empty()) return done(Status::Unavailable("transport not started"), {}, {});
  if (lane < 0 || lane >= static_cast<int>(lanes_.size()))
    return done(Status::InvalidArgument("no such lane"), {}, {});
  if (peer < 0 || peer >= static_cast<int>(o_.peers.size()))
    return done(Status::InvalidArgument("no such peer"), {}, {});
  PeerCounters& pc = counters_[peer];
  pc.calls.fetch_add(1, std::memory_order_relaxed);
  uint64_t bulk = 0;
  for (const iovec& v : args.bulk_in) bulk += v.iov_len;
  if (args.body.size() > o_.max_body || bulk > o_.max_bulk ||
      args.bulk_out_capacity > o_.max_bulk) {
    pc.errors.fetch_add(1, std::memory_order_relaxed);
    return done(Status::InvalidArgument("call exceeds max_body or max_bulk"), {}, {});
  }
  lanes_[lane]->links[peer]->Call(std::move(args), timeout_ms, std::move(done));
}

const PeerCounters& TcpTransport::counters(int peer) const {
  static const PeerCounters kNone;
  if (peer < 0 || peer >= static_cast<int>(o_.peers.size())) return kNone;
  return counters_[peer];
}

bool TcpTransport::peer_up(int peer) const {
  if (peer < 0 || peer >= static_cast<int>(o_.peers.size())) return false;
  return up_[peer].load(std::memory_order_relaxed);
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
  std::lock_guard<std::mutex> lk(l.mu);
  if (l.inbox_closed) {
    close(fd);
    return;
  }
  l.inbox.push_back({fd, peer});
  event_active(l.wake, EV_TIMEOUT, 0);
}

void TcpTransport::WakeCb(evutil_socket_t, short, void* arg) {
  auto* l = static_cast<Lane*>(arg);
  std::vector<Handoff> items;
  {
    std::lock_guard<std::mutex> lk(l->mu);
    items.swap(l->inbox);
  }
  for (const Handoff& h : items) l->t->Adopt(*l, h.fd, h.peer);
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
