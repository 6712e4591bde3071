// Parts of the RDMA transport that need no RDMA device: its wire additions,
// option checks, and the clear refusal when no device is usable (the server
// then falls back to TCP or refuses to start), and loading the plugin the
// server gets them from (rdma_plugin.h).
#include <gtest/gtest.h>

#include <cstring>

#include "storage/transport/rdma_plugin.h"
#include "storage/transport/rdma_transport.h"
#include "storage/transport/rdma_wire.h"

namespace kvpool::transport::rdma {
namespace {

TEST(RdmaWireTest, SegmentRoundTripAndRejects) {
  char buf[kSegSize];
  for (bool tagged : {false, true}) {
    for (SegType t : {SegType::kFirst, SegType::kMore, SegType::kCredit}) {
      EncodeSeg(Seg{t, 0xA1B2C3D4u, tagged}, buf);
      Seg s;
      ASSERT_TRUE(DecodeSeg(buf, &s).ok());
      EXPECT_EQ(s.type, t);
      EXPECT_EQ(s.credits, 0xA1B2C3D4u);
      EXPECT_EQ(s.tagged, tagged);
      EXPECT_EQ(static_cast<uint8_t>(buf[2]), tagged ? kSegTagged : 0);
    }
  }
  EXPECT_EQ(static_cast<uint8_t>(buf[4]), 0xA1);  // big-endian
  Seg s;
  char bad[kSegSize];
  std::memcpy(bad, buf, kSegSize);
  bad[0] = 9;
  EXPECT_FALSE(DecodeSeg(bad, &s).ok());
  std::memcpy(bad, buf, kSegSize);
  bad[1] = 1;  // a version-1 node, which sends no tags
  EXPECT_FALSE(DecodeSeg(bad, &s).ok());
  std::memcpy(bad, buf, kSegSize);
  bad[2] = 2;  // an unknown flag
  EXPECT_FALSE(DecodeSeg(bad, &s).ok());
  std::memcpy(bad, buf, kSegSize);
  bad[3] = 1;
  EXPECT_FALSE(DecodeSeg(bad, &s).ok());
}

TEST(RdmaWireTest, CallDescriptorRoundTrip) {
  CallDesc d{0x0102030405060708ull, 0x1112131415161718ull, 0xAABBCCDDu, 0x01020304u};
  char buf[kCallDescSize];
  EncodeCallDesc(d, buf);
  EXPECT_EQ(buf[0], 0x01);
  CallDesc out;
  ASSERT_TRUE(DecodeCallDesc(buf, &out).ok());
  EXPECT_EQ(out.in_addr, d.in_addr);
  EXPECT_EQ(out.out_addr, d.out_addr);
  EXPECT_EQ(out.in_rkey, d.in_rkey);
  EXPECT_EQ(out.out_rkey, d.out_rkey);
  buf[31] = 1;
  EXPECT_FALSE(DecodeCallDesc(buf, &out).ok());
}

TEST(RdmaWireTest, SegmentRoomAddsUp) {
  // Every segment keeps room for its tag.
  static_assert(kFirstCallRoom + kSegSize + kHeaderSize + kCallDescSize + kSegTagSize ==
                kMsgBytes);
  static_assert(kFirstRoom + kSegSize + kHeaderSize + kSegTagSize == kMsgBytes);
  static_assert(kMoreRoom + kSegSize + kSegTagSize == kMsgBytes);
}

TEST(RdmaWireTest, PrivateDataRoundTripPaddingAndRejects) {
  ConnRequest r{3, 5, 7, 128};
  std::string enc = EncodeConnRequest(r);
  ASSERT_EQ(enc.size(), kConnRequestSize);
  enc.resize(56, '\0');  // the CM pads private data
  ConnRequest out;
  ASSERT_TRUE(DecodeConnRequest(enc.data(), enc.size(), &out).ok());
  EXPECT_EQ(out.client, 3u);
  EXPECT_EQ(out.server, 5u);
  EXPECT_EQ(out.lane, 7u);
  EXPECT_EQ(out.recv_depth, 128u);
  EXPECT_FALSE(DecodeConnRequest(enc.data(), kConnRequestSize - 1, &out).ok());
  EXPECT_FALSE(DecodeConnRequest(nullptr, 0, &out).ok());
  std::string acc = EncodeConnAccept(ConnAccept{64});
  EXPECT_FALSE(DecodeConnRequest(acc.data(), acc.size(), &out).ok());  // wrong kind
  ConnAccept a;
  ASSERT_TRUE(DecodeConnAccept(acc.data(), acc.size(), &a).ok());
  EXPECT_EQ(a.recv_depth, 64u);
  EXPECT_FALSE(DecodeConnAccept(enc.data(), enc.size(), &a).ok());
  std::string bad = enc;
  bad[0] = 'X';  // not ours
  EXPECT_FALSE(DecodeConnRequest(bad.data(), bad.size(), &out).ok());
  bad = enc;
  bad[4] = 9;  // another version
  EXPECT_FALSE(DecodeConnRequest(bad.data(), bad.size(), &out).ok());
  ConnRequest zero{0, 0, 0, 1};  // depth out of range
  std::string z = EncodeConnRequest(zero);
  EXPECT_FALSE(DecodeConnRequest(z.data(), z.size(), &out).ok());
}

TEST(RdmaTransportUnitTest, RejectsBadOptionsBeforeLookingForADevice) {
  TransportOptions o;
  o.peers = {{"127.0.0.1", 1}, {"127.0.0.1", 2}};
  o.self = 2;
  EXPECT_EQ(CreateRdmaTransport(o).status().code(), Code::kInvalidArgument);
  o.self = 0;
  o.staging_buffers = 1;
  EXPECT_EQ(CreateRdmaTransport(o).status().code(), Code::kInvalidArgument);
  o.staging_buffers = 8;
  o.staging_bytes = 100;
  EXPECT_EQ(CreateRdmaTransport(o).status().code(), Code::kInvalidArgument);
  o.staging_bytes = 1 << 20;
  o.rdma_queue_depth = 4;
  EXPECT_EQ(CreateRdmaTransport(o).status().code(), Code::kInvalidArgument);
}

// Where no RDMA device serves the bind address (any CI host, or loopback
// inside the Soft-RoCE guest) the answer is kUnavailable with a reason.
TEST(RdmaTransportUnitTest, NoUsableDeviceIsUnavailableWithAReason) {
  TransportOptions o;
  o.peers = {{"127.0.0.1", 1}};
  o.bind_host = "127.0.0.1";
  auto t = CreateRdmaTransport(o);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), Code::kUnavailable);
  EXPECT_FALSE(t.status().message().empty());
  std::printf("[          ] %s\n", t.status().ToString().c_str());
}

// The plugin this build made (KVPOOL_RDMA_PLUGIN, from CMake) loads, its
// factory is the RDMA transport's, and loading it again is the same plugin.
// This binary links the transport too: the plugin's copies must not clash.
TEST(RdmaTransportUnitTest, CountersAreRdmaStatsUnderTheirFieldNames) {
  RdmaStats st;
  st.direct_reads = 1;
  st.bounced_reads = 2;
  st.direct_writes = 3;
  st.bounced_writes = 4;
  st.staging_waits = 5;
  st.zombie_resets = 6;
  st.segments_sent = 7;
  st.segments_tagged = 8;
  st.segments_refused = 9;
  st.connections = 10;
  st.extra_msg_blocks = 11;
  const std::vector<TransportCounter> c = RdmaCounters(st);
  const char* names[] = {"direct_reads",    "bounced_reads",    "direct_writes", "bounced_writes",
                         "staging_waits",   "zombie_resets",    "segments_sent", "segments_tagged",
                         "segments_refused", "connections",     "extra_msg_blocks"};
  ASSERT_EQ(c.size(), std::size(names));
  for (size_t i = 0; i < c.size(); ++i) {
    EXPECT_EQ(c[i].name, names[i]);
    EXPECT_EQ(c[i].value, i + 1) << c[i].name;
    EXPECT_TRUE(IsTransportCounterName(c[i].name)) << c[i].name;
    EXPECT_FALSE(c[i].help.empty()) << c[i].name;
    EXPECT_EQ(c[i].help.find('\n'), std::string::npos) << c[i].name;
  }
}

TEST(RdmaPluginTest, LoadsTheBuiltPlugin) {
  auto p = LoadRdmaPlugin(KVPOOL_RDMA_PLUGIN);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p.value()->abi, kRdmaPluginAbi);
  TransportOptions o;
  o.peers = {{"127.0.0.1", 1}};
  o.bind_host = "127.0.0.1";
  o.staging_buffers = 1;
  EXPECT_EQ(p.value()->create(o).status().code(), Code::kInvalidArgument);
  o.staging_buffers = 8;
  auto t = p.value()->create(o);  // no RDMA device serves loopback
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), Code::kUnavailable);
  EXPECT_EQ(t.status().message(), CreateRdmaTransport(o).status().message());
  auto again = LoadRdmaPlugin(KVPOOL_RDMA_PLUGIN);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.value(), p.value());
}

TEST(RdmaPluginTest, MissingOrForeignPluginIsAnErrorNamingIt) {
  auto p = LoadRdmaPlugin("/nonexistent/libkvpool-rdma.so");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kUnavailable);
  EXPECT_NE(p.status().message().find("/nonexistent/libkvpool-rdma.so"), std::string::npos)
      << p.status().message();
  // A shared object that is not a kvpool plugin.
  p = LoadRdmaPlugin("libm.so.6");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("does not export kvpool_rdma_plugin"), std::string::npos)
      << p.status().message();
}

// The default search starts beside the executable: this test's directory
// has no plugin (CMake puts it beside kvpool-server), so it is not found,
// and the error names the library and where it looked.
TEST(RdmaPluginTest, DefaultSearchNamesWhereItLooked) {
  std::vector<std::string> path = RdmaPluginSearchPath();
  ASSERT_EQ(path.size(), 2u);
  auto p = LoadRdmaPlugin("");
  ASSERT_FALSE(p.ok());
  std::string m = p.status().message();
  EXPECT_NE(m.find("libkvpool-rdma.so: not found"), std::string::npos) << m;
  for (const std::string& candidate : path) EXPECT_NE(m.find(candidate), std::string::npos) << m;
}

}  // namespace
}  // namespace kvpool::transport::rdma
