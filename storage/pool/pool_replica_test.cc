// Replicas: placement, writes to every copy, failover of reads and writes,
// the catch-up of a restarted or partitioned node, eviction on copies, and
// a minority node that neither reads nor writes; POOL COPIES with replicas.
#include "storage/pool/pool_test_util.h"
#include "storage/util/digest.h"

namespace kvpool::pool {
namespace {

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

// A write goes to the slot's primary (kOpOrderedSet), which relays it to
// the other copies (kOpApply).
bool IsWriteToCopy(uint16_t op) {
  return op == kOpMultiSet || op == kOpOrderedSet || op == kOpApply;
}

TEST_F(PoolReplicaTest, OneFailingCopyFailsTheWriteOncePerKey) {
  BuildReplicas();
  auto k0 = KeysOn(0, 10);
  RecordCalls([](int, int to, const CallArgs& a) {
    return IsWriteToCopy(a.opcode) && (to == 0 || to == 1) ? Status::Unavailable("injected")
                                                           : Status::OK();
  });
  auto out = Set(2, Pairs(k0, ValueOf));
  EXPECT_FALSE(out.status.ok());
  EXPECT_EQ(out.failed_keys, 10u);
  RecordCalls([](int, int to, const CallArgs& a) {
    return IsWriteToCopy(a.opcode) && to == 1 ? Status::Unavailable("injected") : Status::OK();
  });
  out = Set(2, Pairs(k0, ValueOf));
  EXPECT_FALSE(out.status.ok()) << "acknowledged although a live copy did not take it";
  EXPECT_EQ(out.failed_keys, 10u);
  EXPECT_NE(out.status.message().find(Addr(1)), std::string::npos) << out.status.message();
}

// Writes a primary takes in one pass of its loop (a pipeline, many
// clients) reach each copy in one kOpApply, not one call per write; when
// that call fails, every write in it fails, names the copy, and the copy
// fetches all their keys again.
TEST_F(PoolReplicaTest, RelaysOfOnePassShareOneCallPerCopy) {
  BuildReplicas(60000, /*latency_ms=*/5);
  auto k0 = KeysOn(0, 20);
  struct Out {
    int done = 0;
    std::vector<Status> status;
  };
  auto set_each = [&](const std::string& suffix) {
    auto out = std::make_shared<Out>();
    out->status.resize(k0.size());
    auto data = std::make_shared<std::vector<std::string>>();
    for (const auto& k : k0) {
      data->push_back(k);
      data->push_back(k + suffix);
    }
    // Twenty MSETs of one key each, all sent before the loop runs: they
    // reach the primary (node 0) together.
    for (size_t i = 0; i < k0.size(); ++i) {
      std::vector<std::string_view> kv{(*data)[2 * i], (*data)[2 * i + 1]};
      pool(2).MultiSet(0, 0, kv, WallMs(), data, [out, i](Status st, size_t) {
        out->status[i] = std::move(st);
        ++out->done;
      });
    }
    EXPECT_TRUE(RunUntil([&] { return out->done == static_cast<int>(k0.size()); }));
    return out;
  };
  RecordCalls();
  auto out = set_each("@1");
  for (const Status& st : out->status) EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(CountSent(kOpOrderedSet, 0, 2), k0.size());
  EXPECT_GE(CountSent(kOpApply, 1, 0), 1u);
  EXPECT_LE(CountSent(kOpApply, 1, 0), 2u) << "one relay call per write";
  for (const auto& k : k0) {
    EXPECT_EQ(PeekOn(0, k), k + "@1");
    EXPECT_EQ(PeekOn(1, k), k + "@1");
  }

  RecordCalls([](int, int to, const CallArgs& a) {
    return a.opcode == kOpApply && to == 1 ? Status::Unavailable("injected") : Status::OK();
  });
  out = set_each("@2");
  for (const Status& st : out->status) {
    EXPECT_EQ(st.code(), Code::kAborted) << st.ToString();
    EXPECT_NE(st.message().find(Addr(1)), std::string::npos) << st.ToString();
  }
  RecordCalls();
  // Told that it missed them, the copy fetches them again from the primary.
  EXPECT_TRUE(RunUntil([&] {
    for (const auto& k : k0)
      if (PeekOn(1, k) != k + "@2") return false;
    return true;
  })) << "the copy never caught up with the writes its relay call lost";
}

// A write that fails in transit to one copy (the others took it) leaves
// that copy behind, or lets it take the write late: the coordinator tells
// it, and it fetches exactly those keys again, sets and deletes alike.
TEST_F(PoolReplicaTest, ACopyAWriteFailedToReachFetchesItsKeysAgain) {
  BuildReplicas();
  auto k0 = KeysOn(0, 10);
  ASSERT_TRUE(Set(2, Pairs(k0, [](const std::string& k) { return k + "@1"; })).status.ok());
  RecordCalls([](int, int to, const CallArgs& a) {
    return (IsWriteToCopy(a.opcode) || a.opcode == kOpMultiDel) && to == 1
               ? Status::Timeout("injected")
               : Status::OK();
  });
  auto out = Set(2, Pairs(k0, [](const std::string& k) { return k + "@2"; }));
  EXPECT_FALSE(out.status.ok());
  EXPECT_EQ(Del(2, {k0[9]}), (std::vector<int8_t>{-1}));
  EXPECT_EQ(PeekOn(0, k0[0]), k0[0] + "@2");
  EXPECT_EQ(PeekOn(0, k0[9]), "<nil>");
  // The relays of the set and of the delete failed on the primary (0).
  EXPECT_EQ(CountSent(kOpCatchUp, 1, 0), 2u) << "one per failed call";
  EXPECT_EQ(CountSent(kOpCatchUp, 1, 2), 0u) << "the coordinator's calls did not fail";
  RecordCalls();
  ASSERT_TRUE(RunUntil([&] {
    if (!pool(1).InSync() || pool(1).sync_stats().catch_ups_received < 2) return false;
    for (size_t i = 0; i + 1 < k0.size(); ++i)
      if (PeekOn(1, k0[i]) != k0[i] + "@2") return false;
    return PeekOn(1, k0[9]) == "<nil>";
  }, 10000)) << "node 1: " << PeekOn(1, k0[0]) << ", " << PeekOn(1, k0[9]);
  EXPECT_GE(pool(0).sync_stats().catch_ups_sent + pool(2).sync_stats().catch_ups_sent, 2u);
  EXPECT_EQ(pool(1).sync_stats().keys_pulled, 0u) << "fetched only the keys, no scan";
  // An error reply (not a failure in transit) tells no one.
  uint64_t sent = pool(0).sync_stats().catch_ups_sent + pool(2).sync_stats().catch_ups_sent;
  RecordCalls([](int, int to, const CallArgs& a) {
    return IsWriteToCopy(a.opcode) && to == 1 ? Status::OutOfMemory("injected") : Status::OK();
  });
  EXPECT_FALSE(Set(2, Pairs(k0, ValueOf)).status.ok());
  EXPECT_EQ(pool(0).sync_stats().catch_ups_sent + pool(2).sync_stats().catch_ups_sent, sent);
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
  // Copies on 2 and 0: while node 0 counts 2 down it is their primary.
  auto k1 = KeysOn(2, 20);
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

// A whole write runs on the slot's primary only, which relays the state of
// the keys it wrote (value and version) to the other copies before it
// answers; a read runs on one copy.
TEST_F(PoolReplicaTest, WholeWritesRunOnThePrimaryAndReachCopiesAsStateReadsOnOne) {
  BuildReplicas();
  const std::string k = KeysOn(0, 1)[0];
  std::vector<std::string> args = {"SET", k, "v1"};
  auto argv = Views(args);
  for (bool write : {true, false}) {
    for (auto* e : {&exec(0), &exec(1), &exec(2)}) e->commands.clear();
    bool done = false;
    std::string reply;
    pool(2).RunOnCopies(0, 0, 0, 2, argv, write, [&](Status s, std::string r) {
      EXPECT_TRUE(s.ok()) << s.ToString();
      reply = r;
      done = true;
    });
    ASSERT_TRUE(RunUntil([&] { return done; }));
    EXPECT_EQ(reply, exec(0).reply) << "the primary answers";
    EXPECT_EQ(exec(0).commands.size(), 1u);
    EXPECT_TRUE(exec(1).commands.empty()) << "a copy takes state, not the command";
    EXPECT_TRUE(exec(2).commands.empty());
    if (!write) continue;
    EXPECT_EQ(PeekOn(1, k), "v1");
    EXPECT_EQ(store(1).Peek(0, k, WallMs()).version(), store(0).Peek(0, k, WallMs()).version());
    EXPECT_EQ(CountSent(kOpApply, 1, 0), 1u);
  }
  // Run by a copy itself: sent to the primary, which returns the state in
  // its reply instead of relaying it back.
  args[2] = "v2";
  argv = Views(args);
  const size_t applies = CountSent(kOpApply, 1, 0), ordered = CountSent(kOpOrderedCommand, 0, 1);
  bool done = false;
  pool(1).RunOnCopies(0, 0, 0, 2, argv, true, [&](Status s, std::string) {
    EXPECT_TRUE(s.ok()) << s.ToString();
    done = true;
  });
  ASSERT_TRUE(RunUntil([&] { return done; }));
  EXPECT_TRUE(exec(1).commands.empty());
  EXPECT_EQ(exec(0).commands.size(), 2u);
  EXPECT_EQ(PeekOn(1, k), "v2");
  EXPECT_EQ(store(1).Peek(0, k, WallMs()).version(), store(0).Peek(0, k, WallMs()).version());
  EXPECT_EQ(PeekOn(0, k), "v2");
  EXPECT_EQ(CountSent(kOpOrderedCommand, 0, 1), ordered + 1);
  EXPECT_EQ(CountSent(kOpApply, 1, 0), applies) << "the caller's copy took the state from the reply";
}

// A coordinator that holds a copy of the keys it writes (not the primary)
// takes their state from the primary's reply (kOpOrderedSet with take);
// when the call fails in transit, the primary relays those keys again.
TEST_F(PoolReplicaTest, ACopyWritingThroughThePrimaryTakesTheStateFromItsReply) {
  BuildReplicas();
  auto k0 = KeysOn(0, 20);
  RecordCalls();
  ASSERT_TRUE(Set(1, Pairs(k0, ValueOf)).status.ok());
  EXPECT_EQ(CountSent(kOpOrderedSet, 0, 1), 1u);
  EXPECT_EQ(CountSent(kOpApply, 1, 0), 0u);
  for (const auto& k : k0) {
    EXPECT_EQ(PeekOn(1, k), ValueOf(k)) << k;
    EXPECT_EQ(store(1).Peek(0, k, WallMs()).version(), store(0).Peek(0, k, WallMs()).version()) << k;
  }
  // A call lost in transit: the primary may have applied it (here: it
  // holds newer values the copy lacks). The copy asks it to relay the keys
  // again and keeps serving meanwhile.
  for (const auto& k : k0) ASSERT_TRUE(store(0).Set(0, k, k + "@2", {}, WallMs(), nullptr).ok());
  RecordCalls([](int from, int to, const CallArgs& a) {
    return a.opcode == kOpOrderedSet && from == 1 && to == 0 ? Status::Timeout("injected")
                                                             : Status::OK();
  });
  auto out = Set(1, Pairs(k0, [](const std::string& k) { return k + "@3"; }));
  EXPECT_FALSE(out.status.ok());
  EXPECT_EQ(CountSent(kOpRelayAgain, 0, 1), 1u);
  ASSERT_TRUE(RunUntil([&] {
    for (const auto& k : k0)
      if (PeekOn(1, k) != k + "@2") return false;
    return true;
  })) << "node 1: " << PeekOn(1, k0[0]);
  EXPECT_TRUE(pool(1).InSync()) << "it never stopped serving";
  EXPECT_EQ(pool(1).sync_stats().catch_ups_received, 0u);
  // An error reply (nothing applied there) asks for nothing.
  RecordCalls([](int from, int to, const CallArgs& a) {
    return a.opcode == kOpOrderedSet && from == 1 && to == 0 ? Status::OutOfMemory("injected")
                                                             : Status::OK();
  });
  EXPECT_FALSE(Set(1, Pairs(k0, ValueOf)).status.ok());
  EXPECT_EQ(CountSent(kOpRelayAgain, 0, 1), 1u);
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

// Parts too large for one call (staged, or a value in chunks) are ordered
// by the primary too: the coordinator sends them there only, and the
// primary relays them (large values in chunks) with its versions.
TEST_F(PoolReplicaTest, LargeAndStagedWritesAreOrderedByThePrimary) {
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
  auto out = Set(2, kvs);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(CountSent(kOpPutBegin, 1, 2) + CountSent(kOpStageBegin, 1, 2), 0u)
      << "the coordinator wrote to a copy that is not the primary";
  EXPECT_GE(CountSent(kOpPutBegin, 1, 0), 10u) << "the primary relays each large value";
  for (size_t i = 0; i < k0.size(); ++i) {
    EXPECT_TRUE(SameBytes(PeekOn(1, k0[i]), kvs[2 * i + 1])) << i;
    EXPECT_EQ(store(1).Peek(0, k0[i], WallMs()).version(), store(0).Peek(0, k0[i], WallMs()).version())
        << i;
  }
  // A whole command with a large argument: run on the primary, relayed.
  std::vector<std::string> args = {"SET", k0[1], Pattern(200 * kKiB, 99)};
  bool done = false;
  pool(2).RunOnCopies(0, 0, 0, 2, Views(args), true, [&](Status s, std::string) {
    EXPECT_TRUE(s.ok()) << s.ToString();
    done = true;
  });
  ASSERT_TRUE(RunUntil([&] { return done; }));
  EXPECT_TRUE(exec(1).commands.empty());
  EXPECT_TRUE(SameBytes(PeekOn(1, k0[1]), args[2]));
  EXPECT_EQ(store(1).Peek(0, k0[1], WallMs()).version(), store(0).Peek(0, k0[1], WallMs()).version());
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

// Node 0 away (node 1 takes the writes of their slots alone), then node 1
// away while node 0 is back: node 0 catches up without node 1 and writes
// its slots alone. Neither holds every acknowledged write; once node 1 is
// back, node 1 keeps its keys when it catches up from node 0 (a source with
// a merge pending) and node 0 merges from node 1: every copy ends with the
// newest value of every key (node 0's later writes newer by its clock).
TEST_F(PoolReplicaTest, ANodeThatCaughtUpWithoutACopyMergesFromItOnceBack) {
  BuildReplicas(kDownAfterMs);
  auto k0 = KeysOn(0, 40);  // copies on nodes 0 and 1
  ASSERT_TRUE(Set(2, Pairs(k0, [](const std::string&) { return std::string("v0"); })).status.ok());
  std::map<std::string, std::string> want;
  for (const auto& k : k0) want[k] = "v0";
  auto write = [&](size_t from, size_t to, const std::string& v) {
    std::vector<std::string> kvs;
    for (size_t i = from; i < to; ++i) {
      kvs.insert(kvs.end(), {k0[i], v});
      want[k0[i]] = v;
    }
    ASSERT_TRUE(Set(2, kvs).status.ok());
  };
  net().SetDown(0, FakeNetwork::DownMode::kRefuse);
  ASSERT_TRUE(RunUntil([&] { return !pool(1).NodeUp(0) && !pool(2).NodeUp(0); }, 3000));
  // Many times: node 1's clock runs far ahead of node 0's.
  for (int round = 0; round < 50; ++round) write(0, 20, "while-0-away");
  // Deleted while node 0 is away (node 0 keeps them at v0, and catches up
  // from no one): they do not come back either.
  std::vector<std::string> gone(k0.begin() + 36, k0.begin() + 40);
  EXPECT_EQ(Del(2, gone), std::vector<int8_t>(gone.size(), 1));
  EXPECT_EQ(PeekOn(0, k0[0]), "v0");
  net().SetDown(1, FakeNetwork::DownMode::kRefuse);
  net().SetUp(0);
  ASSERT_TRUE(RunUntil([&] {
    return !pool(0).NodeUp(1) && !pool(2).NodeUp(1) && pool(0).InSync() && pool(0).Serving(0) &&
           pool(2).Serving(0);
  }, 8000));
  EXPECT_EQ(pool(0).sync_stats().merge_pending, std::vector<int>{1});
  write(10, 30, "while-1-away");
  EXPECT_EQ(PeekOn(1, k0[10]), "while-0-away");
  // Deleted while node 1 is away: keys node 1 holds at v0, and keys it took
  // alone while node 0 was away. Neither comes back with the merge.
  gone.insert(gone.end(), k0.begin() + 30, k0.begin() + 36);
  gone.insert(gone.end(), k0.begin(), k0.begin() + 4);
  EXPECT_EQ(Del(2, std::vector<std::string>(gone.begin() + 4, gone.end())),
            std::vector<int8_t>(gone.size() - 4, 1));
  for (const auto& k : gone) want.erase(k);
  net().SetUp(1);
  // Back and in sync, before the merge: node 1 holds the newer of both
  // sides, so it is read (node 0 lacks what node 1 took alone).
  ASSERT_TRUE(RunUntil([&] {
    return pool(1).InSync() && pool(0).Serving(1) && pool(2).Serving(1) &&
           pool(2).LacksWrites(0, 0);
  }, 10000));
  EXPECT_EQ(pool(0).sync_stats().merge_pending, std::vector<int>{1});  // the merge waits
  {
    std::vector<std::string> mine(k0.begin() + 4, k0.begin() + 10);  // node 1's alone
    for (int from = 0; from < 3; ++from) {
      auto got = Get(from, mine);
      for (size_t i = 0; i < mine.size(); ++i)
        EXPECT_EQ(got[i].value, "while-0-away") << mine[i] << " through node " << from;
    }
  }
  ASSERT_TRUE(RunUntil([&] {
    for (int n = 0; n < 3; ++n)
      if (!pool(n).InSync() || !pool(0).Serving(n) || !pool(2).Serving(n)) return false;
    return pool(0).sync_stats().merge_pending.empty();
  }, 10000));
  EXPECT_GE(pool(0).sync_stats().keys_merged, 10u);
  // The deletes reach node 1 after the merge (a heartbeat later).
  EXPECT_TRUE(RunUntil([&] {
    for (const auto& k : gone)
      if (PeekOn(1, k) != "<nil>") return false;
    return true;
  }, 3000)) << "node 1 still holds keys deleted while it was away";
  for (const auto& k : gone) {
    EXPECT_EQ(PeekOn(0, k), "<nil>") << k << " came back on node 0";
    EXPECT_EQ(PeekOn(1, k), "<nil>") << k << " on node 1";
    for (int from = 0; from < 3; ++from)
      EXPECT_EQ(Get(from, {k})[0].state, GetResult::kMissing) << k << " through node " << from;
  }
  for (const auto& [k, v] : want) {
    EXPECT_EQ(PeekOn(0, k), v) << k << " on node 0";
    EXPECT_EQ(PeekOn(1, k), v) << k << " on node 1";
    EXPECT_EQ(store(0).Peek(0, k, WallMs()).version(), store(1).Peek(0, k, WallMs()).version())
        << k;
  }
  for (int from = 0; from < 3; ++from) {
    auto got = Get(from, k0);
    for (size_t i = 0; i < k0.size(); ++i)
      EXPECT_EQ(got[i].state == GetResult::kFound ? got[i].value : std::string("<nil>"),
                want.count(k0[i]) ? want[k0[i]] : std::string("<nil>"))
          << k0[i] << " through node " << from;
  }
}

// The copy a node has a merge pending from comes back empty (its data is
// gone): there is nothing to merge; the node stops saying it lacks data,
// and the restarted copy fills from it.
TEST_F(PoolReplicaTest, AMergePendingFromACopyThatCameBackEmptyIsDropped) {
  BuildReplicas(kDownAfterMs);
  auto k0 = KeysOn(0, 20);  // copies on nodes 0 and 1
  ASSERT_TRUE(Set(2, Pairs(k0, ValueOf)).status.ok());
  // Node 0 away while node 1 takes a write alone; then node 1 away while
  // node 0 catches up.
  net().SetDown(0, FakeNetwork::DownMode::kRefuse);
  ASSERT_TRUE(RunUntil([&] { return !pool(1).NodeUp(0) && !pool(2).NodeUp(0); }, 3000));
  ASSERT_TRUE(Set(2, {k0[19], "only-on-1"}).status.ok());
  net().SetDown(1, FakeNetwork::DownMode::kRefuse);
  net().SetUp(0);
  ASSERT_TRUE(RunUntil([&] {
    return !pool(0).NodeUp(1) && !pool(2).NodeUp(1) && pool(0).InSync() && pool(0).Serving(0) &&
           pool(2).Serving(0);
  }, 8000));
  ASSERT_EQ(pool(0).sync_stats().merge_pending, std::vector<int>{1});
  std::vector<std::string> later;
  for (size_t i = 0; i < 10; ++i) later.insert(later.end(), {k0[i], "later"});
  ASSERT_TRUE(Set(2, later).status.ok());
  Restart(1);
  net().SetUp(1);
  ASSERT_TRUE(RunUntil([&] {
    return pool(0).sync_stats().merge_pending.empty() && pool(1).InSync() && pool(0).Serving(1) &&
           pool(2).Serving(1);
  }, 10000));
  for (size_t i = 0; i < k0.size(); ++i) {
    std::string want = i < 10 ? "later" : ValueOf(k0[i]);
    EXPECT_EQ(PeekOn(0, k0[i]), want) << k0[i];
    EXPECT_EQ(PeekOn(1, k0[i]), want) << k0[i];
  }
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

namespace kvpool::pool {
namespace {

// POOL COPIES (copies.cc): what every copy of a key holds, as node `from`
// sees it.
class PoolCopiesTest : public PoolReplicaTest {
 protected:
  std::vector<CopyInfo> Copies(int from, const std::string& key) {
    bool done = false;
    std::vector<CopyInfo> out;
    pool(from).Copies(0, 0, key, [&](std::vector<CopyInfo>& c) {
      EXPECT_FALSE(done) << "done ran twice";
      out = c;
      done = true;
    });
    EXPECT_TRUE(RunUntil([&] { return done; })) << "Copies hung";
    return out;
  }
};

TEST_F(PoolCopiesTest, EqualCopiesAgreeAndADifferentOneShows) {
  BuildReplicas();
  const std::string key = KeysOn(0, 1)[0];
  ASSERT_TRUE(Set(2, {key, "same bytes"}).status.ok());
  const uint64_t want = Hash64("same bytes");
  for (int from = 0; from < 3; ++from) {
    auto c = Copies(from, key);
    ASSERT_EQ(c.size(), 2u);
    for (int i = 0; i < 2; ++i) {
      EXPECT_EQ(c[i].node, i) << "from " << from;  // primary first
      EXPECT_EQ(c[i].state, CopyInfo::kInSync);
      EXPECT_TRUE(c[i].present);
      EXPECT_NE(c[i].version, 0u);
      EXPECT_EQ(c[i].digest, want);
      EXPECT_EQ(c[i].version, store(i).Peek(0, key, WallMs()).version());
    }
  }
  // One copy changed behind the pool's back: its digest differs.
  ASSERT_TRUE(store(1).Set(0, key, "other bytes", {}, WallMs(), nullptr).ok());
  auto c = Copies(2, key);
  EXPECT_EQ(c[0].digest, want);
  EXPECT_EQ(c[1].digest, Hash64("other bytes"));
  // A key no copy holds: present nowhere, version and digest 0.
  for (const CopyInfo& a : Copies(0, "k:absent")) {
    EXPECT_EQ(a.state, CopyInfo::kInSync);
    EXPECT_FALSE(a.present);
    EXPECT_EQ(a.version, 0u);
    EXPECT_EQ(a.digest, 0u);
  }
}

TEST_F(PoolCopiesTest, ADownOrSilentCopyShowsDownWithNothing) {
  BuildReplicas(kDownAfterMs);
  const std::string key = KeysOn(1, 1)[0];  // copies on 1 and 2
  ASSERT_TRUE(Set(0, {key, "v"}).status.ok());
  // Up, but its answer fails (as a timeout would): down for this question.
  hook(0).fail_at_once = [](int peer, const CallArgs& a) {
    return peer == 2 && a.opcode == kOpCopy ? Status::Timeout("no reply") : Status::OK();
  };
  auto c = Copies(0, key);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].state, CopyInfo::kInSync);
  EXPECT_TRUE(c[0].present);
  EXPECT_EQ(c[1].node, 2);
  EXPECT_EQ(c[1].state, CopyInfo::kDown);
  EXPECT_FALSE(c[1].present);
  EXPECT_EQ(c[1].version, 0u);
  hook(0).fail_at_once = nullptr;
  // Counted down: not asked at all.
  net().SetDown(1, FakeNetwork::DownMode::kRefuse);
  ASSERT_TRUE(RunUntil([&] { return !pool(2).NodeUp(1); }, 3000));
  size_t asked = CountSent(kOpCopy, 1);
  c = Copies(2, key);
  EXPECT_EQ(CountSent(kOpCopy, 1), asked);
  EXPECT_EQ(c[0].node, 1);
  EXPECT_EQ(c[0].state, CopyInfo::kDown);
  EXPECT_FALSE(c[0].present);
  EXPECT_EQ(c[0].digest, 0u);
  EXPECT_EQ(c[1].state, CopyInfo::kInSync);
  EXPECT_EQ(c[1].digest, Hash64("v"));
}

}  // namespace
}  // namespace kvpool::pool
