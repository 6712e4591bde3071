// Shared by the pool tests (pool_test.cc, pool_value_test.cc,
// pool_membership_test.cc, pool_protocol_test.cc, pool_replica_test.cc):
// three Pools, each with its own Store, a FakeNetwork transport (wrapped so
// tests can watch calls on the owner side, and rewrite replies or fail calls
// at once on the requester side) and a fake CommandExecutor, all on one
// event_base. Requests are driven by calling the Pool methods and running the
// loop until their done callbacks fire; a request that does not finish
// within a bound fails the test.
#pragma once

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

using storage::Store;
using transport::CallArgs;
using transport::FakeNetwork;
using transport::IncomingCall;
using transport::Transport;

inline constexpr size_t kKiB = 1024;
inline constexpr size_t kMiB = 1024 * 1024;

// A write that carries a token (kOpTokened, fate.cc) as the call inside:
// its opcode and its body without the token's trailer. Tests watch the
// calls they know by the opcode of what they do.
inline constexpr size_t kTokenTrailer = kTokenTrailerBytes;
inline void Unwrap(uint16_t* opcode, std::string_view* body) {
  if (*opcode != kOpTokened || body->size() < kTokenTrailer) return;
  std::string_view t = body->substr(body->size() - kTokenTrailer);
  *opcode = static_cast<uint16_t>((uint8_t(t[2]) << 8) | uint8_t(t[3]));
  body->remove_suffix(kTokenTrailer);
}
inline CallArgs Unwrapped(const CallArgs& a) {
  CallArgs c = a;
  std::string_view body = a.body;
  Unwrap(&c.opcode, &body);
  c.body = std::string(body);
  return c;
}

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
    if (IsSet(argv)) {
      auto now = std::chrono::system_clock::now().time_since_epoch();
      Status s = store->Set(db, argv[1], argv[2], {},
                            std::chrono::duration_cast<std::chrono::milliseconds>(now).count(),
                            nullptr);
      EXPECT_TRUE(s.ok()) << s.ToString();
    }
    return reply;
  }
  // SET k v writes k (the only command this fake runs against its store).
  std::vector<std::string_view> WriteKeys(const std::vector<std::string_view>& argv) override {
    if (IsSet(argv)) return {argv[1]};
    return {};
  }
  bool IsSet(const std::vector<std::string_view>& argv) const {
    return store != nullptr && argv.size() == 3 && argv[0] == "SET";
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
  storage::Store* store = nullptr;  // this node's
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
                           std::string_view inner = c->body();
                           Unwrap(&op, &inner);
                           std::string body(inner);
                           handler(std::move(c));
                           if (after_handle) after_handle(op, body);
                         });
  }
  void StopLane(int lane) override { inner_->StopLane(lane); }
  void Call(int lane, int peer, CallArgs args, int timeout_ms,
            transport::CallDone done) override {
    if (fail_at_once) {
      Status s = fail_at_once(peer, Unwrapped(args));
      if (!s.ok()) return done(s, {}, {});
    }
    if (!rewrite_reply) return inner_->Call(lane, peer, std::move(args), timeout_ms, std::move(done));
    uint16_t op = args.opcode;
    std::string_view body = args.body;
    Unwrap(&op, &body);
    inner_->Call(lane, peer, std::move(args), timeout_ms,
                 [this, op, done = std::move(done)](Status s, std::string_view reply,
                                                    std::string_view bulk) {
                   std::string r(reply), b(bulk);
                   if (rewrite_reply) rewrite_reply(op, &s, &r, &b);
                   done(s, r, transport::BulkOut(b));
                 });
  }
  const transport::PeerCounters& counters(int peer) const override {
    return inner_->counters(peer);
  }
  size_t max_bulk_per_call() const override { return inner_->max_bulk_per_call(); }
  bool peer_up(int peer) const override { return inner_->peer_up(peer); }
  const transport::ListenCounters& listen_counters() const override {
    return inner_->listen_counters();
  }
  std::vector<transport::TransportCounter> Counters() const override {
    return inner_->Counters();
  }

 private:
  std::unique_ptr<Transport> inner_;
};

// Bytes that differ at every offset and per seed, so a value stitched from
// two versions never equals either.
inline std::string Pattern(size_t n, uint64_t seed) {
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
inline ::testing::AssertionResult SameBytes(std::string_view got, std::string_view want) {
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
  int maxmemory_samples = 5;  // keys an eviction samples (more: closer to LRU)
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
    for (int i = 0; i < o.nodes; ++i) {
      storage::StoreOptions so;
      so.maxmemory = o.maxmemory;
      so.maxmemory_samples = o.maxmemory_samples;
      so.version_node = static_cast<uint8_t>(i);
      auto st = Store::Open(so);
      ASSERT_TRUE(st.ok()) << st.status().ToString();
      stores_.push_back(std::move(st.value()));
      transports_.push_back(std::make_unique<HookTransport>(net_->CreateTransport(i)));
      execs_.push_back(std::make_unique<FakeExecutor>(i));
      execs_.back()->store = stores_.back().get();
      pools_.push_back(std::make_unique<Pool>(OptionsFor(i), stores_[i].get(),
                                              transports_[i].get(), execs_[i].get()));
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

  // With replicas, every node starts syncing (from no one: the pool is
  // new): returns once each node sees every node serving.
  void WaitAllServing() {
    ASSERT_TRUE(RunUntil([&] {
      for (int n = 0; n < opts_.nodes; ++n)
        for (int m = 0; m < opts_.nodes; ++m)
          if (!pool(n).Serving(m)) return false;
      return true;
    })) << "a fresh pool never got in sync";
  }

  // Node i's PoolOptions, from the cluster's options (opts_).
  PoolOptions OptionsFor(int i) const {
    PoolOptions po;
    for (int n = 0; n < opts_.nodes; ++n) po.nodes.push_back({"127.0.0.1", 7000 + n, 17000 + n});
    po.self = i;
    po.timeout_ms = opts_.timeout_ms;
    po.heartbeat_ms = opts_.heartbeat_ms;
    po.down_after_ms = opts_.down_after_ms;
    po.max_batch_keys = opts_.max_batch_keys;
    po.replicas = opts_.replicas;
    po.wall_ms = opts_.wall_ms;
    return po;
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
    pools_[i].reset();
    transports_[i].reset();
    stores_[i].reset();
    storage::StoreOptions so;
    so.maxmemory = opts_.maxmemory;
    so.maxmemory_samples = opts_.maxmemory_samples;
    so.version_node = static_cast<uint8_t>(i);
    auto st = Store::Open(so);
    ASSERT_TRUE(st.ok());
    stores_[i] = std::move(st.value());
    execs_[i]->store = stores_[i].get();
    transports_[i] = std::make_unique<HookTransport>(net_->CreateTransport(i));
    pools_[i] = std::make_unique<Pool>(OptionsFor(i), stores_[i].get(), transports_[i].get(),
                                       execs_[i].get());
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
      uint16_t op = a.opcode;
      std::string_view body = a.body;
      Unwrap(&op, &body);
      sent_.push_back({from, to, op, in, a.bulk_out_capacity});
      if (!inject) return Status::OK();
      return op == a.opcode ? inject(from, to, a) : inject(from, to, Unwrapped(a));
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

  // kOpMultiExists, kOpMultiTouch or kOpMultiDel of `keys` through `from`.
  std::vector<int8_t> Flags(uint16_t op, int from, const std::vector<std::string>& keys,
                            int db = 0, bool* sync = nullptr) {
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
    const int64_t now = opts_.wall_ms();
    if (op == kOpMultiDel) pool(from).MultiDel(0, db, views, now, cb);
    else if (op == kOpMultiTouch) pool(from).MultiTouch(0, db, views, now, cb);
    else pool(from).MultiExists(0, db, views, now, cb);
    if (sync) *sync = s->done;
    EXPECT_TRUE(RunUntil([&] { return s->done; })) << "opcode " << op << " hung";
    return s->out;
  }
  std::vector<int8_t> Exists(int from, const std::vector<std::string>& keys, int db = 0,
                             bool* sync = nullptr) {
    return Flags(kOpMultiExists, from, keys, db, sync);
  }
  std::vector<int8_t> Touch(int from, const std::vector<std::string>& keys, int db = 0) {
    return Flags(kOpMultiTouch, from, keys, db);
  }
  std::vector<int8_t> Del(int from, const std::vector<std::string>& keys, int db = 0,
                          bool* sync = nullptr) {
    return Flags(kOpMultiDel, from, keys, db, sync);
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
inline std::vector<std::string> Interleave(const std::vector<std::vector<std::string>>& per_node) {
  std::vector<std::string> out;
  for (size_t i = 0;; ++i) {
    bool any = false;
    for (const auto& v : per_node)
      if (i < v.size()) out.push_back(v[i]), any = true;
    if (!any) return out;
  }
}

inline std::vector<std::string> Pairs(const std::vector<std::string>& keys,
                               const std::function<std::string(const std::string&)>& value) {
  std::vector<std::string> kvs;
  for (const auto& k : keys) {
    kvs.push_back(k);
    kvs.push_back(value(k));
  }
  return kvs;
}

inline std::string ValueOf(const std::string& k) { return "v=" + k; }

}  // namespace kvpool::pool
