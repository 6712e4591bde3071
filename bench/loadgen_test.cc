// Tests of the benchmark's parts that can break: the load generator's
// options, latency histogram, keys/values/commands and reply checks, its
// JSON output, and the result parsing and table of bench/run.sh. No speed is
// asserted anywhere.
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include "bench/histogram.h"
#include "bench/loadgen_options.h"
#include "bench/loadgen_result.h"
#include "bench/report.h"
#include "bench/workload.h"

namespace kvbench {
namespace {

// ---------------------------------------------------------------- options

bool Parse(std::vector<std::string> args, Options* o, std::string* err) {
  return ParseOptions(args, o, err);
}

TEST(Options, Defaults) {
  Options o;
  std::string err;
  ASSERT_TRUE(Parse({}, &o, &err)) << err;
  EXPECT_EQ(o.host, "127.0.0.1");
  EXPECT_EQ(o.port, 6379);
  EXPECT_EQ(o.command, Command::kGet);
  EXPECT_EQ(o.keys_per_batch, 1);
  EXPECT_FALSE(o.verify);
  EXPECT_FALSE(o.load);
  EXPECT_EQ(o.duration, 5);
}

TEST(Options, EveryOptionBothSpellings) {
  Options o;
  std::string err;
  ASSERT_TRUE(Parse({"--host", "localhost", "--port=7001", "--clients", "8", "--threads=2",
                     "--pipeline", "16", "--command", "MGET", "--keys-per-batch", "100",
                     "--value-size", "4k", "--key-count=5000", "--hit-ratio", "0.5",
                     "--duration", "2.5", "--load", "--seed", "42", "--verify",
                     "--key-prefix", "b:", "--keys-owned-by", "127.0.0.1:7002",
                     "--load-pipeline", "4", "--load-batch-bytes", "1m", "--timeout", "3",
                     "--quiet"},
                    &o, &err))
      << err;
  EXPECT_EQ(o.host, "localhost");
  EXPECT_EQ(o.port, 7001);
  EXPECT_EQ(o.clients, 8);
  EXPECT_EQ(o.threads, 2);
  EXPECT_EQ(o.pipeline, 16);
  EXPECT_EQ(o.command, Command::kMget);
  EXPECT_EQ(o.keys_per_batch, 100);
  EXPECT_EQ(o.value_size, 4096);
  EXPECT_EQ(o.key_count, 5000);
  EXPECT_DOUBLE_EQ(o.hit_ratio, 0.5);
  EXPECT_DOUBLE_EQ(o.duration, 2.5);
  EXPECT_TRUE(o.load);
  EXPECT_EQ(o.seed, 42u);
  EXPECT_TRUE(o.verify);
  EXPECT_EQ(o.key_prefix, "b:");
  EXPECT_EQ(o.keys_owned_by, "127.0.0.1:7002");
  EXPECT_EQ(o.load_pipeline, 4);
  EXPECT_EQ(o.load_batch_bytes, 1 << 20);
  EXPECT_DOUBLE_EQ(o.timeout, 3);
  EXPECT_TRUE(o.quiet);
}

TEST(Options, Sizes) {
  Options o;
  std::string err;
  ASSERT_TRUE(Parse({"--value-size", "1mib"}, &o, &err)) << err;
  EXPECT_EQ(o.value_size, 1 << 20);
  ASSERT_TRUE(Parse({"--value-size", "100"}, &o, &err)) << err;
  EXPECT_EQ(o.value_size, 100);
  ASSERT_TRUE(Parse({"--value-size", "2KB"}, &o, &err)) << err;
  EXPECT_EQ(o.value_size, 2048);
  EXPECT_FALSE(Parse({"--value-size", "4x"}, &o, &err));
  EXPECT_FALSE(Parse({"--value-size", "0"}, &o, &err));
  EXPECT_FALSE(Parse({"--value-size", "k"}, &o, &err));
}

TEST(Options, Requests) {
  Options o;
  std::string err;
  ASSERT_TRUE(Parse({"--requests", "1000"}, &o, &err)) << err;
  EXPECT_EQ(o.requests, 1000);
  EXPECT_EQ(o.duration, 0);
  EXPECT_FALSE(Parse({"--requests", "10", "--duration", "1"}, &o, &err));
  EXPECT_NE(err.find("not both"), std::string::npos);
}

TEST(Options, LoadOnly) {
  Options o;
  std::string err;
  ASSERT_TRUE(Parse({"--load", "--duration", "0", "--command", "mset"}, &o, &err)) << err;
  EXPECT_TRUE(o.load);
  EXPECT_EQ(o.duration, 0);
  EXPECT_FALSE(Parse({"--duration", "0"}, &o, &err));
  EXPECT_NE(err.find("nothing to do"), std::string::npos);
}

TEST(Options, Rejects) {
  const std::vector<std::vector<std::string>> bad = {
      {"--port", "0"},
      {"--port", "65536"},
      {"--port", "12a"},
      {"--clients", "0"},
      {"--pipeline", "-1"},
      {"--command", "hgetall"},
      {"--hit-ratio", "1.5"},
      {"--hit-ratio", "-0.1"},
      {"--hit-ratio", "nan"},
      {"--duration", "-1"},
      {"--keys-owned-by", "7002"},
      {"--keys-owned-by", "host:0"},
      {"--bogus", "1"},
      {"--port"},
      {"--verify=yes"},
      {"positional"},
      {"--command", "get", "--keys-per-batch", "10"},
      {"--command", "set", "--keys-per-batch", "2"},
      {"--clients", "2", "--threads", "3"},
      {"--timeout", "0"},
  };
  for (const auto& args : bad) {
    Options o;
    o.port = 1234;
    std::string err;
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_FALSE(Parse(args, &o, &err)) << joined;
    EXPECT_FALSE(err.empty()) << joined;
    EXPECT_EQ(o.port, 1234) << "output touched on error: " << joined;
  }
}

TEST(Options, Help) {
  Options o;
  std::string err = "x";
  EXPECT_FALSE(Parse({"--help"}, &o, &err));
  EXPECT_TRUE(err.empty());
  EXPECT_NE(Usage().find("--keys-per-batch"), std::string::npos);
}

TEST(Options, CommandNames) {
  for (const char* name : {"get", "set", "mget", "mset", "mexists", "exists", "ping"}) {
    Command c;
    ASSERT_TRUE(ParseCommand(name, &c)) << name;
    EXPECT_STREQ(CommandName(c), name);
  }
  EXPECT_TRUE(IsMultiKey(Command::kExists));
  EXPECT_FALSE(IsMultiKey(Command::kGet));
  EXPECT_TRUE(IsWrite(Command::kMset));
  EXPECT_FALSE(IsWrite(Command::kMexists));
}

// -------------------------------------------------------------- histogram

TEST(Histogram, BucketsCoverValuesWithSmallError) {
  for (uint64_t v : {0ULL, 1ULL, 63ULL, 64ULL, 65ULL, 127ULL, 128ULL, 1000ULL, 123456ULL,
                     987654321ULL, (1ULL << 40) - 1}) {
    const int b = Histogram::BucketOf(v);
    EXPECT_LE(Histogram::BucketLow(b), v) << v;
    EXPECT_GE(Histogram::BucketHigh(b), v) << v;
    EXPECT_LE(Histogram::BucketHigh(b) - Histogram::BucketLow(b), v / 64 + 1) << v;
  }
  // Buckets are contiguous.
  for (int b = 0; b + 1 < Histogram::kBuckets; ++b)
    ASSERT_EQ(Histogram::BucketHigh(b) + 1, Histogram::BucketLow(b + 1)) << b;
  EXPECT_EQ(Histogram::BucketOf(UINT64_MAX), Histogram::kBuckets - 1);
}

TEST(Histogram, Quantiles) {
  Histogram h;
  EXPECT_EQ(h.Quantile(0.5), 0u);
  for (uint64_t v = 1; v <= 100000; ++v) h.Record(v * 1000);  // 1 us .. 100 ms
  EXPECT_EQ(h.count(), 100000u);
  EXPECT_EQ(h.min(), 1000u);
  EXPECT_EQ(h.max(), 100000000u);
  EXPECT_NEAR(h.mean(), 50000500.0, 1);
  auto near = [](double got, double want) { return std::fabs(got - want) / want < 0.02; };
  EXPECT_TRUE(near(h.Quantile(0.5), 50e6)) << h.Quantile(0.5);
  EXPECT_TRUE(near(h.Quantile(0.99), 99e6)) << h.Quantile(0.99);
  EXPECT_TRUE(near(h.Quantile(0.999), 99.9e6)) << h.Quantile(0.999);
  EXPECT_EQ(h.Quantile(1.0), 100000000u);
  EXPECT_EQ(h.Quantile(0.0), 1000u);  // the minimum, exactly
}

TEST(Histogram, SingleValueAndMerge) {
  Histogram a, b;
  a.Record(777777);
  EXPECT_EQ(a.Quantile(0.5), 777777u);  // clamped to [min, max]
  EXPECT_EQ(a.Quantile(0.99), 777777u);
  for (int i = 0; i < 99; ++i) b.Record(1000);
  a.Merge(b);
  EXPECT_EQ(a.count(), 100u);
  EXPECT_EQ(a.min(), 1000u);
  EXPECT_EQ(a.max(), 777777u);
  // The upper bound of 1000's bucket (within 1/64 of it), never below it.
  EXPECT_GE(a.Quantile(0.5), 1000u);
  EXPECT_LE(a.Quantile(0.5), 1000u + 1000u / 64);
  EXPECT_EQ(a.Quantile(0.99), a.Quantile(0.5));
  EXPECT_EQ(a.Quantile(1.0), 777777u);
}

// --------------------------------------------------------------- workload

// Parses RESP text into a reply tree (hiredis's own parser).
struct Reply {
  explicit Reply(const std::string& resp) {
    redisReader* r = redisReaderCreate();
    redisReaderFeed(r, resp.data(), resp.size());
    void* out = nullptr;
    EXPECT_EQ(redisReaderGetReply(r, &out), REDIS_OK);
    reply = static_cast<redisReply*>(out);
    void* more = nullptr;
    EXPECT_EQ(redisReaderGetReply(r, &more), REDIS_OK);
    EXPECT_EQ(more, nullptr) << "trailing bytes in test input";
    redisReaderFree(r);
  }
  ~Reply() {
    if (reply) freeReplyObject(reply);
  }
  redisReply* reply = nullptr;
};

std::string Bulk(const std::string& s) { return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n"; }

TEST(Keyspace, KeyNames) {
  Keyspace ks("key:", 100, 8, 1);
  EXPECT_EQ(ks.Key(42), "key:000000000042");
  EXPECT_EQ(ks.key_len(), 16u);
  EXPECT_EQ(ks.PresentId(5), 5u);
  EXPECT_EQ(ks.AbsentId(5), 105u);
  EXPECT_TRUE(ks.has_absent());
  ks.SetIdMap({7, 9, 11}, {});
  EXPECT_EQ(ks.PresentId(1), 9u);
  EXPECT_FALSE(ks.has_absent());
  ks.SetIdMap({7, 9, 11}, {2, 4});
  EXPECT_EQ(ks.AbsentId(3), 4u);
}

TEST(Keyspace, ValuesDeriveFromKeyAndSeedOnly) {
  for (int size : {1, 3, 15, 16, 17, 100, 4096, 1 << 20}) {
    Keyspace a("key:", 10, size, 7), b("key:", 999, size, 7), other_seed("key:", 10, size, 8);
    const std::string v = a.Value("key:000000000001");
    ASSERT_EQ(v.size(), static_cast<size_t>(size));
    EXPECT_EQ(v, b.Value("key:000000000001")) << "another run with the same seed agrees";
    EXPECT_TRUE(a.ValueMatches("key:000000000001", v.data(), v.size()));
    EXPECT_TRUE(b.ValueMatches("key:000000000001", v.data(), v.size()));
    if (size >= 4) {
      EXPECT_NE(v, a.Value("key:000000000002")) << size;
      EXPECT_NE(v, other_seed.Value("key:000000000001")) << size;
      EXPECT_FALSE(a.ValueMatches("key:000000000002", v.data(), v.size()));
      EXPECT_FALSE(other_seed.ValueMatches("key:000000000001", v.data(), v.size()));
    }
    // Truncated, extended, or one byte changed anywhere: no match.
    EXPECT_FALSE(a.ValueMatches("key:000000000001", v.data(), v.size() - 1));
    const std::string longer = v + "x";
    EXPECT_FALSE(a.ValueMatches("key:000000000001", longer.data(), longer.size()));
    for (size_t at : {size_t{0}, v.size() / 2, v.size() - 1}) {
      std::string w = v;
      w[at] ^= 1;
      EXPECT_FALSE(a.ValueMatches("key:000000000001", w.data(), w.size())) << size << "@" << at;
    }
  }
}

TEST(Keyspace, ValuesOfManyKeysAreDistinct) {
  Keyspace ks("key:", 1000, 64, 3);
  std::set<std::string> seen;
  for (uint64_t id = 0; id < 1000; ++id) seen.insert(ks.Value(ks.Key(id)));
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(PickBatch, ExactHitCountInMultiKeyReads) {
  Keyspace ks("key:", 1000, 8, 1);
  Rng rng(5);
  Batch b;
  for (int round = 0; round < 50; ++round) {
    PickBatch(Command::kMexists, 100, 0.5, ks, &rng, &b);
    ASSERT_EQ(b.ids.size(), 100u);
    EXPECT_EQ(b.present_count(), 50);
    for (size_t i = 0; i < b.ids.size(); ++i) {
      if (b.present[i]) EXPECT_LT(b.ids[i], 1000u);
      else EXPECT_GE(b.ids[i], 1000u);
    }
  }
  PickBatch(Command::kMget, 100, 1.0, ks, &rng, &b);
  EXPECT_EQ(b.present_count(), 100);
  PickBatch(Command::kMget, 100, 0.0, ks, &rng, &b);
  EXPECT_EQ(b.present_count(), 0);
  PickBatch(Command::kMget, 3, 0.5, ks, &rng, &b);  // round(1.5) = 2
  EXPECT_EQ(b.present_count(), 2);
}

TEST(PickBatch, PositionsOfHitsVary) {
  Keyspace ks("key:", 1000, 8, 1);
  Rng rng(9);
  Batch b;
  std::vector<int> hits_at(10, 0);
  for (int round = 0; round < 1000; ++round) {
    PickBatch(Command::kMexists, 10, 0.5, ks, &rng, &b);
    for (int i = 0; i < 10; ++i) hits_at[static_cast<size_t>(i)] += b.present[static_cast<size_t>(i)];
  }
  for (int h : hits_at) {  // ~500 each
    EXPECT_GT(h, 350);
    EXPECT_LT(h, 650);
  }
}

TEST(PickBatch, WritesOnlyTouchPresentKeys) {
  Keyspace ks("key:", 50, 8, 1);
  Rng rng(1);
  Batch b;
  for (int round = 0; round < 100; ++round) {
    PickBatch(Command::kMset, 10, 0.0, ks, &rng, &b);  // hit ratio is irrelevant to writes
    ASSERT_EQ(b.ids.size(), 10u);
    for (auto id : b.ids) EXPECT_LT(id, 50u);
    EXPECT_EQ(b.present_count(), 10);
  }
  PickBatch(Command::kPing, 1, 1.0, ks, &rng, &b);
  EXPECT_TRUE(b.ids.empty());
}

TEST(PickBatch, SingleKeyHitRatio) {
  Keyspace ks("key:", 1000, 8, 1);
  Rng rng(3);
  Batch b;
  int hits = 0;
  for (int i = 0; i < 10000; ++i) {
    PickBatch(Command::kGet, 1, 0.3, ks, &rng, &b);
    hits += b.present_count();
  }
  EXPECT_GT(hits, 2700);
  EXPECT_LT(hits, 3300);
}

TEST(PickBatch, OwnedKeysOnly) {
  Keyspace ks("key:", 3, 8, 1);
  ks.SetIdMap({10, 20, 30}, {11, 21, 31});
  Rng rng(3);
  Batch b;
  PickBatch(Command::kMget, 6, 0.5, ks, &rng, &b);
  for (size_t i = 0; i < b.ids.size(); ++i) {
    if (b.present[i]) EXPECT_EQ(b.ids[i] % 10, 0u);
    else EXPECT_EQ(b.ids[i] % 10, 1u);
  }
  ks.SetIdMap({10, 20, 30}, {});  // no absent keys resolved: every key present
  PickBatch(Command::kMget, 6, 0.5, ks, &rng, &b);
  EXPECT_EQ(b.present_count(), 6);
}

TEST(Encoding, GetAndMexists) {
  Keyspace ks("key:", 10, 8, 1);
  Batch b{{3}, {1}};
  std::string out;
  AppendCommand(Command::kGet, b, ks, &out);
  EXPECT_EQ(out, "*2\r\n$3\r\nGET\r\n$16\r\nkey:000000000003\r\n");
  out.clear();
  Batch m{{1, 12}, {1, 0}};
  AppendCommand(Command::kMexists, m, ks, &out);
  EXPECT_EQ(out, "*3\r\n$7\r\nMEXISTS\r\n$16\r\nkey:000000000001\r\n$16\r\nkey:000000000012\r\n");
}

TEST(Encoding, MsetCarriesEachKeysValue) {
  Keyspace ks("key:", 10, 4096, 1);
  Batch b{{1, 2, 3}, {1, 1, 1}};
  std::string out = "prefix-that-forces-growth";
  const size_t skip = out.size();
  AppendCommand(Command::kMset, b, ks, &out);
  Reply r(out.substr(skip));  // a command is a RESP array of bulk strings
  ASSERT_NE(r.reply, nullptr);
  ASSERT_EQ(r.reply->type, REDIS_REPLY_ARRAY);
  ASSERT_EQ(r.reply->elements, 7u);
  EXPECT_EQ(std::string(r.reply->element[0]->str), "MSET");
  for (int i = 0; i < 3; ++i) {
    const std::string key(r.reply->element[1 + 2 * i]->str, r.reply->element[1 + 2 * i]->len);
    EXPECT_EQ(key, ks.Key(static_cast<uint64_t>(i + 1)));
    const redisReply* v = r.reply->element[2 + 2 * i];
    EXPECT_EQ(std::string(v->str, v->len), ks.Value(key));
  }
}

TEST(Encoding, LoadCommandCoversARange) {
  Keyspace ks("p:", 100, 10, 1);
  std::string out;
  AppendLoadCommand(40, 5, ks, &out);
  Reply r(out);
  ASSERT_EQ(r.reply->elements, 11u);
  EXPECT_EQ(std::string(r.reply->element[1]->str), "p:000000000040");
  EXPECT_EQ(std::string(r.reply->element[9]->str), "p:000000000044");
}

class CheckTest : public ::testing::Test {
 protected:
  Keyspace ks{"key:", 10, 32, 1};
  Batch b{{1, 15, 2}, {1, 0, 1}};  // key 15 was never written
  std::string V(uint64_t id) { return ks.Value(ks.Key(id)); }
};

TEST_F(CheckTest, MgetExact) {
  Reply ok("*3\r\n" + Bulk(V(1)) + "$-1\r\n" + Bulk(V(2)));
  EXPECT_EQ(CheckReply(Command::kMget, b, ks, ok.reply), "");
}

TEST_F(CheckTest, MgetWrongValueOrder) {
  Reply swapped("*3\r\n" + Bulk(V(2)) + "$-1\r\n" + Bulk(V(1)));
  std::string err = CheckReply(Command::kMget, b, ks, swapped.reply);
  EXPECT_NE(err.find("element 0"), std::string::npos) << err;
  EXPECT_NE(err.find("wrong value"), std::string::npos) << err;
}

TEST_F(CheckTest, MgetMissingAndPhantomValues) {
  Reply missing("*3\r\n" + Bulk(V(1)) + "$-1\r\n$-1\r\n");
  EXPECT_NE(CheckReply(Command::kMget, b, ks, missing.reply).find("element 2"), std::string::npos);
  Reply phantom("*3\r\n" + Bulk(V(1)) + Bulk(V(15)) + Bulk(V(2)));
  EXPECT_NE(CheckReply(Command::kMget, b, ks, phantom.reply).find("never written"),
            std::string::npos);
  Reply short_array("*2\r\n" + Bulk(V(1)) + "$-1\r\n");
  EXPECT_NE(CheckReply(Command::kMget, b, ks, short_array.reply).find("array of 3"),
            std::string::npos);
  std::string truncated = V(2).substr(0, 31);
  Reply trunc("*3\r\n" + Bulk(V(1)) + "$-1\r\n" + Bulk(truncated));
  EXPECT_NE(CheckReply(Command::kMget, b, ks, trunc.reply), "");
}

TEST_F(CheckTest, Mexists) {
  Reply ok("*3\r\n:1\r\n:0\r\n:1\r\n");
  EXPECT_EQ(CheckReply(Command::kMexists, b, ks, ok.reply), "");
  Reply flipped("*3\r\n:1\r\n:1\r\n:1\r\n");
  EXPECT_NE(CheckReply(Command::kMexists, b, ks, flipped.reply).find("element 1"),
            std::string::npos);
  Reply count(":2\r\n");  // EXISTS's answer is not MEXISTS's
  EXPECT_NE(CheckReply(Command::kMexists, b, ks, count.reply), "");
  Reply strings("*3\r\n$1\r\n1\r\n$1\r\n0\r\n$1\r\n1\r\n");
  EXPECT_NE(CheckReply(Command::kMexists, b, ks, strings.reply), "");
}

TEST_F(CheckTest, Exists) {
  Reply ok(":2\r\n");
  EXPECT_EQ(CheckReply(Command::kExists, b, ks, ok.reply), "");
  Reply wrong(":3\r\n");
  EXPECT_NE(CheckReply(Command::kExists, b, ks, wrong.reply), "");
}

TEST_F(CheckTest, GetSetPing) {
  Batch one{{4}, {1}}, gone{{14}, {0}};
  Reply v(Bulk(V(4)));
  EXPECT_EQ(CheckReply(Command::kGet, one, ks, v.reply), "");
  Reply nil("$-1\r\n");
  EXPECT_NE(CheckReply(Command::kGet, one, ks, nil.reply), "");
  EXPECT_EQ(CheckReply(Command::kGet, gone, ks, nil.reply), "");
  Reply ok("+OK\r\n");
  EXPECT_EQ(CheckReply(Command::kSet, one, ks, ok.reply), "");
  EXPECT_EQ(CheckReply(Command::kMset, b, ks, ok.reply), "");
  Reply queued("+QUEUED\r\n");
  EXPECT_NE(CheckReply(Command::kMset, b, ks, queued.reply), "");
  Reply pong("+PONG\r\n");
  EXPECT_EQ(CheckReply(Command::kPing, Batch{}, ks, pong.reply), "");
}

TEST_F(CheckTest, ErrorReplies) {
  Reply err("-OOM command not allowed\r\n");
  std::string why = CheckReply(Command::kMset, b, ks, err.reply);
  EXPECT_NE(why.find("OOM"), std::string::npos) << why;
  EXPECT_NE(CheckReply(Command::kMget, b, ks, nullptr), "");
}

// ----------------------------------------------------------------- result

TEST(Result, JsonLine) {
  Result r;
  r.options.command = Command::kMget;
  r.options.keys_per_batch = 100;
  r.options.value_size = 4096;
  r.seconds = 2;
  r.commands = 1000;
  r.keys = 100000;
  r.value_bytes = 100000ULL * 4096;
  for (int i = 1; i <= 1000; ++i) r.latency.Record(static_cast<uint64_t>(i) * 1000);
  r.first_error = "quote \" backslash \\ newline \n";
  const std::string j = FormatJson(r);
  EXPECT_EQ(j.find('\n'), std::string::npos) << "one line";
  EXPECT_EQ(j.front(), '{');
  EXPECT_EQ(j.back(), '}');
  EXPECT_NE(j.find("\"command\":\"mget\""), std::string::npos) << j;
  EXPECT_DOUBLE_EQ(*JsonNumber(j, "ops_per_sec"), 500);
  EXPECT_DOUBLE_EQ(*JsonNumber(j, "keys_per_sec"), 50000);
  EXPECT_NEAR(*JsonNumber(j, "gbit_per_sec"), 100000.0 * 4096 * 8 / 2 / 1e9, 1e-3);
  EXPECT_NEAR(*JsonNumber(j, "p50_ms"), 0.5, 0.01);
  EXPECT_NEAR(*JsonNumber(j, "p99_ms"), 0.99, 0.02);
  EXPECT_EQ(*JsonNumber(j, "errors"), 0);
  EXPECT_NE(j.find("quote \\\" backslash \\\\ newline \\n"), std::string::npos) << j;
  EXPECT_TRUE(r.ok());
  r.verify_errors = 1;
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(*JsonNumber(FormatJson(r), "errors"), 1);
  EXPECT_NE(FormatHuman(r).find("ERRORS"), std::string::npos);
}

// ----------------------------------------------------------------- report

TEST(Report, RecordRoundTrip) {
  Record r{"4", "kvpool-io2", 3, 12345.5, "ops/s", 1234550, 0.25, 1.5, std::nan("")};
  const std::string line = FormatRecord(r);
  Record back;
  ASSERT_TRUE(ParseRecord(line, &back)) << line;
  EXPECT_EQ(back.workload, "4");
  EXPECT_EQ(back.side, "kvpool-io2");
  EXPECT_EQ(back.round, 3);
  EXPECT_DOUBLE_EQ(back.value, 12345.5);
  EXPECT_EQ(back.unit, "ops/s");
  EXPECT_DOUBLE_EQ(back.p99_ms, 1.5);
  EXPECT_TRUE(std::isnan(back.rss_kb));
  EXPECT_TRUE(std::isnan(back.server_us_op));
  r.server_us_op = 190.5;
  r.client_us_op = 12;
  ASSERT_TRUE(ParseRecord(FormatRecord(r), &back));
  EXPECT_DOUBLE_EQ(back.server_us_op, 190.5);
  EXPECT_DOUBLE_EQ(back.client_us_op, 12);
  // Records without the CPU fields (9 fields) still parse.
  ASSERT_TRUE(ParseRecord("4\tkv\t1\t2\tops/s\t-\t1\t2\t3", &back));
  EXPECT_TRUE(std::isnan(back.server_us_op));
  EXPECT_FALSE(ParseRecord("4\tkv\t1\t2\tops/s\t-\t1\t2\t3\t4", &back));
  EXPECT_FALSE(ParseRecord("4\tkv\t1\t2", &back));
  EXPECT_FALSE(ParseRecord("4\tkv\tx\t1\tops/s\t1\t1\t1\t1", &back));
}

TEST(Report, RedisBenchmarkCsv) {
  const std::string csv =
      "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\","
      "\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n"
      "\"SET\",\"233644.86\",\"2.321\",\"0.296\",\"1.703\",\"5.839\",\"7.159\",\"10.047\"\n"
      "\"GET\",\"222469.41\",\"2.540\",\"0.296\",\"1.815\",\"5.791\",\"7.143\",\"10.735\"\n"
      "\"MSET (10 keys)\",\"56338.03\",\"13.686\",\"0.800\",\"12.743\",\"23.679\",\"36.095\","
      "\"55.423\"\r\n";
  std::vector<RbResult> rs;
  std::string err;
  ASSERT_TRUE(ParseRedisBenchmarkCsv(csv, &rs, &err)) << err;
  ASSERT_EQ(rs.size(), 3u);
  EXPECT_EQ(rs[0].test, "SET");
  EXPECT_DOUBLE_EQ(rs[0].rps, 233644.86);
  EXPECT_DOUBLE_EQ(rs[1].p50_ms, 1.815);
  EXPECT_DOUBLE_EQ(rs[1].p99_ms, 7.143);
  EXPECT_EQ(rs[2].test, "MSET (10 keys)");
  EXPECT_DOUBLE_EQ(rs[2].p99_ms, 36.095);
  EXPECT_FALSE(ParseRedisBenchmarkCsv("", &rs, &err));
  EXPECT_FALSE(ParseRedisBenchmarkCsv("Could not connect to Redis at 127.0.0.1:1\n", &rs, &err));
  EXPECT_FALSE(ParseRedisBenchmarkCsv(
      "\"test\",\"rps\"\n\"SET\",\"fast\"\n", &rs, &err));
}

TEST(Report, Iperf) {
  const std::string json = R"({"start":{"x":1},"end":{"streams":[{"sender":{"bits_per_second":9e10}}],
    "sum_sent":{"bytes":1,"bits_per_second":41000000000.5},
    "sum_received":{"seconds":5.0,"bytes":2,"bits_per_second": 40000000000}}})";
  double g = 0;
  std::string err;
  ASSERT_TRUE(ParseIperfGbps(json, &g, &err)) << err;
  EXPECT_DOUBLE_EQ(g, 40);
  EXPECT_FALSE(ParseIperfGbps(R"({"start":{},"error":"unable to connect"})", &g, &err));
  EXPECT_FALSE(ParseIperfGbps("{}", &g, &err));
}

TEST(Report, JsonNumber) {
  const std::string j = R"({"a":1,"name":"x","b": -2.5e3,"c":{"a":7}})";
  EXPECT_EQ(*JsonNumber(j, "a"), 1);
  EXPECT_EQ(*JsonNumber(j, "b"), -2500);
  EXPECT_EQ(*JsonNumber(j, "a", "\"c\""), 7);
  EXPECT_FALSE(JsonNumber(j, "name").has_value());
  EXPECT_FALSE(JsonNumber(j, "zzz").has_value());
}

TEST(Report, LoadgenRecord) {
  Result res;
  res.seconds = 1;
  res.commands = 10;
  res.keys = 1000;
  res.value_bytes = 125000000;
  res.latency.Record(2000000);
  Record r;
  std::string err;
  ASSERT_TRUE(RecordFromLoadgen(FormatJson(res), "ops", &r, &err)) << err;
  EXPECT_DOUBLE_EQ(r.value, 10);
  EXPECT_EQ(r.unit, "ops/s");
  EXPECT_DOUBLE_EQ(r.keys_per_s, 1000);
  EXPECT_NEAR(r.p50_ms, 2, 0.05);
  ASSERT_TRUE(RecordFromLoadgen(FormatJson(res), "gbit", &r, &err)) << err;
  EXPECT_DOUBLE_EQ(r.value, 1);
  EXPECT_EQ(r.unit, "Gbit/s");
  EXPECT_FALSE(RecordFromLoadgen(FormatJson(res), "furlongs", &r, &err));
  res.io_errors = 1;  // a run with errors gives no figure
  EXPECT_FALSE(RecordFromLoadgen(FormatJson(res), "ops", &r, &err));
  EXPECT_NE(err.find("errors"), std::string::npos);
  EXPECT_FALSE(RecordFromLoadgen("garbage", "ops", &r, &err));
}

TEST(Report, Median) {
  EXPECT_DOUBLE_EQ(Median({3, 1, 2}), 2);
  EXPECT_DOUBLE_EQ(Median({4, 1, 3, 2}), 2.5);
  EXPECT_DOUBLE_EQ(Median({5, std::nan(""), 1}), 3);
  EXPECT_TRUE(std::isnan(Median({})));
  EXPECT_TRUE(std::isnan(Median({std::nan("")})));
}

TEST(Report, TableMediansRatiosAndTargets) {
  const std::string text =
      "# a comment\n"
      "#workload\t1-get\tGET P16\t>=\t1.3\tyes\n"
      "#workload\t7\tmemory 1M keys\t<=\t1.0\tno\n"
      "#workload\t9\ttransport\t>=\t0.5\tno\n"
      "#workload\tx\tinfo only\t-\t0\tno\n"
      "#row\t1-get\tkvpool\tredis\n"
      "#row\t7\tkvpool\tredis\n"
      "#row\t9\tkvpool\tiperf3\n"
      "#row\tx\tkvpool\tredis\n"
      "1-get\tredis\t1\t100000\tops/s\t-\t1.0\t2.0\t10240\n"
      "1-get\tredis\t2\t110000\tops/s\t-\t1.2\t2.2\t10240\n"
      "1-get\tredis\t3\t90000\tops/s\t-\t0.8\t1.8\t10240\n"
      "1-get\tkvpool\t1\t150000\tops/s\t-\t0.5\t3.0\t20480\n"
      "1-get\tkvpool\t2\t140000\tops/s\t-\t0.4\t2.5\t20480\n"
      "1-get\tkvpool\t3\t9000000\tops/s\t-\t0.3\t2.4\t20480\t1.25\t0.9\n"
      "7\tredis\t1\t180\tMiB\t-\t-\t-\t184320\n"
      "7\tkvpool\t1\t150\tMiB\t-\t-\t-\t153600\n"
      "9\tiperf3\t1\t40\tGbit/s\t-\t-\t-\t-\n"
      "9\tkvpool\t1\t10\tGbit/s\t-\t-\t-\t-\n";
  ResultsFile f;
  std::string err;
  ASSERT_TRUE(ParseResultsFile(text, &f, &err)) << err;
  auto rows = BuildTable(f);
  ASSERT_EQ(rows.size(), 4u);
  // Medians: kvpool 150000 (the outlier is ignored), redis 100000.
  EXPECT_DOUBLE_EQ(rows[0].kv, 150000);
  EXPECT_DOUBLE_EQ(rows[0].base, 100000);
  EXPECT_DOUBLE_EQ(rows[0].ratio, 1.5);
  EXPECT_DOUBLE_EQ(rows[0].kv_p99, 2.5);
  EXPECT_DOUBLE_EQ(rows[0].base_p99, 2.0);
  EXPECT_EQ(rows[0].kv_rounds, 3);
  EXPECT_EQ(rows[0].met.rfind("no: p99", 0), 0u) << rows[0].met;  // throughput ok, tail not
  EXPECT_EQ(rows[1].met, "yes") << "memory: lower is better";
  EXPECT_NEAR(rows[1].ratio, 150.0 / 180, 1e-9);
  EXPECT_EQ(rows[2].met, "no (50% of target)");
  EXPECT_EQ(rows[3].met, "n/a");
  EXPECT_TRUE(std::isnan(rows[3].kv));
  const std::string md = FormatMarkdown(rows);
  EXPECT_NE(md.find("| 1-get | GET P16 | kvpool | 150.0k | redis | 100.0k | ops/s | 1.50 | >= 1.30x |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| 20 / 10 | 1.25 / - | 0.90 / - | 3/3 |"), std::string::npos) << md;
  EXPECT_DOUBLE_EQ(rows[0].kv_cpu, 1.25);  // the only round that measured it
  EXPECT_NE(md.find("| 10.00 | iperf3 | 40.00 | Gbit/s | 0.25 |"), std::string::npos) << md;
}

TEST(Report, ResultsFileErrors) {
  ResultsFile f;
  std::string err;
  EXPECT_FALSE(ParseResultsFile("#workload\t1\tx\t>>\t1\tno\n", &f, &err));
  EXPECT_FALSE(ParseResultsFile("#row\t1\tkv\n", &f, &err));
  EXPECT_FALSE(ParseResultsFile("1\tkv\t1\n", &f, &err));
  EXPECT_NE(err.find("line 1"), std::string::npos);
}

TEST(Report, FormatValue) {
  EXPECT_EQ(FormatValue(1234567, "ops/s"), "1.23M");
  EXPECT_EQ(FormatValue(98765, "ops/s"), "98.8k");
  EXPECT_EQ(FormatValue(999, "keys/s"), "999");
  EXPECT_EQ(FormatValue(12.345, "Gbit/s"), "12.35");
  EXPECT_EQ(FormatValue(std::nan(""), "MiB"), "-");
}

}  // namespace
}  // namespace kvbench
