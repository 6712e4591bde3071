// MGET, MSET, MSETNX and MEXISTS handlers, in process (split from
// string_family_test.cc).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/reply_builder.h"
#include "server/command_table.h"
#include "server/dispatcher.h"
#include "server/string_family_test_util.h"
#include "server/testing/command_harness.h"

namespace kvpool {
namespace {

using namespace kvpool::string_test;  // NOLINT: the shared test vocabulary

// ---------------- MGET / MSET / MSETNX ----------------

TEST_F(StringFamilyTest, MGet) {
  h.Run({"SET", "a", "1"});
  h.Run({"SET", "c", "3"});
  EXPECT_EQ(h.Run({"MGET", "a", "b", "c", "a"}), Arr({Bulk("1"), kNil, Bulk("3"), Bulk("1")}));
  h.client().resp = 3;
  EXPECT_EQ(h.Run({"MGET", "a", "b"}), Arr({Bulk("1"), "_\r\n"}));
}

TEST_F(StringFamilyTest, MGetCountsLookups) {
  h.Run({"SET", "a", "1"});
  uint64_t hits = Hits(), misses = Misses();
  h.Run({"MGET", "a", "b", "a", "c"});
  EXPECT_EQ(Hits(), hits + 2);
  EXPECT_EQ(Misses(), misses + 2);
}

TEST_F(StringFamilyTest, MGetExpired) {
  h.Run({"SET", "a", "1", "PX", "10"});
  h.Run({"SET", "b", "2"});
  h.SetNow(kNow + 10);
  EXPECT_EQ(h.Run({"MGET", "a", "b"}), Arr({kNil, Bulk("2")}));
}

std::string PatternValue(size_t n) {
  std::string v(n, '\0');
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<char>((i * 131 + i / 7) % 256);
  return v;
}

TEST_F(StringFamilyTest, MGetLargeValueExactBytes) {
  std::string big = PatternValue(1 << 20);
  EXPECT_EQ(h.Run({"SET", "big", big}), kOk);
  EXPECT_EQ(h.Run({"SET", "small", "s"}), kOk);
  std::string got = h.Run({"MGET", "small", "big", "missing", "big"});
  EXPECT_EQ(got, Arr({Bulk("s"), Bulk(big), kNil, Bulk(big)}));
  EXPECT_EQ(h.Run({"GET", "big"}), Bulk(big));
}

// A sink that records reference writes and releases them only when asked, as
// the connection's output buffer does once bytes reach the socket.
class RecordingSink : public protocol::ReplySink {
 public:
  void Write(const char* data, size_t len) override { out.append(data, len); }
  void WriteRef(const char* data, size_t len, void (*release)(void*), void* ctx) override {
    out.append(data, len);
    refs.push_back({len, release, ctx});
  }
  void ReleaseAll() {
    for (auto& r : refs) r.release(r.ctx);
    released += refs.size();
    refs.clear();
  }
  struct Ref {
    size_t len;
    void (*release)(void*);
    void* ctx;
  };
  std::string out;
  std::vector<Ref> refs;
  size_t released = 0;
};

std::string ExecuteWith(CommandHarness& h, RecordingSink& sink, std::vector<std::string> args) {
  std::vector<std::string_view> views(args.begin(), args.end());
  protocol::ReplyBuilder rb(&sink, h.client().resp);
  sink.out.clear();
  Execute(h.server(), h.client(), rb, views, kNow);
  return sink.out;
}

TEST_F(StringFamilyTest, LargeValuesAreSentByReference) {
  std::string big = PatternValue(1 << 20);
  std::string edge(16 * 1024, 'e');       // at the threshold: by reference
  std::string below(16 * 1024 - 1, 'b');  // below it: copied
  h.Run({"SET", "big", big});
  h.Run({"SET", "edge", edge});
  h.Run({"SET", "below", below});
  RecordingSink sink;
  EXPECT_EQ(ExecuteWith(h, sink, {"MGET", "big", "below", "edge", "nope"}),
            Arr({Bulk(big), Bulk(below), Bulk(edge), kNil}));
  ASSERT_EQ(sink.refs.size(), 2u);
  EXPECT_EQ(sink.refs[0].len, big.size());
  EXPECT_EQ(sink.refs[1].len, edge.size());
  // The pinned bytes stay valid after the key is overwritten and deleted.
  h.Run({"SET", "big", "replaced"});
  h.Run({"DEL", "edge"});
  sink.ReleaseAll();
  EXPECT_EQ(h.Run({"GET", "big"}), Bulk("replaced"));

  EXPECT_EQ(ExecuteWith(h, sink, {"GET", "below"}), Bulk(below));
  EXPECT_TRUE(sink.refs.empty());
  h.Run({"SET", "big", big});
  EXPECT_EQ(ExecuteWith(h, sink, {"GET", "big"}), Bulk(big));
  EXPECT_EQ(sink.refs.size(), 1u);
  sink.ReleaseAll();
  // A large GETRANGE slice goes by reference too.
  EXPECT_EQ(ExecuteWith(h, sink, {"GETRANGE", "big", "1000", "99999"}),
            Bulk(big.substr(1000, 99000)));
  EXPECT_EQ(sink.refs.size(), 1u);
  sink.ReleaseAll();
}

TEST_F(StringFamilyTest, MSet) {
  EXPECT_EQ(h.Run({"SET", "a", "old", "EX", "100"}), kOk);
  EXPECT_EQ(h.Run({"MSET", "a", "1", "b", "2"}), kOk);
  EXPECT_EQ(h.Run({"MGET", "a", "b"}), Arr({Bulk("1"), Bulk("2")}));
  EXPECT_EQ(h.Run({"TTL", "a"}), Int(-1));  // MSET clears TTLs
  // The last of repeated keys wins.
  EXPECT_EQ(h.Run({"MSET", "c", "1", "c", "2"}), kOk);
  EXPECT_EQ(h.Run({"GET", "c"}), Bulk("2"));
}

TEST_F(StringFamilyTest, MSetOddArguments) {
  EXPECT_EQ(h.Run({"MSET", "a", "1", "b"}),
            Err("ERR wrong number of arguments for 'mset' command"));
  EXPECT_EQ(h.Run({"MSET", "a"}), Err("ERR wrong number of arguments for 'mset' command"));
  EXPECT_EQ(h.Run({"mset", "a", "1", "b"}),
            Err("ERR wrong number of arguments for 'mset' command"));
  EXPECT_EQ(h.Run({"MSETNX", "a", "1", "b"}),
            Err("ERR wrong number of arguments for 'msetnx' command"));
  EXPECT_EQ(h.Run({"EXISTS", "a"}), Int(0));
}

TEST_F(StringFamilyTest, MSetNx) {
  EXPECT_EQ(h.Run({"MSETNX", "a", "1", "b", "2"}), Int(1));
  EXPECT_EQ(h.Run({"MSETNX", "c", "3", "a", "x"}), Int(0));
  EXPECT_EQ(h.Run({"MGET", "a", "b", "c"}), Arr({Bulk("1"), Bulk("2"), kNil}));
}

// ---------------- MEXISTS ----------------

TEST_F(StringFamilyTest, MExistsAligned) {
  h.Run({"SET", "a", "1"});
  h.Run({"SET", "c", "3"});
  h.Run({"SET", "gone", "x", "PX", "5"});
  h.SetNow(kNow + 5);
  EXPECT_EQ(h.Run({"MEXISTS", "a", "b", "c", "a", "gone", "b", "a"}),
            Arr({Int(1), Int(0), Int(1), Int(1), Int(0), Int(0), Int(1)}));
  EXPECT_EQ(h.Run({"MEXISTS", "zzz"}), Arr({Int(0)}));
  EXPECT_EQ(h.Run({"mexists", "c"}), Arr({Int(1)}));
  h.client().resp = 3;
  EXPECT_EQ(h.Run({"MEXISTS", "a", "b"}), Arr({Int(1), Int(0)}));
}

TEST_F(StringFamilyTest, MExistsBinaryAndPerDb) {
  std::string key("\0bin\r\n", 6);
  h.Run({"SET", key, "v"});
  EXPECT_EQ(h.Run({"MEXISTS", key, std::string("\0bin", 4)}), Arr({Int(1), Int(0)}));
  h.Run({"SELECT", "1"});
  EXPECT_EQ(h.Run({"MEXISTS", key}), Arr({Int(0)}));
}

TEST_F(StringFamilyTest, MExistsLeavesTtlAlone) {
  h.Run({"SET", "k", "v", "PX", "1000"});
  h.SetNow(kNow + 400);
  EXPECT_EQ(h.Run({"MEXISTS", "k", "k"}), Arr({Int(1), Int(1)}));
  EXPECT_EQ(h.Run({"PTTL", "k"}), Int(600));
  h.SetNow(kNow + 1000);
  EXPECT_EQ(h.Run({"MEXISTS", "k"}), Arr({Int(0)}));
}

TEST_F(StringFamilyTest, MExistsManyKeys) {
  std::vector<std::string> args = {"MEXISTS"};
  std::vector<std::string> want;
  for (int i = 0; i < 512; ++i) {
    std::string key = "block:" + std::to_string(i);
    if (i % 3 == 0) h.Run({"SET", key, "x"});
    args.push_back(key);
    want.push_back(Int(i % 3 == 0 ? 1 : 0));
  }
  EXPECT_EQ(h.Run(args), Arr(want));
}

// MEXISTS must not refresh LRU: keys only probed by MEXISTS stay "cold" and
// are what allkeys-lru evicts first, before keys that GET touched earlier.
TEST(StringFamilyEviction, MExistsDoesNotRefreshLru) {
  CommandHarness h(
      {"--maxmemory", "8mb", "--maxmemory-policy", "allkeys-lru", "--maxmemory-samples", "64"});
  const int n = 2000;
  const std::string value(1000, 'v');
  h.SetNow(kNow);
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(h.Run({"SET", "cold:" + std::to_string(i), value}), kOk);
    ASSERT_EQ(h.Run({"SET", "hot:" + std::to_string(i), value}), kOk);
  }
  ASSERT_EQ(h.store().GetStats().evicted_keys, 0u);
  h.SetNow(kNow + 100'000);
  for (int i = 0; i < n; ++i) h.Run({"GET", "hot:" + std::to_string(i)});
  h.SetNow(kNow + 200'000);
  std::vector<std::string> probe = {"MEXISTS"};
  for (int i = 0; i < n; ++i) probe.push_back("cold:" + std::to_string(i));
  h.Run(probe);
  h.SetNow(kNow + 300'000);
  for (int i = 0; i < 20000 && h.store().GetStats().evicted_keys < 300; ++i)
    ASSERT_EQ(h.Run({"SET", "fill:" + std::to_string(i), value}), kOk);
  ASSERT_GE(h.store().GetStats().evicted_keys, 300u);

  int cold_gone = 0, hot_gone = 0;
  for (int i = 0; i < n; ++i) {
    cold_gone += h.Run({"MEXISTS", "cold:" + std::to_string(i)}) == Arr({Int(0)});
    hot_gone += h.Run({"MEXISTS", "hot:" + std::to_string(i)}) == Arr({Int(0)});
  }
  // Sampled LRU picks some hot keys too (about 1 in 4 here, the same as with
  // no probe at all); had MEXISTS touched the cold keys, the ratio would flip
  // (about 1 cold to 3 hot, measured with GET in place of MEXISTS).
  EXPECT_GE(cold_gone, 150) << "cold " << cold_gone << " hot " << hot_gone;
  EXPECT_GE(cold_gone, 2 * hot_gone) << "cold " << cold_gone << " hot " << hot_gone;
}


}  // namespace
}  // namespace kvpool
