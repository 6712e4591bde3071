// The per-segment MACs of an authenticated RDMA connection: the two-sided
// control messages (call headers and their READ/WRITE descriptors, replies,
// handshake tails, credit returns) get the protection TCP frames have
// (frame_mac.h). With a pool secret, each direction of a connection has its
// own key (auth::FrameKeys, derived at the handshake from pool-secret and
// both nonces), and every SEND segment after the handshake ends with
//
//   tag = FrameMac(key, seq) over the segment's bytes before the tag
//         (segment header with kSegTagged and the credits, wire header,
//         call descriptor, body bytes)
//
// `seq` counts the tagged segments sent in that direction, from 0; it is
// implicit (an RC QP delivers SENDs in order), so a forged, replayed,
// reordered or dropped segment fails its tag and the receiver closes the
// connection without acting on any of it. The one-sided READ/WRITE of
// values are not messages and carry no tag.
//
// When the switch happens (rdma_conn.cc keeps the order on the wire):
//   connector  sends PROOF untagged, every later segment tagged;
//              receives untagged until the first tagged segment (the
//              acceptor's AUTH_OK, or a credit return right before it),
//              tagged only from then on; AUTH_OK must arrive tagged
//   acceptor   receives tagged only from the segment after PROOF on;
//              sends AUTH_OK and everything after it tagged
// AUTH_FAIL is untagged: the acceptor refuses before any key exists.
//
// Pure: no verbs, no I/O; every call returns a status.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "storage/transport/frame_mac.h"
#include "storage/transport/rdma_wire.h"
#include "storage/util/status.h"

namespace kvpool::transport::rdma {

// The sending side of one connection.
class SegSealer {
 public:
  // From the next segment on, segments are tagged with `key` (seq 0 first).
  Status Enable(const FrameKey& key);
  bool on() const { return mac_ != nullptr; }
  // `seg` holds `len` bytes (a segment header with kSegTagged, then its
  // payload) and has room for kSegTagSize more: appends the tag.
  Status Seal(char* seg, size_t len);

 private:
  std::unique_ptr<FrameMac> mac_;
};

// The receiving side of one connection.
class SegOpener {
 public:
  // Untagged segments still pass until the first tagged one; from that one
  // on (inclusive) every segment must carry a valid tag under `key`.
  Status Arm(const FrameKey& key);
  // Every segment from the next one on must carry a valid tag under `key`.
  Status Require(const FrameKey& key);
  // Tagged segments are required (and every one so far was valid).
  bool on() const { return mode_ == Mode::kOn; }
  // Tagged segments accepted so far.
  uint64_t accepted() const { return accepted_; }
  // Checks one received segment of `len` bytes whose header (DecodeSeg)
  // says `tagged`. OK with *data_len = the bytes before the tag (len if
  // untagged). kPermissionDenied if a tag is missing where one is required,
  // present without a key, or not the segment's (forged, replayed,
  // reordered, from another connection); kInvalidArgument if too short to
  // hold one. After an error the connection must be closed.
  Status Open(const char* seg, size_t len, bool tagged, size_t* data_len);

 private:
  enum class Mode { kOff, kArmed, kOn };
  Status Key(const FrameKey& key, Mode mode);
  Mode mode_ = Mode::kOff;
  std::unique_ptr<FrameMac> mac_;
  uint64_t accepted_ = 0;
};

// Test hook: when set, runs on every segment right before it is posted
// (lane thread), after its tag was computed, and may change its bytes
// (`len` stays). `acceptor` is the side sending it. Null in production.
using SegTamperFn = void (*)(char* seg, size_t len, bool tagged, bool acceptor);
void SetSegTamperForTest(SegTamperFn fn);
SegTamperFn SegTamperForTest();

}  // namespace kvpool::transport::rdma
