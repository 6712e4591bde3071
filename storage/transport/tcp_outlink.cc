// OutLink: the requester's side of the TCP transport.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "storage/transport/tcp_internal.h"

namespace kvpool::transport::tcp {

OutLink::Pending::~Pending() {
  if (timer) event_free(timer);
}

OutLink::OutLink(TcpTransport* t, Lane* lane, int peer) : t_(t), lane_(lane), peer_(peer) {
  hs_timer_ = evtimer_new(lane->base, &OutLink::HandshakeTimeoutCb, this);
}

OutLink::~OutLink() {
  conn_.reset();
  if (hs_timer_) event_free(hs_timer_);
}

void OutLink::Call(CallArgs args, int timeout_ms, CallDone done) {
  PeerCounters& pc = t_->peer_counters(peer_);
  if (lane_->stopped) {
    pc.errors.fetch_add(1, std::memory_order_relaxed);
    done(Status::Unavailable("transport stopped"), {}, {});
    return;
  }
  if (state_ == State::kIdle) {
    if (std::chrono::steady_clock::now() < failed_until_) {
      pc.errors.fetch_add(1, std::memory_order_relaxed);
      done(fail_status_, {}, {});
      return;
    }
    Status st = Open();
    if (!st.ok()) {
      Fail(st, /*backoff=*/true);
      pc.errors.fetch_add(1, std::memory_order_relaxed);
      done(st, {}, {});
      return;
    }
  }
  auto p = std::make_unique<Pending>();
  Pending* raw = p.get();
  p->link = this;
  p->id = next_id_++;
  p->done = std::move(done);
  p->bulk_cap = args.bulk_out_capacity;
  if (timeout_ms > 0) {
    // Timers count from the loop's cached time; a caller that computed for a
    // while in this callback would otherwise get a shorter timeout.
    event_base_update_cache_time(lane_->base);
    p->timer = evtimer_new(lane_->base, &OutLink::TimeoutCb, raw);
    const timeval tv = MsToTimeval(timeout_ms);
    if (p->timer) evtimer_add(p->timer, &tv);
  }
  calls_.emplace(raw->id, std::move(p));
  if (state_ == State::kReady) {
    Send(raw, std::move(args));
  } else {
    raw->unsent.emplace(std::move(args));
    unsent_.push_back(raw->id);
  }
}

Status OutLink::Open() {
  const PeerAddress& a = t_->options().peers[peer_];
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
  auth::Nonce nonce;
  st = auth::RandomNonce(&nonce);
  if (!st.ok()) {
    close(fd);
    return Status::Unavailable(st.message());
  }
  auto c = FrameConn::Create(lane_->base, fd, /*connecting=*/true, kHandshakeLimits,
                             lane_->scratch.get(), kScratchSize, this);
  if (!c.ok()) return Status::Unavailable(c.status().message());
  conn_ = std::move(c.value());
  const auth::Ids ids{static_cast<uint32_t>(t_->options().self), static_cast<uint32_t>(peer_),
                      static_cast<uint32_t>(lane_->index)};
  hs_.emplace(t_->options().secret, ids, nonce);
  challenged_ = false;
  FrameHeader h;
  h.kind = FrameKind::kHello;
  conn_->QueueFrame(h, hs_->HelloBody());
  const timeval tv = MsToTimeval(t_->tuning().handshake_timeout_ms);
  if (hs_timer_) evtimer_add(hs_timer_, &tv);
  state_ = State::kHandshake;
  return Status::OK();
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
  t_->peer_counters(peer_).bytes_out.fetch_add(bulk, std::memory_order_relaxed);
}

Status OutLink::OnHeader(const FrameHeader& h, bool* discard) {
  if (state_ == State::kHandshake) {
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
    *discard = true;  // a late reply to a call that timed out: skip it unread
    return Status::OK();
  }
  if (h.bulk_len > it->second->bulk_cap)
    return Status::Unavailable("peer replied with more bulk than the call's capacity");
  return Status::OK();
}

void OutLink::OnFrame(const FrameHeader& h, FrameBuffer payload) {
  const std::string_view body(payload.data.get(), h.body_len);
  switch (h.kind) {
    case FrameKind::kChallenge: {
      StatusOr<std::string> proof = hs_->OnChallenge(body);
      if (!proof.ok()) return Fail(proof.status(), /*backoff=*/true);
      challenged_ = true;
      FrameHeader out;
      out.kind = FrameKind::kProof;
      conn_->QueueFrame(out, std::move(proof.value()));
      return;
    }
    case FrameKind::kAuthOk: {
      state_ = State::kReady;
      if (hs_timer_) event_del(hs_timer_);
      hs_.reset();
      conn_->SetReady(t_->limits());
      t_->SetPeerUp(peer_, true);
      std::vector<uint64_t> ids;
      ids.swap(unsent_);
      for (uint64_t id : ids) {
        auto it = calls_.find(id);
        if (it == calls_.end() || !it->second->unsent) continue;  // timed out meanwhile
        CallArgs args = std::move(*it->second->unsent);
        it->second->unsent.reset();
        Send(it->second.get(), std::move(args));
      }
      return;
    }
    case FrameKind::kAuthFail:
      return Fail(Status::PermissionDenied("peer " + std::to_string(peer_) +
                                           " rejected authentication: " + std::string(body)),
                  /*backoff=*/true);
    case FrameKind::kReply:
    case FrameKind::kErrorReply: {
      auto it = calls_.find(h.call_id);
      if (it == calls_.end()) return;  // timed out while its payload arrived
      std::unique_ptr<Pending> p = std::move(it->second);
      calls_.erase(it);
      if (h.kind == FrameKind::kReply) {
        t_->peer_counters(peer_).bytes_in.fetch_add(h.bulk_len, std::memory_order_relaxed);
        return Finish(std::move(p), Status::OK(), body,
                      std::string_view(payload.data.get() + h.body_len, h.bulk_len));
      }
      Code code = static_cast<Code>(h.opcode);
      if (h.opcode == 0 || h.opcode > static_cast<uint16_t>(Code::kInternal))
        code = Code::kInternal;
      return Finish(std::move(p), Status(code, std::string(body)), {}, {});
    }
    default:
      return;  // OnHeader let nothing else through
  }
}

void OutLink::OnClosed(Status why) { Fail(std::move(why), /*backoff=*/state_ != State::kReady); }

void OutLink::Fail(Status why, bool backoff) {
  // Socket and queued bulk_in references go first: callers may free their
  // bulk_in as soon as their callback runs.
  conn_.reset();
  if (hs_timer_) event_del(hs_timer_);
  hs_.reset();
  state_ = State::kIdle;
  if (backoff) {
    failed_until_ = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(t_->tuning().reconnect_backoff_ms);
    fail_status_ = why;
    t_->SetPeerUp(peer_, false);
  }
  std::vector<std::unique_ptr<Pending>> failed;
  failed.reserve(calls_.size());
  for (auto& [id, p] : calls_) failed.push_back(std::move(p));
  calls_.clear();
  unsent_.clear();
  std::sort(failed.begin(), failed.end(),
            [](const auto& a, const auto& b) { return a->id < b->id; });
  // Callbacks may issue new Calls on this link; its state is already reset.
  for (auto& p : failed) Finish(std::move(p), why, {}, {});
}

void OutLink::Finish(std::unique_ptr<Pending> p, const Status& st, std::string_view reply,
                     std::string_view bulk) {
  if (p->timer) {
    event_free(p->timer);
    p->timer = nullptr;
  }
  if (!st.ok()) t_->peer_counters(peer_).errors.fetch_add(1, std::memory_order_relaxed);
  CallDone done = std::move(p->done);
  p.reset();
  done(st, reply, bulk);
}

void OutLink::OnTimeout(Pending* raw) {
  auto it = calls_.find(raw->id);
  if (it == calls_.end()) return;
  std::unique_ptr<Pending> p = std::move(it->second);
  calls_.erase(it);
  // If its bulk_in is still queued by reference, the caller would free it
  // under us once told; the link cannot even drain, so drop it.
  if (p->has_bulk_in && conn_ && conn_->written() < p->sent_end)
    Fail(Status::Unavailable("link to peer " + std::to_string(peer_) +
                             " stalled (a timed-out call's bulk was still queued)"),
         /*backoff=*/false);
  Finish(std::move(p), Status::Timeout("no reply from peer " + std::to_string(peer_)), {}, {});
}

void OutLink::Shutdown(const Status& why) {
  Fail(why, /*backoff=*/false);
  if (hs_timer_) {
    event_free(hs_timer_);
    hs_timer_ = nullptr;
  }
}

void OutLink::TimeoutCb(evutil_socket_t, short, void* arg) {
  auto* p = static_cast<Pending*>(arg);
  p->link->OnTimeout(p);
}

void OutLink::HandshakeTimeoutCb(evutil_socket_t, short, void* arg) {
  auto* l = static_cast<OutLink*>(arg);
  l->Fail(Status::Unavailable("handshake with peer " + std::to_string(l->peer_) + " timed out"),
          /*backoff=*/true);
}

}  // namespace kvpool::transport::tcp
