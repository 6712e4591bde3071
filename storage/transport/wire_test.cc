#include "storage/transport/wire.h"

#include <gtest/gtest.h>

#include <cstring>

namespace kvpool::transport {
namespace {

constexpr WireLimits kLimits{1000, 5000};

FrameHeader Sample() {
  FrameHeader h;
  h.kind = FrameKind::kCall;
  h.opcode = 0xBEEF;
  h.call_id = 0x0102030405060708ull;
  h.body_len = 1000;
  h.bulk_len = 4999;
  h.bulk_cap = 5000;
  return h;
}

TEST(WireTest, RoundTrip) {
  char buf[kHeaderSize];
  EncodeHeader(Sample(), buf);
  FrameHeader out;
  ASSERT_TRUE(DecodeHeader(buf, kLimits, &out).ok());
  EXPECT_EQ(out.kind, FrameKind::kCall);
  EXPECT_EQ(out.opcode, 0xBEEF);
  EXPECT_EQ(out.call_id, 0x0102030405060708ull);
  EXPECT_EQ(out.body_len, 1000u);
  EXPECT_EQ(out.bulk_len, 4999u);
  EXPECT_EQ(out.bulk_cap, 5000u);
}

TEST(WireTest, BigEndianLayout) {
  char buf[kHeaderSize];
  EncodeHeader(Sample(), buf);
  const unsigned char* u = reinterpret_cast<const unsigned char*>(buf);
  EXPECT_EQ(std::memcmp(buf, "KVP", 3), 0);
  EXPECT_EQ(u[3], kWireVersion);
  EXPECT_EQ(u[4], static_cast<uint8_t>(FrameKind::kCall));
  EXPECT_EQ(u[5], 0);
  EXPECT_EQ(u[6], 0xBE);
  EXPECT_EQ(u[7], 0xEF);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(u[8 + i], i + 1);
  EXPECT_EQ(u[16 + 6], 1000 >> 8);
  EXPECT_EQ(u[16 + 7], 1000 & 0xFF);
}

TEST(WireTest, RejectsBadMagicVersionKindFlags) {
  char buf[kHeaderSize];
  FrameHeader out;
  EncodeHeader(Sample(), buf);
  buf[0] = 'X';
  EXPECT_EQ(DecodeHeader(buf, kLimits, &out).code(), Code::kInvalidArgument);

  EncodeHeader(Sample(), buf);
  buf[3] = kWireVersion + 1;
  Status st = DecodeHeader(buf, kLimits, &out);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_NE(st.message().find("version"), std::string::npos);

  EncodeHeader(Sample(), buf);
  buf[4] = 99;
  EXPECT_EQ(DecodeHeader(buf, kLimits, &out).code(), Code::kInvalidArgument);

  EncodeHeader(Sample(), buf);
  buf[5] = 1;
  EXPECT_EQ(DecodeHeader(buf, kLimits, &out).code(), Code::kInvalidArgument);
}

TEST(WireTest, RejectsOversizeLengths) {
  char buf[kHeaderSize];
  FrameHeader out;
  FrameHeader h = Sample();
  h.body_len = kLimits.max_body + 1;
  EncodeHeader(h, buf);
  EXPECT_EQ(DecodeHeader(buf, kLimits, &out).code(), Code::kInvalidArgument);

  h = Sample();
  h.bulk_len = kLimits.max_bulk + 1;
  EncodeHeader(h, buf);
  EXPECT_EQ(DecodeHeader(buf, kLimits, &out).code(), Code::kInvalidArgument);

  h = Sample();
  h.bulk_cap = kLimits.max_bulk + 1;
  EncodeHeader(h, buf);
  EXPECT_EQ(DecodeHeader(buf, kLimits, &out).code(), Code::kInvalidArgument);

  // Lengths that would overflow a 64-bit sum are rejected by the limits.
  h = Sample();
  h.body_len = ~0ull;
  h.bulk_len = ~0ull;
  EncodeHeader(h, buf);
  EXPECT_EQ(DecodeHeader(buf, kLimits, &out).code(), Code::kInvalidArgument);

  // Exactly at the limits is fine.
  h = Sample();
  h.bulk_len = kLimits.max_bulk;
  EncodeHeader(h, buf);
  EXPECT_TRUE(DecodeHeader(buf, kLimits, &out).ok());
}

TEST(WireTest, RejectsBulkOnKindsWithout) {
  char buf[kHeaderSize];
  FrameHeader out;
  for (FrameKind k : {FrameKind::kHello, FrameKind::kChallenge, FrameKind::kProof,
                      FrameKind::kAuthOk, FrameKind::kAuthFail, FrameKind::kErrorReply}) {
    FrameHeader h;
    h.kind = k;
    h.bulk_len = 1;
    EncodeHeader(h, buf);
    EXPECT_FALSE(DecodeHeader(buf, kLimits, &out).ok()) << int(k);
    h.bulk_len = 0;
    EncodeHeader(h, buf);
    EXPECT_TRUE(DecodeHeader(buf, kLimits, &out).ok()) << int(k);
  }
  FrameHeader reply;
  reply.kind = FrameKind::kReply;
  reply.bulk_len = 10;
  EncodeHeader(reply, buf);
  EXPECT_TRUE(DecodeHeader(buf, kLimits, &out).ok());
  reply.bulk_cap = 10;  // only calls carry a capacity
  EncodeHeader(reply, buf);
  EXPECT_FALSE(DecodeHeader(buf, kLimits, &out).ok());
}

}  // namespace
}  // namespace kvpool::transport
