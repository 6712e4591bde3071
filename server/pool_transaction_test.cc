// MULTI/EXEC and WATCH through a pool of three in one process (PoolHarness):
// a transaction whose keys live on one other node runs there whole; one
// whose keys span nodes is refused; a WATCH of a key on another node aborts
// EXEC once that key changed, whichever node changed it.
#include <gtest/gtest.h>

#include <string>

#include "server/dispatcher.h"
#include "server/testing/pool_harness.h"
#include "server/testing/resp_text.h"

namespace kvpool::testing {
namespace {

class PoolTransactionTest : public ::testing::Test {
 protected:
  bool Holds(int node, const std::string& key) {
    return static_cast<bool>(h.store(node).Peek(0, key, NowMs()));
  }
  // Queues `cmds` in a MULTI on `c`, then answers EXEC's reply.
  std::string Transaction(PoolClient& c, std::vector<std::vector<std::string>> cmds) {
    EXPECT_EQ(h.Run(c, {"MULTI"}), kOkReply);
    for (auto& cmd : cmds) EXPECT_EQ(h.Run(c, cmd), kQueuedReply);
    return h.Run(c, {"EXEC"});
  }
  // A client of `via` WATCHes `key`, node `writer` sets it to "theirs"
  // (then the client UNWATCHes, with `unwatch`), and the client runs
  // MULTI SET key mine EXEC: EXEC's reply, then what GET answers.
  std::pair<std::string, std::string> WatchWriteExec(int via, const std::string& key, int writer,
                                                     bool unwatch = false) {
    PoolClient& a = h.NewClient(via);
    EXPECT_EQ(h.Run(a, {"WATCH", key}), kOkReply);
    // Remembered with the node that answered the key's version.
    EXPECT_EQ(a.state().remote_watches.size(), 1u);
    for (const auto& w : a.state().remote_watches) EXPECT_EQ(w.node, h.pool(0).OwnerOf(key));
    EXPECT_EQ(h.Run(writer, {"SET", key, "theirs"}), kOkReply);
    if (unwatch) {
      EXPECT_EQ(h.Run(a, {"UNWATCH"}), kOkReply);
      EXPECT_TRUE(a.state().remote_watches.empty());
    }
    std::string exec = Transaction(a, {{"SET", key, "mine"}});
    EXPECT_TRUE(a.state().remote_watches.empty());
    return {exec, h.Run(a, {"GET", key})};
  }

  PoolHarness h;
};

TEST_F(PoolTransactionTest, KeysOnOneRemoteNodeRunThereWhole) {
  std::string t = "{" + h.KeyOn(2, "tx") + "}";
  PoolClient& c = h.client(0);
  EXPECT_EQ(Transaction(c, {{"SET", t + "a", "1"}, {"INCR", t + "a"}, {"GET", t + "a"},
                            {"SET", t + "b", "x"}}),
            Array({kOkReply, Int(2), Bulk("2"), kOkReply}));
  EXPECT_TRUE(Holds(2, t + "a"));
  EXPECT_TRUE(Holds(2, t + "b"));
  EXPECT_FALSE(Holds(0, t + "a"));
  // The client is out of MULTI: the next command runs at once.
  EXPECT_EQ(h.Run(c, {"GET", t + "b"}), Bulk("x"));
}

TEST_F(PoolTransactionTest, SelectInsideARemoteTransactionMovesTheClientsDb) {
  std::string key = h.KeyOn(1, "db");
  PoolClient& c = h.client(0);
  EXPECT_EQ(Transaction(c, {{"SELECT", "3"}, {"SET", key, "in3"}}), Array({kOkReply, kOkReply}));
  EXPECT_EQ(c.state().db, 3);
  EXPECT_EQ(h.Run(c, {"GET", key}), Bulk("in3"));
  EXPECT_EQ(h.Run(c, {"SELECT", "0"}), kOkReply);
  EXPECT_EQ(h.Run(c, {"GET", key}), kNilReply);
}

TEST_F(PoolTransactionTest, KeysOnSeveralNodesAreRefusedNamingThem) {
  std::string k0 = h.KeyOn(0), k1 = h.KeyOn(1);
  PoolClient& c = h.client(2);
  EXPECT_EQ(Transaction(c, {{"SET", k0, "a"}, {"SET", k1, "b"}}),
            Err("ERR MULTI/EXEC across pool nodes is not supported: the keys of this "
                "transaction live on " + h.Addr(0) + ", " + h.Addr(1) +
                "; put them on one node with a common {hashtag}"));
  EXPECT_FALSE(Holds(0, k0));
  EXPECT_FALSE(Holds(1, k1));
  EXPECT_EQ(h.Run(c, {"EXEC"}), Err("ERR EXEC without MULTI"));
  EXPECT_EQ(h.Run(c, {"MGET", k0, k1}), Array({kNilReply, kNilReply}));
}

TEST_F(PoolTransactionTest, LocalKeysRunLocally) {
  std::string key = h.KeyOn(1);
  EXPECT_EQ(Transaction(h.client(1), {{"SET", key, "v"}, {"GET", key}}),
            Array({kOkReply, Bulk("v")}));
  EXPECT_TRUE(Holds(1, key));
}

TEST_F(PoolTransactionTest, WatchOfARemoteKeyAbortsExecAfterAnotherNodeChangedIt) {
  std::string key = h.KeyOn(2, "w");
  ASSERT_EQ(h.Run(1, {"SET", key, "1"}), kOkReply);
  EXPECT_EQ(WatchWriteExec(0, key, 1), std::make_pair(kNilArrayReply, Bulk("theirs")));
}

TEST_F(PoolTransactionTest, WatchOfARemoteKeyLetsExecRunWhileItIsUnchanged) {
  std::string key = h.KeyOn(2, "w");
  PoolClient& a = h.NewClient(0);
  PoolClient& b = h.NewClient(1);
  ASSERT_EQ(h.Run(b, {"SET", key, "1"}), kOkReply);
  EXPECT_EQ(h.Run(a, {"WATCH", key}), kOkReply);
  EXPECT_EQ(h.Run(b, {"GET", key}), Bulk("1"));  // a read changes nothing
  EXPECT_EQ(Transaction(a, {{"INCR", key}}), Array({Int(2)}));
  EXPECT_EQ(h.Run(b, {"GET", key}), Bulk("2"));
}

TEST_F(PoolTransactionTest, WatchOfAnAbsentRemoteKeyAbortsOnceItIsCreated) {
  std::string key = h.KeyOn(1, "w");
  EXPECT_EQ(WatchWriteExec(2, key, 0), std::make_pair(kNilArrayReply, Bulk("theirs")));
}

TEST_F(PoolTransactionTest, UnwatchForgetsRemoteWatches) {
  std::string key = h.KeyOn(2, "w");
  EXPECT_EQ(WatchWriteExec(0, key, 1, true), std::make_pair(Array({kOkReply}), Bulk("mine")));
}

TEST_F(PoolTransactionTest, WatchedKeysOnTwoNodesThenExecIsRefused) {
  std::string k1 = h.KeyOn(1, "w"), k2 = h.KeyOn(2, "w");
  PoolClient& a = h.NewClient(0);
  EXPECT_EQ(h.Run(a, {"WATCH", k1, k2}), kOkReply);
  EXPECT_EQ(Transaction(a, {{"SET", k1, "x"}}),
            Err("ERR MULTI/EXEC across pool nodes is not supported: the keys of this "
                "transaction live on " + h.Addr(1) + ", " + h.Addr(2) +
                "; put them on one node with a common {hashtag}"));
  EXPECT_FALSE(Holds(1, k1));
}

}  // namespace
}  // namespace kvpool::testing
