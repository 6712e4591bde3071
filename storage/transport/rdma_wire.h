// What the RDMA transport puts on the wire besides wire.h frames. Pure
// encode/decode, no verbs, so it is tested without a device.
//
// Two-sided messages. Every SEND fills at most one receive buffer of
// kMsgBytes and starts with an 8-byte segment header:
//
//   offset size field
//        0    1 type     kFirst | kMore | kCredit
//        1    1 version  kRdmaWireVersion
//        2    1 flags    kSegTagged or 0
//        3    1 reserved 0
//        4    4 credits  receive buffers the sender re-posted since its
//                        previous SEND (credit return, see rdma_conn.h)
//
// A segment with kSegTagged ends with a 16-byte tag over all its bytes
// before it (rdma_seg_mac.h): with a pool secret, every segment after the
// handshake is tagged, credit-only ones included.
//
// kFirst carries a wire.h header (40 bytes), then for kCall a 32-byte call
// descriptor, then the first body bytes. kMore carries the next body bytes
// of the message being received (a connection never interleaves two
// messages). kCredit carries nothing else. So a message of any size up to
// max_body is a train of SENDs; a reply or a call body of thousands of keys
// (~100 KB) is ~25 of them. bulk_len/bulk_cap in the wire header keep their
// wire.h meaning: on a call, the size of bulk_in and the bulk_out capacity;
// on a reply, how many bytes the owner wrote to bulk_out. No bulk byte is
// ever inside a SEND.
//
// Call descriptor (kCall only), big-endian:
//
//        0    8 in_addr   requester memory holding bulk_in (bulk_len bytes)
//        8    8 out_addr  requester memory the owner may write (bulk_cap bytes)
//       16    4 in_rkey
//       20    4 out_rkey
//       24    8 reserved  0
//
// The rkeys are those of the requester's staging buffers, and a call is only
// sent after the connection is authenticated (auth.h over SEND/RECV), so a
// peer that fails authentication never learns one. The owner never sends an
// rkey at all: it moves bytes with its own READ/WRITE.
//
// rdma_cm private data (no secrets, no rkeys):
//   connect request  magic "KVPR", version, kind 1, client node, server node,
//                    requester lane, receive depth (24 bytes)
//   accept           magic, version, kind 2, receive depth (12 bytes)
// The lane in the request only picks the owner's lane before the handshake;
// the authenticated HELLO must repeat it or the connection is dropped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "storage/transport/frame_mac.h"
#include "storage/transport/wire.h"
#include "storage/util/status.h"

namespace kvpool::transport::rdma {

// 2: segments may carry a tag (kSegTagged); a node of version 1 is refused
// at connect instead of misreading them.
inline constexpr uint8_t kRdmaWireVersion = 2;
// One message buffer (a RECV slot or a SEND slot). Small messages fit one;
// a page keeps the per-connection receive memory at depth x 4 KiB.
inline constexpr size_t kMsgBytes = 4096;
inline constexpr size_t kSegSize = 8;
inline constexpr size_t kCallDescSize = 32;
inline constexpr size_t kSegTagSize = kFrameTagSize;  // 16
inline constexpr uint8_t kSegTagged = 0x01;
// Body bytes in the first segment of a call / of any other frame, and in a
// continuation segment. Room for a tag is kept whether or not one is sent.
inline constexpr size_t kFirstCallRoom =
    kMsgBytes - kSegSize - kHeaderSize - kCallDescSize - kSegTagSize;
inline constexpr size_t kFirstRoom = kMsgBytes - kSegSize - kHeaderSize - kSegTagSize;
inline constexpr size_t kMoreRoom = kMsgBytes - kSegSize - kSegTagSize;

enum class SegType : uint8_t { kFirst = 1, kMore = 2, kCredit = 3 };

struct Seg {
  SegType type = SegType::kFirst;
  uint32_t credits = 0;
  bool tagged = false;  // kSegTagged: a tag ends the segment
};

void EncodeSeg(const Seg& s, char out[kSegSize]);
// kInvalidArgument on an unknown type, version, flag or non-zero reserved
// bits.
Status DecodeSeg(const char in[kSegSize], Seg* out);

struct CallDesc {
  uint64_t in_addr = 0;
  uint64_t out_addr = 0;
  uint32_t in_rkey = 0;
  uint32_t out_rkey = 0;
};

void EncodeCallDesc(const CallDesc& d, char out[kCallDescSize]);
// kInvalidArgument if the reserved bytes are not zero.
Status DecodeCallDesc(const char in[kCallDescSize], CallDesc* out);

struct ConnRequest {
  uint32_t client = 0;
  uint32_t server = 0;
  uint32_t lane = 0;
  uint32_t recv_depth = 0;
};
struct ConnAccept {
  uint32_t recv_depth = 0;
};
inline constexpr size_t kConnRequestSize = 24;
inline constexpr size_t kConnAcceptSize = 12;

std::string EncodeConnRequest(const ConnRequest& r);
std::string EncodeConnAccept(const ConnAccept& a);
// The CM may pad private data with zeros, so longer input is accepted.
// kInvalidArgument if short, of another kind or version, or a receive depth
// outside [2, 65536].
Status DecodeConnRequest(const void* data, size_t len, ConnRequest* out);
Status DecodeConnAccept(const void* data, size_t len, ConnAccept* out);

}  // namespace kvpool::transport::rdma
