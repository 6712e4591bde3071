#include "protocol/resp_parser.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <vector>

// Global allocation probe: the parser must never allocate from a length it
// has not checked, so tests record the largest single allocation it makes.
namespace {
std::atomic<bool> g_track_allocs{false};
std::atomic<size_t> g_largest_alloc{0};
}  // namespace

void* operator new(std::size_t n) {
  if (g_track_allocs.load(std::memory_order_relaxed)) {
    size_t prev = g_largest_alloc.load(std::memory_order_relaxed);
    while (n > prev && !g_largest_alloc.compare_exchange_weak(prev, n)) {
    }
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace kvpool::protocol {
namespace {

using Request = std::vector<std::string>;

// What a server would observe: the requests in order, then either an error
// or some bytes still waiting for the rest of a request.
struct Trace {
  std::vector<Request> requests;
  std::string error;    // empty unless kError
  size_t leftover = 0;  // unconsumed bytes at the end (no error)
  bool operator==(const Trace&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Trace& t) {
  os << "{";
  for (const auto& r : t.requests) {
    os << "[";
    for (const auto& a : r) os << testing::PrintToString(a) << " ";
    os << "] ";
  }
  return os << "error=\"" << t.error << "\" leftover=" << t.leftover << "}";
}

// Feeds `chunks` as a connection would: append to the pending bytes, parse
// until kNeedMore/kError, drop what was consumed. Every Parse call gets a
// fresh exact-size heap copy, so ASan flags both reads past the input and
// pointers kept across calls.
Trace Feed(const std::vector<std::string_view>& chunks, const ParserLimits& limits) {
  RequestParser parser(limits);
  Trace trace;
  std::string pending;
  std::vector<std::string_view> args;
  for (std::string_view chunk : chunks) {
    pending.append(chunk);
    for (;;) {
      auto buf = std::make_unique<char[]>(pending.size());  // exact: ASan sees overreads
      std::memcpy(buf.get(), pending.data(), pending.size());
      const std::string_view in(buf.get(), pending.size());
      size_t consumed = 12345;
      const ParseResult r = parser.Parse(in, &consumed, &args);
      if (r == ParseResult::kError) {
        EXPECT_EQ(consumed, 0u);
        EXPECT_FALSE(parser.error().empty());
        // Sticky until Reset: no progress after an error.
        EXPECT_EQ(parser.Parse(in, &consumed, &args), ParseResult::kError);
        EXPECT_EQ(consumed, 0u);
        trace.error = parser.error();
        return trace;
      }
      if (r == ParseResult::kNeedMore) {
        EXPECT_EQ(consumed, 0u);
        if (parser.min_request_size() != 0) {
          EXPECT_GT(parser.min_request_size(), in.size());
        }
        break;
      }
      EXPECT_GT(consumed, 0u);
      EXPECT_LE(consumed, in.size());
      Request req;
      for (std::string_view a : args) {
        // Multibulk args are zero-copy views of the input's request bytes.
        if (in[0] == '*') {
          EXPECT_GE(a.data(), in.data());
          EXPECT_LE(a.data() + a.size(), in.data() + consumed);
        }
        req.emplace_back(a);
      }
      trace.requests.push_back(std::move(req));
      pending.erase(0, consumed);
    }
  }
  trace.leftover = pending.size();
  return trace;
}

// Checks `input` whole, split in two at every byte, and fed one byte at a
// time: all must give `want`.
void ExpectParse(std::string_view input, const Trace& want, const ParserLimits& limits = {}) {
  EXPECT_EQ(Feed({input}, limits), want) << "whole input";
  for (size_t k = 1; k < input.size(); ++k) {
    EXPECT_EQ(Feed({input.substr(0, k), input.substr(k)}, limits), want) << "split at " << k;
  }
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < input.size(); ++i) bytes.push_back(input.substr(i, 1));
  EXPECT_EQ(Feed(bytes, limits), want) << "byte by byte";
}

Trace Ok(std::vector<Request> reqs, size_t leftover = 0) { return {std::move(reqs), "", leftover}; }
Trace Err(std::vector<Request> reqs, std::string error) {
  return {std::move(reqs), std::move(error), 0};
}

using namespace std::string_literals;

TEST(RespParser, Multibulk) {
  ExpectParse("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n", Ok({{"SET", "k", "value"}}));
  ExpectParse("*1\r\n$4\r\nPING\r\n", Ok({{"PING"}}));
  ExpectParse("*2\r\n$3\r\nGET\r\n$0\r\n\r\n", Ok({{"GET", ""}}));
}

TEST(RespParser, PipelinedMultibulk) {
  ExpectParse("*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n*1\r\n$4\r\nQUIT\r\n",
              Ok({{"PING"}, {"GET", "a"}, {"QUIT"}}));
}

TEST(RespParser, BinaryBulks) {
  const std::string in = "*3\r\n$3\r\nSET\r\n$4\r\n\0\r\n\0\r\n$6\r\n\r\n$1\r\n\r\n"s;
  ExpectParse(in, Ok({{"SET", "\0\r\n\0"s, "\r\n$1\r\n"}}));
  ExpectParse("*1\r\n$3\r\n*\r\n\r\n", Ok({{"*\r\n"}}));
}

TEST(RespParser, EmptyAndNegativeCounts) {
  ExpectParse("*0\r\n", Ok({{}}));
  ExpectParse("*-1\r\n", Ok({{}}));
  ExpectParse("*-100\r\n*1\r\n$1\r\nx\r\n*0\r\n", Ok({{}, {"x"}, {}}));
}

TEST(RespParser, Incomplete) {
  ExpectParse("*2\r\n$3\r\nGET\r\n$1\r\n", Ok({}, 17));
  ExpectParse("*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPI", Ok({{"PING"}}, 10));
  ExpectParse("*1\r\n$4\r\nPING\r", Ok({}, 13));
  ExpectParse("GET k", Ok({}, 5));
}

TEST(RespParser, Inline) {
  ExpectParse("PING\r\n", Ok({{"PING"}}));
  ExpectParse("SET k v\n", Ok({{"SET", "k", "v"}}));
  ExpectParse("  SET \t k   v  \r\n", Ok({{"SET", "k", "v"}}));
  ExpectParse("a\rb\r\n", Ok({{"a", "b"}}));         // inner CR separates
  ExpectParse("a\vb \fc\r\n", Ok({{"a\vb", "c"}}));  // \v ends no token, leads are skipped
  ExpectParse("a\0b c\r\n"s, Ok({{"a\0b"s, "c"}}));  // NUL is an ordinary byte
  ExpectParse("\r\n\n   \r\n\t\n", Ok({{}, {}, {}, {}}));
  ExpectParse("PING\r\r\n", Ok({{"PING"}}));
}

TEST(RespParser, InlineQuotes) {
  ExpectParse("SET \"a b\" 'c d'\r\n", Ok({{"SET", "a b", "c d"}}));
  ExpectParse(R"(X "\n\r\t\b\a\\\"\q\x41\x4a\x4G\xZ")"
              "\n",
              Ok({{"X", "\n\r\t\b\a\\\"qAJx4GxZ"}}));
  ExpectParse(R"(X "\x00\xff")"
              "\n",
              Ok({{"X", "\0\xff"s}}));
  ExpectParse(R"(X 'it\'s' 'a\nb' '\\x')"
              "\n",
              Ok({{"X", "it's", "a\\nb", "\\\\x"}}));
  ExpectParse("X foo\"bar baz\" q'u x'\n", Ok({{"X", "foobar baz", "qu x"}}));
  ExpectParse("X \"\" ''\n", Ok({{"X", "", ""}}));
  ExpectParse("X \"a\"\t'b'\v\n", Ok({{"X", "a", "b"}}));  // any isspace after a quote
  ExpectParse("X \"a\r\n", Err({}, "ERR Protocol error: unbalanced quotes in request"));
}

TEST(RespParser, InlineUnbalancedQuotes) {
  const std::string e = "ERR Protocol error: unbalanced quotes in request";
  for (const char* in : {"SET \"abc\n", "SET \"abc\"def\n", "SET 'abc\n", "SET 'a'b\n",
                         "SET \"abc\\\n", "SET 'a\\'\n", "GET \"\"\"\n"}) {
    SCOPED_TRACE(in);
    ExpectParse(in, Err({}, e));
  }
  ExpectParse("PING\nSET 'x\nPING\n", Err({{"PING"}}, e));
}

TEST(RespParser, MixedInlineAndMultibulk) {
  ExpectParse("PING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nECHO 'hi there'\n\r\n*0\r\n",
              Ok({{"PING"}, {"GET", "k"}, {"ECHO", "hi there"}, {}, {}}));
}

TEST(RespParser, InvalidMultibulkLength) {
  const std::string e = "ERR Protocol error: invalid multibulk length";
  for (const char* in : {"*abc\r\n", "*+1\r\n", "* 1\r\n", "*1 \r\n", "*01\r\n", "*\r\n", "*-\r\n",
                         "*-0\r\n", "*1x\r\n", "*1\rX", "*99999999999999999999\r\n",
                         "*123456789012345678901\r\n", "*1048577\r\n", "*10000000\r\n"}) {
    SCOPED_TRACE(in);
    ExpectParse(in, Err({}, e));
  }
  ParserLimits two;
  two.max_args = 2;
  ExpectParse("*2\r\n$1\r\na\r\n$1\r\nb\r\n*3\r\n", Err({{"a", "b"}}, e), two);
}

TEST(RespParser, ExpectedDollar) {
  ExpectParse("*1\r\nX3\r\nfoo\r\n", Err({}, "ERR Protocol error: expected '$', got 'X'"));
  ExpectParse("*2\r\n$1\r\na\r\n*1\r\n", Err({}, "ERR Protocol error: expected '$', got '*'"));
  // CR/LF would corrupt the error reply, so they show as a space.
  ExpectParse("*1\r\n\r\n", Err({}, "ERR Protocol error: expected '$', got ' '"));
  ExpectParse("*1\r\n\0"s, Err({}, "ERR Protocol error: expected '$', got '\0'"s));
}

TEST(RespParser, InvalidBulkLength) {
  const std::string e = "ERR Protocol error: invalid bulk length";
  for (const char* in :
       {"*1\r\n$-1\r\n", "*1\r\n$abc\r\n", "*1\r\n$+3\r\n", "*1\r\n$03\r\n", "*1\r\n$ 3\r\n",
        "*1\r\n$3 \r\n", "*1\r\n$\r\n", "*1\r\n$3\rX", "*1\r\n$-9223372036854775809\r\n",
        "*1\r\n$9223372036854775808\r\n", "*1\r\n$1073741824\r\n"}) {
    SCOPED_TRACE(in);
    ExpectParse(in, Err({}, e));
  }
  ParserLimits small;
  small.max_bulk_len = 3;
  ExpectParse("*2\r\n$3\r\nabc\r\n$4\r\nabcd\r\n", Err({}, e), small);
  ExpectParse("*1\r\n$3\r\nabc\r\n", Ok({{"abc"}}), small);
}

TEST(RespParser, ExpectedCrlfAfterBulk) {
  const std::string e = "ERR Protocol error: expected CRLF after bulk";
  for (const char* in : {"*1\r\n$3\r\nfooXY", "*1\r\n$3\r\nfoo\rX", "*1\r\n$3\r\nfoo\n\r",
                         "*2\r\n$1\r\na\r\n$1\r\nbc\r\n", "*1\r\n$0\r\n\n"}) {
    SCOPED_TRACE(in);
    ExpectParse(in, Err({}, e));
  }
}

TEST(RespParser, HeaderLineLimits) {
  ParserLimits l;
  l.max_inline_len = 8;
  l.max_args = UINT64_MAX;
  // CR at offset 8 of the line is allowed, at 9 is too big.
  ExpectParse("*1234567\r\n", Ok({}, 10), l);
  ExpectParse("*12345678\r\n", Err({}, "ERR Protocol error: too big mbulk count string"), l);
  ExpectParse("*123456789", Err({}, "ERR Protocol error: too big mbulk count string"), l);
  ExpectParse("*1234567", Ok({}, 8), l);  // the CR may still come at offset 8
  ExpectParse("*1\r\n$1234567\r\n", Ok({}, 14), l);
  ExpectParse("*1\r\n$12345678\r\n", Err({}, "ERR Protocol error: too big bulk count string"), l);
  ExpectParse("*1\r\n$000000000", Err({}, "ERR Protocol error: too big bulk count string"), l);
}

TEST(RespParser, InlineLineLimit) {
  ParserLimits l;
  l.max_inline_len = 16;
  const std::string e = "ERR Protocol error: too big inline request";
  ExpectParse(std::string(16, 'a') + "\n", Ok({{std::string(16, 'a')}}), l);
  ExpectParse(std::string(15, 'a') + "\r\n", Ok({{std::string(15, 'a')}}), l);
  ExpectParse(std::string(16, 'a') + "\r\n", Err({}, e), l);
  ExpectParse(std::string(17, 'a'), Err({}, e), l);
  ExpectParse(std::string(16, 'a'), Ok({}, 16), l);
  ExpectParse("PING\n" + std::string(20, ' ') + "\n", Err({{"PING"}}, e), l);
}

TEST(RespParser, StickyErrorUntilReset) {
  RequestParser p;
  size_t consumed = 0;
  std::vector<std::string_view> args;
  ASSERT_EQ(p.Parse("*x\r\n", &consumed, &args), ParseResult::kError);
  EXPECT_EQ(p.Parse("PING\r\n", &consumed, &args), ParseResult::kError);
  EXPECT_EQ(consumed, 0u);
  p.Reset();
  EXPECT_TRUE(p.error().empty());
  ASSERT_EQ(p.Parse("PING\r\n", &consumed, &args), ParseResult::kOk);
  EXPECT_EQ(consumed, 6u);
  ASSERT_EQ(args.size(), 1u);
  EXPECT_EQ(args[0], "PING");
}

TEST(RespParser, ResetForgetsPartialRequest) {
  RequestParser p;
  size_t consumed = 0;
  std::vector<std::string_view> args;
  ASSERT_EQ(p.Parse("*2\r\n$3\r\nGET\r\n", &consumed, &args), ParseResult::kNeedMore);
  p.Reset();
  ASSERT_EQ(p.Parse("*1\r\n$1\r\nx\r\n", &consumed, &args), ParseResult::kOk);
  EXPECT_EQ(args, std::vector<std::string_view>{"x"});
}

TEST(RespParser, MinRequestSize) {
  RequestParser p;
  size_t consumed = 0;
  std::vector<std::string_view> args;
  EXPECT_EQ(p.Parse("*1\r\n$1", &consumed, &args), ParseResult::kNeedMore);
  EXPECT_EQ(p.min_request_size(), 0u);  // header not complete yet
  EXPECT_EQ(p.Parse("*1\r\n$10\r\nab", &consumed, &args), ParseResult::kNeedMore);
  EXPECT_EQ(p.min_request_size(), 21u);  // 9 bytes of headers + 10 + CRLF
  EXPECT_EQ(p.Parse("*1\r\n$10\r\n0123456789\r", &consumed, &args), ParseResult::kNeedMore);
  EXPECT_EQ(p.min_request_size(), 21u);
  EXPECT_EQ(p.Parse("*1\r\n$10\r\n0123456789\r\n", &consumed, &args), ParseResult::kOk);
  EXPECT_EQ(consumed, 21u);
}

TEST(RespParser, HugeAnnouncementsDoNotAllocate) {
  RequestParser p;
  size_t consumed = 0;
  std::vector<std::string_view> args;
  args.reserve(4);
  g_largest_alloc = 0;
  g_track_allocs = true;
  const ParseResult too_many = p.Parse("*10000000\r\n", &consumed, &args);
  p.Reset();
  const ParseResult allowed = p.Parse("*1048576\r\n$1\r\na\r\n", &consumed, &args);
  const size_t min_size_allowed = p.min_request_size();
  p.Reset();
  const ParseResult too_long = p.Parse("*1\r\n$1073741824\r\n", &consumed, &args);
  p.Reset();
  const ParseResult big_ok = p.Parse("*1\r\n$536870912\r\nabc", &consumed, &args);
  g_track_allocs = false;
  EXPECT_EQ(too_many, ParseResult::kError);
  EXPECT_EQ(allowed, ParseResult::kNeedMore);
  EXPECT_EQ(min_size_allowed, 0u);
  EXPECT_EQ(too_long, ParseResult::kError);
  EXPECT_EQ(big_ok, ParseResult::kNeedMore);
  EXPECT_EQ(p.min_request_size(), 16u + 536870912u + 2u);
  EXPECT_LE(g_largest_alloc.load(), 1024 * sizeof(std::pair<size_t, size_t>));
}

TEST(RespParser, LimitsMayChangeBetweenRequests) {
  RequestParser p;
  size_t consumed = 0;
  std::vector<std::string_view> args;
  ASSERT_EQ(p.Parse("*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n", &consumed, &args), ParseResult::kOk);
  ParserLimits tight;
  tight.max_args = 2;
  p.set_limits(tight);
  EXPECT_EQ(p.limits().max_args, 2u);
  EXPECT_EQ(p.Parse("*3\r\n", &consumed, &args), ParseResult::kError);
  EXPECT_EQ(p.error(), "ERR Protocol error: invalid multibulk length");
}

TEST(RespParser, ManyArgsAndReuse) {
  std::string in = "*5000\r\n";
  Request want;
  for (int i = 0; i < 5000; ++i) {
    want.push_back(std::to_string(i));
    in += "$" + std::to_string(want.back().size()) + "\r\n" + want.back() + "\r\n";
  }
  in += "*1\r\n$4\r\nPING\r\n";
  EXPECT_EQ(Feed({in}, {}), Ok({want, {"PING"}}));
  EXPECT_EQ(Feed({std::string_view(in).substr(0, 777), std::string_view(in).substr(777)}, {}),
            Ok({want, {"PING"}}));
}

// Byte-at-a-time feeding must be linear: a quadratic parser would rescan
// these multi-megabyte requests millions of times and time out.
TEST(RespParser, ByteAtATimeIsLinear) {
  ParserLimits l;
  l.max_inline_len = 8 << 20;
  const std::string big(4 << 20, 'v');
  for (const std::string& in :
       {"*2\r\n$3\r\nSET\r\n$" + std::to_string(big.size()) + "\r\n" + big + "\r\n",
        "SET k " + big + "\r\n"}) {
    RequestParser p(l);
    size_t consumed = 0;
    std::vector<std::string_view> args;
    ParseResult r = ParseResult::kNeedMore;
    size_t n = 0;
    while (r == ParseResult::kNeedMore && n < in.size()) {
      r = p.Parse(std::string_view(in.data(), ++n), &consumed, &args);
    }
    ASSERT_EQ(r, ParseResult::kOk);
    EXPECT_EQ(consumed, in.size());
    EXPECT_EQ(args.back(), big);
  }
}

// Random valid traffic, cut into random chunks, must parse back exactly.
TEST(RespParser, RandomizedRoundTrip) {
  std::mt19937 rng(12345);
  for (int iter = 0; iter < 300; ++iter) {
    std::string wire;
    std::vector<Request> want;
    const int nreq = 1 + static_cast<int>(rng() % 8);
    for (int r = 0; r < nreq; ++r) {
      Request req;
      const bool inline_req = rng() % 3 == 0;
      const int nargs = 1 + static_cast<int>(rng() % 5);
      for (int a = 0; a < nargs; ++a) {
        std::string arg;
        const size_t len = rng() % 3 == 0 ? rng() % 300 : rng() % 8;
        for (size_t i = 0; i < len; ++i) {
          arg.push_back(inline_req ? static_cast<char>('a' + rng() % 26)
                                   : static_cast<char>(rng() % 256));
        }
        if (inline_req && arg.empty()) arg = "x";
        req.push_back(arg);
      }
      if (inline_req) {
        for (const auto& a : req) wire += a + " ";
        wire += "\r\n";
      } else {
        wire += "*" + std::to_string(req.size()) + "\r\n";
        for (const auto& a : req) wire += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
      }
      want.push_back(std::move(req));
    }
    std::vector<std::string_view> chunks;
    for (size_t pos = 0; pos < wire.size();) {
      const size_t n = std::min<size_t>(wire.size() - pos, 1 + rng() % 40);
      chunks.push_back(std::string_view(wire).substr(pos, n));
      pos += n;
    }
    ASSERT_EQ(Feed(chunks, {}), Ok(want)) << "iteration " << iter;
  }
}

}  // namespace
}  // namespace kvpool::protocol
