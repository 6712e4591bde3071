// Scaffolding shared by the TCP and RDMA transports (not a public header):
// per-peer counters and up flags, the checks every Call makes before it
// reaches a link, the inbox through which lane 0 hands accepted connections
// to the other lanes, and address helpers.
#pragma once

#include <event2/event.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "storage/transport/transport.h"
#include "storage/transport/wire.h"

namespace kvpool::transport {

timeval MsToTimeval(int ms);
// Numeric or named host (getaddrinfo; may block on DNS for names). Empty
// host = 127.0.0.1. *out is zeroed first; *len (if not null) gets its length.
Status ResolveAddress(const std::string& host, int port, sockaddr_storage* out,
                      socklen_t* len = nullptr);

// The raw bytes of a socket address's IP (4 for IPv4, IPv4-mapped IPv6
// included; 16 for IPv6), without the port: a key for "one source address".
// Empty for other families.
std::string AddressKey(const sockaddr* a);
std::string AddressKeyText(const std::string& key);  // for logs: "127.0.0.2"

// The source addresses peers may connect from: every peer's host in
// TransportOptions::peers, resolved once (a name to all of its addresses).
class PeerAllowlist {
 public:
  // Hosts that do not resolve are left out and named in the returned
  // message (empty if all resolved); they cannot connect to us.
  std::string Init(const std::vector<PeerAddress>& peers);
  bool Allows(const sockaddr* a) const;

 private:
  std::vector<std::string> keys_;  // AddressKey of each allowed address
};

// Every peer's counters and up flag (Transport::counters / peer_up). The
// flags start true; any thread may read them.
class PeerTable {
 public:
  explicit PeerTable(size_t peers);
  int size() const { return size_; }
  // `peer` must be valid.
  PeerCounters& at(int peer) { return counters_[peer]; }
  // Zero counters for an index that is not a peer.
  const PeerCounters& counters(int peer) const;
  // False for an index that is not a peer.
  bool up(int peer) const;
  void SetUp(int peer, bool up) { up_[peer].store(up, std::memory_order_relaxed); }

 private:
  const int size_;
  std::unique_ptr<PeerCounters[]> counters_;
  std::unique_ptr<std::atomic<bool>[]> up_;
};

// The checks of Transport::Call before the link sees the call:
// kUnavailable if not started (`lanes` == 0), kInvalidArgument for a bad
// lane or peer, or for a body/bulk over max_body/max_bulk. Counts the call
// (and, for a size error, the error) once lane and peer are known good.
// *bulk gets the size of bulk_in.
Status CheckCall(const TransportOptions& o, PeerTable& peers, size_t lanes, int lane, int peer,
                 const CallArgs& args, uint64_t* bulk);

// What lane 0 hands to another lane (an accepted connection), under a mutex,
// waking that lane's loop. Push runs on lane 0; Take in the wake callback
// on the owning lane; Close in StopLane on the owning lane.
template <typename Item>
class Inbox {
 public:
  Inbox() = default;
  Inbox(const Inbox&) = delete;
  Inbox& operator=(const Inbox&) = delete;
  ~Inbox() {
    if (wake_) event_free(wake_);
  }

  // The wake event: `cb(-1, EV_TIMEOUT, arg)` runs on `base`'s loop after a Push.
  Status Init(event_base* base, event_callback_fn cb, void* arg) {
    wake_ = event_new(base, -1, 0, cb, arg);
    return wake_ ? Status::OK() : Status::Internal("libevent: event_new");
  }
  // False (the item is not queued; the caller disposes of it) once closed.
  bool Push(Item item) {
    std::lock_guard<std::mutex> lk(mu_);
    if (closed_ || !wake_) return false;
    items_.push_back(std::move(item));
    event_active(wake_, EV_TIMEOUT, 0);
    return true;
  }
  std::vector<Item> Take() {
    std::vector<Item> out;
    std::lock_guard<std::mutex> lk(mu_);
    out.swap(items_);
    return out;
  }
  // Refuses every later Push, frees the wake event and returns the items
  // never taken. Safe: Push activates the event only under mu_ while open.
  std::vector<Item> Close() {
    std::vector<Item> orphans;
    {
      std::lock_guard<std::mutex> lk(mu_);
      closed_ = true;
      orphans.swap(items_);
    }
    if (wake_) event_free(wake_);
    wake_ = nullptr;
    return orphans;
  }

 private:
  std::mutex mu_;
  std::vector<Item> items_;  // guarded by mu_
  bool closed_ = false;      // guarded by mu_
  event* wake_ = nullptr;    // freed by Close (on the owning lane)
};

// What TcpTransport and RdmaTransport share: options, handler, peers and
// lanes, Start / StopLane / Call and the per-peer queries. LaneT has
// `std::vector<std::unique_ptr<L>> links` (by peer) with
// L::Call(CallArgs, int, CallDone). The derived transport builds its lanes
// (StartLanes) and releases one (StopLaneImpl).
template <typename LaneT>
class LanedTransport : public Transport {
 public:
  Status Start(std::vector<event_base*> bases, CallHandler handler) override {
    if (!lanes_.empty()) return Status::InvalidArgument("transport already started");
    if (bases.empty()) return Status::InvalidArgument("transport needs at least one lane");
    handler_ = std::move(handler);
    Status st = StartLanes(bases);
    if (!st.ok()) {
      // Leave the transport as if Start had not run.
      for (auto& l : lanes_) StopLaneImpl(*l);
      lanes_.clear();
      ForgetStart();
    }
    return st;
  }
  void StopLane(int lane) override {
    if (lane < 0 || lane >= static_cast<int>(lanes_.size())) return;
    StopLaneImpl(*lanes_[lane]);
  }
  void Call(int lane, int peer, CallArgs args, int timeout_ms, CallDone done) override {
    uint64_t bulk = 0;
    Status st = CheckCall(o_, peers_, lanes_.size(), lane, peer, args, &bulk);
    if (st.ok()) st = CheckBulk(peer, bulk, args);
    if (!st.ok()) return done(st, {}, {});
    lanes_[lane]->links[peer]->Call(std::move(args), timeout_ms, std::move(done));
  }
  const PeerCounters& counters(int peer) const override { return peers_.counters(peer); }
  bool peer_up(int peer) const override { return peers_.up(peer); }
  const ListenCounters& listen_counters() const override { return listen_; }

  const TransportOptions& options() const { return o_; }
  WireLimits limits() const { return {o_.max_body, o_.max_bulk}; }
  PeerCounters& peer_counters(int peer) { return peers_.at(peer); }
  PeerTable* peers() { return &peers_; }
  const CallHandler& handler() const { return handler_; }
  LaneT& lane(int i) { return *lanes_[i]; }
  int lane_count() const { return static_cast<int>(lanes_.size()); }

 protected:
  explicit LanedTransport(const TransportOptions& o) : o_(o), peers_(o.peers.size()) {}
  // Builds lanes_ (one per base) and whatever else Start needs; on error
  // Start stops the lanes built so far and calls ForgetStart.
  virtual Status StartLanes(const std::vector<event_base*>& bases) = 0;
  // Idempotent; on the lane's thread (or after the loops exited).
  virtual void StopLaneImpl(LaneT& l) = 0;
  virtual void ForgetStart() {}
  // A transport's own limit on a call's bulk, checked after CheckCall (it
  // counts its own error).
  virtual Status CheckBulk(int peer, uint64_t bulk, const CallArgs& args) { return Status::OK(); }

  const TransportOptions o_;
  PeerTable peers_;
  ListenCounters listen_;  // written by the listening side (lane 0)
  CallHandler handler_;
  std::vector<std::unique_ptr<LaneT>> lanes_;
};

}  // namespace kvpool::transport
