// The messages between nodes, by hand: the owner's handling of malformed
// and odd bodies, the large-put protocol and the sweep of abandoned puts, the
// requester's of malformed replies, and the consistency of a chunked get
// whose value changes midway.
#include "storage/pool/pool_test_util.h"
#include "storage/pool/requests.h"

namespace kvpool::pool {
namespace {

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
      {"copy: truncated key", kOpCopy, Body([](Writer& w) { w.U32(0), w.U32(9), w.U8('k'); }), "",
       Code::kInvalidArgument},
      {"copy: db out of range", kOpCopy, Body([](Writer& w) { w.U32(16), w.Bytes("k"); }), "",
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
    o.latency_ms = 1;  // kTransferWindow chunks in flight together, handled one by one
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
  // Chunks of the old version up to the 4th, which finds the key changed
  // (and those already in flight then, kTransferWindow in all), and no more
  // of them; then all 17 of the new one.
  EXPECT_GE(chunks_, 4 + 17);
  EXPECT_LE(chunks_, 3 + static_cast<int>(kTransferWindow) + 17);
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
  // Four attempts, each ended by its second chunk (the first one that finds
  // the key changed), with at most kTransferWindow chunks in flight: none
  // of the other 14 of each attempt is asked for.
  EXPECT_GE(writes, 4 * 2);
  EXPECT_LE(writes, 4 * (1 + static_cast<int>(kTransferWindow))) << "four attempts";
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

}  // namespace
}  // namespace kvpool::pool
