// The pool layer over the in-memory fake transport: three Pools, each with
// its own Store, a FakeNetwork transport (wrapped so tests can watch calls
// on the owner side, and rewrite replies or fail calls at once on the
// requester side) and a fake CommandExecutor, all on one event_base. Requests are driven by calling the
// Pool methods and running the loop until their done callbacks fire; a
// request that does not finish within a bound fails the test.
//
// What is pinned here: split by owner and reassembly in key order
// (duplicates, missing and binary keys, empty and large batches, the per-call
// key cap), values around the per-call bulk limit (chunked gets and puts,
// packing of small values), per-node failures (refused, blackholed, one call
// failed), membership by heartbeats, whole-command forwarding, the owner's
// handling of malformed bodies and the requester's of malformed replies, and
// consistency of a chunked get whose value changes midway.
#include <event2/event.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "storage/pool/pool.h"
#include "storage/pool/pool_impl.h"
#include "storage/transport/fake_transport.h"

namespace kvpool::pool {
namespace {

using storage::Store;
using transport::CallArgs;
using transport::FakeNetwork;
using transport::IncomingCall;
using transport::Transport;

constexpr size_t kKiB = 1024;
constexpr size_t kMiB = 1024 * 1024;

// ------------------------------------------------------------ test doubles

// Records what peers (or Broadcast) ask this node to run; answers with
// canned RESP that names the node.
class FakeExecutor final : public CommandExecutor {
 public:
  struct Command {
    int lane, db, resp;
    std::vector<std::string> argv;
  };
  struct Transaction {
    int lane, db, resp;
    std::vector<std::vector<std::string>> cmds;
    std::vector<std::pair<std::string, uint64_t>> watched;
  };

  explicit FakeExecutor(int node)
      : reply("$6\r\nnode-" + std::to_string(node) + "\r\n"),
        tx_reply("*1\r\n+OK-" + std::to_string(node) + "\r\n") {}

  std::string Execute(int lane, int db, int resp,
                      const std::vector<std::string_view>& argv) override {
    commands.push_back({lane, db, resp, {argv.begin(), argv.end()}});
    return reply;
  }
  std::string ExecuteTransaction(
      int lane, int db, int resp, const std::vector<std::vector<std::string_view>>& cmds,
      const std::vector<std::pair<std::string_view, uint64_t>>& watched) override {
    Transaction t{lane, db, resp, {}, {}};
    for (const auto& c : cmds) t.cmds.emplace_back(c.begin(), c.end());
    for (const auto& [k, v] : watched) t.watched.emplace_back(std::string(k), v);
    transactions.push_back(std::move(t));
    return tx_reply;
  }

  std::string reply, tx_reply;
  std::vector<Command> commands;
  std::vector<Transaction> transactions;
};

// A node's fake transport with two hooks for tests: after_handle runs on
// the owner once the pool's handler returned for an incoming call (it may
// still hold the call); rewrite_reply lets a test corrupt what a requester's
// call returns before the pool sees it.
class HookTransport final : public Transport {
 public:
  explicit HookTransport(std::unique_ptr<Transport> inner) : inner_(std::move(inner)) {}

  std::function<void(uint16_t opcode, std::string_view body)> after_handle;
  std::function<void(uint16_t opcode, Status* s, std::string* reply, std::string* bulk)>
      rewrite_reply;
  // Requester side: a non-OK status fails the call before Call returns, as
  // transport.h allows (no link and none can be opened, connect backoff).
  std::function<Status(int peer, const CallArgs& args)> fail_at_once;

  const char* name() const override { return inner_->name(); }
  Status Start(std::vector<event_base*> lanes, transport::CallHandler handler) override {
    return inner_->Start(std::move(lanes),
                         [this, handler = std::move(handler)](std::unique_ptr<IncomingCall> c) {
                           uint16_t op = c->opcode();
                           std::string body(c->body());
                           handler(std::move(c));
                           if (after_handle) after_handle(op, body);
                         });
  }
  void StopLane(int lane) override { inner_->StopLane(lane); }
  void Call(int lane, int peer, CallArgs args, int timeout_ms,
            transport::CallDone done) override {
    if (fail_at_once) {
      Status s = fail_at_once(peer, args);
      if (!s.ok()) return done(s, {}, {});
    }
    if (!rewrite_reply) return inner_->Call(lane, peer, std::move(args), timeout_ms, std::move(done));
    uint16_t op = args.opcode;
    inner_->Call(lane, peer, std::move(args), timeout_ms,
                 [this, op, done = std::move(done)](Status s, std::string_view reply,
                                                    std::string_view bulk) {
                   std::string r(reply), b(bulk);
                   if (rewrite_reply) rewrite_reply(op, &s, &r, &b);
                   done(s, r, b);
                 });
  }
  const transport::PeerCounters& counters(int peer) const override {
    return inner_->counters(peer);
  }
  size_t max_bulk_per_call() const override { return inner_->max_bulk_per_call(); }
  bool peer_up(int peer) const override { return inner_->peer_up(peer); }

 private:
  std::unique_ptr<Transport> inner_;
};

// Bytes that differ at every offset and per seed, so a value stitched from
// two versions never equals either.
std::string Pattern(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 0x1234567;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s[i] = static_cast<char>(x >> 24);
  }
  return s;
}

// Compares large values without printing them.
::testing::AssertionResult SameBytes(std::string_view got, std::string_view want) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure()
           << "size " << got.size() << ", want " << want.size();
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i])
      return ::testing::AssertionFailure() << "first difference at byte " << i << " of "
                                           << got.size();
  return ::testing::AssertionSuccess();
}

// ----------------------------------------------------------------- fixture

struct ClusterOptions {
  int nodes = 3;
  int lanes = 1;
  size_t max_bulk_per_call = 4 * kMiB;
  int latency_ms = 0;
  int timeout_ms = 3000;
  // Heartbeats always run (a peer may count as down until it has answered
  // one); nothing is marked down within a test unless it lowers this.
  int heartbeat_ms = 20;
  int down_after_ms = 60000;
  size_t max_batch_keys = 4096;
  size_t maxmemory = 64 * kMiB;
  bool wait_until_up = true;  // Build returns once every peer answered
  int replicas = 1;           // pool-replicas
  int64_t (*wall_ms)() = &WallMs;  // the wall clock every Pool reads
};

// One call as the network saw it (recorded by the call filter).
struct SentCall {
  int from, to;
  uint16_t opcode;
  size_t bulk_in, bulk_out_capacity;
};

class PoolTest : public ::testing::Test {
 protected:
  struct Got {
    GetResult::State state;
    std::string value;
    bool local;
  };
  struct SetOutcome {
    Status status;
    size_t failed_keys = 0;
  };

  // A pool whose heartbeat sweeps abandoned puts after 4 x 50 ms + 1 s;
  // returns node 1's used memory before any put.
  uint64_t BuildWithQuickSweep() {
    ClusterOptions o;
    o.timeout_ms = 50;
    o.heartbeat_ms = 50;
    Build(o);
    return store(1).GetStats().used_memory;
  }
  void Build(ClusterOptions o = {}) {
    opts_ = o;
    base_ = event_base_new();
    ASSERT_NE(base_, nullptr);
    // Keeps EVLOOP_ONCE from sleeping past RunUntil's bound.
    tick_ = event_new(base_, -1, EV_PERSIST, [](evutil_socket_t, short, void*) {}, nullptr);
    timeval tv{0, 5000};
    event_add(tick_, &tv);
    net_ = std::make_unique<FakeNetwork>(base_, o.nodes);
    // Read by each Pool when it is built.
    net_->set_max_bulk_per_call(o.max_bulk_per_call);
    net_->set_latency_ms(o.latency_ms);
    RecordCalls();
    std::vector<NodeSpec> specs;
    for (int i = 0; i < o.nodes; ++i) specs.push_back({"127.0.0.1", 7000 + i, 17000 + i});
    for (int i = 0; i < o.nodes; ++i) {
      storage::StoreOptions so;
      so.maxmemory = o.maxmemory;
      auto st = Store::Open(so);
      ASSERT_TRUE(st.ok()) << st.status().ToString();
      stores_.push_back(std::move(st.value()));
      transports_.push_back(std::make_unique<HookTransport>(net_->CreateTransport(i)));
      execs_.push_back(std::make_unique<FakeExecutor>(i));
      PoolOptions po;
      po.nodes = specs;
      po.self = i;
      po.timeout_ms = o.timeout_ms;
      po.heartbeat_ms = o.heartbeat_ms;
      po.down_after_ms = o.down_after_ms;
      po.max_batch_keys = o.max_batch_keys;
      po.replicas = o.replicas;
      po.wall_ms = o.wall_ms;
      pools_.push_back(
          std::make_unique<Pool>(po, stores_[i].get(), transports_[i].get(), execs_[i].get()));
    }
    std::vector<event_base*> lanes(o.lanes, base_);
    for (auto& p : pools_) ASSERT_TRUE(p->Start(lanes).ok());
    for (auto& p : pools_) p->StartHeartbeats(base_);
    if (!o.wait_until_up) return;
    ASSERT_TRUE(RunUntil(
        [&] {
          for (auto& p : pools_)
            for (int n = 0; n < o.nodes; ++n)
              if (!p->NodeUp(n)) return false;
          return true;
        },
        3000))
        << "peers never came up";
  }

  void TearDown() override {
    if (base_ == nullptr) return;
    for (auto& t : transports_) {
      t->after_handle = nullptr;
      t->rewrite_reply = nullptr;
      t->fail_at_once = nullptr;
    }
    for (auto& p : pools_)
      for (int lane = 0; lane < opts_.lanes; ++lane) p->StopLane(lane);
    // Let every scheduled delivery run, so pins held by replies in flight
    // are dropped before the stores go.
    RunFor(opts_.latency_ms * 2 + 20);
    EXPECT_EQ(net_->in_flight(), 0u);
    pools_.clear();
    transports_.clear();
    net_.reset();
    execs_.clear();
    stores_.clear();
    event_free(tick_);
    event_base_free(base_);
  }

  // Node i dies and starts again, empty (a new Store, transport and Pool
  // on the same network slot); returns once it is started, not in sync.
  void Restart(int i) {
    pools_[i]->StopLane(0);
    RunFor(opts_.latency_ms * 2 + 20);  // replies holding its items' pins
    PoolOptions po;
    po.nodes = {};
    for (int n = 0; n < opts_.nodes; ++n) po.nodes.push_back(pool(0).node(n));
    pools_[i].reset();
    transports_[i].reset();
    stores_[i].reset();
    storage::StoreOptions so;
    so.maxmemory = opts_.maxmemory;
    auto st = Store::Open(so);
    ASSERT_TRUE(st.ok());
    stores_[i] = std::move(st.value());
    transports_[i] = std::make_unique<HookTransport>(net_->CreateTransport(i));
    po.self = i;
    po.timeout_ms = opts_.timeout_ms;
    po.heartbeat_ms = opts_.heartbeat_ms;
    po.down_after_ms = opts_.down_after_ms;
    po.max_batch_keys = opts_.max_batch_keys;
    po.replicas = opts_.replicas;
    po.wall_ms = opts_.wall_ms;
    pools_[i] = std::make_unique<Pool>(po, stores_[i].get(), transports_[i].get(), execs_[i].get());
    ASSERT_TRUE(pools_[i]->Start(std::vector<event_base*>(opts_.lanes, base_)).ok());
    pools_[i]->StartHeartbeats(base_);
  }

  Pool& pool(int i) { return *pools_[i]; }
  Store& store(int i) { return *stores_[i]; }
  FakeExecutor& exec(int i) { return *execs_[i]; }
  HookTransport& hook(int i) { return *transports_[i]; }
  FakeNetwork& net() { return *net_; }
  std::string Addr(int node) { return pool(0).node(node).Addr(); }

  bool RunUntil(const std::function<bool()>& pred, int max_ms = 5000) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(max_ms);
    while (!pred()) {
      if (std::chrono::steady_clock::now() >= end) return false;
      event_base_loop(base_, EVLOOP_ONCE);
    }
    return true;
  }
  void RunFor(int ms) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    RunUntil([&] { return std::chrono::steady_clock::now() >= end; }, ms + 1000);
  }

  // Records every call but heartbeats (opcode, sizes) and lets it through;
  // `inject` may fail chosen calls (heartbeats included).
  void RecordCalls(std::function<Status(int from, int to, const CallArgs&)> inject = nullptr) {
    net_->SetCallFilter([this, inject](int from, int to, const CallArgs& a) {
      if (a.opcode == kOpPing) return inject ? inject(from, to, a) : Status::OK();
      size_t in = 0;
      for (const iovec& v : a.bulk_in) in += v.iov_len;
      sent_.push_back({from, to, a.opcode, in, a.bulk_out_capacity});
      return inject ? inject(from, to, a) : Status::OK();
    });
  }
  size_t CountSent(uint16_t opcode, int to = -1, int from = -1) const {
    return std::count_if(sent_.begin(), sent_.end(), [&](const SentCall& c) {
      return c.opcode == opcode && (to < 0 || c.to == to) && (from < 0 || c.from == from);
    });
  }
  // Every call `from` made to `to`, heartbeats included (transport counters).
  uint64_t Calls(int from, int to) { return pool(from).counters(to).calls.load(); }

  // `n` distinct keys that `node` owns, "<prefix><i>".
  std::vector<std::string> KeysOn(int node, size_t n, const std::string& prefix = "k:") {
    std::vector<std::string> keys;
    for (int i = 0; keys.size() < n; ++i) {
      std::string k = prefix + std::to_string(i);
      if (pool(0).OwnerOf(k) == node) keys.push_back(std::move(k));
    }
    return keys;
  }

  static std::vector<std::string_view> Views(const std::vector<std::string>& v) {
    return {v.begin(), v.end()};
  }

  // ---- each request run to completion; *sync tells whether done ran
  // before the method returned. A hung request fails the test. ----

  std::vector<Got> Get(int from, const std::vector<std::string>& keys, int db = 0,
                       bool* sync = nullptr, int lane = 0) {
    struct S {
      bool done = false;
      std::vector<Got> out;
    };
    auto s = std::make_shared<S>();
    auto views = Views(keys);
    pool(from).MultiGet(lane, db, views, WallMs(), [s](std::vector<GetResult>& r) {
      EXPECT_FALSE(s->done) << "done ran twice";
      for (auto& g : r) s->out.push_back({g.state, std::string(g.value()), bool(g.local)});
      s->done = true;
    });
    if (sync) *sync = s->done;
    EXPECT_TRUE(RunUntil([&] { return s->done; })) << "MultiGet hung";
    return s->out;
  }

  std::vector<int8_t> Flags(bool del, int from, const std::vector<std::string>& keys, int db = 0,
                            bool* sync = nullptr) {
    struct S {
      bool done = false;
      std::vector<int8_t> out;
    };
    auto s = std::make_shared<S>();
    auto views = Views(keys);
    auto cb = [s](std::vector<int8_t>& r) {
      EXPECT_FALSE(s->done) << "done ran twice";
      s->out = r;
      s->done = true;
    };
    if (del)
      pool(from).MultiDel(0, db, views, WallMs(), cb);
    else
      pool(from).MultiExists(0, db, views, WallMs(), cb);
    if (sync) *sync = s->done;
    EXPECT_TRUE(RunUntil([&] { return s->done; })) << (del ? "MultiDel" : "MultiExists")
                                                    << " hung";
    return s->out;
  }
  std::vector<int8_t> Exists(int from, const std::vector<std::string>& keys, int db = 0,
                             bool* sync = nullptr) {
    return Flags(false, from, keys, db, sync);
  }
  std::vector<int8_t> Del(int from, const std::vector<std::string>& keys, int db = 0,
                          bool* sync = nullptr) {
    return Flags(true, from, keys, db, sync);
  }

  // kvs = k1, v1, k2, v2...; the values are handed to the pool by reference
  // with an owner, as the server does.
  SetOutcome Set(int from, const std::vector<std::string>& kvs, int db = 0,
                 bool* sync = nullptr) {
    struct S {
      bool done = false;
      SetOutcome out;
    };
    auto s = std::make_shared<S>();
    auto data = std::make_shared<const std::vector<std::string>>(kvs);
    auto views = Views(*data);
    pool(from).MultiSet(0, db, views, WallMs(), data, [s](Status st, size_t failed) {
      EXPECT_FALSE(s->done) << "done ran twice";
      s->out = {std::move(st), failed};
      s->done = true;
    });
    if (sync) *sync = s->done;
    EXPECT_TRUE(RunUntil([&] { return s->done; })) << "MultiSet hung";
    return s->out;
  }

  // Writes straight into the owner's store.
  void Put(std::string_view key, std::string_view value, int db = 0) {
    ASSERT_TRUE(
        store(pool(0).OwnerOf(key)).Set(db, key, value, {}, WallMs(), nullptr).ok());
  }
  std::string Peek(std::string_view key, int db = 0) {
    storage::ItemRef it = store(pool(0).OwnerOf(key)).Peek(db, key, WallMs());
    return it ? std::string(it.value()) : std::string("<nil>");
  }

  ClusterOptions opts_;
  event_base* base_ = nullptr;
  event* tick_ = nullptr;
  std::unique_ptr<FakeNetwork> net_;
  std::vector<std::unique_ptr<Store>> stores_;
  std::vector<std::unique_ptr<HookTransport>> transports_;
  std::vector<std::unique_ptr<FakeExecutor>> execs_;
  std::vector<std::unique_ptr<Pool>> pools_;
  std::vector<SentCall> sent_;
};

// Keys from every node, interleaved so no two neighbours share an owner.
std::vector<std::string> Interleave(const std::vector<std::vector<std::string>>& per_node) {
  std::vector<std::string> out;
  for (size_t i = 0;; ++i) {
    bool any = false;
    for (const auto& v : per_node)
      if (i < v.size()) out.push_back(v[i]), any = true;
    if (!any) return out;
  }
}

std::vector<std::string> Pairs(const std::vector<std::string>& keys,
                               const std::function<std::string(const std::string&)>& value) {
  std::vector<std::string> kvs;
  for (const auto& k : keys) {
    kvs.push_back(k);
    kvs.push_back(value(k));
  }
  return kvs;
}

std::string ValueOf(const std::string& k) { return "v=" + k; }

// ======================================================= split and reassembly

TEST_F(PoolTest, SplitsByOwnerAndReassemblesInKeyOrder) {
  Build();
  auto keys = Interleave({KeysOn(0, 10), KeysOn(1, 10), KeysOn(2, 10)});
  std::reverse(keys.begin(), keys.begin() + 13);  // not in owner order either

  SetOutcome set = Set(0, Pairs(keys, ValueOf));
  ASSERT_TRUE(set.status.ok()) << set.status.ToString();
  EXPECT_EQ(set.failed_keys, 0u);
  // Each key is stored on its owner only.
  for (const auto& k : keys) {
    int owner = pool(0).OwnerOf(k);
    for (int n = 0; n < 3; ++n)
      EXPECT_EQ(static_cast<bool>(store(n).Peek(0, k, WallMs())), n == owner) << k << " on " << n;
  }
  // One MultiSet call to each remote owner, none to itself.
  EXPECT_EQ(CountSent(kOpMultiSet, 0), 0u);
  EXPECT_EQ(CountSent(kOpMultiSet, 1), 1u);
  EXPECT_EQ(CountSent(kOpMultiSet, 2), 1u);

  // Any node reads them back in the caller's order, with missing keys
  // wherever they were asked.
  std::vector<std::string> ask;
  for (size_t i = 0; i < keys.size(); ++i) {
    ask.push_back(keys[i]);
    if (i % 4 == 0) ask.push_back("missing:" + std::to_string(i));
  }
  for (int from = 0; from < 3; ++from) {
    sent_.clear();
    auto got = Get(from, ask);
    ASSERT_EQ(got.size(), ask.size());
    for (size_t i = 0; i < ask.size(); ++i) {
      if (ask[i].rfind("missing:", 0) == 0) {
        EXPECT_EQ(got[i].state, GetResult::kMissing) << i;
        EXPECT_EQ(got[i].value, "") << i;
      } else {
        EXPECT_EQ(got[i].state, GetResult::kFound) << i;
        EXPECT_EQ(got[i].value, ValueOf(ask[i])) << i;
        // Local hits are pinned items, remote ones copies.
        EXPECT_EQ(got[i].local, pool(from).IsLocal(ask[i])) << i;
      }
    }
    // One call per remote owner.
    for (int n = 0; n < 3; ++n) EXPECT_EQ(CountSent(kOpMultiGet, n, from), n == from ? 0u : 1u);

    auto ex = Exists(from, ask);
    ASSERT_EQ(ex.size(), ask.size());
    for (size_t i = 0; i < ask.size(); ++i)
      EXPECT_EQ(ex[i], ask[i].rfind("missing:", 0) == 0 ? 0 : 1) << i;
  }

  auto del = Del(1, ask);
  ASSERT_EQ(del.size(), ask.size());
  for (size_t i = 0; i < ask.size(); ++i)
    EXPECT_EQ(del[i], ask[i].rfind("missing:", 0) == 0 ? 0 : 1) << i;
  for (const auto& k : keys) EXPECT_EQ(Peek(k), "<nil>") << k;
  for (int8_t d : Del(2, ask)) EXPECT_EQ(d, 0);
  for (int8_t e : Exists(0, ask)) EXPECT_EQ(e, 0);
  for (const auto& g : Get(0, ask)) EXPECT_EQ(g.state, GetResult::kMissing);
}

TEST_F(PoolTest, DuplicateKeysWithinAndAcrossNodes) {
  Build();
  std::string a = KeysOn(1, 1)[0], b = KeysOn(2, 1)[0], c = KeysOn(0, 1)[0];
  // Last writer wins within one MSET, remote and local alike.
  SetOutcome set = Set(0, {a, "a1", b, "b1", a, "a2", c, "c1", b, "b2", c, "c2", a, "a3"});
  ASSERT_TRUE(set.status.ok()) << set.status.ToString();
  EXPECT_EQ(Peek(a), "a3");
  EXPECT_EQ(Peek(b), "b2");
  EXPECT_EQ(Peek(c), "c2");

  std::vector<std::string> ask = {a, a, b, a, c, c, b, "nope", "nope", a};
  for (int from = 0; from < 3; ++from) {
    auto got = Get(from, ask);
    ASSERT_EQ(got.size(), ask.size());
    for (size_t i = 0; i < ask.size(); ++i) {
      std::string want = ask[i] == a ? "a3" : ask[i] == b ? "b2" : ask[i] == c ? "c2" : "";
      EXPECT_EQ(got[i].state, want.empty() ? GetResult::kMissing : GetResult::kFound) << i;
      EXPECT_EQ(got[i].value, want) << i;
    }
    auto ex = Exists(from, ask);
    EXPECT_EQ(ex, (std::vector<int8_t>{1, 1, 1, 1, 1, 1, 1, 0, 0, 1}));
  }
  // A duplicated key is removed once: exactly one of its slots says 1, the
  // first one (each owner handles its keys in order).
  auto del = Del(0, ask);
  EXPECT_EQ(del, (std::vector<int8_t>{1, 0, 1, 0, 1, 0, 0, 0, 0, 0}));
}

TEST_F(PoolTest, EmptyBatchFinishesAtOnce) {
  Build();
  bool sync = false;
  EXPECT_TRUE(Get(0, {}, 0, &sync).empty());
  EXPECT_TRUE(sync);
  EXPECT_TRUE(Exists(1, {}, 0, &sync).empty());
  EXPECT_TRUE(sync);
  EXPECT_TRUE(Del(2, {}, 0, &sync).empty());
  EXPECT_TRUE(sync);
  SetOutcome s = Set(0, {}, 0, &sync);
  EXPECT_TRUE(sync);
  EXPECT_TRUE(s.status.ok());
  EXPECT_EQ(s.failed_keys, 0u);
  EXPECT_TRUE(sent_.empty());
}

TEST_F(PoolTest, AllLocalKeysFinishAtOnceWithoutCalls) {
  Build();
  auto keys = KeysOn(1, 20);
  bool sync = false;
  SetOutcome s = Set(1, Pairs(keys, ValueOf), 0, &sync);
  EXPECT_TRUE(sync);
  EXPECT_TRUE(s.status.ok());
  auto got = Get(1, keys, 0, &sync);
  EXPECT_TRUE(sync);
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(got[i].value, ValueOf(keys[i]));
  EXPECT_EQ(Exists(1, keys, 0, &sync), std::vector<int8_t>(20, 1));
  EXPECT_TRUE(sync);
  EXPECT_TRUE(sent_.empty());
  EXPECT_TRUE(pool(1).AllLocal(Views(keys)));
  EXPECT_FALSE(pool(0).AllLocal(Views(keys)));
}

TEST_F(PoolTest, BinaryKeysAndValues) {
  Build();
  std::vector<std::string> keys = {
      std::string("\0", 1),        std::string("a\0b", 3), "\r\n*1\r\n$3\r\nGET\r\n",
      "\xff\xfe\xfd",              "",                     "{tag}one",
      "{tag}two",                  "tag",                  std::string(300, 'x'),
      std::string("k\0\0\0z", 5)};
  std::vector<std::string> kvs;
  for (size_t i = 0; i < keys.size(); ++i) {
    kvs.push_back(keys[i]);
    kvs.push_back(std::string("\0\r\n\xff", 4) + keys[i] + std::string(1, char(i)));
  }
  std::set<int> owners;
  for (const auto& k : keys) owners.insert(pool(0).OwnerOf(k));
  EXPECT_EQ(owners.size(), 3u) << "the keys should span every node";
  EXPECT_EQ(pool(0).OwnerOf("{tag}one"), pool(0).OwnerOf("tag"));
  EXPECT_EQ(pool(0).OwnerOf("{tag}two"), pool(0).OwnerOf("tag"));

  ASSERT_TRUE(Set(2, kvs).status.ok());
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(Peek(keys[i]), kvs[2 * i + 1]) << i;
  for (int from = 0; from < 3; ++from) {
    auto got = Get(from, keys);
    ASSERT_EQ(got.size(), keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      EXPECT_EQ(got[i].state, GetResult::kFound) << i;
      EXPECT_EQ(got[i].value, kvs[2 * i + 1]) << i;
    }
  }
  // A key differing only after a NUL is a different key.
  EXPECT_EQ(Exists(0, {std::string("a\0c", 3), std::string("a\0b", 3)}),
            (std::vector<int8_t>{0, 1}));
  EXPECT_EQ(Del(1, keys), std::vector<int8_t>(keys.size(), 1));
  EXPECT_EQ(Exists(2, keys), std::vector<int8_t>(keys.size(), 0));
}

TEST_F(PoolTest, DatabasesAreSeparate) {
  Build();
  auto keys = Interleave({KeysOn(0, 3), KeysOn(1, 3), KeysOn(2, 3)});
  ASSERT_TRUE(Set(0, Pairs(keys, ValueOf), 7).status.ok());
  EXPECT_EQ(Exists(1, keys, 0), std::vector<int8_t>(keys.size(), 0));
  EXPECT_EQ(Exists(1, keys, 7), std::vector<int8_t>(keys.size(), 1));
  for (const auto& g : Get(2, keys, 7)) EXPECT_EQ(g.state, GetResult::kFound);
  for (const auto& g : Get(2, keys, 8)) EXPECT_EQ(g.state, GetResult::kMissing);
  EXPECT_EQ(Del(0, keys, 15), std::vector<int8_t>(keys.size(), 0));
  EXPECT_EQ(Del(0, keys, 7), std::vector<int8_t>(keys.size(), 1));
}

TEST_F(PoolTest, TenThousandKeysSpreadOverTheNodes) {
  Build();
  std::vector<std::string> keys;
  for (int i = 0; i < 10000; ++i) keys.push_back("big:" + std::to_string(i));
  SetOutcome s = Set(0, Pairs(keys, ValueOf));
  ASSERT_TRUE(s.status.ok()) << s.status.ToString();
  for (int n = 0; n < 3; ++n) EXPECT_NEAR(store(n).GetStats().keys, 3333.0, 400.0) << n;

  std::vector<std::string> ask = keys;
  for (int i = 0; i < 10000; i += 3) ask[i] = "absent:" + std::to_string(i);
  auto got = Get(1, ask);
  ASSERT_EQ(got.size(), ask.size());
  for (size_t i = 0; i < ask.size(); ++i) {
    if (i % 3 == 0) {
      ASSERT_EQ(got[i].state, GetResult::kMissing) << i;
    } else {
      ASSERT_EQ(got[i].state, GetResult::kFound) << i;
      ASSERT_EQ(got[i].value, ValueOf(ask[i])) << i;
    }
  }
  auto ex = Exists(2, ask);
  ASSERT_EQ(ex.size(), ask.size());
  for (size_t i = 0; i < ask.size(); ++i) ASSERT_EQ(ex[i], i % 3 == 0 ? 0 : 1) << i;
  auto del = Del(0, keys);
  ASSERT_EQ(del.size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) ASSERT_EQ(del[i], 1) << i;
  for (int n = 0; n < 3; ++n) EXPECT_EQ(store(n).GetStats().keys, 0u);
}

// More keys for one node than one call may carry (4096 by default): the
// part is split into several calls, results still in order.
TEST_F(PoolTest, TenThousandKeysOnOneNodeAreSplitAtTheKeyCap) {
  Build();
  auto keys = KeysOn(1, 10000);
  const uint64_t want_calls = (10000 + 4095) / 4096;  // 3

  SetOutcome s = Set(0, Pairs(keys, ValueOf));
  ASSERT_TRUE(s.status.ok()) << s.status.ToString();
  // Staged, then published at once: MSET stays atomic on the node.
  EXPECT_EQ(CountSent(kOpStageSet, 1), want_calls);
  EXPECT_EQ(CountSent(kOpStageBegin, 1), 1u);
  EXPECT_EQ(CountSent(kOpPutEnd, 1), 1u);
  EXPECT_EQ(CountSent(kOpMultiSet, 1), 0u);
  EXPECT_EQ(store(1).GetStats().keys, 10000u);

  auto got = Get(0, keys);
  EXPECT_EQ(CountSent(kOpMultiGet, 1), want_calls);
  ASSERT_EQ(got.size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) ASSERT_EQ(got[i].value, ValueOf(keys[i])) << i;

  EXPECT_EQ(Exists(0, keys), std::vector<int8_t>(keys.size(), 1));
  EXPECT_EQ(CountSent(kOpMultiExists, 1), want_calls);

  EXPECT_EQ(Del(0, keys), std::vector<int8_t>(keys.size(), 1));
  EXPECT_EQ(CountSent(kOpMultiDel, 1), want_calls);
  EXPECT_EQ(store(1).GetStats().keys, 0u);
}

// pool-max-batch (PoolOptions::max_batch_keys) bounds the keys of one call.
TEST_F(PoolTest, MaxBatchKeysBoundsKeysPerCall) {
  ClusterOptions o;
  o.max_batch_keys = 100;
  Build(o);
  auto keys = KeysOn(2, 250);
  ASSERT_TRUE(Set(1, Pairs(keys, ValueOf)).status.ok());
  EXPECT_EQ(CountSent(kOpStageSet, 2), 3u);  // staged, published at once
  auto got = Get(1, keys);
  for (size_t i = 0; i < keys.size(); ++i) ASSERT_EQ(got[i].value, ValueOf(keys[i])) << i;
  EXPECT_EQ(CountSent(kOpMultiGet, 2), 3u);
  EXPECT_EQ(Exists(1, keys), std::vector<int8_t>(keys.size(), 1));
  EXPECT_EQ(CountSent(kOpMultiExists, 2), 3u);
  EXPECT_EQ(Del(1, keys), std::vector<int8_t>(keys.size(), 1));
  EXPECT_EQ(CountSent(kOpMultiDel, 2), 3u);
}

// Requests may run on any lane; calls go out on it and the owner sees it.
TEST_F(PoolTest, RequestsOnASecondLane) {
  ClusterOptions o;
  o.lanes = 2;
  Build(o);
  auto keys = Interleave({KeysOn(0, 5), KeysOn(1, 5), KeysOn(2, 5)});
  for (const auto& k : keys) Put(k, ValueOf(k));
  auto got = Get(0, keys, 0, nullptr, /*lane=*/1);
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(got[i].value, ValueOf(keys[i]));

  bool done = false;
  std::vector<std::string_view> argv = {"PING"};
  pool(0).Forward(1, 2, 0, 2, argv, [&](Status s, std::string reply) {
    EXPECT_TRUE(s.ok()) << s.ToString();
    done = true;
  });
  ASSERT_TRUE(RunUntil([&] { return done; }));
  ASSERT_EQ(exec(2).commands.size(), 1u);
  EXPECT_EQ(exec(2).commands[0].lane, 1);
}

// ================================================================== values

class PoolValueTest : public PoolTest {
 protected:
  static constexpr size_t kChunk = 64 * kKiB;
  void SetUp() override {
    ClusterOptions o;
    o.max_bulk_per_call = kChunk;
    Build(o);
  }
};

TEST_F(PoolValueTest, ValueSizesAroundTheCallLimit) {
  const std::vector<size_t> sizes = {0,          1,          100,         kChunk - 1, kChunk,
                                     kChunk + 1, 3 * kChunk, 1 * kMiB,    kMiB + 7};
  std::vector<std::string> keys, kvs;
  std::map<std::string, std::string> want;
  for (int node = 0; node < 3; ++node) {
    auto on = KeysOn(node, sizes.size(), "val:");
    for (size_t i = 0; i < sizes.size(); ++i) {
      std::string v = Pattern(sizes[i], node * 100 + i);
      keys.push_back(on[i]);
      kvs.push_back(on[i]);
      kvs.push_back(v);
      want[on[i]] = v;
    }
  }
  SetOutcome s = Set(0, kvs);
  ASSERT_TRUE(s.status.ok()) << s.status.ToString();
  EXPECT_EQ(s.failed_keys, 0u);
  for (const auto& k : keys) EXPECT_TRUE(SameBytes(Peek(k), want[k])) << k.size();

  // No call carried more than the limit, either way.
  for (const SentCall& c : sent_) {
    EXPECT_LE(c.bulk_in, kChunk) << "opcode " << c.opcode;
    EXPECT_LE(c.bulk_out_capacity, kChunk) << "opcode " << c.opcode;
  }
  // Values over the limit went as begin + chunks + end: 4 per remote node.
  // (The small ones there needed more than one call too: staged, and
  // published by one more kOpPutEnd per node.)
  EXPECT_EQ(CountSent(kOpPutBegin), 8u);
  EXPECT_EQ(CountSent(kOpStageBegin), 2u);
  EXPECT_EQ(CountSent(kOpPutEnd), 8u + 2u);
  const size_t chunks_per_node = 2 + 3 + 16 + 17;  // kChunk+1, 3*kChunk, 1 MiB, 1 MiB+7
  EXPECT_EQ(CountSent(kOpPutChunk), 2 * chunks_per_node);

  for (int from = 0; from < 3; ++from) {
    sent_.clear();
    auto got = Get(from, keys);
    ASSERT_EQ(got.size(), keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      EXPECT_EQ(got[i].state, GetResult::kFound) << i;
      EXPECT_TRUE(SameBytes(got[i].value, want[keys[i]])) << "from " << from << " key " << i;
    }
    EXPECT_EQ(CountSent(kOpGetChunk), 2 * chunks_per_node);
    for (const SentCall& c : sent_) EXPECT_LE(c.bulk_out_capacity, kChunk);
  }
  // A large value next to small ones in one request, twice.
  std::vector<std::string> mixed = {keys[7], keys[9 + 1], keys[18 + 8], keys[7], keys[9 + 4]};
  auto got = Get(0, mixed);
  for (size_t i = 0; i < mixed.size(); ++i) EXPECT_TRUE(SameBytes(got[i].value, want[mixed[i]]));
}

TEST_F(PoolValueTest, ManySmallValuesArePackedIntoSeveralCalls) {
  auto keys = KeysOn(1, 100);
  std::vector<std::string> kvs;
  for (size_t i = 0; i < keys.size(); ++i) {
    kvs.push_back(keys[i]);
    kvs.push_back(Pattern(10 * kKiB, i));
  }
  ASSERT_TRUE(Set(0, kvs).status.ok());
  // Six 10 KiB values fill a 64 KiB call: packed, not one call per value
  // (staged, then published at once).
  size_t sets = CountSent(kOpStageSet, 1);
  EXPECT_GE(sets, (100 * 10 * kKiB + kChunk - 1) / kChunk);
  EXPECT_LE(sets, 20u);
  for (const SentCall& c : sent_) EXPECT_LE(c.bulk_in, kChunk);
  EXPECT_EQ(CountSent(kOpPutBegin), 0u);

  sent_.clear();
  auto got = Get(2, keys);
  ASSERT_EQ(got.size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i)
    ASSERT_TRUE(SameBytes(got[i].value, kvs[2 * i + 1])) << i;
  EXPECT_GE(CountSent(kOpMultiGet, 1), sets);
  EXPECT_EQ(CountSent(kOpGetChunk), 0u);
}

TEST_F(PoolValueTest, OverwriteLargeWithSmallAndBack) {
  std::string k = KeysOn(2, 1)[0];
  std::string big = Pattern(kMiB, 1), small = "tiny", big2 = Pattern(700 * kKiB, 2);
  ASSERT_TRUE(Set(0, {k, big}).status.ok());
  EXPECT_TRUE(SameBytes(Get(1, {k})[0].value, big));
  ASSERT_TRUE(Set(1, {k, small}).status.ok());
  EXPECT_EQ(Get(0, {k})[0].value, small);
  ASSERT_TRUE(Set(0, {k, big2}).status.ok());
  EXPECT_TRUE(SameBytes(Get(1, {k})[0].value, big2));
  ASSERT_TRUE(Set(0, {k, ""}).status.ok());
  auto g = Get(1, {k});
  EXPECT_EQ(g[0].state, GetResult::kFound);
  EXPECT_EQ(g[0].value, "");
}

// MultiSet's `owner` keeps the values alive until no transport needs them,
// even after the caller dropped its reference (checked under ASan).
TEST_F(PoolValueTest, ValuesLiveAsLongAsTheOwner) {
  net().set_latency_ms(2);
  auto keys = Interleave({KeysOn(0, 3), KeysOn(1, 3), KeysOn(2, 3)});
  std::vector<std::string> want;
  bool done = false;
  {
    auto data = std::make_shared<std::vector<std::string>>();
    for (size_t i = 0; i < keys.size(); ++i) {
      data->push_back(keys[i]);
      data->push_back(Pattern(i % 2 ? 300 * kKiB : 5 * kKiB, i));
      want.push_back(data->back());
    }
    std::vector<std::string_view> views(data->begin(), data->end());
    pool(0).MultiSet(0, 0, views, WallMs(), std::move(data), [&](Status s, size_t failed) {
      EXPECT_TRUE(s.ok()) << s.ToString();
      EXPECT_EQ(failed, 0u);
      done = true;
    });
  }
  ASSERT_TRUE(RunUntil([&] { return done; }));
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_TRUE(SameBytes(Peek(keys[i]), want[i])) << i;
}

// ========================================================== failing nodes

TEST_F(PoolTest, RefusingNodeFailsOnlyItsKeys) {
  Build();
  auto k0 = KeysOn(0, 4), k1 = KeysOn(1, 5), k2 = KeysOn(2, 6);
  auto keys = Interleave({k0, k1, k2});
  for (const auto& k : keys) Put(k, ValueOf(k));
  net().SetDown(2, FakeNetwork::DownMode::kRefuse);
  EXPECT_TRUE(pool(0).NodeUp(2)) << "not noticed yet (down_after_ms is long)";

  auto got = Get(0, keys);
  ASSERT_EQ(got.size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    if (pool(0).OwnerOf(keys[i]) == 2) {
      EXPECT_EQ(got[i].state, GetResult::kUnavailable) << i;
    } else {
      EXPECT_EQ(got[i].state, GetResult::kFound) << i;
      EXPECT_EQ(got[i].value, ValueOf(keys[i])) << i;
    }
  }
  auto ex = Exists(1, keys);
  for (size_t i = 0; i < keys.size(); ++i)
    EXPECT_EQ(ex[i], pool(0).OwnerOf(keys[i]) == 2 ? -1 : 1) << i;

  std::vector<std::string> fresh;
  for (const auto& k : keys) fresh.push_back(k + "!");
  SetOutcome s = Set(0, Pairs(fresh, ValueOf));
  size_t on2 = std::count_if(fresh.begin(), fresh.end(),
                             [&](const std::string& k) { return pool(0).OwnerOf(k) == 2; });
  ASSERT_GT(on2, 0u);
  EXPECT_EQ(s.status.code(), Code::kUnavailable) << s.status.ToString();
  EXPECT_NE(s.status.message().find(Addr(2)), std::string::npos) << s.status.ToString();
  EXPECT_EQ(s.failed_keys, on2);
  for (const auto& k : fresh) {
    if (pool(0).OwnerOf(k) != 2) {
      EXPECT_EQ(Peek(k), ValueOf(k)) << k;
    }
  }

  auto del = Del(0, keys);
  for (size_t i = 0; i < keys.size(); ++i)
    EXPECT_EQ(del[i], pool(0).OwnerOf(keys[i]) == 2 ? -1 : 1) << i;
  for (const auto& k : k2) EXPECT_EQ(Peek(k), ValueOf(k)) << "a refused DEL removed " << k;

  // Back up: everything works again.
  net().SetUp(2);
  EXPECT_EQ(Del(0, k2), std::vector<int8_t>(k2.size(), 1));
}

TEST_F(PoolValueTest, RefusingNodeFailsItsLargeValuesToo) {
  auto k1 = KeysOn(1, 2), k2 = KeysOn(2, 3);
  net().SetDown(1, FakeNetwork::DownMode::kRefuse);
  // Two small and one large to the down node; the rest to a healthy one.
  SetOutcome s = Set(0, {k1[0], "small", k2[0], Pattern(kMiB, 1), k1[1], Pattern(kMiB, 2),
                         k2[1], "ok", k2[2], Pattern(kChunk, 3)});
  EXPECT_EQ(s.status.code(), Code::kUnavailable) << s.status.ToString();
  EXPECT_NE(s.status.message().find(Addr(1)), std::string::npos) << s.status.ToString();
  EXPECT_EQ(s.failed_keys, 2u);
  EXPECT_TRUE(SameBytes(Peek(k2[0]), Pattern(kMiB, 1)));
  EXPECT_EQ(Peek(k2[1]), "ok");

  net().SetUp(1);
  ASSERT_TRUE(Set(0, {k1[1], Pattern(kMiB, 2)}).status.ok());
  net().SetDown(1, FakeNetwork::DownMode::kRefuse);
  auto got = Get(0, {k2[0], k1[1], k2[2]});
  EXPECT_EQ(got[0].state, GetResult::kFound);
  EXPECT_EQ(got[1].state, GetResult::kUnavailable);
  EXPECT_TRUE(SameBytes(got[2].value, Pattern(kChunk, 3)));
}

// A peer that never answers: every request still finishes within the
// pool timeout, the peer's keys failed, the others answered.
TEST_F(PoolTest, BlackholedNodeCostsAtMostTheTimeout) {
  ClusterOptions o;
  o.timeout_ms = 150;
  o.max_bulk_per_call = 64 * kKiB;
  Build(o);
  auto keys = Interleave({KeysOn(0, 3), KeysOn(1, 3), KeysOn(2, 3)});
  for (const auto& k : keys) Put(k, ValueOf(k));
  net().SetDown(1, FakeNetwork::DownMode::kBlackhole);

  auto timed = [&](const char* what, const std::function<void()>& fn) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - t0)
                  .count();
    EXPECT_GE(ms, o.timeout_ms - 20) << what;
    EXPECT_LT(ms, o.timeout_ms + 1000) << what;  // slack for a loaded machine
  };
  timed("MultiGet", [&] {
    auto got = Get(0, keys);
    for (size_t i = 0; i < keys.size(); ++i)
      EXPECT_EQ(got[i].state,
                pool(0).OwnerOf(keys[i]) == 1 ? GetResult::kUnavailable : GetResult::kFound);
  });
  timed("MultiExists", [&] {
    auto ex = Exists(2, keys);
    for (size_t i = 0; i < keys.size(); ++i)
      EXPECT_EQ(ex[i], pool(0).OwnerOf(keys[i]) == 1 ? -1 : 1);
  });
  timed("MultiDel", [&] {
    auto del = Del(0, keys);
    for (size_t i = 0; i < keys.size(); ++i)
      EXPECT_EQ(del[i], pool(0).OwnerOf(keys[i]) == 1 ? -1 : 1);
  });
  timed("MultiSet", [&] {
    auto k1 = KeysOn(1, 2, "bh:");
    SetOutcome s = Set(0, {k1[0], "v", k1[1], Pattern(kMiB, 1), keys[0], "x"});
    EXPECT_EQ(s.status.code(), Code::kTimeout) << s.status.ToString();
    EXPECT_NE(s.status.message().find(Addr(1)), std::string::npos) << s.status.ToString();
    EXPECT_EQ(s.failed_keys, 2u);
  });
  timed("Forward", [&] {
    bool done = false;
    std::vector<std::string_view> argv = {"PING"};
    pool(0).Forward(0, 1, 0, 2, argv, [&](Status s, std::string) {
      EXPECT_EQ(s.code(), Code::kTimeout) << s.ToString();
      EXPECT_NE(s.message().find(Addr(1)), std::string::npos) << s.ToString();
      done = true;
    });
    ASSERT_TRUE(RunUntil([&] { return done; }));
  });
}

// The owner stops answering in the middle of a chunked get.
TEST_F(PoolTest, BlackholedMidwayThroughAChunkedGet) {
  ClusterOptions o;
  o.timeout_ms = 200;
  o.max_bulk_per_call = 64 * kKiB;
  o.latency_ms = 1;
  Build(o);
  std::string k = KeysOn(2, 1)[0], other = KeysOn(1, 1)[0];
  Put(k, Pattern(kMiB, 9));
  Put(other, "fine");
  int chunks = 0;
  hook(2).after_handle = [&](uint16_t op, std::string_view) {
    if (op == kOpGetChunk && ++chunks == 4) net().SetDown(2, FakeNetwork::DownMode::kBlackhole);
  };
  auto t0 = std::chrono::steady_clock::now();
  auto got = Get(0, {k, other});
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - t0)
                .count();
  EXPECT_LT(ms, o.timeout_ms + 1000);
  EXPECT_EQ(got[0].state, GetResult::kUnavailable);
  EXPECT_TRUE(got[0].value.empty()) << "a failed fetch returned " << got[0].value.size()
                                    << " bytes";
  EXPECT_EQ(got[1].value, "fine");
}

TEST_F(PoolTest, OneFailedCallFailsOnlyItsKeys) {
  Build();
  auto k1 = KeysOn(1, 4), k2 = KeysOn(2, 4);
  auto keys = Interleave({KeysOn(0, 4), k1, k2});
  for (const auto& k : keys) Put(k, ValueOf(k));
  uint16_t fail_op = kOpMultiGet;
  RecordCalls([&](int from, int to, const CallArgs& a) {
    return to == 1 && a.opcode == fail_op ? Status::IOError("injected") : Status::OK();
  });

  auto got = Get(0, keys);
  for (size_t i = 0; i < keys.size(); ++i)
    EXPECT_EQ(got[i].state,
              pool(0).OwnerOf(keys[i]) == 1 ? GetResult::kUnavailable : GetResult::kFound);
  fail_op = kOpMultiExists;
  auto ex = Exists(0, keys);
  for (size_t i = 0; i < keys.size(); ++i)
    EXPECT_EQ(ex[i], pool(0).OwnerOf(keys[i]) == 1 ? -1 : 1);
  fail_op = kOpMultiDel;
  auto del = Del(2, keys);
  for (size_t i = 0; i < keys.size(); ++i)
    EXPECT_EQ(del[i], pool(0).OwnerOf(keys[i]) == 1 ? -1 : 1);
  for (const auto& k : k1) EXPECT_EQ(Peek(k), ValueOf(k));

  fail_op = kOpMultiSet;
  SetOutcome s = Set(0, Pairs(keys, [](const std::string& k) { return "new:" + k; }));
  EXPECT_EQ(s.status.code(), Code::kIOError) << s.status.ToString();
  EXPECT_NE(s.status.message().find(Addr(1)), std::string::npos) << s.status.ToString();
  EXPECT_NE(s.status.message().find("injected"), std::string::npos) << s.status.ToString();
  EXPECT_EQ(s.failed_keys, k1.size());
  for (const auto& k : keys)
    EXPECT_EQ(Peek(k), pool(0).OwnerOf(k) == 1 ? ValueOf(k) : "new:" + k) << k;
}

// One chunk of a large put fails: the value is not published (the old one
// stays), and the owner gives the reserved space back.
TEST_F(PoolValueTest, FailedChunkOfALargePutPublishesNothing) {
  std::string k = KeysOn(1, 1)[0], other = KeysOn(2, 1)[0];
  Put(k, "old");
  uint64_t used = store(1).GetStats().used_memory;
  std::vector<uint16_t> handled;
  hook(1).after_handle = [&](uint16_t op, std::string_view) {
    if (op != kOpPing) handled.push_back(op);
  };
  int chunk_calls = 0;
  RecordCalls([&](int, int to, const CallArgs& a) {
    return to == 1 && a.opcode == kOpPutChunk && ++chunk_calls == 5 ? Status::IOError("injected")
                                                                     : Status::OK();
  });
  SetOutcome s = Set(0, {k, Pattern(kMiB, 4), other, "ok"});
  EXPECT_EQ(s.status.code(), Code::kIOError) << s.status.ToString();
  EXPECT_EQ(s.failed_keys, 1u);
  EXPECT_EQ(Peek(k), "old");
  EXPECT_EQ(Peek(other), "ok");
  // The put was ended without publishing.
  ASSERT_FALSE(handled.empty());
  EXPECT_EQ(handled.back(), kOpPutEnd);
  RunFor(5);
  EXPECT_EQ(store(1).GetStats().used_memory, used);
}

TEST_F(PoolValueTest, FailedChunkOfALargeGetFailsThatKey) {
  std::string k = KeysOn(1, 1)[0], small = KeysOn(1, 1, "s:")[0], other = KeysOn(2, 1)[0];
  Put(k, Pattern(kMiB, 5));
  Put(small, "s");
  Put(other, "o");
  int chunk_calls = 0;
  RecordCalls([&](int, int to, const CallArgs& a) {
    return a.opcode == kOpGetChunk && ++chunk_calls == 7 ? Status::Unavailable("injected")
                                                         : Status::OK();
  });
  auto got = Get(0, {other, k, small});
  EXPECT_EQ(got[0].value, "o");
  EXPECT_EQ(got[1].state, GetResult::kUnavailable);
  EXPECT_TRUE(got[1].value.empty()) << got[1].value.size();
  EXPECT_EQ(got[2].value, "s");
}

// transport.h lets Call fail before it returns. A chunked get whose chunk
// calls do so must still finish once, after every part of the request.
TEST_F(PoolValueTest, ChunkCallsFailingAtOnceEndTheGetOnce) {
  std::string big = KeysOn(1, 1)[0], small = KeysOn(1, 1, "s:")[0];
  Put(big, Pattern(kMiB, 1));
  Put(small, "small");
  hook(0).fail_at_once = [](int, const CallArgs& a) {
    return a.opcode == kOpGetChunk ? Status::Unavailable("no link (backoff)") : Status::OK();
  };
  // The big key first: its fetch fails while the reply naming both keys is
  // still being read.
  auto got = Get(0, {big, small});
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].state, GetResult::kUnavailable);
  EXPECT_EQ(got[1].state, GetResult::kFound) << "done ran before the rest of the reply was read";
  EXPECT_EQ(got[1].value, "small");

  // Only the first chunk fails at once; the others are answered.
  int n = 0;
  hook(0).fail_at_once = [&](int, const CallArgs& a) {
    return a.opcode == kOpGetChunk && n++ == 0 ? Status::Unavailable("no link") : Status::OK();
  };
  std::string other = KeysOn(2, 1)[0];
  Put(other, "other");
  got = Get(0, {big, small, other});
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].state, GetResult::kUnavailable);
  EXPECT_TRUE(got[0].value.empty()) << got[0].value.size();
  EXPECT_EQ(got[1].value, "small");
  EXPECT_EQ(got[2].value, "other");
}

TEST_F(PoolValueTest, ChunkCallsFailingAtOnceEndThePutOnce) {
  std::string big = KeysOn(1, 1)[0], other = KeysOn(2, 1)[0];
  Put(big, "old");
  uint64_t used = store(1).GetStats().used_memory;
  hook(0).fail_at_once = [](int, const CallArgs& a) {
    return a.opcode == kOpPutChunk ? Status::Unavailable("no link (backoff)") : Status::OK();
  };
  SetOutcome s = Set(0, {big, Pattern(kMiB, 2), other, "fine"});
  EXPECT_EQ(s.status.code(), Code::kUnavailable) << s.status.ToString();
  EXPECT_NE(s.status.message().find(Addr(1)), std::string::npos) << s.status.ToString();
  EXPECT_EQ(s.failed_keys, 1u) << "one key failed";
  EXPECT_EQ(CountSent(kOpPutBegin, 1), 1u);
  EXPECT_EQ(CountSent(kOpPutEnd, 1), 1u) << "one put, one end";
  EXPECT_EQ(Peek(big), "old");
  EXPECT_EQ(Peek(other), "fine");
  RunFor(5);
  EXPECT_EQ(store(1).GetStats().used_memory, used) << "the reserved space was given back";
}

// Whole parts failing at once: each key of the part fails, once.
TEST_F(PoolTest, CallsFailingAtOnceFailTheirPart) {
  Build();
  auto k1 = KeysOn(1, 3), k2 = KeysOn(2, 3);
  auto keys = Interleave({KeysOn(0, 3), k1, k2});
  for (const auto& k : keys) Put(k, ValueOf(k));
  hook(0).fail_at_once = [](int peer, const CallArgs&) {
    return peer == 2 ? Status::Unavailable("no link") : Status::OK();
  };
  auto owner = [&](const std::string& k) { return pool(0).OwnerOf(k); };
  auto got = Get(0, keys);
  for (size_t i = 0; i < keys.size(); ++i)
    EXPECT_EQ(got[i].state, owner(keys[i]) == 2 ? GetResult::kUnavailable : GetResult::kFound);
  auto ex = Exists(0, keys);
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(ex[i], owner(keys[i]) == 2 ? -1 : 1);
  SetOutcome s = Set(0, Pairs(keys, ValueOf));
  EXPECT_EQ(s.status.code(), Code::kUnavailable);
  EXPECT_EQ(s.failed_keys, k2.size());
  auto del = Del(0, keys);
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(del[i], owner(keys[i]) == 2 ? -1 : 1);
  // Everything at once: done before MultiGet returns.
  hook(0).fail_at_once = [](int, const CallArgs&) { return Status::Unavailable("no link"); };
  bool sync = false;
  got = Get(0, Interleave({k1, k2}), 0, &sync);
  EXPECT_TRUE(sync);
  for (const auto& g : got) EXPECT_EQ(g.state, GetResult::kUnavailable);
}

// Two nodes failing: the keys of both are counted, the error names one.
TEST_F(PoolTest, TwoFailingNodesAreBothCounted) {
  Build();
  auto k0 = KeysOn(0, 2), k1 = KeysOn(1, 3), k2 = KeysOn(2, 4);
  net().SetDown(1, FakeNetwork::DownMode::kRefuse);
  net().SetDown(2, FakeNetwork::DownMode::kRefuse);
  SetOutcome s = Set(0, Pairs(Interleave({k0, k1, k2}), ValueOf));
  EXPECT_EQ(s.status.code(), Code::kUnavailable);
  EXPECT_EQ(s.failed_keys, k1.size() + k2.size());
  EXPECT_TRUE(s.status.message().find(Addr(1)) != std::string::npos ||
              s.status.message().find(Addr(2)) != std::string::npos)
      << s.status.ToString();
  for (const auto& k : k0) EXPECT_EQ(Peek(k), ValueOf(k));
}

// MultiSet is atomic on each node (pool.h) even when a node's part needs
// several calls (more value bytes than max_bulk_per_call, or more keys than
// pool-max-batch): the calls are staged there and published at once, and
// when one fails, none of the part is stored.
TEST_F(PoolValueTest, MultiSetIsAtomicOnEachNodeEvenWhenSplit) {
  auto k1 = KeysOn(1, 2);
  int sets = 0;
  RecordCalls([&](int, int to, const CallArgs& a) {
    return to == 1 && a.opcode == kOpStageSet && ++sets == 2 ? Status::IOError("injected")
                                                             : Status::OK();
  });
  // 2 x 40 KiB: more than one 64 KiB call.
  SetOutcome s = Set(0, {k1[0], Pattern(40 * kKiB, 1), k1[1], Pattern(40 * kKiB, 2)});
  ASSERT_EQ(sets, 2);
  EXPECT_FALSE(s.status.ok());
  // All or nothing on node 1.
  EXPECT_EQ(s.failed_keys, 2u);
  EXPECT_EQ(Peek(k1[0]), "<nil>");
  EXPECT_EQ(Peek(k1[1]), "<nil>");
  EXPECT_EQ(store(1).GetStats().keys, 0u);

  // Nothing is visible before the publish; then all of it is.
  std::vector<std::string> seen;
  RecordCalls([&](int, int to, const CallArgs& a) {
    if (to == 1 && a.opcode == kOpPutEnd) seen = {Peek(k1[0]), Peek(k1[1])};
    return Status::OK();
  });
  s = Set(0, {k1[0], Pattern(40 * kKiB, 3), k1[1], Pattern(40 * kKiB, 4)});
  ASSERT_TRUE(s.status.ok()) << s.status.ToString();
  EXPECT_EQ(seen, (std::vector<std::string>{"<nil>", "<nil>"}));
  EXPECT_EQ(Peek(k1[0]), Pattern(40 * kKiB, 3));
  EXPECT_EQ(Peek(k1[1]), Pattern(40 * kKiB, 4));
}

// A node out of memory (noeviction) refuses a write with an error that says
// so and names it; the other nodes' keys are stored.
TEST_F(PoolTest, OwnerOutOfMemory) {
  Build();
  store(2).SetPolicy(storage::EvictionPolicy::kNoEviction);
  store(2).SetMaxMemory(1 * kMiB);
  auto k2 = KeysOn(2, 8), k1 = KeysOn(1, 2);
  std::vector<std::string> kvs = {k1[0], "a", k1[1], "b"};
  for (const auto& k : k2) {
    kvs.push_back(k);
    kvs.push_back(Pattern(256 * kKiB, 1));
  }
  SetOutcome s = Set(0, kvs);
  EXPECT_EQ(s.status.code(), Code::kOutOfMemory) << s.status.ToString();
  EXPECT_NE(s.status.message().find(Addr(2)), std::string::npos) << s.status.ToString();
  EXPECT_EQ(s.failed_keys, k2.size());  // atomic on the node: all or nothing
  EXPECT_EQ(store(2).GetStats().keys, 0u);
  EXPECT_EQ(Peek(k1[0]), "a");
}

// A node leaving the network (StopLane) while requests to it are in flight
// fails them; nothing hangs.
TEST_F(PoolTest, OwnerStoppingFailsRequestsInFlight) {
  ClusterOptions o;
  o.latency_ms = 20;
  Build(o);
  auto keys = Interleave({KeysOn(0, 2), KeysOn(1, 2), KeysOn(2, 2)});
  for (const auto& k : keys) Put(k, ValueOf(k));
  std::vector<GetResult::State> states;
  bool done = false;
  auto views = Views(keys);
  pool(0).MultiGet(0, 0, views, WallMs(), [&](std::vector<GetResult>& r) {
    for (auto& g : r) states.push_back(g.state);
    done = true;
  });
  pool(2).StopLane(0);
  ASSERT_TRUE(RunUntil([&] { return done; }, 2000));
  for (size_t i = 0; i < keys.size(); ++i)
    EXPECT_EQ(states[i],
              pool(0).OwnerOf(keys[i]) == 2 ? GetResult::kUnavailable : GetResult::kFound);
}

// ============================================================= membership

class PoolMembershipTest : public PoolTest {
 protected:
  // Long enough that a loaded test machine stalling the loop does not mark
  // healthy peers down (the detector counts this node's own stalls too).
  static constexpr int kDownAfterMs = 400;
  void SetUp() override {
    ClusterOptions o;
    o.heartbeat_ms = 20;
    o.down_after_ms = kDownAfterMs;
    o.timeout_ms = 1000;
    Build(o);
  }
};

// A peer counts as down until it has answered a heartbeat: one that never
// does (not running, cannot authenticate) is never shown up, and requests
// to it fail at once.
TEST_F(PoolTest, PeersAreDownUntilTheyAnswerAHeartbeat) {
  ClusterOptions o;
  o.wait_until_up = false;
  Build(o);
  for (int n = 0; n < 3; ++n) EXPECT_EQ(pool(0).NodeUp(n), n == 0) << n;
  EXPECT_EQ(pool(0).Nodes()[1].state, NodeState::kDown);
  net().SetDown(2, FakeNetwork::DownMode::kRefuse);
  ASSERT_TRUE(RunUntil([&] { return pool(0).NodeUp(1) && pool(2).NodeUp(1); }, 3000));
  RunFor(100);  // five heartbeats
  EXPECT_FALSE(pool(0).NodeUp(2));
  EXPECT_FALSE(pool(1).NodeUp(2));
  EXPECT_TRUE(pool(2).NodeUp(0)) << "node 2's own calls are answered";
  bool sync = false;
  auto k2 = KeysOn(2, 2);
  EXPECT_EQ(Exists(0, k2, 0, &sync), std::vector<int8_t>(2, -1));
  EXPECT_TRUE(sync);
  net().SetUp(2);
  ASSERT_TRUE(RunUntil([&] { return pool(0).NodeUp(2) && pool(1).NodeUp(2); }, 3000));
  EXPECT_EQ(Exists(0, k2), std::vector<int8_t>(2, 0));
}

TEST_F(PoolMembershipTest, NodesReportsPeersFromHeartbeats) {
  for (const auto& k : KeysOn(1, 7)) Put(k, "x");
  ASSERT_TRUE(RunUntil([&] { return pool(0).Nodes()[1].keys == 7; }, 3000));
  auto nodes = pool(0).Nodes();
  ASSERT_EQ(nodes.size(), 3u);
  for (int n = 0; n < 3; ++n) {
    EXPECT_EQ(nodes[n].spec.Addr(), Addr(n));
    EXPECT_EQ(nodes[n].spec.pool_port, 17000 + n);
    EXPECT_EQ(nodes[n].self, n == 0);
    EXPECT_EQ(nodes[n].state, NodeState::kUp);
    EXPECT_EQ(nodes[n].maxmemory, 64 * kMiB);
    EXPECT_GT(nodes[n].last_seen_ms, WallMs() - 1000);
  }
  EXPECT_GT(nodes[1].used_memory, 0u);
  EXPECT_EQ(nodes[2].keys, 0u);
}

TEST_F(PoolMembershipTest, RefusingNodeGoesDownAndComesBack) {
  RunFor(60);
  for (int a = 0; a < 3; ++a)
    for (int b = 0; b < 3; ++b) EXPECT_TRUE(pool(a).NodeUp(b));
  auto k2 = KeysOn(2, 3);
  for (const auto& k : k2) Put(k, "v");

  net().SetDown(2, FakeNetwork::DownMode::kRefuse);
  ASSERT_TRUE(RunUntil([&] { return !pool(0).NodeUp(2) && !pool(1).NodeUp(2); }, 3000));
  // Down only after down_after_ms without an answered ping.
  EXPECT_GE(WallMs() - pool(0).Nodes()[2].last_seen_ms, kDownAfterMs);
  EXPECT_GE(WallMs() - pool(1).Nodes()[2].last_seen_ms, kDownAfterMs);
  EXPECT_TRUE(pool(0).NodeUp(1));
  EXPECT_TRUE(pool(2).NodeUp(0)) << "node 2's own calls still work";
  EXPECT_EQ(pool(0).Nodes()[2].state, NodeState::kDown);
  EXPECT_EQ(pool(0).Nodes()[1].state, NodeState::kUp);

  net().SetUp(2);
  ASSERT_TRUE(RunUntil([&] { return pool(0).NodeUp(2) && pool(1).NodeUp(2); }, 3000));
  EXPECT_EQ(pool(0).Nodes()[2].state, NodeState::kUp);
  auto got = Get(0, k2);
  for (const auto& g : got) EXPECT_EQ(g.value, "v");
}

TEST_F(PoolMembershipTest, BlackholedNodeGoesDownAndComesBack) {
  RunFor(60);
  net().SetDown(1, FakeNetwork::DownMode::kBlackhole);
  ASSERT_TRUE(RunUntil([&] { return !pool(0).NodeUp(1) && !pool(2).NodeUp(1); }, 3000));
  EXPECT_TRUE(pool(0).NodeUp(2));
  net().SetUp(1);
  ASSERT_TRUE(RunUntil([&] { return pool(0).NodeUp(1) && pool(2).NodeUp(1); }, 3000));
}

// Once a node is known down, requests to it fail before the method
// returns, and no call is made to it.
TEST_F(PoolMembershipTest, RequestsToADownNodeFailAtOnce) {
  auto k2 = KeysOn(2, 4);
  for (const auto& k : k2) Put(k, "v");
  net().SetDown(2, FakeNetwork::DownMode::kRefuse);
  ASSERT_TRUE(RunUntil([&] { return !pool(0).NodeUp(2); }, 3000));

  // Snapshots taken with no loop turn in between: heartbeats cannot run.
  struct Snap {
    uint64_t calls, delivered;
    size_t in_flight;
  };
  auto snap = [&] { return Snap{Calls(0, 2), net().delivered(2), net().in_flight()}; };
  auto same = [&](const Snap& a, const char* what, bool no_calls_at_all = true) {
    Snap b = snap();
    EXPECT_EQ(a.calls, b.calls) << what;
    EXPECT_EQ(a.delivered, b.delivered) << what;
    if (no_calls_at_all) {
      EXPECT_EQ(a.in_flight, b.in_flight) << what;
    }
  };
  bool sync = false;
  Snap s = snap();
  auto got = Get(0, k2, 0, &sync);
  same(s, "MultiGet");
  EXPECT_TRUE(sync);
  for (const auto& g : got) EXPECT_EQ(g.state, GetResult::kUnavailable);

  s = snap();
  EXPECT_EQ(Exists(0, k2, 0, &sync), std::vector<int8_t>(k2.size(), -1));
  same(s, "MultiExists");
  EXPECT_TRUE(sync);

  s = snap();
  EXPECT_EQ(Del(0, k2, 0, &sync), std::vector<int8_t>(k2.size(), -1));
  same(s, "MultiDel");
  EXPECT_TRUE(sync);

  s = snap();
  SetOutcome set = Set(0, Pairs(k2, ValueOf), 0, &sync);
  same(s, "MultiSet");
  EXPECT_TRUE(sync);
  EXPECT_EQ(set.status.code(), Code::kUnavailable);
  EXPECT_EQ(set.status.message(), pool(0).NodeDownError(2));
  EXPECT_NE(set.status.message().find(Addr(2)), std::string::npos);
  EXPECT_EQ(set.failed_keys, k2.size());

  std::vector<std::string_view> argv = {"GET", "x"};
  bool fwd = false;
  s = snap();
  pool(0).Forward(0, 2, 0, 2, argv, [&](Status st, std::string) {
    EXPECT_EQ(st.code(), Code::kUnavailable);
    EXPECT_NE(st.message().find(Addr(2)), std::string::npos);
    fwd = true;
  });
  same(s, "Forward");
  EXPECT_TRUE(fwd);

  bool tx = false;
  pool(0).ForwardTransaction(0, 2, 0, 2, {{"INCR", "x"}}, {},
                             [&](Status st, std::string) {
                               EXPECT_EQ(st.code(), Code::kUnavailable);
                               tx = true;
                             });
  same(s, "ForwardTransaction");
  EXPECT_TRUE(tx);

  bool ver = false;
  auto views = Views(k2);
  pool(0).Versions(0, 2, 0, views, [&](Status st, std::vector<uint64_t>& v) {
    EXPECT_EQ(st.code(), Code::kUnavailable);
    EXPECT_EQ(v.size(), k2.size());
    ver = true;
  });
  same(s, "Versions");
  EXPECT_TRUE(ver);

  // Broadcast: the down node's reply is marked, the others answer.
  std::vector<NodeReply> replies;
  std::vector<std::string_view> dbsize = {"DBSIZE"};
  pool(0).Broadcast(0, 0, dbsize, [&](std::vector<NodeReply>& r) { replies = r; });
  same(s, "Broadcast (to node 2)", /*no_calls_at_all=*/false);
  ASSERT_TRUE(RunUntil([&] { return !replies.empty(); }));
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_TRUE(replies[0].status.ok());
  EXPECT_TRUE(replies[1].status.ok());
  EXPECT_EQ(replies[2].status.code(), Code::kUnavailable);
  EXPECT_EQ(exec(2).commands.size(), 0u);
  // Keys of up nodes in the same request are unaffected.
  auto k1 = KeysOn(1, 2);
  for (const auto& k : k1) Put(k, "one");
  auto mixed = Get(0, {k1[0], k2[0], k1[1]});
  EXPECT_EQ(mixed[0].value, "one");
  EXPECT_EQ(mixed[1].state, GetResult::kUnavailable);
  EXPECT_EQ(mixed[2].value, "one");
}

// ================================================================= clocks

// The pools' wall clock in these tests: CLOCK_REALTIME stepped by as much
// as a test says (an NTP step, an operator setting the date).
std::atomic<int64_t> wall_step_ms{0};
int64_t SteppedWallMs() { return WallMs() + wall_step_ms.load(); }

class PoolClockTest : public PoolTest {
 protected:
  void SetUp() override { wall_step_ms = 0; }
  void TearDown() override {
    PoolTest::TearDown();
    wall_step_ms = 0;
  }
  // True if, while the loop runs for `ms`, some node counts a peer down.
  bool AnyPeerSeenDown(int ms) {
    bool down = false;
    RunUntil(
        [&] {
          for (int a = 0; a < opts_.nodes; ++a)
            for (int b = 0; b < opts_.nodes; ++b) down = down || !pool(a).NodeUp(b);
          return down;
        },
        ms);
    return down;
  }
};

// A wall clock stepped an hour ahead in the middle of a request leaves its
// deadline where it was: the chunk calls of a large value, sent after the
// step, still have the request's time left (on the wall clock they would
// have 1 ms, less than the network's latency, and fail). Nor does any
// node count its peers down.
TEST_F(PoolClockTest, AWallClockStepAheadMovesNoDeadlineAndDownsNoPeer) {
  ClusterOptions o;
  o.wall_ms = &SteppedWallMs;
  o.max_bulk_per_call = 64 * kKiB;
  o.latency_ms = 5;
  o.timeout_ms = 2000;
  o.down_after_ms = 500;
  Build(o);
  std::string k = KeysOn(2, 1)[0];
  const std::string v = Pattern(300 * kKiB, 3);
  Put(k, v);
  hook(0).rewrite_reply = [&](uint16_t op, Status*, std::string*, std::string*) {
    if (op == kOpMultiGet) wall_step_ms = 3600 * 1000;
  };
  auto got = Get(0, {k});
  EXPECT_EQ(wall_step_ms.load(), 3600 * 1000) << "the clock was never stepped";
  EXPECT_GE(CountSent(kOpGetChunk), 5u);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].state, GetResult::kFound);
  EXPECT_TRUE(SameBytes(got[0].value, v));
  EXPECT_FALSE(AnyPeerSeenDown(300));
  // Times a client sees stay on the wall clock, stepped with it.
  EXPECT_GT(pool(0).Nodes()[1].last_seen_ms, WallMs() + 3600 * 1000 - 1000);
}

// A wall clock stepped an hour back does not keep a silent peer up for an
// hour: it is counted down after down_after_ms, as always.
TEST_F(PoolClockTest, AWallClockStepBackStillDownsASilentPeer) {
  ClusterOptions o;
  o.wall_ms = &SteppedWallMs;
  o.down_after_ms = 300;
  o.timeout_ms = 1000;
  Build(o);
  RunFor(60);
  wall_step_ms = -3600 * 1000;
  net().SetDown(2, FakeNetwork::DownMode::kBlackhole);
  EXPECT_TRUE(RunUntil([&] { return !pool(0).NodeUp(2) && !pool(1).NodeUp(2); }, 3000));
  EXPECT_TRUE(pool(0).NodeUp(1));
  net().SetUp(2);
  EXPECT_TRUE(RunUntil([&] { return pool(0).NodeUp(2) && pool(1).NodeUp(2); }, 3000));
}

// ========================================================== whole commands

TEST_F(PoolTest, ForwardRunsOnTheOwnersExecutor) {
  Build();
  exec(2).reply = "$5\r\nhello\r\n";
  std::vector<std::string> args = {"SET", std::string("k\0y", 3), std::string(70000, 'v')};
  auto argv = Views(args);
  Status st;
  std::string reply;
  bool done = false;
  pool(0).Forward(0, 2, 5, 3, argv, [&](Status s, std::string r) {
    st = std::move(s);
    reply = std::move(r);
    done = true;
  });
  ASSERT_TRUE(RunUntil([&] { return done; }));
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(reply, "$5\r\nhello\r\n");
  ASSERT_EQ(exec(2).commands.size(), 1u);
  const auto& c = exec(2).commands[0];
  EXPECT_EQ(c.lane, 0);
  EXPECT_EQ(c.db, 5);
  EXPECT_EQ(c.resp, 3);
  EXPECT_EQ(c.argv, args);
  EXPECT_TRUE(exec(0).commands.empty());
  EXPECT_TRUE(exec(1).commands.empty());

  // RESP2 stays 2; anything but 3 is taken as 2.
  for (int resp : {2, 0, 7}) {
    done = false;
    pool(1).Forward(0, 0, 0, resp, argv, [&](Status s, std::string r) {
      EXPECT_TRUE(s.ok());
      EXPECT_EQ(r, exec(0).reply);
      done = true;
    });
    ASSERT_TRUE(RunUntil([&] { return done; }));
    EXPECT_EQ(exec(0).commands.back().resp, 2) << resp;
  }
}

TEST_F(PoolTest, ForwardToARefusingNodeNamesIt) {
  Build();
  net().SetDown(1, FakeNetwork::DownMode::kRefuse);
  std::vector<std::string_view> argv = {"PING"};
  bool done = false;
  pool(0).Forward(0, 1, 0, 2, argv, [&](Status s, std::string r) {
    EXPECT_EQ(s.code(), Code::kUnavailable);
    EXPECT_NE(s.message().find(Addr(1)), std::string::npos) << s.ToString();
    EXPECT_EQ(r, "");
    done = true;
  });
  ASSERT_TRUE(RunUntil([&] { return done; }));
  EXPECT_TRUE(exec(1).commands.empty());
}

TEST_F(PoolTest, BroadcastRunsEverywhereIncludingHere) {
  Build();
  std::vector<std::string_view> argv = {"FLUSHDB", "ASYNC"};
  std::vector<NodeReply> replies;
  pool(1).Broadcast(0, 4, argv, [&](std::vector<NodeReply>& r) { replies = r; });
  ASSERT_TRUE(RunUntil([&] { return !replies.empty(); }));
  ASSERT_EQ(replies.size(), 3u);
  for (int n = 0; n < 3; ++n) {
    EXPECT_EQ(replies[n].node, n);
    EXPECT_TRUE(replies[n].status.ok()) << n << ": " << replies[n].status.ToString();
    EXPECT_EQ(replies[n].reply, exec(n).reply);
    ASSERT_EQ(exec(n).commands.size(), 1u) << n;
    EXPECT_EQ(exec(n).commands[0].db, 4);
    EXPECT_EQ(exec(n).commands[0].resp, 2);
    EXPECT_EQ(exec(n).commands[0].argv, (std::vector<std::string>{"FLUSHDB", "ASYNC"}));
  }

  // A node that refuses (not yet known down) is marked in its reply.
  net().SetDown(0, FakeNetwork::DownMode::kRefuse);
  replies.clear();
  pool(1).Broadcast(0, 0, argv, [&](std::vector<NodeReply>& r) { replies = r; });
  ASSERT_TRUE(RunUntil([&] { return !replies.empty(); }));
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_EQ(replies[0].status.code(), Code::kUnavailable);
  EXPECT_NE(replies[0].status.message().find(Addr(0)), std::string::npos);
  EXPECT_TRUE(replies[1].status.ok());
  EXPECT_TRUE(replies[2].status.ok());
  EXPECT_EQ(replies[2].reply, exec(2).reply);
}

TEST_F(PoolTest, VersionsMatchTheOwnersStore) {
  Build();
  auto k1 = KeysOn(1, 3);
  Put(k1[0], "a");
  Put(k1[1], "b");
  std::vector<std::string> ask = {k1[0], "absent", k1[1], k1[0]};
  ask[1] = KeysOn(1, 1, "absent:")[0];
  auto views = Views(ask);
  std::vector<uint64_t> got;
  bool done = false;
  pool(0).Versions(0, 1, 0, views, [&](Status s, std::vector<uint64_t>& v) {
    EXPECT_TRUE(s.ok()) << s.ToString();
    got = v;
    done = true;
  });
  ASSERT_TRUE(RunUntil([&] { return done; }));
  auto version = [&](const std::string& k) {
    storage::ItemRef it = store(1).Peek(0, k, WallMs());
    return it ? it.version() : 0;
  };
  ASSERT_EQ(got.size(), 4u);
  EXPECT_NE(got[0], 0u);
  EXPECT_EQ(got[0], version(k1[0]));
  EXPECT_EQ(got[1], 0u);
  EXPECT_EQ(got[2], version(k1[1]));
  EXPECT_EQ(got[3], got[0]);

  // A write moves the version on.
  uint64_t before = got[0];
  Put(k1[0], "a2");
  done = false;
  pool(2).Versions(0, 1, 0, views, [&](Status s, std::vector<uint64_t>& v) {
    got = v;
    done = true;
  });
  ASSERT_TRUE(RunUntil([&] { return done; }));
  EXPECT_GT(got[0], before);

  // Own keys: answered at once from the local store.
  done = false;
  pool(1).Versions(0, 1, 0, views, [&](Status s, std::vector<uint64_t>& v) {
    EXPECT_TRUE(s.ok());
    EXPECT_EQ(v[0], version(k1[0]));
    done = true;
  });
  EXPECT_TRUE(done);
}

TEST_F(PoolTest, ForwardTransactionCarriesCommandsAndWatches) {
  Build();
  std::vector<std::vector<std::string>> cmds = {
      {"SET", "a", std::string("1\0", 2)}, {"INCR", "b"}, {"GET", ""}};
  std::vector<std::pair<std::string, uint64_t>> watched = {{"a", 7}, {"zz", 0},
                                                           {"b", ~uint64_t{0}}};
  Status st;
  std::string reply;
  bool done = false;
  pool(2).ForwardTransaction(0, 1, 3, 3, cmds, watched, [&](Status s, std::string r) {
    st = std::move(s);
    reply = std::move(r);
    done = true;
  });
  ASSERT_TRUE(RunUntil([&] { return done; }));
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(reply, exec(1).tx_reply);
  ASSERT_EQ(exec(1).transactions.size(), 1u);
  const auto& t = exec(1).transactions[0];
  EXPECT_EQ(t.db, 3);
  EXPECT_EQ(t.resp, 3);
  EXPECT_EQ(t.cmds, cmds);
  EXPECT_EQ(t.watched, watched);
  EXPECT_TRUE(exec(0).transactions.empty());
  EXPECT_TRUE(exec(2).transactions.empty());
  EXPECT_TRUE(exec(1).commands.empty());

  // No watches, one command.
  done = false;
  pool(0).ForwardTransaction(0, 2, 0, 2, {{"PING"}}, {}, [&](Status s, std::string r) {
    EXPECT_TRUE(s.ok());
    EXPECT_EQ(r, exec(2).tx_reply);
    done = true;
  });
  ASSERT_TRUE(RunUntil([&] { return done; }));
  ASSERT_EQ(exec(2).transactions.size(), 1u);
  EXPECT_TRUE(exec(2).transactions[0].watched.empty());
}

// ======================================================= malformed messages

struct RawReply {
  Status transport;  // of the call itself
  Status status;     // the owner's reply status
  std::string payload, bulk;
};

class PoolMalformedTest : public PoolTest {
 protected:
  void SetUp() override { Build(); }
  // Sends a hand-built call from node 0's transport to node 1.
  RawReply Raw(uint16_t opcode, std::string body, std::string bulk_in = {},
               size_t bulk_out = 0) {
    auto in = std::make_shared<std::string>(std::move(bulk_in));
    CallArgs a;
    a.opcode = opcode;
    a.body = std::move(body);
    if (!in->empty()) a.bulk_in.push_back({in->data(), in->size()});
    a.bulk_out_capacity = bulk_out;
    auto out = std::make_shared<std::optional<RawReply>>();
    hook(0).Call(0, 1, std::move(a), 2000,
                 [in, out](Status s, std::string_view reply, std::string_view bulk) {
                   RawReply r;
                   r.transport = s;
                   std::string_view payload;
                   if (s.ok()) r.status = ParseReplyStatus(reply, &payload);
                   r.payload = std::string(payload);
                   r.bulk = std::string(bulk);
                   *out = std::move(r);
                 });
    EXPECT_TRUE(RunUntil([&] { return out->has_value(); })) << "raw call hung";
    return out->value_or(RawReply{});
  }
  static std::string Body(const std::function<void(Writer&)>& fill) {
    std::string b;
    Writer w(&b);
    fill(w);
    return b;
  }
};

TEST_F(PoolMalformedTest, OwnerRejectsMalformedBodies) {
  for (const auto& k : KeysOn(1, 3)) Put(k, "v");
  const uint64_t keys_before = store(1).GetStats().keys;
  const uint64_t used_before = store(1).GetStats().used_memory;

  struct Case {
    const char* what;
    uint16_t opcode;
    std::string body, bulk_in;
    Code want;
  };
  const uint32_t kHuge = 0xFFFFFFFFu;
  std::vector<Case> cases = {
      // Key lists: {db, n, key*n}.
      {"get: empty", kOpMultiGet, "", "", Code::kInvalidArgument},
      {"get: db only", kOpMultiGet, Body([](Writer& w) { w.U32(0); }), "", Code::kInvalidArgument},
      {"get: db out of range", kOpMultiGet,
       Body([](Writer& w) { w.U32(16), w.U32(1), w.Bytes("k"); }), "", Code::kInvalidArgument},
      {"get: count past the body", kOpMultiGet,
       Body([&](Writer& w) { w.U32(0), w.U32(kHuge), w.Bytes("k"); }), "",
       Code::kInvalidArgument},
      {"get: truncated key", kOpMultiGet,
       Body([](Writer& w) { w.U32(0), w.U32(1), w.U32(100), w.U8('k'); }), "",
       Code::kInvalidArgument},
      {"get: fewer keys than n", kOpMultiGet,
       Body([](Writer& w) { w.U32(0), w.U32(3), w.Bytes("a"), w.Bytes("b"); }), "",
       Code::kInvalidArgument},
      {"exists: count past the body", kOpMultiExists,
       Body([&](Writer& w) { w.U32(0), w.U32(kHuge); }), "", Code::kInvalidArgument},
      {"del: db out of range", kOpMultiDel,
       Body([&](Writer& w) { w.U32(kHuge), w.U32(0); }), "", Code::kInvalidArgument},
      {"versions: truncated", kOpVersions, Body([](Writer& w) { w.U32(0), w.U32(2), w.Bytes("a"); }),
       "", Code::kInvalidArgument},
      // {db, key, version, offset, len}
      {"chunk: truncated", kOpGetChunk,
       Body([](Writer& w) { w.U32(0), w.Bytes("k"), w.U64(1), w.U64(0); }), "",
       Code::kInvalidArgument},
      {"chunk: db out of range", kOpGetChunk,
       Body([](Writer& w) { w.U32(99), w.Bytes("k"), w.U64(1), w.U64(0), w.U64(1); }), "",
       Code::kInvalidArgument},
      // {db, n, (key, len, off)*n} + bulk_in
      {"set: empty", kOpMultiSet, "", "", Code::kInvalidArgument},
      {"set: count past the body", kOpMultiSet, Body([&](Writer& w) { w.U32(0), w.U32(kHuge); }),
       "", Code::kInvalidArgument},
      {"set: value past bulk_in", kOpMultiSet,
       Body([](Writer& w) { w.U32(0), w.U32(1), w.Bytes("mk"), w.U64(10), w.U64(0); }), "12345",
       Code::kInvalidArgument},
      {"set: offset past bulk_in", kOpMultiSet,
       Body([](Writer& w) { w.U32(0), w.U32(1), w.Bytes("mk"), w.U64(1), w.U64(6); }), "12345",
       Code::kInvalidArgument},
      {"set: offset + len overflows", kOpMultiSet,
       Body([](Writer& w) { w.U32(0), w.U32(1), w.Bytes("mk"), w.U64(2), w.U64(~uint64_t{0}); }),
       "12345", Code::kInvalidArgument},
      {"set: len overflows", kOpMultiSet,
       Body([](Writer& w) { w.U32(0), w.U32(1), w.Bytes("mk"), w.U64(~uint64_t{0}), w.U64(1); }),
       "12345", Code::kInvalidArgument},
      {"set: second entry bad", kOpMultiSet,
       Body([](Writer& w) {
         w.U32(0), w.U32(2), w.Bytes("mk1"), w.U64(2), w.U64(0), w.Bytes("mk2"), w.U64(9),
             w.U64(2);
       }),
       "12345", Code::kInvalidArgument},
      // Large puts.
      {"put begin: truncated", kOpPutBegin, Body([](Writer& w) { w.U32(0), w.Bytes("big"); }), "",
       Code::kInvalidArgument},
      {"put begin: more than maxmemory", kOpPutBegin,
       Body([](Writer& w) { w.U32(0), w.Bytes("big"), w.U64(3ull << 30); }), "",
       Code::kOutOfMemory},
      {"put begin: 4 GiB or more", kOpPutBegin,
       Body([](Writer& w) { w.U32(0), w.Bytes("big"), w.U64(~uint64_t{0}); }), "",
       Code::kInvalidArgument},
      {"put chunk: unknown handle", kOpPutChunk, Body([](Writer& w) { w.U64(12345), w.U64(0); }),
       "abc", Code::kNotFound},
      {"put chunk: truncated", kOpPutChunk, Body([](Writer& w) { w.U64(1); }), "abc",
       Code::kInvalidArgument},
      {"put end: unknown handle", kOpPutEnd, Body([](Writer& w) { w.U64(999), w.U8(1); }), "",
       Code::kNotFound},
      {"put end: truncated", kOpPutEnd, Body([](Writer& w) { w.U64(1); }), "",
       Code::kInvalidArgument},
      // Staged batches.
      {"stage begin: truncated", kOpStageBegin, "", "", Code::kInvalidArgument},
      {"stage begin: db out of range", kOpStageBegin, Body([](Writer& w) { w.U32(16); }), "",
       Code::kInvalidArgument},
      {"stage set: unknown handle", kOpStageSet,
       Body([](Writer& w) { w.U64(4242), w.U32(1), w.Bytes("mk"), w.U64(1), w.U64(0); }), "x",
       Code::kNotFound},
      {"stage set: truncated", kOpStageSet, Body([](Writer& w) { w.U32(1); }), "",
       Code::kInvalidArgument},
      // Whole commands.
      {"command: no argv", kOpCommand, Body([](Writer& w) { w.U32(0), w.U8(2), w.U32(0); }), "",
       Code::kInvalidArgument},
      {"command: argc past the body", kOpCommand,
       Body([&](Writer& w) { w.U32(0), w.U8(2), w.U32(kHuge), w.Bytes("GET"); }), "",
       Code::kInvalidArgument},
      {"command: truncated arg", kOpCommand,
       Body([](Writer& w) { w.U32(0), w.U8(2), w.U32(1), w.U32(50), w.U8('G'); }), "",
       Code::kInvalidArgument},
      {"command: db out of range", kOpCommand,
       Body([](Writer& w) { w.U32(16), w.U8(2), w.U32(1), w.Bytes("PING"); }), "",
       Code::kInvalidArgument},
      {"tx: ncmd past the body", kOpTransaction,
       Body([&](Writer& w) { w.U32(0), w.U8(2), w.U32(kHuge); }), "", Code::kInvalidArgument},
      {"tx: empty command", kOpTransaction,
       Body([](Writer& w) { w.U32(0), w.U8(2), w.U32(1), w.U32(0), w.U32(0); }), "",
       Code::kInvalidArgument},
      {"tx: nwatch past the body", kOpTransaction,
       Body([&](Writer& w) { w.U32(0), w.U8(2), w.U32(0), w.U32(kHuge); }), "",
       Code::kInvalidArgument},
      {"tx: watch truncated", kOpTransaction,
       Body([](Writer& w) { w.U32(0), w.U8(2), w.U32(0), w.U32(1), w.Bytes("k"), w.U32(7); }), "",
       Code::kInvalidArgument},
      {"tx: no watch count", kOpTransaction,
       Body([](Writer& w) { w.U32(0), w.U8(2), w.U32(1), w.U32(1), w.Bytes("PING"); }), "",
       Code::kInvalidArgument},
      {"unknown opcode", 999, "whatever", "", Code::kInvalidArgument},
      {"opcode 0", 0, "", "", Code::kInvalidArgument},
  };
  for (const Case& c : cases) {
    RawReply r = Raw(c.opcode, c.body, c.bulk_in, 64);
    EXPECT_TRUE(r.transport.ok()) << c.what << ": " << r.transport.ToString();
    EXPECT_EQ(r.status.code(), c.want) << c.what << ": " << r.status.ToString();
    EXPECT_TRUE(r.bulk.empty()) << c.what;
  }
  // Nothing ran, nothing was stored, the owner still serves.
  EXPECT_TRUE(exec(1).commands.empty());
  EXPECT_TRUE(exec(1).transactions.empty());
  EXPECT_EQ(store(1).GetStats().keys, keys_before);
  EXPECT_EQ(store(1).GetStats().used_memory, used_before);
  RawReply ping = Raw(kOpPing, "");
  ASSERT_TRUE(ping.status.ok()) << ping.status.ToString();
  Reader r(ping.payload);
  uint32_t node;
  uint64_t keys;
  ASSERT_TRUE(r.U32(&node) && r.U64(&keys));
  EXPECT_EQ(node, 1u);
  EXPECT_EQ(keys, keys_before);
  auto got = Get(0, KeysOn(1, 3));
  for (const auto& g : got) EXPECT_EQ(g.value, "v");
}

// Well-formed but odd requests get well-defined answers.
TEST_F(PoolMalformedTest, OwnerAnswersOddButValidRequests) {
  std::string k = KeysOn(1, 1)[0];
  Put(k, "0123456789");
  uint64_t v = store(1).Peek(0, k, WallMs()).version();
  auto chunk = [&](uint64_t version, uint64_t off, uint64_t len, size_t cap) {
    return Raw(kOpGetChunk, Body([&](Writer& w) {
                 w.U32(0), w.Bytes(k), w.U64(version), w.U64(off), w.U64(len);
               }),
               "", cap);
  };
  auto state = [](const RawReply& r) {
    Reader rd(r.payload);
    uint8_t s = 255;
    uint64_t total = 0, version = 0;
    EXPECT_TRUE(rd.U8(&s) && rd.U64(&total) && rd.U64(&version));
    return std::make_tuple(s, total, version);
  };
  RawReply ok = chunk(v, 2, 5, 5);
  ASSERT_TRUE(ok.status.ok());
  EXPECT_EQ(state(ok), std::make_tuple(uint8_t{kKeyFound}, uint64_t{10}, v));
  EXPECT_EQ(ok.bulk, "23456");
  // Wrong version, range past the end, range overflowing, more than the
  // room given: "changed", with the current total and version, no bytes.
  for (auto [ver, off, len, cap] :
       std::vector<std::tuple<uint64_t, uint64_t, uint64_t, size_t>>{
           {v + 1, 0, 1, 10}, {v, 11, 0, 10}, {v, 5, 6, 10}, {v, 2, ~uint64_t{0}, 10},
           {v, ~uint64_t{0}, 2, 10}, {v, 0, 10, 4}}) {
    RawReply r = chunk(ver, off, len, cap);
    ASSERT_TRUE(r.status.ok());
    EXPECT_EQ(state(r), std::make_tuple(uint8_t{kKeyChanged}, uint64_t{10}, v));
    EXPECT_TRUE(r.bulk.empty());
  }
  RawReply gone = Raw(kOpGetChunk, Body([&](Writer& w) {
                        w.U32(0), w.Bytes("nope"), w.U64(v), w.U64(0), w.U64(1);
                      }),
                      "", 10);
  EXPECT_EQ(std::get<0>(state(gone)), kKeyMissing);

  // An empty MultiSet is fine; a zero-length value is stored.
  EXPECT_TRUE(Raw(kOpMultiSet, Body([](Writer& w) { w.U32(0), w.U32(0); })).status.ok());
  RawReply empty = Raw(kOpMultiSet, Body([&](Writer& w) {
                         w.U32(0), w.U32(1), w.Bytes(k), w.U64(0), w.U64(0);
                       }));
  EXPECT_TRUE(empty.status.ok()) << empty.status.ToString();
  EXPECT_EQ(Peek(k), "");

  // MultiGet with no room: found values are reported with sent 0.
  Put(k, "abc");
  RawReply g = Raw(kOpMultiGet, Body([&](Writer& w) { w.U32(0), w.U32(1), w.Bytes(k); }), "", 0);
  ASSERT_TRUE(g.status.ok());
  Reader rd(g.payload);
  uint8_t s;
  uint64_t total, sent, version;
  ASSERT_TRUE(rd.U8(&s) && rd.U64(&total) && rd.U64(&sent) && rd.U64(&version));
  EXPECT_EQ(s, kKeyFound);
  EXPECT_EQ(total, 3u);
  EXPECT_EQ(sent, 0u);
  EXPECT_TRUE(g.bulk.empty());
}

// The large-put protocol by hand: begin, chunks, end (publish or drop);
// a handle is gone after its end.
TEST_F(PoolMalformedTest, LargePutProtocolByHand) {
  auto begin = [&](const std::string& key, uint64_t total) {
    RawReply r = Raw(kOpPutBegin, Body([&](Writer& w) { w.U32(0), w.Bytes(key), w.U64(total); }));
    EXPECT_TRUE(r.status.ok()) << r.status.ToString();
    Reader rd(r.payload);
    uint64_t h = 0;
    EXPECT_TRUE(rd.U64(&h));
    return h;
  };
  auto chunk = [&](uint64_t h, uint64_t off, std::string bytes) {
    return Raw(kOpPutChunk, Body([&](Writer& w) { w.U64(h), w.U64(off); }), std::move(bytes))
        .status;
  };
  auto end = [&](uint64_t h, bool publish) {
    return Raw(kOpPutEnd, Body([&](Writer& w) { w.U64(h), w.U8(publish ? 1 : 0); })).status;
  };
  std::string k = KeysOn(1, 1)[0], k2 = KeysOn(1, 1, "other:")[0];
  uint64_t h = begin(k, 10);
  EXPECT_TRUE(chunk(h, 5, "56789").ok());
  EXPECT_TRUE(chunk(h, 0, "01234").ok());
  EXPECT_EQ(chunk(h, 8, "xyz").code(), Code::kNotFound) << "past the end";
  EXPECT_EQ(chunk(h, 11, "").code(), Code::kNotFound) << "offset past the end";
  EXPECT_EQ(Peek(k), "<nil>") << "visible before its end";
  EXPECT_TRUE(end(h, true).ok());
  EXPECT_EQ(Peek(k), "0123456789");
  EXPECT_EQ(end(h, true).code(), Code::kNotFound);
  EXPECT_EQ(chunk(h, 0, "a").code(), Code::kNotFound);

  // Dropped: never visible, its space given back. (Measured with k still
  // there: the index keeps what it grew for it.)
  const uint64_t used = store(1).GetStats().used_memory;
  uint64_t h2 = begin(k2, 100 * kKiB);
  EXPECT_NE(h2, h);
  EXPECT_GT(store(1).GetStats().used_memory, used + 99 * kKiB);
  EXPECT_TRUE(chunk(h2, 0, "abcd").ok());
  EXPECT_TRUE(end(h2, false).ok());
  EXPECT_EQ(Peek(k2), "<nil>");
  RunFor(5);
  EXPECT_EQ(store(1).GetStats().used_memory, used);
}

// A put whose requester never ends it is dropped by the heartbeat sweep
// (after 4 x timeout + 1 s) and its space given back.
TEST_F(PoolTest, AbandonedLargePutIsSwept) {
  const uint64_t used = BuildWithQuickSweep();
  CallArgs a;
  a.opcode = kOpPutBegin;
  Writer w(&a.body);
  w.U32(0);
  w.Bytes("abandoned");
  w.U64(512 * kKiB);
  uint64_t handle = 0;
  bool done = false;
  hook(0).Call(0, 1, std::move(a), 1000, [&](Status s, std::string_view reply, std::string_view) {
    std::string_view payload;
    ASSERT_TRUE(s.ok() && ParseReplyStatus(reply, &payload).ok());
    Reader r(payload);
    ASSERT_TRUE(r.U64(&handle));
    done = true;
  });
  ASSERT_TRUE(RunUntil([&] { return done; }));
  EXPECT_GT(store(1).GetStats().used_memory, used + 500 * kKiB);
  EXPECT_TRUE(RunUntil([&] { return store(1).GetStats().used_memory == used; }, 6000))
      << "the pending put was never dropped";
  EXPECT_EQ(Peek("abandoned"), "<nil>");
}

// The same for a staged MSET batch whose publish never comes; chunks of a
// large put cannot be written into it.
TEST_F(PoolTest, AbandonedStagedBatchIsSwept) {
  const uint64_t used = BuildWithQuickSweep();
  // One call from node 0 to node 1; the reply's payload in *out.
  auto call = [&](uint16_t opcode, const std::function<void(Writer&)>& fill,
                  const std::string& bulk, std::string* out) {
    CallArgs a;
    a.opcode = opcode;
    Writer w(&a.body);
    fill(w);
    if (!bulk.empty()) a.bulk_in.push_back({const_cast<char*>(bulk.data()), bulk.size()});
    Status result = Status::Internal("no reply");
    bool done = false;
    hook(0).Call(0, 1, std::move(a), 1000, [&](Status s, std::string_view reply, std::string_view) {
      std::string_view payload;
      if (s.ok()) s = ParseReplyStatus(reply, &payload);
      if (out) out->assign(payload);
      result = s;
      done = true;
    });
    EXPECT_TRUE(RunUntil([&] { return done; }));
    return result;
  };
  std::string payload;
  ASSERT_TRUE(call(kOpStageBegin, [](Writer& w) { w.U32(0); }, "", &payload).ok());
  uint64_t handle = 0;
  Reader r(payload);
  ASSERT_TRUE(r.U64(&handle));
  std::string value(512 * kKiB, 's');
  Status s = call(
      kOpStageSet,
      [&](Writer& w) {
        w.U64(handle), w.U32(1), w.Bytes("staged"), w.U64(value.size()), w.U64(0);
      },
      value, nullptr);
  ASSERT_TRUE(s.ok()) << s.ToString();
  s = call(kOpPutChunk, [&](Writer& w) { w.U64(handle), w.U64(0); }, "abc", nullptr);
  EXPECT_EQ(s.code(), Code::kNotFound) << "a chunk was written into a staged batch";
  EXPECT_GT(store(1).GetStats().used_memory, used + 500 * kKiB);
  EXPECT_EQ(Peek("staged"), "<nil>");
  EXPECT_TRUE(RunUntil([&] { return store(1).GetStats().used_memory == used; }, 6000))
      << "the staged batch was never dropped";
  EXPECT_EQ(Peek("staged"), "<nil>");
}

// The requester side survives malformed replies: the keys of that call
// fail, nothing else does.
TEST_F(PoolMalformedTest, RequesterRejectsMalformedReplies) {
  auto k1 = KeysOn(1, 3), k2 = KeysOn(2, 3);
  auto keys = Interleave({k1, k2});
  for (const auto& k : keys) Put(k, ValueOf(k));
  const int victim = 1;
  // Rewrites the replies node 0 receives (heartbeats aside); each case picks
  // which ones.
  std::function<void(std::string*, std::string*)> corrupt;
  hook(0).rewrite_reply = [&](uint16_t op, Status* s, std::string* reply, std::string* bulk) {
    if (op != kOpPing) corrupt(reply, bulk);
  };
  auto owner = [&](const std::string& k) { return pool(0).OwnerOf(k); };

  // MultiGet (the victim's reply, known by a value in its bulk): a
  // truncated reply; less bulk than the reply claims; an empty reply.
  for (int mode = 0; mode < 3; ++mode) {
    corrupt = [&](std::string* reply, std::string* bulk) {
      if (bulk->find(ValueOf(k1[0])) == std::string::npos) return;
      if (mode == 0) reply->resize(reply->size() - 3);
      if (mode == 1) bulk->resize(bulk->size() - 1);
      if (mode == 2) reply->clear();
    };
    auto got = Get(0, keys);
    for (size_t i = 0; i < keys.size(); ++i) {
      bool failed = owner(keys[i]) == victim;
      EXPECT_EQ(got[i].state, failed ? GetResult::kUnavailable : GetResult::kFound)
          << "mode " << mode << " key " << i;
      // A failed key carries no bytes (not those parsed before the reply
      // turned out malformed).
      EXPECT_EQ(got[i].value, failed ? "" : ValueOf(keys[i])) << "mode " << mode << " key " << i;
    }
  }
  // MultiExists (the first reply, from either node): a payload shorter than
  // the keys; an error code out of range.
  for (int mode = 0; mode < 2; ++mode) {
    int calls = 0;
    corrupt = [&](std::string* reply, std::string*) {
      if (++calls != 1) return;
      if (mode == 0) reply->pop_back();
      if (mode == 1) *reply = std::string(1, char(200)) + reply->substr(1);
    };
    auto ex = Exists(0, keys);
    int failed = std::count(ex.begin(), ex.end(), -1);
    int ok = std::count(ex.begin(), ex.end(), 1);
    EXPECT_EQ(failed, 3) << mode;
    EXPECT_EQ(ok, 3) << mode;
  }
  // Versions: truncated payload.
  corrupt = [&](std::string* reply, std::string*) { reply->resize(reply->size() - 1); };
  bool done = false;
  auto views = Views(k1);
  pool(0).Versions(0, 1, 0, views, [&](Status s, std::vector<uint64_t>& v) {
    EXPECT_FALSE(s.ok());
    EXPECT_EQ(v.size(), k1.size());
    done = true;
  });
  ASSERT_TRUE(RunUntil([&] { return done; }));
  corrupt = [](std::string*, std::string*) {};
  for (const auto& g : Get(0, keys)) EXPECT_EQ(g.state, GetResult::kFound);
}

// ==================================================== chunked get vs writes

class PoolChunkRaceTest : public PoolTest {
 protected:
  static constexpr size_t kChunk = 64 * kKiB;
  void SetUp() override {
    ClusterOptions o;
    o.max_bulk_per_call = kChunk;
    o.latency_ms = 1;  // chunks are in flight together, handled one by one
    Build(o);
    key_ = KeysOn(1, 1, "race:")[0];
  }
  // Overwrites (or deletes) the key on its owner right after the owner
  // handled its n-th GetChunk call (1-based), counting from now.
  void AfterChunk(int n, std::function<void()> write) {
    chunks_ = 0;
    hook(1).after_handle = [this, n, write](uint16_t op, std::string_view) {
      if (op == kOpGetChunk && ++chunks_ == n) write();
    };
  }
  std::string key_;
  int chunks_ = 0;
};

TEST_F(PoolChunkRaceTest, OverwriteBetweenChunksRestartsTheFetch) {
  std::string old_v = Pattern(kMiB, 1), new_v = Pattern(kMiB + 12345, 2);
  Put(key_, old_v);
  AfterChunk(3, [&] { Put(key_, new_v); });
  auto got = Get(0, {key_});
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].state, GetResult::kFound);
  EXPECT_TRUE(SameBytes(got[0].value, new_v));
  // 16 chunks of the old version, then all 17 of the new one.
  EXPECT_EQ(chunks_, 16 + 17);
}

TEST_F(PoolChunkRaceTest, OverwriteAfterTheLastChunkReturnsTheOldValue) {
  // Every chunk was served from the old (pinned) item before the write; the
  // bytes leave after it, and must still be the old ones.
  std::string old_v = Pattern(kMiB, 3), new_v = Pattern(kMiB, 4);
  Put(key_, old_v);
  AfterChunk(16, [&] { Put(key_, new_v); });
  auto got = Get(0, {key_});
  EXPECT_EQ(got[0].state, GetResult::kFound);
  EXPECT_TRUE(SameBytes(got[0].value, old_v));
  EXPECT_EQ(chunks_, 16);
  EXPECT_TRUE(SameBytes(Peek(key_), new_v));
}

TEST_F(PoolChunkRaceTest, ShrinkBetweenChunksRefetchesInOneCall) {
  Put(key_, Pattern(kMiB, 5));
  AfterChunk(2, [&] { Put(key_, "small now"); });
  auto got = Get(0, {key_, key_});
  for (const auto& g : got) {
    EXPECT_EQ(g.state, GetResult::kFound);
    EXPECT_EQ(g.value, "small now");
  }
}

TEST_F(PoolChunkRaceTest, DeleteBetweenChunksReadsAsMissing) {
  Put(key_, Pattern(kMiB, 6));
  AfterChunk(5, [&] { EXPECT_TRUE(store(1).Del(0, key_, WallMs())); });
  auto got = Get(0, {key_});
  EXPECT_EQ(got[0].state, GetResult::kMissing);
  EXPECT_TRUE(got[0].value.empty()) << got[0].value.size();
}

TEST_F(PoolChunkRaceTest, KeyThatNeverSettlesEndsUnavailable) {
  const std::string a = Pattern(kMiB, 7), b = Pattern(kMiB, 8);
  Put(key_, a);
  int writes = 0;
  hook(1).after_handle = [&](uint16_t op, std::string_view) {
    if (op == kOpGetChunk) Put(key_, ++writes % 2 ? b : a);
  };
  auto got = Get(0, {key_});  // fails the test if it does not end
  EXPECT_EQ(writes, 4 * 16) << "four attempts of 16 chunks";
  EXPECT_EQ(got[0].state, GetResult::kUnavailable);
  EXPECT_TRUE(got[0].value.empty()) << "gave up but returned " << got[0].value.size() << " bytes";
}

// Many gets of one key, racing writes of values of several sizes at chosen
// points: every answer is one whole version, never a mix.
TEST_F(PoolChunkRaceTest, EveryAnswerIsOneWholeVersion) {
  std::set<std::string> written;
  uint64_t seed = 1000;
  auto write = [&] {
    static const size_t kSizes[] = {kChunk, kChunk + 1, 200 * kKiB, 700 * kKiB, 100, kMiB};
    std::string v = Pattern(kSizes[seed % 6], seed);
    ++seed;
    Put(key_, v);
    written.insert(std::move(v));
  };
  write();
  for (int round = 0; round < 25; ++round) {
    int every = 2 + round % 5;
    int seen = 0;
    hook(1).after_handle = [&](uint16_t op, std::string_view) {
      if ((op == kOpGetChunk || op == kOpMultiGet) && ++seen % every == 0 && seen < 40) write();
    };
    auto got = Get(round % 2 == 0 ? 0 : 2, {key_, key_, KeysOn(2, 1)[0], key_});
    ASSERT_EQ(got.size(), 4u);
    for (int i : {0, 1, 3}) {
      if (got[i].state == GetResult::kUnavailable) continue;  // gave up: allowed
      ASSERT_EQ(got[i].state, GetResult::kFound) << round;
      EXPECT_TRUE(written.count(got[i].value))
          << "round " << round << " slot " << i << ": a value that was never written ("
          << got[i].value.size() << " bytes)";
    }
  }
}

// ================================================================ replicas

class PoolReplicaTest : public PoolTest {
 protected:
  static constexpr int kDownAfterMs = 400;
  void BuildReplicas(int down_after_ms = 60000, int latency_ms = 0) {
    ClusterOptions o;
    o.replicas = 2;
    o.down_after_ms = down_after_ms;
    o.timeout_ms = 1000;
    o.latency_ms = latency_ms;
    Build(o);
    WaitAllServing();
  }
  // Every node starts syncing (from no one: the pool is new).
  void WaitAllServing() {
    ASSERT_TRUE(RunUntil([&] {
      for (int n = 0; n < 3; ++n)
        for (int m = 0; m < 3; ++m)
          if (!pool(n).Serving(m)) return false;
      return true;
    })) << "a fresh pool never got in sync";
  }
  std::string PeekOn(int node, std::string_view key, int db = 0) {
    storage::ItemRef it = store(node).Peek(db, key, WallMs());
    return it ? std::string(it.value()) : std::string("<nil>");
  }
  int64_t ExpireOn(int node, std::string_view key) {
    storage::ItemRef it = store(node).Peek(0, key, WallMs());
    return it ? it.expire_at_ms() : -1;
  }
};

TEST_F(PoolReplicaTest, PlacementIsPrimaryThenNextNode) {
  BuildReplicas();
  EXPECT_EQ(pool(0).replicas(), 2);
  for (int owner = 0; owner < 3; ++owner) {
    EXPECT_EQ(pool(2).ReadNode(owner), owner);
    EXPECT_EQ(pool(2).WriteNodes(owner), (std::vector<int>{owner, (owner + 1) % 3}));
  }
  EXPECT_EQ(pool(1).slots().PrimarySlots(1) + pool(1).slots().ReplicaSlots(1),
            pool(1).slots().PrimarySlots(1) + pool(1).slots().PrimarySlots(0));
  auto nodes = pool(0).Nodes();
  for (const auto& n : nodes) EXPECT_EQ(n.state, NodeState::kUp);
}

TEST_F(PoolReplicaTest, WritesReachEveryCopyAndNoOtherNode) {
  BuildReplicas();
  auto k0 = KeysOn(0, 50), k2 = KeysOn(2, 50);
  for (int from = 0; from < 3; ++from) {
    auto kvs = Pairs(Interleave({k0, k2}), [&](const std::string& k) { return k + "@" + std::to_string(from); });
    auto out = Set(from, kvs);
    ASSERT_TRUE(out.status.ok()) << out.status.ToString();
    for (const auto& k : k0) {
      EXPECT_EQ(PeekOn(0, k), k + "@" + std::to_string(from));
      EXPECT_EQ(PeekOn(1, k), k + "@" + std::to_string(from));
      EXPECT_EQ(PeekOn(2, k), "<nil>");
    }
    for (const auto& k : k2) {
      EXPECT_EQ(PeekOn(2, k), k + "@" + std::to_string(from));
      EXPECT_EQ(PeekOn(0, k), k + "@" + std::to_string(from));
      EXPECT_EQ(PeekOn(1, k), "<nil>");
    }
  }
  // Reads go to the primary only.
  sent_.clear();
  auto got = Get(1, k0);
  for (size_t i = 0; i < k0.size(); ++i) EXPECT_EQ(got[i].value, k0[i] + "@2");
  EXPECT_EQ(CountSent(kOpMultiGet, 0), 1u);
  EXPECT_EQ(CountSent(kOpMultiGet, 2), 0u);
  // DEL reaches both copies; a key counts as removed once.
  auto del = Del(2, {k0[0], k0[1], k2[0], "k:absent"});
  EXPECT_EQ(del, (std::vector<int8_t>{1, 1, 1, 0}));
  for (int n = 0; n < 3; ++n) {
    EXPECT_EQ(PeekOn(n, k0[0]), "<nil>") << n;
    EXPECT_EQ(PeekOn(n, k2[0]), "<nil>") << n;
  }
}

TEST_F(PoolReplicaTest, LargeValuesReachEveryCopy) {
  ClusterOptions o;
  o.replicas = 2;
  o.max_bulk_per_call = 64 * kKiB;
  Build(o);
  ASSERT_TRUE(RunUntil([&] { return pool(0).InSync() && pool(1).InSync() && pool(2).InSync(); }));
  ASSERT_TRUE(RunUntil([&] { return pool(2).Serving(0) && pool(2).Serving(1); }));
  auto k1 = KeysOn(1, 2);
  std::string big = Pattern(300 * kKiB, 7);
  auto out = Set(0, {k1[0], big, k1[1], "small"});
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_TRUE(SameBytes(PeekOn(1, k1[0]), big));
  EXPECT_TRUE(SameBytes(PeekOn(2, k1[0]), big));
  EXPECT_EQ(PeekOn(2, k1[1]), "small");
}

TEST_F(PoolReplicaTest, OneFailingCopyFailsTheWriteOncePerKey) {
  BuildReplicas();
  auto k0 = KeysOn(0, 10);
  RecordCalls([](int, int to, const CallArgs& a) {
    return a.opcode == kOpMultiSet && (to == 0 || to == 1) ? Status::Unavailable("injected")
                                                           : Status::OK();
  });
  auto out = Set(2, Pairs(k0, ValueOf));
  EXPECT_FALSE(out.status.ok());
  EXPECT_EQ(out.failed_keys, 10u);
  RecordCalls([](int, int to, const CallArgs& a) {
    return a.opcode == kOpMultiSet && to == 1 ? Status::Unavailable("injected") : Status::OK();
  });
  out = Set(2, Pairs(k0, ValueOf));
  EXPECT_FALSE(out.status.ok()) << "acknowledged although a live copy did not take it";
  EXPECT_EQ(out.failed_keys, 10u);
  EXPECT_NE(out.status.message().find(Addr(1)), std::string::npos) << out.status.message();
}

// A write that fails in transit to one copy (the others took it) leaves
// that copy behind, or lets it take the write late: the coordinator tells
// it, and it fetches exactly those keys again, sets and deletes alike.
TEST_F(PoolReplicaTest, ACopyAWriteFailedToReachFetchesItsKeysAgain) {
  BuildReplicas();
  auto k0 = KeysOn(0, 10);
  ASSERT_TRUE(Set(2, Pairs(k0, [](const std::string& k) { return k + "@1"; })).status.ok());
  RecordCalls([](int, int to, const CallArgs& a) {
    return (a.opcode == kOpMultiSet || a.opcode == kOpMultiDel) && to == 1
               ? Status::Timeout("injected")
               : Status::OK();
  });
  auto out = Set(2, Pairs(k0, [](const std::string& k) { return k + "@2"; }));
  EXPECT_FALSE(out.status.ok());
  EXPECT_EQ(Del(2, {k0[9]}), (std::vector<int8_t>{-1}));
  EXPECT_EQ(PeekOn(0, k0[0]), k0[0] + "@2");
  EXPECT_EQ(PeekOn(0, k0[9]), "<nil>");
  EXPECT_EQ(CountSent(kOpCatchUp, 1, 2), 2u) << "one per failed call";
  RecordCalls();
  ASSERT_TRUE(RunUntil([&] {
    if (!pool(1).InSync() || pool(1).sync_stats().catch_ups_received < 2) return false;
    for (size_t i = 0; i + 1 < k0.size(); ++i)
      if (PeekOn(1, k0[i]) != k0[i] + "@2") return false;
    return PeekOn(1, k0[9]) == "<nil>";
  }, 10000)) << "node 1: " << PeekOn(1, k0[0]) << ", " << PeekOn(1, k0[9]);
  EXPECT_GE(pool(2).sync_stats().catch_ups_sent, 2u);
  EXPECT_EQ(pool(1).sync_stats().keys_pulled, 0u) << "fetched only the keys, no scan";
  // An error reply (not a failure in transit) tells no one.
  uint64_t sent = pool(2).sync_stats().catch_ups_sent;
  RecordCalls([](int, int to, const CallArgs& a) {
    return a.opcode == kOpMultiSet && to == 1 ? Status::OutOfMemory("injected") : Status::OK();
  });
  EXPECT_FALSE(Set(2, Pairs(k0, ValueOf)).status.ok());
  EXPECT_EQ(pool(2).sync_stats().catch_ups_sent, sent);
}

// Each copy evicts on its own under maxmemory; what one copy evicted the
// others drop too, unless they hold a newer value by then.
TEST_F(PoolReplicaTest, AKeyEvictedOnOneCopyIsDroppedFromTheOthers) {
  ClusterOptions o;
  o.replicas = 2;
  o.maxmemory = 8 * kMiB;
  Build(o);
  WaitAllServing();
  auto k0 = KeysOn(0, 1200);
  for (size_t begin = 0; begin < k0.size(); begin += 100) {
    std::vector<std::string> part(k0.begin() + begin, k0.begin() + begin + 100);
    auto out = Set(2, Pairs(part, [](const std::string& k) { return Pattern(16 * kKiB, k.size()) + k; }));
    ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  }
  ASSERT_GT(store(0).GetStats().evicted_keys + store(1).GetStats().evicted_keys, 0u);
  size_t differ = 0;
  ASSERT_TRUE(RunUntil([&] {
    differ = 0;
    for (const auto& k : k0) differ += PeekOn(0, k) != PeekOn(1, k);
    return differ == 0;
  }, 5000)) << differ << " keys differ between the copies";
  EXPECT_GT(pool(0).sync_stats().evictions_applied + pool(1).sync_stats().evictions_applied, 0u);
  size_t kept = 0;
  for (const auto& k : k0) kept += PeekOn(0, k) != "<nil>";
  EXPECT_GT(kept, 0u);
  EXPECT_LT(kept, k0.size());
  // A newer value is kept: a copy told of an eviction of another value.
  std::string live;
  for (const auto& k : k0)
    if (PeekOn(1, k) != "<nil>") live = k;
  ASSERT_FALSE(live.empty());
  auto told = [&](uint64_t fingerprint) {
    CallArgs a;
    a.opcode = kOpEvicted;
    Writer w(&a.body);
    w.U32(0), w.U32(1), w.Bytes(live), w.U64(PeekOn(1, live).size()), w.U64(fingerprint);
    auto done = std::make_shared<std::optional<Status>>();
    hook(0).Call(0, 1, std::move(a), 2000, [done](Status st, std::string_view reply, std::string_view) {
      std::string_view payload;
      if (st.ok()) st = ParseReplyStatus(reply, &payload);
      *done = st;
    });
    EXPECT_TRUE(RunUntil([&] { return done->has_value(); }));
    EXPECT_TRUE(done->value_or(Status::Internal("hung")).ok());
  };
  told(ValueFingerprint(PeekOn(1, live)) + 1);
  EXPECT_NE(PeekOn(1, live), "<nil>") << "dropped a value it was not told of";
  told(ValueFingerprint(PeekOn(1, live)));
  EXPECT_EQ(PeekOn(1, live), "<nil>") << "kept the value another copy evicted";
}

// One node loses a peer for a moment (the others do not): the peer is not
// flagged by a majority, so it learns from that node whether it missed
// writes. None: it is read from again as it was. Some: it catches up.
TEST_F(PoolReplicaTest, APeerOneNodeLostForAMomentCatchesUpOnlyIfItMissedWrites) {
  BuildReplicas(kDownAfterMs);
  auto k1 = KeysOn(1, 20);  // copies on 1 and 2
  ASSERT_TRUE(Set(0, Pairs(k1, [](const std::string& k) { return k + "@1"; })).status.ok());
  auto cut = [&] {
    RecordCalls([](int from, int to, const CallArgs&) {
      return from == 0 && to == 2 ? Status::Unavailable("cut") : Status::OK();
    });
    ASSERT_TRUE(RunUntil([&] { return !pool(0).NodeUp(2); }, 5000));
  };
  cut();
  uint64_t attempts = pool(2).sync_stats().attempts;
  RecordCalls();
  ASSERT_TRUE(RunUntil([&] { return pool(0).Serving(2); }, 5000))
      << "counted stale for good although nothing was written without it";
  EXPECT_EQ(pool(2).sync_stats().attempts, attempts) << "caught up for nothing";

  cut();
  auto out = Set(0, Pairs(k1, [](const std::string& k) { return k + "@2"; }));
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(PeekOn(2, k1[0]), k1[0] + "@1") << "the write reached the node it counted down";
  RecordCalls();
  ASSERT_TRUE(RunUntil([&] {
    if (!pool(0).Serving(2) || !pool(2).InSync() || pool(2).sync_stats().attempts == attempts)
      return false;
    for (const auto& k : k1)
      if (PeekOn(2, k) != k + "@2") return false;
    return true;
  }, 10000)) << "node 2: " << PeekOn(2, k1[0]) << ", attempts " << pool(2).sync_stats().attempts;
}

TEST_F(PoolReplicaTest, ReadsAndWritesFailOverToTheReplica) {
  BuildReplicas(kDownAfterMs);
  auto k0 = KeysOn(0, 40);
  ASSERT_TRUE(Set(2, Pairs(k0, ValueOf)).status.ok());
  net().SetDown(0, FakeNetwork::DownMode::kRefuse);
  ASSERT_TRUE(RunUntil([&] { return !pool(1).NodeUp(0) && !pool(2).NodeUp(0); }, 3000));
  EXPECT_EQ(pool(2).ReadNode(0), 1);
  EXPECT_EQ(pool(2).WriteNodes(0), std::vector<int>{1});
  auto got = Get(2, k0);
  for (size_t i = 0; i < k0.size(); ++i) {
    EXPECT_EQ(got[i].state, GetResult::kFound);
    EXPECT_EQ(got[i].value, ValueOf(k0[i]));
  }
  EXPECT_EQ(Exists(2, {k0[0], "k:absent"}), (std::vector<int8_t>{1, 0}));
  // Writes are taken by the replica, reads on it are local.
  ASSERT_TRUE(Set(2, {k0[0], "new"}).status.ok());
  EXPECT_EQ(PeekOn(1, k0[0]), "new");
  bool sync = false;
  auto local = Get(1, {k0[0]}, 0, &sync);
  EXPECT_TRUE(sync);
  EXPECT_EQ(local[0].value, "new");
  EXPECT_EQ(Del(2, {k0[1]}), std::vector<int8_t>{1});
  // Whole commands too: the replica runs them and answers.
  std::vector<std::string> args = {"INCR", k0[2]};
  auto argv = Views(args);
  bool done = false;
  std::string reply;
  pool(2).RunOnCopies(0, 0, 0, 2, argv, true, [&](Status s, std::string r) {
    EXPECT_TRUE(s.ok()) << s.ToString();
    reply = r;
    done = true;
  });
  ASSERT_TRUE(RunUntil([&] { return done; }));
  EXPECT_EQ(reply, exec(1).reply);
  ASSERT_FALSE(exec(1).commands.empty());
  EXPECT_EQ(exec(1).commands.back().argv, args);
  // Both copies down: failures, named after the primary.
  net().SetDown(1, FakeNetwork::DownMode::kRefuse);
  ASSERT_TRUE(RunUntil([&] { return !pool(2).NodeUp(1); }, 3000));
  EXPECT_EQ(Get(2, {k0[3]})[0].state, GetResult::kUnavailable);
  auto out = Set(2, {k0[3], "x"});
  EXPECT_EQ(out.failed_keys, 1u);
  EXPECT_NE(out.status.message().find(Addr(0)), std::string::npos) << out.status.message();
  EXPECT_EQ(Del(2, {k0[3]}), std::vector<int8_t>{-1});
}

TEST_F(PoolReplicaTest, WholeWritesRunOnEveryCopyReadsOnOne) {
  BuildReplicas();
  std::vector<std::string> args = {"SET", "k", "v"};
  auto argv = Views(args);
  for (bool write : {true, false}) {
    for (auto* e : {&exec(0), &exec(1), &exec(2)}) e->commands.clear();
    bool done = false;
    std::string reply;
    pool(2).RunOnCopies(0, 0, 3, 2, argv, write, [&](Status s, std::string r) {
      EXPECT_TRUE(s.ok()) << s.ToString();
      reply = r;
      done = true;
    });
    ASSERT_TRUE(RunUntil([&] { return done; }));
    EXPECT_EQ(reply, exec(0).reply) << "the primary answers";
    EXPECT_EQ(exec(0).commands.size(), 1u);
    EXPECT_EQ(exec(1).commands.size(), write ? 1u : 0u);
    EXPECT_TRUE(exec(2).commands.empty());
  }
  // Run by a copy itself: its part through its own executor.
  exec(1).commands.clear();
  bool done = false;
  pool(1).RunOnCopies(0, 0, 0, 2, argv, true, [&](Status s, std::string) {
    EXPECT_TRUE(s.ok());
    done = true;
  });
  ASSERT_TRUE(RunUntil([&] { return done; }));
  EXPECT_EQ(exec(1).commands.size(), 1u);
}

// A node that restarts empty pulls the keys of the slots it holds (values
// and TTLs) from the other copies before it serves reads of them.
TEST_F(PoolReplicaTest, RestartedNodeCatchesUpBeforeServing) {
  BuildReplicas();
  std::vector<std::string> all;
  for (int i = 0; i < 3000; ++i) all.push_back("sync:" + std::to_string(i));
  ASSERT_TRUE(Set(0, Pairs(all, ValueOf)).status.ok());
  // TTLs, and a key in another db, written on both copies.
  int64_t at = WallMs() + 600000;
  for (int n = 0; n < 3; ++n) {
    if (pool(0).slots().HoldsSlot(n, KeySlot(all[7]))) {
      ASSERT_TRUE(store(n).SetExpire(0, all[7], at, storage::ExpireCondition::kAlways, WallMs()));
    }
    if (pool(0).slots().HoldsSlot(n, KeySlot("db3key"))) {
      ASSERT_TRUE(store(n).Set(3, "db3key", "three", {}, WallMs(), nullptr).ok());
    }
  }
  Restart(1);
  EXPECT_FALSE(pool(1).InSync());
  EXPECT_EQ(pool(1).Nodes()[1].state, NodeState::kSyncing);
  // Peers learn it from its heartbeat answers (it restarted faster than
  // they could see it down).
  ASSERT_TRUE(RunUntil([&] { return !pool(0).Serving(1) && !pool(2).Serving(1); }, 5000));
  ASSERT_TRUE(RunUntil([&] { return pool(0).Serving(1) && pool(2).Serving(1); }, 5000));
  EXPECT_TRUE(pool(1).InSync());
  SyncStats ss = pool(1).sync_stats();
  size_t held = 0;
  for (const auto& k : all) {
    if (!pool(0).slots().HoldsSlot(1, KeySlot(k))) {
      EXPECT_EQ(PeekOn(1, k), "<nil>") << k;
      continue;
    }
    ++held;
    EXPECT_EQ(PeekOn(1, k), ValueOf(k)) << k;
  }
  EXPECT_EQ(ss.keys_pulled, held + (pool(0).slots().HoldsSlot(1, KeySlot("db3key")) ? 1 : 0));
  if (pool(0).slots().HoldsSlot(1, KeySlot(all[7]))) {
    EXPECT_EQ(ExpireOn(1, all[7]), at);
  }
  if (pool(0).slots().HoldsSlot(1, KeySlot("db3key"))) {
    EXPECT_EQ(PeekOn(1, "db3key", 3), "three");
  }
  // Node 1 serves its slots again; with its primary down, its replica
  // slots are read from it.
  auto k0 = KeysOn(0, 20);
  ASSERT_TRUE(Set(2, Pairs(k0, ValueOf)).status.ok());
  for (const auto& k : k0) EXPECT_EQ(PeekOn(1, k), ValueOf(k));
}

TEST_F(PoolReplicaTest, CatchUpFromAPrimaryWithLargeValues) {
  ClusterOptions o;
  o.replicas = 2;
  o.max_bulk_per_call = 64 * kKiB;
  Build(o);
  ASSERT_TRUE(RunUntil([&] { return pool(2).Serving(0) && pool(2).Serving(1) && pool(0).Serving(2); }));
  auto k0 = KeysOn(0, 30);
  std::vector<std::string> kvs;
  for (size_t i = 0; i < k0.size(); ++i) {
    kvs.push_back(k0[i]);
    kvs.push_back(Pattern(i % 3 == 0 ? 150 * kKiB : 20 * kKiB, i));
  }
  ASSERT_TRUE(Set(2, kvs).status.ok());
  Restart(1);
  ASSERT_TRUE(RunUntil([&] { return pool(1).InSync(); }, 5000));
  for (size_t i = 0; i < k0.size(); ++i) EXPECT_TRUE(SameBytes(PeekOn(1, k0[i]), kvs[2 * i + 1])) << i;
}

// Writes and deletes that reach the syncing node while it catches up win
// over what it pulls, whatever the order of arrival.
TEST_F(PoolReplicaTest, WritesDuringCatchUpAreNotOverwritten) {
  BuildReplicas(60000, 2);
  auto k0 = KeysOn(0, 300);
  ASSERT_TRUE(Set(2, Pairs(k0, ValueOf)).status.ok());
  Restart(1);
  int scans = 0;
  hook(0).after_handle = [&](uint16_t op, std::string_view) {
    if (op != kOpSyncScan || scans++ > 0) return;
    // After the source answered its first scan: overwrite some keys, delete
    // others, through node 2 (to both copies).
    auto out = std::make_shared<std::vector<std::string>>();
    for (int i = 0; i < 100; ++i) {
      out->push_back(k0[i]);
      out->push_back("newer");
    }
    auto views = Views(*out);
    pool(2).MultiSet(0, 0, views, WallMs(), out, [](Status s, size_t) { EXPECT_TRUE(s.ok()); });
    std::vector<std::string_view> dels(k0.begin() + 100, k0.begin() + 150);
    pool(2).MultiDel(0, 0, dels, WallMs(), [](std::vector<int8_t>&) {});
  };
  ASSERT_TRUE(RunUntil([&] { return pool(1).InSync(); }, 5000));
  RunFor(50);
  EXPECT_GE(scans, 1);
  // Blind writes applied here are as new as any: not fetched again (a
  // fetch could read the source before it applied the same write).
  EXPECT_EQ(pool(1).sync_stats().keys_rechecked, 0u);
  for (int i = 0; i < 300; ++i) {
    std::string want = i < 100 ? "newer" : i < 150 ? "<nil>" : ValueOf(k0[i]);
    EXPECT_EQ(PeekOn(1, k0[i]), want) << i;
    EXPECT_EQ(PeekOn(0, k0[i]), want) << i;
  }
}

TEST_F(PoolReplicaTest, CatchUpStartsOverWhenItsSourceFails) {
  BuildReplicas();
  auto k0 = KeysOn(0, 100);
  ASSERT_TRUE(Set(2, Pairs(k0, ValueOf)).status.ok());
  int failures = 0;
  RecordCalls([&](int, int, const CallArgs& a) {
    return a.opcode == kOpSyncScan && failures++ < 2 ? Status::Unavailable("injected")
                                                     : Status::OK();
  });
  Restart(1);
  ASSERT_TRUE(RunUntil([&] { return pool(1).InSync(); }, 5000));
  // Both first scans (one per source) fail in the first attempt.
  EXPECT_GE(pool(1).sync_stats().attempts, 2u);
  for (const auto& k : k0) EXPECT_EQ(PeekOn(1, k), ValueOf(k));
}

// A read whose copy fails before it is known down (or is a restarted node
// still syncing) is asked of the next copy in sync, here or remote.
TEST_F(PoolReplicaTest, ReadsRetryTheNextCopyWhenOneFails) {
  BuildReplicas();
  auto k0 = KeysOn(0, 30);
  ASSERT_TRUE(Set(2, Pairs(k0, ValueOf)).status.ok());
  net().SetDown(0, FakeNetwork::DownMode::kRefuse);
  EXPECT_TRUE(pool(2).Serving(0)) << "not detected yet";
  for (int from : {2, 1}) {
    auto got = Get(from, k0);
    for (size_t i = 0; i < k0.size(); ++i) {
      EXPECT_EQ(got[i].state, GetResult::kFound) << from << " " << i;
      EXPECT_EQ(got[i].value, ValueOf(k0[i]));
    }
    EXPECT_EQ(Exists(from, k0), std::vector<int8_t>(k0.size(), 1)) << from;
  }
  std::vector<std::string> args = {"GET", k0[0]};
  auto argv = Views(args);
  bool done = false;
  pool(2).RunOnCopies(0, 0, 0, 2, argv, false, [&](Status s, std::string r) {
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(r, exec(1).reply) << "answered by the replica";
    done = true;
  });
  ASSERT_TRUE(RunUntil([&] { return done; }));
  net().SetUp(0);
}

TEST_F(PoolReplicaTest, ARestartedNodeRefusesReadsUntilInSync) {
  BuildReplicas();
  auto k1 = KeysOn(1, 30);
  ASSERT_TRUE(Set(0, Pairs(k1, ValueOf)).status.ok());
  Restart(1);
  // Peers have not heard yet that node 1 restarted: they still read from
  // it, it refuses, and the replica answers.
  ASSERT_TRUE(pool(0).Serving(1));
  ASSERT_TRUE(pool(2).Serving(1));
  std::vector<int8_t> exists;
  bool exists_done = false;
  auto views = Views(k1);
  pool(2).MultiExists(0, 0, views, WallMs(), [&](std::vector<int8_t>& r) {
    exists = r;
    exists_done = true;
  });
  auto got = Get(0, k1);
  for (size_t i = 0; i < k1.size(); ++i) {
    EXPECT_EQ(got[i].state, GetResult::kFound) << i;
    EXPECT_EQ(got[i].value, ValueOf(k1[i]));
  }
  ASSERT_TRUE(RunUntil([&] { return exists_done; }));
  EXPECT_EQ(exists, std::vector<int8_t>(k1.size(), 1)) << "answered here, node 2 being a copy";
  ASSERT_TRUE(RunUntil([&] { return pool(1).InSync(); }, 5000));
}

// A node cut off (calls to it fail) while it stays up in its own eyes
// misses writes and deletes; back, it is told so by its peers' pings, is
// not read from meanwhile, drops the keys its peers hold and catches up.
TEST_F(PoolReplicaTest, ANodeBackFromAPartitionCatchesUpAndServesNothingStale) {
  BuildReplicas(kDownAfterMs);
  auto k0 = KeysOn(0, 60), k1 = KeysOn(1, 60);
  auto all = Interleave({k0, k1});
  ASSERT_TRUE(Set(2, Pairs(all, ValueOf)).status.ok());
  net().SetDown(1, FakeNetwork::DownMode::kRefuse);
  ASSERT_TRUE(RunUntil([&] { return !pool(0).NodeUp(1) && !pool(2).NodeUp(1); }, 3000));
  std::map<std::string, std::string> want;
  for (const auto& k : all) want[k] = ValueOf(k);
  std::vector<std::string> upd;
  for (int i = 0; i < 20; ++i) {
    upd.insert(upd.end(), {k0[i], "new"});
    upd.insert(upd.end(), {k1[i], "new"});
    want[k0[i]] = want[k1[i]] = "new";
  }
  ASSERT_TRUE(Set(0, upd).status.ok());
  std::vector<std::string> gone;
  for (int i = 20; i < 30; ++i) {
    gone.push_back(k0[i]);
    gone.push_back(k1[i]);
    want[k0[i]] = want[k1[i]] = "<nil>";
  }
  EXPECT_EQ(Del(2, gone), std::vector<int8_t>(gone.size(), 1));
  EXPECT_EQ(PeekOn(1, k1[0]), ValueOf(k1[0])) << "node 1 missed it";
  net().SetUp(1);
  // From now on every read, through any node, sees the new state.
  auto check = [&](const char* when) {
    for (int from = 0; from < 3; ++from) {
      auto got = Get(from, all);
      for (size_t i = 0; i < all.size(); ++i) {
        std::string v = got[i].state == GetResult::kFound ? got[i].value : "<nil>";
        EXPECT_EQ(v, want[all[i]]) << when << ", through node " << from << ": " << all[i];
      }
    }
  };
  ASSERT_TRUE(RunUntil([&] {
    check("while node 1 comes back");
    return pool(1).InSync() && pool(0).Serving(1) && pool(2).Serving(1) && pool(1).Serving(1);
  }, 5000));
  EXPECT_GE(pool(1).sync_stats().attempts, 2u) << "caught up again";
  for (const auto& [k, v] : want) EXPECT_EQ(PeekOn(1, k), v) << k;
  check("after");
  // Nodes 0 and 2, which saw node 1 away, did not catch up themselves.
  EXPECT_EQ(pool(0).sync_stats().attempts, 1u);
  EXPECT_EQ(pool(2).sync_stats().attempts, 1u);
}

// A node that sees fewer than half of the nodes up may be the minority side
// of a partition: it neither serves reads nor takes writes.
TEST_F(PoolReplicaTest, AMinorityNodeNeitherReadsNorWrites) {
  BuildReplicas(kDownAfterMs);
  auto k0 = KeysOn(0, 5);
  ASSERT_TRUE(Set(0, Pairs(k0, ValueOf)).status.ok());
  net().SetDown(1, FakeNetwork::DownMode::kRefuse);
  net().SetDown(2, FakeNetwork::DownMode::kRefuse);
  ASSERT_TRUE(RunUntil([&] { return !pool(0).NodeUp(1) && !pool(0).NodeUp(2); }, 3000));
  EXPECT_FALSE(pool(0).Serving(0));
  EXPECT_TRUE(pool(0).WriteNodes(0).empty());
  EXPECT_EQ(pool(0).ReadNode(0), -1);
  auto out = Set(0, {k0[0], "minority"});
  EXPECT_EQ(out.failed_keys, 1u);
  EXPECT_EQ(Get(0, {k0[0]})[0].state, GetResult::kUnavailable);
  EXPECT_EQ(PeekOn(0, k0[0]), ValueOf(k0[0]));
  // The moment it starts catching up (it logs so), it must already have
  // stopped serving: between "not the minority" and "syncing" a read here
  // would see values the others overwrote.
  class Watch : public spdlog::sinks::base_sink<std::mutex> {
   public:
    explicit Watch(std::function<void(std::string_view)> fn) : fn_(std::move(fn)) {}

   protected:
    void sink_it_(const spdlog::details::log_msg& m) override {
      fn_(std::string_view(m.payload.data(), m.payload.size()));
    }
    void flush_() override {}

   private:
    std::function<void(std::string_view)> fn_;
  };
  std::atomic<int> resyncs{0}, served_while_resyncing{0};
  auto watch = std::make_shared<Watch>([&](std::string_view line) {
    if (line.find("back with a majority") == std::string_view::npos) return;
    ++resyncs;
    if (pool(0).Serving(0)) ++served_while_resyncing;
  });
  spdlog::default_logger()->sinks().push_back(watch);
  net().SetUp(1);
  net().SetUp(2);
  // Back with a majority: it catches up, then serves again.
  bool back = RunUntil([&] { return pool(0).Serving(0) && pool(1).Serving(0); }, 5000);
  auto& sinks = spdlog::default_logger()->sinks();
  sinks.erase(std::find(sinks.begin(), sinks.end(), watch));
  ASSERT_TRUE(back);
  EXPECT_EQ(resyncs.load(), 1);
  EXPECT_EQ(served_while_resyncing.load(), 0);
  EXPECT_GE(pool(0).sync_stats().attempts, 2u);
  EXPECT_EQ(Get(1, {k0[0]})[0].value, ValueOf(k0[0]));
}

}  // namespace
}  // namespace kvpool::pool
