// Membership by heartbeats (peers down until they answer, down after
// down_after_ms, back when they answer again), and the clocks: deadlines and
// liveness on the monotonic clock, whatever the wall clock does.
#include "storage/pool/pool_test_util.h"

namespace kvpool::pool {
namespace {

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

}  // namespace
}  // namespace kvpool::pool
