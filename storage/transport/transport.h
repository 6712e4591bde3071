// Node-to-node transport: small two-sided messages plus one-sided movement
// of bulk bytes (values), behind one interface chosen at run time.
//
// The model is RDMA's: a requester sends a call (an opcode and a small
// body) and names up to two bulk regions of its own memory:
//   - bulk_in: bytes the owner may READ (values of a put);
//   - bulk_out: room the owner may WRITE into (values of a get).
// The owner handles the call with IncomingCall: ReadBulk() pulls ranges of
// bulk_in into its own memory (RDMA READ straight into the segment),
// WriteBulk() pushes bytes into bulk_out (RDMA WRITE straight from the
// segment), and Reply() answers. Every WriteBulk is visible to the requester
// before the reply is. The TCP transport carries the same calls with bulk
// bytes inline; the pool layer above cannot tell them apart.
//
// Threading: a Transport serves a fixed set of event loops ("lanes", one per
// I/O thread). Call() must be invoked on the lane's thread, and its callback
// runs there. Incoming calls are handled on one lane of the owner (for TCP:
// the requester's lane index modulo the owner's lane count); the
// IncomingCall's methods, its done/release callbacks and its destruction all
// happen on that lane's thread. counters(), Counters() and peer_up() may be
// called from any thread.
//
// Lifetime: StopLane(i) releases everything the transport holds on lane i's
// event base. Destroy the Transport after StopLane ran on every lane, or
// after the lanes' loops have exited but before their bases are freed.
// libevent must be made thread-safe (evthread_use_pthreads()) before the
// bases are created.
#pragma once

#include <event2/event.h>
#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/transport/tls.h"
#include "storage/util/status.h"

namespace kvpool::transport {

struct PeerAddress {
  std::string host;
  int port = 0;  // the peer's pool port
};

struct TransportOptions {
  int self = 0;                     // this node's index in peers
  std::vector<PeerAddress> peers;   // every node, this one included
  std::string bind_host;            // where to listen for peers ("" = 127.0.0.1)
  int listen_port = 0;              // this node's pool port
  std::string secret;               // pool-secret (HMAC key; never sent)
  // pool-tls (TCP only): every link is a TLS session from this context,
  // made with Role::kPeer, so both sides verify each other's certificate.
  // Null = plaintext. A peer that does not speak TLS cannot connect.
  std::shared_ptr<const TlsContext> tls;
  uint64_t max_body = 64u << 20;    // largest call/reply body accepted
  uint64_t max_bulk = 1ull << 30;   // largest bulk region accepted per call
  // RDMA: staging buffers (registered once) per lane and their size.
  size_t staging_bytes = 4u << 20;
  int staging_buffers = 8;
  std::string rdma_device;          // empty = first active
  int rdma_port = 1;
  int rdma_gid_index = -1;          // -1 = pick automatically
  int rdma_queue_depth = 128;
  // Memory a transport may register once for one-sided access (the
  // segment): WriteBulk sources and ReadBulk destinations inside it move
  // without a bounce copy. Must outlive the transport.
  struct Region {
    void* base;
    size_t len;
  };
  std::vector<Region> regions;
};

using ReleaseFn = void (*)(void*);

// One call received from a peer. Owned by the handler until Reply() (which
// consumes it). Destroying it without Reply() answers with an error: the
// requester's callback gets kInternal "kvpool: call dropped" at once.
class IncomingCall {
 public:
  virtual ~IncomingCall() = default;
  virtual uint16_t opcode() const = 0;
  virtual std::string_view body() const = 0;
  virtual int peer() const = 0;
  // The lane (I/O thread) this call is handled on.
  virtual int lane() const = 0;
  virtual size_t bulk_in_size() const = 0;
  virtual size_t bulk_out_capacity() const = 0;

  // Copies bulk_in[offset, offset+len) into dst (which must stay valid and
  // untouched until done runs). done runs on this lane, possibly at once.
  // Call it before Reply: once the requester has its reply it may reuse the
  // memory behind bulk_in (rdma: kInvalidArgument after Reply).
  virtual void ReadBulk(size_t offset, size_t len, char* dst,
                        std::function<void(Status)> done) = 0;
  // Appends [src, src+len) to bulk_out at its next free offset, returned in
  // *offset. src must stay valid until release(ctx) is called (after the
  // bytes have left, or the call or link is gone; possibly before Reply
  // returns). release (may be null) runs on this lane and must not call into
  // the transport. kInvalidArgument if it does not fit the capacity (nothing
  // is recorded then, and release is not called).
  virtual Status WriteBulk(const char* src, size_t len, ReleaseFn release, void* ctx,
                           size_t* offset) = 0;
  // Sends the reply; the call is finished. Bytes written by WriteBulk are
  // in place at the requester before it sees the reply. A body over max_body
  // is answered as an error instead. If the requester is gone (link lost,
  // lane stopped), this does nothing but release the WriteBulk ranges.
  virtual void Reply(std::string body) = 0;
};

using CallHandler = std::function<void(std::unique_ptr<IncomingCall>)>;

struct CallArgs {
  uint16_t opcode = 0;
  std::string body;
  // Bytes the owner may read; must stay valid until the callback runs.
  std::vector<iovec> bulk_in;
  // Room the owner may write into.
  size_t bulk_out_capacity = 0;
  // A write the owner applies whenever it arrives (it orders it then). If
  // the call times out, the link to the peer is reset, so a request still
  // on its way (queued behind a partition, say) is dropped rather than
  // applied after the caller was told it failed, over newer writes. The
  // other calls on that link then fail with kUnavailable.
  bool reset_on_timeout = false;
};

// What the owner wrote into a call's bulk_out, as the callback sees it: a
// view valid during the callback (a callback may take it as a
// std::string_view). Keep() makes the bytes outlive the callback, for a
// caller that would otherwise copy them out: over TCP it takes over the
// buffer the reply frame was received into (no copy); where the bytes sit
// in memory the transport reuses (an RDMA staging buffer) it copies them
// once. After Keep(), view() is where they are kept.
class BulkOut {
 public:
  BulkOut() = default;
  // Bytes in memory the transport reuses after the callback.
  BulkOut(std::string_view bytes) : bytes_(bytes) {}  // NOLINT: implicit, as a view
  // Bytes inside `*buffer`, which Keep() may take from its owner.
  BulkOut(std::string_view bytes, std::unique_ptr<char[]>* buffer)
      : bytes_(bytes), buffer_(buffer) {}

  std::string_view view() const { return bytes_; }
  operator std::string_view() const { return bytes_; }  // NOLINT: implicit
  size_t size() const { return bytes_.size(); }
  const char* data() const { return bytes_.data(); }

  // Keeps the bytes alive for as long as the returned pointer (or a copy of
  // it) lives; may be called more than once.
  std::shared_ptr<const void> Keep();

 private:
  std::string_view bytes_;
  std::unique_ptr<char[]>* buffer_ = nullptr;
  std::shared_ptr<const void> kept_;
};

// status: OK with the reply, or kUnavailable (peer down / link lost),
// kTimeout, kPermissionDenied (authentication failed), kInvalidArgument
// (bad lane/peer, body over max_body, bulk over max_bulk or, for rdma, over
// max_bulk_per_call), kInternal (the owner dropped the call). `bulk_out`
// holds what the owner wrote, contiguous (valid only during the callback
// unless kept: BulkOut::Keep); `reply` is valid only during the callback.
using CallDone = std::function<void(Status status, std::string_view reply, BulkOut bulk_out)>;

struct PeerCounters {
  std::atomic<uint64_t> calls{0};       // calls this node made to the peer
  std::atomic<uint64_t> errors{0};      // of those, how many did not end OK
  std::atomic<uint64_t> bytes_out{0};   // bulk bytes this node sent to the peer
  std::atomic<uint64_t> bytes_in{0};    // bulk bytes received from the peer
  std::atomic<uint64_t> rdma_reads{0};  // one-sided operations posted (rdma only)
  std::atomic<uint64_t> rdma_writes{0};
};

// Connections to this node's pool port turned away before they
// authenticated (INFO pool): from a host not in pool-nodes, and pending
// handshakes closed or rejected to keep within their bounds.
struct ListenCounters {
  std::atomic<uint64_t> refused_sources{0};
  std::atomic<uint64_t> dropped_handshakes{0};
};

// One of a transport's own counters (Transport::Counters): INFO pool shows
// it as pool_transport_<name>, /metrics as kvpool_pool_transport_<name>_total.
struct TransportCounter {
  std::string name;    // [a-z][a-z0-9_]* (IsTransportCounterName)
  std::string help;    // one line, for the metric's HELP
  uint64_t value = 0;  // only ever grows
};

// Whether `name` may name a TransportCounter: non-empty, [a-z][a-z0-9_]*,
// at most 64 bytes.
bool IsTransportCounterName(std::string_view name);

class Transport {
 public:
  virtual ~Transport() = default;

  // "tcp" or "rdma".
  virtual const char* name() const = 0;
  // Listens for peers; incoming calls go to `handler` on their lane.
  // `lanes` are the event loops this transport may use (index = lane).
  [[nodiscard]] virtual Status Start(std::vector<event_base*> lanes, CallHandler handler) = 0;
  // Stops listening and fails every pending call with kUnavailable. Each
  // lane's part must run on its thread: call StopLane(i) from lane i.
  virtual void StopLane(int lane) = 0;

  // Sends a call to `peer` on `lane` (must be that lane's thread). done runs
  // exactly once on this lane: later, or before Call returns when the call
  // fails at once (no link to the peer and it cannot be opened, bad args).
  // The link to a peer is opened (and authenticated) on first use and
  // re-opened after it breaks; calls in flight on a broken link fail with
  // kUnavailable, calls past timeout_ms with kTimeout (a late reply is
  // dropped). timeout_ms <= 0: no timer (the call ends with its reply or its
  // link). After a failed connect or handshake, Calls to that peer on that
  // lane fail at once with the same status for a short backoff (~100 ms).
  virtual void Call(int lane, int peer, CallArgs args, int timeout_ms, CallDone done) = 0;

  // Per-peer counters (INFO pool).
  virtual const PeerCounters& counters(int peer) const = 0;
  // The most bulk bytes (bulk_in or bulk_out) one call should carry; larger
  // payloads are split by the caller (the size of an RDMA staging buffer;
  // larger for TCP, where bulk travels inline).
  virtual size_t max_bulk_per_call() const = 0;
  // False while the last attempt to open a link to `peer` (any lane) failed
  // and none has succeeded since; true otherwise, including before any
  // attempt. A hint for INFO and routing, not a failure detector.
  virtual bool peer_up(int peer) const = 0;
  // This node's pool port (INFO pool); any thread.
  virtual const ListenCounters& listen_counters() const = 0;
  // The transport's own counters, under its own names (TCP: frames and
  // their MAC; RDMA: RdmaStats), in a fixed order; any thread.
  virtual std::vector<TransportCounter> Counters() const = 0;
};

// Builds the TCP transport. The RDMA one lives in a plugin the server loads
// only when asked for (rdma_plugin.h; rdma_transport.h for its own tests).
[[nodiscard]] StatusOr<std::unique_ptr<Transport>> CreateTcpTransport(const TransportOptions& o);

}  // namespace kvpool::transport
