// Writes whose reply never came (fate.cc): one that ran on its owner is
// reported with its own reply; one that never arrived is fenced there (and
// refused if it turns up later) and reported failed; with no answer at all,
// the error says the outcome is unknown.
#include "storage/pool/pool_test_util.h"

namespace kvpool::pool {
namespace {

class PoolFateTest : public PoolTest {
 protected:
  // Three nodes, two copies of each slot, every node serving.
  void BuildReplicas(int latency_ms = 0) {
    ClusterOptions o;
    o.replicas = 2;
    o.latency_ms = latency_ms;
    o.timeout_ms = 1000;
    Build(o);
    WaitAllServing();
  }
  // The reply of node 0's first call of `op` is lost (a timeout), after the
  // owner ran it.
  void LoseFirstReply(uint16_t op) {
    auto lost = std::make_shared<bool>(false);
    hook(0).rewrite_reply = [op, lost](uint16_t o, Status* s, std::string* reply, std::string*) {
      if (o != op || *lost) return;
      *lost = true;
      *s = Status::Timeout("no reply from peer (test)");
      reply->clear();
    };
  }
  // Sends a hand-built call from node 0 to `to`; runs until it is answered.
  std::pair<Status, std::string> Raw(int to, CallArgs a) {
    auto out = std::make_shared<std::optional<std::pair<Status, std::string>>>();
    hook(0).Call(0, to, std::move(a), 2000, [out](Status s, std::string_view reply, std::string_view) {
      std::string_view payload;
      if (s.ok()) s = ParseReplyStatus(reply, &payload);
      *out = std::make_pair(s, std::string(payload));
    });
    EXPECT_TRUE(RunUntil([&] { return out->has_value(); })) << "raw call hung";
    return out->value_or(std::make_pair(Status::Internal("hung"), std::string()));
  }
  static void AddTrailer(CallArgs* a, uint64_t epoch, uint64_t token) {
    Writer w(&a->body);
    w.U32(a->opcode);
    w.U64(epoch);
    w.U64(token);
    w.U64(token);
    a->opcode = kOpTokened;
  }
  // An ordered write of no keys, with a token.
  static CallArgs EmptySet(uint64_t epoch, uint64_t token) {
    CallArgs a;
    a.opcode = kOpOrderedSet;
    Writer w(&a.body);
    w.U32(0);  // db
    w.U32(0);  // keys
    AddTrailer(&a, epoch, token);
    return a;
  }
  static CallArgs FateQuery(uint64_t epoch, uint64_t token) {
    CallArgs a;
    a.opcode = kOpFate;
    Writer w(&a.body);
    w.U64(epoch);
    w.U64(token);
    return a;
  }
};

TEST_F(PoolFateTest, AWriteWhoseReplyWasLostIsReportedAsLanded) {
  Build();
  auto keys = KeysOn(1, 2);
  LoseFirstReply(kOpMultiSet);
  SetOutcome out = Set(0, Pairs(keys, ValueOf));
  EXPECT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.failed_keys, 0u);
  EXPECT_EQ(CountSent(kOpFate, 1, 0), 1u);
  EXPECT_EQ(pool(0).write_fates().landed, 1u);
  for (const auto& k : keys) EXPECT_EQ(Peek(k), ValueOf(k));

  // A delete's reply (how many it removed) comes back the same way.
  LoseFirstReply(kOpMultiDel);
  EXPECT_EQ(Del(0, keys), (std::vector<int8_t>{1, 1}));
  EXPECT_EQ(pool(0).write_fates().landed, 2u);
  EXPECT_EQ(Peek(keys[0]), "<nil>");
}

TEST_F(PoolFateTest, AForwardedCommandWhoseReplyWasLostRanOnceAndAnswersWithItsReply) {
  Build();
  LoseFirstReply(kOpCommand);
  std::vector<std::string_view> argv = {"SET", "k", "v"};
  std::optional<std::pair<Status, std::string>> got;
  pool(0).Forward(0, 1, 0, 2, argv, [&](Status s, std::string reply) { got.emplace(s, reply); });
  ASSERT_TRUE(RunUntil([&] { return got.has_value(); }));
  EXPECT_TRUE(got->first.ok()) << got->first.ToString();
  EXPECT_EQ(got->second, "$6\r\nnode-1\r\n");
  EXPECT_EQ(execs_[1]->commands.size(), 1u);
}

TEST_F(PoolFateTest, AnOrderedWriteWhoseReplyWasLostLandsOnEveryCopy) {
  BuildReplicas();
  // Keys of node 1's slots (copies on 1 and 2), written through node 0 (no
  // copy) and through node 2 (a copy: it takes the state from the reply).
  auto keys = KeysOn(1, 4);
  LoseFirstReply(kOpOrderedSet);
  SetOutcome out = Set(0, {keys[0], "a", keys[1], "b"});
  EXPECT_TRUE(out.status.ok()) << out.status.ToString();
  hook(0).rewrite_reply = nullptr;
  auto lost = std::make_shared<bool>(false);
  hook(2).rewrite_reply = [lost](uint16_t o, Status* s, std::string* reply, std::string*) {
    if (o != kOpOrderedSet || *lost) return;
    *lost = true;
    *s = Status::Timeout("no reply from peer (test)");
    reply->clear();
  };
  out = Set(2, {keys[2], "c", keys[3], "d"});
  EXPECT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(pool(2).write_fates().landed, 1u);
  const std::map<std::string, std::string> want = {
      {keys[0], "a"}, {keys[1], "b"}, {keys[2], "c"}, {keys[3], "d"}};
  for (const auto& [k, v] : want) {
    for (int n : {1, 2}) {
      storage::ItemRef item = store(n).Peek(0, k, WallMs());
      ASSERT_TRUE(item) << k << " missing on node " << n;
      EXPECT_EQ(item.value(), v);
    }
    EXPECT_EQ(store(1).Peek(0, k, WallMs()).version(), store(2).Peek(0, k, WallMs()).version());
  }
}

// The primary's relay to the other copy landed there but its reply was
// lost: the write is on both copies, so it is not reported as failed.
TEST_F(PoolFateTest, ARelayWhoseReplyWasLostIsNotReportedAsACopyMissingTheWrite) {
  BuildReplicas();
  auto keys = KeysOn(1, 2);  // copies on 1 (primary) and 2; written through 0
  auto lost = std::make_shared<bool>(false);
  hook(1).rewrite_reply = [lost](uint16_t o, Status* s, std::string* reply, std::string*) {
    if (o != kOpApply || *lost) return;
    *lost = true;
    *s = Status::Timeout("no reply from peer (test)");
    reply->clear();
  };
  SetOutcome out = Set(0, {keys[0], "a", keys[1], "b"});
  EXPECT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.failed_keys, 0u);
  EXPECT_TRUE(*lost);
  EXPECT_EQ(pool(1).write_fates().landed, 1u);
  EXPECT_EQ(pool(1).sync_stats().replica_write_errors, 0u);
  for (const auto& k : keys) {
    storage::ItemRef a = store(1).Peek(0, k, WallMs()), b = store(2).Peek(0, k, WallMs());
    ASSERT_TRUE(a && b) << k;
    EXPECT_EQ(a.value(), b.value());
    EXPECT_EQ(a.version(), b.version());
  }
}

TEST_F(PoolFateTest, AWriteThatNeverArrivedIsFencedAndRefusedIfItArrivesLate) {
  Build();
  const std::string key = KeysOn(1, 1)[0];
  std::optional<CallArgs> held;
  net_->SetCallFilter([&](int, int, const CallArgs& a) {
    if (a.opcode != kOpTokened || held) return Status::OK();
    held = a;  // lost on the way
    return Status::Timeout("no reply from peer (test)");
  });
  SetOutcome out = Set(0, {key, "v1"});
  EXPECT_EQ(out.status.code(), Code::kTimeout) << out.status.ToString();
  EXPECT_EQ(out.status.message().find("not known"), std::string::npos) << out.status.ToString();
  EXPECT_EQ(pool(0).write_fates().fenced, 1u);
  EXPECT_EQ(Peek(key), "<nil>");

  // The same call turns up now: refused, and nothing changes.
  ASSERT_TRUE(held);
  const std::string value = "v1";
  held->bulk_in = {{const_cast<char*>(value.data()), value.size()}};
  auto [s, payload] = Raw(1, *held);
  EXPECT_EQ(s.code(), Code::kAborted) << s.ToString();
  EXPECT_NE(s.message().find("refused"), std::string::npos) << s.ToString();
  EXPECT_EQ(Peek(key), "<nil>");
  // Later writes go through.
  EXPECT_TRUE(Set(0, {key, "v2"}).status.ok());
  EXPECT_EQ(Peek(key), "v2");
}

TEST_F(PoolFateTest, WithNoAnswerTheErrorSaysTheOutcomeIsUnknown) {
  ClusterOptions o;
  o.timeout_ms = 100;
  Build(o);
  const std::string key = KeysOn(1, 1)[0];
  net_->SetCallFilter([&](int, int, const CallArgs& a) {
    if (a.opcode == kOpTokened || a.opcode == kOpFate) return Status::Timeout("no reply (test)");
    return Status::OK();
  });
  SetOutcome out = Set(0, {key, "v"});
  EXPECT_EQ(out.status.code(), Code::kTimeout) << out.status.ToString();
  EXPECT_NE(out.status.message().find("whether the write landed there is not known"),
            std::string::npos)
      << out.status.ToString();
  EXPECT_EQ(pool(0).write_fates().unknown, 1u);
}

TEST_F(PoolFateTest, AQueryAboutAWriteStillRunningIsAnsweredWhenItEnds) {
  BuildReplicas(/*latency_ms=*/30);  // the primary's relay to the other copy takes a while
  const std::string key = KeysOn(1, 1)[0];
  const std::string value = "running";
  CallArgs w;
  w.opcode = kOpOrderedSet;
  Writer b(&w.body);
  b.U32(0);  // db
  b.U32(1);
  b.Bytes(key);
  b.U64(value.size());
  b.U64(0);
  w.bulk_in = {{const_cast<char*>(value.data()), value.size()}};
  AddTrailer(&w, 77, 5);
  std::optional<std::pair<Status, std::string>> write, fate;
  hook(0).Call(0, 1, std::move(w), 2000, [&](Status s, std::string_view reply, std::string_view) {
    std::string_view p;
    if (s.ok()) s = ParseReplyStatus(reply, &p);
    write.emplace(s, std::string(p));
  });
  // Asked once the write is running there (relaying to node 2).
  bool running = false;
  hook(1).after_handle = [&](uint16_t op, std::string_view) { running |= op == kOpOrderedSet; };
  ASSERT_TRUE(RunUntil([&] { return running; }));
  EXPECT_FALSE(write);
  hook(0).Call(0, 1, FateQuery(77, 5), 2000, [&](Status s, std::string_view reply, std::string_view) {
    std::string_view p;
    if (s.ok()) s = ParseReplyStatus(reply, &p);
    fate.emplace(s, std::string(p));
  });
  ASSERT_TRUE(RunUntil([&] { return write && fate; }));
  ASSERT_TRUE(write->first.ok()) << write->first.ToString();
  ASSERT_TRUE(fate->first.ok()) << fate->first.ToString();
  // {kFateDone, kept 1, the write's own reply (status byte first)}
  ASSERT_GE(fate->second.size(), 3u);
  EXPECT_EQ(uint8_t(fate->second[0]), kFateDone);
  EXPECT_EQ(uint8_t(fate->second[1]), 1);
  std::string_view again;
  EXPECT_TRUE(ParseReplyStatus(std::string_view(fate->second).substr(2), &again).ok());
  EXPECT_EQ(again, write->second);
  EXPECT_EQ(Peek(key), value);

  // The same token again: refused, not run twice. A token never seen:
  // fenced, and then refused.
  EXPECT_EQ(Raw(1, EmptySet(77, 5)).first.code(), Code::kAborted);
  auto [fs, fp] = Raw(1, FateQuery(77, 6));
  ASSERT_TRUE(fs.ok()) << fs.ToString();
  EXPECT_EQ(fp, std::string(1, char(kFateFenced)));
  EXPECT_EQ(Raw(1, EmptySet(77, 6)).first.code(), Code::kAborted);
}

TEST_F(PoolFateTest, MalformedTokenedCallsAreRejected) {
  Build();
  struct Case {
    const char* what;
    CallArgs args;
  };
  std::vector<Case> cases;
  cases.push_back({"no trailer", {}});
  cases.back().args.opcode = kOpTokened;
  cases.back().args.body = "short";
  CallArgs read_op;  // only writes carry a token
  read_op.opcode = kOpMultiGet;
  Writer(&read_op.body).U32(0);
  Writer(&read_op.body).U32(0);
  AddTrailer(&read_op, 1, 1);
  cases.push_back({"a read inside", read_op});
  CallArgs nested;
  nested.opcode = kOpTokened;
  AddTrailer(&nested, 1, 2);
  cases.push_back({"a tokened call inside", nested});
  CallArgs fate = FateQuery(1, 3);
  fate.body += "x";
  cases.push_back({"fate with extra bytes", fate});
  for (auto& c : cases) {
    auto [s, payload] = Raw(1, c.args);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << c.what << ": " << s.ToString();
  }
}

}  // namespace
}  // namespace kvpool::pool
