// One TCP socket carrying wire.h frames, driven by one lane's event loop.
// Internal to the TCP transport.
//
// Reading: headers are checked against WireLimits before the payload buffer
// is allocated; each frame's body+bulk land in one contiguous buffer. Large
// payloads are read straight from the socket into that buffer (one copy,
// kernel to user); small frames are read in batches through the lane's
// shared scratch buffer, so an idle connection holds no read buffer at all.
// During the handshake reads are exact (header, then body), so nothing past
// the handshake is consumed before the connection moves to another lane.
//
// Writing: frames are queued into an evbuffer (bulk by reference, no copy)
// and flushed with sendmsg(MSG_NOSIGNAL) once per loop iteration, so calls
// issued together leave in one syscall.
//
// TLS (pool-tls): with a session, every read and write goes through it (one
// branch per call); the TLS handshake runs inside the first reads and
// writes, before the frames of the pool's own handshake. Writes then go
// one evbuffer chunk per call instead of sendmsg's batch.
//
// Authentication (frame_mac.h): once EnableMac is called, every frame
// queued is followed by its tag (computed as its header, body and bulk are
// queued: the frame ends when QueueRef has supplied header.bulk_len bytes),
// and every frame received must end with a valid tag (computed as its bytes
// arrive, so skipped payloads are checked too). A frame that fails closes
// the connection with a logged protocol violation. kAuthFail is the only
// kind received untagged: the acceptor refuses before any key exists.
//
// All methods run on the lane's thread. The Handler may destroy the
// FrameConn from inside any of its callbacks.
#pragma once

#include <event2/buffer.h>
#include <event2/event.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "storage/transport/tls.h"
#include "storage/transport/frame_mac.h"
#include "storage/transport/wire.h"
#include "storage/util/status.h"

namespace kvpool::transport::tcp {

struct FrameConnGuard;

// A received frame's payload: body, then inline bulk, contiguous.
struct FrameBuffer {
  std::unique_ptr<char[]> data;
  size_t size = 0;
};

// Largest single payload buffer allocated so far (tests check that a hostile
// length never reaches the allocator).
extern std::atomic<uint64_t> g_largest_frame_alloc;

// Counters shared by the FrameConns of one transport (any thread reads them).
struct FrameStats {
  std::atomic<uint64_t> frames_sent{0};     // frames queued (handshake ones too)
  std::atomic<uint64_t> frames_tagged{0};   // of those, followed by a MAC tag
  std::atomic<uint64_t> frames_refused{0};  // received ones failing their tag (link closed)
};

class FrameConn {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    // A header passed DecodeHeader. OK to receive its payload (or OK with
    // *discard = true to skip it unread); an error closes the connection.
    // Must not destroy the FrameConn.
    virtual Status OnHeader(const FrameHeader& h, bool* discard) = 0;
    virtual void OnFrame(const FrameHeader& h, FrameBuffer payload) = 0;
    // The connection failed (EOF, socket error, protocol violation). The
    // socket is already closed and queued bulk references released.
    virtual void OnClosed(Status why) = 0;
  };

  // Takes ownership of `fd` (non-blocking; still connecting if `connecting`).
  // `scratch` is the lane's shared read buffer. With `tls`, the socket
  // speaks TLS through that session (made for this fd).
  static StatusOr<std::unique_ptr<FrameConn>> Create(event_base* base, int fd, bool connecting,
                                                     WireLimits limits, char* scratch,
                                                     size_t scratch_size, Handler* handler,
                                                     std::shared_ptr<TlsSession> tls = nullptr);
  ~FrameConn();
  FrameConn(const FrameConn&) = delete;
  FrameConn& operator=(const FrameConn&) = delete;

  // Where this connection counts its frames (null: nowhere); must outlive it.
  void set_stats(FrameStats* stats) { stats_ = stats; }
  // After the handshake: real limits, batched reads.
  void SetReady(WireLimits limits);
  // From the next frame on, frames sent are tagged with `send` and frames
  // received must carry `recv`'s tags (sequence numbers start at 0).
  Status EnableMac(const FrameKey& send, const FrameKey& recv);

  // Queues a header (body_len set from body) and the body.
  void QueueFrame(FrameHeader h, std::string body);
  // Queues bulk bytes by reference (a range under 1 KiB is copied at once).
  // cleanup(data, len, arg) runs when they have been written or copied, or
  // the connection is gone (possibly at once: copied, or closed).
  void QueueRef(const void* data, size_t len, evbuffer_ref_cleanup_cb cleanup, void* arg);
  // Writes what it can now (used right before closing deliberately).
  void FlushNow();
  // Closing will reset the connection (SO_LINGER 0): bytes not yet
  // delivered to the peer are dropped, never delivered later.
  void AbortOnClose();
  // Reads what the socket holds now, as a readable event would (the
  // handler's callbacks may destroy this).
  void ReadNow() { OnReadable(); }

  // Hands the socket over (to another lane) and leaves this object inert.
  // -1 if input or output is mid-frame. Its TLS session (if any) goes with
  // it: take tls() first; bytes the session already decrypted stay in it.
  int Detach();
  const std::shared_ptr<TlsSession>& tls() const { return tls_; }

  bool closed() const { return closed_; }
  // Bytes ever queued / written: a call's bytes have left once written()
  // reaches the queued() value recorded after queuing them.
  uint64_t queued() const { return queued_; }
  uint64_t written() const { return written_; }

 private:
  FrameConn(event_base* base, int fd, bool connecting, WireLimits limits, char* scratch,
            size_t scratch_size, Handler* handler);
  static void ReadCb(evutil_socket_t, short, void* arg);
  static void WriteCb(evutil_socket_t, short, void* arg);
  static void FlushCb(evutil_socket_t, short, void* arg);
  void OnReadable();
  void OnWritable();
  void ScheduleFlush();
  Status FlushSome();
  // FlushSome's write of what out_ holds: sendmsg, or one chunk through
  // TLS. Bytes written, or -1 with errno.
  ssize_t WriteOut(size_t* want);
  // Feeds received bytes to the parser; false if this object was destroyed
  // or closed meanwhile.
  bool Consume(const char* p, size_t n, const bool* destroyed);
  bool StartPayload(const bool* destroyed);
  bool FinishFrame(const bool* destroyed);
  void Fail(Status why);
  // MAC of queued frames: header and body, then the bulk as it is queued.
  void MacOutStart(const char* hdr, const std::string& body, uint64_t bulk_len);
  void MacOut(const void* data, size_t len);
  // Received payload bytes at payload_got_: MAC'd, or the tag's bytes.
  void MacIn(const char* p, size_t n);

  event_base* base_;
  int fd_;
  std::shared_ptr<TlsSession> tls_;  // null = plaintext
  bool tls_write_waits_read_ = false;  // retried on the next readable event
  bool tls_read_waits_write_ = false;  // retried on the next writable event
  bool connecting_;
  bool exact_reads_ = true;  // until SetReady
  WireLimits limits_;
  char* scratch_;
  size_t scratch_size_;
  Handler* handler_;
  FrameStats* stats_ = nullptr;
  event* read_ev_ = nullptr;
  event* write_ev_ = nullptr;
  event* flush_ev_ = nullptr;
  evbuffer* out_ = nullptr;
  bool flush_scheduled_ = false;
  bool write_waiting_ = false;
  bool closed_ = false;
  // Innermost running callback's guard; the destructor marks the chain so
  // no callback touches a dead object.
  FrameConnGuard* guard_ = nullptr;

  // Parser state.
  char hdr_[kHeaderSize];
  size_t hdr_got_ = 0;
  bool in_payload_ = false;
  bool discard_ = false;
  bool last_was_large_ = false;
  FrameHeader cur_;
  std::unique_ptr<char[]> payload_;
  size_t payload_size_ = 0;
  size_t payload_got_ = 0;

  uint64_t queued_ = 0;
  uint64_t written_ = 0;

  // Authentication (EnableMac).
  std::unique_ptr<FrameMac> mac_out_;
  std::unique_ptr<FrameMac> mac_in_;
  uint64_t out_bulk_left_ = 0;  // bulk bytes of the frame being queued still to come
  bool out_in_frame_ = false;   // its tag is not queued yet
  bool cur_tagged_ = false;     // the frame being received ends with a tag
  FrameTag tag_in_{};
  Status deferred_;  // a MAC failure while queuing; closes at the next flush
};

}  // namespace kvpool::transport::tcp
