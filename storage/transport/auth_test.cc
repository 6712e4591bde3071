#include "storage/transport/auth.h"

#include <gtest/gtest.h>

#include <cstring>

namespace kvpool::transport::auth {
namespace {

Nonce MakeNonce(uint8_t seed) {
  Nonce n;
  for (size_t i = 0; i < n.size(); ++i) n[i] = static_cast<uint8_t>(seed + i * 7);
  return n;
}

const Ids kIds{2, 5, 3};  // client 2 dials server 5 from its lane 3

// Runs the handshake; returns the first failure (or OK).
Status Handshake(std::string_view client_secret, std::string_view server_secret,
                 const Ids& ids = kIds, uint32_t server_self = 5, uint32_t nodes = 8) {
  ClientHandshake c(client_secret, ids, MakeNonce(1));
  ServerHandshake s(server_secret, server_self, nodes, MakeNonce(100));
  StatusOr<std::string> challenge = s.OnHello(c.HelloBody());
  if (!challenge.ok()) return challenge.status();
  StatusOr<std::string> proof = c.OnChallenge(challenge.value());
  if (!proof.ok()) return proof.status();
  return s.OnProof(proof.value());
}

TEST(AuthTest, RightSecretSucceeds) {
  EXPECT_TRUE(Handshake("s3cret", "s3cret").ok());
  ClientHandshake c("k", kIds, MakeNonce(1));
  ServerHandshake s("k", 5, 8, MakeNonce(100));
  ASSERT_TRUE(s.OnHello(c.HelloBody()).ok());
  EXPECT_EQ(s.ids().client, 2u);
  EXPECT_EQ(s.ids().server, 5u);
  EXPECT_EQ(s.ids().lane, 3u);
}

TEST(AuthTest, EmptySecretIsAValidKey) {
  EXPECT_TRUE(Handshake("", "").ok());
  EXPECT_EQ(Handshake("", "x").code(), Code::kPermissionDenied);
}

TEST(AuthTest, WrongSecretIsDetectedByTheConnector) {
  // The acceptor proves itself first, so the connector notices.
  ClientHandshake c("right", kIds, MakeNonce(1));
  ServerHandshake s("wrong", 5, 8, MakeNonce(100));
  StatusOr<std::string> challenge = s.OnHello(c.HelloBody());
  ASSERT_TRUE(challenge.ok());
  EXPECT_EQ(c.OnChallenge(challenge.value()).status().code(), Code::kPermissionDenied);
}

TEST(AuthTest, WrongSecretIsDetectedByTheAcceptor) {
  ServerHandshake s("right", 5, 8, MakeNonce(100));
  ClientHandshake honest("right", kIds, MakeNonce(1));
  StatusOr<std::string> challenge = s.OnHello(honest.HelloBody());
  ASSERT_TRUE(challenge.ok());
  Nonce nonce_s;
  std::memcpy(nonce_s.data(), challenge.value().data(), kNonceSize);
  Sha256Digest forged = ClientProof("wrong", nonce_s, MakeNonce(1), kIds);
  EXPECT_EQ(s.OnProof(std::string(reinterpret_cast<const char*>(forged.data()), 32)).code(),
            Code::kPermissionDenied);
}

TEST(AuthTest, TamperedNoncesFail) {
  // nonce_s altered in transit: the acceptor's MAC no longer matches.
  {
    ClientHandshake c("k", kIds, MakeNonce(1));
    ServerHandshake s("k", 5, 8, MakeNonce(100));
    std::string challenge = s.OnHello(c.HelloBody()).value();
    challenge[3] ^= 1;
    EXPECT_EQ(c.OnChallenge(challenge).status().code(), Code::kPermissionDenied);
  }
  // nonce_c altered in transit: the acceptor answers for the wrong nonce.
  {
    ClientHandshake c("k", kIds, MakeNonce(1));
    ServerHandshake s("k", 5, 8, MakeNonce(100));
    std::string hello = c.HelloBody();
    hello[20] ^= 0x80;
    std::string challenge = s.OnHello(hello).value();
    EXPECT_EQ(c.OnChallenge(challenge).status().code(), Code::kPermissionDenied);
  }
  // The PROOF altered: the acceptor refuses.
  {
    ClientHandshake c("k", kIds, MakeNonce(1));
    ServerHandshake s("k", 5, 8, MakeNonce(100));
    std::string proof = c.OnChallenge(s.OnHello(c.HelloBody()).value()).value();
    proof[31] ^= 1;
    EXPECT_EQ(s.OnProof(proof).code(), Code::kPermissionDenied);
  }
}

TEST(AuthTest, ProofsBindIdsAndDirection) {
  const Nonce a = MakeNonce(1), b = MakeNonce(2);
  Ids other = kIds;
  other.lane = 4;
  EXPECT_NE(ServerProof("k", a, b, kIds), ServerProof("k", a, b, other));
  // A server proof reflected back is not a client proof for the same nonces.
  EXPECT_NE(ServerProof("k", a, b, kIds), ClientProof("k", b, a, kIds));
  EXPECT_NE(ServerProof("k", a, b, kIds), ClientProof("k", a, b, kIds));
  EXPECT_NE(ServerProof("k", a, b, kIds), ServerProof("k2", a, b, kIds));
}

TEST(AuthTest, HelloValidation) {
  ServerHandshake s("k", 5, 8, MakeNonce(100));
  EXPECT_EQ(s.OnHello("short").status().code(), Code::kInvalidArgument);

  Hello h;
  h.ids = kIds;
  h.version = kHandshakeVersion + 1;
  EXPECT_FALSE(ServerHandshake("k", 5, 8, MakeNonce(1)).OnHello(EncodeHello(h)).ok());

  h.version = kHandshakeVersion;
  h.ids.client = 8;  // not a node of the pool
  EXPECT_FALSE(ServerHandshake("k", 5, 8, MakeNonce(1)).OnHello(EncodeHello(h)).ok());

  h.ids = kIds;
  h.ids.server = 4;  // meant for another node
  EXPECT_FALSE(ServerHandshake("k", 5, 8, MakeNonce(1)).OnHello(EncodeHello(h)).ok());

  ServerHandshake fresh("k", 5, 8, MakeNonce(1));
  EXPECT_EQ(fresh.OnProof(std::string(32, 'x')).code(), Code::kInvalidArgument);
  h.ids = kIds;
  ASSERT_TRUE(fresh.OnHello(EncodeHello(h)).ok());
  EXPECT_FALSE(fresh.OnHello(EncodeHello(h)).ok());  // one HELLO per connection
  EXPECT_EQ(fresh.OnProof("short").code(), Code::kInvalidArgument);

  Hello back;
  ASSERT_TRUE(DecodeHello(EncodeHello(h), &back).ok());
  EXPECT_EQ(back.ids.client, kIds.client);
  EXPECT_EQ(back.ids.server, kIds.server);
  EXPECT_EQ(back.ids.lane, kIds.lane);
  EXPECT_EQ(EncodeHello(h).size(), kHelloSize);
}

TEST(AuthTest, ChallengeValidation) {
  ClientHandshake c("k", kIds, MakeNonce(1));
  EXPECT_EQ(c.OnChallenge("short").status().code(), Code::kInvalidArgument);
}

TEST(AuthTest, RandomNoncesDiffer) {
  Nonce a, b;
  ASSERT_TRUE(RandomNonce(&a).ok());
  ASSERT_TRUE(RandomNonce(&b).ok());
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace kvpool::transport::auth
