// The owner's side of the TCP transport: the handshake of accepted
// connections (PendingAccept, lane 0), authenticated connections (InConn)
// and the calls they deliver (TcpIncomingCall).
#include <unistd.h>

#include <cstring>

#include "storage/transport/tcp_internal.h"

namespace kvpool::transport::tcp {

namespace {

// WriteBulk ranges of one reply. Each range is queued by reference with its
// own cleanup; the block is freed when the last range has left.
struct BulkRefs;
struct BulkRef {
  const char* src;
  size_t len;
  ReleaseFn release;
  void* ctx;
  BulkRefs* owner;
};
struct BulkRefs {
  std::vector<BulkRef> refs;
  size_t live = 0;
};

void ReleaseRef(const void*, size_t, void* arg) {
  auto* r = static_cast<BulkRef*>(arg);
  BulkRefs* owner = r->owner;
  if (r->release) r->release(r->ctx);
  if (--owner->live == 0) delete owner;
}

class TcpIncomingCall final : public IncomingCall {
 public:
  TcpIncomingCall(std::weak_ptr<InConn> conn, const FrameHeader& h, FrameBuffer payload, int peer,
                  int lane, uint64_t max_body)
      : conn_(std::move(conn)),
        h_(h),
        payload_(std::move(payload)),
        peer_(peer),
        lane_(lane),
        max_body_(max_body) {}

  ~TcpIncomingCall() override {
    // Answer at once so the requester does not wait for its timeout.
    if (!finished_) SendError(Code::kInternal, "kvpool: call dropped");
  }

  uint16_t opcode() const override { return h_.opcode; }
  std::string_view body() const override { return {payload_.data.get(), h_.body_len}; }
  int peer() const override { return peer_; }
  int lane() const override { return lane_; }
  size_t bulk_in_size() const override { return h_.bulk_len; }
  size_t bulk_out_capacity() const override { return h_.bulk_cap; }

  void ReadBulk(size_t offset, size_t len, char* dst, std::function<void(Status)> done) override {
    const size_t size = h_.bulk_len;
    if (offset > size || len > size - offset) {
      done(Status::InvalidArgument("ReadBulk range outside bulk_in"));
      return;
    }
    // The bytes came inline with the call; "reading" them is a copy.
    if (len > 0) std::memcpy(dst, payload_.data.get() + h_.body_len + offset, len);
    done(Status::OK());
  }

  Status WriteBulk(const char* src, size_t len, ReleaseFn release, void* ctx,
                   size_t* offset) override {
    if (finished_) return Status::InvalidArgument("WriteBulk after Reply");
    if (len > h_.bulk_cap - used_)
      return Status::InvalidArgument("WriteBulk of " + std::to_string(len) +
                                     " bytes exceeds the bulk_out capacity");
    if (!refs_) refs_ = std::make_unique<BulkRefs>();
    refs_->refs.push_back({src, len, release, ctx, nullptr});
    *offset = used_;
    used_ += len;
    return Status::OK();
  }

  void Reply(std::string body) override {
    if (finished_) return;
    finished_ = true;
    std::shared_ptr<InConn> c = conn_.lock();
    FrameConn* fc = c ? c->conn() : nullptr;
    if (!fc || fc->closed()) return ReleaseAll();  // the requester is gone
    if (body.size() > max_body_) {
      ReleaseAll();
      return QueueError(fc, Code::kInternal, "kvpool: reply body exceeds max_body");
    }
    FrameHeader h;
    h.kind = FrameKind::kReply;
    h.opcode = h_.opcode;
    h.call_id = h_.call_id;
    h.bulk_len = used_;
    fc->QueueFrame(h, std::move(body));
    if (refs_) {
      BulkRefs* r = refs_.release();
      const size_t n = r->refs.size();
      r->live = n;
      // Index loop: a range released at once (closed link) may free r with
      // the last one.
      for (size_t i = 0; i < n; ++i) {
        BulkRef* ref = &r->refs[i];
        ref->owner = r;
        fc->QueueRef(ref->src, ref->len, &ReleaseRef, ref);
      }
    }
    c->transport()->peer_counters(peer_).bytes_out.fetch_add(used_, std::memory_order_relaxed);
  }

 private:
  void ReleaseAll() {
    if (!refs_) return;
    for (const BulkRef& r : refs_->refs)
      if (r.release) r.release(r.ctx);
    refs_.reset();
  }
  void SendError(Code code, const char* msg) {
    finished_ = true;
    ReleaseAll();
    std::shared_ptr<InConn> c = conn_.lock();
    FrameConn* fc = c ? c->conn() : nullptr;
    if (fc && !fc->closed()) QueueError(fc, code, msg);
  }
  void QueueError(FrameConn* fc, Code code, const char* msg) {
    FrameHeader h;
    h.kind = FrameKind::kErrorReply;
    h.opcode = static_cast<uint16_t>(code);
    h.call_id = h_.call_id;
    fc->QueueFrame(h, msg);
  }

  std::weak_ptr<InConn> conn_;
  FrameHeader h_;
  FrameBuffer payload_;
  int peer_;
  int lane_;
  uint64_t max_body_;
  std::unique_ptr<BulkRefs> refs_;
  size_t used_ = 0;
  bool finished_ = false;
};

}  // namespace

// ---- PendingAccept ----

PendingAccept::~PendingAccept() {
  if (timer_) event_free(timer_);
}

Status PendingAccept::Start(int fd) {
  Lane& l0 = t_->lane(0);
  auth::Nonce nonce;
  Status st = auth::RandomNonce(&nonce);
  if (!st.ok()) {
    close(fd);
    return st;
  }
  const TransportOptions& o = t_->options();
  hs_.emplace(o.secret, static_cast<uint32_t>(o.self), static_cast<uint32_t>(o.peers.size()),
              nonce);
  std::shared_ptr<TlsSession> tls;
  if (o.tls) {
    auto s = TlsSession::Create(*o.tls, fd, TlsSession::Side::kAccept);
    if (!s.ok()) {
      close(fd);
      return s.status();
    }
    tls = std::move(s.value());
  }
  auto c = FrameConn::Create(l0.base, fd, /*connecting=*/false, kHandshakeLimits, l0.scratch.get(),
                             kScratchSize, this, std::move(tls));
  if (!c.ok()) return c.status();
  conn_ = std::move(c.value());
  conn_->set_stats(t_->frame_stats());
  timer_ = evtimer_new(l0.base, &PendingAccept::TimeoutCb, this);
  if (!timer_) return Status::Internal("libevent: evtimer_new");
  const timeval tv = MsToTimeval(t_->tuning().accept_timeout_ms);
  evtimer_add(timer_, &tv);
  return Status::OK();
}

Status PendingAccept::OnHeader(const FrameHeader& h, bool*) {
  // Nothing but the next handshake step, at its exact size.
  if (!have_hello_ && h.kind == FrameKind::kHello && h.body_len == auth::kHelloSize)
    return Status::OK();
  if (have_hello_ && h.kind == FrameKind::kProof && h.body_len == auth::kProofSize)
    return Status::OK();
  return Status::InvalidArgument("unexpected frame before authentication");
}

void PendingAccept::OnFrame(const FrameHeader& h, FrameBuffer payload) {
  const std::string_view body(payload.data.get(), h.body_len);
  if (h.kind == FrameKind::kHello) {
    StatusOr<std::string> challenge = hs_->OnHello(body);
    if (!challenge.ok()) return Reject(challenge.status().message());
    have_hello_ = true;
    t_->HelloVerified(this);
    FrameHeader out;
    out.kind = FrameKind::kChallenge;
    conn_->QueueFrame(out, std::move(challenge.value()));
    return;
  }
  if (!hs_->OnProof(body).ok()) return Reject("authentication failed");
  const auth::Ids ids = hs_->ids();
  std::shared_ptr<TlsSession> tls = conn_->tls();
  const std::optional<auth::FrameKeys> keys = hs_->frame_keys();
  const int fd = conn_->Detach();
  TcpTransport* t = t_;
  t->RemoveAccept(this);  // destroys this
  if (fd >= 0) t->HandOff(fd, std::move(tls), static_cast<int>(ids.client), ids.lane, keys);
}

void PendingAccept::OnClosed(Status) { t_->RemoveAccept(this); }

void PendingAccept::Reject(const std::string& why) {
  FrameHeader h;
  h.kind = FrameKind::kAuthFail;
  conn_->QueueFrame(h, why.substr(0, auth::kMaxFailSize));
  conn_->FlushNow();  // best effort: the socket is closed right after
  t_->RemoveAccept(this);
}

void PendingAccept::TimeoutCb(evutil_socket_t, short, void* arg) {
  auto* a = static_cast<PendingAccept*>(arg);
  a->t_->RemoveAccept(a);
}

// ---- InConn ----

Status InConn::Start(int fd, std::shared_ptr<TlsSession> tls,
                     const std::optional<auth::FrameKeys>& keys) {
  auto c = FrameConn::Create(lane_->base, fd, /*connecting=*/false, t_->limits(),
                             lane_->scratch.get(), kScratchSize, this, std::move(tls));
  if (!c.ok()) return c.status();
  conn_ = std::move(c.value());
  conn_->set_stats(t_->frame_stats());
  conn_->SetReady(t_->limits());
  if (keys) {
    Status st = conn_->EnableMac(keys->to_client, keys->to_server);
    if (!st.ok()) {
      conn_.reset();
      return st;
    }
  }
  FrameHeader h;
  h.kind = FrameKind::kAuthOk;
  conn_->QueueFrame(h, {});
  t_->CountConnection();
  return Status::OK();
}

Status InConn::OnHeader(const FrameHeader& h, bool*) {
  if (h.kind != FrameKind::kCall) return Status::Unavailable("unexpected frame kind from peer");
  return Status::OK();
}

void InConn::OnFrame(const FrameHeader& h, FrameBuffer payload) {
  auto self = shared_from_this();  // the handler may stop the lane
  t_->peer_counters(peer_).bytes_in.fetch_add(h.bulk_len, std::memory_order_relaxed);
  auto call = std::make_unique<TcpIncomingCall>(weak_from_this(), h, std::move(payload), peer_,
                                                lane_->index, t_->options().max_body);
  // Without a handler the call is dropped, which answers an error.
  if (t_->handler()) t_->handler()(std::move(call));
}

void InConn::OnClosed(Status) {
  auto self = shared_from_this();
  lane_->incoming.erase(this);
  conn_.reset();
}

}  // namespace kvpool::transport::tcp
