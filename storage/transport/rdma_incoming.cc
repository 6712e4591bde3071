// The owner's side of the RDMA transport: the handshake of accepted
// connections (InConn) and the calls they deliver (RdmaIncomingCall).
//
// ReadBulk posts RDMA READs from the requester's bulk_in straight into dst
// when dst lies in a registered region (the segment), else through bounce
// buffers. WriteBulk posts RDMA WRITEs into the requester's bulk_out straight
// from src when src lies in a region (src is then released once a covering
// completion arrives), else copies src into bounce buffers and releases it
// right after the copy. Reply is queued behind the call's WRITEs on the same
// QP and after its READs have completed, so the bytes are in place before
// the requester sees the reply, and the requester may reuse its staging
// buffers as soon as it has the reply.
#include <spdlog/spdlog.h>

#include <cstring>

#include "storage/transport/rdma_internal.h"

namespace kvpool::transport::rdma {

namespace {

// Everything about one incoming call that outlives the IncomingCall object
// while READs or bounce copies are still in flight.
struct CallState {
  std::weak_ptr<Conn> conn;
  int peer = 0;
  int lane = 0;
  uint64_t max_body = 0;
  FrameHeader h;
  CallDesc d;
  std::string body;
  size_t used = 0;          // bulk_out bytes handed out by WriteBulk
  int reads = 0;            // ReadBulk calls not yet done
  int writes_unposted = 0;  // bounce WRITE chunks not yet queued
  bool finished = false;    // Reply given (or the call dropped)
  bool reply_pending = false;
  FrameHeader reply_h;
  std::string reply_body;
  std::vector<std::pair<ReleaseFn, void*>> deferred;  // released with the reply

  // The live connection, or null.
  std::shared_ptr<Conn> Live() const {
    std::shared_ptr<Conn> c = conn.lock();
    return c && !c->closed() ? c : nullptr;
  }
  void RunDeferred() {
    auto d = std::move(deferred);
    deferred.clear();
    for (auto& [fn, ctx] : d) fn(ctx);
  }
  // The reply leaves once nothing of the call is in flight any more.
  void MaybeSendReply() {
    if (!reply_pending || reads > 0 || writes_unposted > 0) return;
    reply_pending = false;
    if (std::shared_ptr<Conn> c = Live()) {
      if (reply_h.kind == FrameKind::kReply)
        c->lane()->t->peer_counters(peer).bytes_out.fetch_add(used, std::memory_order_relaxed);
      c->QueueMessage(reply_h, nullptr, std::move(reply_body));
    }
    RunDeferred();
  }
  void Finish(FrameHeader rh, std::string body_out) {
    finished = true;
    reply_h = rh;
    reply_h.call_id = h.call_id;
    reply_body = std::move(body_out);
    reply_pending = true;
    MaybeSendReply();
  }
  void Error(Code code, const char* msg) {
    FrameHeader eh;
    eh.kind = FrameKind::kErrorReply;
    eh.opcode = static_cast<uint16_t>(code);
    Finish(eh, msg);
  }
};

// A ReadBulk in progress: one or more READs (chunks) into dst.
struct ReadJob {
  std::shared_ptr<CallState> cs;
  char* dst;
  size_t len;
  int chunks = 0;
  bool failed = false;
  std::function<void(Status)> done;

  void ChunkDone(bool ok) {
    if (!ok) failed = true;
    if (--chunks > 0) return;
    cs->reads--;
    Status st = failed ? Status::Unavailable("RDMA READ of bulk_in from peer " +
                                             std::to_string(cs->peer) + " failed")
                       : Status::OK();
    if (st.ok())
      if (std::shared_ptr<Conn> c = cs->conn.lock())
        c->lane()->t->peer_counters(cs->peer).bytes_in.fetch_add(len, std::memory_order_relaxed);
    auto fn = std::move(done);
    fn(st);
    cs->MaybeSendReply();
  }
};

// A WriteBulk through bounce buffers: src is released once every chunk has
// been copied (or abandoned).
struct WriteJob {
  std::shared_ptr<CallState> cs;
  ReleaseFn release;
  void* ctx;
  int chunks = 0;

  void ChunkHandled() {
    if (--chunks > 0) return;
    if (release) release(ctx);
  }
};

class RdmaIncomingCall final : public IncomingCall {
 public:
  explicit RdmaIncomingCall(std::shared_ptr<CallState> cs) : cs_(std::move(cs)) {}
  ~RdmaIncomingCall() override {
    // Answer at once so the requester does not wait for its timeout.
    if (!cs_->finished) cs_->Error(Code::kInternal, "kvpool: call dropped");
  }

  uint16_t opcode() const override { return cs_->h.opcode; }
  std::string_view body() const override { return cs_->body; }
  int peer() const override { return cs_->peer; }
  int lane() const override { return cs_->lane; }
  size_t bulk_in_size() const override { return cs_->h.bulk_len; }
  size_t bulk_out_capacity() const override { return cs_->h.bulk_cap; }

  void ReadBulk(size_t offset, size_t len, char* dst, std::function<void(Status)> done) override {
    CallState& s = *cs_;
    if (offset > s.h.bulk_len || len > s.h.bulk_len - offset)
      return done(Status::InvalidArgument("ReadBulk range outside bulk_in"));
    // After the reply the requester may reuse its buffer for another call.
    if (s.finished) return done(Status::InvalidArgument("ReadBulk after Reply"));
    if (len == 0) return done(Status::OK());
    std::shared_ptr<Conn> c = s.Live();
    if (!c) return done(Status::Unavailable("link to peer " + std::to_string(s.peer) + " lost"));
    Lane* lane = c->lane();
    RdmaTransport* t = lane->t;
    const uint32_t max_wr = t->dev().max_wr_len;
    auto job = std::make_shared<ReadJob>();
    job->cs = cs_;
    job->dst = dst;
    job->len = len;
    job->done = std::move(done);
    s.reads++;
    const uint64_t remote = s.d.in_addr + offset;
    PeerCounters& pc = t->peer_counters(s.peer);
    if (const ibv_mr* mr = t->FindRegion(dst, len)) {
      // Straight into the segment: no copy on this side.
      t->stats().direct_reads.fetch_add(1, std::memory_order_relaxed);
      job->chunks = static_cast<int>((len + max_wr - 1) / max_wr);
      for (size_t off = 0; off < len; off += max_wr) {
        const auto n = static_cast<uint32_t>(std::min<size_t>(max_wr, len - off));
        pc.rdma_reads.fetch_add(1, std::memory_order_relaxed);
        c->QueueRead(dst + off, mr->lkey, remote + off, s.d.in_rkey, n,
                     [job](bool ok) { job->ChunkDone(ok); });
      }
      return;
    }
    t->stats().bounced_reads.fetch_add(1, std::memory_order_relaxed);
    const size_t chunk = lane->bounce.size();
    job->chunks = static_cast<int>((len + chunk - 1) / chunk);
    for (size_t off = 0; off < len; off += chunk) {
      const auto n = static_cast<uint32_t>(std::min(chunk, len - off));
      lane->AcquireBounce([job, lane, off, n, remote](int buf) {
        if (buf < 0) return job->ChunkDone(false);
        std::shared_ptr<Conn> c = job->cs->Live();
        if (!c) {
          lane->ReleaseBounce(buf);
          return job->ChunkDone(false);
        }
        lane->t->peer_counters(job->cs->peer).rdma_reads.fetch_add(1, std::memory_order_relaxed);
        c->QueueRead(lane->bounce.data(buf), lane->bounce.lkey(buf), remote + off,
                     job->cs->d.in_rkey, n, [job, lane, buf, off, n](bool ok) {
                       if (ok) std::memcpy(job->dst + off, lane->bounce.data(buf), n);
                       lane->ReleaseBounce(buf);
                       job->ChunkDone(ok);
                     });
      });
    }
  }

  Status WriteBulk(const char* src, size_t len, ReleaseFn release, void* ctx,
                   size_t* offset) override {
    CallState& s = *cs_;
    if (s.finished) return Status::InvalidArgument("WriteBulk after Reply");
    if (len > s.h.bulk_cap - s.used)
      return Status::InvalidArgument("WriteBulk of " + std::to_string(len) +
                                     " bytes exceeds the bulk_out capacity");
    *offset = s.used;
    const uint64_t remote = s.d.out_addr + s.used;
    s.used += len;
    std::shared_ptr<Conn> c = s.Live();
    if (len == 0 || !c) {
      // Nothing to move (or nobody to move it to): released with the reply,
      // as the contract allows.
      if (release) s.deferred.emplace_back(release, ctx);
      return Status::OK();
    }
    Lane* lane = c->lane();
    RdmaTransport* t = lane->t;
    PeerCounters& pc = t->peer_counters(s.peer);
    if (const ibv_mr* mr = t->FindRegion(src, len)) {
      // Straight from the segment; src (pinned by the caller) is released
      // when the covering completion says the bytes have left.
      t->stats().direct_writes.fetch_add(1, std::memory_order_relaxed);
      const uint32_t max_wr = t->dev().max_wr_len;
      const size_t chunks = (len + max_wr - 1) / max_wr;
      auto left = std::make_shared<size_t>(chunks);
      for (size_t off = 0; off < len; off += max_wr) {
        const auto n = static_cast<uint32_t>(std::min<size_t>(max_wr, len - off));
        pc.rdma_writes.fetch_add(1, std::memory_order_relaxed);
        c->QueueWrite(src + off, mr->lkey, remote + off, s.d.out_rkey, n,
                      [left, release, ctx](bool) {
                        if (--*left == 0 && release) release(ctx);
                      });
      }
      return Status::OK();
    }
    t->stats().bounced_writes.fetch_add(1, std::memory_order_relaxed);
    const size_t chunk = lane->bounce.size();
    auto job = std::make_shared<WriteJob>();
    job->cs = cs_;
    job->release = release;
    job->ctx = ctx;
    job->chunks = static_cast<int>((len + chunk - 1) / chunk);
    s.writes_unposted += job->chunks;
    for (size_t off = 0; off < len; off += chunk) {
      const auto n = static_cast<uint32_t>(std::min(chunk, len - off));
      lane->AcquireBounce([job, lane, src, off, n, remote](int buf) {
        CallState& s = *job->cs;
        std::shared_ptr<Conn> c = buf >= 0 ? s.Live() : nullptr;
        if (c) {
          std::memcpy(lane->bounce.data(buf), src + off, n);
          lane->t->peer_counters(s.peer).rdma_writes.fetch_add(1, std::memory_order_relaxed);
          c->QueueWrite(lane->bounce.data(buf), lane->bounce.lkey(buf), remote + off, s.d.out_rkey,
                        n, [lane, buf](bool) { lane->ReleaseBounce(buf); });
        } else if (buf >= 0) {
          lane->ReleaseBounce(buf);
        }
        s.writes_unposted--;
        job->ChunkHandled();
        s.MaybeSendReply();
      });
    }
    return Status::OK();
  }

  void Reply(std::string body) override {
    CallState& s = *cs_;
    if (s.finished) return;
    if (!s.Live()) {
      // The requester is gone: nothing to send, only ranges to release.
      s.finished = true;
      return s.RunDeferred();
    }
    if (body.size() > s.max_body)
      return s.Error(Code::kInternal, "kvpool: reply body exceeds max_body");
    FrameHeader h;
    h.kind = FrameKind::kReply;
    h.opcode = s.h.opcode;
    h.bulk_len = s.used;
    s.Finish(h, std::move(body));
  }

 private:
  std::shared_ptr<CallState> cs_;
};

}  // namespace

// ---- InConn ----

InConn::InConn(RdmaTransport* t, Lane* lane, const ConnRequest& req)
    : t_(t), lane_(lane), req_(req) {}

InConn::~InConn() {
  if (conn_) conn_->Close(Status::Unavailable("connection dropped"), /*notify=*/false);
  EndHandshake();
}

Status InConn::Start(rdma_cm_id* id, uint8_t responder_resources, uint8_t initiator_depth) {
  auth::Nonce nonce;
  Status st = auth::RandomNonce(&nonce);
  if (!st.ok()) {
    rdma_reject(id, nullptr, 0);
    rdma_destroy_id(id);
    return st;
  }
  const TransportOptions& o = t_->options();
  hs_.emplace(o.secret, static_cast<uint32_t>(o.self), static_cast<uint32_t>(o.peers.size()),
              nonce);
  conn_ = std::make_shared<Conn>(lane_, this, Conn::Role::kIn, static_cast<int>(req_.client));
  st = conn_->Accept(id, req_, responder_resources, initiator_depth);
  if (!st.ok()) {
    conn_->Close(st, /*notify=*/false);
    conn_.reset();
    return st;
  }
  lane_->pending_handshakes++;
  counted_ = true;
  timer_ = evtimer_new(lane_->base, &InConn::TimeoutCb, this);
  if (!timer_) return Status::Internal("libevent: evtimer_new");
  const timeval tv = MsToTimeval(t_->tuning().handshake_timeout_ms);
  evtimer_add(timer_, &tv);
  return Status::OK();
}

void InConn::EndHandshake() {
  if (counted_) lane_->pending_handshakes--;
  counted_ = false;
  if (timer_) event_free(timer_);
  timer_ = nullptr;
}

void InConn::Close() {
  std::shared_ptr<Conn> c = std::move(conn_);
  conn_.reset();
  if (c) c->Close(Status::Unavailable("transport stopped"), /*notify=*/false);
  EndHandshake();
}

Status InConn::OnHeader(Conn*, const FrameHeader& h, bool*) {
  // Nothing but the next handshake step, at its exact size, until the peer
  // has proved it knows the secret.
  switch (state_) {
    case State::kHello:
      if (h.kind == FrameKind::kHello && h.body_len == auth::kHelloSize) return Status::OK();
      break;
    case State::kProof:
      if (h.kind == FrameKind::kProof && h.body_len == auth::kProofSize) return Status::OK();
      break;
    case State::kReady:
      if (h.kind == FrameKind::kCall) return Status::OK();
      break;
    case State::kRejected:
      break;
  }
  return Status::Unavailable("unexpected frame from peer " + std::to_string(req_.client));
}

void InConn::OnMessage(Conn* c, const FrameHeader& h, const CallDesc& d, std::string body) {
  switch (h.kind) {
    case FrameKind::kHello: {
      StatusOr<std::string> challenge = hs_->OnHello(body);
      if (!challenge.ok()) return Reject(challenge.status().message());
      // The lane that placed this connection came unauthenticated with the
      // connect request; the signed HELLO must agree with it.
      if (hs_->ids().client != req_.client || hs_->ids().lane != req_.lane)
        return Reject("HELLO does not match the connection request");
      state_ = State::kProof;
      FrameHeader out;
      out.kind = FrameKind::kChallenge;
      c->QueueMessage(out, nullptr, std::move(challenge.value()));
      return;
    }
    case FrameKind::kProof: {
      if (!hs_->OnProof(body).ok()) return Reject("authentication failed");
      // From here on every segment is tagged both ways (rdma_seg_mac.h):
      // the connector's from the next one on, ours from AUTH_OK on.
      if (const std::optional<auth::FrameKeys>& keys = hs_->frame_keys()) {
        Status st = c->RequireRecvKey(keys->to_server);
        if (!st.ok()) return c->Close(st);
        c->QueueSendKey(keys->to_client);
      }
      state_ = State::kReady;
      hs_.reset();
      EndHandshake();
      c->SetLimits(t_->limits());
      FrameHeader out;
      out.kind = FrameKind::kAuthOk;
      c->QueueMessage(out, nullptr, {});
      return;
    }
    case FrameKind::kCall: {
      auto cs = std::make_shared<CallState>();
      cs->conn = conn_;
      cs->peer = static_cast<int>(req_.client);
      cs->lane = lane_->index;
      cs->max_body = t_->options().max_body;
      cs->h = h;
      cs->d = d;
      cs->body = std::move(body);
      auto call = std::make_unique<RdmaIncomingCall>(std::move(cs));
      // Without a handler the call is dropped, which answers an error.
      if (t_->handler()) t_->handler()(std::move(call));
      return;
    }
    default:
      return;
  }
}

void InConn::Reject(const std::string& why) {
  state_ = State::kRejected;
  FrameHeader h;
  h.kind = FrameKind::kAuthFail;
  std::weak_ptr<Conn> weak = conn_;
  // Closed once AUTH_FAIL has reached the peer (its completion), so the
  // peer reads the reason instead of a bare disconnect.
  conn_->QueueMessage(h, nullptr, why.substr(0, auth::kMaxFailSize), [weak](bool) {
    if (std::shared_ptr<Conn> c = weak.lock())
      c->Close(Status::PermissionDenied("peer failed authentication"));
  });
}

void InConn::OnClosed(Conn* c, const Status&) {
  if (c != conn_.get()) return;
  EndHandshake();
  lane_->RemoveIncoming(this);  // destroyed once the stack has unwound
}

void InConn::TimeoutCb(evutil_socket_t, short, void* arg) {
  auto* in = static_cast<InConn*>(arg);
  if (in->conn_) in->conn_->Close(Status::Unavailable("handshake timed out"));
}

}  // namespace kvpool::transport::rdma
