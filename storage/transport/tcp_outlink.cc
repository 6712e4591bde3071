// OutLink: the requester's side of the TCP transport.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "storage/transport/tcp_internal.h"

namespace kvpool::transport::tcp {

OutLink::OutLink(TcpTransport* t, Lane* lane, int peer)
    : OutLinkBase(lane->base, t->peers(), t->options(), lane->index, peer,
                  t->tuning().reconnect_backoff_ms, "handshake with"),
      t_(t),
      lane_(lane) {}

OutLink::~OutLink() { conn_.reset(); }

void OutLink::Call(CallArgs args, int timeout_ms, CallDone done) {
  if (!Admit(lane_->stopped, done)) return;
  auto owned = std::make_unique<Pending>();
  owned->done = std::move(done);
  owned->bulk_cap = args.bulk_out_capacity;
  owned->reset_on_timeout = args.reset_on_timeout;
  auto* p = static_cast<Pending*>(Track(std::move(owned), timeout_ms));
  if (state_ == State::kReady) {
    Send(p, std::move(args));
  } else {
    p->unsent.emplace(std::move(args));
    unsent_.push_back(p->id);
  }
}

Status OutLink::Open() {
  const PeerAddress& a = o_.peers[peer_];
  const std::string where = a.host + ":" + std::to_string(a.port);
  sockaddr_storage ss;
  socklen_t len;
  Status st = ResolveAddress(a.host, a.port, &ss, &len);
  if (!st.ok()) return Status::Unavailable(st.message());
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::Unavailable(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS) {
    int err = errno;
    close(fd);
    return Status::Unavailable("connect to " + where + ": " + std::strerror(err));
  }
  std::shared_ptr<TlsSession> tls;
  if (t_->options().tls) {
    auto s = TlsSession::Create(*t_->options().tls, fd, TlsSession::Side::kConnect);
    if (!s.ok()) {
      close(fd);
      return Status::Unavailable(s.status().message());
    }
    tls = std::move(s.value());
  }
  auto c = FrameConn::Create(lane_->base, fd, /*connecting=*/true, kHandshakeLimits,
                             lane_->scratch.get(), kScratchSize, this, std::move(tls));
  if (!c.ok()) return Status::Unavailable(c.status().message());
  conn_ = std::move(c.value());
  conn_->set_stats(t_->frame_stats());
  st = StartHandshake();
  if (!st.ok()) {
    conn_.reset();
    return st;
  }
  const timeval tv = MsToTimeval(t_->tuning().handshake_timeout_ms);
  if (hs_timer_) evtimer_add(hs_timer_, &tv);
  state_ = State::kHandshake;
  return Status::OK();
}

void OutLink::SendHandshake(FrameHeader h, std::string body) {
  conn_->QueueFrame(h, std::move(body));
  // PROOF is the connector's last untagged frame: from AUTH_OK on, frames
  // both ways carry MACs (when a secret is set).
  const auth::ClientHandshake* hs = handshake();
  if (h.kind != FrameKind::kProof || !hs || !hs->frame_keys()) return;
  const auth::FrameKeys& k = *hs->frame_keys();
  Status st = conn_->EnableMac(k.to_server, k.to_client);
  if (!st.ok()) Fail(std::move(st), /*backoff=*/true);
}

void OutLink::Send(Pending* p, CallArgs args) {
  uint64_t bulk = 0;
  for (const iovec& v : args.bulk_in) bulk += v.iov_len;
  FrameHeader h;
  h.kind = FrameKind::kCall;
  h.opcode = args.opcode;
  h.call_id = p->id;
  h.bulk_len = bulk;
  h.bulk_cap = args.bulk_out_capacity;
  conn_->QueueFrame(h, std::move(args.body));
  // By reference: the caller keeps bulk_in valid until its callback runs,
  // and Fail/OnTimeout make sure no reference outlives that.
  for (const iovec& v : args.bulk_in) conn_->QueueRef(v.iov_base, v.iov_len, nullptr, nullptr);
  p->has_bulk_in = bulk > 0;
  p->sent_end = conn_->queued();
  counters().bytes_out.fetch_add(bulk, std::memory_order_relaxed);
}

Status OutLink::OnHeader(const FrameHeader& h, bool* discard) {
  if (state_ == State::kHandshake) return CheckHandshakeHeader(h);
  if (h.kind != FrameKind::kReply && h.kind != FrameKind::kErrorReply)
    return Status::Unavailable("unexpected frame kind from peer");
  const Pending* p = Find<Pending>(h.call_id);
  if (!p) {
    *discard = true;  // a late reply to a call that timed out: skip it unread
    return Status::OK();
  }
  if (h.bulk_len > p->bulk_cap)
    return Status::Unavailable("peer replied with more bulk than the call's capacity");
  return Status::OK();
}

void OutLink::OnFrame(const FrameHeader& h, FrameBuffer payload) {
  const std::string_view body(payload.data.get(), h.body_len);
  if (h.kind != FrameKind::kReply && h.kind != FrameKind::kErrorReply) {
    if (!OnHandshakeFrame(h, body)) return;
    // AUTH_OK: send what waited for it.
    state_ = State::kReady;
    t_->CountConnection();
    conn_->SetReady(t_->limits());
    for (uint64_t id : Authenticated()) {
      Pending* p = Find<Pending>(id);
      if (!p || !p->unsent) continue;  // timed out meanwhile
      CallArgs args = std::move(*p->unsent);
      p->unsent.reset();
      Send(p, std::move(args));
    }
    return;
  }
  std::unique_ptr<Pending> p = Take<Pending>(h.call_id);
  if (!p) return;  // timed out while its payload arrived
  if (h.kind == FrameKind::kReply) {
    counters().bytes_in.fetch_add(h.bulk_len, std::memory_order_relaxed);
    return Finish(std::move(p), Status::OK(), body,
                  BulkOut(std::string_view(payload.data.get() + h.body_len, h.bulk_len),
                          &payload.data));
  }
  Finish(std::move(p), ErrorReplyStatus(h, body), {}, {});
}

void OutLink::OnClosed(Status why) { Fail(std::move(why), /*backoff=*/state_ != State::kReady); }

void OutLink::Fail(Status why, bool backoff) {
  // Socket and queued bulk_in references go first: callers may free their
  // bulk_in as soon as their callback runs.
  conn_.reset();
  state_ = State::kIdle;
  ResetHandshake(why, backoff);
  // Callbacks may issue new Calls on this link; its state is already reset.
  for (auto& p : TakeAll<Pending>()) Finish(std::move(p), why, {}, {});
}

void OutLink::Finish(std::unique_ptr<Pending> p, const Status& st, std::string_view reply,
                     BulkOut bulk) {
  CallDone done = Conclude(p.get(), st);
  p.reset();
  done(st, reply, std::move(bulk));
}

void OutLink::OnTimeout(PendingCall* raw) {
  std::unique_ptr<Pending> p = Take<Pending>(raw->id);
  if (!p) return;
  // If its bulk_in is still queued by reference, the caller would free it
  // under us once told; the link cannot even drain, so drop it.
  if (p->reset_on_timeout && conn_) {
    // Reset, not closed: what the kernel still holds for the peer is
    // dropped, so this write cannot land after its caller was told it
    // failed (CallArgs::reset_on_timeout).
    conn_->AbortOnClose();
    Fail(Status::Unavailable("link to peer " + std::to_string(peer_) +
                             " reset: a write to it timed out"),
         /*backoff=*/false);
  } else if (p->has_bulk_in && conn_ && conn_->written() < p->sent_end) {
    Fail(Status::Unavailable("link to peer " + std::to_string(peer_) +
                             " stalled (a timed-out call's bulk was still queued)"),
         /*backoff=*/false);
  }
  Finish(std::move(p), Status::Timeout("no reply from peer " + std::to_string(peer_)), {}, {});
}

}  // namespace kvpool::transport::tcp
