#include "protocol/reply_builder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace kvpool::protocol {
namespace {

using namespace std::string_literals;

// Counts Write calls so tests can pin "one Write per small reply".
class CountingSink : public StringSink {
 public:
  void Write(const char* data, size_t len) override {
    ++writes;
    StringSink::Write(data, len);
  }
  int writes = 0;
};

// A sink that keeps references and releases them only when flushed, like a
// socket writer with zero-copy sends.
class DeferredSink : public ReplySink {
 public:
  struct Ref {
    const char* data;
    size_t len;
    void (*release)(void*);
    void* ctx;
  };
  void Write(const char* data, size_t len) override { parts.emplace_back(data, len); }
  void WriteRef(const char* data, size_t len, void (*release)(void*), void* ctx) override {
    parts.emplace_back(data, len);
    refs.push_back({data, len, release, ctx});
  }
  std::string Flush() {
    std::string out;
    for (const auto& p : parts) out += p;
    for (const auto& r : refs) r.release(r.ctx);
    parts.clear();
    refs.clear();
    return out;
  }
  std::vector<std::string> parts;
  std::vector<Ref> refs;
};

// Runs `fn` against a builder in RESP2 and RESP3 and checks the bytes.
template <typename Fn>
void ExpectBytes(Fn fn, const std::string& resp2, const std::string& resp3) {
  for (int resp : {2, 3}) {
    StringSink sink;
    ReplyBuilder rb(&sink, resp);
    fn(rb);
    EXPECT_EQ(sink.out, resp == 2 ? resp2 : resp3) << "RESP" << resp;
  }
}

TEST(ReplyBuilder, SimpleStringAndOk) {
  ExpectBytes([](ReplyBuilder& rb) { rb.SimpleString("PONG"); }, "+PONG\r\n", "+PONG\r\n");
  ExpectBytes([](ReplyBuilder& rb) { rb.Ok(); }, "+OK\r\n", "+OK\r\n");
  ExpectBytes([](ReplyBuilder& rb) { rb.SimpleString(""); }, "+\r\n", "+\r\n");
  ExpectBytes([](ReplyBuilder& rb) { rb.SimpleString("a\r\nb"); }, "+a  b\r\n", "+a  b\r\n");
}

TEST(ReplyBuilder, Error) {
  ExpectBytes([](ReplyBuilder& rb) { rb.Error("ERR unknown command"); }, "-ERR unknown command\r\n",
              "-ERR unknown command\r\n");
  ExpectBytes([](ReplyBuilder& rb) { rb.Error("ERR bad\r\nthing\n"); }, "-ERR bad  thing \r\n",
              "-ERR bad  thing \r\n");
  ExpectBytes([](ReplyBuilder& rb) { rb.Error("ERR \0x"s); }, "-ERR \0x\r\n"s, "-ERR \0x\r\n"s);
}

TEST(ReplyBuilder, LongLinesAreSanitizedAcrossChunks) {
  for (size_t len : {508u, 509u, 510u, 511u, 512u, 513u, 1023u, 1024u, 5000u}) {
    std::string msg(len, 'x');
    for (size_t i = 0; i < len; i += 7) msg[i] = (i % 2) ? '\r' : '\n';
    std::string want = "-" + msg + "\r\n";
    for (size_t i = 1; i + 2 < want.size(); ++i) {
      if (want[i] == '\r' || want[i] == '\n') want[i] = ' ';
    }
    ExpectBytes([&](ReplyBuilder& rb) { rb.Error(msg); }, want, want);
  }
}

TEST(ReplyBuilder, Integer) {
  const std::vector<std::pair<int64_t, std::string>> cases = {
      {0, "0"},
      {1, "1"},
      {-1, "-1"},
      {9, "9"},
      {10, "10"},
      {99, "99"},
      {100, "100"},
      {-100, "-100"},
      {12345, "12345"},
      {INT64_MAX, "9223372036854775807"},
      {INT64_MIN, "-9223372036854775808"},
  };
  for (const auto& [v, text] : cases) {
    ExpectBytes([v = v](ReplyBuilder& rb) { rb.Integer(v); }, ":" + text + "\r\n",
                ":" + text + "\r\n");
  }
  // Every digit count and boundary, against the standard library.
  std::mt19937_64 rng(7);
  std::vector<int64_t> values;
  for (int64_t p = 1; p <= INT64_MAX / 10; p *= 10) {
    for (int64_t v : {p - 1, p, p + 1, -p, -p + 1, -p - 1}) values.push_back(v);
  }
  for (int i = 0; i < 10000; ++i) values.push_back(static_cast<int64_t>(rng() >> (rng() % 64)));
  StringSink sink;
  ReplyBuilder rb(&sink);
  for (int64_t v : values) {
    sink.out.clear();
    rb.Integer(v);
    ASSERT_EQ(sink.out, ":" + std::to_string(v) + "\r\n");
  }
}

TEST(ReplyBuilder, Bulk) {
  ExpectBytes([](ReplyBuilder& rb) { rb.Bulk("hello"); }, "$5\r\nhello\r\n", "$5\r\nhello\r\n");
  ExpectBytes([](ReplyBuilder& rb) { rb.Bulk(""); }, "$0\r\n\r\n", "$0\r\n\r\n");
  ExpectBytes([](ReplyBuilder& rb) { rb.Bulk("a\r\n\0b"s); }, "$5\r\na\r\n\0b\r\n"s,
              "$5\r\na\r\n\0b\r\n"s);
  for (size_t len : {480u, 487u, 488u, 489u, 490u, 512u, 100000u}) {
    const std::string v(len, 'z');
    const std::string want = "$" + std::to_string(len) + "\r\n" + v + "\r\n";
    ExpectBytes([&](ReplyBuilder& rb) { rb.Bulk(v); }, want, want);
  }
}

TEST(ReplyBuilder, SmallRepliesUseOneWrite) {
  for (int resp : {2, 3}) {
    CountingSink sink;
    ReplyBuilder rb(&sink, resp);
    rb.Ok();
    rb.Error("ERR x");
    rb.Integer(-42);
    rb.Bulk(std::string(400, 'a'));
    rb.Null();
    rb.NullArray();
    rb.ArrayHeader(3);
    rb.MapHeader(2);
    rb.SetHeader(2);
    rb.Double(3.25);
    rb.Bool(true);
    rb.Verbatim("some info");
    rb.Raw("+OK\r\n");
    EXPECT_EQ(sink.writes, 13) << "RESP" << resp;
    sink.writes = 0;
    rb.Bulk(std::string(100000, 'b'));
    EXPECT_EQ(sink.writes, 3);  // header, payload in place, CRLF
  }
}

TEST(ReplyBuilder, BulkRefReleasesOnce) {
  int released = 0;
  auto release = [](void* ctx) { ++*static_cast<int*>(ctx); };
  const std::string value = "referenced\r\nvalue";
  {
    StringSink sink;  // default WriteRef: copy, release at once
    ReplyBuilder rb(&sink, 2);
    rb.BulkRef(value.data(), value.size(), release, &released);
    EXPECT_EQ(released, 1);
    EXPECT_EQ(sink.out, "$17\r\nreferenced\r\nvalue\r\n");
  }
  released = 0;
  for (int resp : {2, 3}) {
    DeferredSink sink;
    ReplyBuilder rb(&sink, resp);
    rb.ArrayHeader(2);
    rb.BulkRef(value.data(), value.size(), release, &released);
    rb.BulkRef(value.data(), 0, release, &released);
    EXPECT_EQ(released, 0);  // the sink still holds the references
    ASSERT_EQ(sink.refs.size(), 2u);
    EXPECT_EQ(sink.refs[0].data, value.data());  // not copied
    EXPECT_EQ(sink.Flush(), "*2\r\n$17\r\nreferenced\r\nvalue\r\n$0\r\n\r\n");
    EXPECT_EQ(released, 2);
    released = 0;
  }
}

TEST(ReplyBuilder, Nulls) {
  ExpectBytes([](ReplyBuilder& rb) { rb.Null(); }, "$-1\r\n", "_\r\n");
  ExpectBytes([](ReplyBuilder& rb) { rb.NullArray(); }, "*-1\r\n", "_\r\n");
}

TEST(ReplyBuilder, AggregateHeaders) {
  ExpectBytes([](ReplyBuilder& rb) { rb.ArrayHeader(0); }, "*0\r\n", "*0\r\n");
  ExpectBytes([](ReplyBuilder& rb) { rb.ArrayHeader(512); }, "*512\r\n", "*512\r\n");
  ExpectBytes([](ReplyBuilder& rb) { rb.MapHeader(3); }, "*6\r\n", "%3\r\n");
  ExpectBytes([](ReplyBuilder& rb) { rb.MapHeader(0); }, "*0\r\n", "%0\r\n");
  ExpectBytes([](ReplyBuilder& rb) { rb.SetHeader(4); }, "*4\r\n", "~4\r\n");
  ExpectBytes([](ReplyBuilder& rb) { rb.ArrayHeader(SIZE_MAX); }, "*18446744073709551615\r\n",
              "*18446744073709551615\r\n");
}

TEST(ReplyBuilder, Double) {
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<std::pair<double, std::string>> cases = {
      {1.5, "1.5"},
      {0, "0"},
      {-0.0, "-0"},
      {-2, "-2"},
      {0.1, "0.10000000000000001"},
      {1e300, "1.0000000000000001e+300"},
      {-1.2345678901234567e-308, "-1.2345678901234567e-308"},
      {123456789012345678.0, "1.2345678901234568e+17"},
      {inf, "inf"},
      {-inf, "-inf"},
      {nan, "nan"},
      {-nan, "nan"},
  };
  for (const auto& [v, text] : cases) {
    ExpectBytes([v = v](ReplyBuilder& rb) { rb.Double(v); },
                "$" + std::to_string(text.size()) + "\r\n" + text + "\r\n", "," + text + "\r\n");
  }
  // Same text as Redis's snprintf("%.17g").
  std::mt19937_64 rng(3);
  StringSink sink;
  ReplyBuilder rb(&sink, 3);
  for (int i = 0; i < 10000; ++i) {
    const uint64_t bits = rng();
    double v;
    std::memcpy(&v, &bits, sizeof(v));
    if (!std::isfinite(v)) continue;
    char want[64];
    snprintf(want, sizeof(want), ",%.17g\r\n", v);
    sink.out.clear();
    rb.Double(v);
    ASSERT_EQ(sink.out, want);
  }
}

TEST(ReplyBuilder, Bool) {
  ExpectBytes([](ReplyBuilder& rb) { rb.Bool(true); }, ":1\r\n", "#t\r\n");
  ExpectBytes([](ReplyBuilder& rb) { rb.Bool(false); }, ":0\r\n", "#f\r\n");
}

TEST(ReplyBuilder, Verbatim) {
  ExpectBytes([](ReplyBuilder& rb) { rb.Verbatim("# Server\r\nx:1\r\n"); },
              "$15\r\n# Server\r\nx:1\r\n\r\n", "=19\r\ntxt:# Server\r\nx:1\r\n\r\n");
  ExpectBytes([](ReplyBuilder& rb) { rb.Verbatim("hi", "markdown"); }, "$2\r\nhi\r\n",
              "=6\r\nmar:hi\r\n");
  ExpectBytes([](ReplyBuilder& rb) { rb.Verbatim("hi", "md"); }, "$2\r\nhi\r\n",
              "=6\r\nmd :hi\r\n");
  ExpectBytes([](ReplyBuilder& rb) { rb.Verbatim("", ""); }, "$0\r\n\r\n", "=4\r\n   :\r\n");
  const std::string big(10000, 'i');
  ExpectBytes([&](ReplyBuilder& rb) { rb.Verbatim(big); }, "$10000\r\n" + big + "\r\n",
              "=10004\r\ntxt:" + big + "\r\n");
}

TEST(ReplyBuilder, Raw) {
  ExpectBytes([](ReplyBuilder& rb) { rb.Raw("*1\r\n:1\r\n"); }, "*1\r\n:1\r\n", "*1\r\n:1\r\n");
  ExpectBytes([](ReplyBuilder& rb) { rb.Raw(""); }, "", "");
}

TEST(ReplyBuilder, BulkArrayAndMixedSequence) {
  const std::vector<std::string> items = {"a", "", "ccc"};
  ExpectBytes([&](ReplyBuilder& rb) { rb.BulkArray(items); },
              "*3\r\n$1\r\na\r\n$0\r\n\r\n$3\r\nccc\r\n",
              "*3\r\n$1\r\na\r\n$0\r\n\r\n$3\r\nccc\r\n");
  ExpectBytes(
      [](ReplyBuilder& rb) {
        rb.MapHeader(2);
        rb.Bulk("k");
        rb.Null();
        rb.Bulk("s");
        rb.SetHeader(1);
        rb.Integer(7);
      },
      "*4\r\n$1\r\nk\r\n$-1\r\n$1\r\ns\r\n*1\r\n:7\r\n",
      "%2\r\n$1\r\nk\r\n_\r\n$1\r\ns\r\n~1\r\n:7\r\n");
}

TEST(ReplyBuilder, SinkAndProtocolCanChange) {
  StringSink a, b;
  ReplyBuilder rb(&a);
  EXPECT_EQ(rb.resp(), 2);
  EXPECT_EQ(rb.sink(), &a);
  rb.Null();
  rb.set_sink(&b);
  rb.set_resp(3);
  rb.Null();
  EXPECT_EQ(a.out, "$-1\r\n");
  EXPECT_EQ(b.out, "_\r\n");
}

}  // namespace
}  // namespace kvpool::protocol
