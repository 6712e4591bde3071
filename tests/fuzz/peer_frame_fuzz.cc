// libFuzzer target for the node-to-node frame and handshake decoders, fed
// bytes as a stranger on the pool port (or a broken peer) would send them.
// Build and run with tests/fuzz/build_and_run.sh.
//
// The input is read as a stream of wire.h frames, the way a receiver reads
// its socket: a 40-byte header through DecodeHeader, then body and bulk of
// the lengths it announced (cut short where the input ends). Each frame is
// handed to what would receive it:
//   - kHello / kProof: the acceptor's auth::ServerHandshake (and DecodeHello);
//   - kChallenge: the connector's auth::ClientHandshake;
//   - kCall: the RDMA call descriptor decoder (the first 32 body bytes).
// Besides, the raw input goes through the RDMA segment header, call
// descriptor and rdma_cm private-data decoders at a few offsets.
//
// Checked (abort on violation), beyond ASan/UBSan's own checks:
//   - an accepted header re-encodes to exactly its 40 input bytes and obeys
//     the limits it was decoded with (body, bulk, bulk_cap; no bulk on kinds
//     that carry none); a header accepted under tight limits is accepted
//     under looser ones; a rejected one says why;
//   - DecodeHello accepts exactly 48-byte bodies and round-trips them (the
//     two reserved bytes aside);
//   - the acceptor answers a HELLO only if it is addressed to it, from a
//     known node, in the handshake version, and only once; it accepts a
//     PROOF only if it equals the genuine HMAC of the transcript; the
//     connector accepts a CHALLENGE only if its MAC is genuine;
//   - the RDMA decoders accept only what their encoders produce (plus the
//     zero padding rdma_cm may add to private data).
// The checks compute the genuine MACs and compare with memcmp, which
// libFuzzer watches: it soon learns them and sends valid PROOFs and
// CHALLENGEs too, so the accepting paths are exercised as well. That is the
// harness handing over the answer, not a forgery; the invariant is that
// every verdict equals the genuine comparison.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "storage/transport/auth.h"
#include "storage/transport/rdma_wire.h"
#include "storage/transport/wire.h"

namespace {

using namespace kvpool;
using namespace kvpool::transport;

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "peer_frame_fuzz: invariant violated: %s\n", what);
  std::abort();
}

void Check(bool ok, const char* what) {
  if (!ok) Die(what);
}

constexpr std::string_view kSecret = "fuzz-pool-secret";
constexpr uint32_t kSelf = 1;   // the acceptor's node index
constexpr uint32_t kNodes = 3;  // nodes in its pool

auth::Nonce FixedNonce(uint8_t seed) {
  auth::Nonce n;
  for (size_t i = 0; i < n.size(); ++i) n[i] = static_cast<uint8_t>(seed * 31 + i * 7);
  return n;
}

// The limits a receiver uses before the handshake (small), after it (the
// transport defaults) and the loosest possible ones.
constexpr WireLimits kHandshakeLimits{256, 0};
constexpr WireLimits kDefaultLimits{64u << 20, 1ull << 30};
constexpr WireLimits kNoLimits{UINT64_MAX, UINT64_MAX};

Status CheckedDecodeHeader(const char* in, const WireLimits& limits, FrameHeader* out) {
  FrameHeader h;
  h.call_id = 0xDEADBEEF;  // must be left alone on failure
  Status st = DecodeHeader(in, limits, &h);
  if (!st.ok()) {
    Check(st.code() == Code::kInvalidArgument, "DecodeHeader failed with a code other than invalid argument");
    Check(!st.message().empty(), "DecodeHeader failed without a reason");
    Check(h.call_id == 0xDEADBEEF, "DecodeHeader wrote its output although it failed");
    return st;
  }
  Check(h.body_len <= limits.max_body, "accepted body_len over the limit");
  Check(h.bulk_len <= limits.max_bulk && h.bulk_cap <= limits.max_bulk,
        "accepted bulk over the limit");
  Check(h.kind == FrameKind::kCall || h.bulk_cap == 0, "bulk_cap on a frame that is not a call");
  Check(h.kind == FrameKind::kCall || h.kind == FrameKind::kReply || h.bulk_len == 0,
        "bulk bytes on a frame that carries none");
  char again[kHeaderSize];
  EncodeHeader(h, again);
  Check(std::memcmp(again, in, kHeaderSize) == 0, "an accepted header does not re-encode to its bytes");
  *out = h;
  return st;
}

void CheckHello(std::string_view body) {
  auth::Hello h;
  Status st = auth::DecodeHello(body, &h);
  Check(st.ok() == (body.size() == auth::kHelloSize), "DecodeHello accepts exactly 48-byte bodies");
  if (!st.ok()) return;
  std::string again = auth::EncodeHello(h);
  Check(again.size() == auth::kHelloSize, "EncodeHello size");
  // Bytes 2..3 are reserved: written as 0, ignored when read.
  Check(std::memcmp(again.data(), body.data(), 2) == 0 &&
            std::memcmp(again.data() + 4, body.data() + 4, auth::kHelloSize - 4) == 0,
        "HELLO does not round-trip");
}

// The acceptor and the connector of one connection, driven by the frames.
struct Handshakes {
  auth::Nonce nonce_s = FixedNonce(1);
  auth::Nonce nonce_c = FixedNonce(2);
  auth::ServerHandshake server{kSecret, kSelf, kNodes, nonce_s};
  auth::Ids client_ids{0, kSelf, 0};
  auth::ClientHandshake client{kSecret, client_ids, nonce_c};
  bool hello_accepted = false;
  auth::Hello hello;  // the accepted one

  void OnHello(std::string_view body) {
    auth::Hello h;
    const bool well_formed = auth::DecodeHello(body, &h).ok();
    StatusOr<std::string> r = server.OnHello(body);
    const bool should = !hello_accepted && well_formed && h.version == auth::kHandshakeVersion &&
                        h.ids.client < kNodes && h.ids.server == kSelf;
    Check(r.ok() == should, "HELLO accepted or refused against the rules");
    if (!r.ok()) {
      Check(r.status().code() == Code::kInvalidArgument, "a bad HELLO is not invalid argument");
      return;
    }
    hello_accepted = true;
    hello = h;
    const std::string& chal = r.value();
    Check(chal.size() == auth::kChallengeSize, "CHALLENGE size");
    Check(std::memcmp(chal.data(), nonce_s.data(), nonce_s.size()) == 0,
          "CHALLENGE does not carry the acceptor's nonce");
    Sha256Digest mac = auth::ServerProof(kSecret, h.nonce, nonce_s, h.ids);
    Check(std::memcmp(chal.data() + auth::kNonceSize, mac.data(), mac.size()) == 0,
          "CHALLENGE MAC is not the server proof");
    Check(chal.find(kSecret) == std::string::npos, "the secret is in the CHALLENGE");
  }

  void OnProof(std::string_view body) {
    Status st = server.OnProof(body);
    if (!hello_accepted || body.size() != auth::kProofSize) {
      Check(!st.ok(), "PROOF accepted before a HELLO or with a bad size");
      return;
    }
    Sha256Digest want = auth::ClientProof(kSecret, nonce_s, hello.nonce, hello.ids);
    const bool genuine = std::memcmp(body.data(), want.data(), want.size()) == 0;
    Check(st.ok() == genuine, "PROOF verdict differs from the genuine HMAC comparison");
    if (!genuine) Check(st.code() == Code::kPermissionDenied, "a wrong PROOF is not permission denied");
  }

  void OnChallenge(std::string_view body) {
    StatusOr<std::string> r = client.OnChallenge(body);
    if (body.size() != auth::kChallengeSize) {
      Check(!r.ok() && r.status().code() == Code::kInvalidArgument, "CHALLENGE of a bad size accepted");
      return;
    }
    auth::Nonce ns;
    std::memcpy(ns.data(), body.data(), ns.size());
    Sha256Digest want = auth::ServerProof(kSecret, nonce_c, ns, client_ids);
    const bool genuine = std::memcmp(body.data() + auth::kNonceSize, want.data(), want.size()) == 0;
    Check(r.ok() == genuine, "CHALLENGE verdict differs from the genuine HMAC comparison");
    if (r.ok()) {
      Sha256Digest proof = auth::ClientProof(kSecret, ns, nonce_c, client_ids);
      Check(r.value().size() == proof.size() &&
                std::memcmp(r.value().data(), proof.data(), proof.size()) == 0,
            "PROOF is not the client proof");
    } else {
      Check(r.status().code() == Code::kPermissionDenied, "a forged CHALLENGE is not permission denied");
    }
  }
};

void CheckRdmaDecoders(const uint8_t* data, size_t size) {
  using namespace kvpool::transport::rdma;
  const char* p = reinterpret_cast<const char*>(data);
  if (size >= kSegSize) {
    Seg s;
    if (DecodeSeg(p, &s).ok()) {
      char again[kSegSize];
      EncodeSeg(s, again);
      Check(std::memcmp(again, p, kSegSize) == 0, "segment header does not round-trip");
    }
  }
  if (size >= kCallDescSize) {
    CallDesc d;
    if (DecodeCallDesc(p, &d).ok()) {
      char again[kCallDescSize];
      EncodeCallDesc(d, again);
      Check(std::memcmp(again, p, kCallDescSize) == 0, "call descriptor does not round-trip");
    }
  }
  // rdma_cm private data: exact, short and padded lengths (a heap copy of
  // the exact length so reading past it is caught).
  for (size_t len : {size, std::min<size_t>(size, kConnAcceptSize), std::min<size_t>(size, kConnRequestSize)}) {
    std::string copy(p, len);
    ConnRequest rq;
    if (DecodeConnRequest(copy.data(), copy.size(), &rq).ok()) {
      Check(len >= kConnRequestSize, "short connect request accepted");
      std::string again = EncodeConnRequest(rq);
      Check(std::memcmp(again.data(), copy.data(), 6) == 0 &&
                std::memcmp(again.data() + 8, copy.data() + 8, kConnRequestSize - 8) == 0,
            "connect request does not round-trip");
      Check(rq.recv_depth >= 2 && rq.recv_depth <= 65536, "receive depth out of range accepted");
    }
    ConnAccept ac;
    if (DecodeConnAccept(copy.data(), copy.size(), &ac).ok()) {
      Check(len >= kConnAcceptSize, "short accept accepted");
      Check(ac.recv_depth >= 2 && ac.recv_depth <= 65536, "receive depth out of range accepted");
    }
  }
  ConnRequest rq;
  Check(!DecodeConnRequest(nullptr, 0, &rq).ok(), "null private data accepted");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CheckRdmaDecoders(data, size);

  Handshakes hs;
  size_t pos = 0;
  int frames = 0;
  while (size - pos >= kHeaderSize && frames < 64) {
    ++frames;
    // An exact heap copy: DecodeHeader must read 40 bytes and no more.
    std::string hdr(reinterpret_cast<const char*>(data) + pos, kHeaderSize);
    pos += kHeaderSize;
    FrameHeader tight, dflt, loose;
    const bool ok_tight = CheckedDecodeHeader(hdr.data(), kHandshakeLimits, &tight).ok();
    const bool ok_dflt = CheckedDecodeHeader(hdr.data(), kDefaultLimits, &dflt).ok();
    const bool ok_loose = CheckedDecodeHeader(hdr.data(), kNoLimits, &loose).ok();
    Check(!ok_tight || ok_dflt, "accepted under handshake limits, refused under defaults");
    Check(!ok_dflt || ok_loose, "accepted under defaults, refused with no limits");
    // A receiver drops the connection on a bad header; so do we.
    if (!ok_loose) break;
    const FrameHeader& h = loose;
    const size_t left = size - pos;
    const size_t body_n = static_cast<size_t>(std::min<uint64_t>(h.body_len, left));
    std::string body(reinterpret_cast<const char*>(data) + pos, body_n);
    pos += body_n;
    pos += static_cast<size_t>(std::min<uint64_t>(h.bulk_len, size - pos));

    switch (h.kind) {
      case FrameKind::kHello:
        CheckHello(body);
        if (ok_tight) hs.OnHello(body);
        break;
      case FrameKind::kProof:
        if (ok_tight) hs.OnProof(body);
        break;
      case FrameKind::kChallenge:
        if (ok_tight) hs.OnChallenge(body);
        break;
      case FrameKind::kCall:
        CheckRdmaDecoders(reinterpret_cast<const uint8_t*>(body.data()), body.size());
        break;
      default:
        break;
    }
  }
  return 0;
}
