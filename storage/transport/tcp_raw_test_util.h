// Raw-socket helpers for the TCP transport tests: a hand-made connector
// that speaks (or withholds) wire.h frames and the handshake of auth.h.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "storage/transport/auth.h"
#include "storage/transport/frame_mac.h"
#include "storage/transport/wire.h"

namespace kvpool::transport::testing {

// A blocking connection to 127.0.0.1:port, from `source` (a loopback
// address) if given.
inline int RawConnect(int port, const char* source = nullptr) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (source) {
    sockaddr_in s{};
    s.sin_family = AF_INET;
    if (inet_pton(AF_INET, source, &s.sin_addr) != 1 ||
        bind(fd, reinterpret_cast<sockaddr*>(&s), sizeof(s)) != 0) {
      close(fd);
      return -1;
    }
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

inline bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

inline bool RecvExact(int fd, char* p, size_t n, int timeout_ms = 5000) {
  while (n > 0) {
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, timeout_ms) <= 0) return false;
    ssize_t got = recv(fd, p, n, 0);
    if (got <= 0) return false;
    p += got, n -= static_cast<size_t>(got);
  }
  return true;
}

// True if the peer closes (EOF or reset) within the timeout.
inline bool ClosedWithin(int fd, int timeout_ms) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[4096];
  while (std::chrono::steady_clock::now() < end) {
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, 50) <= 0) continue;
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return true;
  }
  return false;
}

inline std::string Frame(FrameKind kind, std::string_view payload, uint64_t body_len,
                         uint64_t bulk_len = 0, uint64_t bulk_cap = 0, uint64_t id = 0) {
  FrameHeader h;
  h.kind = kind;
  h.call_id = id;
  h.body_len = body_len;
  h.bulk_len = bulk_len;
  h.bulk_cap = bulk_cap;
  char hdr[kHeaderSize];
  EncodeHeader(h, hdr);
  return std::string(hdr, kHeaderSize) + std::string(payload);
}
inline std::string Frame(FrameKind kind, std::string_view body) {
  return Frame(kind, body, body.size());
}

// The frame MACs of one end of an authenticated link (frame_mac.h); both
// null when the secret is empty.
struct RawMacs {
  std::unique_ptr<FrameMac> send;
  std::unique_ptr<FrameMac> recv;
  bool Init(const FrameKey& send_key, const FrameKey& recv_key) {
    send = std::make_unique<FrameMac>();
    recv = std::make_unique<FrameMac>();
    return send->Init(send_key).ok() && recv->Init(recv_key).ok();
  }
};

// The tag of a whole frame (header and payload) as `m`'s next frame.
inline std::string Tag(FrameMac* m, std::string_view frame) {
  FrameTag tag{};
  if (!m->Begin().ok() || !m->Update(frame.data(), frame.size()).ok() || !m->Finish(&tag).ok())
    return std::string(kFrameTagSize, '\0');
  return std::string(reinterpret_cast<const char*>(tag.data()), tag.size());
}
// The frame followed by its tag (unchanged if `m` is null).
inline std::string Sealed(FrameMac* m, std::string frame) {
  if (m) frame += Tag(m, frame);
  return frame;
}

// Reads one frame; with `mac`, also its tag, which must be valid.
inline bool RecvFrame(int fd, FrameHeader* h, std::string* payload,
                      WireLimits limits = {1 << 20, 1 << 20}, FrameMac* mac = nullptr) {
  char hdr[kHeaderSize];
  if (!RecvExact(fd, hdr, kHeaderSize) || !DecodeHeader(hdr, limits, h).ok()) return false;
  payload->resize(h->body_len + h->bulk_len);
  if (!RecvExact(fd, payload->data(), payload->size())) return false;
  if (!mac) return true;
  char tag[kFrameTagSize];
  if (!RecvExact(fd, tag, sizeof(tag)) || !mac->Begin().ok() ||
      !mac->Update(hdr, kHeaderSize).ok() || !mac->Update(payload->data(), payload->size()).ok())
    return false;
  return mac->Check(reinterpret_cast<const uint8_t*>(tag)).ok();
}

// The connector's handshake over a blocking socket. AUTH_OK's tag is
// checked; `macs` (if given) receives the link's MACs for what follows.
inline bool RawClientHandshake(int fd, const std::string& secret, uint32_t client,
                               uint32_t server, RawMacs* macs = nullptr) {
  auth::Nonce nonce;
  if (!auth::RandomNonce(&nonce).ok()) return false;
  auth::ClientHandshake hs(secret, {client, server, 0}, nonce);
  if (!SendAll(fd, Frame(FrameKind::kHello, hs.HelloBody()))) return false;
  FrameHeader h;
  std::string body;
  if (!RecvFrame(fd, &h, &body) || h.kind != FrameKind::kChallenge) return false;
  auto proof = hs.OnChallenge(body);
  if (!proof.ok() || !SendAll(fd, Frame(FrameKind::kProof, proof.value()))) return false;
  RawMacs local;
  if (hs.frame_keys() && !local.Init(hs.frame_keys()->to_server, hs.frame_keys()->to_client))
    return false;
  if (!RecvFrame(fd, &h, &body, {1 << 20, 1 << 20}, local.recv.get()) ||
      h.kind != FrameKind::kAuthOk)
    return false;
  if (macs) *macs = std::move(local);
  return true;
}

}  // namespace kvpool::transport::testing
