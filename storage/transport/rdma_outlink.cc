// OutLink: the requester's side of the RDMA transport.
//
// A call's life: staging buffers (maybe after waiting for them) → the link
// (maybe after connecting + authenticating) → bulk_in copied into its
// staging buffer, the call SENT naming (addr, rkey) of bulk_in and bulk_out
// → the owner READs/WRITEs them and replies → the callback sees bulk_out in
// place in the staging buffer → the buffers go back to the lane.
//
// A staging buffer is reused only when no WR of the owner can still touch
// it: after the call's reply (the owner replies after its READs completed
// and after its WRITEs on the same QP), or after the QP is destroyed. A call
// that times out after it was sent therefore keeps its buffers as a
// "zombie" (its callback has run with kTimeout) until its late reply or the
// end of its QP; if neither comes within the grace period, the QP is reset
// (failing the link's other calls) rather than leak buffers or let a late
// WRITE land in a buffer that already serves another call.
#include <netdb.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "storage/transport/rdma_internal.h"

namespace kvpool::transport::rdma {

OutLink::OutLink(RdmaTransport* t, Lane* lane, int peer)
    : OutLinkBase(lane->base, t->peers(), t->options(), lane->index, peer,
                  t->tuning().reconnect_backoff_ms, "connecting to"),
      t_(t),
      lane_(lane) {}

OutLink::~OutLink() { Fail(Status::Unavailable("transport destroyed"), false); }

void OutLink::Call(CallArgs args, int timeout_ms, CallDone done) {
  if (!Admit(lane_->stopped, done)) return;
  auto c = std::make_unique<OutCall>();
  c->done = std::move(done);
  c->timeout_ms = timeout_ms;
  c->opcode = args.opcode;
  c->body = std::move(args.body);
  for (const iovec& v : args.bulk_in)
    if (v.iov_len) c->bulk_in.push_back(v);
  for (const iovec& v : c->bulk_in) c->in_len += v.iov_len;
  c->cap = args.bulk_out_capacity;
  c->reset_on_timeout = args.reset_on_timeout;
  if (c->in_len && c->cap) {
    // One buffer when both fit (bulk_out after bulk_in, cache-line aligned).
    c->out_off = (c->in_len + 63) & ~size_t{63};
    c->need = c->out_off + c->cap <= t_->options().staging_bytes ? 1 : 2;
    if (c->need == 2) c->out_off = 0;
  } else {
    c->need = (c->in_len ? 1 : 0) + (c->cap ? 1 : 0);
    c->out_off = 0;
  }
  auto* raw = static_cast<OutCall*>(Track(std::move(c), timeout_ms));
  if (raw->need == 0) {
    raw->state = OutCall::State::kConn;
    return TrySend(raw);
  }
  switch (lane_->RequestStaging(raw)) {
    case StagingGrant::kGranted:
      raw->state = OutCall::State::kConn;
      return TrySend(raw);
    case StagingGrant::kQueued:
      return;  // OnStaging follows
    case StagingGrant::kFull:
      return Finish(Take<OutCall>(raw->id),
                    Status::Unavailable("too many calls waiting for RDMA staging buffers"), {}, {});
  }
}

void OutLink::OnStaging(OutCall* c) {
  c->state = OutCall::State::kConn;
  TrySend(c);
}

Status OutLink::Open() {
  const TransportOptions& o = t_->options();
  const PeerAddress& a = o.peers[peer_];
  sockaddr_storage dst{}, src{};
  Status st = ResolveAddress(a.host, a.port, &dst);
  if (!st.ok()) return Status::Unavailable(st.message());
  const sockaddr* srcp = nullptr;
  if (!o.bind_host.empty() && ResolveAddress(o.bind_host, 0, &src).ok() && !IsWildcard(src) &&
      src.ss_family == dst.ss_family)
    srcp = reinterpret_cast<const sockaddr*>(&src);
  auto conn = std::make_shared<Conn>(lane_, this, Conn::Role::kOut, peer_);
  ConnRequest req;
  req.client = static_cast<uint32_t>(o.self);
  req.server = static_cast<uint32_t>(peer_);
  req.lane = static_cast<uint32_t>(lane_->index);
  req.recv_depth = static_cast<uint32_t>(t_->dev().queue_depth);
  st = conn->Connect(srcp, reinterpret_cast<const sockaddr*>(&dst), req);
  if (!st.ok()) {
    conn->Close(st, /*notify=*/false);
    return Status::Unavailable("connect to " + a.host + ":" + std::to_string(a.port) + ": " +
                               st.message());
  }
  conn_ = std::move(conn);
  ready_ = false;
  const timeval tv =
      MsToTimeval(t_->tuning().resolve_timeout_ms + t_->tuning().handshake_timeout_ms);
  if (hs_timer_) evtimer_add(hs_timer_, &tv);
  return Status::OK();
}

void OutLink::OnConnected(Conn* c) {
  if (c != conn_.get()) return;
  Status st = StartHandshake();
  if (!st.ok()) return Fail(st, true);
}

void OutLink::SendHandshake(FrameHeader h, std::string body) {
  conn_->QueueMessage(h, nullptr, std::move(body));
  // PROOF is the connector's last untagged segment; the acceptor's
  // segments are tagged from its AUTH_OK on (rdma_seg_mac.h).
  const auth::ClientHandshake* hs = handshake();
  if (h.kind != FrameKind::kProof || !hs || !hs->frame_keys()) return;
  const auth::FrameKeys& k = *hs->frame_keys();
  conn_->QueueSendKey(k.to_server);
  Status st = conn_->ArmRecvKey(k.to_client);
  if (!st.ok()) Fail(std::move(st), /*backoff=*/true);
}

void OutLink::TrySend(OutCall* c) {
  if (ready_ && conn_) return Send(c);
  unsent_.push_back(c->id);
}

void OutLink::Send(OutCall* c) {
  BufferPool& sp = lane_->staging;
  CallDesc d;
  if (c->in_len) {
    char* dst = sp.data(c->in_buf);
    for (const iovec& v : c->bulk_in) {
      std::memcpy(dst, v.iov_base, v.iov_len);
      dst += v.iov_len;
    }
    d.in_addr = reinterpret_cast<uint64_t>(sp.data(c->in_buf));
    d.in_rkey = sp.rkey(c->in_buf);
  }
  if (c->cap) {
    d.out_addr = reinterpret_cast<uint64_t>(sp.data(c->out_buf) + c->out_off);
    d.out_rkey = sp.rkey(c->out_buf);
  }
  FrameHeader h;
  h.kind = FrameKind::kCall;
  h.opcode = c->opcode;
  h.call_id = c->id;
  h.bulk_len = c->in_len;
  h.bulk_cap = c->cap;
  conn_->QueueMessage(h, &d, std::move(c->body));
  c->body = std::string();
  c->bulk_in.clear();
  c->state = OutCall::State::kSent;
  counters().bytes_out.fetch_add(c->in_len, std::memory_order_relaxed);
}

Status OutLink::OnHeader(Conn* c, const FrameHeader& h, bool* discard) {
  if (c != conn_.get()) {
    *discard = true;
    return Status::OK();
  }
  if (!ready_) return CheckHandshakeHeader(h);
  if (h.kind != FrameKind::kReply && h.kind != FrameKind::kErrorReply)
    return Status::Unavailable("unexpected frame kind from peer");
  OutCall* call = Find<OutCall>(h.call_id);
  if (!call) {
    *discard = true;  // a late reply to a call that timed out without buffers
    return Status::OK();
  }
  if (call->state == OutCall::State::kZombie) {
    // The late reply proves the owner is done with the buffers.
    std::unique_ptr<OutCall> z = Take<OutCall>(h.call_id);
    Release(z.get());
    *discard = true;
    return Status::OK();
  }
  if (call->state != OutCall::State::kSent)
    return Status::Unavailable("peer replied to a call it was not sent");
  if (h.bulk_len > call->cap)
    return Status::Unavailable("peer replied with more bulk than the call's capacity");
  return Status::OK();
}

void OutLink::OnMessage(Conn* c, const FrameHeader& h, const CallDesc&, std::string body) {
  if (c != conn_.get()) return;
  if (h.kind != FrameKind::kReply && h.kind != FrameKind::kErrorReply) {
    const auth::ClientHandshake* hs = handshake();
    if (h.kind == FrameKind::kAuthOk && hs && hs->frame_keys() && !c->recv_authenticated())
      return Fail(Status::Unavailable("protocol violation from peer " + std::to_string(peer_) +
                                      ": AUTH_OK without its tag"),
                  /*backoff=*/true);
    if (!OnHandshakeFrame(h, body)) return;
    // AUTH_OK: send what waited for it.
    ready_ = true;
    conn_->SetLimits(t_->limits());
    for (uint64_t id : Authenticated()) {
      OutCall* call = Find<OutCall>(id);
      if (!call || call->state != OutCall::State::kConn) continue;
      Send(call);
    }
    return;
  }
  std::unique_ptr<OutCall> p = Take<OutCall>(h.call_id);
  if (!p) return;
  if (h.kind == FrameKind::kReply) {
    counters().bytes_in.fetch_add(h.bulk_len, std::memory_order_relaxed);
    std::string_view bulk;
    if (h.bulk_len)
      bulk = std::string_view(lane_->staging.data(p->out_buf) + p->out_off, h.bulk_len);
    return Finish(std::move(p), Status::OK(), body, bulk);
  }
  Finish(std::move(p), ErrorReplyStatus(h, body), {}, {});
}

void OutLink::OnClosed(Conn* c, const Status& why) {
  if (c != conn_.get()) return;
  Fail(why, /*backoff=*/!ready_);
}

void OutLink::Fail(Status why, bool backoff) {
  // The QP goes first: once it is destroyed no WR can touch the staging
  // buffers, and callers may free their bulk_in as soon as they are told.
  std::shared_ptr<Conn> conn = std::move(conn_);
  conn_.reset();
  if (conn) conn->Close(why, /*notify=*/false);
  ready_ = false;
  ResetHandshake(why, backoff);
  std::vector<std::unique_ptr<OutCall>> failed = TakeAll<OutCall>();
  // None of them may be granted buffers from here on.
  for (auto& c : failed) lane_->CancelStaging(c.get());
  unsent_.clear();  // what the cancelling granted: those calls are over
  // Zombies first: their buffers can serve the calls below if they retry.
  for (auto& c : failed)
    if (c->state == OutCall::State::kZombie) Release(c.get());
  // Callbacks may issue new Calls on this link; its state is already reset.
  for (auto& c : failed)
    if (c->state != OutCall::State::kZombie) Finish(std::move(c), why, {}, {});
}

void OutLink::Finish(std::unique_ptr<OutCall> c, const Status& st, std::string_view reply,
                     BulkOut bulk) {
  CallDone done = Conclude(c.get(), st);
  // Not queued any more, but the buffers stay ours until the callback has
  // seen bulk_out in place.
  lane_->CancelStaging(c.get());
  // Staging buffers are reused: BulkOut::Keep copies out of them.
  done(st, reply, std::move(bulk));
  Release(c.get());
}

void OutLink::Release(OutCall* c) {
  lane_->CancelStaging(c);
  lane_->ReturnStaging(c);
}

void OutLink::OnTimeout(PendingCall* p) {
  OutCall* c = Find<OutCall>(p->id);
  if (!c) return;
  if (c->state == OutCall::State::kZombie) {
    // Grace is over and the owner still has not answered.
    t_->stats().zombie_resets.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("rdma: peer {} kept a timed-out call's staging buffers; resetting the link",
                 peer_);
    return Fail(Status::Unavailable("link to peer " + std::to_string(peer_) +
                                    " reset: a timed-out call's buffers were not released"),
                /*backoff=*/false);
  }
  if (c->reset_on_timeout && c->state == OutCall::State::kSent) {
    // A posted write may still be retransmitted to the peer: destroying the
    // QP drops it (CallArgs::reset_on_timeout). The other calls on the
    // link fail with kUnavailable; this one, once the QP is gone (nothing
    // can touch its buffers), with kTimeout.
    std::unique_ptr<OutCall> mine = Take<OutCall>(c->id);
    Fail(Status::Unavailable("link to peer " + std::to_string(peer_) +
                             " reset: a write to it timed out"),
         /*backoff=*/false);
    return Finish(std::move(mine), Status::Timeout("no reply from peer " + std::to_string(peer_)),
                  {}, {});
  }
  const Status why = Status::Timeout("no reply from peer " + std::to_string(peer_));
  if (c->state == OutCall::State::kSent && c->need > 0) {
    counters().errors.fetch_add(1, std::memory_order_relaxed);
    c->state = OutCall::State::kZombie;
    CallDone done = std::move(c->done);
    const timeval tv = MsToTimeval(std::max(t_->tuning().zombie_grace_ms, c->timeout_ms));
    evtimer_add(c->timer, &tv);
    done(why, {}, {});
    return;
  }
  Finish(Take<OutCall>(c->id), why, {}, {});
}

}  // namespace kvpool::transport::rdma
