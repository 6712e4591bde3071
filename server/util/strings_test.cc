// Number parsing/formatting with Redis's acceptance rules, and glob matching.
#include "server/util/strings.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

namespace kvpool {
namespace {

// ---------------- ParseInt64 (Redis string2ll) ----------------

TEST(ParseInt64Test, Accepts) {
  struct Case {
    const char* in;
    int64_t out;
  };
  for (const Case& c : {Case{"0", 0}, Case{"1", 1}, Case{"-1", -1}, Case{"42", 42},
                        Case{"1000000", 1000000}, Case{"9223372036854775807", INT64_MAX},
                        Case{"-9223372036854775808", INT64_MIN},
                        Case{"9223372036854775806", INT64_MAX - 1},
                        Case{"-9223372036854775807", INT64_MIN + 1}}) {
    int64_t v = 12345;
    EXPECT_TRUE(ParseInt64(c.in, &v)) << c.in;
    EXPECT_EQ(v, c.out) << c.in;
  }
}

TEST(ParseInt64Test, RejectsOverflow) {
  int64_t v;
  EXPECT_FALSE(ParseInt64("9223372036854775808", &v));
  EXPECT_FALSE(ParseInt64("-9223372036854775809", &v));
  EXPECT_FALSE(ParseInt64("18446744073709551615", &v));
  EXPECT_FALSE(ParseInt64("18446744073709551616", &v));
  EXPECT_FALSE(ParseInt64("99999999999999999999", &v));
  EXPECT_FALSE(ParseInt64("123456789012345678901", &v)) << "21 digits";
}

TEST(ParseInt64Test, RejectsWhatRedisRejects) {
  int64_t v = 7;
  for (const char* bad : {"", "-", "+", "+1", "-0", "00", "01", "-01", "007", " 1", "1 ", "1a",
                          "a1", "1.0", "1e3", "0x10", "--1", "1-", "\t1", "１"}) {
    EXPECT_FALSE(ParseInt64(bad, &v)) << "'" << bad << "'";
  }
  EXPECT_FALSE(ParseInt64(std::string_view("1\0", 2), &v)) << "embedded NUL";
  EXPECT_EQ(v, 7) << "the output is untouched on failure";
}

// ---------------- ParseLongDouble / ParseDouble ----------------

TEST(ParseLongDoubleTest, Accepts) {
  long double v;
  ASSERT_TRUE(ParseLongDouble("10.5", &v));
  EXPECT_EQ(v, 10.5L);
  ASSERT_TRUE(ParseLongDouble("-1.5", &v));
  EXPECT_EQ(v, -1.5L);
  ASSERT_TRUE(ParseLongDouble("5.0e3", &v));
  EXPECT_EQ(v, 5000.0L);
  ASSERT_TRUE(ParseLongDouble("1E-2", &v));
  EXPECT_NEAR(static_cast<double>(v), 0.01, 1e-15);
  ASSERT_TRUE(ParseLongDouble("+3", &v));
  EXPECT_EQ(v, 3.0L);
  ASSERT_TRUE(ParseLongDouble(".5", &v));
  EXPECT_EQ(v, 0.5L);
  ASSERT_TRUE(ParseLongDouble("007", &v));
  EXPECT_EQ(v, 7.0L);
  ASSERT_TRUE(ParseLongDouble("-0", &v));
  EXPECT_EQ(v, 0.0L);
}

TEST(ParseLongDoubleTest, Rejects) {
  long double v;
  for (const char* bad : {"", " 1", "1 ", "abc", "1.5x", "nan", "NaN", "inf", "-inf",
                          "infinity", "1e99999", "-1e99999", "1..2", "--1"}) {
    EXPECT_FALSE(ParseLongDouble(bad, &v)) << "'" << bad << "'";
  }
  EXPECT_FALSE(ParseLongDouble(std::string(6000, '1'), &v)) << "longer than Redis accepts";
  EXPECT_FALSE(ParseLongDouble(std::string_view("1\0", 2), &v));
}

TEST(ParseDoubleTest, InfinityAllowedNanNot) {
  double v;
  ASSERT_TRUE(ParseDouble("1.5", &v));
  EXPECT_EQ(v, 1.5);
  ASSERT_TRUE(ParseDouble("inf", &v));
  EXPECT_TRUE(std::isinf(v) && v > 0);
  ASSERT_TRUE(ParseDouble("-inf", &v));
  EXPECT_TRUE(std::isinf(v) && v < 0);
  EXPECT_FALSE(ParseDouble("nan", &v));
  EXPECT_FALSE(ParseDouble(" 1", &v));
  EXPECT_FALSE(ParseDouble("1 ", &v));
  EXPECT_FALSE(ParseDouble("", &v));
  EXPECT_FALSE(ParseDouble("x", &v));
}

// ---------------- FormatLongDouble (INCRBYFLOAT) ----------------

long double L(const char* s) {
  long double v = 0;
  EXPECT_TRUE(ParseLongDouble(s, &v)) << s;
  return v;
}

TEST(FormatLongDoubleTest, IncrByFloatCases) {
  // The examples of Redis's INCRBYFLOAT documentation and tests.
  EXPECT_EQ(FormatLongDouble(L("10.5") + L("0.1")), "10.6");
  EXPECT_EQ(FormatLongDouble(L("5.0e3")), "5000");
  EXPECT_EQ(FormatLongDouble(L("5.0e3") + L("2.0e2")), "5200");
  EXPECT_EQ(FormatLongDouble(L("10.50") + L("0")), "10.5");
  EXPECT_EQ(FormatLongDouble(L("3.0") + L("1.1")), "4.1");
  EXPECT_EQ(FormatLongDouble(L("1") + L("-1.1")), "-0.1");
}

TEST(FormatLongDoubleTest, Shapes) {
  EXPECT_EQ(FormatLongDouble(0), "0");
  EXPECT_EQ(FormatLongDouble(-0.0L), "0") << "no negative zero";
  EXPECT_EQ(FormatLongDouble(3), "3");
  EXPECT_EQ(FormatLongDouble(-1.5L), "-1.5");
  EXPECT_EQ(FormatLongDouble(L("0.0000123")), "0.0000123");
  EXPECT_EQ(FormatLongDouble(1e20L), "100000000000000000000") << "no exponent";
  EXPECT_EQ(FormatLongDouble(100), "100") << "zeros before the point stay";
}

TEST(FormatInt64Test, Edges) {
  EXPECT_EQ(FormatInt64(0), "0");
  EXPECT_EQ(FormatInt64(-1), "-1");
  EXPECT_EQ(FormatInt64(INT64_MAX), "9223372036854775807");
  EXPECT_EQ(FormatInt64(INT64_MIN), "-9223372036854775808");
}

// ---------------- GlobMatch (Redis stringmatchlen) ----------------

TEST(GlobMatchTest, Star) {
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("*", "anything"));
  EXPECT_TRUE(GlobMatch("**", "x"));
  EXPECT_TRUE(GlobMatch("h*llo", "hllo"));
  EXPECT_TRUE(GlobMatch("h*llo", "heeeello"));
  EXPECT_TRUE(GlobMatch("a*b*c", "aXXbYYc"));
  EXPECT_FALSE(GlobMatch("a*b*c", "aXXbYY"));
  EXPECT_TRUE(GlobMatch("user:*", "user:1000"));
  EXPECT_FALSE(GlobMatch("user:*", "users:1000"));
  EXPECT_TRUE(GlobMatch("*:1000", "user:1000"));
  EXPECT_FALSE(GlobMatch("", "a"));
  EXPECT_TRUE(GlobMatch("", ""));
}

TEST(GlobMatchTest, QuestionMark) {
  EXPECT_TRUE(GlobMatch("h?llo", "hello"));
  EXPECT_TRUE(GlobMatch("h?llo", "hallo"));
  EXPECT_FALSE(GlobMatch("h?llo", "hllo"));
  EXPECT_FALSE(GlobMatch("?", ""));
  EXPECT_TRUE(GlobMatch("??", "ab"));
  EXPECT_FALSE(GlobMatch("??", "abc"));
}

TEST(GlobMatchTest, Classes) {
  EXPECT_TRUE(GlobMatch("h[ae]llo", "hello"));
  EXPECT_TRUE(GlobMatch("h[ae]llo", "hallo"));
  EXPECT_FALSE(GlobMatch("h[ae]llo", "hillo"));
  EXPECT_TRUE(GlobMatch("h[^e]llo", "hallo"));
  EXPECT_FALSE(GlobMatch("h[^e]llo", "hello"));
  EXPECT_TRUE(GlobMatch("h[a-b]llo", "hbllo"));
  EXPECT_FALSE(GlobMatch("h[a-b]llo", "hcllo"));
  EXPECT_TRUE(GlobMatch("[a-c]", "b"));
  EXPECT_TRUE(GlobMatch("[c-a]", "b")) << "a reversed range, as Redis";
  EXPECT_FALSE(GlobMatch("[^a]", "a"));
  EXPECT_TRUE(GlobMatch("[^a]", "b"));
  EXPECT_TRUE(GlobMatch("[^a-c]x", "dx"));
  EXPECT_FALSE(GlobMatch("[^a-c]x", "bx"));
  EXPECT_TRUE(GlobMatch("[\\]]", "]"));
  EXPECT_TRUE(GlobMatch("[*]", "*"));
  EXPECT_FALSE(GlobMatch("[*]", "a"));
  EXPECT_TRUE(GlobMatch("[0-9]*", "7abc"));
}

TEST(GlobMatchTest, Escapes) {
  EXPECT_TRUE(GlobMatch("\\*", "*"));
  EXPECT_FALSE(GlobMatch("\\*", "a"));
  EXPECT_TRUE(GlobMatch("a\\?b", "a?b"));
  EXPECT_FALSE(GlobMatch("a\\?b", "axb"));
  EXPECT_TRUE(GlobMatch("\\[a]", "[a]"));
  EXPECT_TRUE(GlobMatch("\\\\", "\\"));
  EXPECT_TRUE(GlobMatch("a\\", "a\\")) << "a trailing backslash matches itself";
}

TEST(GlobMatchTest, NoCase) {
  EXPECT_FALSE(GlobMatch("HELLO", "hello"));
  EXPECT_TRUE(GlobMatch("HELLO", "hello", true));
  EXPECT_TRUE(GlobMatch("h[A-C]llo", "hbllo", true));
  EXPECT_FALSE(GlobMatch("h[A-C]llo", "hbllo", false));
  EXPECT_TRUE(GlobMatch("MaxMemory*", "maxmemory-policy", true));
}

TEST(GlobMatchTest, BinarySafe) {
  EXPECT_TRUE(GlobMatch(std::string_view("a\0*", 3), std::string_view("a\0bc", 4)));
  EXPECT_FALSE(GlobMatch(std::string_view("a\0", 2), "a"));
  EXPECT_TRUE(GlobMatch("?", "\xff"));
}

TEST(GlobMatchTest, HostilePatternIsFast) {
  std::string s(10 * 1024, 'a');
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(GlobMatch("*a*a*a*a*a*a*a*a*a*b", s));
  EXPECT_TRUE(GlobMatch("*a*a*a*a*a*a*a*a*a*a", s));
  EXPECT_FALSE(GlobMatch("a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", s));
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, std::chrono::milliseconds(500));
}

// ---------------- case helpers ----------------

TEST(CaseTest, ToLowerAndEqualsIgnoreCase) {
  EXPECT_EQ(ToLower("MaxMemory-POLICY"), "maxmemory-policy");
  EXPECT_EQ(ToLower(""), "");
  EXPECT_EQ(ToLower("\xC3\x89"), "\xC3\x89") << "ASCII only";
  EXPECT_TRUE(EqualsIgnoreCase("GET", "get"));
  EXPECT_TRUE(EqualsIgnoreCase("", ""));
  EXPECT_FALSE(EqualsIgnoreCase("get", "gets"));
  EXPECT_FALSE(EqualsIgnoreCase("get", "set"));
}

}  // namespace
}  // namespace kvpool
