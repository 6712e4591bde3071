#include "storage/transport/frame_conn.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include <spdlog/spdlog.h>

namespace kvpool::transport::tcp {

std::atomic<uint64_t> g_largest_frame_alloc{0};

namespace {

// A payload with at least this much left is read straight into its buffer;
// below it, batching small frames through the scratch buffer saves syscalls.
constexpr size_t kDirectReadMin = 64 << 10;
// Bodies this large are queued by reference (moved to the heap) instead of
// copied into the evbuffer.
constexpr size_t kBodyRefMin = 16 << 10;
// Fairness: one connection yields the loop after this many reads.
constexpr int kMaxReadsPerEvent = 16;
// and after this many bytes: one recv into a large payload otherwise copies
// whatever a fast sender keeps adding, hundreds of MB in one call.
constexpr size_t kMaxReadPerEvent = 1u << 20;
constexpr size_t kMaxWritePerFlush = 1u << 20;
// QueueRef copies ranges up to this size rather than referencing them.
constexpr size_t kCopyRefUpTo = 1024;
constexpr int kMaxIov = 64;

std::string Errno(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

void DeleteString(const void*, size_t, void* arg) { delete static_cast<std::string*>(arg); }

}  // namespace

// Marks every callback frame on the stack when the object dies under it.
// The guard registers its own address in the FrameConn and unregisters it
// on exit unless the FrameConn died first; gcc cannot see that pairing.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdangling-pointer"
struct FrameConnGuard {
  explicit FrameConnGuard(FrameConnGuard** slot) : slot_(slot), prev(*slot) { *slot_ = this; }
  ~FrameConnGuard() {
    if (!destroyed) *slot_ = prev;
  }
  FrameConnGuard(const FrameConnGuard&) = delete;
  FrameConnGuard& operator=(const FrameConnGuard&) = delete;
  bool destroyed = false;
  FrameConnGuard** slot_;
  FrameConnGuard* prev;
};
#pragma GCC diagnostic pop

StatusOr<std::unique_ptr<FrameConn>> FrameConn::Create(event_base* base, int fd, bool connecting,
                                                       WireLimits limits, char* scratch,
                                                       size_t scratch_size, Handler* handler,
                                                       std::shared_ptr<TlsSession> tls) {
  std::unique_ptr<FrameConn> c(
      new FrameConn(base, fd, connecting, limits, scratch, scratch_size, handler));
  c->tls_ = std::move(tls);
  c->read_ev_ = event_new(base, fd, EV_READ | EV_PERSIST, &FrameConn::ReadCb, c.get());
  c->write_ev_ = event_new(base, fd, EV_WRITE, &FrameConn::WriteCb, c.get());
  c->flush_ev_ = event_new(base, -1, 0, &FrameConn::FlushCb, c.get());
  c->out_ = evbuffer_new();
  if (!c->read_ev_ || !c->write_ev_ || !c->flush_ev_ || !c->out_ ||
      event_add(c->read_ev_, nullptr) != 0)
    return Status::Internal("libevent: cannot create connection events");
  if (connecting) {
    // Writable = connect finished (or failed; SO_ERROR tells).
    if (event_add(c->write_ev_, nullptr) != 0) return Status::Internal("libevent: event_add");
    c->write_waiting_ = true;
  }
  // A session handed over from another lane may hold decrypted bytes the
  // socket will not announce again.
  if (c->tls_ && c->tls_->pending()) event_active(c->read_ev_, EV_READ, 0);
  return c;
}

FrameConn::FrameConn(event_base* base, int fd, bool connecting, WireLimits limits, char* scratch,
                     size_t scratch_size, Handler* handler)
    : base_(base),
      fd_(fd),
      connecting_(connecting),
      limits_(limits),
      scratch_(scratch),
      scratch_size_(scratch_size),
      handler_(handler) {}

FrameConn::~FrameConn() {
  if (read_ev_) event_free(read_ev_);
  if (write_ev_) event_free(write_ev_);
  if (flush_ev_) event_free(flush_ev_);
  if (fd_ >= 0) tls_.reset();  // not a detached one: it went with the socket
  if (fd_ >= 0) close(fd_);
  // Runs the cleanup of every reference still queued (bulk release callbacks).
  if (out_) evbuffer_free(out_);
  for (FrameConnGuard* g = guard_; g; g = g->prev) g->destroyed = true;
}

void FrameConn::SetReady(WireLimits limits) {
  limits_ = limits;
  exact_reads_ = false;
}

Status FrameConn::EnableMac(const FrameKey& send, const FrameKey& recv) {
  auto out = std::make_unique<FrameMac>();
  auto in = std::make_unique<FrameMac>();
  Status st = out->Init(send);
  if (st.ok()) st = in->Init(recv);
  if (!st.ok()) return st;
  mac_out_ = std::move(out);
  mac_in_ = std::move(in);
  return Status::OK();
}

void FrameConn::MacOutStart(const char* hdr, const std::string& body, uint64_t bulk_len) {
  Status st = mac_out_->Begin();
  if (st.ok()) st = mac_out_->Update(hdr, kHeaderSize);
  if (st.ok()) st = mac_out_->Update(body.data(), body.size());
  if (!st.ok() && deferred_.ok()) deferred_ = std::move(st);
  out_bulk_left_ = bulk_len;
  out_in_frame_ = true;
}

void FrameConn::MacOut(const void* data, size_t len) {
  if (!out_in_frame_) return;
  if (len > 0) {
    Status st = mac_out_->Update(data, len);
    if (!st.ok() && deferred_.ok()) deferred_ = std::move(st);
    out_bulk_left_ -= std::min<uint64_t>(out_bulk_left_, len);
  }
  if (out_bulk_left_ != 0) return;
  out_in_frame_ = false;
  FrameTag tag{};
  Status st = mac_out_->Finish(&tag);
  if (!st.ok() && deferred_.ok()) deferred_ = std::move(st);
  evbuffer_add(out_, tag.data(), tag.size());
  queued_ += tag.size();
}

void FrameConn::QueueFrame(FrameHeader h, std::string body) {
  if (closed_) return;
  h.body_len = body.size();
  char hdr[kHeaderSize];
  EncodeHeader(h, hdr);
  if (mac_out_) MacOutStart(hdr, body, h.bulk_len);
  if (stats_) {
    stats_->frames_sent.fetch_add(1, std::memory_order_relaxed);
    if (mac_out_) stats_->frames_tagged.fetch_add(1, std::memory_order_relaxed);
  }
  evbuffer_add(out_, hdr, kHeaderSize);
  queued_ += kHeaderSize + body.size();
  if (body.size() >= kBodyRefMin) {
    auto* s = new std::string(std::move(body));
    if (evbuffer_add_reference(out_, s->data(), s->size(), &DeleteString, s) != 0) delete s;
  } else if (!body.empty()) {
    evbuffer_add(out_, body.data(), body.size());
  }
  if (mac_out_) MacOut(nullptr, 0);  // the tag, if no bulk follows
  ScheduleFlush();
}

void FrameConn::QueueRef(const void* data, size_t len, evbuffer_ref_cleanup_cb cleanup, void* arg) {
  if (closed_ || len == 0) {
    if (cleanup) cleanup(data, len, arg);
    return;
  }
  // A small range is copied: a reference costs an evbuffer chain (a malloc
  // and a free) per range, more than copying a few hundred bytes does.
  const bool copy = len <= kCopyRefUpTo;
  if (copy) evbuffer_add(out_, data, len);
  else evbuffer_add_reference(out_, data, len, cleanup, arg);
  queued_ += len;
  if (mac_out_) MacOut(data, len);  // the tag after the frame's last bulk bytes
  if (copy && cleanup) cleanup(data, len, arg);
  ScheduleFlush();
}

void FrameConn::FlushNow() {
  // Errors are left for the caller, which is about to close anyway.
  if (!closed_ && !connecting_) FlushSome().IgnoreError();
}

int FrameConn::Detach() {
  if (closed_ || in_payload_ || hdr_got_ != 0 || evbuffer_get_length(out_) != 0) return -1;
  event_del(read_ev_);
  event_del(write_ev_);
  event_del(flush_ev_);
  closed_ = true;
  int fd = fd_;
  fd_ = -1;
  tls_.reset();  // the caller took it (tls()) if it wanted it
  return fd;
}

void FrameConn::ReadCb(evutil_socket_t, short, void* arg) {
  static_cast<FrameConn*>(arg)->OnReadable();
}

void FrameConn::WriteCb(evutil_socket_t, short, void* arg) {
  static_cast<FrameConn*>(arg)->OnWritable();
}

void FrameConn::FlushCb(evutil_socket_t, short, void* arg) {
  auto* c = static_cast<FrameConn*>(arg);
  c->flush_scheduled_ = false;
  if (c->closed_ || c->write_waiting_) return;
  FrameConnGuard g(&c->guard_);
  Status st = c->FlushSome();
  if (!st.ok() && !g.destroyed) c->Fail(std::move(st));
}

void FrameConn::OnWritable() {
  FrameConnGuard g(&guard_);
  write_waiting_ = false;
  if (closed_) return;
  if (tls_read_waits_write_ && !connecting_) {
    OnReadable();
    if (g.destroyed || closed_) return;
  }
  if (connecting_) {
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) return Fail(Status::Unavailable(Errno("connect", err)));
    connecting_ = false;
  }
  Status st = FlushSome();
  if (!st.ok() && !g.destroyed) Fail(std::move(st));
}

void FrameConn::ScheduleFlush() {
  // Runs after the callbacks already queued in this loop iteration, so
  // frames queued together go out in one sendmsg.
  if (connecting_ || write_waiting_ || flush_scheduled_) return;
  flush_scheduled_ = true;
  event_active(flush_ev_, EV_TIMEOUT, 0);
}

Status FrameConn::FlushSome() {
  // At most kMaxWritePerFlush now: a peer reading as fast as this loop
  // writes would otherwise keep it sending a large value for seconds.
  if (!deferred_.ok()) return deferred_;  // a frame could not be tagged
  size_t flushed = 0;
  while (evbuffer_get_length(out_) > 0) {
    if (flushed >= kMaxWritePerFlush) {
      if (!write_waiting_) {
        event_add(write_ev_, nullptr);
        write_waiting_ = true;
      }
      return Status::OK();
    }
    size_t want = 0;
    ssize_t w = WriteOut(&want);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (tls_ && errno == EPROTO) return Status::Unavailable("TLS: " + tls_->error());
      if (errno != EAGAIN && errno != EWOULDBLOCK) return Status::Unavailable(Errno("send", errno));
      if (tls_write_waits_read_) return Status::OK();  // OnReadable flushes again
      w = 0;
    }
    // Draining releases references whose bytes have left (bulk release).
    evbuffer_drain(out_, static_cast<size_t>(w));
    written_ += static_cast<uint64_t>(w);
    flushed += static_cast<size_t>(w);
    if (static_cast<size_t>(w) < want) {
      if (!write_waiting_) {
        event_add(write_ev_, nullptr);
        write_waiting_ = true;
      }
      return Status::OK();
    }
  }
  return Status::OK();
}

ssize_t FrameConn::WriteOut(size_t* want) {
  evbuffer_iovec v[kMaxIov];
  if (tls_) {
    // One chunk, from its start: a TLS write that could not finish is
    // retried with the same bytes (or more), as OpenSSL requires.
    if (evbuffer_peek(out_, -1, nullptr, v, 1) < 1) return 0;
    *want = v[0].iov_len;
    tls_write_waits_read_ = false;
    ssize_t w = tls_->Write(v[0].iov_base, v[0].iov_len);
    if (w < 0 && errno == EAGAIN)
      tls_write_waits_read_ = tls_->wants() == TlsSession::Want::kRead;
    return w;
  }
  int n = std::min(evbuffer_peek(out_, -1, nullptr, v, kMaxIov), kMaxIov);
  iovec iov[kMaxIov];
  for (int i = 0; i < n; ++i) {
    iov[i].iov_base = v[i].iov_base;
    iov[i].iov_len = v[i].iov_len;
    *want += v[i].iov_len;
  }
  msghdr m{};
  m.msg_iov = iov;
  m.msg_iovlen = static_cast<size_t>(n);
  return sendmsg(fd_, &m, MSG_NOSIGNAL);
}

void FrameConn::OnReadable() {
  FrameConnGuard g(&guard_);
  if (tls_write_waits_read_ && !closed_) {
    Status st = FlushSome();
    if (!st.ok()) return Fail(std::move(st));
  }
  size_t budget = kMaxReadPerEvent;
  for (int i = 0; i < kMaxReadsPerEvent && !closed_ && budget > 0; ++i) {
    enum { kPayload, kHeader, kScratch } mode;
    char* dst;
    size_t want;
    const size_t left = payload_size_ - payload_got_;
    if (in_payload_ && !discard_ && (exact_reads_ || left >= kDirectReadMin)) {
      mode = kPayload, dst = payload_.get() + payload_got_, want = std::min(left, budget);
    } else if (!in_payload_ && (exact_reads_ || last_was_large_)) {
      // Exact header reads keep the handshake from over-reading, and after a
      // large frame they let the next large payload skip the scratch copy.
      mode = kHeader, dst = hdr_ + hdr_got_, want = kHeaderSize - hdr_got_;
    } else {
      mode = kScratch, dst = scratch_;
      want = exact_reads_ ? std::min(scratch_size_, left) : scratch_size_;
    }
    ssize_t n;
    if (tls_) {
      tls_read_waits_write_ = false;
      n = tls_->Read(dst, want);
      if (n < 0 && errno == EAGAIN && tls_->wants() == TlsSession::Want::kWrite) {
        tls_read_waits_write_ = true;
        if (!write_waiting_) {
          event_add(write_ev_, nullptr);
          write_waiting_ = true;
        }
      }
      if (n < 0 && errno == EPROTO) return Fail(Status::Unavailable("TLS: " + tls_->error()));
    } else {
      n = recv(fd_, dst, want, 0);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      return Fail(Status::Unavailable(Errno("recv", errno)));
    }
    if (n == 0) {
      return Fail(Status::Unavailable(in_payload_ || hdr_got_ ? "peer closed mid-frame"
                                                              : "peer closed the connection"));
    }
    const size_t got = static_cast<size_t>(n);
    budget -= std::min(budget, got);
    if (mode == kPayload) {
      if (cur_tagged_) MacIn(dst, got);
      payload_got_ += got;
      if (payload_got_ == payload_size_ && !FinishFrame(&g.destroyed)) return;
    } else if (mode == kHeader) {
      hdr_got_ += got;
      if (hdr_got_ == kHeaderSize) {
        hdr_got_ = 0;
        if (!StartPayload(&g.destroyed)) return;
      }
    } else if (!Consume(scratch_, got, &g.destroyed)) {
      return;
    }
    // The socket is drained; level-triggered reads resume later (TLS: one
    // record per read, so only once the session holds nothing either).
    if (got < want && !(tls_ && tls_->pending())) return;
  }
  // Out of budget with decrypted bytes left: the socket will not say so.
  if (tls_ && !closed_ && tls_->pending()) event_active(read_ev_, EV_READ, 0);
}

bool FrameConn::Consume(const char* p, size_t n, const bool* destroyed) {
  while (n > 0) {
    if (!in_payload_) {
      size_t c = std::min(n, kHeaderSize - hdr_got_);
      std::memcpy(hdr_ + hdr_got_, p, c);
      p += c, n -= c, hdr_got_ += c;
      if (hdr_got_ < kHeaderSize) return true;
      hdr_got_ = 0;
      if (!StartPayload(destroyed)) return false;
    } else {
      size_t c = std::min(n, payload_size_ - payload_got_);
      if (!discard_) std::memcpy(payload_.get() + payload_got_, p, c);
      if (cur_tagged_) MacIn(p, c);
      p += c, n -= c, payload_got_ += c;
      if (payload_got_ == payload_size_ && !FinishFrame(destroyed)) return false;
    }
  }
  return true;
}

bool FrameConn::StartPayload(const bool* destroyed) {
  FrameHeader h;
  Status st = DecodeHeader(hdr_, limits_, &h);
  if (!st.ok()) {
    Fail(Status::Unavailable("protocol violation from peer: " + st.message()));
    return false;
  }
  bool discard = false;
  st = handler_->OnHeader(h, &discard);
  if (!st.ok()) {
    Fail(std::move(st));
    return false;
  }
  // Every frame but a refusal carries a tag once keys exist.
  cur_tagged_ = mac_in_ && h.kind != FrameKind::kAuthFail;
  if (cur_tagged_) {
    st = mac_in_->Begin();
    if (st.ok()) st = mac_in_->Update(hdr_, kHeaderSize);
    if (!st.ok()) {
      Fail(Status::Internal("frame MAC: " + st.message()));
      return false;
    }
  }
  // Both lengths passed the limits above, so the sum cannot overflow; the
  // tag (if any) is read into the buffer's last bytes.
  const size_t size =
      static_cast<size_t>(h.body_len + h.bulk_len) + (cur_tagged_ ? kFrameTagSize : 0);
  cur_ = h;
  discard_ = discard;
  in_payload_ = true;
  payload_size_ = size;
  payload_got_ = 0;
  if (!discard && size > 0) {
    payload_.reset(new (std::nothrow) char[size]);
    if (!payload_) {
      Fail(Status::Unavailable("out of memory for a " + std::to_string(size) + "-byte frame"));
      return false;
    }
    uint64_t prev = g_largest_frame_alloc.load(std::memory_order_relaxed);
    while (size > prev && !g_largest_frame_alloc.compare_exchange_weak(prev, size)) {
    }
  }
  if (size == 0) return FinishFrame(destroyed);
  return true;
}

void FrameConn::MacIn(const char* p, size_t n) {
  const size_t data_end = payload_size_ - kFrameTagSize;
  size_t pos = payload_got_;
  if (pos < data_end) {
    const size_t c = std::min(n, data_end - pos);
    // A failure here leaves the frame unfinished, so its Check fails.
    mac_in_->Update(p, c).IgnoreError();
    p += c, n -= c, pos += c;
  }
  if (n > 0) std::memcpy(tag_in_.data() + (pos - data_end), p, n);
}

bool FrameConn::FinishFrame(const bool* destroyed) {
  in_payload_ = false;
  last_was_large_ = payload_size_ >= kDirectReadMin;
  size_t data_size = payload_size_;
  if (cur_tagged_) {
    cur_tagged_ = false;
    data_size -= kFrameTagSize;
    Status st = mac_in_->Check(tag_in_.data());
    if (!st.ok()) {
      // Forged, replayed, reordered or corrupted: nothing of it is used.
      if (stats_) stats_->frames_refused.fetch_add(1, std::memory_order_relaxed);
      char peer[64] = "?";
      sockaddr_storage ss{};
      socklen_t len = sizeof(ss);
      if (getpeername(fd_, reinterpret_cast<sockaddr*>(&ss), &len) == 0)
        getnameinfo(reinterpret_cast<sockaddr*>(&ss), len, peer, sizeof(peer), nullptr, 0,
                    NI_NUMERICHOST);
      spdlog::warn("pool transport: frame {} (kind {}) of a link from {} failed authentication "
                   "({}): forged, replayed or reordered; closing the link",
                   mac_in_->seq() - 1, static_cast<int>(cur_.kind), peer, st.ToString());
      Fail(Status::Unavailable("protocol violation from peer: frame failed authentication"));
      return false;
    }
  }
  if (discard_) {
    discard_ = false;
    return true;
  }
  FrameBuffer fb{std::move(payload_), data_size};
  payload_size_ = payload_got_ = 0;
  const FrameHeader h = cur_;  // the handler may destroy *this
  handler_->OnFrame(h, std::move(fb));
  return !*destroyed && !closed_;
}

void FrameConn::AbortOnClose() {
  if (fd_ < 0) return;
  linger l{1, 0};
  setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

void FrameConn::Fail(Status why) {
  if (closed_) return;
  closed_ = true;
  event_del(read_ev_);
  event_del(write_ev_);
  event_del(flush_ev_);
  tls_.reset();
  close(fd_);
  fd_ = -1;
  payload_.reset();
  // Release queued references before anyone hears of the failure: a
  // requester may free its bulk_in as soon as its callback runs.
  evbuffer_free(out_);
  out_ = nullptr;
  handler_->OnClosed(std::move(why));
}

}  // namespace kvpool::transport::tcp
