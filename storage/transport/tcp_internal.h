// Internals of the TCP transport, shared by tcp_transport.cc (lanes,
// listener, hand-off), tcp_outlink.cc (calls we make) and tcp_incoming.cc
// (calls we serve). Not a public header.
//
// Ownership: TcpTransport owns its Lanes; a Lane owns one OutLink per peer
// and the InConns handed to it; lane 0 also owns the listener and the
// PendingAccepts (connections still in their handshake). Every object is
// touched only on its lane's thread, except Lane::inbox (lane 0 hands
// authenticated sockets to other lanes through it).
#pragma once

#include <event2/event.h>
#include <event2/listener.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "storage/transport/auth.h"
#include "storage/transport/frame_conn.h"
#include "storage/transport/outlink_base.h"
#include "storage/transport/tcp_transport.h"
#include "storage/transport/transport_common.h"
#include "storage/transport/transport.h"
#include "storage/transport/wire.h"

namespace kvpool::transport::tcp {

class TcpTransport;
struct Lane;

// The lane's shared read buffer (see FrameConn).
inline constexpr size_t kScratchSize = 64 << 10;
// Before authentication only handshake frames are accepted: tiny bodies, no
// bulk, so an unauthenticated peer cannot make us allocate more than this.
inline constexpr WireLimits kHandshakeLimits{256, 0};

// Calls from one lane to one peer over one connection, opened on demand.
class OutLink final : public OutLinkBase, public FrameConn::Handler {
 public:
  OutLink(TcpTransport* t, Lane* lane, int peer);
  ~OutLink() override;
  void Call(CallArgs args, int timeout_ms, CallDone done);

  Status OnHeader(const FrameHeader& h, bool* discard) override;
  void OnFrame(const FrameHeader& h, FrameBuffer payload) override;
  void OnClosed(Status why) override;

 private:
  struct Pending final : PendingCall {
    uint64_t bulk_cap = 0;
    uint64_t sent_end = 0;  // FrameConn::queued() right after this call's bytes
    bool has_bulk_in = false;
    std::optional<CallArgs> unsent;  // held until the link is authenticated
  };
  enum class State { kIdle, kHandshake, kReady };

  bool connected() const override { return state_ != State::kIdle; }
  Status Open() override;
  void Fail(Status why, bool backoff) override;
  void OnTimeout(PendingCall* p) override;
  void SendHandshake(FrameHeader h, std::string body) override;
  void Send(Pending* p, CallArgs args);
  void Finish(std::unique_ptr<Pending> p, const Status& st, std::string_view reply,
              BulkOut bulk);

  TcpTransport* t_;
  Lane* lane_;
  State state_ = State::kIdle;
  std::unique_ptr<FrameConn> conn_;
};

// An authenticated connection from a peer; its calls go to the handler.
// Shared so that IncomingCalls can tell (weak_ptr) whether it still exists.
class InConn final : public FrameConn::Handler, public std::enable_shared_from_this<InConn> {
 public:
  InConn(TcpTransport* t, Lane* lane, int peer) : t_(t), lane_(lane), peer_(peer) {}
  // Wraps the socket (and its TLS session, pool-tls) and tells the
  // connector it may send calls; with keys, every frame from AUTH_OK on is
  // authenticated (frame_mac.h).
  Status Start(int fd, std::shared_ptr<TlsSession> tls, const std::optional<auth::FrameKeys>& keys);
  // Drops the connection (outstanding IncomingCalls then answer nothing).
  void Close() { conn_.reset(); }
  FrameConn* conn() { return conn_.get(); }
  TcpTransport* transport() { return t_; }

  Status OnHeader(const FrameHeader& h, bool* discard) override;
  void OnFrame(const FrameHeader& h, FrameBuffer payload) override;
  void OnClosed(Status why) override;

 private:
  TcpTransport* t_;
  Lane* lane_;
  int peer_;
  std::unique_ptr<FrameConn> conn_;
};

// An accepted connection in its handshake, on lane 0. Once the peer proves
// it knows the secret, its socket is handed to the lane it asked for.
// "Silent" until a complete, valid HELLO has been read from it.
class PendingAccept final : public FrameConn::Handler {
 public:
  PendingAccept(TcpTransport* t, uint64_t seq, std::string source)
      : t_(t), seq_(seq), source_(std::move(source)) {}
  ~PendingAccept() override;
  Status Start(int fd);
  uint64_t seq() const { return seq_; }                  // accept order
  const std::string& source() const { return source_; }  // AddressKey
  bool said_hello() const { return have_hello_; }
  // Reads what the socket already holds (a HELLO, a PROOF, an EOF) now
  // instead of on the next readable event. May destroy this.
  void ReadNow() { conn_->ReadNow(); }

  Status OnHeader(const FrameHeader& h, bool* discard) override;
  void OnFrame(const FrameHeader& h, FrameBuffer payload) override;
  void OnClosed(Status why) override;

 private:
  void Reject(const std::string& why);  // sends AUTH_FAIL, then destroys this
  static void TimeoutCb(evutil_socket_t, short, void* arg);

  TcpTransport* t_;
  const uint64_t seq_;
  const std::string source_;
  std::unique_ptr<FrameConn> conn_;
  std::optional<auth::ServerHandshake> hs_;
  event* timer_ = nullptr;
  bool have_hello_ = false;
};

struct Handoff {
  int fd;
  int peer;
  std::shared_ptr<TlsSession> tls;  // pool-tls: the session goes with its socket
  std::optional<auth::FrameKeys> keys;
};

struct Lane {
  TcpTransport* t = nullptr;
  int index = 0;
  event_base* base = nullptr;
  bool stopped = false;
  std::unique_ptr<char[]> scratch;
  std::vector<std::unique_ptr<OutLink>> links;  // by peer index
  std::unordered_map<InConn*, std::shared_ptr<InConn>> incoming;
  Inbox<Handoff> inbox;  // filled by lane 0, closed by StopLane
};

class TcpTransport final : public LanedTransport<Lane> {
 public:
  TcpTransport(const TransportOptions& o, const TcpTuning& tuning);
  ~TcpTransport() override;

  const char* name() const override { return "tcp"; }
  // Bulk travels inline, so a call can carry a lot; 64 MiB keeps one
  // call's frame buffer bounded while big values still move in few calls.
  size_t max_bulk_per_call() const override { return 64u << 20; }

  const TcpTuning& tuning() const { return tuning_; }
  // Lane 0: `peer` authenticated a connection from its lane `conn_lane`.
  void HandOff(int fd, std::shared_ptr<TlsSession> tls, int peer, uint32_t conn_lane,
               const std::optional<auth::FrameKeys>& keys);
  // Lane 0: `a` sent a valid HELLO; it no longer counts as silent.
  void HelloVerified(PendingAccept* a);
  // Lane 0: destroys a finished or failed PendingAccept.
  void RemoveAccept(PendingAccept* a);
  // Connections closed at accept because their source is not a peer's
  // host, and pending handshakes closed to make room for newer ones.
  uint64_t refused_sources() const { return listen_.refused_sources.load(); }
  uint64_t evicted_handshakes() const { return listen_.dropped_handshakes.load(); }
  // Transport::Counters: frames_sent, frames_tagged, frames_refused, connections.
  std::vector<TransportCounter> Counters() const override;
  // Every FrameConn of this transport counts its frames here.
  FrameStats* frame_stats() { return &frame_stats_; }
  // A link became ready to carry calls (either role).
  void CountConnection() { connections_.fetch_add(1, std::memory_order_relaxed); }

 private:
  Status StartLanes(const std::vector<event_base*>& bases) override;
  void StopLaneImpl(Lane& lane) override;
  void ForgetStart() override { listener_ = nullptr; }
  void Adopt(Lane& lane, int fd, std::shared_ptr<TlsSession> tls, int peer,
             const std::optional<auth::FrameKeys>& keys);
  void OnAccept(int fd, const sockaddr* from);
  bool RefuseSource(const sockaddr* from);
  // Brings the silent handshakes of `source`, then all pending ones, back
  // within their bounds; `newest` (just accepted) is never the one closed.
  void EnforceBounds(const std::string& source, uint64_t newest);
  // Makes room for one: the oldest silent handshake (of `source` if given;
  // else, when none is silent, the oldest waiting for its PROOF) is read
  // first and closed only if it still is what it was. False if no
  // candidate is left.
  bool EvictOldest(const std::string* source, uint64_t spare);
  // Lets the loop run other events after a burst of accepts.
  void YieldAfterBurst();
  void ForgetSilent(const std::string& source);
  static void AcceptCb(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg);
  static void AcceptErrorCb(evconnlistener*, void* arg);
  static void ResumeAcceptCb(evutil_socket_t, short, void* arg);
  static void WakeCb(evutil_socket_t, short, void* arg);

  const TcpTuning tuning_;
  FrameStats frame_stats_;
  std::atomic<uint64_t> connections_{0};
  evconnlistener* listener_ = nullptr;  // lane 0
  // Lane 0: re-enables accept after EMFILE, or after a burst (YieldAfterBurst).
  event* resume_accept_ = nullptr;
  PeerAllowlist allowlist_;  // set in StartLanes
  // Lane 0: pending handshakes by accept order, and the silent ones' count
  // per source.
  std::map<uint64_t, std::unique_ptr<PendingAccept>> accepts_;
  std::unordered_map<std::string, int> silent_by_source_;
  uint64_t next_accept_ = 0;
  int accepts_in_burst_ = 0;
  bool refusal_logged_ = false;
  bool eviction_logged_ = false;
};

}  // namespace kvpool::transport::tcp
