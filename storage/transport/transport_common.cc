#include "storage/transport/transport_common.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <algorithm>

#include <cstring>

namespace kvpool::transport {

bool IsTransportCounterName(std::string_view name) {
  if (name.empty() || name.size() > 64 || name[0] < 'a' || name[0] > 'z') return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

timeval MsToTimeval(int ms) {
  timeval tv;
  tv.tv_sec = ms / 1000;
  tv.tv_usec = (ms % 1000) * 1000;
  return tv;
}

Status ResolveAddress(const std::string& host, int port, sockaddr_storage* out, socklen_t* len) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string h = host.empty() ? "127.0.0.1" : host;
  int rc = getaddrinfo(h.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0 || !res)
    return Status::InvalidArgument("cannot resolve " + h + ": " + gai_strerror(rc));
  std::memset(out, 0, sizeof(*out));
  std::memcpy(out, res->ai_addr, res->ai_addrlen);
  if (len) *len = res->ai_addrlen;
  freeaddrinfo(res);
  return Status::OK();
}

std::string AddressKey(const sockaddr* a) {
  if (a->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(a);
    return std::string(reinterpret_cast<const char*>(&in->sin_addr), 4);
  }
  if (a->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(a);
    const char* b = reinterpret_cast<const char*>(&in6->sin6_addr);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) return std::string(b + 12, 4);
    return std::string(b, 16);
  }
  return {};
}

std::string AddressKeyText(const std::string& key) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (key.size() == 4 || key.size() == 16)
    inet_ntop(key.size() == 4 ? AF_INET : AF_INET6, key.data(), buf, sizeof(buf));
  return buf;
}

std::string PeerAllowlist::Init(const std::vector<PeerAddress>& peers) {
  keys_.clear();
  std::string unresolved;
  for (const PeerAddress& p : peers) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const std::string h = p.host.empty() ? "127.0.0.1" : p.host;
    const int rc = getaddrinfo(h.c_str(), nullptr, &hints, &res);
    if (rc != 0 || !res) {
      unresolved += (unresolved.empty() ? "" : ", ") + h + " (" + gai_strerror(rc) + ")";
      continue;
    }
    for (addrinfo* r = res; r; r = r->ai_next) {
      std::string k = AddressKey(r->ai_addr);
      if (!k.empty() && std::find(keys_.begin(), keys_.end(), k) == keys_.end())
        keys_.push_back(std::move(k));
    }
    freeaddrinfo(res);
  }
  return unresolved;
}

bool PeerAllowlist::Allows(const sockaddr* a) const {
  const std::string k = AddressKey(a);
  return !k.empty() && std::find(keys_.begin(), keys_.end(), k) != keys_.end();
}

PeerTable::PeerTable(size_t peers)
    : size_(static_cast<int>(peers)),
      counters_(new PeerCounters[peers]),
      up_(new std::atomic<bool>[peers]) {
  for (size_t i = 0; i < peers; ++i) up_[i].store(true);
}

const PeerCounters& PeerTable::counters(int peer) const {
  static const PeerCounters kNone;
  if (peer < 0 || peer >= size_) return kNone;
  return counters_[peer];
}

bool PeerTable::up(int peer) const {
  if (peer < 0 || peer >= size_) return false;
  return up_[peer].load(std::memory_order_relaxed);
}

Status CheckCall(const TransportOptions& o, PeerTable& peers, size_t lanes, int lane, int peer,
                 const CallArgs& args, uint64_t* bulk) {
  if (lanes == 0) return Status::Unavailable("transport not started");
  if (lane < 0 || lane >= static_cast<int>(lanes)) return Status::InvalidArgument("no such lane");
  if (peer < 0 || peer >= peers.size()) return Status::InvalidArgument("no such peer");
  PeerCounters& pc = peers.at(peer);
  pc.calls.fetch_add(1, std::memory_order_relaxed);
  *bulk = 0;
  for (const iovec& v : args.bulk_in) *bulk += v.iov_len;
  if (args.body.size() > o.max_body || *bulk > o.max_bulk || args.bulk_out_capacity > o.max_bulk) {
    pc.errors.fetch_add(1, std::memory_order_relaxed);
    return Status::InvalidArgument("call exceeds max_body or max_bulk");
  }
  return Status::OK();
}

}  // namespace kvpool::transport
