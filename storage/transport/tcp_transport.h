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
  // Short: a genuine handshake takes one round trip.
  int handshake_timeout_ms = 1000;
  // After a failed connect or handshake, Calls to that peer on that lane fail
  // fast for this long instead of redialing.
  int reconnect_backoff_ms = 100;
  // Accepted connections still in their handshake (only from the hosts in
  // TransportOptions::peers; others are closed at accept). When the table
  // is full, or one source address has max_pending_per_source of them, the
  // oldest (of that source) is closed to make room, so a flood of
  // half-open connections cannot keep a genuine peer's fresh one out.
  int max_pending_handshakes = 256;
  int max_pending_per_source = 32;
};

// kInvalidArgument if self is not an index into peers.
[[nodiscard]] StatusOr<std::unique_ptr<Transport>> CreateTcpTransport(const TransportOptions& o,
                                                                      const TcpTuning& tuning);

}  // namespace kvpool::transport
