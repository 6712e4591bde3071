#include "storage/transport/wire.h"

#include <endian.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>

namespace kvpool::transport {

static_assert(offsetof(WireHeader, kind) == 4);
static_assert(offsetof(WireHeader, opcode) == 6);
static_assert(offsetof(WireHeader, call_id) == 8);
static_assert(offsetof(WireHeader, body_len) == 16);
static_assert(offsetof(WireHeader, bulk_len) == 24);
static_assert(offsetof(WireHeader, bulk_cap) == 32);

bool IsHandshakeKind(FrameKind k) { return k >= FrameKind::kHello && k <= FrameKind::kAuthFail; }

void EncodeHeader(const FrameHeader& h, char out[kHeaderSize]) {
  WireHeader w;
  w.magic = htobe32(kMagic);
  w.kind = static_cast<uint8_t>(h.kind);
  w.flags = 0;
  w.opcode = htobe16(h.opcode);
  w.call_id = htobe64(h.call_id);
  w.body_len = htobe64(h.body_len);
  w.bulk_len = htobe64(h.bulk_len);
  w.bulk_cap = htobe64(h.bulk_cap);
  std::memcpy(out, &w, kHeaderSize);
}

Status DecodeHeader(const char in[kHeaderSize], const WireLimits& limits, FrameHeader* out) {
  WireHeader w;
  std::memcpy(&w, in, kHeaderSize);
  const uint32_t magic = be32toh(w.magic);
  if ((magic & 0xFFFFFF00u) != kMagicPrefix) return Status::InvalidArgument("bad frame magic");
  if ((magic & 0xFFu) != kWireVersion)
    return Status::InvalidArgument("unsupported wire version " + std::to_string(magic & 0xFFu));
  if (w.flags != 0) return Status::InvalidArgument("unknown frame flags");
  const auto kind = static_cast<FrameKind>(w.kind);
  const bool known = kind == FrameKind::kCall || kind == FrameKind::kReply ||
                     kind == FrameKind::kErrorReply || IsHandshakeKind(kind);
  if (!known) return Status::InvalidArgument("unknown frame kind " + std::to_string(w.kind));

  FrameHeader h;
  h.kind = kind;
  h.opcode = be16toh(w.opcode);
  h.call_id = be64toh(w.call_id);
  h.body_len = be64toh(w.body_len);
  h.bulk_len = be64toh(w.bulk_len);
  h.bulk_cap = be64toh(w.bulk_cap);
  if (h.body_len > limits.max_body)
    return Status::InvalidArgument("frame body of " + std::to_string(h.body_len) +
                                   " bytes exceeds the limit");
  if (h.bulk_len > limits.max_bulk || h.bulk_cap > limits.max_bulk)
    return Status::InvalidArgument("frame bulk of " +
                                   std::to_string(std::max(h.bulk_len, h.bulk_cap)) +
                                   " bytes exceeds the limit");
  if (kind != FrameKind::kCall && h.bulk_cap != 0)
    return Status::InvalidArgument("bulk capacity on a frame that is not a call");
  if (kind != FrameKind::kCall && kind != FrameKind::kReply && h.bulk_len != 0)
    return Status::InvalidArgument("bulk bytes on a frame that carries none");
  *out = h;
  return Status::OK();
}

}  // namespace kvpool::transport
