// The pool's batch router (pool_test_util.h has the three-node fixture):
// split by owner and reassembly in key order (duplicates, missing and binary
// keys, empty and large batches, the per-call key cap, a second lane), and
// whole-command forwarding (Forward, Broadcast, Versions, transactions),
// and POOL COPIES without replicas.
#include "storage/pool/pool_test_util.h"
#include "storage/util/digest.h"

namespace kvpool::pool {
namespace {

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

// A command's argument or reply larger than a call moves in chunks, none
// larger than chunk_bytes (4 MiB): the argument ahead of the command
// (kOpArgBegin, kOpArgChunk) when the caller keeps it alive, the reply
// fetched after it (kOpReplyChunk). Both arrive whole.
TEST_F(PoolTest, ForwardMovesLargeArgumentsAndRepliesInChunks) {
  Build();
  std::string big_reply(10u << 20, 'r');
  for (size_t i = 0; i < big_reply.size(); i += 4096) big_reply[i] = static_cast<char>('a' + i % 26);
  exec(2).reply = "$" + std::to_string(big_reply.size()) + "\r\n" + big_reply + "\r\n";
  auto args = std::make_shared<std::vector<std::string>>(
      std::vector<std::string>{"SET", "k", std::string((9u << 20) + 5, 'v'), "GET"});
  (*args)[2][12345] = 'x';
  auto argv = Views(*args);
  for (bool owned : {true, false}) {
    RecordCalls();
    Status st;
    std::string reply;
    bool done = false;
    pool(0).Forward(
        0, 2, 0, 2, argv,
        [&](Status s, std::string r) {
          st = std::move(s);
          reply = std::move(r);
          done = true;
        },
        false, owned ? std::shared_ptr<const void>(args) : nullptr);
    ASSERT_TRUE(RunUntil([&] { return done; })) << owned;
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_TRUE(reply == exec(2).reply) << owned << " " << reply.size();
    ASSERT_FALSE(exec(2).commands.empty());
    EXPECT_TRUE(exec(2).commands.back().argv == *args) << owned;
    EXPECT_EQ(CountSent(kOpArgBegin, 2), owned ? 1u : 0u);
    EXPECT_EQ(CountSent(kOpArgChunk, 2), owned ? 3u : 0u);
    EXPECT_EQ(CountSent(kOpReplyChunk, 2), 3u);
    for (const SentCall& c : sent_) {
      if (c.opcode == kOpArgChunk || c.opcode == kOpReplyChunk) {
        EXPECT_LE(std::max(c.bulk_in, c.bulk_out_capacity), 4u << 20);
      }
    }
    sent_.clear();
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

// Without replicas a key has one copy, its owner: POOL COPIES shows it,
// asked of the owner or read here.
TEST_F(PoolTest, CopiesWithoutReplicasIsTheOwnerAlone) {
  Build();
  const std::string key = KeysOn(1, 1)[0];
  Put(key, "one");
  for (int from : {0, 1}) {
    bool done = false;
    std::vector<CopyInfo> got;
    pool(from).Copies(0, 0, key, [&](std::vector<CopyInfo>& c) {
      got = c;
      done = true;
    });
    ASSERT_TRUE(RunUntil([&] { return done; }));
    ASSERT_EQ(got.size(), 1u) << from;
    EXPECT_EQ(got[0].node, 1);
    EXPECT_EQ(got[0].state, CopyInfo::kInSync);
    EXPECT_TRUE(got[0].present);
    EXPECT_EQ(got[0].version, store(1).Peek(0, key, WallMs()).version());
    EXPECT_EQ(got[0].digest, Hash64("one"));
  }
  EXPECT_EQ(CountSent(kOpCopy, 1), 1u);  // from 0; node 1 read its own
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


int64_t g_touch_clock_ms = 0;
int64_t TouchClockMs() { return g_touch_clock_ms; }

// TOUCH through another node refreshes the key's access time where it is
// held (kOpMultiTouch), so eviction keeps it; EXISTS does not (as Redis's
// LOOKUP_NOTOUCH). Before, TOUCH of a remote key was sent as an EXISTS.
TEST_F(PoolTest, TouchThroughAnotherNodeRefreshesLruWhereTheKeyIsHeld) {
  ClusterOptions o;
  o.nodes = 2;
  o.maxmemory = 2 * kMiB;
  o.maxmemory_samples = 10;
  o.wall_ms = &TouchClockMs;
  g_touch_clock_ms = WallMs();
  const int64_t t0 = g_touch_clock_ms;
  Build(o);
  const std::string v(1000, 'v');
  std::vector<std::string> keys = KeysOn(1, 1000);
  for (const auto& k : keys) ASSERT_TRUE(store(1).Set(0, k, v, {}, t0, nullptr).ok());
  std::vector<std::string> hot, cold;
  for (size_t i = 0; i < keys.size(); ++i) (i % 2 == 0 ? hot : cold).push_back(keys[i]);
  g_touch_clock_ms = t0 + 100000;
  EXPECT_EQ(Touch(0, hot), std::vector<int8_t>(hot.size(), 1));
  EXPECT_EQ(Exists(0, cold), std::vector<int8_t>(cold.size(), 1));
  EXPECT_EQ(CountSent(kOpMultiTouch, 1), 1u);
  // Fill node 1: about half of the old keys must go.
  for (int i = 0; i < 1500; ++i)
    ASSERT_TRUE(store(1).Set(0, "n" + std::to_string(i), v, {}, t0 + 200000, nullptr).ok());
  int hot_left = 0, cold_left = 0;
  for (const auto& k : hot) hot_left += static_cast<bool>(store(1).Peek(0, k, t0 + 200000));
  for (const auto& k : cold) cold_left += static_cast<bool>(store(1).Peek(0, k, t0 + 200000));
  EXPECT_GT(hot_left, cold_left * 3) << "hot " << hot_left << " cold " << cold_left;
  EXPECT_GT(store(1).GetStats().evicted_keys, 0u);
}

}  // namespace
}  // namespace kvpool::pool
