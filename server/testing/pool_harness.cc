#include "server/testing/pool_harness.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "protocol/deferred_reply.h"
#include "server/dispatcher.h"

namespace kvpool {
std::string PoolInfoSection(ServerContext& s);  // pool_family.cc
}

namespace kvpool::testing {

namespace {

// What Connection::Slot is for a socket: finished once, on the loop's
// thread; a DeferredReply's references are replayed into plain bytes.
class HarnessSlot final : public ReplySlot {
 public:
  HarnessSlot(std::shared_ptr<PendingReply> pending, std::shared_ptr<bool> alive)
      : pending_(std::move(pending)), alive_(std::move(alive)) {}
  void Finish(std::string_view encoded) override {
    if (pending_->finished || !*alive_) return;
    pending_->finished = true;
    pending_->reply.assign(encoded);
  }
  void Finish(protocol::DeferredReply&& reply) override {
    if (pending_->finished || !*alive_) return;
    pending_->finished = true;
    protocol::StringSink sink;
    reply.ReplayInto(sink);
    pending_->reply = std::move(sink.out);
  }
  bool alive() const override { return *alive_; }

 private:
  std::shared_ptr<PendingReply> pending_;
  std::shared_ptr<bool> alive_;
};

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "PoolHarness: %s\n", what.c_str());
  std::abort();
}

}  // namespace

PoolClient::PoolClient(PoolHarness* harness, int node) : node_(node) {
  state_.lane = 0;  // every node has one lane
  state_.authenticated = !harness->server(node).hot().requirepass_set.load();
  state_.defer = [this]() -> std::shared_ptr<ReplySlot> {
    pending_ = std::make_shared<PendingReply>();
    return std::make_shared<HarnessSlot>(pending_, alive_);
  };
}

PoolHarness::PoolHarness(PoolHarnessOptions options) : options_(std::move(options)) {
  base_ = event_base_new();
  if (base_ == nullptr) Fail("event_base_new failed");
  tick_ = event_new(base_, -1, EV_PERSIST, [](evutil_socket_t, short, void*) {}, nullptr);
  timeval tv{0, 5000};
  event_add(tick_, &tv);
  const int n = options_.nodes;
  net_ = std::make_unique<transport::FakeNetwork>(base_, n);
  std::vector<pool::NodeSpec> specs;
  for (int i = 0; i < n; ++i) specs.push_back({"127.0.0.1", 7000 + i, 17000 + i});
  for (int i = 0; i < n; ++i) {
    auto node = std::make_unique<Node>(options_.config);
    ServerContext* ctx = &node->cmd.server();
    ctx->tcp_port = specs[i].port;
    node->executor = std::make_unique<PoolExecutor>(ctx);
    node->transport = net_->CreateTransport(i);
    pool::PoolOptions po{.nodes = specs,
                         .self = i,
                         .timeout_ms = options_.timeout_ms,
                         .heartbeat_ms = options_.heartbeat_ms,
                         .down_after_ms = options_.down_after_ms,
                         .replicas = options_.replicas};
    node->pool = std::make_unique<pool::Pool>(po, &node->cmd.store(), node->transport.get(),
                                              node->executor.get());
    ctx->set_pool(node->pool.get());
    ctx->pool_info = [ctx] { return PoolInfoSection(*ctx); };
    nodes_.push_back(std::move(node));
  }
  for (auto& node : nodes_) {
    Status s = node->pool->Start({base_});
    if (!s.ok()) Fail("Pool::Start: " + s.ToString());
    node->pool->StartHeartbeats(base_);
  }
  for (int i = 0; i < n; ++i)
    if (!WaitUp(i)) Fail("node " + std::to_string(i) + " never came up");
  for (int i = 0; i < n; ++i) default_clients_.push_back(&NewClient(i));
}

PoolHarness::~PoolHarness() {
  // Replies that come from here on find no client, as after a disconnect.
  for (auto& c : clients_) {
    *c->alive_ = false;
    if (c->state_.watch) store(c->node_).Unwatch(c->state_.watch);
    c->state_.watch.reset();
  }
  for (auto& node : nodes_) node->pool->StopLane(0);
  // Let every scheduled delivery run, so pins held by replies in flight are
  // dropped before the stores go.
  RunFor(20);
  for (auto& node : nodes_) node->cmd.server().set_pool(nullptr);
  nodes_.clear();  // each: pool, transport, executor, then the store
  net_.reset();
  clients_.clear();
  event_free(tick_);
  event_base_free(base_);
}

PoolClient& PoolHarness::NewClient(int node) {
  clients_.push_back(std::unique_ptr<PoolClient>(new PoolClient(this, node)));
  return *clients_.back();
}

std::string PoolHarness::Run(PoolClient& client, std::vector<std::string> args, int max_ms) {
  // The arguments stay alive until the next command of this client, as a
  // connection's input buffer does for a deferred command (the pool may
  // send values by reference).
  auto owned = std::make_shared<std::vector<std::string>>(std::move(args));
  std::vector<std::string_view> views(owned->begin(), owned->end());
  client.state_.args_owner = owned;
  client.pending_.reset();
  protocol::StringSink sink;
  protocol::ReplyBuilder rb(&sink, client.state_.resp);
  Dispatch(server(client.node_), client.state_, rb, views, NowMs(), client.state_.lane);
  std::shared_ptr<PendingReply> pending = std::move(client.pending_);
  if (!pending) return std::move(sink.out);
  if (!RunUntil([&] { return pending->finished; }, max_ms)) return kNoReply;
  return sink.out + pending->reply;
}

std::string PoolHarness::KeyOn(int node, const std::string& prefix) const {
  for (int i = 0;; ++i) {
    std::string key = prefix + std::to_string(i);
    if (nodes_[0]->pool->OwnerOf(key) == node) return key;
  }
}

void PoolHarness::SetDown(int node, transport::FakeNetwork::DownMode mode) {
  net_->SetDown(node, mode);
}

void PoolHarness::SetUp(int node) { net_->SetUp(node); }

bool PoolHarness::AllSeeUp(int node) const {
  for (const auto& other : nodes_)
    if (!other->pool->NodeUp(node) || !other->pool->InSync() || !other->pool->Serving(node))
      return false;
  return true;
}

bool PoolHarness::WaitDown(int node, int max_ms) {
  return RunUntil(
      [&] {
        for (int i = 0; i < nodes(); ++i)
          if (i != node && nodes_[i]->pool->NodeUp(node)) return false;
        return true;
      },
      max_ms);
}

bool PoolHarness::WaitUp(int node, int max_ms) {
  return RunUntil([&] { return AllSeeUp(node); }, max_ms);
}

bool PoolHarness::RunUntil(const std::function<bool()>& pred, int max_ms) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(max_ms);
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    event_base_loop(base_, EVLOOP_ONCE);
  }
  return true;
}

void PoolHarness::RunFor(int ms) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  RunUntil([&] { return std::chrono::steady_clock::now() >= end; }, ms + 1000);
}

}  // namespace kvpool::testing
