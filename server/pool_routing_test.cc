// Routing and fan-out through a pool of three in one process (PoolHarness on
// the fake transport): which node a command's keys reach, what a client of
// any node gets back, byte for byte. These pin the behaviour the pytest pool
// suite checks against real processes, so the data path can be rebuilt
// against them.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "server/dispatcher.h"
#include "server/metrics_http.h"
#include "server/testing/pool_harness.h"
#include "server/testing/resp_text.h"
#include "storage/util/digest.h"

namespace kvpool::testing {
namespace {

class PoolRoutingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 3; ++i) k[i] = h.KeyOn(i);
  }
  // Whether node `node`'s own store holds `key` (db 0).
  bool Holds(int node, const std::string& key) {
    return static_cast<bool>(h.store(node).Peek(0, key, NowMs()));
  }
  // Keys "{tag}a", "{tag}b"... share the slot of a tag that lives on `node`.
  std::string TagOn(int node) { return "{" + h.KeyOn(node, "tag") + "}"; }
  void SetAll() {
    ASSERT_EQ(h.Run(0, {"MSET", k[0], "v0", k[1], "v1", k[2], "v2"}), kOkReply);
  }

  PoolHarness h;
  std::string k[3];  // k[i]'s primary is node i
};

// ------------------------------------------------------------ observability

// The number right after `key` in `text`; -1 if `key` is not there.
int64_t NumberAfter(const std::string& text, const std::string& key) {
  size_t at = text.find(key);
  if (at == std::string::npos) return -1;
  return std::strtoll(text.c_str() + at + key.size(), nullptr, 10);
}

TEST_F(PoolRoutingTest, InfoAndMetricsShowTheTransportsOwnCounters) {
  // The fake transport's one counter: calls that reached the node.
  const std::string info_key = "\r\npool_transport_calls_delivered:";
  const int64_t before = NumberAfter(h.Run(1, {"INFO", "pool"}), info_key);
  ASSERT_GE(before, 0);
  ASSERT_EQ(h.Run(0, {"MSET", k[1], "v1"}), kOkReply);
  const int64_t after = NumberAfter(h.Run(1, {"INFO", "pool"}), info_key);
  EXPECT_GT(after, before);
  const std::string m = RenderMetrics(h.server(1));
  EXPECT_NE(m.find("# HELP kvpool_pool_transport_calls_delivered_total fake: Calls that reached "
                   "this node's handler.\n# TYPE kvpool_pool_transport_calls_delivered_total "
                   "counter\n"),
            std::string::npos)
      << m;
  EXPECT_GE(NumberAfter(m, "\nkvpool_pool_transport_calls_delivered_total "), after);
}

// ------------------------------------------------------------ batch fan-out

TEST_F(PoolRoutingTest, MSetStoresEachKeyOnItsOwnerOnly) {
  ASSERT_EQ(h.Run(1, {"MSET", k[0], "v0", k[1], "v1", k[2], "v2"}), kOkReply);
  for (int key = 0; key < 3; ++key)
    for (int node = 0; node < 3; ++node)
      EXPECT_EQ(Holds(node, k[key]), node == key) << "key " << k[key] << " on node " << node;
}

TEST_F(PoolRoutingTest, MGetAnswersInCallerOrderThroughEveryNode) {
  SetAll();
  std::string absent = h.KeyOn(1, "absent");
  const std::string want =
      Array({Bulk("v2"), kNilReply, Bulk("v0"), Bulk("v1"), Bulk("v2")});
  for (int node = 0; node < 3; ++node)
    EXPECT_EQ(h.Run(node, {"MGET", k[2], absent, k[0], k[1], k[2]}), want) << "via " << node;
}

TEST_F(PoolRoutingTest, MGetOfLargeRemoteValuesIsByteExact) {
  // Values past the zero-copy threshold reach the reply by reference.
  std::string big1(kZeroCopyMinBytes + 3, 'x'), big2(3 * kZeroCopyMinBytes, 'y');
  for (size_t i = 0; i < big1.size(); ++i) big1[i] = static_cast<char>(i * 7);
  ASSERT_EQ(h.Run(0, {"MSET", k[1], big1, k[2], big2}), kOkReply);
  EXPECT_EQ(h.Run(0, {"MGET", k[1], k[2]}), Array({Bulk(big1), Bulk(big2)}));
  EXPECT_EQ(h.Run(2, {"GET", k[1]}), Bulk(big1));
}

TEST_F(PoolRoutingTest, MExistsExistsDelAcrossNodes) {
  SetAll();
  std::string absent = h.KeyOn(0, "absent");
  EXPECT_EQ(h.Run(1, {"MEXISTS", k[1], absent, k[2], k[0]}),
            Array({Int(1), Int(0), Int(1), Int(1)}));
  // EXISTS counts a key named twice twice, as Redis does.
  EXPECT_EQ(h.Run(2, {"EXISTS", k[0], k[1], k[2], k[0], absent}), Int(4));
  // TOUCH too, the keys held elsewhere read where they are (kOpMultiTouch).
  EXPECT_EQ(h.Run(2, {"TOUCH", k[0], k[1], k[2], k[0], absent}), Int(4));
  EXPECT_EQ(h.Run(0, {"DEL", k[0], k[1], absent}), Int(2));
  EXPECT_FALSE(Holds(0, k[0]));
  EXPECT_FALSE(Holds(1, k[1]));
  EXPECT_EQ(h.Run(1, {"MEXISTS", k[0], k[1], k[2]}), Array({Int(0), Int(0), Int(1)}));
  EXPECT_EQ(h.Run(1, {"UNLINK", k[2], k[0]}), Int(1));
  EXPECT_EQ(h.Run(0, {"EXISTS", k[0], k[1], k[2]}), Int(0));
}

TEST_F(PoolRoutingTest, PoolMExistsIsOneOrZeroWhileEveryNodeAnswers) {
  SetAll();
  std::string absent = h.KeyOn(2, "absent");
  EXPECT_EQ(h.Run(0, {"POOL", "MEXISTS", k[2], absent, k[1], k[0]}),
            Array({Int(1), Int(0), Int(1), Int(1)}));
  // Every key on the node asked: answered there, the same way.
  EXPECT_EQ(h.Run(2, {"POOL", "MEXISTS", k[2], absent}), Array({Int(1), Int(0)}));
}

TEST_F(PoolRoutingTest, PoolCopiesShowsTheOwnersCopyFromAnyNode) {
  SetAll();
  const uint64_t version = h.store(1).Peek(0, k[1], NowMs()).version();
  const std::string entry = Array({Bulk(h.Addr(1)), Bulk("in-sync"),
                                   Int(static_cast<int64_t>(version)), Bulk(Hex64(Hash64("v1")))});
  for (int via : {0, 1}) EXPECT_EQ(h.Run(via, {"POOL", "COPIES", k[1]}), Array({entry})) << via;
  std::string absent = h.KeyOn(2, "absent");
  EXPECT_EQ(h.Run(0, {"POOL", "COPIES", absent}),
            Array({Array({Bulk(h.Addr(2)), Bulk("in-sync"), kNilReply, kNilReply})}));
  EXPECT_EQ(h.Run(0, {"POOL", "COPIES"}),
            Err("ERR wrong number of arguments for 'pool|copies' command"));
}

TEST_F(PoolRoutingTest, MSetNxChecksEveryNodeBeforeWriting) {
  EXPECT_EQ(h.Run(0, {"MSETNX", k[0], "a", k[1], "b"}), Int(1));
  EXPECT_EQ(h.Run(2, {"MSETNX", k[1], "c", k[2], "d"}), Int(0));
  EXPECT_EQ(h.Run(1, {"MGET", k[0], k[1], k[2]}), Array({Bulk("a"), Bulk("b"), kNilReply}));
  // All keys on one other node: that node does it.
  std::string t = TagOn(2);
  EXPECT_EQ(h.Run(0, {"MSETNX", t + "a", "1", t + "b", "2"}), Int(1));
  EXPECT_TRUE(Holds(2, t + "a"));
  EXPECT_EQ(h.Run(1, {"MSETNX", t + "b", "3", t + "c", "4"}), Int(0));
}

// ------------------------------------------------------- single-key routing

TEST_F(PoolRoutingTest, SingleKeyWritesThroughANonOwnerLandOnTheOwner) {
  const std::string& key = k[2];
  ASSERT_EQ(h.Run(0, {"SET", key, "hello"}), kOkReply);
  EXPECT_TRUE(Holds(2, key));
  EXPECT_FALSE(Holds(0, key));
  EXPECT_FALSE(Holds(1, key));
  EXPECT_EQ(h.Run(1, {"GET", key}), Bulk("hello"));
  EXPECT_EQ(h.Run(0, {"APPEND", key, " world"}), Int(11));
  EXPECT_EQ(h.Run(2, {"GET", key}), Bulk("hello world"));
  EXPECT_EQ(h.Run(1, {"STRLEN", key}), Int(11));
  EXPECT_EQ(h.Run(0, {"GET", h.KeyOn(1, "absent")}), kNilReply);
}

TEST_F(PoolRoutingTest, IncrThroughEveryNodeCountsOnce) {
  const std::string& key = k[1];
  EXPECT_EQ(h.Run(0, {"INCR", key}), Int(1));
  EXPECT_EQ(h.Run(2, {"INCR", key}), Int(2));
  EXPECT_EQ(h.Run(1, {"INCRBY", key, "40"}), Int(42));
  EXPECT_EQ(h.Run(0, {"GET", key}), Bulk("42"));
  EXPECT_FALSE(Holds(0, key));
}

TEST_F(PoolRoutingTest, ExpireAndTtlThroughNonOwners) {
  const std::string& key = k[0];
  ASSERT_EQ(h.Run(1, {"SET", key, "v"}), kOkReply);
  EXPECT_EQ(h.Run(2, {"TTL", key}), Int(-1));
  EXPECT_EQ(h.Run(1, {"EXPIRE", key, "100"}), Int(1));
  EXPECT_EQ(h.Run(2, {"TTL", key}), Int(100));
  EXPECT_EQ(h.Run(0, {"TTL", key}), Int(100));
  EXPECT_EQ(h.Run(2, {"PERSIST", key}), Int(1));
  EXPECT_EQ(h.Run(1, {"TTL", key}), Int(-1));
  EXPECT_EQ(h.Run(1, {"TTL", h.KeyOn(0, "absent")}), Int(-2));
  EXPECT_EQ(h.Run(2, {"EXPIRE", h.KeyOn(0, "absent"), "5"}), Int(0));
}

TEST_F(PoolRoutingTest, OwnerErrorsReachTheClientUnchanged) {
  const std::string& key = k[2];
  EXPECT_EQ(h.Run(0, {"SET", key, "v", "EX", "soon"}),
            Err("ERR value is not an integer or out of range"));
  ASSERT_EQ(h.Run(0, {"SET", key, "abc"}), kOkReply);
  EXPECT_EQ(h.Run(1, {"INCR", key}), Err("ERR value is not an integer or out of range"));
  EXPECT_EQ(h.Run(1, {"GET", key}), Bulk("abc"));
}

TEST_F(PoolRoutingTest, ForwardedCommandsRunInTheClientsDb) {
  ASSERT_EQ(h.Run(0, {"SELECT", "2"}), kOkReply);
  ASSERT_EQ(h.Run(0, {"SET", k[1], "in2"}), kOkReply);
  EXPECT_TRUE(static_cast<bool>(h.store(1).Peek(2, k[1], NowMs())));
  EXPECT_FALSE(Holds(1, k[1]));
  EXPECT_EQ(h.Run(0, {"MGET", k[1], k[2]}), Array({Bulk("in2"), kNilReply}));
  EXPECT_EQ(h.Run(2, {"GET", k[1]}), kNilReply);  // node 2's client is in db 0
}

TEST_F(PoolRoutingTest, Resp3ClientsGetResp3RepliesFromRemoteParts) {
  SetAll();
  ASSERT_EQ(h.Run(0, {"HELLO", "3"})[0], '%');
  std::string absent = h.KeyOn(2, "absent");
  EXPECT_EQ(h.Run(0, {"MGET", k[2], absent, k[0]}), Array({Bulk("v2"), "_\r\n", Bulk("v0")}));
  EXPECT_EQ(h.Run(0, {"GET", absent}), "_\r\n");
  EXPECT_EQ(h.Run(0, {"GET", k[1]}), Bulk("v1"));
}

TEST_F(PoolRoutingTest, MemoryUsageOfARemoteKeyIsTheOwnersAnswer) {
  ASSERT_EQ(h.Run(0, {"SET", k[2], std::string(1000, 'm')}), kOkReply);
  std::string owner = h.Run(2, {"MEMORY", "USAGE", k[2]});
  ASSERT_EQ(owner[0], ':');
  EXPECT_GT(std::stol(owner.substr(1)), 1000);
  EXPECT_EQ(h.Run(0, {"MEMORY", "USAGE", k[2]}), owner);
  EXPECT_EQ(h.Run(1, {"MEMORY", "USAGE", h.KeyOn(2, "absent")}), kNilReply);
}

// ------------------------------------------- multi-key, cannot split by key

TEST_F(PoolRoutingTest, MultiKeyCommandOnOneRemoteNodeIsForwardedWhole) {
  std::string t = TagOn(2);
  ASSERT_EQ(h.Run(0, {"SET", t + "src", "payload"}), kOkReply);
  EXPECT_EQ(h.Run(1, {"COPY", t + "src", t + "dst"}), Int(1));
  EXPECT_TRUE(Holds(2, t + "dst"));
  EXPECT_EQ(h.Run(0, {"GET", t + "dst"}), Bulk("payload"));
}

TEST_F(PoolRoutingTest, MultiKeyCommandAcrossNodesIsRefusedNamingThem) {
  ASSERT_EQ(h.Run(0, {"SET", k[0], "v"}), kOkReply);
  const std::string want = Err(
      "ERR the keys of 'copy' live on different pool nodes (" + h.Addr(0) + ", " + h.Addr(1) +
      ") and it cannot be split; use keys with a common {hashtag}");
  for (int node = 0; node < 3; ++node)
    EXPECT_EQ(h.Run(node, {"COPY", k[0], k[1]}), want) << "via " << node;
  EXPECT_FALSE(Holds(1, k[1]));
}

TEST_F(PoolRoutingTest, RenameAcrossNodesMovesValueAndTtl) {
  ASSERT_EQ(h.Run(0, {"SET", k[0], "v", "EX", "100"}), kOkReply);
  EXPECT_EQ(h.Run(2, {"RENAME", k[0], k[1]}), kOkReply);
  EXPECT_FALSE(Holds(0, k[0]));
  EXPECT_TRUE(Holds(1, k[1]));
  EXPECT_EQ(h.Run(0, {"GET", k[1]}), Bulk("v"));
  EXPECT_EQ(h.Run(0, {"TTL", k[1]}), Int(100));
  EXPECT_EQ(h.Run(1, {"RENAME", k[0], k[2]}), Err("ERR no such key"));
}

TEST_F(PoolRoutingTest, RenameNxAcrossNodes) {
  ASSERT_EQ(h.Run(0, {"MSET", k[1], "one", k[2], "two"}), kOkReply);
  EXPECT_EQ(h.Run(0, {"RENAMENX", k[1], k[2]}), Int(0));
  EXPECT_EQ(h.Run(0, {"MGET", k[1], k[2]}), Array({Bulk("one"), Bulk("two")}));
  EXPECT_EQ(h.Run(0, {"RENAMENX", k[1], k[0]}), Int(1));
  EXPECT_EQ(h.Run(2, {"MGET", k[0], k[1]}), Array({Bulk("one"), kNilReply}));
  // Both keys on one other node: it renames atomically.
  std::string t = TagOn(1);
  ASSERT_EQ(h.Run(0, {"SET", t + "a", "x"}), kOkReply);
  EXPECT_EQ(h.Run(2, {"RENAME", t + "a", t + "b"}), kOkReply);
  EXPECT_EQ(h.Run(0, {"GET", t + "b"}), Bulk("x"));
  EXPECT_FALSE(Holds(1, t + "a"));
  // Its answers, decoded and written again: no such key, NX refused, same key.
  EXPECT_EQ(h.Run(2, {"RENAME", t + "a", t + "c"}), Err("ERR no such key"));
  ASSERT_EQ(h.Run(0, {"SET", t + "c", "y"}), kOkReply);
  EXPECT_EQ(h.Run(2, {"RENAMENX", t + "b", t + "c"}), Int(0));
  EXPECT_EQ(h.Run(2, {"RENAMENX", t + "b", t + "b"}), Int(0));
  EXPECT_EQ(h.Run(0, {"RENAME", t + "b", t + "b"}), kOkReply);
  EXPECT_EQ(h.Run(0, {"RENAMENX", t + "b", t + "d"}), Int(1));
  EXPECT_EQ(h.Run(1, {"MGET", t + "b", t + "c", t + "d"}),
            Array({kNilReply, Bulk("y"), Bulk("x")}));
}

// A value over 1 MiB moves as MGET reads it and MSET stores it, in steps:
// NX checked first, the TTL set after.
TEST_F(PoolRoutingTest, RenameOfALargeValueAcrossNodes) {
  const std::string big(3 << 20, 'v');
  ASSERT_EQ(h.Run(0, {"SET", k[1], big, "PX", "600000"}), kOkReply);
  ASSERT_EQ(h.Run(0, {"SET", k[2], "two"}), kOkReply);
  EXPECT_EQ(h.Run(0, {"RENAMENX", k[1], k[2]}), Int(0));
  EXPECT_EQ(h.Run(2, {"GET", k[2]}), Bulk("two"));
  EXPECT_EQ(h.Run(0, {"RENAMENX", k[1], k[0]}), Int(1));
  EXPECT_EQ(h.Run(2, {"GET", k[0]}), Bulk(big));
  EXPECT_FALSE(Holds(1, k[1]));
  std::string ttl = h.Run(1, {"PTTL", k[0]});
  ASSERT_EQ(ttl[0], ':') << ttl;
  EXPECT_GT(std::stoll(ttl.substr(1)), 0);
  EXPECT_LE(std::stoll(ttl.substr(1)), 600000);
  // Without a TTL, onto a key that exists (RENAME overwrites it).
  EXPECT_EQ(h.Run(1, {"PERSIST", k[0]}), Int(1));
  EXPECT_EQ(h.Run(0, {"RENAME", k[0], k[2]}), kOkReply);
  EXPECT_EQ(h.Run(1, {"MGET", k[0], k[2]}), Array({kNilReply, Bulk(big)}));
  EXPECT_EQ(h.Run(1, {"PTTL", k[2]}), Int(-1));
}

// ---------------------------------------------- commands covering the pool

TEST_F(PoolRoutingTest, DbSizeAndKeysCoverEveryNode) {
  SetAll();
  for (int node = 0; node < 3; ++node) {
    EXPECT_EQ(h.Run(node, {"DBSIZE"}), Int(3)) << "via " << node;
    // Merged in node order.
    EXPECT_EQ(h.Run(node, {"KEYS", "*"}), Array({Bulk(k[0]), Bulk(k[1]), Bulk(k[2])}))
        << "via " << node;
  }
  EXPECT_EQ(h.Run(1, {"KEYS", k[2]}), Array({Bulk(k[2])}));
  // POOL DBSIZE is this node's part.
  EXPECT_EQ(h.Run(1, {"POOL", "DBSIZE"}), Int(1));
}

TEST_F(PoolRoutingTest, ScanWalksTheNodesInOrderWithTheNodeInTheCursor) {
  SetAll();
  // The cursor's low 10 bits name the node scanned next.
  for (int via = 0; via < 3; ++via) {
    EXPECT_EQ(h.Run(via, {"SCAN", "0"}), Array({Bulk("1"), Array({Bulk(k[0])})}));
    EXPECT_EQ(h.Run(via, {"SCAN", "1"}), Array({Bulk("2"), Array({Bulk(k[1])})}));
    EXPECT_EQ(h.Run(via, {"SCAN", "2"}), Array({Bulk("0"), Array({Bulk(k[2])})}));
  }
  EXPECT_EQ(h.Run(0, {"SCAN", "3"}), Err("ERR invalid cursor"));
  EXPECT_EQ(h.Run(0, {"SCAN", "-1"}), Err("ERR invalid cursor"));
  // A node that has nothing is skipped: an empty pool answers cursor 0.
  ASSERT_EQ(h.Run(2, {"FLUSHALL"}), kOkReply);
  EXPECT_EQ(h.Run(1, {"SCAN", "0"}), Array({Bulk("0"), Array({})}));
}

TEST_F(PoolRoutingTest, RandomKeyPicksFromEveryNode) {
  EXPECT_EQ(h.Run(0, {"RANDOMKEY"}), kNilReply);
  ASSERT_EQ(h.Run(0, {"SET", k[2], "v"}), kOkReply);
  EXPECT_EQ(h.Run(0, {"RANDOMKEY"}), Bulk(k[2]));
  SetAll();
  bool seen[3] = {false, false, false};
  for (int i = 0; i < 200 && !(seen[0] && seen[1] && seen[2]); ++i) {
    std::string r = h.Run(i % 3, {"RANDOMKEY"});
    for (int n = 0; n < 3; ++n) seen[n] |= r == Bulk(k[n]);
  }
  EXPECT_TRUE(seen[0] && seen[1] && seen[2]);
}

TEST_F(PoolRoutingTest, FlushAllAndFlushDbEmptyEveryNode) {
  SetAll();
  EXPECT_EQ(h.Run(1, {"FLUSHALL"}), kOkReply);
  for (int node = 0; node < 3; ++node) EXPECT_EQ(h.store(node).DbSize(0), 0u) << node;
  EXPECT_EQ(h.Run(2, {"DBSIZE"}), Int(0));
  SetAll();
  EXPECT_EQ(h.Run(2, {"FLUSHDB"}), kOkReply);
  for (int node = 0; node < 3; ++node) EXPECT_EQ(h.store(node).DbSize(0), 0u) << node;
}

}  // namespace
}  // namespace kvpool::testing
