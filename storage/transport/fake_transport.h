// In-memory Transport for unit tests of the layers above (the pool router):
// N nodes in one process, sharing one event_base and one thread, each with
// its own CallHandler. Calls, replies and failures are delivered by timer
// events on that base, so they are asynchronous like the real transports,
// with an optional latency. Bulk semantics match transport.h: ReadBulk reads
// the requester's bulk_in (later, like an RDMA READ, unless sync_bulk), the
// bytes given to WriteBulk are read when the reply is delivered (so they must
// stay valid until release, as with the zero-copy transports), and the
// requester sees them as one contiguous bulk_out.
//
// Faults: a node can be marked down (calls to it fail with kUnavailable
// after a delay, or are never answered and time out), and a filter can fail
// chosen calls.
//
// Everything runs on the base's thread. Lanes are accepted but all share it.
#pragma once

#include <event2/event.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "storage/transport/transport.h"

namespace kvpool::transport {

class FakeNetwork {
 public:
  FakeNetwork(event_base* base, int nodes);
  // Frees every scheduled delivery; callbacks of unfinished calls never run.
  // Destroy the node transports first.
  ~FakeNetwork();
  FakeNetwork(const FakeNetwork&) = delete;
  FakeNetwork& operator=(const FakeNetwork&) = delete;

  // Node `node`'s transport (one per node). Start() registers its handler;
  // destroying it (or StopLane) takes the node off the network: its pending
  // calls fail with kUnavailable, and so do calls in flight to it.
  std::unique_ptr<Transport> CreateTransport(int node);

  enum class DownMode {
    kRefuse,     // calls fail with kUnavailable after delay_ms
    kBlackhole,  // calls are never answered (the caller's timeout fires)
  };
  // Applies to calls not yet answered, including ones its handler holds
  // (their replies are then lost).
  void SetDown(int node, DownMode mode = DownMode::kRefuse, int delay_ms = 0);
  void SetUp(int node);

  // Consulted for every call before delivery; a non-OK status fails the call
  // with it (after the latency) without reaching the owner.
  using CallFilter = std::function<Status(int from, int to, const CallArgs& args)>;
  void SetCallFilter(CallFilter filter) { filter_ = std::move(filter); }
  // Extra delay before a call is delivered, in ms, chosen per call (replies
  // then come back in another order than the calls went).
  using CallDelay = std::function<int(int from, int to, const CallArgs& args)>;
  void SetCallDelay(CallDelay delay) { delay_ = std::move(delay); }
  // One-way delay of calls and replies, in ms (default 0: next loop turn).
  void set_latency_ms(int ms) { latency_ms_ = ms; }
  // ReadBulk completes before it returns (like TCP) instead of later.
  void set_sync_bulk(bool sync) { sync_bulk_ = sync; }
  // What every node's max_bulk_per_call() answers (small values exercise
  // the callers' chunking).
  void set_max_bulk_per_call(size_t n) { max_bulk_per_call_ = n; }

  // Calls that reached `node`'s handler.
  uint64_t delivered(int node) const { return nodes_[node].delivered; }
  // Calls whose callback has not run yet.
  size_t in_flight() const { return calls_.size(); }

 private:
  friend class FakeTransport;
  friend class FakeIncomingCall;
  struct Call;
  struct Scheduled;
  struct Node {
    bool exists = false, started = false, stopped = false;
    bool down = false;
    DownMode mode = DownMode::kRefuse;
    int down_delay_ms = 0;
    uint64_t delivered = 0;
    CallHandler handler;
    std::unique_ptr<PeerCounters[]> counters;  // this node's view, by peer
  };

  void DoCall(int from, int to, int lane, CallArgs args, int timeout_ms, CallDone done);
  void Deliver(const std::shared_ptr<Call>& c);
  void Finish(const std::shared_ptr<Call>& c, const Status& st, std::string_view reply = {},
              std::string_view bulk = {});
  void RefuseLater(const std::shared_ptr<Call>& c, int delay_ms, const char* why);
  void StopNode(int node);
  Scheduled* Schedule(int delay_ms, std::function<void()> fn);
  void Cancel(Scheduled* s);
  static void FireCb(evutil_socket_t, short, void* arg);

  event_base* base_;
  std::vector<Node> nodes_;
  CallFilter filter_;
  int latency_ms_ = 0;
  bool sync_bulk_ = false;
  CallDelay delay_;
  size_t max_bulk_per_call_ = 4u << 20;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::shared_ptr<Call>> calls_;  // not yet finished
  std::unordered_map<Scheduled*, std::unique_ptr<Scheduled>> scheduled_;
};

}  // namespace kvpool::transport
