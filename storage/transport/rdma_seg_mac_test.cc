// The MACs of RDMA control messages (rdma_seg_mac.h), without a device:
// each segment's tag is the frame MAC over its bytes at its place in the
// direction's sequence, and a forged byte, a replayed, reordered, dropped or
// misdirected segment, a stripped tag or a missing one are all refused.
#include "storage/transport/rdma_seg_mac.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "storage/transport/auth.h"

namespace kvpool::transport::rdma {
namespace {

// Both directions' keys of one connection, as the handshake derives them.
auth::FrameKeys Keys(uint8_t seed = 1) {
  auth::Nonce c{}, s{};
  c.fill(seed);
  s.fill(static_cast<uint8_t>(seed + 1));
  return auth::DeriveFrameKeys("pool-secret", c, s, auth::Ids{0, 1, 0});
}

// A segment as Conn builds it: header (tagged), a wire header and body
// bytes for kFirst, nothing else for kCredit; `buf` has room for the tag.
struct Segment {
  std::vector<char> buf = std::vector<char>(kMsgBytes);
  size_t len = 0;  // with the tag once sealed
};

Segment Build(SegType type, uint32_t credits, const std::string& body, uint64_t call_id = 7) {
  Segment s;
  EncodeSeg(Seg{type, credits, true}, s.buf.data());
  s.len = kSegSize;
  if (type == SegType::kFirst) {
    FrameHeader h;
    h.kind = FrameKind::kCall;
    h.call_id = call_id;
    h.body_len = body.size();
    EncodeHeader(h, s.buf.data() + s.len);
    s.len += kHeaderSize;
    std::memcpy(s.buf.data() + s.len, body.data(), body.size());
    s.len += body.size();
  }
  return s;
}

Segment Sealed(SegSealer* sealer, SegType type, uint32_t credits, const std::string& body,
               uint64_t call_id = 7) {
  Segment s = Build(type, credits, body, call_id);
  EXPECT_TRUE(sealer->Seal(s.buf.data(), s.len).ok());
  s.len += kSegTagSize;
  return s;
}

Status Open(SegOpener* o, const Segment& s, size_t* data_len = nullptr) {
  Seg seg;
  Status st = DecodeSeg(s.buf.data(), &seg);
  if (!st.ok()) return st;
  size_t n = 0;
  st = o->Open(s.buf.data(), s.len, seg.tagged, &n);
  if (data_len) *data_len = n;
  return st;
}

TEST(RdmaSegMacTest, TagIsTheFrameMacOfTheSegmentAtItsSequenceNumber) {
  const auth::FrameKeys k = Keys();
  SegSealer sealer;
  ASSERT_TRUE(sealer.Enable(k.to_server).ok());
  FrameMac ref;
  ASSERT_TRUE(ref.Init(k.to_server).ok());
  for (int i = 0; i < 3; ++i) {
    Segment s = Sealed(&sealer, SegType::kFirst, static_cast<uint32_t>(i), "body " + std::to_string(i));
    FrameTag want{};
    ASSERT_TRUE(ref.Begin().ok());
    ASSERT_TRUE(ref.Update(s.buf.data(), s.len - kSegTagSize).ok());
    ASSERT_TRUE(ref.Finish(&want).ok());
    EXPECT_EQ(std::memcmp(s.buf.data() + s.len - kSegTagSize, want.data(), kSegTagSize), 0)
        << "segment " << i;
  }
}

TEST(RdmaSegMacTest, SegmentsInOrderPassWithTheirLength) {
  const auth::FrameKeys k = Keys();
  SegSealer sealer;
  SegOpener opener;
  ASSERT_TRUE(sealer.Enable(k.to_client).ok());
  ASSERT_TRUE(opener.Require(k.to_client).ok());
  EXPECT_TRUE(opener.on());
  const std::string big(kFirstRoom, 'x');
  for (const std::string& body : {std::string(), std::string("hello"), big}) {
    Segment s = Sealed(&sealer, SegType::kFirst, 3, body);
    size_t n = 0;
    ASSERT_TRUE(Open(&opener, s, &n).ok());
    EXPECT_EQ(n, kSegSize + kHeaderSize + body.size());
  }
  Segment credit = Sealed(&sealer, SegType::kCredit, 16, "");
  size_t n = 0;
  ASSERT_TRUE(Open(&opener, credit, &n).ok());
  EXPECT_EQ(n, kSegSize);
  EXPECT_EQ(opener.accepted(), 4u);
}

TEST(RdmaSegMacTest, EveryForgedByteIsRefused) {
  // Header (type, version, flags, credits), wire header, body and tag: a
  // changed bit anywhere fails, and nothing of the segment is used.
  const auth::FrameKeys k = Keys();
  const std::string body = "GET key:1";
  Segment good;
  {
    SegSealer sealer;
    ASSERT_TRUE(sealer.Enable(k.to_server).ok());
    good = Sealed(&sealer, SegType::kFirst, 5, body);
  }
  for (size_t i = 0; i < good.len; ++i) {
    for (uint8_t bit : {uint8_t{0x01}, uint8_t{0x80}}) {
      Segment bad = good;
      bad.buf[i] = static_cast<char>(bad.buf[i] ^ bit);
      SegOpener opener;
      ASSERT_TRUE(opener.Require(k.to_server).ok());
      Status st = Open(&opener, bad);
      EXPECT_FALSE(st.ok()) << "byte " << i << " bit " << int(bit);
    }
  }
  SegOpener opener;
  ASSERT_TRUE(opener.Require(k.to_server).ok());
  EXPECT_TRUE(Open(&opener, good).ok());  // and the untouched one passes
}

TEST(RdmaSegMacTest, ReplayedSegmentIsRefused) {
  const auth::FrameKeys k = Keys();
  SegSealer sealer;
  SegOpener opener;
  ASSERT_TRUE(sealer.Enable(k.to_server).ok());
  ASSERT_TRUE(opener.Require(k.to_server).ok());
  Segment a = Sealed(&sealer, SegType::kFirst, 0, "SET k v", 1);
  ASSERT_TRUE(Open(&opener, a).ok());
  Status st = Open(&opener, a);  // the same bytes again, as segment 1
  EXPECT_EQ(st.code(), Code::kPermissionDenied) << st.ToString();
}

TEST(RdmaSegMacTest, ReorderedOrDroppedSegmentIsRefused) {
  const auth::FrameKeys k = Keys();
  SegSealer sealer;
  ASSERT_TRUE(sealer.Enable(k.to_server).ok());
  Segment s0 = Sealed(&sealer, SegType::kFirst, 0, "first", 1);
  Segment s1 = Sealed(&sealer, SegType::kFirst, 0, "second", 2);
  Segment s2 = Sealed(&sealer, SegType::kCredit, 4, "");
  {
    SegOpener opener;  // 1 before 0
    ASSERT_TRUE(opener.Require(k.to_server).ok());
    EXPECT_EQ(Open(&opener, s1).code(), Code::kPermissionDenied);
  }
  {
    SegOpener opener;  // 0, then 2 (1 dropped)
    ASSERT_TRUE(opener.Require(k.to_server).ok());
    ASSERT_TRUE(Open(&opener, s0).ok());
    EXPECT_EQ(Open(&opener, s2).code(), Code::kPermissionDenied);
  }
  {
    SegOpener opener;  // in order: all pass
    ASSERT_TRUE(opener.Require(k.to_server).ok());
    EXPECT_TRUE(Open(&opener, s0).ok());
    EXPECT_TRUE(Open(&opener, s1).ok());
    EXPECT_TRUE(Open(&opener, s2).ok());
  }
}

TEST(RdmaSegMacTest, OtherDirectionOrConnectionIsRefused) {
  const auth::FrameKeys k = Keys(1);
  const auth::FrameKeys other = Keys(9);  // another connection's nonces
  SegSealer sealer;
  ASSERT_TRUE(sealer.Enable(k.to_server).ok());
  Segment s = Sealed(&sealer, SegType::kFirst, 0, "call");
  SegOpener reflected;  // sent back to its sender: the other direction's key
  ASSERT_TRUE(reflected.Require(k.to_client).ok());
  EXPECT_EQ(Open(&reflected, s).code(), Code::kPermissionDenied);
  SegOpener elsewhere;
  ASSERT_TRUE(elsewhere.Require(other.to_server).ok());
  EXPECT_EQ(Open(&elsewhere, s).code(), Code::kPermissionDenied);
}

TEST(RdmaSegMacTest, MissingOrStrippedTagIsRefusedOnceRequired) {
  const auth::FrameKeys k = Keys();
  SegSealer sealer;
  ASSERT_TRUE(sealer.Enable(k.to_server).ok());
  Segment s = Sealed(&sealer, SegType::kFirst, 2, "payload");
  // The flag cleared and the tag cut off: a well-formed untagged segment.
  Segment stripped = s;
  stripped.buf[2] = 0;
  stripped.len -= kSegTagSize;
  SegOpener opener;
  ASSERT_TRUE(opener.Require(k.to_server).ok());
  EXPECT_EQ(Open(&opener, stripped).code(), Code::kPermissionDenied);
  // Flag cleared but the bytes kept: the tag is read as body, still untagged.
  Segment unflagged = s;
  unflagged.buf[2] = 0;
  SegOpener opener2;
  ASSERT_TRUE(opener2.Require(k.to_server).ok());
  EXPECT_EQ(Open(&opener2, unflagged).code(), Code::kPermissionDenied);
  // Too short to hold a tag.
  Segment shorty = s;
  shorty.len = kSegSize + kSegTagSize - 1;
  SegOpener opener3;
  ASSERT_TRUE(opener3.Require(k.to_server).ok());
  EXPECT_FALSE(Open(&opener3, shorty).ok());
}

TEST(RdmaSegMacTest, TaggedSegmentWithoutAKeyIsRefused) {
  const auth::FrameKeys k = Keys();
  SegSealer sealer;
  ASSERT_TRUE(sealer.Enable(k.to_server).ok());
  Segment s = Sealed(&sealer, SegType::kCredit, 1, "");
  SegOpener opener;  // no secret: untagged only
  EXPECT_FALSE(opener.on());
  EXPECT_EQ(Open(&opener, s).code(), Code::kPermissionDenied);
  Segment plain = Build(SegType::kCredit, 1, "");
  plain.buf[2] = 0;
  SegOpener opener2;
  size_t n = 0;
  EXPECT_TRUE(Open(&opener2, plain, &n).ok());
  EXPECT_EQ(n, kSegSize);
}

TEST(RdmaSegMacTest, ArmedAcceptsUntaggedOnlyUntilTheFirstTaggedSegment) {
  // The connector between PROOF and AUTH_OK: the acceptor's credit returns
  // may still be untagged; from its first tagged segment on, nothing else.
  const auth::FrameKeys k = Keys();
  SegSealer sealer;
  ASSERT_TRUE(sealer.Enable(k.to_client).ok());
  SegOpener opener;
  ASSERT_TRUE(opener.Arm(k.to_client).ok());
  Segment plain = Build(SegType::kCredit, 1, "");
  plain.buf[2] = 0;
  EXPECT_TRUE(Open(&opener, plain).ok());
  EXPECT_FALSE(opener.on());
  // A forged tagged segment does not switch it on...
  Segment forged = Sealed(&sealer, SegType::kFirst, 0, "");
  forged.buf[kSegSize + 1] ^= 1;
  {
    SegOpener o2;
    ASSERT_TRUE(o2.Arm(k.to_client).ok());
    EXPECT_EQ(Open(&o2, forged).code(), Code::kPermissionDenied);
    EXPECT_FALSE(o2.on());
  }
  // ...a genuine one does, and untagged ones are refused from then on.
  SegSealer sealer2;
  ASSERT_TRUE(sealer2.Enable(k.to_client).ok());
  Segment auth_ok = Sealed(&sealer2, SegType::kFirst, 0, "");
  EXPECT_TRUE(Open(&opener, auth_ok).ok());
  EXPECT_TRUE(opener.on());
  EXPECT_EQ(Open(&opener, plain).code(), Code::kPermissionDenied);
}

TEST(RdmaSegMacTest, SealRefusesASegmentWithoutRoomForItsTag) {
  const auth::FrameKeys k = Keys();
  SegSealer off;
  std::vector<char> buf(kMsgBytes);
  EncodeSeg(Seg{SegType::kCredit, 0, true}, buf.data());
  EXPECT_FALSE(off.Seal(buf.data(), kSegSize).ok());  // not keyed
  SegSealer sealer;
  ASSERT_TRUE(sealer.Enable(k.to_server).ok());
  EXPECT_FALSE(sealer.Seal(buf.data(), kMsgBytes - kSegTagSize + 1).ok());
  EXPECT_TRUE(sealer.Seal(buf.data(), kMsgBytes - kSegTagSize).ok());
}

}  // namespace
}  // namespace kvpool::transport::rdma
