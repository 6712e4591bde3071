#include "protocol/reply_reader.h"

#include <gtest/gtest.h>

#include "protocol/reply_builder.h"

namespace kvpool::protocol {
namespace {

TEST(ReplyReaderTest, ReadsEveryType) {
  ReplyValue v;
  ASSERT_TRUE(ReadReply("+OK\r\n", &v));
  EXPECT_EQ(v.type, ReplyValue::kStatus);
  EXPECT_EQ(v.str, "OK");
  ASSERT_TRUE(ReadReply("-ERR bad\r\n", &v));
  EXPECT_EQ(v.type, ReplyValue::kError);
  EXPECT_EQ(v.str, "ERR bad");
  ASSERT_TRUE(ReadReply(":-42\r\n", &v));
  EXPECT_EQ(v.type, ReplyValue::kInteger);
  EXPECT_EQ(v.integer, -42);
  ASSERT_TRUE(ReadReply("$5\r\na\r\nbc\r\n", &v));
  EXPECT_EQ(v.type, ReplyValue::kString);
  EXPECT_EQ(v.str, "a\r\nbc");
  ASSERT_TRUE(ReadReply("$-1\r\n", &v));
  EXPECT_EQ(v.type, ReplyValue::kNil);
  ASSERT_TRUE(ReadReply("_\r\n", &v));
  EXPECT_EQ(v.type, ReplyValue::kNil);
  ASSERT_TRUE(ReadReply("*-1\r\n", &v));
  EXPECT_EQ(v.type, ReplyValue::kNil);
  ASSERT_TRUE(ReadReply("*2\r\n$1\r\n7\r\n*2\r\n$1\r\na\r\n$0\r\n\r\n", &v));
  ASSERT_EQ(v.type, ReplyValue::kArray);
  ASSERT_EQ(v.elements.size(), 2u);
  EXPECT_EQ(v.elements[0].str, "7");
  ASSERT_EQ(v.elements[1].elements.size(), 2u);
  EXPECT_EQ(v.elements[1].elements[1].str, "");
}

// What the builder writes, the reader reads back.
TEST(ReplyReaderTest, RoundTripsTheBuilder) {
  StringSink sink;
  ReplyBuilder rb(&sink, 2);
  rb.ArrayHeader(4);
  rb.Integer(7);
  rb.Bulk(std::string(1000, 'x'));
  rb.Null();
  rb.Error("ERR x");
  ReplyValue v;
  ASSERT_TRUE(ReadReply(sink.out, &v));
  ASSERT_EQ(v.elements.size(), 4u);
  EXPECT_EQ(v.elements[0].integer, 7);
  EXPECT_EQ(v.elements[1].str.size(), 1000u);
  EXPECT_EQ(v.elements[2].type, ReplyValue::kNil);
  EXPECT_EQ(v.elements[3].type, ReplyValue::kError);
}

TEST(ReplyReaderTest, RefusesMalformedIncompleteAndTrailing) {
  const char* bad[] = {"",          "+OK",         "+OK\r\n+OK\r\n", ":\r\n",     ":12a\r\n",
                       "$3\r\nab\r\n", "$2\r\nabcd\r\n", "$-2\r\n",      "*1\r\n",    "*-2\r\n",
                       "?x\r\n",     "_x\r\n",      "$99999999999999999999\r\n",
                       "*1000000000\r\n:1\r\n"};
  for (const char* b : bad) {
    ReplyValue v;
    EXPECT_FALSE(ReadReply(b, &v)) << b;
  }
}

TEST(ReplyReaderTest, DepthIsBounded) {
  std::string deep;
  for (int i = 0; i <= kMaxReplyDepth + 1; ++i) deep += "*1\r\n";
  deep += ":1\r\n";
  ReplyValue v;
  EXPECT_FALSE(ReadReply(deep, &v));
  std::string ok;
  for (int i = 0; i < kMaxReplyDepth; ++i) ok += "*1\r\n";
  ok += ":1\r\n";
  EXPECT_TRUE(ReadReply(ok, &v));
}

// Every prefix of a valid reply is refused (incomplete), never misread.
TEST(ReplyReaderTest, EveryPrefixIsIncomplete) {
  std::string full = "*3\r\n$3\r\nabc\r\n:5\r\n*1\r\n+x\r\n";
  for (size_t i = 0; i < full.size(); ++i) {
    ReplyValue v;
    EXPECT_FALSE(ReadReply(std::string_view(full).substr(0, i), &v)) << i;
  }
}

}  // namespace
}  // namespace kvpool::protocol
