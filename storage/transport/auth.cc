#include "storage/transport/auth.h"

#include <endian.h>
#include <sys/random.h>

#include <cerrno>
#include <cstring>

namespace kvpool::transport::auth {

namespace {

void PutBe32(std::string* s, uint32_t v) {
  v = htobe32(v);
  s->append(reinterpret_cast<const char*>(&v), 4);
}
void PutBe16(std::string* s, uint16_t v) {
  v = htobe16(v);
  s->append(reinterpret_cast<const char*>(&v), 2);
}
uint32_t GetBe32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return be32toh(v);
}
uint16_t GetBe16(const char* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return be16toh(v);
}
void PutBytes(std::string* s, const uint8_t* p, size_t n) {
  s->append(reinterpret_cast<const char*>(p), n);
}

// label | NUL | first | second | client | server | lane | version. Fixed
// layout, so no two different inputs serialize alike.
Sha256Digest Mac(std::string_view secret, std::string_view label, const Nonce& first,
                 const Nonce& second, const Ids& ids) {
  std::string m;
  m.reserve(label.size() + 1 + 2 * kNonceSize + 14);
  m.append(label);
  m.push_back('\0');
  PutBytes(&m, first.data(), first.size());
  PutBytes(&m, second.data(), second.size());
  PutBe32(&m, ids.client);
  PutBe32(&m, ids.server);
  PutBe32(&m, ids.lane);
  PutBe16(&m, kHandshakeVersion);
  return HmacSha256(secret, m);
}

}  // namespace

Status RandomNonce(Nonce* out) {
  size_t got = 0;
  while (got < out->size()) {
    ssize_t n = getrandom(out->data() + got, out->size() - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IOError(std::string("getrandom: ") + std::strerror(errno));
    }
    got += static_cast<size_t>(n);
  }
  return Status::OK();
}

Sha256Digest ServerProof(std::string_view secret, const Nonce& nonce_c, const Nonce& nonce_s,
                         const Ids& ids) {
  return Mac(secret, "kvpool-server", nonce_c, nonce_s, ids);
}

Sha256Digest ClientProof(std::string_view secret, const Nonce& nonce_s, const Nonce& nonce_c,
                         const Ids& ids) {
  return Mac(secret, "kvpool-client", nonce_s, nonce_c, ids);
}

FrameKeys DeriveFrameKeys(std::string_view secret, const Nonce& nonce_c, const Nonce& nonce_s,
                          const Ids& ids) {
  return {Mac(secret, "kvpool-frame-c2s", nonce_c, nonce_s, ids),
          Mac(secret, "kvpool-frame-s2c", nonce_c, nonce_s, ids)};
}

std::string EncodeHello(const Hello& h) {
  std::string s;
  s.reserve(kHelloSize);
  PutBe16(&s, h.version);
  PutBe16(&s, 0);  // reserved
  PutBe32(&s, h.ids.client);
  PutBe32(&s, h.ids.server);
  PutBe32(&s, h.ids.lane);
  PutBytes(&s, h.nonce.data(), h.nonce.size());
  return s;
}

Status DecodeHello(std::string_view body, Hello* out) {
  if (body.size() != kHelloSize) return Status::InvalidArgument("bad HELLO size");
  const char* p = body.data();
  out->version = GetBe16(p);
  out->ids.client = GetBe32(p + 4);
  out->ids.server = GetBe32(p + 8);
  out->ids.lane = GetBe32(p + 12);
  std::memcpy(out->nonce.data(), p + 16, kNonceSize);
  return Status::OK();
}

ClientHandshake::ClientHandshake(std::string_view secret, const Ids& ids, const Nonce& nonce_c)
    : secret_(secret), ids_(ids), nonce_c_(nonce_c) {}

std::string ClientHandshake::HelloBody() const {
  Hello h;
  h.ids = ids_;
  h.nonce = nonce_c_;
  return EncodeHello(h);
}

StatusOr<std::string> ClientHandshake::OnChallenge(std::string_view body) {
  if (body.size() != kChallengeSize) return Status::InvalidArgument("bad CHALLENGE size");
  Nonce nonce_s;
  Sha256Digest mac;
  std::memcpy(nonce_s.data(), body.data(), kNonceSize);
  std::memcpy(mac.data(), body.data() + kNonceSize, mac.size());
  if (!DigestEqual(mac, ServerProof(secret_, nonce_c_, nonce_s, ids_)))
    return Status::PermissionDenied("peer failed authentication (pool-secret mismatch?)");
  Sha256Digest proof = ClientProof(secret_, nonce_s, nonce_c_, ids_);
  if (!secret_.empty()) keys_ = DeriveFrameKeys(secret_, nonce_c_, nonce_s, ids_);
  return std::string(reinterpret_cast<const char*>(proof.data()), proof.size());
}

ServerHandshake::ServerHandshake(std::string_view secret, uint32_t self, uint32_t nodes,
                                 const Nonce& nonce_s)
    : secret_(secret), self_(self), nodes_(nodes), nonce_s_(nonce_s) {}

StatusOr<std::string> ServerHandshake::OnHello(std::string_view body) {
  if (have_hello_) return Status::InvalidArgument("second HELLO");
  Hello h;
  Status st = DecodeHello(body, &h);
  if (!st.ok()) return st;
  if (h.version != kHandshakeVersion)
    return Status::InvalidArgument("unsupported handshake version " + std::to_string(h.version));
  if (h.ids.client >= nodes_) return Status::InvalidArgument("unknown client node index");
  if (h.ids.server != self_) return Status::InvalidArgument("HELLO addressed to another node");
  have_hello_ = true;
  ids_ = h.ids;
  nonce_c_ = h.nonce;
  Sha256Digest mac = ServerProof(secret_, nonce_c_, nonce_s_, ids_);
  std::string out;
  out.reserve(kChallengeSize);
  PutBytes(&out, nonce_s_.data(), nonce_s_.size());
  PutBytes(&out, mac.data(), mac.size());
  return out;
}

Status ServerHandshake::OnProof(std::string_view body) {
  if (!have_hello_) return Status::InvalidArgument("PROOF before HELLO");
  if (body.size() != kProofSize) return Status::InvalidArgument("bad PROOF size");
  Sha256Digest mac;
  std::memcpy(mac.data(), body.data(), mac.size());
  if (!DigestEqual(mac, ClientProof(secret_, nonce_s_, nonce_c_, ids_)))
    return Status::PermissionDenied("peer failed authentication (pool-secret mismatch?)");
  if (!secret_.empty()) keys_ = DeriveFrameKeys(secret_, nonce_c_, nonce_s_, ids_);
  return Status::OK();
}

}  // namespace kvpool::transport::auth
