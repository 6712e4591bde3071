// The TCP transport (see transport.h for the contract). Calls and replies
// are wire.h frames with bulk bytes inline; links are authenticated with
// auth.h. One connection per (lane, peer) in each direction, opened on first
// use; calls are multiplexed over it by call id.
#pragma once

#include <memory>

#include "storage/transport/transport.h"

namespace kvpool::transport {

// Knobs that TransportOptions does not carry (tests shorten them).
struct TcpTuning {
  // An unauthenticated connection is closed after this long, on both sides.
  int handshake_timeout_ms = 3000;
  // After a failed connect or handshake, Calls to that peer on that lane fail
  // fast for this long instead of redialing.
  int reconnect_backoff_ms = 100;
  // Accepted connections still in their handshake; more are refused.
  int max_pending_handshakes = 256;
};

// kInvalidArgument if self is not an index into peers.
[[nodiscard]] StatusOr<std::unique_ptr<Transport>> CreateTcpTransport(const TransportOptions& o,
                                                                      const TcpTuning& tuning);

}  // namespace kvpool::transport
