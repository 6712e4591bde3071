// Runs commands in process against a pool of nodes on the fake transport
// (storage/transport/fake_transport.h): each node is a CommandHarness (Store,
// Config, command table, ServerContext) plus a PoolExecutor and a pool::Pool,
// wired as Server::SetUpPool wires them. Every node has one lane, and every
// lane is the one event_base the fake network runs on, so a test drives the
// whole pool from its own thread.
//
// A command runs through any node as one of that node's clients. Clients can
// defer their reply (ClientState::defer), as a connection's can: Run() then
// turns the event loop until the reply slot is finished, at most `max_ms`,
// and returns the reply bytes (what the handler wrote at once, then what the
// slot was finished with). A reply that never came returns kNoReply.
//
// Faults: a node's peer link can be taken down (its calls then fail or are
// never answered, as FakeNetwork::SetDown says) and brought back;
// WaitDown/WaitUp turn the loop until the other nodes' heartbeats agree.
//
// Threading: one thread, the test's. Not copyable.
#pragma once

#include <event2/event.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "server/client_state.h"
#include "server/pool_executor.h"
#include "server/testing/command_harness.h"
#include "storage/pool/pool.h"
#include "storage/transport/fake_transport.h"

namespace kvpool::testing {

struct PoolHarnessOptions {
  int nodes = 3;
  int replicas = 1;        // pool-replicas
  int timeout_ms = 1000;   // pool-timeout-ms
  int heartbeat_ms = 20;   // pool-heartbeat-ms
  int down_after_ms = 200; // pool-down-after-ms
  // "--name value" options for every node's Config (CommandHarness).
  std::vector<std::string> config = {"--maxmemory", "32mb"};
};

class PoolHarness;

// The reply slot of the command a client is running.
struct PendingReply {
  bool finished = false;
  std::string reply;
};

// One client of one node. Lives as long as the harness (a reply that comes
// after Run gave up must still find its ClientState).
class PoolClient {
 public:
  int node() const { return node_; }
  ClientState& state() { return state_; }

 private:
  friend class PoolHarness;
  PoolClient(PoolHarness* harness, int node);

  int node_;
  ClientState state_;
  std::shared_ptr<PendingReply> pending_;  // the slot of the command running now
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

class PoolHarness {
 public:
  // What Run returns when no reply came within the bound.
  static constexpr const char* kNoReply = "<no reply>";

  // Builds and starts every node and waits (up to 3 s) until each sees
  // every other up; aborts if it cannot (a harness that failed to build
  // cannot test anything).
  explicit PoolHarness(PoolHarnessOptions options = {});
  ~PoolHarness();
  PoolHarness(const PoolHarness&) = delete;
  PoolHarness& operator=(const PoolHarness&) = delete;

  // A new client of `node` (not authenticated unless no password is set,
  // db 0, RESP2).
  PoolClient& NewClient(int node);
  // Node `node`'s first client.
  PoolClient& client(int node) { return *default_clients_[node]; }

  // Runs `args` through `client`'s node; the reply bytes, or kNoReply.
  std::string Run(PoolClient& client, std::vector<std::string> args, int max_ms = 5000);
  // Through node `node`'s first client.
  std::string Run(int node, std::vector<std::string> args, int max_ms = 5000) {
    return Run(client(node), std::move(args), max_ms);
  }

  // A key whose primary is `node`: "<prefix>" followed by the first
  // counter that lands there (deterministic).
  std::string KeyOn(int node, const std::string& prefix = "k") const;

  // ---- faults ----
  // Takes `node` off the network (FakeNetwork::SetDown) / back on.
  void SetDown(int node, transport::FakeNetwork::DownMode mode =
                             transport::FakeNetwork::DownMode::kRefuse);
  void SetUp(int node);
  // Turns the loop until every other node sees `node` down (or up, and
  // with replicas every node in sync and seeing `node` serve); false after
  // `max_ms`.
  bool WaitDown(int node, int max_ms = 3000);
  bool WaitUp(int node, int max_ms = 3000);

  // ---- the loop ----
  // Turns the loop until `pred` holds; false after `max_ms`.
  bool RunUntil(const std::function<bool()>& pred, int max_ms = 5000);
  void RunFor(int ms);

  int nodes() const { return static_cast<int>(nodes_.size()); }
  pool::Pool& pool(int node) { return *nodes_[node]->pool; }
  storage::Store& store(int node) { return nodes_[node]->cmd.store(); }
  ServerContext& server(int node) { return nodes_[node]->cmd.server(); }
  transport::FakeNetwork& net() { return *net_; }
  // "127.0.0.1:<port>" of `node`, as error texts name it.
  std::string Addr(int node) const { return nodes_[node]->pool->node(node).Addr(); }

 private:
  struct Node {
    explicit Node(std::vector<std::string> config) : cmd(std::move(config)) {}
    CommandHarness cmd;
    std::unique_ptr<PoolExecutor> executor;
    std::unique_ptr<transport::Transport> transport;
    std::unique_ptr<pool::Pool> pool;
  };
  bool AllSeeUp(int node) const;

  PoolHarnessOptions options_;
  event_base* base_ = nullptr;
  event* tick_ = nullptr;  // keeps EVLOOP_ONCE from sleeping past a bound
  std::unique_ptr<transport::FakeNetwork> net_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<std::unique_ptr<PoolClient>> clients_;
  std::vector<PoolClient*> default_clients_;
};

}  // namespace kvpool::testing
