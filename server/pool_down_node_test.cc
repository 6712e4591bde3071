// A pool of three in one process (PoolHarness) with one node off the
// network: reads of its keys answer as missing (MGET nil, MEXISTS 0, POOL
// MEXISTS -1), writes to them answer an error naming it, commands covering
// the pool skip it or name it; back on, it serves again. With pool-replicas
// 2 its keys are read from their other copy.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "server/dispatcher.h"
#include "server/testing/pool_harness.h"
#include "server/testing/resp_text.h"

namespace kvpool::testing {
namespace {

class PoolDownNodeTest : public ::testing::Test {
 protected:
  explicit PoolDownNodeTest(PoolHarnessOptions o = {}) : h(std::move(o)) {}
  void SetUp() override {
    for (int i = 0; i < 3; ++i) k[i] = h.KeyOn(i);
    ASSERT_EQ(h.Run(0, {"MSET", k[0], "v0", k[1], "v1", k[2], "v2"}), kOkReply);
  }
  void TakeDown(int node) {
    h.SetDown(node);
    ASSERT_TRUE(h.WaitDown(node)) << "the others never saw node " << node << " down";
  }
  std::string Unavailable(int node) { return "pool node " + h.Addr(node) + " is unavailable"; }

  PoolHarness h;
  std::string k[3];  // k[i]'s primary is node i
};

TEST_F(PoolDownNodeTest, ReadsOfItsKeysAnswerAsMissing) {
  TakeDown(2);
  for (int via = 0; via < 2; ++via) {
    EXPECT_EQ(h.Run(via, {"MGET", k[2], k[0], k[1]}), Array({kNilReply, Bulk("v0"), Bulk("v1")}));
    EXPECT_EQ(h.Run(via, {"MEXISTS", k[0], k[2], k[1]}), Array({Int(1), Int(0), Int(1)}));
    EXPECT_EQ(h.Run(via, {"EXISTS", k[0], k[1], k[2]}), Int(2));
    EXPECT_EQ(h.Run(via, {"GET", k[2]}), kNilReply);
    EXPECT_EQ(h.Run(via, {"TTL", k[2]}), Int(-2));
  }
}

TEST_F(PoolDownNodeTest, PoolMExistsTellsUnknownFromAbsent) {
  TakeDown(2);
  std::string absent = h.KeyOn(1, "absent");
  EXPECT_EQ(h.Run(0, {"POOL", "MEXISTS", k[0], k[2], absent, k[1]}),
            Array({Int(1), Int(-1), Int(0), Int(1)}));
}

TEST_F(PoolDownNodeTest, WritesToItsKeysNameIt) {
  TakeDown(2);
  EXPECT_EQ(h.Run(0, {"SET", k[2], "x"}), Err("ERR " + Unavailable(2)));
  EXPECT_EQ(h.Run(1, {"INCR", k[2]}), Err("ERR " + Unavailable(2)));
  EXPECT_EQ(h.Run(0, {"MSET", k[0], "a", k[2], "b", k[1], "c"}),
            Err("ERR " + Unavailable(2) + ": 1 of 3 keys were not stored"));
  // The other parts were stored.
  EXPECT_EQ(h.Run(1, {"MGET", k[0], k[1]}), Array({Bulk("a"), Bulk("c")}));
  EXPECT_EQ(h.Run(0, {"DEL", k[0], k[2], k[1]}),
            Err("ERR pool node " + h.Addr(2) +
                " is unavailable: 1 of 3 keys were not deleted (2 deleted)"));
  EXPECT_EQ(h.Run(1, {"EXISTS", k[0], k[1]}), Int(0));
  // MSETNX cannot check a key there; on its keys alone, it names the node.
  std::string nx0 = h.KeyOn(0, "nx"), nx2 = h.KeyOn(2, "nx"), other2 = h.KeyOn(2, "nx2");
  EXPECT_EQ(h.Run(1, {"MSETNX", nx0, "1", nx2, "2"}),
            Err("ERR a pool node is unavailable: MSETNX could not check every key"));
  EXPECT_EQ(h.Run(1, {"EXISTS", nx0}), Int(0));
  EXPECT_EQ(h.Run(0, {"MSETNX", nx2, "1", other2, "2"}), Err("ERR " + Unavailable(2)));
  // Writes of keys elsewhere are untouched.
  EXPECT_EQ(h.Run(0, {"SET", k[1], "fine"}), kOkReply);
}

TEST_F(PoolDownNodeTest, TransactionOnItIsAborted) {
  TakeDown(1);
  EXPECT_EQ(h.Run(0, {"MULTI"}), kOkReply);
  EXPECT_EQ(h.Run(0, {"SET", k[1], "x"}), kQueuedReply);
  EXPECT_EQ(h.Run(0, {"EXEC"}), Err("EXECABORT " + Unavailable(1)));
  EXPECT_EQ(h.Run(0, {"WATCH", k[1]}), Err("ERR cannot WATCH keys on pool node: " + Unavailable(1)));
}

TEST_F(PoolDownNodeTest, CommandsCoveringThePoolSkipOrNameIt) {
  TakeDown(1);
  EXPECT_EQ(h.Run(0, {"DBSIZE"}), Int(2));
  EXPECT_EQ(h.Run(2, {"KEYS", "*"}), Array({Bulk(k[0]), Bulk(k[2])}));
  // SCAN skips the node it cannot list.
  EXPECT_EQ(h.Run(0, {"SCAN", "0"}), Array({Bulk("1"), Array({Bulk(k[0])})}));
  EXPECT_EQ(h.Run(0, {"SCAN", "1"}), Array({Bulk("0"), Array({Bulk(k[2])})}));
  EXPECT_EQ(h.Run(2, {"FLUSHALL"}),
            Err("ERR pool node(s) " + h.Addr(1) + " unavailable: their keys were not flushed"));
  // The nodes that answered were flushed.
  EXPECT_EQ(h.store(0).DbSize(0), 0u);
  EXPECT_EQ(h.store(2).DbSize(0), 0u);
  EXPECT_EQ(h.store(1).DbSize(0), 1u);
}

TEST_F(PoolDownNodeTest, BackOnTheNetworkItServesAgain) {
  TakeDown(2);
  EXPECT_EQ(h.Run(0, {"GET", k[2]}), kNilReply);
  h.SetUp(2);
  ASSERT_TRUE(h.WaitUp(2));
  EXPECT_EQ(h.Run(0, {"MGET", k[0], k[1], k[2]}), Array({Bulk("v0"), Bulk("v1"), Bulk("v2")}));
  EXPECT_EQ(h.Run(1, {"SET", k[2], "new"}), kOkReply);
  EXPECT_EQ(h.Run(0, {"GET", k[2]}), Bulk("new"));
}

// A node that stops answering before any heartbeat noticed: requests to it
// are bounded by pool-timeout-ms.
class PoolSilentNodeTest : public PoolDownNodeTest {
 protected:
  static PoolHarnessOptions Options() {
    PoolHarnessOptions o;
    o.timeout_ms = 200;
    o.down_after_ms = 60000;  // never marked down within the test
    return o;
  }
  PoolSilentNodeTest() : PoolDownNodeTest(Options()) {}
};

TEST_F(PoolSilentNodeTest, ReadsAreBoundedByTheTimeout) {
  h.SetDown(2, transport::FakeNetwork::DownMode::kBlackhole);
  // The reply of `args` through `node`, checking it took about one timeout.
  auto timed = [&](int node, std::vector<std::string> args) {
    auto start = std::chrono::steady_clock::now();
    std::string r = h.Run(node, std::move(args));
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - start).count();
    EXPECT_GE(ms, 200 - 10);  // timers fire on whole milliseconds
    EXPECT_LT(ms, 200 + 1000);
    return r;
  };
  EXPECT_EQ(timed(0, {"MGET", k[0], k[2]}), Array({Bulk("v0"), kNilReply}));
  EXPECT_EQ(timed(1, {"POOL", "MEXISTS", k[2], k[1]}), Array({Int(-1), Int(1)}));
  EXPECT_EQ(timed(1, {"MEXISTS", k[2], k[1]}), Array({Int(0), Int(1)}));
  EXPECT_EQ(timed(0, {"GET", k[2]}), kNilReply);
  // Writes name the node; the transport's reason follows in parentheses.
  std::string set = timed(1, {"SET", k[2], "x"});
  EXPECT_EQ(set.rfind("-ERR " + Unavailable(2) + " (", 0), 0u) << set;
  std::string mset = timed(0, {"MSET", k[0], "a", k[2], "b"});
  EXPECT_EQ(mset.rfind("-ERR " + Unavailable(2) + " (", 0), 0u) << mset;
  EXPECT_TRUE(mset.ends_with("): 1 of 2 keys were not stored\r\n")) << mset;
  EXPECT_EQ(timed(0, {"DEL", k[2]}),
            Err("ERR " + Unavailable(2) + ": 1 of 1 keys were not deleted (0 deleted)"));
  EXPECT_TRUE(h.pool(0).NodeUp(2));  // not yet marked down: the timeout answered
}

// pool-replicas 2: every slot has a second copy.
class PoolReplicaTest : public PoolDownNodeTest {
 protected:
  static PoolHarnessOptions Options() {
    PoolHarnessOptions o;
    o.replicas = 2;
    return o;
  }
  PoolReplicaTest() : PoolDownNodeTest(Options()) {}
  int Copies(const std::string& key) {
    int n = 0;
    for (int node = 0; node < 3; ++node) n += h.store(node).Peek(0, key, NowMs()) ? 1 : 0;
    return n;
  }
};

TEST_F(PoolReplicaTest, EveryKeyIsOnTwoNodes) {
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Copies(k[i]), 2) << k[i];
  EXPECT_EQ(h.Run(1, {"DBSIZE"}), Int(3));
  EXPECT_EQ(h.Run(0, {"DEL", k[2]}), Int(1));
  EXPECT_EQ(Copies(k[2]), 0);
}

// A transaction through any node runs on its keys' primary, which relays
// the state it left: both copies end with one value and one version (replayed
// on each copy, as it once was, each would carry its own node's version, and
// two writers' transactions could land in different orders).
TEST_F(PoolReplicaTest, TransactionsThroughAnyNodeLeaveEqualCopies) {
  for (int primary = 0; primary < 3; ++primary) {
    const std::string tag = "{" + h.KeyOn(primary, "tx") + "}";
    const std::string a = tag + ":a", n = tag + ":n";
    for (int via = 0; via < 3; ++via) {
      PoolClient& c = h.NewClient(via);
      ASSERT_EQ(h.Run(c, {"MULTI"}), kOkReply);
      ASSERT_EQ(h.Run(c, {"APPEND", a, std::to_string(via)}), kQueuedReply);
      ASSERT_EQ(h.Run(c, {"INCR", n}), kQueuedReply);
      EXPECT_EQ(h.Run(c, {"EXEC"}), Array({Int(via + 1), Int(via + 1)}))
          << "primary " << primary << ", via " << via;
    }
    for (const auto& [key, want] : {std::pair{a, "012"}, std::pair{n, "3"}}) {
      std::vector<storage::ItemRef> held;
      for (int node = 0; node < 3; ++node)
        if (auto item = h.store(node).Peek(0, key, NowMs())) held.push_back(std::move(item));
      ASSERT_EQ(held.size(), 2u) << key;
      EXPECT_EQ(held[0].value(), want) << key;
      EXPECT_EQ(held[1].value(), want) << key;
      EXPECT_EQ(held[0].version(), held[1].version()) << key;
    }
  }
}

TEST_F(PoolReplicaTest, KeysOfADownNodeAreReadFromTheirOtherCopy) {
  TakeDown(2);
  EXPECT_EQ(h.Run(0, {"MGET", k[0], k[1], k[2]}), Array({Bulk("v0"), Bulk("v1"), Bulk("v2")}));
  EXPECT_EQ(h.Run(1, {"POOL", "MEXISTS", k[2]}), Array({Int(1)}));
  EXPECT_EQ(h.Run(1, {"GET", k[2]}), Bulk("v2"));
  // A write goes to the copy that is up; the node back catches up.
  EXPECT_EQ(h.Run(0, {"SET", k[2], "while-down"}), kOkReply);
  h.SetUp(2);
  ASSERT_TRUE(h.WaitUp(2, 5000));
  EXPECT_EQ(h.Run(2, {"GET", k[2]}), Bulk("while-down"));
  EXPECT_EQ(Copies(k[2]), 2);
}

}  // namespace
}  // namespace kvpool::testing
