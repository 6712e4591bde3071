// Keyspace family: exact RESP bytes as redis-server 7.0 sends them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "server/command_table.h"
#include "server/testing/command_harness.h"

namespace kvpool {
namespace {

using kvpool::testing::CommandHarness;

constexpr int64_t kNow = 1'700'000'000'000;  // a fixed clock, ms

const std::string kOk = "+OK\r\n";
const std::string kNil = "$-1\r\n";
const std::string kSyntaxErr = "-ERR syntax error\r\n";
const std::string kNotIntErr = "-ERR value is not an integer or out of range\r\n";
const std::string kDbRangeErr = "-ERR DB index is out of range\r\n";
const std::string kIntRangeErr =
    "-ERR value is out of range, value must between -2147483648 and 2147483647\r\n";

std::string Bulk(const std::string& s) {
  return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}
std::string Int(int64_t v) { return ":" + std::to_string(v) + "\r\n"; }
std::string Err(const std::string& msg) { return "-" + msg + "\r\n"; }

// Reads "$len\r\nbytes\r\n" at *pos.
std::string ReadBulk(const std::string& r, size_t* pos) {
  EXPECT_EQ(r[*pos], '$');
  size_t crlf = r.find("\r\n", *pos);
  size_t len = std::stoul(r.substr(*pos + 1, crlf - *pos - 1));
  std::string out = r.substr(crlf + 2, len);
  *pos = crlf + 2 + len + 2;
  return out;
}

// Reads "*n\r\n" followed by n bulks at *pos.
std::vector<std::string> ReadBulkArray(const std::string& r, size_t* pos) {
  EXPECT_EQ(r[*pos], '*') << r;
  size_t crlf = r.find("\r\n", *pos);
  size_t n = std::stoul(r.substr(*pos + 1, crlf - *pos - 1));
  *pos = crlf + 2;
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) out.push_back(ReadBulk(r, pos));
  return out;
}

std::vector<std::string> Sorted(const std::string& reply) {
  size_t pos = 0;
  std::vector<std::string> v = ReadBulkArray(reply, &pos);
  EXPECT_EQ(pos, reply.size());
  std::sort(v.begin(), v.end());
  return v;
}

struct ScanPage {
  std::string cursor;
  std::vector<std::string> keys;
};

ScanPage ParseScan(const std::string& reply) {
  ScanPage page;
  EXPECT_EQ(reply.substr(0, 4), "*2\r\n") << reply;
  size_t pos = 4;
  page.cursor = ReadBulk(reply, &pos);
  page.keys = ReadBulkArray(reply, &pos);
  EXPECT_EQ(pos, reply.size());
  return page;
}

class KeyspaceFamilyTest : public ::testing::Test {
 protected:
  void SetUp() override { h.SetNow(kNow); }
  CommandHarness h;
};

// ---------------- DEL / UNLINK / EXISTS / TOUCH / TYPE ----------------

TEST_F(KeyspaceFamilyTest, Del) {
  h.Run({"MSET", "a", "1", "b", "2", "c", "3"});
  EXPECT_EQ(h.Run({"DEL", "a", "x", "a", "b"}), Int(2));  // a counted once
  EXPECT_EQ(h.Run({"DEL", "a"}), Int(0));
  EXPECT_EQ(h.Run({"UNLINK", "c", "c"}), Int(1));
  EXPECT_EQ(h.Run({"DBSIZE"}), Int(0));
  EXPECT_EQ(h.Run({"DEL"}), Err("ERR wrong number of arguments for 'del' command"));
}

TEST_F(KeyspaceFamilyTest, DelExpiredCountsZero) {
  h.Run({"SET", "a", "1", "PX", "10"});
  h.SetNow(kNow + 10);
  EXPECT_EQ(h.Run({"DEL", "a"}), Int(0));
}

TEST_F(KeyspaceFamilyTest, ExistsCountsDuplicates) {
  h.Run({"SET", "a", "1"});
  h.Run({"SET", "e", "1", "PX", "10"});
  EXPECT_EQ(h.Run({"EXISTS", "a"}), Int(1));
  EXPECT_EQ(h.Run({"EXISTS", "a", "a", "b", "a"}), Int(3));
  EXPECT_EQ(h.Run({"EXISTS", "b"}), Int(0));
  h.SetNow(kNow + 10);
  EXPECT_EQ(h.Run({"EXISTS", "e", "a"}), Int(1));
}

TEST_F(KeyspaceFamilyTest, ExistsCountsLookups) {
  h.Run({"SET", "a", "1"});
  auto& st = h.server().stats();
  uint64_t hits = st.keyspace_hits, misses = st.keyspace_misses;
  h.Run({"EXISTS", "a", "b", "a"});
  EXPECT_EQ(st.keyspace_hits.load(), hits + 2);
  EXPECT_EQ(st.keyspace_misses.load(), misses + 1);
}

TEST_F(KeyspaceFamilyTest, Touch) {
  h.Run({"SET", "a", "1"});
  h.Run({"SET", "b", "1", "EX", "10"});
  EXPECT_EQ(h.Run({"TOUCH", "a", "b", "c", "a"}), Int(3));
  EXPECT_EQ(h.Run({"TTL", "b"}), Int(10));
}

TEST_F(KeyspaceFamilyTest, Type) {
  EXPECT_EQ(h.Run({"TYPE", "k"}), "+none\r\n");
  h.Run({"SET", "k", "v"});
  EXPECT_EQ(h.Run({"TYPE", "k"}), "+string\r\n");
  h.client().resp = 3;
  EXPECT_EQ(h.Run({"TYPE", "nope"}), "+none\r\n");
}

// ---------------- EXPIRE family ----------------

TEST_F(KeyspaceFamilyTest, ExpireBasics) {
  EXPECT_EQ(h.Run({"EXPIRE", "k", "10"}), Int(0));  // no key
  h.Run({"SET", "k", "v"});
  EXPECT_EQ(h.Run({"EXPIRE", "k", "10"}), Int(1));
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(10));
  EXPECT_EQ(h.Run({"PTTL", "k"}), Int(10000));
  EXPECT_EQ(h.Run({"PEXPIRE", "k", "2500"}), Int(1));
  EXPECT_EQ(h.Run({"PTTL", "k"}), Int(2500));
  EXPECT_EQ(h.Run({"EXPIREAT", "k", std::to_string(kNow / 1000 + 60)}), Int(1));
  EXPECT_EQ(h.Run({"EXPIRETIME", "k"}), Int(kNow / 1000 + 60));
  EXPECT_EQ(h.Run({"PEXPIREAT", "k", std::to_string(kNow + 4321)}), Int(1));
  EXPECT_EQ(h.Run({"PEXPIRETIME", "k"}), Int(kNow + 4321));
  EXPECT_EQ(h.Run({"PTTL", "k"}), Int(4321));
  h.SetNow(kNow + 4320);
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("v"));
  h.SetNow(kNow + 4321);
  EXPECT_EQ(h.Run({"GET", "k"}), kNil);
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(-2));
}

TEST_F(KeyspaceFamilyTest, ExpireInThePastDeletes) {
  for (const std::vector<std::string>& cmd :
       std::vector<std::vector<std::string>>{{"EXPIRE", "k", "-1"},
                                             {"EXPIRE", "k", "0"},
                                             {"PEXPIRE", "k", "-100"},
                                             {"EXPIREAT", "k", "0"},
                                             {"EXPIREAT", "k", "1"},
                                             {"PEXPIREAT", "k", "-5"},
                                             {"PEXPIREAT", "k", std::to_string(kNow)},
                                             {"EXPIRE", "k", "-9223372036854775"}}) {
    h.Run({"SET", "k", "v"});
    EXPECT_EQ(h.Run(cmd), Int(1)) << cmd[0] << " " << cmd[2];
    EXPECT_EQ(h.Run({"EXISTS", "k"}), Int(0)) << cmd[0] << " " << cmd[2];
  }
}

TEST_F(KeyspaceFamilyTest, ExpireErrors) {
  h.Run({"SET", "k", "v"});
  EXPECT_EQ(h.Run({"EXPIRE", "k", "abc"}), kNotIntErr);
  EXPECT_EQ(h.Run({"EXPIRE", "k", "1.5"}), kNotIntErr);
  EXPECT_EQ(h.Run({"EXPIRE", "k"}), Err("ERR wrong number of arguments for 'expire' command"));
  EXPECT_EQ(h.Run({"EXPIRE", "k", "9223372036854776"}),
            Err("ERR invalid expire time in 'expire' command"));
  EXPECT_EQ(h.Run({"EXPIRE", "k", "-9223372036854776"}),
            Err("ERR invalid expire time in 'expire' command"));
  EXPECT_EQ(h.Run({"EXPIRE", "k", "9223372036854775"}),
            Err("ERR invalid expire time in 'expire' command"));  // + now overflows
  EXPECT_EQ(h.Run({"PEXPIRE", "k", "9223372036854775807"}),
            Err("ERR invalid expire time in 'pexpire' command"));
  EXPECT_EQ(h.Run({"EXPIREAT", "k", "9223372036854776"}),
            Err("ERR invalid expire time in 'expireat' command"));
  EXPECT_EQ(h.Run({"expireat", "k", "9223372036854775"}), Int(1));  // no base time added
  EXPECT_EQ(h.Run({"PEXPIRETIME", "k"}), Int(9223372036854775000));
  EXPECT_EQ(h.Run({"PEXPIREAT", "k", "9223372036854775807"}), Int(1));
  EXPECT_EQ(h.Run({"TTL", "k"}), Int((9223372036854775807 - kNow + 500) / 1000));
}

TEST_F(KeyspaceFamilyTest, ExpireOptionErrors) {
  h.Run({"SET", "k", "v"});
  const std::string nx_err =
      Err("ERR NX and XX, GT or LT options at the same time are not compatible");
  const std::string gtlt_err = Err("ERR GT and LT options at the same time are not compatible");
  EXPECT_EQ(h.Run({"EXPIRE", "k", "10", "NX", "XX"}), nx_err);
  EXPECT_EQ(h.Run({"EXPIRE", "k", "10", "GT", "NX"}), nx_err);
  EXPECT_EQ(h.Run({"PEXPIRE", "k", "10", "nx", "lt"}), nx_err);
  EXPECT_EQ(h.Run({"EXPIRE", "k", "10", "GT", "LT"}), gtlt_err);
  EXPECT_EQ(h.Run({"EXPIREAT", "k", "10", "lt", "gt"}), gtlt_err);
  EXPECT_EQ(h.Run({"EXPIRE", "k", "10", "FOO"}), Err("ERR Unsupported option FOO"));
  EXPECT_EQ(h.Run({"EXPIRE", "k", "10", "NX", "bar"}), Err("ERR Unsupported option bar"));
  // Options are checked before the number.
  EXPECT_EQ(h.Run({"EXPIRE", "k", "abc", "FOO"}), Err("ERR Unsupported option FOO"));
  EXPECT_EQ(h.Run({"EXPIRE", "k", "abc", "NX", "XX"}), nx_err);
  EXPECT_EQ(h.Run({"EXPIRE", "k", "abc", "NX"}), kNotIntErr);
  // Repeats and compatible pairs are fine.
  EXPECT_EQ(h.Run({"EXPIRE", "k", "10", "NX", "NX"}), Int(1));
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(10));
}

TEST_F(KeyspaceFamilyTest, ExpireConditionsWithoutTtl) {
  h.Run({"SET", "k", "v"});
  EXPECT_EQ(h.Run({"EXPIRE", "k", "100", "XX"}), Int(0));
  EXPECT_EQ(h.Run({"EXPIRE", "k", "100", "GT"}), Int(0));  // no TTL = infinite
  EXPECT_EQ(h.Run({"EXPIRE", "k", "100", "XX", "GT"}), Int(0));
  EXPECT_EQ(h.Run({"EXPIRE", "k", "100", "XX", "LT"}), Int(0));
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(-1));
  EXPECT_EQ(h.Run({"EXPIRE", "k", "100", "LT"}), Int(1));
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(100));
  h.Run({"SET", "k", "v"});
  EXPECT_EQ(h.Run({"EXPIRE", "k", "100", "NX"}), Int(1));
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(100));
  EXPECT_EQ(h.Run({"EXPIRE", "missing", "100", "LT"}), Int(0));
  EXPECT_EQ(h.Run({"EXPIRE", "missing", "100", "NX"}), Int(0));
}

TEST_F(KeyspaceFamilyTest, ExpireConditionsWithTtl) {
  h.Run({"SET", "k", "v", "EX", "100"});
  EXPECT_EQ(h.Run({"EXPIRE", "k", "200", "NX"}), Int(0));
  EXPECT_EQ(h.Run({"EXPIRE", "k", "50", "GT"}), Int(0));
  EXPECT_EQ(h.Run({"EXPIRE", "k", "100", "GT"}), Int(0));  // equal is not greater
  EXPECT_EQ(h.Run({"EXPIRE", "k", "200", "LT"}), Int(0));
  EXPECT_EQ(h.Run({"EXPIRE", "k", "100", "LT"}), Int(0));
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(100));
  EXPECT_EQ(h.Run({"EXPIRE", "k", "200", "GT"}), Int(1));
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(200));
  EXPECT_EQ(h.Run({"EXPIRE", "k", "150", "LT"}), Int(1));
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(150));
  EXPECT_EQ(h.Run({"EXPIRE", "k", "120", "XX", "LT"}), Int(1));
  EXPECT_EQ(h.Run({"EXPIRE", "k", "130", "xx", "gt"}), Int(1));
  EXPECT_EQ(h.Run({"EXPIRE", "k", "90", "XX"}), Int(1));
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(90));
  // LT with a time in the past deletes.
  EXPECT_EQ(h.Run({"EXPIRE", "k", "-1", "LT"}), Int(1));
  EXPECT_EQ(h.Run({"EXISTS", "k"}), Int(0));
}

TEST_F(KeyspaceFamilyTest, TtlRounding) {
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(-2));
  EXPECT_EQ(h.Run({"PTTL", "k"}), Int(-2));
  EXPECT_EQ(h.Run({"EXPIRETIME", "k"}), Int(-2));
  EXPECT_EQ(h.Run({"PEXPIRETIME", "k"}), Int(-2));
  h.Run({"SET", "k", "v"});
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(-1));
  EXPECT_EQ(h.Run({"PTTL", "k"}), Int(-1));
  EXPECT_EQ(h.Run({"EXPIRETIME", "k"}), Int(-1));
  EXPECT_EQ(h.Run({"PEXPIRETIME", "k"}), Int(-1));
  h.Run({"PEXPIRE", "k", "1499"});
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(1));
  h.Run({"PEXPIRE", "k", "1500"});
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(2));
  h.Run({"PEXPIRE", "k", "499"});
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(0));
  EXPECT_EQ(h.Run({"PTTL", "k"}), Int(499));
  h.Run({"PEXPIREAT", "k", std::to_string(kNow + 10'499)});
  EXPECT_EQ(h.Run({"EXPIRETIME", "k"}), Int((kNow + 10'499 + 500) / 1000));
  EXPECT_EQ(h.Run({"PEXPIRETIME", "k"}), Int(kNow + 10'499));
  h.Run({"PEXPIREAT", "k", std::to_string(kNow + 10'500)});
  EXPECT_EQ(h.Run({"EXPIRETIME", "k"}), Int(kNow / 1000 + 11));
}

TEST_F(KeyspaceFamilyTest, Persist) {
  EXPECT_EQ(h.Run({"PERSIST", "k"}), Int(0));
  h.Run({"SET", "k", "v"});
  EXPECT_EQ(h.Run({"PERSIST", "k"}), Int(0));
  h.Run({"EXPIRE", "k", "100"});
  EXPECT_EQ(h.Run({"PERSIST", "k"}), Int(1));
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(-1));
  EXPECT_EQ(h.Run({"PERSIST", "k"}), Int(0));
  h.SetNow(kNow + 1'000'000);
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("v"));
}

// ---------------- KEYS / SCAN / RANDOMKEY ----------------

TEST_F(KeyspaceFamilyTest, Keys) {
  EXPECT_EQ(h.Run({"KEYS", "*"}), "*0\r\n");
  h.Run({"MSET", "firstname", "Jack", "lastname", "Stuntman", "age", "35"});
  h.Run({"SET", "gone", "x", "PX", "1"});
  h.SetNow(kNow + 1);
  EXPECT_EQ(Sorted(h.Run({"KEYS", "*name*"})), (std::vector<std::string>{"firstname", "lastname"}));
  EXPECT_EQ(Sorted(h.Run({"KEYS", "a??"})), (std::vector<std::string>{"age"}));
  EXPECT_EQ(Sorted(h.Run({"KEYS", "*"})),
            (std::vector<std::string>{"age", "firstname", "lastname"}));
  EXPECT_EQ(Sorted(h.Run({"KEYS", "[fl]*"})), (std::vector<std::string>{"firstname", "lastname"}));
  EXPECT_EQ(h.Run({"KEYS", "nomatch*"}), "*0\r\n");
  h.Run({"SELECT", "1"});
  EXPECT_EQ(h.Run({"KEYS", "*"}), "*0\r\n");
}

TEST_F(KeyspaceFamilyTest, KeysManyAndBinary) {
  std::set<std::string> want;
  for (int i = 0; i < 3000; ++i) {
    std::string key = "key:" + std::to_string(i);
    h.Run({"SET", key, "v"});
    if (key.size() == 8) want.insert(key);  // key:1000 .. key:2999
  }
  std::string bin("b\0\r\n", 4);
  h.Run({"SET", bin, "v"});
  std::vector<std::string> got = Sorted(h.Run({"KEYS", "key:????"}));
  EXPECT_EQ(got, std::vector<std::string>(want.begin(), want.end()));
  EXPECT_EQ(Sorted(h.Run({"KEYS", "b*"})), (std::vector<std::string>{bin}));
  EXPECT_EQ(Sorted(h.Run({"KEYS", "*"})).size(), 3001u);
}

TEST_F(KeyspaceFamilyTest, ScanIteratesEverything) {
  std::set<std::string> want;
  for (int i = 0; i < 500; ++i) {
    want.insert("k" + std::to_string(i));
    h.Run({"SET", "k" + std::to_string(i), "v"});
  }
  std::set<std::string> got;
  std::string cursor = "0";
  int rounds = 0;
  do {
    ScanPage page = ParseScan(h.Run({"SCAN", cursor, "COUNT", "50"}));
    got.insert(page.keys.begin(), page.keys.end());
    cursor = page.cursor;
    ASSERT_LT(++rounds, 100000);
  } while (cursor != "0");
  EXPECT_EQ(got, want);
}

std::set<std::string> ScanAll(CommandHarness& h, std::vector<std::string> options) {
  std::set<std::string> got;
  std::string cursor = "0";
  int rounds = 0;
  do {
    std::vector<std::string> cmd = {"SCAN", cursor};
    cmd.insert(cmd.end(), options.begin(), options.end());
    ScanPage page = ParseScan(h.Run(cmd));
    got.insert(page.keys.begin(), page.keys.end());
    cursor = page.cursor;
    if (++rounds > 100000) break;
  } while (cursor != "0");
  return got;
}

TEST_F(KeyspaceFamilyTest, ScanMatchAndType) {
  for (int i = 0; i < 100; ++i) h.Run({"SET", (i % 2 ? "odd:" : "even:") + std::to_string(i), "v"});
  std::set<std::string> odd = ScanAll(h, {"MATCH", "odd:*", "COUNT", "7"});
  EXPECT_EQ(odd.size(), 50u);
  for (const auto& k : odd) EXPECT_EQ(k.substr(0, 4), "odd:");
  EXPECT_EQ(ScanAll(h, {"match", "*"}).size(), 100u);
  EXPECT_EQ(ScanAll(h, {"TYPE", "string"}).size(), 100u);
  EXPECT_EQ(ScanAll(h, {"TYPE", "STRING", "MATCH", "even:1*"}).size(), 5u);  // 10,12,14,16,18
  // Any other type: no keys, but the cursor walks to completion.
  EXPECT_TRUE(ScanAll(h, {"TYPE", "hash"}).empty());
  EXPECT_TRUE(ScanAll(h, {"TYPE", "nosuchtype", "COUNT", "3"}).empty());
}

TEST_F(KeyspaceFamilyTest, ScanEmptyDb) {
  // The cursor may take several calls to return to 0 (the Store walks its
  // shards); no call returns a key.
  EXPECT_TRUE(ScanAll(h, {}).empty());
  ScanPage page = ParseScan(h.Run({"SCAN", "0"}));
  EXPECT_TRUE(page.keys.empty());
}

TEST_F(KeyspaceFamilyTest, ScanErrors) {
  const std::string bad_cursor = Err("ERR invalid cursor");
  EXPECT_EQ(h.Run({"SCAN", "abc"}), bad_cursor);
  EXPECT_EQ(h.Run({"SCAN", " 1"}), bad_cursor);
  EXPECT_EQ(h.Run({"SCAN", "1 "}), bad_cursor);
  EXPECT_EQ(h.Run({"SCAN", "1.5"}), bad_cursor);
  EXPECT_EQ(h.Run({"SCAN", "18446744073709551616"}), bad_cursor);
  EXPECT_EQ(h.Run({"SCAN", "0", "COUNT", "0"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"SCAN", "0", "COUNT", "-1"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"SCAN", "0", "COUNT", "x"}), kNotIntErr);
  EXPECT_EQ(h.Run({"SCAN", "0", "COUNT"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"SCAN", "0", "MATCH"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"SCAN", "0", "TYPE"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"SCAN", "0", "FOO", "bar"}), kSyntaxErr);
  // The cursor is checked before the options.
  EXPECT_EQ(h.Run({"SCAN", "x", "COUNT", "0"}), bad_cursor);
  EXPECT_EQ(h.Run({"SCAN"}), Err("ERR wrong number of arguments for 'scan' command"));
  // strtoul's acceptance: an explicit '+' is a valid cursor.
  EXPECT_EQ(h.Run({"SCAN", "+0"}), h.Run({"SCAN", "0"}));
}

TEST_F(KeyspaceFamilyTest, RandomKey) {
  EXPECT_EQ(h.Run({"RANDOMKEY"}), kNil);
  h.client().resp = 3;
  EXPECT_EQ(h.Run({"RANDOMKEY"}), "_\r\n");
  h.client().resp = 2;
  h.Run({"SET", "only", "v"});
  EXPECT_EQ(h.Run({"RANDOMKEY"}), Bulk("only"));
  h.Run({"SET", "other", "v"});
  for (int i = 0; i < 10; ++i) {
    std::string r = h.Run({"RANDOMKEY"});
    EXPECT_TRUE(r == Bulk("only") || r == Bulk("other")) << r;
  }
  h.Run({"FLUSHDB"});
  h.Run({"SET", "x", "v", "PX", "5"});
  h.SetNow(kNow + 5);
  EXPECT_EQ(h.Run({"RANDOMKEY"}), kNil);
}

// ---------------- RENAME / RENAMENX / MOVE / COPY ----------------

TEST_F(KeyspaceFamilyTest, Rename) {
  EXPECT_EQ(h.Run({"RENAME", "a", "b"}), Err("ERR no such key"));
  h.Run({"SET", "a", "1", "EX", "100"});
  EXPECT_EQ(h.Run({"RENAME", "a", "b"}), kOk);
  EXPECT_EQ(h.Run({"GET", "a"}), kNil);
  EXPECT_EQ(h.Run({"GET", "b"}), Bulk("1"));
  EXPECT_EQ(h.Run({"TTL", "b"}), Int(100));  // the TTL travels with the key
  h.Run({"SET", "c", "3"});
  EXPECT_EQ(h.Run({"RENAME", "b", "c"}), kOk);  // overwrites
  EXPECT_EQ(h.Run({"GET", "c"}), Bulk("1"));
  EXPECT_EQ(h.Run({"TTL", "c"}), Int(100));
  EXPECT_EQ(h.Run({"DBSIZE"}), Int(1));
  // Same name: no-op if it exists, still an error if not.
  EXPECT_EQ(h.Run({"RENAME", "c", "c"}), kOk);
  EXPECT_EQ(h.Run({"GET", "c"}), Bulk("1"));
  EXPECT_EQ(h.Run({"RENAME", "zz", "zz"}), Err("ERR no such key"));
}

TEST_F(KeyspaceFamilyTest, RenameExpiredSource) {
  h.Run({"SET", "a", "1", "PX", "5"});
  h.SetNow(kNow + 5);
  EXPECT_EQ(h.Run({"RENAME", "a", "b"}), Err("ERR no such key"));
  EXPECT_EQ(h.Run({"RENAMENX", "a", "b"}), Err("ERR no such key"));
}

TEST_F(KeyspaceFamilyTest, RenameNx) {
  EXPECT_EQ(h.Run({"RENAMENX", "a", "b"}), Err("ERR no such key"));
  h.Run({"SET", "a", "1"});
  h.Run({"SET", "c", "3"});
  EXPECT_EQ(h.Run({"RENAMENX", "a", "c"}), Int(0));
  EXPECT_EQ(h.Run({"GET", "a"}), Bulk("1"));
  EXPECT_EQ(h.Run({"RENAMENX", "a", "b"}), Int(1));
  EXPECT_EQ(h.Run({"GET", "b"}), Bulk("1"));
  EXPECT_EQ(h.Run({"EXISTS", "a"}), Int(0));
  EXPECT_EQ(h.Run({"RENAMENX", "b", "b"}), Int(0));
  EXPECT_EQ(h.Run({"RENAMENX", "zz", "zz"}), Err("ERR no such key"));
}

TEST_F(KeyspaceFamilyTest, Move) {
  h.Run({"SET", "k", "v", "EX", "100"});
  EXPECT_EQ(h.Run({"MOVE", "k", "1"}), Int(1));
  EXPECT_EQ(h.Run({"EXISTS", "k"}), Int(0));
  EXPECT_EQ(h.Run({"MOVE", "k", "1"}), Int(0));  // no longer here
  h.Run({"SELECT", "1"});
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("v"));
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(100));
  // Target exists: nothing moves.
  h.Run({"SELECT", "0"});
  h.Run({"SET", "k", "other"});
  EXPECT_EQ(h.Run({"MOVE", "k", "1"}), Int(0));
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("other"));
}

TEST_F(KeyspaceFamilyTest, MoveErrors) {
  h.Run({"SET", "k", "v"});
  EXPECT_EQ(h.Run({"MOVE", "k", "0"}), Err("ERR source and destination objects are the same"));
  EXPECT_EQ(h.Run({"MOVE", "k", "16"}), kDbRangeErr);
  EXPECT_EQ(h.Run({"MOVE", "k", "-1"}), kDbRangeErr);
  EXPECT_EQ(h.Run({"MOVE", "k", "x"}), kNotIntErr);
  EXPECT_EQ(h.Run({"MOVE", "k", "2147483648"}), kIntRangeErr);
  EXPECT_EQ(h.Run({"MOVE", "missing", "1"}), Int(0));
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("v"));
}

TEST_F(KeyspaceFamilyTest, Copy) {
  EXPECT_EQ(h.Run({"COPY", "a", "b"}), Int(0));
  h.Run({"SET", "a", "1", "EX", "100"});
  EXPECT_EQ(h.Run({"COPY", "a", "b"}), Int(1));
  EXPECT_EQ(h.Run({"MGET", "a", "b"}), "*2\r\n" + Bulk("1") + Bulk("1"));
  EXPECT_EQ(h.Run({"TTL", "b"}), Int(100));
  h.Run({"SET", "c", "3"});
  EXPECT_EQ(h.Run({"COPY", "a", "c"}), Int(0));
  EXPECT_EQ(h.Run({"GET", "c"}), Bulk("3"));
  EXPECT_EQ(h.Run({"COPY", "a", "c", "REPLACE"}), Int(1));
  EXPECT_EQ(h.Run({"GET", "c"}), Bulk("1"));
  EXPECT_EQ(h.Run({"COPY", "a", "a", "DB", "2"}), Int(1));
  EXPECT_EQ(h.Run({"COPY", "a", "d", "db", "2", "replace"}), Int(1));
  h.Run({"SELECT", "2"});
  EXPECT_EQ(h.Run({"MGET", "a", "d"}), "*2\r\n" + Bulk("1") + Bulk("1"));
  EXPECT_EQ(h.Run({"TTL", "a"}), Int(100));
}

TEST_F(KeyspaceFamilyTest, CopyErrors) {
  h.Run({"SET", "a", "1"});
  const std::string same = Err("ERR source and destination objects are the same");
  EXPECT_EQ(h.Run({"COPY", "a", "a"}), same);
  EXPECT_EQ(h.Run({"COPY", "a", "a", "DB", "0"}), same);
  EXPECT_EQ(h.Run({"COPY", "a", "b", "FOO"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"COPY", "a", "b", "DB"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"COPY", "a", "b", "DB", "x"}), kNotIntErr);
  EXPECT_EQ(h.Run({"COPY", "a", "b", "DB", "99"}), kDbRangeErr);
  EXPECT_EQ(h.Run({"COPY", "a", "b", "DB", "4294967296"}), kIntRangeErr);
  EXPECT_EQ(h.Run({"COPY", "a"}), Err("ERR wrong number of arguments for 'copy' command"));
  EXPECT_EQ(h.Run({"EXISTS", "b"}), Int(0));
}

// ---------------- DBSIZE / FLUSHDB / FLUSHALL / SELECT ----------------

TEST_F(KeyspaceFamilyTest, DbSizeAndFlush) {
  EXPECT_EQ(h.Run({"DBSIZE"}), Int(0));
  h.Run({"MSET", "a", "1", "b", "2"});
  EXPECT_EQ(h.Run({"DBSIZE"}), Int(2));
  h.Run({"SELECT", "3"});
  h.Run({"SET", "c", "3"});
  EXPECT_EQ(h.Run({"DBSIZE"}), Int(1));
  EXPECT_EQ(h.Run({"FLUSHDB"}), kOk);
  EXPECT_EQ(h.Run({"DBSIZE"}), Int(0));
  h.Run({"SET", "c", "3"});
  h.Run({"SELECT", "0"});
  EXPECT_EQ(h.Run({"DBSIZE"}), Int(2));  // FLUSHDB touched db 3 only
  EXPECT_EQ(h.Run({"FLUSHDB", "ASYNC"}), kOk);
  EXPECT_EQ(h.Run({"DBSIZE"}), Int(0));
  h.Run({"SET", "a", "1"});
  EXPECT_EQ(h.Run({"FLUSHALL"}), kOk);
  EXPECT_EQ(h.Run({"DBSIZE"}), Int(0));
  h.Run({"SELECT", "3"});
  EXPECT_EQ(h.Run({"DBSIZE"}), Int(0));
  EXPECT_EQ(h.Run({"FLUSHALL", "sync"}), kOk);
  EXPECT_EQ(h.Run({"FLUSHALL", "async"}), kOk);
  EXPECT_EQ(h.Run({"FLUSHDB", "SYNC"}), kOk);
}

TEST_F(KeyspaceFamilyTest, FlushSyntax) {
  EXPECT_EQ(h.Run({"FLUSHDB", "now"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"FLUSHDB", "ASYNC", "SYNC"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"FLUSHALL", "x"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"DBSIZE", "x"}), Err("ERR wrong number of arguments for 'dbsize' command"));
}

TEST_F(KeyspaceFamilyTest, Select) {
  h.Run({"SET", "k", "zero"});
  EXPECT_EQ(h.Run({"SELECT", "1"}), kOk);
  EXPECT_EQ(h.client().db, 1);
  EXPECT_EQ(h.client().info->db.load(), 1);
  EXPECT_EQ(h.Run({"GET", "k"}), kNil);
  h.Run({"SET", "k", "one"});
  EXPECT_EQ(h.Run({"SELECT", "15"}), kOk);
  EXPECT_EQ(h.Run({"GET", "k"}), kNil);
  EXPECT_EQ(h.Run({"SELECT", "0"}), kOk);
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("zero"));
  EXPECT_EQ(h.client().info->db.load(), 0);
}

TEST_F(KeyspaceFamilyTest, SelectErrors) {
  EXPECT_EQ(h.Run({"SELECT", "16"}), kDbRangeErr);
  EXPECT_EQ(h.Run({"SELECT", "-1"}), kDbRangeErr);
  EXPECT_EQ(h.Run({"SELECT", "2147483647"}), kDbRangeErr);
  EXPECT_EQ(h.Run({"SELECT", "2147483648"}), kIntRangeErr);
  EXPECT_EQ(h.Run({"SELECT", "-2147483649"}), kIntRangeErr);
  EXPECT_EQ(h.Run({"SELECT", "abc"}), kNotIntErr);
  EXPECT_EQ(h.Run({"SELECT", "1.0"}), kNotIntErr);
  EXPECT_EQ(h.Run({"SELECT", "01"}), kNotIntErr);
  EXPECT_EQ(h.Run({"SELECT", ""}), kNotIntErr);
  EXPECT_EQ(h.Run({"SELECT", "99999999999999999999"}), kNotIntErr);
  EXPECT_EQ(h.client().db, 0);
}

TEST(KeyspaceFamilyDatabases, SelectHonoursDatabasesOption) {
  CommandHarness h({"--databases", "4"});
  EXPECT_EQ(h.Run({"SELECT", "3"}), kOk);
  EXPECT_EQ(h.Run({"SELECT", "4"}), kDbRangeErr);
}

// ---------------- command table ----------------

TEST_F(KeyspaceFamilyTest, CommandTableEntries) {
  const CommandTable& t = h.server().commands();
  struct Want {
    const char* name;
    int arity, first, last, step;
    uint32_t must, must_not;
  };
  const Want wants[] = {
      {"del", -2, 1, -1, 1, kCmdWrite, kCmdReadOnly | kCmdDenyOom},
      {"unlink", -2, 1, -1, 1, kCmdWrite | kCmdFast, kCmdDenyOom},
      {"exists", -2, 1, -1, 1, kCmdReadOnly | kCmdFast, kCmdWrite},
      {"touch", -2, 1, -1, 1, kCmdReadOnly | kCmdFast, kCmdWrite},
      {"type", 2, 1, 1, 1, kCmdReadOnly | kCmdFast, kCmdWrite},
      {"expire", -3, 1, 1, 1, kCmdWrite | kCmdFast, kCmdDenyOom},
      {"pexpire", -3, 1, 1, 1, kCmdWrite | kCmdFast, kCmdDenyOom},
      {"expireat", -3, 1, 1, 1, kCmdWrite | kCmdFast, kCmdDenyOom},
      {"pexpireat", -3, 1, 1, 1, kCmdWrite | kCmdFast, kCmdDenyOom},
      {"ttl", 2, 1, 1, 1, kCmdReadOnly | kCmdFast, kCmdWrite},
      {"pttl", 2, 1, 1, 1, kCmdReadOnly | kCmdFast, kCmdWrite},
      {"expiretime", 2, 1, 1, 1, kCmdReadOnly | kCmdFast, kCmdWrite},
      {"pexpiretime", 2, 1, 1, 1, kCmdReadOnly | kCmdFast, kCmdWrite},
      {"persist", 2, 1, 1, 1, kCmdWrite | kCmdFast, 0},
      {"keys", 2, 0, 0, 0, kCmdReadOnly, kCmdFast},
      {"scan", -2, 0, 0, 0, kCmdReadOnly, kCmdFast},
      {"randomkey", 1, 0, 0, 0, kCmdReadOnly, kCmdFast},
      {"rename", 3, 1, 2, 1, kCmdWrite, kCmdFast},
      {"renamenx", 3, 1, 2, 1, kCmdWrite | kCmdFast, 0},
      {"move", 3, 1, 1, 1, kCmdWrite | kCmdFast, 0},
      {"copy", -3, 1, 2, 1, kCmdWrite | kCmdDenyOom, 0},
      {"dbsize", 1, 0, 0, 0, kCmdReadOnly | kCmdFast, kCmdWrite},
      {"flushdb", -1, 0, 0, 0, kCmdWrite, 0},
      {"flushall", -1, 0, 0, 0, kCmdWrite, 0},
      {"select", 2, 0, 0, 0, kCmdFast, kCmdWrite | kCmdReadOnly},
  };
  for (const Want& w : wants) {
    const CommandSpec* spec = t.Find(w.name);
    ASSERT_NE(spec, nullptr) << w.name;
    EXPECT_EQ(spec->arity, w.arity) << w.name;
    EXPECT_EQ(spec->first_key, w.first) << w.name;
    EXPECT_EQ(spec->last_key, w.last) << w.name;
    EXPECT_EQ(spec->key_step, w.step) << w.name;
    EXPECT_EQ(spec->flags & w.must, w.must) << w.name;
    EXPECT_EQ(spec->flags & w.must_not, 0u) << w.name;
    EXPECT_FALSE(spec->group.empty()) << w.name;
    EXPECT_FALSE(spec->summary.empty()) << w.name;
  }
}

}  // namespace
}  // namespace kvpool
