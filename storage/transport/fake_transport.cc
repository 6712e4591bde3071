#include "storage/transport/fake_transport.h"

#include <cstring>
#include <string>

namespace kvpool::transport {

struct FakeNetwork::Call {
  uint64_t id = 0;
  int from = 0, to = 0;
  int lane = 0;  // the requester's lane; the fake has one loop, so the owner's too
  CallArgs args;
  size_t bulk_in_size = 0;
  CallDone done;
  Scheduled* timer = nullptr;
  bool finished = false;
};

struct FakeNetwork::Scheduled {
  FakeNetwork* net;
  event* ev = nullptr;
  std::function<void()> fn;
};

namespace {

struct BulkRange {
  const char* src;
  size_t len;
  ReleaseFn release;
  void* ctx;
};

void ReleaseAll(std::vector<BulkRange>& ranges) {
  for (const BulkRange& r : ranges)
    if (r.release) r.release(r.ctx);
  ranges.clear();
}

}  // namespace

class FakeTransport final : public Transport {
 public:
  FakeTransport(FakeNetwork* net, int node) : net_(net), node_(node) {}
  ~FakeTransport() override {
    net_->StopNode(node_);
    net_->nodes_[node_].exists = false;
    net_->nodes_[node_].handler = nullptr;
  }
  const char* name() const override { return "fake"; }
  Status Start(std::vector<event_base*> lanes, CallHandler handler) override {
    FakeNetwork::Node& n = net_->nodes_[node_];
    if (n.started) return Status::InvalidArgument("transport already started");
    if (lanes.empty()) return Status::InvalidArgument("transport needs at least one lane");
    n.started = true;
    n.handler = std::move(handler);
    lanes_ = static_cast<int>(lanes.size());
    return Status::OK();
  }
  void StopLane(int) override { net_->StopNode(node_); }
  void Call(int lane, int peer, CallArgs args, int timeout_ms, CallDone done) override {
    if (lane < 0 || lane >= lanes_) return done(Status::InvalidArgument("no such lane"), {}, {});
    net_->DoCall(node_, peer, lane, std::move(args), timeout_ms, std::move(done));
  }
  size_t max_bulk_per_call() const override { return net_->max_bulk_per_call_; }
  const PeerCounters& counters(int peer) const override {
    static const PeerCounters kNone;
    if (peer < 0 || peer >= static_cast<int>(net_->nodes_.size())) return kNone;
    return net_->nodes_[node_].counters[peer];
  }
  // No listening socket: nothing is turned away.
  const ListenCounters& listen_counters() const override { return listen_; }
  // On the network's thread only, as everything of the fake.
  std::vector<TransportCounter> Counters() const override {
    return {{"calls_delivered", "Calls that reached this node's handler.",
             net_->nodes_[node_].delivered}};
  }
  bool peer_up(int peer) const override {
    if (peer < 0 || peer >= static_cast<int>(net_->nodes_.size())) return false;
    const FakeNetwork::Node& n = net_->nodes_[peer];
    return n.started && !n.stopped && !n.down;
  }

 private:
  ListenCounters listen_;
  FakeNetwork* net_;
  int node_;
  int lanes_ = 0;
};

class FakeIncomingCall final : public IncomingCall {
 public:
  FakeIncomingCall(FakeNetwork* net, std::shared_ptr<FakeNetwork::Call> c)
      : net_(net), c_(std::move(c)) {}
  ~FakeIncomingCall() override {
    if (finished_) return;
    ReleaseAll(ranges_);
    auto c = c_;
    FakeNetwork* net = net_;
    net_->Schedule(net_->latency_ms_,
                   [net, c] { net->Finish(c, Status(Code::kInternal, "kvpool: call dropped")); });
  }
  uint16_t opcode() const override { return c_->args.opcode; }
  std::string_view body() const override { return c_->args.body; }
  int peer() const override { return c_->from; }
  int lane() const override { return c_->lane; }
  size_t bulk_in_size() const override { return c_->bulk_in_size; }
  size_t bulk_out_capacity() const override { return c_->args.bulk_out_capacity; }

  void ReadBulk(size_t offset, size_t len, char* dst, std::function<void(Status)> done) override {
    if (offset > c_->bulk_in_size || len > c_->bulk_in_size - offset)
      return done(Status::InvalidArgument("ReadBulk range outside bulk_in"));
    auto c = c_;
    auto work = [c, offset, len, dst, done = std::move(done)] {
      // Like an RDMA READ, this reads the requester's memory: only valid
      // while the requester still waits for the call.
      if (c->finished) return done(Status::Unavailable("requester no longer waits for the call"));
      size_t skip = offset, left = len;
      char* out = dst;
      for (const iovec& v : c->args.bulk_in) {
        if (left == 0) break;
        if (skip >= v.iov_len) {
          skip -= v.iov_len;
          continue;
        }
        size_t n = std::min(v.iov_len - skip, left);
        std::memcpy(out, static_cast<const char*>(v.iov_base) + skip, n);
        out += n, left -= n, skip = 0;
      }
      done(Status::OK());
    };
    if (net_->sync_bulk_) return work();
    net_->Schedule(0, std::move(work));
  }

  Status WriteBulk(const char* src, size_t len, ReleaseFn release, void* ctx,
                   size_t* offset) override {
    if (finished_) return Status::InvalidArgument("WriteBulk after Reply");
    if (len > c_->args.bulk_out_capacity - used_)
      return Status::InvalidArgument("WriteBulk of " + std::to_string(len) +
                                     " bytes exceeds the bulk_out capacity");
    ranges_.push_back({src, len, release, ctx});
    *offset = used_;
    used_ += len;
    return Status::OK();
  }

  void Reply(std::string body) override {
    if (finished_) return;
    finished_ = true;
    auto c = c_;
    FakeNetwork* net = net_;
    net_->Schedule(net_->latency_ms_, [net, c, body = std::move(body), ranges = std::move(ranges_),
                                       size = used_]() mutable {
      const FakeNetwork::Node& owner = net->nodes_[c->to];
      // A reply from a node that went down or away meanwhile is lost.
      const bool lost = c->finished || owner.stopped || !owner.exists || owner.down;
      if (lost) return ReleaseAll(ranges);
      // Read the owner's ranges now, as a zero-copy transport would.
      std::string bulk;
      bulk.reserve(size);
      for (const BulkRange& r : ranges) bulk.append(r.src, r.len);
      ReleaseAll(ranges);
      net->nodes_[c->from].counters[c->to].bytes_in += bulk.size();
      net->nodes_[c->to].counters[c->from].bytes_out += bulk.size();
      net->Finish(c, Status::OK(), body, bulk);
    });
  }

 private:
  FakeNetwork* net_;
  std::shared_ptr<FakeNetwork::Call> c_;
  std::vector<BulkRange> ranges_;
  size_t used_ = 0;
  bool finished_ = false;
};

FakeNetwork::FakeNetwork(event_base* base, int nodes) : base_(base), nodes_(nodes) {
  for (Node& n : nodes_) n.counters.reset(new PeerCounters[nodes]);
}

FakeNetwork::~FakeNetwork() {
  for (auto& [raw, s] : scheduled_) event_free(s->ev);
  scheduled_.clear();
}

std::unique_ptr<Transport> FakeNetwork::CreateTransport(int node) {
  nodes_[node] = Node{};
  nodes_[node].exists = true;
  nodes_[node].counters.reset(new PeerCounters[nodes_.size()]);
  return std::make_unique<FakeTransport>(this, node);
}

void FakeNetwork::SetDown(int node, DownMode mode, int delay_ms) {
  Node& n = nodes_[node];
  n.down = true;
  n.mode = mode;
  n.down_delay_ms = delay_ms;
  if (mode != DownMode::kRefuse) return;
  // Calls it holds are lost with it, as when a real link breaks.
  for (auto& [id, c] : calls_)
    if (c->to == node) RefuseLater(c, delay_ms, "is down");
}

void FakeNetwork::SetUp(int node) { nodes_[node].down = false; }

void FakeNetwork::DoCall(int from, int to, int lane, CallArgs args, int timeout_ms,
                         CallDone done) {
  if (to < 0 || to >= static_cast<int>(nodes_.size()))
    return done(Status::InvalidArgument("no such peer"), {}, {});
  Node& src = nodes_[from];
  PeerCounters& pc = src.counters[to];
  pc.calls++;
  if (!src.started || src.stopped) {
    pc.errors++;
    return done(Status::Unavailable("transport stopped"), {}, {});
  }
  auto c = std::make_shared<Call>();
  c->id = next_id_++;
  c->from = from;
  c->to = to;
  c->lane = lane;
  c->args = std::move(args);
  for (const iovec& v : c->args.bulk_in) c->bulk_in_size += v.iov_len;
  c->done = std::move(done);
  calls_.emplace(c->id, c);
  if (timeout_ms > 0)
    c->timer = Schedule(timeout_ms, [this, c] {
      c->timer = nullptr;  // firing: Finish must not cancel it
      Finish(c, Status::Timeout("no reply from peer " + std::to_string(c->to)));
    });
  Status injected = filter_ ? filter_(from, to, c->args) : Status::OK();
  if (!injected.ok()) {
    Schedule(latency_ms_, [this, c, injected] { Finish(c, injected); });
    return;
  }
  int extra = delay_ ? delay_(from, to, c->args) : 0;
  Schedule(latency_ms_ + extra, [this, c] { Deliver(c); });
}

void FakeNetwork::Deliver(const std::shared_ptr<Call>& c) {
  if (c->finished) return;
  Node& dst = nodes_[c->to];
  if (dst.down) {
    if (dst.mode == DownMode::kRefuse) RefuseLater(c, dst.down_delay_ms, "is down");
    return;  // kBlackhole: never answered
  }
  if (!dst.exists || !dst.started || dst.stopped || !dst.handler)
    return Finish(c, Status::Unavailable("peer " + std::to_string(c->to) + " is not serving"));
  dst.delivered++;
  dst.counters[c->from].bytes_in += c->bulk_in_size;
  nodes_[c->from].counters[c->to].bytes_out += c->bulk_in_size;
  dst.handler(std::make_unique<FakeIncomingCall>(this, c));
}

void FakeNetwork::RefuseLater(const std::shared_ptr<Call>& c, int delay_ms, const char* why) {
  Schedule(delay_ms, [this, c, why] {
    Finish(c, Status::Unavailable("peer " + std::to_string(c->to) + " " + why));
  });
}

void FakeNetwork::Finish(const std::shared_ptr<Call>& c, const Status& st, std::string_view reply,
                         std::string_view bulk) {
  if (c->finished) return;
  c->finished = true;
  if (c->timer) Cancel(c->timer);
  c->timer = nullptr;
  calls_.erase(c->id);
  if (!st.ok()) nodes_[c->from].counters[c->to].errors++;
  CallDone done = std::move(c->done);
  done(st, reply, bulk);
}

void FakeNetwork::StopNode(int node) {
  Node& n = nodes_[node];
  if (n.stopped) return;
  n.stopped = true;
  // Its own calls fail now (as StopLane does); calls to it fail shortly
  // after (the requesters' links see the close).
  std::vector<std::shared_ptr<Call>> mine;
  for (auto& [id, c] : calls_) {
    if (c->from == node)
      mine.push_back(c);
    else if (c->to == node)
      RefuseLater(c, 0, "stopped");
  }
  for (auto& c : mine) Finish(c, Status::Unavailable("transport stopped"));
}

FakeNetwork::Scheduled* FakeNetwork::Schedule(int delay_ms, std::function<void()> fn) {
  auto s = std::make_unique<Scheduled>();
  s->net = this;
  s->fn = std::move(fn);
  s->ev = evtimer_new(base_, &FakeNetwork::FireCb, s.get());
  timeval tv{delay_ms / 1000, (delay_ms % 1000) * 1000};
  evtimer_add(s->ev, &tv);
  Scheduled* raw = s.get();
  scheduled_.emplace(raw, std::move(s));
  return raw;
}

void FakeNetwork::Cancel(Scheduled* s) {
  auto it = scheduled_.find(s);
  if (it == scheduled_.end()) return;
  event_free(it->second->ev);
  scheduled_.erase(it);
}

void FakeNetwork::FireCb(evutil_socket_t, short, void* arg) {
  auto* s = static_cast<Scheduled*>(arg);
  FakeNetwork* net = s->net;
  auto it = net->scheduled_.find(s);
  if (it == net->scheduled_.end()) return;
  std::unique_ptr<Scheduled> own = std::move(it->second);
  net->scheduled_.erase(it);
  event_free(own->ev);
  own->fn();
}

}  // namespace kvpool::transport
