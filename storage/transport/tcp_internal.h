// Internals of the TCP transport, shared by tcp_transport.cc (lanes,
// listener, hand-off), tcp_outlink.cc (calls we make) and tcp_incoming.cc
// (calls we serve). Not a public header.
//
// Ownership: TcpTransport owns its Lanes; a Lane owns one OutLink per peer
// and the InConns handed to it; lane 0 also owns the listener and the
// PendingAccepts (connections still in their handshake). Every object is
// touched only on its lane's thread, except Lane::inbox (lane 0 hands
// authenticated sockets to other lanes through it, under Lane::mu).
#pragma once

#include <event2/event.h>
#include <event2/listener.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "storage/transport/auth.h"
#include "storage/transport/frame_conn.h"
#include "storage/transport/tcp_transport.h"
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

timeval MsToTimeval(int ms);
// Numeric or named host (getaddrinfo; may block on DNS for names). Empty
// host = 127.0.0.1.
Status ResolveAddress(const std::string& host, int port, sockaddr_storage* out, socklen_t* len);

// Calls from one lane to one peer over one connection, opened on demand.
class OutLink final : public FrameConn::Handler {
 public:
  OutLink(TcpTransport* t, Lane* lane, int peer);
  ~OutLink() override;
  void Call(CallArgs args, int timeout_ms, CallDone done);
  // Closes the link, fails its calls with `why`, frees its events (StopLane).
  void Shutdown(const Status& why);

  Status OnHeader(const FrameHeader& h, bool* discard) override;
  void OnFrame(const FrameHeader& h, FrameBuffer payload) override;
  void OnClosed(Status why) override;

 private:
  struct Pending {
    ~Pending();
    OutLink* link = nullptr;
    uint64_t id = 0;
    CallDone done;
    event* timer = nullptr;
    uint64_t bulk_cap = 0;
    uint64_t sent_end = 0;  // FrameConn::queued() right after this call's bytes
    bool has_bulk_in = false;
    std::optional<CallArgs> unsent;  // held until the link is authenticated
  };
  enum class State { kIdle, kHandshake, kReady };

  Status Open();
  void Send(Pending* p, CallArgs args);
  void OnTimeout(Pending* p);
  // Drops the connection and fails every pending call with `why`; with
  // `backoff`, Calls fail fast with `why` for the reconnect backoff.
  void Fail(Status why, bool backoff);
  void Finish(std::unique_ptr<Pending> p, const Status& st, std::string_view reply,
              std::string_view bulk);
  static void TimeoutCb(evutil_socket_t, short, void* arg);
  static void HandshakeTimeoutCb(evutil_socket_t, short, void* arg);

  TcpTransport* t_;
  Lane* lane_;
  int peer_;
  State state_ = State::kIdle;
  std::unique_ptr<FrameConn> conn_;
  std::optional<auth::ClientHandshake> hs_;
  bool challenged_ = false;
  event* hs_timer_ = nullptr;
  std::chrono::steady_clock::time_point failed_until_{};
  Status fail_status_;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Pending>> calls_;
  std::vector<uint64_t> unsent_;  // ids waiting for the handshake, in call order
};

// An authenticated connection from a peer; its calls go to the handler.
// Shared so that IncomingCalls can tell (weak_ptr) whether it still exists.
class InConn final : public FrameConn::Handler, public std::enable_shared_from_this<InConn> {
 public:
  InConn(TcpTransport* t, Lane* lane, int peer) : t_(t), lane_(lane), peer_(peer) {}
  // Wraps the socket and tells the connector it may send calls.
  Status Start(int fd);
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
class PendingAccept final : public FrameConn::Handler {
 public:
  explicit PendingAccept(TcpTransport* t) : t_(t) {}
  ~PendingAccept() override;
  Status Start(int fd);

  Status OnHeader(const FrameHeader& h, bool* discard) override;
  void OnFrame(const FrameHeader& h, FrameBuffer payload) override;
  void OnClosed(Status why) override;

 private:
  void Reject(const std::string& why);  // sends AUTH_FAIL, then destroys this
  static void TimeoutCb(evutil_socket_t, short, void* arg);

  TcpTransport* t_;
  std::unique_ptr<FrameConn> conn_;
  std::optional<auth::ServerHandshake> hs_;
  event* timer_ = nullptr;
  bool have_hello_ = false;
};

struct Handoff {
  int fd;
  int peer;
};

struct Lane {
  TcpTransport* t = nullptr;
  int index = 0;
  event_base* base = nullptr;
  bool stopped = false;
  std::unique_ptr<char[]> scratch;
  std::vector<std::unique_ptr<OutLink>> links;  // by peer index
  std::unordered_map<InConn*, std::shared_ptr<InConn>> incoming;
  event* wake = nullptr;  // activated by lane 0 after filling inbox

  std::mutex mu;
  std::vector<Handoff> inbox;  // guarded by mu
  bool inbox_closed = false;   // guarded by mu; set by StopLane
};

class TcpTransport final : public Transport {
 public:
  TcpTransport(const TransportOptions& o, const TcpTuning& tuning);
  ~TcpTransport() override;

  const char* name() const override { return "tcp"; }
  Status Start(std::vector<event_base*> lanes, CallHandler handler) override;
  void StopLane(int lane) override;
  void Call(int lane, int peer, CallArgs args, int timeout_ms, CallDone done) override;
  const PeerCounters& counters(int peer) const override;
  // Bulk travels inline, so a call can carry a lot; 64 MiB keeps one
  // call's frame buffer bounded while big values still move in few calls.
  size_t max_bulk_per_call() const override { return 64u << 20; }
  bool peer_up(int peer) const override;

  const TransportOptions& options() const { return o_; }
  const TcpTuning& tuning() const { return tuning_; }
  WireLimits limits() const { return {o_.max_body, o_.max_bulk}; }
  PeerCounters& peer_counters(int peer) { return counters_[peer]; }
  void SetPeerUp(int peer, bool up) { up_[peer].store(up, std::memory_order_relaxed); }
  const CallHandler& handler() const { return handler_; }
  Lane& lane(int i) { return *lanes_[i]; }
  // Lane 0: `peer` authenticated a connection from its lane `conn_lane`.
  void HandOff(int fd, int peer, uint32_t conn_lane);
  // Lane 0: destroys a finished or failed PendingAccept.
  void RemoveAccept(PendingAccept* a) { accepts_.erase(a); }

 private:
  Status StartLanes(const std::vector<event_base*>& bases);
  void Adopt(Lane& lane, int fd, int peer);
  void StopLaneImpl(Lane& lane);
  void OnAccept(int fd);
  static void AcceptCb(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg);
  static void AcceptErrorCb(evconnlistener*, void* arg);
  static void ResumeAcceptCb(evutil_socket_t, short, void* arg);
  static void WakeCb(evutil_socket_t, short, void* arg);

  const TransportOptions o_;
  const TcpTuning tuning_;
  CallHandler handler_;
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::unique_ptr<PeerCounters[]> counters_;
  std::unique_ptr<std::atomic<bool>[]> up_;
  evconnlistener* listener_ = nullptr;  // lane 0
  event* resume_accept_ = nullptr;      // lane 0: re-enables accept after EMFILE
  std::unordered_map<PendingAccept*, std::unique_ptr<PendingAccept>> accepts_;  // lane 0
};

}  // namespace kvpool::transport::tcp
