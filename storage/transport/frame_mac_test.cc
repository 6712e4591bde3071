// The frame MAC (frame_mac.h) and its keys (auth.h DeriveFrameKeys): the
// construction pinned by a known answer, and every way a frame can be
// tampered with caught.
#include "storage/transport/frame_mac.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "storage/transport/auth.h"
#include "storage/util/crypto.h"

namespace kvpool::transport {
namespace {

std::string Hex(const uint8_t* p, size_t n) {
  static const char kHex[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s.push_back(kHex[p[i] >> 4]);
    s.push_back(kHex[p[i] & 15]);
  }
  return s;
}

FrameKey Key(uint8_t seed) {
  FrameKey k;
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(seed * 31 + i);
  return k;
}

FrameTag TagOf(FrameMac* m, std::string_view data) {
  FrameTag t{};
  EXPECT_TRUE(m->Begin().ok());
  EXPECT_TRUE(m->Update(data.data(), data.size()).ok());
  EXPECT_TRUE(m->Finish(&t).ok());
  return t;
}

Status CheckOf(FrameMac* m, std::string_view data, const FrameTag& t) {
  Status st = m->Begin();
  if (st.ok()) st = m->Update(data.data(), data.size());
  if (st.ok()) st = m->Check(t.data());
  return st;
}

TEST(FrameMacTest, KnownAnswersAreChaCha20Poly1305Tags) {
  // ChaCha20-Poly1305 (RFC 8439) with zero key, no plaintext, as computed
  // independently (python3-cryptography): frame 0 over nothing, then
  // frame 1 (nonce 0^32 | 00..01) over "abc" on the same object, so the
  // second IV really replaces the first and nothing of frame 0 carries over.
  FrameMac m;
  ASSERT_TRUE(m.Init(FrameKey{}).ok());
  FrameTag t = TagOf(&m, "");
  EXPECT_EQ(Hex(t.data(), t.size()), "4eb972c9a8fb3a1b382bb4d36f5ffad1");
  t = TagOf(&m, "abc");
  EXPECT_EQ(Hex(t.data(), t.size()), "f58fb12deaa262fb1f5147d7fe1cd31b");
  EXPECT_EQ(m.seq(), 2u);
}

TEST(FrameMacTest, SenderAndReceiverAgreeFrameAfterFrame) {
  FrameMac tx, rx;
  ASSERT_TRUE(tx.Init(Key(1)).ok());
  ASSERT_TRUE(rx.Init(Key(1)).ok());
  for (int i = 0; i < 5; ++i) {
    const std::string frame = "frame " + std::to_string(i) + std::string(i * 1000, 'x');
    // Fed in pieces on one side, whole on the other: same tag.
    FrameTag t{};
    ASSERT_TRUE(tx.Begin().ok());
    for (size_t off = 0; off < frame.size(); off += 7)
      ASSERT_TRUE(tx.Update(frame.data() + off, std::min<size_t>(7, frame.size() - off)).ok());
    ASSERT_TRUE(tx.Finish(&t).ok());
    EXPECT_TRUE(CheckOf(&rx, frame, t).ok()) << i;
  }
}

TEST(FrameMacTest, ForgedReplayedReorderedAndMiskeyedFramesFail) {
  FrameMac tx, rx;
  ASSERT_TRUE(tx.Init(Key(1)).ok());
  ASSERT_TRUE(rx.Init(Key(1)).ok());
  const FrameTag t0 = TagOf(&tx, "first");
  const FrameTag t1 = TagOf(&tx, "second");
  // Reordered: frame 1 where frame 0 is due.
  EXPECT_EQ(CheckOf(&rx, "second", t1).code(), Code::kPermissionDenied);
  FrameMac rx2;
  ASSERT_TRUE(rx2.Init(Key(1)).ok());
  ASSERT_TRUE(CheckOf(&rx2, "first", t0).ok());
  // Replayed: frame 0 again where frame 1 is due.
  EXPECT_EQ(CheckOf(&rx2, "first", t0).code(), Code::kPermissionDenied);
  // Forged: one bit of the data, or of the tag, changed.
  FrameMac rx3;
  ASSERT_TRUE(rx3.Init(Key(1)).ok());
  EXPECT_EQ(CheckOf(&rx3, "firsu", t0).code(), Code::kPermissionDenied);
  FrameMac rx4;
  ASSERT_TRUE(rx4.Init(Key(1)).ok());
  FrameTag bad = t0;
  bad[15] ^= 0x80;
  EXPECT_EQ(CheckOf(&rx4, "first", bad).code(), Code::kPermissionDenied);
  // Another key (the other direction, another connection).
  FrameMac other;
  ASSERT_TRUE(other.Init(Key(2)).ok());
  EXPECT_EQ(CheckOf(&other, "first", t0).code(), Code::kPermissionDenied);
}

TEST(FrameMacTest, UnkeyedOrOutOfOrderUseIsAnError) {
  FrameMac m;
  FrameTag t{};
  EXPECT_FALSE(m.Begin().ok());
  ASSERT_TRUE(m.Init(Key(3)).ok());
  EXPECT_FALSE(m.Update("x", 1).ok());
  EXPECT_FALSE(m.Finish(&t).ok());
}

auth::Nonce MakeNonce(uint8_t seed) {
  auth::Nonce n;
  for (size_t i = 0; i < n.size(); ++i) n[i] = static_cast<uint8_t>(seed + i * 7);
  return n;
}

TEST(FrameKeysTest, BothSidesDeriveTheSameDistinctKeys) {
  const auth::Ids ids{2, 5, 3};
  auth::ClientHandshake c("s3cret", ids, MakeNonce(1));
  auth::ServerHandshake s("s3cret", 5, 8, MakeNonce(100));
  EXPECT_FALSE(c.frame_keys());
  auto challenge = s.OnHello(c.HelloBody());
  ASSERT_TRUE(challenge.ok());
  EXPECT_FALSE(s.frame_keys()) << "no keys before the connector proved itself";
  auto proof = c.OnChallenge(challenge.value());
  ASSERT_TRUE(proof.ok());
  ASSERT_TRUE(s.OnProof(proof.value()).ok());
  ASSERT_TRUE(c.frame_keys() && s.frame_keys());
  EXPECT_EQ(c.frame_keys()->to_server, s.frame_keys()->to_server);
  EXPECT_EQ(c.frame_keys()->to_client, s.frame_keys()->to_client);
  EXPECT_NE(c.frame_keys()->to_server, c.frame_keys()->to_client);
  // Fixed derivation: HMAC-SHA-256 of the labelled transcript.
  const auth::FrameKeys k = auth::DeriveFrameKeys("s3cret", MakeNonce(1), MakeNonce(100), ids);
  EXPECT_EQ(k.to_server, c.frame_keys()->to_server);
  // Any change of secret, nonce or ids gives other keys.
  EXPECT_NE(auth::DeriveFrameKeys("s3creT", MakeNonce(1), MakeNonce(100), ids).to_server,
            k.to_server);
  EXPECT_NE(auth::DeriveFrameKeys("s3cret", MakeNonce(2), MakeNonce(100), ids).to_server,
            k.to_server);
  EXPECT_NE(auth::DeriveFrameKeys("s3cret", MakeNonce(1), MakeNonce(101), ids).to_client,
            k.to_client);
  EXPECT_NE(auth::DeriveFrameKeys("s3cret", MakeNonce(1), MakeNonce(100), {2, 5, 4}).to_server,
            k.to_server);
}

TEST(FrameKeysTest, EmptySecretGivesNoKeys) {
  auth::ClientHandshake c("", {0, 1, 0}, MakeNonce(1));
  auth::ServerHandshake s("", 1, 2, MakeNonce(9));
  auto challenge = s.OnHello(c.HelloBody());
  ASSERT_TRUE(challenge.ok());
  auto proof = c.OnChallenge(challenge.value());
  ASSERT_TRUE(proof.ok());
  ASSERT_TRUE(s.OnProof(proof.value()).ok());
  EXPECT_FALSE(c.frame_keys());
  EXPECT_FALSE(s.frame_keys());
}

// Throughput of the MAC the links use against HMAC-SHA-256 (which the
// handshake uses), on one 64 MiB value; printed for the record.
TEST(FrameMacTest, ThroughputOnALargeValue) {
  std::string big(64 << 20, 'v');
  FrameMac m;
  ASSERT_TRUE(m.Init(Key(4)).ok());
  auto t0 = std::chrono::steady_clock::now();
  const FrameTag a = TagOf(&m, big);
  auto t1 = std::chrono::steady_clock::now();
  const Sha256Digest h = HmacSha256("key", big);
  auto t2 = std::chrono::steady_clock::now();
  auto gbps = [&](auto d) {
    return static_cast<double>(big.size()) / std::chrono::duration<double>(d).count() / 1e9;
  };
  std::printf("64 MiB: ChaCha20-Poly1305 tag %.2f GB/s, HMAC-SHA-256 %.2f GB/s\n", gbps(t1 - t0),
              gbps(t2 - t1));
  // The last byte counts too.
  big.back() = 'w';
  FrameMac m2;
  ASSERT_TRUE(m2.Init(Key(4)).ok());
  EXPECT_NE(TagOf(&m2, big), a);
  EXPECT_NE(HmacSha256("key", big), h);
}

}  // namespace
}  // namespace kvpool::transport
