// RDMA control messages authenticated end to end (rdma_seg_mac.h), over a
// real device ($RXE_IP; CI runs it in the Soft-RoCE guest as part of
// rdma_transport_test): with a pool secret every segment after the
// handshake is tagged and calls work; without one nothing is tagged; a
// segment changed between the MAC and the wire (the test hook stands for an
// attacker forging RoCE packets) is refused by the receiver, which closes
// the link without acting on it, and the link then recovers.
#include <gtest/gtest.h>

#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "storage/transport/rdma_seg_mac.h"
#include "storage/transport/rdma_test_util.h"
#include "storage/transport/rdma_wire.h"

namespace kvpool::transport::testing {
namespace {

using rdma::kSegSize;
using rdma::kSegTagSize;

// What the hook does to the next matching segment.
enum class Tamper { kNone, kFlipCallByte, kStripCallTag, kReplayReply };
std::atomic<Tamper> g_mode{Tamper::kNone};
std::atomic<int> g_tampered{0};
std::mutex g_mu;
std::vector<char> g_saved;  // kReplayReply: the first reply's segment

FrameKind KindOf(const char* seg, size_t len) {
  if (len < kSegSize + kHeaderSize || seg[0] != static_cast<char>(rdma::SegType::kFirst))
    return FrameKind::kHello;  // not a first segment: no frame kind
  FrameHeader h;
  if (!DecodeHeader(seg + kSegSize, WireLimits{1u << 30, 1u << 30}, &h).ok())
    return FrameKind::kHello;
  return h.kind;
}

char* Find(char* seg, size_t len, const char* marker) {
  return static_cast<char*>(memmem(seg, len, marker, std::strlen(marker)));
}

void Hook(char* seg, size_t len, bool tagged, bool acceptor) {
  if (!tagged) return;
  switch (g_mode.load()) {
    case Tamper::kNone:
      return;
    case Tamper::kFlipCallByte:
      // One body byte of a call, after its tag was computed.
      if (acceptor || KindOf(seg, len) != FrameKind::kCall) return;
      if (char* p = Find(seg, len, "FORGE-ME")) {
        *p = 'G';
        g_tampered++;
        g_mode = Tamper::kNone;
      }
      return;
    case Tamper::kStripCallTag:
      // The tagged flag cleared: the segment reads as an untagged one.
      if (acceptor || KindOf(seg, len) != FrameKind::kCall || !Find(seg, len, "STRIP-ME")) return;
      seg[2] = 0;
      g_tampered++;
      g_mode = Tamper::kNone;
      return;
    case Tamper::kReplayReply: {
      // The owner's reply to REPLAY-A is kept; the reply to REPLAY-B (same
      // length) is replaced by it: a genuine segment sent again.
      if (!acceptor || KindOf(seg, len) != FrameKind::kReply) return;
      std::lock_guard<std::mutex> l(g_mu);
      if (Find(seg, len, "REPLAY-A")) {
        g_saved.assign(seg, seg + len);
      } else if (Find(seg, len, "REPLAY-B") && g_saved.size() == len) {
        std::memcpy(seg, g_saved.data(), len);
        g_tampered++;
        g_mode = Tamper::kNone;
      }
      return;
    }
  }
}

class RdmaSegAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (RdmaIp().empty()) GTEST_SKIP() << "no $RXE_IP: run inside the Soft-RoCE guest";
    g_mode = Tamper::kNone;
    g_tampered = 0;
    g_saved.clear();
    rdma::SetSegTamperForTest(&Hook);
  }
  void TearDown() override { rdma::SetSegTamperForTest(nullptr); }

  // Node A (0) calls node B (1); both with `secret`.
  void Start(const std::string& secret) {
    ports_ = {NextRdmaPort(), NextRdmaPort()};
    a_ = std::make_unique<RdmaNode>(MakeRdmaOptions(0, ports_, secret), 1, logic_a_.Handler());
    b_ = std::make_unique<RdmaNode>(MakeRdmaOptions(1, ports_, secret), 1, logic_b_.Handler());
    ASSERT_TRUE(a_->start_status().ok()) << a_->start_status().ToString();
    ASSERT_TRUE(b_->start_status().ok()) << b_->start_status().ToString();
  }
  CallResult Echo(const std::string& body, int timeout_ms = 20000) {
    CallArgs args;
    args.opcode = kEcho;
    args.body = body;
    return a_->CallSync(0, 1, std::move(args), timeout_ms);
  }
  // Small calls, one of several segments, and one moving bulk both ways.
  void Traffic() {
    for (int i = 0; i < 5; ++i) {
      CallResult r = Echo("small " + std::to_string(i));
      ASSERT_TRUE(r.st.ok()) << r.st.ToString();
      EXPECT_EQ(r.reply, "small " + std::to_string(i));
    }
    const std::string big(3 * rdma::kMsgBytes + 123, 'b');
    CallResult r = Echo(big);
    ASSERT_TRUE(r.st.ok()) << r.st.ToString();
    EXPECT_EQ(r.reply, big);
    const std::string bulk(100000, 'q');
    CallArgs args;
    args.opcode = kBulkEcho;
    args.bulk_in = {{const_cast<char*>(bulk.data()), bulk.size()}};
    args.bulk_out_capacity = bulk.size();
    r = a_->CallSync(0, 1, std::move(args));
    ASSERT_TRUE(r.st.ok()) << r.st.ToString();
    EXPECT_EQ(r.bulk, bulk);
  }

  std::vector<int> ports_;
  RegionLogic logic_a_, logic_b_;
  std::unique_ptr<RdmaNode> a_, b_;
};

TEST_F(RdmaSegAuthTest, WithASecretEverySegmentAfterTheHandshakeIsTagged) {
  ASSERT_NO_FATAL_FAILURE(Start("pool-secret"));
  ASSERT_NO_FATAL_FAILURE(Traffic());
  const RdmaStats& sa = a_->stats();
  const RdmaStats& sb = b_->stats();
  // Untagged: A's HELLO and PROOF, B's CHALLENGE, and at most a credit
  // return each before the switch; everything else tagged.
  EXPECT_GE(sa.segments_tagged.load(), 8u);
  EXPECT_GE(sb.segments_tagged.load(), 8u);
  EXPECT_LE(sa.segments_sent.load() - sa.segments_tagged.load(), 3u);
  EXPECT_LE(sb.segments_sent.load() - sb.segments_tagged.load(), 2u);
  EXPECT_EQ(sa.segments_refused.load(), 0u);
  EXPECT_EQ(sb.segments_refused.load(), 0u);
  EXPECT_EQ(sa.connections.load(), 1u);  // one link the whole time
}

TEST_F(RdmaSegAuthTest, WithoutASecretNothingIsTagged) {
  ASSERT_NO_FATAL_FAILURE(Start(""));
  ASSERT_NO_FATAL_FAILURE(Traffic());
  EXPECT_EQ(a_->stats().segments_tagged.load(), 0u);
  EXPECT_EQ(b_->stats().segments_tagged.load(), 0u);
  EXPECT_GT(a_->stats().segments_sent.load(), 0u);
}

TEST_F(RdmaSegAuthTest, ForgedCallIsRefusedUnexecutedAndTheLinkRecovers) {
  ASSERT_NO_FATAL_FAILURE(Start("pool-secret"));
  ASSERT_TRUE(Echo("before").st.ok());
  const int handled = logic_b_.base().handled.load();
  g_mode = Tamper::kFlipCallByte;
  CallResult r = Echo("FORGE-ME please");
  EXPECT_EQ(g_tampered.load(), 1);
  EXPECT_EQ(r.st.code(), Code::kUnavailable) << r.st.ToString();  // not a timeout
  EXPECT_EQ(b_->stats().segments_refused.load(), 1u);
  EXPECT_EQ(logic_b_.base().handled.load(), handled);  // never reached the handler
  // A new connection, authenticated again, carries the next call.
  CallResult ok = Echo("after");
  ASSERT_TRUE(ok.st.ok()) << ok.st.ToString();
  EXPECT_EQ(ok.reply, "after");
  EXPECT_EQ(a_->stats().connections.load(), 2u);
}

TEST_F(RdmaSegAuthTest, CallWithItsTagStrippedIsRefused) {
  ASSERT_NO_FATAL_FAILURE(Start("pool-secret"));
  ASSERT_TRUE(Echo("before").st.ok());
  g_mode = Tamper::kStripCallTag;
  CallResult r = Echo("STRIP-ME");
  EXPECT_EQ(g_tampered.load(), 1);
  EXPECT_EQ(r.st.code(), Code::kUnavailable) << r.st.ToString();
  EXPECT_EQ(b_->stats().segments_refused.load(), 1u);
  ASSERT_TRUE(Echo("after").st.ok());
}

TEST_F(RdmaSegAuthTest, ReplayedReplyIsRefusedByTheRequester) {
  ASSERT_NO_FATAL_FAILURE(Start("pool-secret"));
  g_mode = Tamper::kReplayReply;
  CallResult first = Echo("REPLAY-A");
  ASSERT_TRUE(first.st.ok()) << first.st.ToString();
  EXPECT_EQ(first.reply, "REPLAY-A");
  CallResult second = Echo("REPLAY-B");
  EXPECT_EQ(g_tampered.load(), 1);
  // Refused at once (the link closes), not answered with A's reply and not
  // left to time out.
  EXPECT_EQ(second.st.code(), Code::kUnavailable) << second.st.ToString();
  EXPECT_EQ(a_->stats().segments_refused.load(), 1u);
  EXPECT_EQ(b_->stats().segments_refused.load(), 0u);
  ASSERT_TRUE(Echo("after").st.ok());
}

}  // namespace
}  // namespace kvpool::transport::testing
