// Internals of the RDMA transport, shared by rdma_transport.cc (lanes,
// listener, hand-off), rdma_conn.cc (one RC QP: setup, credits, posting,
// completions, teardown), rdma_outlink.cc (calls we make), rdma_incoming.cc
// (calls we serve) and rdma_pools.cc (registered buffers). Not a public
// header.
//
// Threads: every object is touched only on its lane's thread, except
// Lane::inbox (lane 0 hands accepted rdma_cm ids to other lanes through it),
// the counters and the peer_up flags (atomics).
//
// Ownership: RdmaTransport owns the Device (PD), the region MRs and the
// Lanes. A Lane owns its channels, its registered pools, one OutLink per
// peer and the InConns handed to it. OutLink and InConn each own the Conn
// (shared_ptr) of their QP; a closed Conn is parked in Lane::graveyard until
// the stack that closed it has unwound. IncomingCalls hold a weak_ptr to
// their Conn, so they may outlive it (and the transport).
#pragma once

#include <event2/event.h>
#include <sys/socket.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "storage/transport/auth.h"
#include "storage/transport/outlink_base.h"
#include "storage/transport/rdma_seg_mac.h"
#include "storage/transport/rdma_transport.h"
#include "storage/transport/rdma_verbs.h"
#include "storage/transport/rdma_wire.h"
#include "storage/transport/transport.h"
#include "storage/transport/wire.h"

namespace kvpool::transport::rdma {

class RdmaTransport;
class Conn;
class OutLink;
struct Lane;
struct OutCall;

// Before authentication only handshake frames are accepted: tiny bodies, no
// bulk, one segment each.
inline constexpr WireLimits kHandshakeLimits{256, 0};

bool IsWildcard(const sockaddr_storage& ss);

// ---- registered buffers (rdma_pools.cc) ----

// `count` equal buffers carved from one mapping, one MR each: an rkey covers
// one buffer, so a peer writing past a call's capacity faults (remote access
// error, the QP breaks) instead of landing in another call's buffer.
class BufferPool {
 public:
  Status Init(ibv_pd* pd, int count, size_t size, int access, const std::string& what);
  int Take();  // -1 if none is free
  void Give(int i);
  int free_count() const { return static_cast<int>(free_.size()); }
  size_t size() const { return size_; }
  char* data(int i) const { return mem_.data() + static_cast<size_t>(i) * size_; }
  uint32_t lkey(int i) const { return mrs_[i]->lkey; }
  uint32_t rkey(int i) const { return mrs_[i]->rkey; }

 private:
  Mapping mem_;  // unmapped after the MRs (declared first)
  std::vector<Mr> mrs_;
  std::vector<int> free_;
  size_t size_ = 0;
};

// A connection's message memory: `slots` buffers of kMsgBytes, receive
// slots first, then send slots.
struct MsgBlock {
  Mapping mem;
  Mr mr;
  char* slot(int i) const { return mem.data() + static_cast<size_t>(i) * kMsgBytes; }
};

// Message blocks of one lane, registered at Start for the connections a lane
// normally holds; one more is registered only when a lane holds more
// connections at once than ever before (never per call). Blocks are reused.
class MsgBlockPool {
 public:
  Status Init(ibv_pd* pd, int slots, int prealloc);
  StatusOr<MsgBlock*> Take(RdmaStats* stats);
  void Give(MsgBlock* b) { free_.push_back(b); }

 private:
  StatusOr<std::unique_ptr<MsgBlock>> Make();
  ibv_pd* pd_ = nullptr;
  int slots_ = 0;
  std::vector<std::unique_ptr<MsgBlock>> all_;
  std::vector<MsgBlock*> free_;
};

// ---- one RC queue pair (rdma_conn.cc) ----

// A copy of an rdma_cm event, taken before it is acked.
struct CmEvent {
  rdma_cm_event_type type{};
  int status = 0;
  rdma_cm_id* id = nullptr;
  rdma_cm_id* listen_id = nullptr;
  void* context = nullptr;  // id->context
  uint8_t responder_resources = 0;
  uint8_t initiator_depth = 0;
  std::string private_data;
};

// What a one-sided op or a message does when its covering completion
// arrives: ok is false if the connection died first (the QP is destroyed by
// then, so the memory involved is no longer touched).
using WrDone = std::function<void(bool ok)>;

class ConnOwner {
 public:
  virtual ~ConnOwner() = default;
  // Active side: the QP is ready to send (RTS, RTU sent); the handshake may start.
  virtual void OnConnected(Conn* c) = 0;
  // A header that passed DecodeHeader. OK to receive its body (or OK with
  // *discard to drop it); an error closes the connection with it.
  virtual Status OnHeader(Conn* c, const FrameHeader& h, bool* discard) = 0;
  virtual void OnMessage(Conn* c, const FrameHeader& h, const CallDesc& d, std::string body) = 0;
  // Once, unless the owner closed it: the QP is destroyed and every queued
  // or posted WR's WrDone has run.
  virtual void OnClosed(Conn* c, const Status& why) = 0;
};

// One RC QP and its rdma_cm id, driven by its lane's channels.
//
// Sending: messages and one-sided ops go through one FIFO, so an owner's
// WRITEs precede its reply on the QP (RC executes them in order: the bytes
// are in place before the reply's RECV completes at the requester). The
// FIFO is drained into the send queue at most once per loop iteration
// (several WRs per doorbell) under three limits:
//   - SQ room: posted minus known-completed WRs <= depth. Completions are
//     in order, so a signaled WR completing retires every WR before it;
//     a WR is signaled if it is a READ (its data is awaited), the last of a
//     post, or depth/2 WRs follow the last signaled one. Nothing can then
//     overflow the SQ, and every WR's action runs promptly.
//   - credits: a SEND consumes one of the peer's posted receive buffers.
//     Every SEND returns ours (re-posted since the last SEND); with nothing
//     to send, a credit-only SEND goes out once depth/4 are owed. Data
//     needs 2 credits, a credit-only SEND 1, so the two sides can never both
//     be stuck holding the other's credits. RNR never happens.
//   - send slots: a SEND's registered slot is free once its completion is
//     known.
// The CQ (one per QP, on the lane's completion channel) holds depth send +
// depth receive completions, which bounds what it can ever contain.
class Conn : public std::enable_shared_from_this<Conn> {
 public:
  enum class Role { kOut, kIn };

  Conn(Lane* lane, ConnOwner* owner, Role role, int peer);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  // kOut: starts address resolution; the rest follows from cm events.
  Status Connect(const sockaddr* src, const sockaddr* dst, const ConnRequest& req);
  // kIn: takes ownership of `id` (already on this lane's event channel),
  // builds the QP (to RTS) and accepts. On error the request is rejected.
  Status Accept(rdma_cm_id* id, const ConnRequest& req, uint8_t responder_resources,
                uint8_t initiator_depth);

  void OnCmEvent(const CmEvent& ev);
  void OnCqEvent();

  // Queues a frame; `h.body_len` is set from body. `sent` (may be null)
  // runs once the whole message has left (or the connection died).
  void QueueMessage(FrameHeader h, const CallDesc* d, std::string body, WrDone sent = nullptr);
  void QueueRead(char* local, uint32_t lkey, uint64_t remote, uint32_t rkey, uint32_t len,
                 WrDone done);
  void QueueWrite(const char* local, uint32_t lkey, uint64_t remote, uint32_t rkey, uint32_t len,
                  WrDone done);
  // After authentication: the real limits.
  void SetLimits(WireLimits l) { limits_ = l; }
  // Segment MACs (rdma_seg_mac.h). Segments built after everything queued
  // so far carry tags under `key`: the switch keeps its place on the wire.
  void QueueSendKey(const FrameKey& key);
  // Received segments must be tagged under `key` from the next one on
  // (Require), or from the first tagged one on (Arm).
  Status RequireRecvKey(const FrameKey& key) { return opener_.Require(key); }
  Status ArmRecvKey(const FrameKey& key) { return opener_.Arm(key); }
  // Received segments are authenticated (required and, so far, valid).
  bool recv_authenticated() const { return opener_.on(); }

  // Idempotent. Moves the QP to error, rdma_disconnects (so the peer hears of
  // it at once), destroys QP → CQ, runs every pending WrDone with false,
  // destroys the cm_id; then tells the owner if `notify`.
  void Close(const Status& why, bool notify = true);

  bool closed() const { return closed_; }
  Lane* lane() const { return lane_; }
  int peer() const { return peer_; }
  Role role() const { return role_; }

 private:
  enum class OpKind : uint8_t { kMessage, kRead, kWrite, kSendKey };
  struct Op {
    OpKind kind = OpKind::kMessage;
    FrameKey key{};  // kSendKey
    // kMessage
    FrameHeader h;
    bool has_desc = false;
    CallDesc desc;
    std::string body;
    size_t off = 0;  // body bytes already in posted segments
    bool started = false;
    // kRead / kWrite
    uint64_t local = 0;
    uint32_t lkey = 0;
    uint64_t remote = 0;
    uint32_t rkey = 0;
    uint32_t len = 0;
    WrDone done;  // kMessage: the `sent` callback
  };
  struct Inflight {
    uint64_t seq;
    int slot;  // send slot to free, or -1
    WrDone done;
  };

  Status SetupQp(int access);
  Status ToRts(uint8_t responder_resources, uint8_t initiator_depth);
  Status PostRecvs(const int* slots, size_t n);
  void Queue(Op op);
  void ScheduleFlush();
  void Flush();
  void Poll();
  void HandleWc(const ibv_wc& wc);
  void CompleteSends(uint64_t seq, bool ok);
  // Builds the next SEND in a free send slot (a message's next segment, or
  // credits only with `op` null); its slot and length, or an error.
  StatusOr<std::pair<int, uint32_t>> BuildSegment(SegType type, Op* op);
  // Parses one received segment; false if the connection was closed.
  bool OnRecv(int slot, uint32_t len);
  void Deliver();
  static void FlushCb(evutil_socket_t, short, void* arg);
  static void PollCb(evutil_socket_t, short, void* arg);

  Lane* lane_;
  ConnOwner* owner_;
  const Role role_;
  const int peer_;
  const int depth_;  // receive slots = send slots = SQ depth
  int qp_access_ = 0;
  bool closed_ = false;
  bool cm_connected_ = false;  // accepted / established: rdma_disconnect on close
  ConnRequest req_;            // kOut: what we ask for

  // Teardown order QP → CQ → cm_id: members are destroyed in reverse.
  CmId id_;
  Cq cq_;
  Qp qp_;
  MsgBlock* block_ = nullptr;

  int credits_ = 0;  // peer receive buffers we may still fill
  int peer_depth_ = 0;
  int to_return_ = 0;            // our receive buffers re-posted, not yet reported
  std::vector<int> free_slots_;  // send slots (0-based; slot index depth_ + i)
  std::vector<int> repost_;      // receive slots consumed in this poll
  uint64_t next_seq_ = 1;        // next send WR sequence number
  uint64_t done_seq_ = 0;        // every send WR <= this has completed
  int unsignaled_ = 0;
  ibv_wc_status first_error_ = IBV_WC_SUCCESS;
  std::deque<Inflight> inflight_;
  std::deque<Op> fifo_;

  WireLimits limits_ = kHandshakeLimits;
  SegSealer sealer_;
  SegOpener opener_;
  bool assembling_ = false;
  bool discard_ = false;
  FrameHeader cur_;
  CallDesc cur_desc_;
  std::string cur_body_;
  size_t cur_got_ = 0;

  event* flush_ev_ = nullptr;
  event* poll_ev_ = nullptr;
  bool flush_scheduled_ = false;
};

// ---- the requester's side (rdma_outlink.cc) ----

struct OutCall final : PendingCall {
  int timeout_ms = 0;
  uint16_t opcode = 0;
  std::string body;
  std::vector<iovec> bulk_in;
  size_t in_len = 0;
  size_t cap = 0;
  // Staging: `need` buffers; bulk_in at in_buf[0, in_len), bulk_out at
  // out_buf[out_off, out_off + cap) (the same buffer when both fit).
  int need = 0;
  int in_buf = -1;
  int out_buf = -1;
  size_t out_off = 0;
  std::array<int, 2> held{-1, -1};
  bool waiting = false;  // in Lane::staging_waiters
  std::list<OutCall*>::iterator wait_it;
  // kStaging: waiting for buffers; kConn: waiting for the link; kSent: on
  // the wire; kZombie: timed out after it was sent, buffers quarantined.
  enum class State { kStaging, kConn, kSent, kZombie } state = State::kStaging;
};

// Calls from one lane to one peer over one QP, opened on demand.
class OutLink final : public OutLinkBase, public ConnOwner {
 public:
  OutLink(RdmaTransport* t, Lane* lane, int peer);
  ~OutLink() override;
  void Call(CallArgs args, int timeout_ms, CallDone done);
  // The lane granted `c` its staging buffers.
  void OnStaging(OutCall* c);

  void OnConnected(Conn* c) override;
  Status OnHeader(Conn* c, const FrameHeader& h, bool* discard) override;
  void OnMessage(Conn* c, const FrameHeader& h, const CallDesc& d, std::string body) override;
  void OnClosed(Conn* c, const Status& why) override;

 private:
  bool connected() const override { return conn_ != nullptr; }
  Status Open() override;
  // Drops the connection (QP destroyed first, so staging buffers are safe to
  // reuse) and fails every call with `why`; with `backoff`, Calls fail fast
  // with `why` for the reconnect backoff.
  void Fail(Status why, bool backoff) override;
  void OnTimeout(PendingCall* p) override;
  void SendHandshake(FrameHeader h, std::string body) override;
  void TrySend(OutCall* c);
  void Send(OutCall* c);
  void Finish(std::unique_ptr<OutCall> c, const Status& st, std::string_view reply,
              BulkOut bulk);
  void Release(OutCall* c);

  RdmaTransport* t_;
  Lane* lane_;
  std::shared_ptr<Conn> conn_;
  bool ready_ = false;
};

// ---- the owner's side (rdma_incoming.cc) ----

// One accepted connection: its handshake, then the calls it delivers.
class InConn final : public ConnOwner {
 public:
  InConn(RdmaTransport* t, Lane* lane, const ConnRequest& req);
  ~InConn() override;
  // Builds the QP and accepts; on error the request is rejected (and `id`
  // destroyed).
  Status Start(rdma_cm_id* id, uint8_t responder_resources, uint8_t initiator_depth);
  void Close();

  void OnConnected(Conn*) override {}
  Status OnHeader(Conn* c, const FrameHeader& h, bool* discard) override;
  void OnMessage(Conn* c, const FrameHeader& h, const CallDesc& d, std::string body) override;
  void OnClosed(Conn* c, const Status& why) override;

 private:
  // Sends AUTH_FAIL, closes once it has left (or at the handshake timeout).
  void Reject(const std::string& why);
  void EndHandshake();
  static void TimeoutCb(evutil_socket_t, short, void* arg);

  RdmaTransport* t_;
  Lane* lane_;
  ConnRequest req_;
  std::shared_ptr<Conn> conn_;
  std::optional<auth::ServerHandshake> hs_;
  enum class State { kHello, kProof, kReady, kRejected } state_ = State::kHello;
  bool counted_ = false;  // in Lane::pending_handshakes
  event* timer_ = nullptr;
};

// ---- lanes (rdma_transport.cc) ----

struct Handoff {
  rdma_cm_id* id;
  ConnRequest req;
  uint8_t responder_resources;
  uint8_t initiator_depth;
};

enum class StagingGrant { kGranted, kQueued, kFull };

struct Lane {
  Lane(RdmaTransport* t, int index, event_base* base) : t(t), index(index), base(base) {}
  ~Lane();

  // Staging buffers (requester side).
  StagingGrant RequestStaging(OutCall* c);
  void CancelStaging(OutCall* c);
  void ReturnStaging(OutCall* c);
  // Bounce buffers (owner side): fn(index) once one is free, or fn(-1) if
  // the lane stops first. May run fn before returning.
  void AcquireBounce(std::function<void(int)> fn);
  void ReleaseBounce(int i);
  // A closed connection / finished InConn, freed once the stack has unwound.
  void Bury(std::shared_ptr<Conn> c);
  void Bury(std::unique_ptr<InConn> c);
  void RemoveIncoming(InConn* c);

  void OnCmReadable();
  void OnCompReadable();

  RdmaTransport* const t;
  const int index;
  event_base* const base;
  bool stopped = false;

  // Verbs objects in teardown order (rdma_verbs.h): C++ destroys members in
  // reverse, so the event channel (declared first) goes last.
  EventChannel cm;
  CmId listener;  // lane 0
  MsgBlockPool msgs;
  BufferPool bounce;
  BufferPool staging;
  CompChannel comp;

  event* cm_ev = nullptr;
  event* comp_ev = nullptr;
  event* reap = nullptr;  // graveyard non-empty

  std::list<OutCall*> staging_waiters;
  std::deque<std::function<void(int)>> bounce_waiters;
  bool bounce_draining = false;
  int pending_handshakes = 0;

  Inbox<Handoff> inbox;  // filled by lane 0, closed by StopLane

  // Destroyed first (declared last): they hold the connections.
  std::vector<std::shared_ptr<Conn>> graveyard;
  std::vector<std::unique_ptr<InConn>> dead_in;
  std::unordered_map<InConn*, std::unique_ptr<InConn>> incoming;
  std::vector<std::unique_ptr<OutLink>> links;  // by peer index

 private:
  void AssignStaging(OutCall* c);
  void PumpStaging();
};

class RdmaTransport final : public LanedTransport<Lane> {
 public:
  RdmaTransport(const TransportOptions& o, const RdmaTuning& tuning, std::unique_ptr<Device> dev);
  ~RdmaTransport() override;

  const char* name() const override { return "rdma"; }
  size_t max_bulk_per_call() const override { return o_.staging_bytes; }

  const RdmaTuning& tuning() const { return tuning_; }
  const Device& dev() const { return *dev_; }
  RdmaStats& stats() const { return stats_; }
  std::vector<TransportCounter> Counters() const override { return RdmaCounters(stats_); }
  // The region MR holding all of [p, p+len), or null.
  const ibv_mr* FindRegion(const void* p, size_t len) const;

  // Lane 0: a peer asks to connect (ev.id is new and ours).
  void OnConnectRequest(const CmEvent& ev);
  // On lane `l`'s thread: build the InConn for a handed-off request.
  void Adopt(Lane& l, const Handoff& h);

 private:
  Status StartLanes(const std::vector<event_base*>& bases) override;
  void StopLaneImpl(Lane& l) override;
  void ForgetStart() override { regions_.clear(); }
  // Over max_bulk_per_call: the caller must split it.
  Status CheckBulk(int peer, uint64_t bulk, const CallArgs& args) override;
  static void WakeCb(evutil_socket_t, short, void* arg);

  const RdmaTuning tuning_;
  mutable RdmaStats stats_;
  PeerAllowlist allowlist_;     // the hosts of peers; set in StartLanes
  bool refusal_logged_ = false;  // lane 0
  // Teardown order: lanes, then region MRs, then the device (PD, contexts);
  // the destructor clears lanes_ (a base member) and regions_ first.
  std::unique_ptr<Device> dev_;
  struct RegionMr {
    const char* base;
    size_t len;
    Mr mr;
  };
  std::vector<RegionMr> regions_;
};

}  // namespace kvpool::transport::rdma
