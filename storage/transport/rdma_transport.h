// The RDMA transport (see transport.h for the contract; linked only into
// libkvpool-rdma.so, see rdma_plugin.h, and its own tests, never into the
// server): rdma_cm + RC queue pairs; calls, replies and the handshake are
// wire.h frames sent two-sided (rdma_wire.h), bulk bytes move one-sided: the
// owner RDMA-READs bulk_in out of the requester's staging buffer and
// RDMA-WRITEs bulk_out into it, straight from/to TransportOptions::regions
// (the segment) when the owner's memory lies there, through a bounce buffer
// otherwise.
//
// Resources, all registered at Start and never per call:
//   per lane  staging_buffers x staging_bytes (requester side: bulk_in copy,
//             bulk_out room; REMOTE_READ|REMOTE_WRITE, rkey per buffer),
//             bounce buffers (owner side, local only), message blocks
//             (rdma_queue_depth receive + send slots of 4 KiB per connection;
//             provisioned for min(2 x peers + 2, 16) connections, one more block
//             is registered only if a lane ever holds more connections at once)
//   per node  one MR per region (LOCAL_WRITE only: the owner is always the
//             initiator, so no rkey of the segment ever leaves the node)
//
// A call takes 0, 1 or 2 staging buffers (bulk_in and bulk_out share one
// when both fit) for its whole life; when a lane has none free, calls wait
// in FIFO order (their timeout keeps running) instead of failing.
// max_bulk_per_call() = staging_bytes; larger bulk is kInvalidArgument.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "storage/transport/transport.h"

namespace kvpool::transport {

// Knobs that TransportOptions does not carry (tests shorten them).
struct RdmaTuning {
  // rdma_cm address + route resolution, and the whole connect + handshake.
  int resolve_timeout_ms = 2000;
  int handshake_timeout_ms = 3000;
  // After a failed connect or handshake, Calls to that peer on that lane fail
  // fast for this long instead of redialing.
  int reconnect_backoff_ms = 100;
  // Accepted connections still in their handshake, per lane; more are rejected.
  int max_pending_handshakes = 256;
  // A call that timed out after it was sent keeps its staging buffers (the
  // owner may still READ/WRITE them) until its late reply arrives or its
  // connection is gone; if neither happens within max(this, its timeout),
  // the connection is reset to get the buffers back.
  int zombie_grace_ms = 1000;
  // Calls waiting for staging buffers, per lane; more fail kUnavailable. A
  // safety valve against runaway callers, not a flow-control mechanism.
  size_t max_waiting_calls = 1u << 16;
  // Owner-side bounce buffers per lane (for ReadBulk/WriteBulk memory outside
  // the regions), and their size (at most staging_bytes).
  int bounce_buffers = 4;
  size_t bounce_bytes = 1u << 20;
  // RC local ACK timeout (4.096 us x 2^n) and retry count: with 15 and 7, a
  // peer that vanished without a disconnect fails its WRs in about 1 s.
  uint8_t ack_timeout = 15;
  uint8_t retry_count = 7;
};

// Path and resource counters of one RDMA transport (tests, INFO).
struct RdmaStats {
  std::atomic<uint64_t> direct_reads{0};      // READ straight into a region
  std::atomic<uint64_t> bounced_reads{0};     // READ through a bounce buffer
  std::atomic<uint64_t> direct_writes{0};     // WRITE straight from a region
  std::atomic<uint64_t> bounced_writes{0};    // WRITE through a bounce buffer
  std::atomic<uint64_t> staging_waits{0};     // calls that waited for a staging buffer
  std::atomic<uint64_t> zombie_resets{0};     // connections reset to reclaim staging
  std::atomic<uint64_t> segments_sent{0};     // SENDs (incl. continuations, credits)
  std::atomic<uint64_t> segments_tagged{0};   // of those, carrying a MAC (rdma_seg_mac.h)
  std::atomic<uint64_t> segments_refused{0};  // received ones failing it (link closed)
  std::atomic<uint64_t> connections{0};       // QPs established (both roles)
  std::atomic<uint64_t> extra_msg_blocks{0};  // message blocks registered after Start
};

// RdmaStats as Transport::Counters: one counter per field, named as the
// field (segments_tagged shows as pool_transport_segments_tagged in INFO).
std::vector<TransportCounter> RdmaCounters(const RdmaStats& s);

// kInvalidArgument for bad options (self, staging_buffers < 2, staging_bytes
// < 4 KiB or > 1 GiB, rdma_queue_depth < 8); kUnavailable, with a message
// naming what is missing, if there is no usable RDMA device/port/GID or the
// bind address is not on one.
[[nodiscard]] StatusOr<std::unique_ptr<Transport>> CreateRdmaTransport(const TransportOptions& o,
                                                                       const RdmaTuning& tuning);
[[nodiscard]] StatusOr<std::unique_ptr<Transport>> CreateRdmaTransport(const TransportOptions& o);

// The stats of a transport built by CreateRdmaTransport; null for any other.
const RdmaStats* GetRdmaStats(const Transport& t);

}  // namespace kvpool::transport
