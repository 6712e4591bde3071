#include "storage/transport/rdma_wire.h"

#include <endian.h>

#include <cstring>

namespace kvpool::transport::rdma {

namespace {

constexpr uint32_t kPrivMagic = 0x4B565052;  // "KVPR"
constexpr uint8_t kKindRequest = 1;
constexpr uint8_t kKindAccept = 2;
constexpr uint32_t kMinDepth = 2;
constexpr uint32_t kMaxDepth = 65536;

void Put32(char* p, uint32_t v) {
  v = htobe32(v);
  std::memcpy(p, &v, 4);
}
void Put64(char* p, uint64_t v) {
  v = htobe64(v);
  std::memcpy(p, &v, 8);
}
uint32_t Get32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return be32toh(v);
}
uint64_t Get64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return be64toh(v);
}

// magic | version | kind | reserved(2)
void PutPrivHeader(char* p, uint8_t kind) {
  Put32(p, kPrivMagic);
  p[4] = static_cast<char>(kRdmaWireVersion);
  p[5] = static_cast<char>(kind);
  p[6] = p[7] = 0;
}
Status CheckPrivHeader(const void* data, size_t len, size_t want, uint8_t kind) {
  if (data == nullptr || len < want) return Status::InvalidArgument("short rdma_cm private data");
  const char* p = static_cast<const char*>(data);
  if (Get32(p) != kPrivMagic) return Status::InvalidArgument("not a kvpool connection");
  if (static_cast<uint8_t>(p[4]) != kRdmaWireVersion)
    return Status::InvalidArgument("unsupported kvpool rdma version " +
                                   std::to_string(static_cast<uint8_t>(p[4])));
  if (static_cast<uint8_t>(p[5]) != kind)
    return Status::InvalidArgument("unexpected rdma_cm private data kind");
  return Status::OK();
}
Status CheckDepth(uint32_t d) {
  if (d < kMinDepth || d > kMaxDepth)
    return Status::InvalidArgument("peer receive depth " + std::to_string(d) + " out of range");
  return Status::OK();
}

}  // namespace

void EncodeSeg(const Seg& s, char out[kSegSize]) {
  out[0] = static_cast<char>(s.type);
  out[1] = static_cast<char>(kRdmaWireVersion);
  out[2] = static_cast<char>(s.tagged ? kSegTagged : 0);
  out[3] = 0;
  Put32(out + 4, s.credits);
}

Status DecodeSeg(const char in[kSegSize], Seg* out) {
  const auto type = static_cast<SegType>(in[0]);
  if (type != SegType::kFirst && type != SegType::kMore && type != SegType::kCredit)
    return Status::InvalidArgument("unknown segment type");
  if (static_cast<uint8_t>(in[1]) != kRdmaWireVersion)
    return Status::InvalidArgument("unsupported segment version");
  const auto flags = static_cast<uint8_t>(in[2]);
  if ((flags & ~kSegTagged) != 0 || in[3] != 0)
    return Status::InvalidArgument("reserved segment bits set");
  out->type = type;
  out->tagged = (flags & kSegTagged) != 0;
  out->credits = Get32(in + 4);
  return Status::OK();
}

void EncodeCallDesc(const CallDesc& d, char out[kCallDescSize]) {
  Put64(out, d.in_addr);
  Put64(out + 8, d.out_addr);
  Put32(out + 16, d.in_rkey);
  Put32(out + 20, d.out_rkey);
  Put64(out + 24, 0);
}

Status DecodeCallDesc(const char in[kCallDescSize], CallDesc* out) {
  if (Get64(in + 24) != 0) return Status::InvalidArgument("reserved call descriptor bytes set");
  out->in_addr = Get64(in);
  out->out_addr = Get64(in + 8);
  out->in_rkey = Get32(in + 16);
  out->out_rkey = Get32(in + 20);
  return Status::OK();
}

std::string EncodeConnRequest(const ConnRequest& r) {
  std::string s(kConnRequestSize, '\0');
  PutPrivHeader(s.data(), kKindRequest);
  Put32(s.data() + 8, r.client);
  Put32(s.data() + 12, r.server);
  Put32(s.data() + 16, r.lane);
  Put32(s.data() + 20, r.recv_depth);
  return s;
}

std::string EncodeConnAccept(const ConnAccept& a) {
  std::string s(kConnAcceptSize, '\0');
  PutPrivHeader(s.data(), kKindAccept);
  Put32(s.data() + 8, a.recv_depth);
  return s;
}

Status DecodeConnRequest(const void* data, size_t len, ConnRequest* out) {
  Status st = CheckPrivHeader(data, len, kConnRequestSize, kKindRequest);
  if (!st.ok()) return st;
  const char* p = static_cast<const char*>(data);
  ConnRequest r;
  r.client = Get32(p + 8);
  r.server = Get32(p + 12);
  r.lane = Get32(p + 16);
  r.recv_depth = Get32(p + 20);
  st = CheckDepth(r.recv_depth);
  if (!st.ok()) return st;
  *out = r;
  return Status::OK();
}

Status DecodeConnAccept(const void* data, size_t len, ConnAccept* out) {
  Status st = CheckPrivHeader(data, len, kConnAcceptSize, kKindAccept);
  if (!st.ok()) return st;
  ConnAccept a;
  a.recv_depth = Get32(static_cast<const char*>(data) + 8);
  st = CheckDepth(a.recv_depth);
  if (!st.ok()) return st;
  *out = a;
  return Status::OK();
}

}  // namespace kvpool::transport::rdma
