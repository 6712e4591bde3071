// Frame format shared by the node-to-node transports: the TCP transport
// frames every message with it, and the RDMA transport uses the same header
// for its two-sided SEND/RECV messages.
//
// A frame is a fixed 40-byte header, then `body_len` bytes of body, then
// `bulk_len` bytes of inline bulk (TCP only; RDMA moves bulk one-sided and
// sends 0). Multi-byte fields are big-endian on the wire.
//
//   offset size field
//        0    4 magic    'K' 'V' 'P' <version>
//        4    1 kind     FrameKind
//        5    1 flags    0 (reserved; non-zero is rejected so it can be used later)
//        6    2 opcode   kCall: the call's opcode; kErrorReply: a kvpool::Code
//        8    8 call_id  chosen by the requester, echoed by the reply
//       16    8 body_len
//       24    8 bulk_len inline bulk bytes after the body
//       32    8 bulk_cap kCall: the bulk_out capacity the owner may fill
//
// kCall carries bulk_in inline; kReply carries what the owner wrote to
// bulk_out, in order (so its bulk_len is at most the call's bulk_cap).
// Handshake frames (kHello .. kAuthFail) have no bulk; see auth.h.
#pragma once

#include <cstddef>
#include <cstdint>

#include "storage/util/status.h"

namespace kvpool::transport {

inline constexpr uint8_t kWireVersion = 1;
// A stray client (RESP, HTTP) fails on the first bytes; the version byte lets
// a node reject a peer speaking another frame format instead of misreading it.
inline constexpr uint32_t kMagicPrefix = 0x4B565000;  // "KVP\0"
inline constexpr uint32_t kMagic = kMagicPrefix | kWireVersion;

enum class FrameKind : uint8_t {
  kCall = 1,
  kReply = 2,
  kErrorReply = 3,  // opcode = kvpool::Code, body = message, no bulk
  kHello = 16,      // connector → acceptor
  kChallenge = 17,  // acceptor → connector
  kProof = 18,      // connector → acceptor
  kAuthOk = 19,     // acceptor → connector; calls may flow after this
  kAuthFail = 20,   // acceptor → connector; body = reason; then close
};

bool IsHandshakeKind(FrameKind k);

// The header exactly as it lies on the wire (multi-byte fields big-endian).
struct WireHeader {
  uint32_t magic;
  uint8_t kind;
  uint8_t flags;
  uint16_t opcode;
  uint64_t call_id;
  uint64_t body_len;
  uint64_t bulk_len;
  uint64_t bulk_cap;
};
static_assert(sizeof(WireHeader) == 40, "wire header must be 40 bytes, no padding");
inline constexpr size_t kHeaderSize = sizeof(WireHeader);

// The header in host order.
struct FrameHeader {
  FrameKind kind = FrameKind::kCall;
  uint16_t opcode = 0;
  uint64_t call_id = 0;
  uint64_t body_len = 0;
  uint64_t bulk_len = 0;
  uint64_t bulk_cap = 0;
};

// Largest lengths a receiver accepts; checked before anything is allocated.
struct WireLimits {
  uint64_t max_body = 0;
  uint64_t max_bulk = 0;
};

void EncodeHeader(const FrameHeader& h, char out[kHeaderSize]);

// Decodes and validates a header: magic and version, a known kind, flags 0,
// body_len <= max_body, bulk_len and bulk_cap <= max_bulk, no bulk on kinds
// that carry none. kInvalidArgument (with the reason) otherwise; the caller
// then drops the connection.
Status DecodeHeader(const char in[kHeaderSize], const WireLimits& limits, FrameHeader* out);

}  // namespace kvpool::transport
