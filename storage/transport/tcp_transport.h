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
  // As the connector: give up on a handshake after this long (the acceptor
  // may be busy or stopped; its own deadline starts when it accepts).
  int handshake_timeout_ms = 3000;
  // As the acceptor: an accepted connection that has not authenticated
  // within this long is closed. Short: a genuine connector sends HELLO at
  // once and PROOF one round trip later; a flood's connections do not get
  // to hold a slot for longer.
  int accept_timeout_ms = 1000;
  // After a failed connect or handshake, Calls to that peer on that lane fail
  // fast for this long instead of redialing.
  int reconnect_backoff_ms = 100;
  // Accepted connections still in their handshake, on lane 0; only the
  // hosts in TransportOptions::peers get that far (others are closed at
  // accept). A connection is "silent" until its HELLO (complete and valid)
  // has been read; a HELLO already in the socket is read before any bound
  // is applied. When one source address has more than
  // max_pending_per_source silent ones, or more than max_pending_handshakes
  // are pending in all, the oldest silent one (of that source) is closed to
  // make room -- never the newcomer, never one whose HELLO was read while a
  // silent one is left. So a flood of half-open connections cannot keep a
  // genuine peer out: a connection that says HELLO before its source opens
  // max_pending_per_source more is never evicted, and authenticated links
  // are not pending at all.
  int max_pending_handshakes = 256;
  int max_pending_per_source = 64;
};

// kInvalidArgument if self is not an index into peers.
[[nodiscard]] StatusOr<std::unique_ptr<Transport>> CreateTcpTransport(const TransportOptions& o,
                                                                      const TcpTuning& tuning);

}  // namespace kvpool::transport
