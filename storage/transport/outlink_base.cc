#include "storage/transport/outlink_base.h"

namespace kvpool::transport {

PendingCall::~PendingCall() {
  if (timer) event_free(timer);
}

OutLinkBase::OutLinkBase(event_base* base, PeerTable* peers, const TransportOptions& o, int lane,
                         int peer, int backoff_ms, std::string hs_timeout_what)
    : base_(base),
      peers_(peers),
      o_(o),
      lane_index_(lane),
      peer_(peer),
      backoff_ms_(backoff_ms),
      hs_timeout_what_(std::move(hs_timeout_what)) {
  hs_timer_ = evtimer_new(base, &OutLinkBase::HandshakeTimeoutCb, this);
}

OutLinkBase::~OutLinkBase() {
  if (hs_timer_) event_free(hs_timer_);
}

void OutLinkBase::Shutdown(const Status& why) {
  Fail(why, /*backoff=*/false);
  if (hs_timer_) {
    event_free(hs_timer_);
    hs_timer_ = nullptr;
  }
}

bool OutLinkBase::Admit(bool lane_stopped, CallDone& done) {
  PeerCounters& pc = counters();
  if (lane_stopped) {
    pc.errors.fetch_add(1, std::memory_order_relaxed);
    done(Status::Unavailable("transport stopped"), {}, {});
    return false;
  }
  if (connected()) return true;
  if (std::chrono::steady_clock::now() < failed_until_) {
    pc.errors.fetch_add(1, std::memory_order_relaxed);
    done(fail_status_, {}, {});
    return false;
  }
  Status st = Open();
  if (st.ok()) return true;
  Fail(st, /*backoff=*/true);
  pc.errors.fetch_add(1, std::memory_order_relaxed);
  done(st, {}, {});
  return false;
}

PendingCall* OutLinkBase::Track(std::unique_ptr<PendingCall> p, int timeout_ms) {
  PendingCall* raw = p.get();
  p->link = this;
  p->id = next_id_++;
  if (timeout_ms > 0) {
    // Timers count from the loop's cached time; a caller that computed for a
    // while in this callback would otherwise get a shorter timeout.
    event_base_update_cache_time(base_);
    p->timer = evtimer_new(base_, &OutLinkBase::TimeoutCb, raw);
    const timeval tv = MsToTimeval(timeout_ms);
    if (p->timer) evtimer_add(p->timer, &tv);
  }
  calls_.emplace(raw->id, std::move(p));
  return raw;
}

CallDone OutLinkBase::Conclude(PendingCall* p, const Status& st) {
  if (p->timer) {
    event_free(p->timer);
    p->timer = nullptr;
  }
  if (!st.ok()) counters().errors.fetch_add(1, std::memory_order_relaxed);
  return std::move(p->done);
}

Status OutLinkBase::StartHandshake() {
  auth::Nonce nonce;
  Status st = auth::RandomNonce(&nonce);
  if (!st.ok()) return Status::Unavailable(st.message());
  const auth::Ids ids{static_cast<uint32_t>(o_.self), static_cast<uint32_t>(peer_),
                      static_cast<uint32_t>(lane_index_)};
  hs_.emplace(o_.secret, ids, nonce);
  challenged_ = false;
  FrameHeader h;
  h.kind = FrameKind::kHello;
  SendHandshake(h, hs_->HelloBody());
  return Status::OK();
}

Status OutLinkBase::CheckHandshakeHeader(const FrameHeader& h) const {
  if (h.kind == FrameKind::kChallenge && !challenged_ && h.body_len == auth::kChallengeSize)
    return Status::OK();
  if (h.kind == FrameKind::kAuthOk && challenged_ && h.body_len == 0) return Status::OK();
  if (h.kind == FrameKind::kAuthFail && h.body_len <= auth::kMaxFailSize) return Status::OK();
  return Status::Unavailable("unexpected frame during the handshake");
}

bool OutLinkBase::OnHandshakeFrame(const FrameHeader& h, std::string_view body) {
  switch (h.kind) {
    case FrameKind::kChallenge: {
      StatusOr<std::string> proof = hs_->OnChallenge(body);
      if (!proof.ok()) {
        Fail(proof.status(), /*backoff=*/true);
        return false;
      }
      challenged_ = true;
      FrameHeader out;
      out.kind = FrameKind::kProof;
      SendHandshake(out, std::move(proof.value()));
      return false;
    }
    case FrameKind::kAuthOk:
      return true;
    case FrameKind::kAuthFail:
      Fail(Status::PermissionDenied("peer " + std::to_string(peer_) +
                                    " rejected authentication: " + std::string(body)),
           /*backoff=*/true);
      return false;
    default:
      return false;
  }
}

std::vector<uint64_t> OutLinkBase::Authenticated() {
  if (hs_timer_) event_del(hs_timer_);
  hs_.reset();
  peers_->SetUp(peer_, true);
  std::vector<uint64_t> ids;
  ids.swap(unsent_);
  return ids;
}

void OutLinkBase::ResetHandshake(const Status& why, bool backoff) {
  if (hs_timer_) event_del(hs_timer_);
  hs_.reset();
  challenged_ = false;
  if (backoff) {
    failed_until_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(backoff_ms_);
    fail_status_ = why;
    peers_->SetUp(peer_, false);
  }
}

Status OutLinkBase::ErrorReplyStatus(const FrameHeader& h, std::string_view body) {
  Code code = static_cast<Code>(h.opcode);
  if (h.opcode == 0 || h.opcode > static_cast<uint16_t>(Code::kInternal)) code = Code::kInternal;
  return Status(code, std::string(body));
}

void OutLinkBase::TimeoutCb(evutil_socket_t, short, void* arg) {
  auto* p = static_cast<PendingCall*>(arg);
  p->link->OnTimeout(p);
}

void OutLinkBase::HandshakeTimeoutCb(evutil_socket_t, short, void* arg) {
  auto* l = static_cast<OutLinkBase*>(arg);
  l->Fail(
      Status::Unavailable(l->hs_timeout_what_ + " peer " + std::to_string(l->peer_) + " timed out"),
      /*backoff=*/true);
}

}  // namespace kvpool::transport
