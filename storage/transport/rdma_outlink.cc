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

OutLink::OutLink(RdmaTransport* t, Lane* lane, int peer) : t_(t), lane_(lane), peer_(peer) {
  hs_timer_ = evtimer_new(lane->base, &OutLink::HandshakeTimeoutCb, this);
}

OutLink::~OutLink() {
  Fail(Status::Unavailable("transport destroyed"), false);
  if (hs_timer_) event_free(hs_timer_);
}

void OutLink::Call(CallArgs args, int timeout_ms, CallDone done) {
  PeerCounters& pc = t_->peer_counters(peer_);
  if (lane_->stopped) {
    pc.errors.fetch_add(1, std::memory_order_relaxed);
    return done(Status::Unavailable("transport stopped"), {}, {});
  }
  if (!conn_) {
    if (std::chrono::steady_clock::now() < failed_until_) {
      pc.errors.fetch_add(1, std::memory_order_relaxed);
      return done(fail_status_, {}, {});
    }
    Status st = Open();
    if (!st.ok()) {
      Fail(st, /*backoff=*/true);
      pc.errors.fetch_add(1, std::memory_order_relaxed);
      return done(st, {}, {});
    }
  }
  auto c = std::make_unique<OutCall>();
  OutCall* raw = c.get();
  c->link = this;
  c->id = next_id_++;
  c->done = std::move(done);
  c->timeout_ms = timeout_ms;
  c->opcode = args.opcode;
  c->body = std::move(args.body);
  for (const iovec& v : args.bulk_in)
    if (v.iov_len) c->bulk_in.push_back(v);
  for (const iovec& v : c->bulk_in) c->in_len += v.iov_len;
  c->cap = args.bulk_out_capacity;
  if (c->in_len && c->cap) {
    // One buffer when both fit (bulk_out after bulk_in, cache-line aligned).
    c->out_off = (c->in_len + 63) & ~size_t{63};
    c->need = c->out_off + c->cap <= t_->options().staging_bytes ? 1 : 2;
    if (c->need == 2) c->out_off = 0;
  } else {
    c->need = (c->in_len ? 1 : 0) + (c->cap ? 1 : 0);
    c->out_off = 0;
  }
  if (timeout_ms > 0) {
    // Timers count from the loop's cached time; a caller that computed for a
    // while in this callback would otherwise get a shorter timeout.
    event_base_update_cache_time(lane_->base);
    c->timer = evtimer_new(lane_->base, &OutLink::TimeoutCb, raw);
    const timeval tv = MsToTimeval(timeout_ms);
    if (c->timer) evtimer_add(c->timer, &tv);
  }
  calls_.emplace(raw->id, std::move(c));
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
    case StagingGrant::kFull: {
      auto it = calls_.find(raw->id);
      std::unique_ptr<OutCall> p = std::move(it->second);
      calls_.erase(it);
      return Finish(std::move(p),
                    Status::Unavailable("too many calls waiting for RDMA staging buffers"), {}, {});
    }
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
  challenged_ = false;
  hs_.reset();
  const timeval tv =
      MsToTimeval(t_->tuning().resolve_timeout_ms + t_->tuning().handshake_timeout_ms);
  if (hs_timer_) evtimer_add(hs_timer_, &tv);
  return Status::OK();
}

void OutLink::OnConnected(Conn* c) {
  if (c != conn_.get()) return;
  auth::Nonce nonce;
  Status st = auth::RandomNonce(&nonce);
  if (!st.ok()) return Fail(Status::Unavailable(st.message()), true);
  const auth::Ids ids{static_cast<uint32_t>(t_->options().self), static_cast<uint32_t>(peer_),
                      static_cast<uint32_t>(lane_->index)};
  hs_.emplace(t_->options().secret, ids, nonce);
  FrameHeader h;
  h.kind = FrameKind::kHello;
  conn_->QueueMessage(h, nullptr, hs_->HelloBody());
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
  t_->peer_counters(peer_).bytes_out.fetch_add(c->in_len, std::memory_order_relaxed);
}

Status OutLink::OnHeader(Conn* c, const FrameHeader& h, bool* discard) {
  if (c != conn_.get()) {
    *discard = true;
    return Status::OK();
  }
  if (!ready_) {
    if (h.kind == FrameKind::kChallenge && !challenged_ && h.body_len == auth::kChallengeSize)
      return Status::OK();
    if (h.kind == FrameKind::kAuthOk && challenged_ && h.body_len == 0) return Status::OK();
    if (h.kind == FrameKind::kAuthFail && h.body_len <= auth::kMaxFailSize) return Status::OK();
    return Status::Unavailable("unexpected frame during the handshake");
  }
  if (h.kind != FrameKind::kReply && h.kind != FrameKind::kErrorReply)
    return Status::Unavailable("unexpected frame kind from peer");
  auto it = calls_.find(h.call_id);
  if (it == calls_.end()) {
    *discard = true;  // a late reply to a call that timed out without buffers
    return Status::OK();
  }
  OutCall* call = it->second.get();
  if (call->state == OutCall::State::kZombie) {
    // The late reply proves the owner is done with the buffers.
    std::unique_ptr<OutCall> z = std::move(it->second);
    calls_.erase(it);
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
  switch (h.kind) {
    case FrameKind::kChallenge: {
      StatusOr<std::string> proof = hs_->OnChallenge(body);
      if (!proof.ok()) return Fail(proof.status(), /*backoff=*/true);
      challenged_ = true;
      FrameHeader out;
      out.kind = FrameKind::kProof;
      conn_->QueueMessage(out, nullptr, std::move(proof.value()));
      return;
    }
    case FrameKind::kAuthOk: {
      ready_ = true;
      if (hs_timer_) event_del(hs_timer_);
      hs_.reset();
      conn_->SetLimits(t_->limits());
      t_->SetPeerUp(peer_, true);
      std::vector<uint64_t> ids;
      ids.swap(unsent_);
      for (uint64_t id : ids) {
        auto it = calls_.find(id);
        if (it == calls_.end() || it->second->state != OutCall::State::kConn) continue;
        Send(it->second.get());
      }
      return;
    }
    case FrameKind::kAuthFail:
      return Fail(Status::PermissionDenied("peer " + std::to_string(peer_) +
                                           " rejected authentication: " + body),
                  /*backoff=*/true);
    case FrameKind::kReply:
    case FrameKind::kErrorReply: {
      auto it = calls_.find(h.call_id);
      if (it == calls_.end()) return;
      std::unique_ptr<OutCall> p = std::move(it->second);
      calls_.erase(it);
      if (h.kind == FrameKind::kReply) {
        t_->peer_counters(peer_).bytes_in.fetch_add(h.bulk_len, std::memory_order_relaxed);
        std::string_view bulk;
        if (h.bulk_len)
          bulk = std::string_view(lane_->staging.data(p->out_buf) + p->out_off, h.bulk_len);
        return Finish(std::move(p), Status::OK(), body, bulk);
      }
      Code code = static_cast<Code>(h.opcode);
      if (h.opcode == 0 || h.opcode > static_cast<uint16_t>(Code::kInternal))
        code = Code::kInternal;
      return Finish(std::move(p), Status(code, body), {}, {});
    }
    default:
      return;  // OnHeader let nothing else through
  }
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
  if (hs_timer_) event_del(hs_timer_);
  hs_.reset();
  ready_ = false;
  challenged_ = false;
  if (backoff) {
    failed_until_ = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(t_->tuning().reconnect_backoff_ms);
    fail_status_ = why;
    t_->SetPeerUp(peer_, false);
  }
  std::vector<std::unique_ptr<OutCall>> failed;
  failed.reserve(calls_.size());
  for (auto& [id, c] : calls_) failed.push_back(std::move(c));
  calls_.clear();
  std::sort(failed.begin(), failed.end(),
            [](const auto& a, const auto& b) { return a->id < b->id; });
  // None of them may be granted buffers from here on.
  for (auto& c : failed) lane_->CancelStaging(c.get());
  unsent_.clear();
  // Zombies first: their buffers can serve the calls below if they retry.
  for (auto& c : failed)
    if (c->state == OutCall::State::kZombie) Release(c.get());
  // Callbacks may issue new Calls on this link; its state is already reset.
  for (auto& c : failed)
    if (c->state != OutCall::State::kZombie) Finish(std::move(c), why, {}, {});
}

void OutLink::Finish(std::unique_ptr<OutCall> c, const Status& st, std::string_view reply,
                     std::string_view bulk) {
  if (c->timer) {
    event_free(c->timer);
    c->timer = nullptr;
  }
  if (!st.ok()) t_->peer_counters(peer_).errors.fetch_add(1, std::memory_order_relaxed);
  CallDone done = std::move(c->done);
  // Not queued any more, but the buffers stay ours until the callback has
  // seen bulk_out in place.
  lane_->CancelStaging(c.get());
  done(st, reply, bulk);
  Release(c.get());
}

void OutLink::Release(OutCall* c) {
  lane_->CancelStaging(c);
  lane_->ReturnStaging(c);
}

void OutLink::OnTimeout(OutCall* c) {
  auto it = calls_.find(c->id);
  if (it == calls_.end()) return;
  if (c->state == OutCall::State::kZombie) {
    // Grace is over and the owner still has not answered.
    t_->stats().zombie_resets.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("rdma: peer {} kept a timed-out call's staging buffers; resetting the link",
                 peer_);
    return Fail(Status::Unavailable("link to peer " + std::to_string(peer_) +
                                    " reset: a timed-out call's buffers were not released"),
                /*backoff=*/false);
  }
  const Status why = Status::Timeout("no reply from peer " + std::to_string(peer_));
  if (c->state == OutCall::State::kSent && c->need > 0) {
    t_->peer_counters(peer_).errors.fetch_add(1, std::memory_order_relaxed);
    c->state = OutCall::State::kZombie;
    CallDone done = std::move(c->done);
    const timeval tv = MsToTimeval(std::max(t_->tuning().zombie_grace_ms, c->timeout_ms));
    evtimer_add(c->timer, &tv);
    done(why, {}, {});
    return;
  }
  std::unique_ptr<OutCall> p = std::move(it->second);
  calls_.erase(it);
  Finish(std::move(p), why, {}, {});
}

void OutLink::Shutdown(const Status& why) {
  Fail(why, /*backoff=*/false);
  if (hs_timer_) {
    event_free(hs_timer_);
    hs_timer_ = nullptr;
  }
}

void OutLink::TimeoutCb(evutil_socket_t, short, void* arg) {
  auto* c = static_cast<OutCall*>(arg);
  c->link->OnTimeout(c);
}

void OutLink::HandshakeTimeoutCb(evutil_socket_t, short, void* arg) {
  auto* l = static_cast<OutLink*>(arg);
  l->Fail(Status::Unavailable("connecting to peer " + std::to_string(l->peer_) + " timed out"),
          /*backoff=*/true);
}

}  // namespace kvpool::transport::rdma
