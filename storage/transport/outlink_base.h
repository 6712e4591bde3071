// The requester's side shared by the TCP and RDMA transports (not a public
// header): the calls one lane has in flight to one peer, by id, with their
// timers and callbacks; the connect / handshake state and the reconnect
// backoff after a failed connect or handshake. Each transport derives its
// OutLink from OutLinkBase and keeps only how it connects and how bytes
// move (a socket and inline bulk for TCP; a QP and staging buffers for RDMA).
//
// Threading: everything runs on the link's lane thread.
#pragma once

#include <event2/event.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "storage/transport/auth.h"
#include "storage/transport/transport.h"
#include "storage/transport/transport_common.h"
#include "storage/transport/wire.h"

namespace kvpool::transport {

class OutLinkBase;

// One call in flight; a transport's own record derives from it.
struct PendingCall {
  PendingCall() = default;
  PendingCall(const PendingCall&) = delete;
  PendingCall& operator=(const PendingCall&) = delete;
  virtual ~PendingCall();
  OutLinkBase* link = nullptr;
  uint64_t id = 0;
  CallDone done;
  event* timer = nullptr;  // the call's timeout; null without one
  bool reset_on_timeout = false;  // CallArgs::reset_on_timeout
};

class OutLinkBase {
 public:
  // `hs_timeout_what` names what the handshake timer bounds in its error
  // ("handshake with" / "connecting to"): "<what> peer N timed out".
  OutLinkBase(event_base* base, PeerTable* peers, const TransportOptions& o, int lane, int peer,
              int backoff_ms, std::string hs_timeout_what);
  virtual ~OutLinkBase();
  OutLinkBase(const OutLinkBase&) = delete;
  OutLinkBase& operator=(const OutLinkBase&) = delete;

  // Closes the link, fails its calls with `why`, frees its events (StopLane).
  void Shutdown(const Status& why);

 protected:
  // The handshake under way (null outside one).
  const auth::ClientHandshake* handshake() const { return hs_ ? &*hs_ : nullptr; }
  using Calls = std::unordered_map<uint64_t, std::unique_ptr<PendingCall>>;

  // Whether a connection exists or is being opened.
  virtual bool connected() const = 0;
  // Starts opening the connection (connected() is true after OK).
  virtual Status Open() = 0;
  // Drops the connection and fails every call with `why`; with `backoff`,
  // Calls fail fast with `why` for the reconnect backoff.
  virtual void Fail(Status why, bool backoff) = 0;
  virtual void OnTimeout(PendingCall* p) = 0;
  // Sends a handshake frame (HELLO, PROOF) on the connection.
  virtual void SendHandshake(FrameHeader h, std::string body) = 0;

  // The start of Call: fails `done` (and returns false) when the lane is
  // stopped, within the backoff, or when the link cannot be opened.
  bool Admit(bool lane_stopped, CallDone& done);
  // Gives `p` the next id and, with timeout_ms > 0, its timer; keeps it.
  PendingCall* Track(std::unique_ptr<PendingCall> p, int timeout_ms);
  template <typename T>
  T* Find(uint64_t id) const {
    auto it = calls_.find(id);
    return it == calls_.end() ? nullptr : static_cast<T*>(it->second.get());
  }
  // Removes the call from the table; null if it is not there.
  template <typename T>
  std::unique_ptr<T> Take(uint64_t id) {
    auto it = calls_.find(id);
    if (it == calls_.end()) return nullptr;
    std::unique_ptr<T> p(static_cast<T*>(it->second.release()));
    calls_.erase(it);
    return p;
  }
  // Every call, in call order; the table and the unsent list are left empty.
  template <typename T>
  std::vector<std::unique_ptr<T>> TakeAll() {
    std::vector<std::unique_ptr<T>> out;
    out.reserve(calls_.size());
    for (auto& [id, p] : calls_) out.emplace_back(static_cast<T*>(p.release()));
    calls_.clear();
    unsent_.clear();
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a->id < b->id; });
    return out;
  }
  // The end of a call: frees its timer, counts an error, hands back done.
  CallDone Conclude(PendingCall* p, const Status& st);

  // Handshake, requester side: sends HELLO (after a fresh nonce).
  Status StartHandshake();
  // OK for the frames the handshake lets through at this point.
  Status CheckHandshakeHeader(const FrameHeader& h) const;
  // A handshake frame arrived: CHALLENGE is answered, AUTH_FAIL fails the
  // link; AUTH_OK returns true (the caller makes the link ready, then calls
  // Authenticated()).
  bool OnHandshakeFrame(const FrameHeader& h, std::string_view body);
  // Ends the handshake; returns the ids of the calls waiting for it.
  std::vector<uint64_t> Authenticated();
  // What Fail does to the handshake and the backoff, whatever the transport.
  void ResetHandshake(const Status& why, bool backoff);
  // A kErrorReply's status (opcode = code; an unknown code is kInternal).
  static Status ErrorReplyStatus(const FrameHeader& h, std::string_view body);

  PeerCounters& counters() { return peers_->at(peer_); }

  event_base* const base_;
  PeerTable* const peers_;
  const TransportOptions& o_;
  const int lane_index_;
  const int peer_;
  std::vector<uint64_t> unsent_;  // ids waiting for the link, in call order
  event* hs_timer_ = nullptr;

 private:
  static void TimeoutCb(evutil_socket_t, short, void* arg);
  static void HandshakeTimeoutCb(evutil_socket_t, short, void* arg);

  const int backoff_ms_;
  const std::string hs_timeout_what_;
  std::optional<auth::ClientHandshake> hs_;
  bool challenged_ = false;
  std::chrono::steady_clock::time_point failed_until_{};
  Status fail_status_;
  uint64_t next_id_ = 1;
  Calls calls_;
};

}  // namespace kvpool::transport
