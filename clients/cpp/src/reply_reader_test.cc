#include "reply_reader.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace kvpool::client {
namespace {

// Records every event as text; bulks go into per-element buffers.
class Recorder : public ReplySink {
 public:
  explicit Recorder(size_t cap = 64) : cap_(cap) {}
  void OnArray(int64_t n) override { log += "*" + std::to_string(n) + " "; }
  std::span<const Buffer> OnBulkStart(int64_t) override {
    store.emplace_back(cap_, '.');
    buf_ = Buffer{store.back().data(), store.back().size()};
    return {&buf_, 1};
  }
  void OnBulkEnd(int64_t len, bool stored) override {
    if (len < 0) {
      log += "nil ";
    } else if (stored) {
      log += "$" + store.back().substr(0, static_cast<size_t>(len)) + " ";
    } else {
      log += "dropped" + std::to_string(len) + " ";
    }
  }
  void OnInteger(int64_t v) override { log += ":" + std::to_string(v) + " "; }
  void OnStatus(std::string_view s) override { log += "+" + std::string(s) + " "; }
  void OnError(std::string_view s) override { log += "-" + std::string(s) + " "; }
  void OnReplyEnd() override { log += "| "; }

  std::string log;
  std::vector<std::string> store;

 private:
  size_t cap_;
  Buffer buf_;
};

const char kStream[] =
    "+OK\r\n-ERR no\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*3\r\n$1\r\na\r\n$-1\r\n$0\r\n\r\n"
    "*0\r\n*-1\r\n*2\r\n:1\r\n:0\r\n";
const char kExpected[] =
    "+OK | -ERR no | :42 | $hello | nil | *3 $a nil $ | *0 | *-1 | *2 :1 :0 | ";

TEST(ReplyReader, ParsesEveryReplyType) {
  ReplyReader r;
  Recorder rec;
  ASSERT_EQ(r.Feed(kStream, &rec), 1);
  EXPECT_EQ(rec.log, kExpected);
  EXPECT_TRUE(r.Idle());
}

TEST(ReplyReader, SplitAtEveryByte) {
  std::string in(kStream);
  for (size_t cut = 0; cut <= in.size(); ++cut) {
    ReplyReader r;
    Recorder rec;
    ASSERT_EQ(r.Feed(in.substr(0, cut), &rec), 1);
    ASSERT_EQ(r.Feed(in.substr(cut), &rec), 1);
    EXPECT_EQ(rec.log, kExpected) << "cut at " << cut;
  }
}

TEST(ReplyReader, ABulkLargerThanItsBuffersIsDropped) {
  ReplyReader r;
  Recorder rec(3);
  ASSERT_EQ(r.Feed("$5\r\nhello\r\n:1\r\n", &rec), 1);
  EXPECT_EQ(rec.log, "dropped5 | :1 | ");
}

TEST(ReplyReader, RefusesMalformedInput) {
  for (const char* bad : {"$abc\r\n", "$-2\r\n", "*-5\r\n", "?x\r\n", "*1\r\n*1\r\n", ":1x\r\n",
                          "$1\r\nab\r\n", "+OK\rX", "$2000000000000\r\n", "*2000000\r\n"}) {
    ReplyReader r;
    Recorder rec;
    EXPECT_EQ(r.Feed(bad, &rec), -1) << bad;
    EXPECT_FALSE(r.error().empty()) << bad;
    std::string before = rec.log;
    EXPECT_EQ(r.Feed("+OK\r\n", &rec), -1) << "a failed stream stays failed: " << bad;
    EXPECT_EQ(rec.log, before);
  }
  ReplyReader r;
  Recorder rec;
  EXPECT_EQ(r.Feed(std::string(ReplyReader::kMaxLine + 10, 'x'), &rec), -1);
}

// A large bulk split over two buffers, received from a socket: the bytes
// after the reader's own buffer go straight into the destination.
TEST(ReplyReader, ReceivesALargeBulkIntoScatteredBuffers) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  std::string value(300 * 1024, '\0');
  for (size_t i = 0; i < value.size(); ++i) value[i] = static_cast<char>(i * 131 + 7);
  std::string wire = "*1\r\n$" + std::to_string(value.size()) + "\r\n" + value + "\r\n";
  std::vector<char> a(100 * 1024), b(250 * 1024, 'z');
  Buffer bufs[2] = {{a.data(), a.size()}, {b.data(), b.size()}};
  struct Sink : ReplySink {
    std::span<const Buffer> dst;
    int64_t got = -2;
    bool stored = false, done = false;
    void OnArray(int64_t) override {}
    std::span<const Buffer> OnBulkStart(int64_t) override { return dst; }
    void OnBulkEnd(int64_t len, bool s) override { got = len, stored = s; }
    void OnInteger(int64_t) override {}
    void OnStatus(std::string_view) override {}
    void OnError(std::string_view) override {}
    void OnReplyEnd() override { done = true; }
  } sink;
  sink.dst = {bufs, 2};
  ReplyReader r;
  size_t sent = 0;
  while (!sink.done) {
    if (sent < wire.size()) {
      ssize_t w = write(sv[0], wire.data() + sent, wire.size() - sent);
      if (w > 0) sent += static_cast<size_t>(w);
    }
    ASSERT_GE(r.Pump(sv[1], &sink), 0) << r.error();
  }
  EXPECT_EQ(sink.got, static_cast<int64_t>(value.size()));
  EXPECT_TRUE(sink.stored);
  EXPECT_EQ(std::string(a.data(), a.size()), value.substr(0, a.size()));
  EXPECT_EQ(std::string(b.data(), value.size() - a.size()), value.substr(a.size()));
  EXPECT_EQ(b[value.size() - a.size()], 'z');  // nothing written past the value
  close(sv[0]);
  close(sv[1]);
}

}  // namespace
}  // namespace kvpool::client
