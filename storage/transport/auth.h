// Mutual challenge-response between two nodes of a pool, keyed by the
// pool secret (HMAC-SHA-256; the secret never crosses the wire). Shared by
// the TCP and RDMA transports; pure functions and state machines, no I/O, so
// they are tested without sockets.
//
//   connector → acceptor  HELLO{version, client, server, lane, nonce_c}
//   acceptor → connector  CHALLENGE{nonce_s,
//                           HMAC(secret, "kvpool-server" | nonce_c | nonce_s | ids)}
//   connector             verifies that the acceptor knows the secret
//   connector → acceptor  PROOF{HMAC(secret, "kvpool-client" | nonce_s | nonce_c | ids)}
//   acceptor              verifies; sends OK (or FAIL, then closes)
//
// `ids` = client node, server node, lane and version, so a proof binds who
// talks to whom. The two labels differ, so a proof cannot be reflected back
// as the other side's. Both nonces are fresh per connection, so an old
// transcript cannot be replayed. An empty secret is a valid (weak) key; the
// layers above warn about it.
//
// Once both sides are proven, each derives one key per direction for the
// per-frame MACs of frame_mac.h (TCP links):
//   to_server = HMAC(secret, "kvpool-frame-c2s" | nonce_c | nonce_s | ids)
//   to_client = HMAC(secret, "kvpool-frame-s2c" | nonce_c | nonce_s | ids)
// With an empty secret there are no keys (frame_keys() is empty): anyone
// could compute them, so the frames go unauthenticated, as before version 2.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <optional>
#include <string_view>

#include "storage/transport/frame_mac.h"
#include "storage/util/crypto.h"
#include "storage/util/status.h"

namespace kvpool::transport::auth {

// 2: frames after the handshake carry a MAC (frame_mac.h) when a secret is
// set; a node of version 1 is refused at HELLO instead of misreading them.
inline constexpr uint16_t kHandshakeVersion = 2;
inline constexpr size_t kNonceSize = 32;
using Nonce = std::array<uint8_t, kNonceSize>;

// Body sizes of the handshake frames (exact; anything else is rejected).
inline constexpr size_t kHelloSize = 2 + 2 + 4 + 4 + 4 + kNonceSize;  // 48
inline constexpr size_t kChallengeSize = kNonceSize + 32;             // 64
inline constexpr size_t kProofSize = 32;
inline constexpr size_t kMaxFailSize = 128;  // kAuthFail reason

// 32 bytes from getrandom(2). kIOError if the kernel has none to give.
Status RandomNonce(Nonce* out);

struct Ids {
  uint32_t client = 0;  // the connector's node index
  uint32_t server = 0;  // the acceptor's node index
  uint32_t lane = 0;    // the connector's lane
};

Sha256Digest ServerProof(std::string_view secret, const Nonce& nonce_c, const Nonce& nonce_s,
                         const Ids& ids);
Sha256Digest ClientProof(std::string_view secret, const Nonce& nonce_s, const Nonce& nonce_c,
                         const Ids& ids);

// The two directions' frame MAC keys of one connection.
struct FrameKeys {
  FrameKey to_server;  // connector → acceptor
  FrameKey to_client;  // acceptor → connector
};
FrameKeys DeriveFrameKeys(std::string_view secret, const Nonce& nonce_c, const Nonce& nonce_s,
                          const Ids& ids);

struct Hello {
  uint16_t version = kHandshakeVersion;
  Ids ids;
  Nonce nonce{};
};
std::string EncodeHello(const Hello& h);
// kInvalidArgument if the size is wrong.
Status DecodeHello(std::string_view body, Hello* out);

// The connector's side. `secret` must outlive the object.
class ClientHandshake {
 public:
  ClientHandshake(std::string_view secret, const Ids& ids, const Nonce& nonce_c);
  std::string HelloBody() const;
  // Checks the acceptor's CHALLENGE. Returns the PROOF body, kPermissionDenied
  // if the acceptor does not know the secret (or is not the node we dialed),
  // kInvalidArgument if the body is malformed.
  StatusOr<std::string> OnChallenge(std::string_view body);
  // After a successful OnChallenge, with a non-empty secret: the link's
  // frame keys. Empty otherwise.
  const std::optional<FrameKeys>& frame_keys() const { return keys_; }

 private:
  std::string_view secret_;
  Ids ids_;
  Nonce nonce_c_;
  std::optional<FrameKeys> keys_;
};

// The acceptor's side. `secret` must outlive the object.
class ServerHandshake {
 public:
  ServerHandshake(std::string_view secret, uint32_t self, uint32_t nodes, const Nonce& nonce_s);
  // Checks HELLO (size, version, client index < nodes, server index == self)
  // and returns the CHALLENGE body; kInvalidArgument otherwise.
  StatusOr<std::string> OnHello(std::string_view body);
  // OK if the connector proved it knows the secret; kPermissionDenied if not,
  // kInvalidArgument if malformed or out of order.
  Status OnProof(std::string_view body);
  const Ids& ids() const { return ids_; }
  // After a successful OnProof, with a non-empty secret: the link's frame
  // keys. Empty otherwise.
  const std::optional<FrameKeys>& frame_keys() const { return keys_; }

 private:
  std::string_view secret_;
  uint32_t self_;
  uint32_t nodes_;
  Nonce nonce_s_;
  Nonce nonce_c_{};
  Ids ids_;
  bool have_hello_ = false;
  std::optional<FrameKeys> keys_;
};

}  // namespace kvpool::transport::auth
