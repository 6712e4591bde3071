// Transactions: MULTI EXEC DISCARD WATCH UNWATCH, with the exact RESP bytes
// redis-server 7.0 sends. A second ClientState plays the other connection.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocol/reply_builder.h"
#include "server/dispatcher.h"
#include "server/testing/command_harness.h"

namespace kvpool {
namespace {

using kvpool::testing::CommandHarness;

constexpr int64_t kNow = 1'700'000'000'000;

const std::string kOk = "+OK\r\n";
const std::string kQueued = "+QUEUED\r\n";
const std::string kNil = "$-1\r\n";
const std::string kExecAbort =
    "-EXECABORT Transaction discarded because of previous errors.\r\n";
const std::string kExecWithoutMulti = "-ERR EXEC without MULTI\r\n";

std::string Bulk(const std::string& s) {
  return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}
std::string Int(int64_t v) { return ":" + std::to_string(v) + "\r\n"; }
std::string Err(const std::string& msg) { return "-" + msg + "\r\n"; }

class TransactionTest : public ::testing::Test {
 protected:
  void SetUp() override { h.SetNow(kNow); }

  // Runs a command as another client of the same server.
  std::string Other(std::vector<std::string> args) {
    std::vector<std::string_view> views(args.begin(), args.end());
    protocol::StringSink sink;
    protocol::ReplyBuilder rb(&sink, other.resp);
    Dispatch(h.server(), other, rb, views, kNow);
    return sink.out;
  }

  CommandHarness h;
  ClientState other;
};

// ---------------- MULTI / EXEC ----------------

TEST_F(TransactionTest, MultiExec) {
  EXPECT_EQ(h.Run({"MULTI"}), kOk);
  EXPECT_TRUE(h.client().in_multi);
  EXPECT_EQ(h.Run({"SET", "a", "1"}), kQueued);
  EXPECT_EQ(h.Run({"INCR", "a"}), kQueued);
  EXPECT_EQ(h.Run({"GET", "a"}), kQueued);
  EXPECT_EQ(h.Run({"PING"}), kQueued);
  EXPECT_EQ(h.client().info->multi_queued.load(), 4);
  EXPECT_EQ(h.Run({"EXEC"}), "*4\r\n" + kOk + Int(2) + Bulk("2") + "+PONG\r\n");
  EXPECT_FALSE(h.client().in_multi);
  EXPECT_TRUE(h.client().queued.empty());
  EXPECT_EQ(h.client().info->multi_queued.load(), -1);
}

TEST_F(TransactionTest, QueuedCommandsRunOnlyAtExec) {
  EXPECT_EQ(h.Run({"MULTI"}), kOk);
  EXPECT_EQ(h.Run({"SET", "k", "v"}), kQueued);
  EXPECT_EQ(Other({"GET", "k"}), kNil);
  EXPECT_EQ(h.Run({"EXEC"}), "*1\r\n" + kOk);
  EXPECT_EQ(Other({"GET", "k"}), Bulk("v"));
}

TEST_F(TransactionTest, EmptyTransaction) {
  EXPECT_EQ(h.Run({"MULTI"}), kOk);
  EXPECT_EQ(h.Run({"EXEC"}), "*0\r\n");
}

TEST_F(TransactionTest, ExecCountsEachCommand) {
  uint64_t before = h.server().stats().commands.load();
  h.Run({"MULTI"});
  h.Run({"PING"});
  h.Run({"PING"});
  h.Run({"EXEC"});
  EXPECT_EQ(h.server().stats().commands.load(), before + 4) << "MULTI, EXEC and the two PINGs";
}

TEST_F(TransactionTest, RuntimeErrorDoesNotAbortTheRest) {
  EXPECT_EQ(h.Run({"SET", "s", "notanumber"}), kOk);
  h.Run({"MULTI"});
  h.Run({"SET", "a", "1"});
  h.Run({"INCR", "s"});
  h.Run({"INCR", "a"});
  EXPECT_EQ(h.Run({"EXEC"}),
            "*3\r\n" + kOk + Err("ERR value is not an integer or out of range") + Int(2));
}

TEST_F(TransactionTest, ExecAbortOnQueuedArityError) {
  h.Run({"MULTI"});
  EXPECT_EQ(h.Run({"SET", "a", "1"}), kQueued);
  EXPECT_EQ(h.Run({"SET", "a"}), Err("ERR wrong number of arguments for 'set' command"));
  EXPECT_TRUE(h.client().multi_error);
  EXPECT_EQ(h.Run({"SET", "b", "2"}), kQueued);
  EXPECT_EQ(h.Run({"EXEC"}), kExecAbort);
  EXPECT_FALSE(h.client().in_multi);
  EXPECT_FALSE(h.client().multi_error);
  EXPECT_EQ(h.Run({"GET", "a"}), kNil) << "nothing ran";
  EXPECT_EQ(h.Run({"EXEC"}), kExecWithoutMulti);
}

TEST_F(TransactionTest, ExecAbortOnUnknownCommand) {
  h.Run({"MULTI"});
  h.Run({"SET", "a", "1"});
  EXPECT_EQ(h.Run({"NOSUCHCMD", "x"}),
            Err("ERR unknown command 'NOSUCHCMD', with args beginning with: 'x' "));
  EXPECT_EQ(h.Run({"EXEC"}), kExecAbort);
  EXPECT_EQ(h.Run({"GET", "a"}), kNil);
}

TEST_F(TransactionTest, NestedMultiKeepsTheTransaction) {
  h.Run({"MULTI"});
  EXPECT_EQ(h.Run({"MULTI"}), Err("ERR MULTI calls can not be nested"));
  EXPECT_FALSE(h.client().multi_error);
  EXPECT_EQ(h.Run({"SET", "a", "1"}), kQueued);
  EXPECT_EQ(h.Run({"EXEC"}), "*1\r\n" + kOk);
}

TEST_F(TransactionTest, ExecAndDiscardWithoutMulti) {
  EXPECT_EQ(h.Run({"EXEC"}), kExecWithoutMulti);
  EXPECT_EQ(h.Run({"DISCARD"}), Err("ERR DISCARD without MULTI"));
  EXPECT_EQ(h.Run({"MULTI", "x"}), Err("ERR wrong number of arguments for 'multi' command"));
}

TEST_F(TransactionTest, Discard) {
  h.Run({"MULTI"});
  h.Run({"SET", "a", "1"});
  EXPECT_EQ(h.Run({"DISCARD"}), kOk);
  EXPECT_FALSE(h.client().in_multi);
  EXPECT_EQ(h.client().info->multi_queued.load(), -1);
  EXPECT_EQ(h.Run({"GET", "a"}), kNil);
  EXPECT_EQ(h.Run({"EXEC"}), kExecWithoutMulti);
}

TEST_F(TransactionTest, DiscardClearsAFailedTransaction) {
  h.Run({"MULTI"});
  h.Run({"NOSUCHCMD"});
  EXPECT_EQ(h.Run({"DISCARD"}), kOk);
  h.Run({"MULTI"});
  h.Run({"PING"});
  EXPECT_EQ(h.Run({"EXEC"}), "*1\r\n+PONG\r\n");
}

TEST_F(TransactionTest, NoMultiCommandsAreRefusedAndFailTheTransaction) {
  for (const char* cmd : {"SHUTDOWN", "SAVE"}) {
    h.Run({"MULTI"});
    EXPECT_EQ(h.Run({cmd}), Err("ERR Command not allowed inside a transaction")) << cmd;
    EXPECT_EQ(h.Run({"EXEC"}), kExecAbort) << cmd;
  }
}

TEST_F(TransactionTest, UnwatchIsQueued) {
  h.Run({"MULTI"});
  EXPECT_EQ(h.Run({"UNWATCH"}), kQueued);
  EXPECT_EQ(h.Run({"EXEC"}), "*1\r\n" + kOk);
}

// ---------------- WATCH ----------------

TEST_F(TransactionTest, WatchAbortsWhenAnotherClientWrites) {
  EXPECT_EQ(h.Run({"SET", "w", "0"}), kOk);
  EXPECT_EQ(h.Run({"WATCH", "w"}), kOk);
  ASSERT_NE(h.client().watch, nullptr);
  EXPECT_EQ(Other({"SET", "w", "1"}), kOk);
  EXPECT_EQ(h.Run({"MULTI"}), kOk);
  EXPECT_EQ(h.Run({"SET", "w", "mine"}), kQueued);
  EXPECT_EQ(h.Run({"EXEC"}), "*-1\r\n");
  EXPECT_EQ(h.client().watch, nullptr) << "an aborted EXEC unwatches";
  EXPECT_FALSE(h.client().in_multi);
  EXPECT_EQ(h.Run({"GET", "w"}), Bulk("1"));
}

TEST_F(TransactionTest, WatchAbortIsANullInResp3) {
  h.client().resp = 3;
  h.Run({"WATCH", "w"});
  Other({"SET", "w", "1"});
  h.Run({"MULTI"});
  h.Run({"PING"});
  EXPECT_EQ(h.Run({"EXEC"}), "_\r\n");
}

TEST_F(TransactionTest, WatchAbortsOnDeleteAndOnCreate) {
  h.Run({"SET", "w", "0"});
  h.Run({"WATCH", "w", "new"});
  EXPECT_EQ(Other({"SET", "new", "1"}), kOk);
  h.Run({"MULTI"});
  h.Run({"PING"});
  EXPECT_EQ(h.Run({"EXEC"}), "*-1\r\n");

  h.Run({"WATCH", "w"});
  EXPECT_EQ(Other({"DEL", "w"}), Int(1));
  h.Run({"MULTI"});
  h.Run({"PING"});
  EXPECT_EQ(h.Run({"EXEC"}), "*-1\r\n");
}

TEST_F(TransactionTest, WatchOwnWriteBeforeMultiAborts) {
  h.Run({"WATCH", "w"});
  h.Run({"SET", "w", "mine"});
  h.Run({"MULTI"});
  h.Run({"PING"});
  EXPECT_EQ(h.Run({"EXEC"}), "*-1\r\n");
}

TEST_F(TransactionTest, WatchUnrelatedWriteOrReadDoesNotAbort) {
  h.Run({"SET", "w", "1"});
  h.Run({"WATCH", "w"});
  Other({"SET", "unrelated", "1"});
  Other({"GET", "w"});
  h.Run({"MULTI"});
  h.Run({"INCR", "w"});
  EXPECT_EQ(h.Run({"EXEC"}), "*1\r\n" + Int(2));
}

TEST_F(TransactionTest, WatchIsPerDatabase) {
  h.Run({"SET", "w", "1"});
  h.Run({"WATCH", "w"});
  other.db = 1;
  Other({"SET", "w", "db1"});
  h.Run({"MULTI"});
  h.Run({"GET", "w"});
  EXPECT_EQ(h.Run({"EXEC"}), "*1\r\n" + Bulk("1"));
}

TEST_F(TransactionTest, Unwatch) {
  h.Run({"WATCH", "w"});
  EXPECT_EQ(h.Run({"UNWATCH"}), kOk);
  EXPECT_EQ(h.client().watch, nullptr);
  EXPECT_EQ(h.Run({"UNWATCH"}), kOk) << "without watches too";
  Other({"SET", "w", "1"});
  h.Run({"MULTI"});
  h.Run({"GET", "w"});
  EXPECT_EQ(h.Run({"EXEC"}), "*1\r\n" + Bulk("1"));
}

TEST_F(TransactionTest, ExecAndDiscardClearWatches) {
  h.Run({"WATCH", "w"});
  h.Run({"MULTI"});
  h.Run({"PING"});
  EXPECT_EQ(h.Run({"EXEC"}), "*1\r\n+PONG\r\n");
  EXPECT_EQ(h.client().watch, nullptr);
  Other({"SET", "w", "1"});
  h.Run({"MULTI"});
  h.Run({"PING"});
  EXPECT_EQ(h.Run({"EXEC"}), "*1\r\n+PONG\r\n") << "EXEC unwatched everything";

  h.Run({"WATCH", "w"});
  h.Run({"MULTI"});
  EXPECT_EQ(h.Run({"DISCARD"}), kOk);
  EXPECT_EQ(h.client().watch, nullptr);
  Other({"SET", "w", "2"});
  h.Run({"MULTI"});
  h.Run({"PING"});
  EXPECT_EQ(h.Run({"EXEC"}), "*1\r\n+PONG\r\n") << "DISCARD unwatched everything";
}

TEST_F(TransactionTest, ExecAbortClearsWatches) {
  h.Run({"WATCH", "w"});
  h.Run({"MULTI"});
  h.Run({"SET", "x"});
  EXPECT_EQ(h.Run({"EXEC"}), kExecAbort);
  EXPECT_EQ(h.client().watch, nullptr);
}

TEST_F(TransactionTest, WatchInsideMulti) {
  h.Run({"MULTI"});
  EXPECT_EQ(h.Run({"WATCH", "x"}), Err("ERR WATCH inside MULTI is not allowed"));
  EXPECT_FALSE(h.client().multi_error) << "the transaction is still valid";
  EXPECT_EQ(h.Run({"EXEC"}), "*0\r\n");
  EXPECT_EQ(h.Run({"WATCH"}), Err("ERR wrong number of arguments for 'watch' command"));
}

TEST_F(TransactionTest, ResetInsideMultiActsAtOnce) {
  h.Run({"WATCH", "w"});
  h.Run({"MULTI"});
  h.Run({"SET", "a", "1"});
  EXPECT_EQ(h.Run({"RESET"}), "+RESET\r\n");
  EXPECT_FALSE(h.client().in_multi);
  EXPECT_EQ(h.client().watch, nullptr);
  EXPECT_EQ(h.Run({"EXEC"}), kExecWithoutMulti);
  EXPECT_EQ(h.Run({"GET", "a"}), kNil);
}

// A transaction a pool peer forwarded: EXEC runs only if every key still has
// the version the peer watched (0 = absent).
TEST_F(TransactionTest, ForwardedTransactionChecksVersions) {
  h.Run({"SET", "k", "v"});
  uint64_t version = h.store().Peek(0, "k", kNow).version();
  ASSERT_NE(version, 0u);
  const std::string k = "k", missing = "missing";

  h.Run({"MULTI"});
  h.Run({"PING"});
  h.client().exec_versions = {{k, version}, {missing, 0}};
  EXPECT_EQ(h.Run({"EXEC"}), "*1\r\n+PONG\r\n");
  EXPECT_TRUE(h.client().exec_versions.empty());

  h.Run({"MULTI"});
  h.Run({"PING"});
  h.client().exec_versions = {{k, version + 1}};
  EXPECT_EQ(h.Run({"EXEC"}), "*-1\r\n") << "the key changed since the peer watched it";

  h.Run({"MULTI"});
  h.Run({"PING"});
  h.client().exec_versions = {{missing, version}};
  EXPECT_EQ(h.Run({"EXEC"}), "*-1\r\n") << "the key is gone";
  EXPECT_TRUE(h.client().exec_versions.empty());
}

// A transaction pipelined as redis-py's pipeline(transaction=True) sends it.
TEST_F(TransactionTest, RedisPyPipelineShape) {
  std::string replies;
  for (std::vector<std::string> cmd : std::vector<std::vector<std::string>>{
           {"MULTI"}, {"SET", "a", "1"}, {"INCR", "a"}, {"GET", "a"}, {"MGET", "a", "missing"},
           {"DEL", "a"}, {"EXISTS", "a"}, {"EXEC"}})
    replies += h.Run(cmd);
  EXPECT_EQ(replies, kOk + kQueued + kQueued + kQueued + kQueued + kQueued + kQueued + "*6\r\n" +
                         kOk + Int(2) + Bulk("2") + "*2\r\n" + Bulk("2") + kNil + Int(1) +
                         Int(0));
}

}  // namespace
}  // namespace kvpool
