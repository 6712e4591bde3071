// String family and MEXISTS: exact RESP bytes as redis-server 7.0 sends them.
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

// ---------------- GET / SET ----------------

TEST_F(StringFamilyTest, GetMissingAndPresent) {
  EXPECT_EQ(h.Run({"GET", "k"}), kNil);
  EXPECT_EQ(h.Run({"SET", "k", "hello"}), kOk);
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("hello"));
  EXPECT_EQ(h.Run({"get", "k"}), Bulk("hello"));  // command names are case-insensitive
}

TEST_F(StringFamilyTest, GetResp3Null) {
  h.client().resp = 3;
  EXPECT_EQ(h.Run({"GET", "nope"}), "_\r\n");
}

TEST_F(StringFamilyTest, GetCountsHitsAndMisses) {
  uint64_t hits = Hits(), misses = Misses();
  h.Run({"GET", "k"});
  EXPECT_EQ(Misses(), misses + 1);
  h.Run({"SET", "k", "v"});
  h.Run({"GET", "k"});
  EXPECT_EQ(Hits(), hits + 1);
  EXPECT_EQ(Misses(), misses + 1);  // SET does not count
}

TEST_F(StringFamilyTest, BinaryKeysAndValues) {
  std::string key("k\0\r\n\xff", 5);
  std::string value("\0\r\n$-1\r\n\x80", 9);
  EXPECT_EQ(h.Run({"SET", key, value}), kOk);
  EXPECT_EQ(h.Run({"GET", key}), Bulk(value));
  EXPECT_EQ(h.Run({"GET", std::string("k\0\r\n", 4)}), kNil);
  EXPECT_EQ(h.Run({"STRLEN", key}), Int(9));
}

TEST_F(StringFamilyTest, ArityErrors) {
  EXPECT_EQ(h.Run({"GET"}), Err("ERR wrong number of arguments for 'get' command"));
  EXPECT_EQ(h.Run({"GET", "a", "b"}), Err("ERR wrong number of arguments for 'get' command"));
  EXPECT_EQ(h.Run({"SET", "k"}), Err("ERR wrong number of arguments for 'set' command"));
  EXPECT_EQ(h.Run({"SETEX", "k", "10"}), Err("ERR wrong number of arguments for 'setex' command"));
  EXPECT_EQ(h.Run({"MGET"}), Err("ERR wrong number of arguments for 'mget' command"));
  EXPECT_EQ(h.Run({"MEXISTS"}), Err("ERR wrong number of arguments for 'mexists' command"));
  EXPECT_EQ(h.Run({"INCR"}), Err("ERR wrong number of arguments for 'incr' command"));
  EXPECT_EQ(h.Run({"GETEX"}), Err("ERR wrong number of arguments for 'getex' command"));
}

TEST_F(StringFamilyTest, SetNxXx) {
  EXPECT_EQ(h.Run({"SET", "k", "a", "XX"}), kNil);
  EXPECT_EQ(h.Run({"GET", "k"}), kNil);
  EXPECT_EQ(h.Run({"SET", "k", "a", "NX"}), kOk);
  EXPECT_EQ(h.Run({"SET", "k", "b", "nx"}), kNil);
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("a"));
  EXPECT_EQ(h.Run({"SET", "k", "c", "xx"}), kOk);
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("c"));
  // Repeating the same flag is allowed, as in Redis.
  EXPECT_EQ(h.Run({"SET", "k", "d", "XX", "XX"}), kOk);
}

TEST_F(StringFamilyTest, SetNxResp3Null) {
  h.client().resp = 3;
  h.Run({"SET", "k", "a"});
  EXPECT_EQ(h.Run({"SET", "k", "b", "NX"}), "_\r\n");
}

TEST_F(StringFamilyTest, SetSyntaxErrors) {
  EXPECT_EQ(h.Run({"SET", "k", "v", "NX", "XX"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"SET", "k", "v", "XX", "NX"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"SET", "k", "v", "EX", "10", "PX", "100"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"SET", "k", "v", "PX", "100", "EX", "10"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"SET", "k", "v", "EX", "10", "EXAT", "100"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"SET", "k", "v", "PXAT", "100", "PX", "10"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"SET", "k", "v", "EXAT", "10", "PXAT", "100"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"SET", "k", "v", "EX", "10", "KEEPTTL"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"SET", "k", "v", "KEEPTTL", "EX", "10"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"SET", "k", "v", "KEEPTTL", "PXAT", "10"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"SET", "k", "v", "EX"}), kSyntaxErr);       // missing value
  EXPECT_EQ(h.Run({"SET", "k", "v", "PXAT"}), kSyntaxErr);     // missing value
  EXPECT_EQ(h.Run({"SET", "k", "v", "PERSIST"}), kSyntaxErr);  // GETEX only
  EXPECT_EQ(h.Run({"SET", "k", "v", "FOO"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"SET", "k", "v", "EXX", "1"}), kSyntaxErr);
  // Option conflicts are reported before the expire value is looked at.
  EXPECT_EQ(h.Run({"SET", "k", "v", "EX", "0", "NX", "XX"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"GET", "k"}), kNil);
}

TEST_F(StringFamilyTest, SetExpireOptions) {
  EXPECT_EQ(h.Run({"SET", "k", "v", "EX", "10"}), kOk);
  EXPECT_EQ(h.Run({"PTTL", "k"}), Int(10000));
  EXPECT_EQ(h.Run({"SET", "k", "v", "PX", "1500"}), kOk);
  EXPECT_EQ(h.Run({"PTTL", "k"}), Int(1500));
  EXPECT_EQ(h.Run({"SET", "k", "v", "EXAT", std::to_string(kNow / 1000 + 100)}), kOk);
  EXPECT_EQ(h.Run({"PEXPIRETIME", "k"}), Int((kNow / 1000 + 100) * 1000));
  EXPECT_EQ(h.Run({"SET", "k", "v", "PXAT", std::to_string(kNow + 1234)}), kOk);
  EXPECT_EQ(h.Run({"PTTL", "k"}), Int(1234));
  // Lower-case options; a repeated EX is allowed and the last wins.
  EXPECT_EQ(h.Run({"set", "k", "v", "ex", "10", "ex", "20"}), kOk);
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(20));
  // A plain SET clears the TTL; KEEPTTL keeps it.
  EXPECT_EQ(h.Run({"SET", "k", "v2", "KEEPTTL"}), kOk);
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(20));
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("v2"));
  EXPECT_EQ(h.Run({"SET", "k", "v3"}), kOk);
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(-1));
}

TEST_F(StringFamilyTest, SetExpiresWithClock) {
  EXPECT_EQ(h.Run({"SET", "k", "v", "PX", "100"}), kOk);
  h.SetNow(kNow + 99);
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("v"));
  h.SetNow(kNow + 100);
  EXPECT_EQ(h.Run({"GET", "k"}), kNil);
  EXPECT_EQ(h.Run({"EXISTS", "k"}), Int(0));
}

TEST_F(StringFamilyTest, SetAbsoluteExpireInThePast) {
  EXPECT_EQ(h.Run({"SET", "k", "v", "EXAT", "1"}), kOk);
  EXPECT_EQ(h.Run({"GET", "k"}), kNil);
  EXPECT_EQ(h.Run({"SET", "k", "v", "PXAT", std::to_string(kNow)}), kOk);
  EXPECT_EQ(h.Run({"GET", "k"}), kNil);
}

TEST_F(StringFamilyTest, SetInvalidExpire) {
  const std::string err = Err("ERR invalid expire time in 'set' command");
  EXPECT_EQ(h.Run({"SET", "k", "v", "EX", "0"}), err);
  EXPECT_EQ(h.Run({"SET", "k", "v", "EX", "-1"}), err);
  EXPECT_EQ(h.Run({"SET", "k", "v", "PX", "0"}), err);
  EXPECT_EQ(h.Run({"SET", "k", "v", "EXAT", "0"}), err);
  EXPECT_EQ(h.Run({"SET", "k", "v", "PXAT", "-5"}), err);
  // Seconds that overflow when converted to ms.
  EXPECT_EQ(h.Run({"SET", "k", "v", "EX", "9223372036854776"}), err);
  EXPECT_EQ(h.Run({"SET", "k", "v", "EXAT", "9223372036854776"}), err);
  // Relative times that overflow when added to now.
  EXPECT_EQ(h.Run({"SET", "k", "v", "PX", "9223372036854775807"}), err);
  EXPECT_EQ(h.Run({"SET", "k", "v", "EX", "9223372036854775"}), err);
  EXPECT_EQ(h.Run({"GET", "k"}), kNil);
  // Absolute times are not added to now: the largest values are fine.
  EXPECT_EQ(h.Run({"SET", "k", "v", "PXAT", "9223372036854775807"}), kOk);
  EXPECT_EQ(h.Run({"SET", "k", "v", "EXAT", "9223372036854775"}), kOk);
  EXPECT_EQ(h.Run({"PEXPIRETIME", "k"}), Int(9223372036854775000));
  // Not a number.
  EXPECT_EQ(h.Run({"SET", "k", "v", "EX", "abc"}), kNotIntErr);
  EXPECT_EQ(h.Run({"SET", "k", "v", "EX", "1.5"}), kNotIntErr);
  EXPECT_EQ(h.Run({"SET", "k", "v", "PX", "9223372036854775808"}), kNotIntErr);
}

TEST_F(StringFamilyTest, SetGet) {
  EXPECT_EQ(h.Run({"SET", "k", "a", "GET"}), kNil);
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("a"));
  EXPECT_EQ(h.Run({"SET", "k", "b", "GET", "EX", "100"}), Bulk("a"));
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(100));
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("b"));
  // NX GET (Redis 7): replies the old value; NX prevents the write.
  EXPECT_EQ(h.Run({"SET", "k", "c", "NX", "GET"}), Bulk("b"));
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("b"));
  EXPECT_EQ(h.Run({"SET", "new", "c", "NX", "GET"}), kNil);
  EXPECT_EQ(h.Run({"GET", "new"}), Bulk("c"));
  // XX GET on a missing key: nil, nothing written.
  EXPECT_EQ(h.Run({"SET", "none", "x", "XX", "GET"}), kNil);
  EXPECT_EQ(h.Run({"GET", "none"}), kNil);
  EXPECT_EQ(h.Run({"SET", "k", "d", "GET", "XX"}), Bulk("b"));
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("d"));
}

TEST_F(StringFamilyTest, SetGetCountsLookups) {
  uint64_t hits = Hits(), misses = Misses();
  h.Run({"SET", "k", "a", "GET"});
  h.Run({"SET", "k", "b", "GET"});
  EXPECT_EQ(Hits(), hits + 1);
  EXPECT_EQ(Misses(), misses + 1);
}

TEST_F(StringFamilyTest, SetNx) {
  EXPECT_EQ(h.Run({"SETNX", "k", "a"}), Int(1));
  EXPECT_EQ(h.Run({"SETNX", "k", "b"}), Int(0));
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("a"));
}

TEST_F(StringFamilyTest, SetExPSetEx) {
  EXPECT_EQ(h.Run({"SETEX", "k", "10", "v"}), kOk);
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("v"));
  EXPECT_EQ(h.Run({"PTTL", "k"}), Int(10000));
  EXPECT_EQ(h.Run({"PSETEX", "k", "1500", "w"}), kOk);
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("w"));
  EXPECT_EQ(h.Run({"PTTL", "k"}), Int(1500));
  h.SetNow(kNow + 1500);
  EXPECT_EQ(h.Run({"GET", "k"}), kNil);
}

TEST_F(StringFamilyTest, SetExErrorsNameTheCommand) {
  EXPECT_EQ(h.Run({"SETEX", "k", "0", "v"}), Err("ERR invalid expire time in 'setex' command"));
  EXPECT_EQ(h.Run({"SETEX", "k", "-10", "v"}), Err("ERR invalid expire time in 'setex' command"));
  EXPECT_EQ(h.Run({"setex", "k", "9223372036854776", "v"}),
            Err("ERR invalid expire time in 'setex' command"));
  EXPECT_EQ(h.Run({"PSETEX", "k", "0", "v"}), Err("ERR invalid expire time in 'psetex' command"));
  EXPECT_EQ(h.Run({"PSETEX", "k", "9223372036854775807", "v"}),
            Err("ERR invalid expire time in 'psetex' command"));
  EXPECT_EQ(h.Run({"SETEX", "k", "ten", "v"}), kNotIntErr);
  EXPECT_EQ(h.Run({"PSETEX", "k", "", "v"}), kNotIntErr);
  EXPECT_EQ(h.Run({"GET", "k"}), kNil);
}

// ---------------- GETSET / GETDEL / GETEX ----------------

TEST_F(StringFamilyTest, GetSet) {
  EXPECT_EQ(h.Run({"GETSET", "k", "a"}), kNil);
  EXPECT_EQ(h.Run({"EXPIRE", "k", "100"}), Int(1));
  EXPECT_EQ(h.Run({"GETSET", "k", "b"}), Bulk("a"));
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("b"));
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(-1));  // GETSET clears the TTL
}

TEST_F(StringFamilyTest, GetDel) {
  EXPECT_EQ(h.Run({"GETDEL", "k"}), kNil);
  h.Run({"SET", "k", "v"});
  uint64_t hits = Hits();
  EXPECT_EQ(h.Run({"GETDEL", "k"}), Bulk("v"));
  EXPECT_EQ(Hits(), hits + 1);
  EXPECT_EQ(h.Run({"GET", "k"}), kNil);
  EXPECT_EQ(h.Run({"GETDEL", "k"}), kNil);
  h.client().resp = 3;
  EXPECT_EQ(h.Run({"GETDEL", "k"}), "_\r\n");
}

TEST_F(StringFamilyTest, GetDelLargeValue) {
  std::string big(100000, 'z');
  h.Run({"SET", "k", big});
  EXPECT_EQ(h.Run({"GETDEL", "k"}), Bulk(big));
  EXPECT_EQ(h.Run({"EXISTS", "k"}), Int(0));
}

TEST_F(StringFamilyTest, GetExNoOptionKeepsTtl) {
  EXPECT_EQ(h.Run({"GETEX", "k"}), kNil);
  h.Run({"SET", "k", "v", "EX", "50"});
  EXPECT_EQ(h.Run({"GETEX", "k"}), Bulk("v"));
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(50));
}

TEST_F(StringFamilyTest, GetExSetsExpiry) {
  h.Run({"SET", "k", "v"});
  EXPECT_EQ(h.Run({"GETEX", "k", "EX", "100"}), Bulk("v"));
  EXPECT_EQ(h.Run({"PTTL", "k"}), Int(100000));
  EXPECT_EQ(h.Run({"GETEX", "k", "px", "2500"}), Bulk("v"));
  EXPECT_EQ(h.Run({"PTTL", "k"}), Int(2500));
  EXPECT_EQ(h.Run({"GETEX", "k", "EXAT", std::to_string(kNow / 1000 + 30)}), Bulk("v"));
  EXPECT_EQ(h.Run({"EXPIRETIME", "k"}), Int(kNow / 1000 + 30));
  EXPECT_EQ(h.Run({"GETEX", "k", "PXAT", std::to_string(kNow + 777)}), Bulk("v"));
  EXPECT_EQ(h.Run({"PTTL", "k"}), Int(777));
  EXPECT_EQ(h.Run({"GETEX", "k", "PERSIST"}), Bulk("v"));
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(-1));
  EXPECT_EQ(h.Run({"GETEX", "k", "PERSIST"}), Bulk("v"));  // no TTL: still the value
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(-1));
}

TEST_F(StringFamilyTest, GetExPastAbsoluteDeletes) {
  h.Run({"SET", "k", "v"});
  EXPECT_EQ(h.Run({"GETEX", "k", "EXAT", "1"}), Bulk("v"));
  EXPECT_EQ(h.Run({"EXISTS", "k"}), Int(0));
  h.Run({"SET", "k", "v"});
  EXPECT_EQ(h.Run({"GETEX", "k", "PXAT", std::to_string(kNow)}), Bulk("v"));
  EXPECT_EQ(h.Run({"GET", "k"}), kNil);
}

TEST_F(StringFamilyTest, GetExMissingDoesNotCreate) {
  EXPECT_EQ(h.Run({"GETEX", "k", "EX", "10"}), kNil);
  EXPECT_EQ(h.Run({"EXISTS", "k"}), Int(0));
}

TEST_F(StringFamilyTest, GetExErrors) {
  h.Run({"SET", "k", "v", "EX", "10"});
  EXPECT_EQ(h.Run({"GETEX", "k", "NX"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"GETEX", "k", "XX"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"GETEX", "k", "GET"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"GETEX", "k", "KEEPTTL"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"GETEX", "k", "EX", "10", "PERSIST"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"GETEX", "k", "PERSIST", "PX", "10"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"GETEX", "k", "EX", "10", "PX", "10"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"GETEX", "k", "EX"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"GETEX", "k", "EX", "0"}), Err("ERR invalid expire time in 'getex' command"));
  EXPECT_EQ(h.Run({"GETEX", "k", "PXAT", "-1"}), Err("ERR invalid expire time in 'getex' command"));
  EXPECT_EQ(h.Run({"GETEX", "k", "PX", "9223372036854775807"}),
            Err("ERR invalid expire time in 'getex' command"));
  EXPECT_EQ(h.Run({"GETEX", "k", "EX", "x"}), kNotIntErr);
  // An invalid expire is reported even for a missing key.
  EXPECT_EQ(h.Run({"GETEX", "missing", "EX", "0"}),
            Err("ERR invalid expire time in 'getex' command"));
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(10));  // untouched by the failures
}

// ---------------- APPEND / STRLEN / GETRANGE / SETRANGE ----------------

TEST_F(StringFamilyTest, Append) {
  EXPECT_EQ(h.Run({"APPEND", "k", "Hello"}), Int(5));
  EXPECT_EQ(h.Run({"APPEND", "k", " World"}), Int(11));
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("Hello World"));
  EXPECT_EQ(h.Run({"APPEND", "k", ""}), Int(11));
  EXPECT_EQ(h.Run({"APPEND", "e", ""}), Int(0));
  EXPECT_EQ(h.Run({"EXISTS", "e"}), Int(1));  // APPEND creates the key even when empty
  EXPECT_EQ(h.Run({"APPEND", "k", std::string("\0\r\n", 3)}), Int(14));
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk(std::string("Hello World\0\r\n", 14)));
}

TEST_F(StringFamilyTest, AppendKeepsTtl) {
  h.Run({"SET", "k", "a", "EX", "100"});
  EXPECT_EQ(h.Run({"APPEND", "k", "b"}), Int(2));
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(100));
}

TEST_F(StringFamilyTest, AppendToExpiredStartsOver) {
  h.Run({"SET", "k", "old", "PX", "10"});
  h.SetNow(kNow + 10);
  EXPECT_EQ(h.Run({"APPEND", "k", "new"}), Int(3));
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(-1));
}

TEST(StringFamilyLimits, AppendAndSetRangeRespectProtoMaxBulkLen) {
  CommandHarness h({"--proto-max-bulk-len", "1mb"});
  h.SetNow(kNow);
  const std::string too_long = Err("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
  std::string almost((1 << 20) - 1, 'a');
  EXPECT_EQ(h.Run({"SET", "k", almost}), kOk);
  EXPECT_EQ(h.Run({"APPEND", "k", "xy"}), too_long);
  EXPECT_EQ(h.Run({"STRLEN", "k"}), Int((1 << 20) - 1));
  EXPECT_EQ(h.Run({"APPEND", "k", "x"}), Int(1 << 20));
  EXPECT_EQ(h.Run({"SETRANGE", "k", "1048576", "x"}), too_long);
  EXPECT_EQ(h.Run({"SETRANGE", "n", "1048576", "x"}), too_long);
  EXPECT_EQ(h.Run({"EXISTS", "n"}), Int(0));
  EXPECT_EQ(h.Run({"SETRANGE", "n", "9223372036854775807", "x"}), too_long);
  EXPECT_EQ(h.Run({"SETRANGE", "n", "1048575", "x"}), Int(1 << 20));
  // Setting nothing is never too long.
  EXPECT_EQ(h.Run({"SETRANGE", "k", "9223372036854775807", ""}), Int(1 << 20));
}

TEST_F(StringFamilyTest, StrLen) {
  EXPECT_EQ(h.Run({"STRLEN", "k"}), Int(0));
  h.Run({"SET", "k", "hello"});
  EXPECT_EQ(h.Run({"STRLEN", "k"}), Int(5));
  h.Run({"SET", "k", ""});
  EXPECT_EQ(h.Run({"STRLEN", "k"}), Int(0));
}

TEST_F(StringFamilyTest, GetRange) {
  h.Run({"SET", "k", "This is a string"});
  EXPECT_EQ(h.Run({"GETRANGE", "k", "0", "3"}), Bulk("This"));
  EXPECT_EQ(h.Run({"GETRANGE", "k", "-3", "-1"}), Bulk("ing"));
  EXPECT_EQ(h.Run({"GETRANGE", "k", "0", "-1"}), Bulk("This is a string"));
  EXPECT_EQ(h.Run({"GETRANGE", "k", "10", "100"}), Bulk("string"));
  EXPECT_EQ(h.Run({"GETRANGE", "k", "5", "3"}), kEmpty);
  EXPECT_EQ(h.Run({"GETRANGE", "k", "-1", "-5"}), kEmpty);
  EXPECT_EQ(h.Run({"GETRANGE", "k", "-100", "2"}), Bulk("Thi"));
  EXPECT_EQ(h.Run({"GETRANGE", "k", "-100", "-50"}), Bulk("T"));  // both clamp to 0
  EXPECT_EQ(h.Run({"GETRANGE", "k", "16", "20"}), kEmpty);
  EXPECT_EQ(h.Run({"GETRANGE", "k", "-9223372036854775808", "9223372036854775807"}),
            Bulk("This is a string"));
  EXPECT_EQ(h.Run({"SUBSTR", "k", "0", "3"}), Bulk("This"));
  EXPECT_EQ(h.Run({"GETRANGE", "missing", "0", "-1"}), kEmpty);
  h.client().resp = 3;
  EXPECT_EQ(h.Run({"GETRANGE", "missing", "0", "-1"}), kEmpty);  // empty bulk, not null
  h.Run({"SET", "e", ""});
  EXPECT_EQ(h.Run({"GETRANGE", "e", "0", "-1"}), kEmpty);
}

TEST_F(StringFamilyTest, GetRangeErrors) {
  h.Run({"SET", "k", "abc"});
  EXPECT_EQ(h.Run({"GETRANGE", "k", "a", "1"}), kNotIntErr);
  EXPECT_EQ(h.Run({"GETRANGE", "k", "0", "1.0"}), kNotIntErr);
  EXPECT_EQ(h.Run({"GETRANGE", "missing", "x", "1"}), kNotIntErr);
  EXPECT_EQ(h.Run({"GETRANGE", "k", "0"}),
            Err("ERR wrong number of arguments for 'getrange' command"));
}

TEST_F(StringFamilyTest, SetRange) {
  h.Run({"SET", "k", "Hello World"});
  EXPECT_EQ(h.Run({"SETRANGE", "k", "6", "Redis"}), Int(11));
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("Hello Redis"));
  EXPECT_EQ(h.Run({"SETRANGE", "k", "11", "!"}), Int(12));
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("Hello Redis!"));
  EXPECT_EQ(h.Run({"SETRANGE", "k", "14", "?"}), Int(15));
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk(std::string("Hello Redis!\0\0?", 15)));
  EXPECT_EQ(h.Run({"SETRANGE", "n", "6", "Redis"}), Int(11));
  EXPECT_EQ(h.Run({"GET", "n"}), Bulk(std::string("\0\0\0\0\0\0Redis", 11)));
}

TEST_F(StringFamilyTest, SetRangeEmptyValue) {
  EXPECT_EQ(h.Run({"SETRANGE", "missing", "5", ""}), Int(0));
  EXPECT_EQ(h.Run({"EXISTS", "missing"}), Int(0));  // nothing created
  h.Run({"SET", "k", "abc"});
  EXPECT_EQ(h.Run({"SETRANGE", "k", "100", ""}), Int(3));
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("abc"));
}

TEST_F(StringFamilyTest, SetRangeErrorsAndTtl) {
  h.Run({"SET", "k", "abc", "EX", "100"});
  EXPECT_EQ(h.Run({"SETRANGE", "k", "-1", "x"}), Err("ERR offset is out of range"));
  EXPECT_EQ(h.Run({"SETRANGE", "k", "-1", ""}), Err("ERR offset is out of range"));
  EXPECT_EQ(h.Run({"SETRANGE", "k", "one", "x"}), kNotIntErr);
  EXPECT_EQ(h.Run({"SETRANGE", "k", "1", "X"}), Int(3));
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("aXc"));
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(100));  // an in-place edit keeps the TTL
}

// ---------------- INCR family ----------------

TEST_F(StringFamilyTest, IncrDecr) {
  EXPECT_EQ(h.Run({"INCR", "n"}), Int(1));
  EXPECT_EQ(h.Run({"INCR", "n"}), Int(2));
  EXPECT_EQ(h.Run({"DECR", "n"}), Int(1));
  EXPECT_EQ(h.Run({"DECR", "m"}), Int(-1));
  EXPECT_EQ(h.Run({"INCRBY", "n", "10"}), Int(11));
  EXPECT_EQ(h.Run({"INCRBY", "n", "-20"}), Int(-9));
  EXPECT_EQ(h.Run({"DECRBY", "n", "1"}), Int(-10));
  EXPECT_EQ(h.Run({"DECRBY", "n", "-15"}), Int(5));
  EXPECT_EQ(h.Run({"GET", "n"}), Bulk("5"));
  h.Run({"SET", "s", "10"});
  EXPECT_EQ(h.Run({"INCR", "s"}), Int(11));
  EXPECT_EQ(h.Run({"GET", "s"}), Bulk("11"));
}

TEST_F(StringFamilyTest, IncrNotAnInteger) {
  for (const char* bad : {"abc", " 1", "1 ", "01", "-0", "+1", "1.0", "", "9223372036854775808"}) {
    h.Run({"SET", "k", bad});
    EXPECT_EQ(h.Run({"INCR", "k"}), kNotIntErr) << bad;
    EXPECT_EQ(h.Run({"GET", "k"}), Bulk(bad)) << bad;
  }
  EXPECT_EQ(h.Run({"INCRBY", "n", "x"}), kNotIntErr);
  EXPECT_EQ(h.Run({"INCRBY", "n", "9223372036854775808"}), kNotIntErr);
  EXPECT_EQ(h.Run({"DECRBY", "n", "1e3"}), kNotIntErr);
  EXPECT_EQ(h.Run({"EXISTS", "n"}), Int(0));
}

TEST_F(StringFamilyTest, IncrOverflow) {
  const std::string overflow = Err("ERR increment or decrement would overflow");
  h.Run({"SET", "max", "9223372036854775807"});
  EXPECT_EQ(h.Run({"INCR", "max"}), overflow);
  EXPECT_EQ(h.Run({"INCRBY", "max", "1"}), overflow);
  EXPECT_EQ(h.Run({"DECRBY", "max", "-1"}), overflow);
  EXPECT_EQ(h.Run({"GET", "max"}), Bulk("9223372036854775807"));
  h.Run({"SET", "min", "-9223372036854775808"});
  EXPECT_EQ(h.Run({"DECR", "min"}), overflow);
  EXPECT_EQ(h.Run({"INCRBY", "min", "-1"}), overflow);
  EXPECT_EQ(h.Run({"INCRBY", "min", "9223372036854775807"}), Int(-1));
  EXPECT_EQ(h.Run({"INCRBY", "z", "-9223372036854775808"}), Int(INT64_MIN));
  EXPECT_EQ(h.Run({"DECRBY", "z", "-9223372036854775807"}), Int(-1));
  EXPECT_EQ(h.Run({"DECRBY", "z", "-9223372036854775808"}), Err("ERR decrement would overflow"));
  EXPECT_EQ(h.Run({"GET", "z"}), Bulk("-1"));
}

TEST_F(StringFamilyTest, IncrKeepsTtl) {
  h.Run({"SET", "n", "1", "EX", "100"});
  EXPECT_EQ(h.Run({"INCR", "n"}), Int(2));
  EXPECT_EQ(h.Run({"INCRBYFLOAT", "n", "0.5"}), Bulk("2.5"));
  EXPECT_EQ(h.Run({"TTL", "n"}), Int(100));
}

TEST_F(StringFamilyTest, IncrByFloat) {
  h.Run({"SET", "k", "10.50"});
  EXPECT_EQ(h.Run({"INCRBYFLOAT", "k", "0.1"}), Bulk("10.6"));
  EXPECT_EQ(h.Run({"INCRBYFLOAT", "k", "-5"}), Bulk("5.6"));
  h.Run({"SET", "k", "5.0e3"});
  EXPECT_EQ(h.Run({"INCRBYFLOAT", "k", "2.0e2"}), Bulk("5200"));
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("5200"));
  EXPECT_EQ(h.Run({"INCRBYFLOAT", "new", "3.0"}), Bulk("3"));
  EXPECT_EQ(h.Run({"INCRBYFLOAT", "new", "-3"}), Bulk("0"));
  h.Run({"SET", "i", "7"});
  EXPECT_EQ(h.Run({"INCRBYFLOAT", "i", "1"}), Bulk("8"));
  EXPECT_EQ(h.Run({"INCR", "i"}), Int(9));  // the float result is an integer string again
}

TEST_F(StringFamilyTest, IncrByFloatErrors) {
  EXPECT_EQ(h.Run({"INCRBYFLOAT", "k", "abc"}), kNotFloatErr);
  EXPECT_EQ(h.Run({"INCRBYFLOAT", "k", ""}), kNotFloatErr);
  EXPECT_EQ(h.Run({"INCRBYFLOAT", "k", " 1"}), kNotFloatErr);
  EXPECT_EQ(h.Run({"INCRBYFLOAT", "k", "nan"}), kNotFloatErr);
  EXPECT_EQ(h.Run({"EXISTS", "k"}), Int(0));
  h.Run({"SET", "s", "hello"});
  EXPECT_EQ(h.Run({"INCRBYFLOAT", "s", "1"}), kNotFloatErr);
  const std::string nan_inf = Err("ERR increment would produce NaN or Infinity");
  EXPECT_EQ(h.Run({"INCRBYFLOAT", "k", "inf"}), nan_inf);
  EXPECT_EQ(h.Run({"INCRBYFLOAT", "k", "-Infinity"}), nan_inf);
  h.Run({"SET", "big", "1e4932"});
  EXPECT_EQ(h.Run({"INCRBYFLOAT", "big", "1e4932"}), nan_inf);
  EXPECT_EQ(h.Run({"GET", "big"}), Bulk("1e4932"));
  EXPECT_EQ(h.Run({"EXISTS", "k"}), Int(0));
}

// ---------------- OOM ----------------

TEST(StringFamilyOom, WritesOverMaxmemoryReplyOom) {
  // noeviction with a tiny maxmemory: the dispatcher's gate or the Store's
  // kOutOfMemory must answer with Redis's OOM text.
  CommandHarness h({"--maxmemory", "1mb", "--maxmemory-policy", "noeviction"});
  h.SetNow(kNow);
  const std::string oom = Err("OOM command not allowed when used memory > 'maxmemory'.");
  std::string chunk(64 * 1024, 'x');
  std::string last;
  for (int i = 0; i < 64 && last != oom; ++i) last = h.Run({"SET", "k" + std::to_string(i), chunk});
  EXPECT_EQ(last, oom);
  EXPECT_EQ(h.Run({"APPEND", "k0", chunk}), oom);
  EXPECT_EQ(h.Run({"GET", "k0"}), Bulk(chunk));  // reads still work
}

// ---------------- command table ----------------

TEST_F(StringFamilyTest, CommandTableEntries) {
  const CommandTable& t = h.server().commands();
  struct Want {
    const char* name;
    int arity, first, last, step;
    uint32_t must, must_not;
  };
  const Want wants[] = {
      {"get", 2, 1, 1, 1, kCmdReadOnly | kCmdFast, kCmdWrite},
      {"set", -3, 1, 1, 1, kCmdWrite | kCmdDenyOom, kCmdReadOnly | kCmdFast},
      {"setnx", 3, 1, 1, 1, kCmdWrite | kCmdDenyOom | kCmdFast, 0},
      {"setex", 4, 1, 1, 1, kCmdWrite | kCmdDenyOom, 0},
      {"psetex", 4, 1, 1, 1, kCmdWrite | kCmdDenyOom, 0},
      {"getset", 3, 1, 1, 1, kCmdWrite | kCmdDenyOom | kCmdFast, 0},
      {"getdel", 2, 1, 1, 1, kCmdWrite | kCmdFast, kCmdDenyOom},
      {"getex", -2, 1, 1, 1, kCmdWrite | kCmdFast, kCmdDenyOom},
      {"mget", -2, 1, -1, 1, kCmdReadOnly | kCmdFast, kCmdWrite},
      {"mset", -3, 1, -1, 2, kCmdWrite | kCmdDenyOom, 0},
      {"msetnx", -3, 1, -1, 2, kCmdWrite | kCmdDenyOom, 0},
      {"mexists", -2, 1, -1, 1, kCmdReadOnly | kCmdFast, kCmdWrite},
      {"append", 3, 1, 1, 1, kCmdWrite | kCmdDenyOom | kCmdFast, 0},
      {"strlen", 2, 1, 1, 1, kCmdReadOnly | kCmdFast, 0},
      {"getrange", 4, 1, 1, 1, kCmdReadOnly, kCmdFast},
      {"substr", 4, 1, 1, 1, kCmdReadOnly, kCmdFast},
      {"setrange", 4, 1, 1, 1, kCmdWrite | kCmdDenyOom, 0},
      {"incr", 2, 1, 1, 1, kCmdWrite | kCmdDenyOom | kCmdFast, 0},
      {"decr", 2, 1, 1, 1, kCmdWrite | kCmdDenyOom | kCmdFast, 0},
      {"incrby", 3, 1, 1, 1, kCmdWrite | kCmdDenyOom | kCmdFast, 0},
      {"decrby", 3, 1, 1, 1, kCmdWrite | kCmdDenyOom | kCmdFast, 0},
      {"incrbyfloat", 3, 1, 1, 1, kCmdWrite | kCmdDenyOom | kCmdFast, 0},
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
    EXPECT_NE(spec->handler, nullptr) << w.name;
  }
}

}  // namespace
}  // namespace kvpool
