// Helpers for the RDMA transport tests and benchmark: nodes on $RXE_IP,
// rdma_cm ports, a registered "segment" and an owner-side handler that
// reads into / writes from it (the one-sided path without bounce copies).
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "storage/transport/rdma_transport.h"
#include "storage/transport/transport_test_util.h"

namespace kvpool::transport::testing {

// The address of the RDMA interface ($RXE_IP in the Soft-RoCE guest), or ""
// when there is none (the tests then skip).
inline std::string RdmaIp() {
  const char* ip = std::getenv("RXE_IP");
  return ip ? ip : "";
}

// rdma_cm has its own port space; distinct per process so that parallel
// runs (and a forked peer) do not collide.
inline int NextRdmaPort() {
  static std::atomic<int> next{20000 + static_cast<int>(getpid() % 1500) * 16};
  return next++;
}

inline TransportOptions MakeRdmaOptions(int self, const std::vector<int>& ports,
                                        std::string secret = "pool-secret",
                                        size_t staging_bytes = 1u << 20, int staging_buffers = 8) {
  TransportOptions o;
  o.self = self;
  const std::string ip = RdmaIp();
  for (int p : ports) o.peers.push_back({ip, p});
  o.bind_host = ip;
  o.listen_port = ports[self];
  o.secret = std::move(secret);
  o.staging_bytes = staging_bytes;
  o.staging_buffers = staging_buffers;
  o.rdma_queue_depth = 64;
  if (const char* gid = std::getenv("KVPOOL_TEST_GID_INDEX")) o.rdma_gid_index = std::atoi(gid);
  return o;
}

// Page-aligned memory registered as a region (the segment stand-in).
class Region {
 public:
  explicit Region(size_t len) : len_(len) {
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    p_ = p == MAP_FAILED ? nullptr : static_cast<char*>(p);
  }
  ~Region() {
    if (p_) munmap(p_, len_);
  }
  char* data() const { return p_; }
  size_t size() const { return len_; }
  TransportOptions::Region region() const { return {p_, len_}; }

 private:
  char* p_;
  size_t len_;
};

// A node: its lanes (one thread each) and its RDMA transport.
class RdmaNode : public TestNode {
 public:
  RdmaNode(const TransportOptions& o, int lanes, CallHandler handler, RdmaTuning tuning = {})
      : TestNode(
            lanes, [&] { return CreateRdmaTransport(o, tuning); }, std::move(handler),
            /*call_timeout_ms=*/20000) {}
  const RdmaStats& stats() { return *GetRdmaStats(t()); }
};

// Opcodes served from a registered region (no bounce copy on the owner).
enum RegionOp : uint16_t {
  kRegionVerifyIn = 100,  // body "seed off": ReadBulk into region+off, reply ok/bad
  kRegionPattern,         // body "size seed off chunk": WriteBulk region+off in chunks
  kRegionBulkEcho,        // body "off": ReadBulk into region+off, WriteBulk it back
  kRegionMultiGet,        // body "n size seed off": values i at region+off+i*size; as many as fit
  kRegionMultiPut,        // body "n size seed off": one ReadBulk per value into the region
  kLaneOf,                // reply "<IncomingCall::lane()> <1 if on that lane's thread>"
  kDelayMs,               // body "ms": reply = body after ms (on the call's lane)
};

// The owner's handler: region ops here, everything else to ServerLogic.
class RegionLogic {
 public:
  explicit RegionLogic(char* region = nullptr) : region_(region) {}
  void set_region(char* r) { region_ = r; }
  // The node's lanes, for kLaneOf and kDelayMs.
  void Attach(RdmaNode& n) {
    for (int i = 0; i < n.lanes(); ++i) lanes_.push_back({n.lane(i).thread_id(), n.lane(i).base()});
  }
  ServerLogic& base() { return base_; }
  std::atomic<int> released{0};
  std::atomic<int> handled{0};
  std::atomic<int> writes_ok{0};  // WriteBulk calls accepted with a release

  CallHandler Handler() {
    CallHandler fallback = base_.Handler();
    return [this, fallback](std::unique_ptr<IncomingCall> c) {
      if (c->opcode() < kRegionVerifyIn) return fallback(std::move(c));
      handled++;
      Handle(std::move(c));
    };
  }

 private:
  static void Release(void* ctx) { static_cast<RegionLogic*>(ctx)->released++; }

  void Handle(std::unique_ptr<IncomingCall> c) {
    std::string body(c->body());
    unsigned long long a = 0, b = 0, d = 0, e = 0;
    std::sscanf(body.c_str(), "%llu %llu %llu %llu", &a, &b, &d, &e);
    switch (c->opcode()) {
      case kLaneOf: {
        const int l = c->lane();
        const bool here = l >= 0 && l < static_cast<int>(lanes_.size()) &&
                          lanes_[l].first == std::this_thread::get_id();
        return c->Reply(std::to_string(l) + (here ? " 1" : " 0"));
      }
      case kDelayMs: {
        const int ms = static_cast<int>(a);
        event_base* base = lanes_.at(c->lane()).second;
        auto* held = new std::unique_ptr<IncomingCall>(std::move(c));
        timeval tv{ms / 1000, (ms % 1000) * 1000};
        event_base_once(
            base, -1, EV_TIMEOUT,
            [](evutil_socket_t, short, void* arg) {
              auto* h = static_cast<std::unique_ptr<IncomingCall>*>(arg);
              (*h)->Reply(std::string((*h)->body()));
              delete h;
            },
            held, &tv);
        return;
      }
      case kRegionVerifyIn: {
        const size_t size = c->bulk_in_size();
        char* dst = region_ + b;
        auto held = std::make_shared<std::unique_ptr<IncomingCall>>(std::move(c));
        (*held)->ReadBulk(0, size, dst, [held, dst, size, seed = a](Status st) {
          if (!st.ok()) return (*held)->Reply("read failed: " + st.ToString());
          (*held)->Reply(CheckPattern(std::string_view(dst, size), seed) ? "ok" : "bad");
        });
        return;
      }
      case kRegionPattern: {
        const size_t size = a, off = d;
        size_t chunk = e ? e : (size ? size : 1);
        FillPattern(region_ + off, size, b);
        for (size_t o = 0; o < size; o += chunk) {
          size_t at = 0;
          Status st =
              c->WriteBulk(region_ + off + o, std::min(chunk, size - o), &Release, this, &at);
          if (!st.ok() || at != o) return c->Reply("write failed");
          writes_ok++;
        }
        return c->Reply("ok");
      }
      case kRegionBulkEcho: {
        const size_t size = c->bulk_in_size();
        char* dst = region_ + a;
        auto held = std::make_shared<std::unique_ptr<IncomingCall>>(std::move(c));
        (*held)->ReadBulk(0, size, dst, [this, held, dst, size](Status st) {
          if (!st.ok()) return (*held)->Reply("read failed");
          size_t at = 0;
          if (!(*held)->WriteBulk(dst, size, &Release, this, &at).ok())
            return (*held)->Reply("no room");
          writes_ok++;
          (*held)->Reply(std::to_string(size));
        });
        return;
      }
      case kRegionMultiGet: {
        // Like the pool's MGET owner: values that fit the capacity are
        // written, the reply says how many.
        const size_t n = a, size = b, off = e;
        size_t room = c->bulk_out_capacity(), sent = 0;
        for (size_t i = 0; i < n; ++i) {
          char* v = region_ + off + i * size;
          FillPattern(v, size, d + i);
          if (size > room) break;
          size_t at = 0;
          if (!c->WriteBulk(v, size, &Release, this, &at).ok()) break;
          room -= size;
          ++sent;
        }
        return c->Reply(std::to_string(sent));
      }
      case kRegionMultiPut: {
        // Like the pool's MSET owner: one ReadBulk per value, straight into
        // its place in the segment, reply once all have landed.
        const size_t n = a, size = b, off = e;
        if (c->bulk_in_size() != n * size) return c->Reply("bad size");
        struct Put {
          std::unique_ptr<IncomingCall> call;
          int pending = 1;
          bool ok = true;
        };
        auto put = std::make_shared<Put>();
        IncomingCall* call = c.get();
        put->call = std::move(c);
        char* region = region_;
        auto finish = [put, region, n, size, off, seed = d] {
          if (--put->pending > 0) return;
          bool ok = put->ok;
          for (size_t i = 0; ok && i < n; ++i)
            ok = CheckPattern(std::string_view(region + off + i * size, size), seed + i);
          put->call->Reply(ok ? "ok" : "bad");
        };
        for (size_t i = 0; i < n; ++i) {
          ++put->pending;
          call->ReadBulk(i * size, size, region_ + off + i * size, [put, finish](Status st) {
            if (!st.ok()) put->ok = false;
            finish();
          });
        }
        finish();
        return;
      }
    }
    c->Reply("unknown opcode");
  }

  char* region_;
  ServerLogic base_;
  std::vector<std::pair<std::thread::id, event_base*>> lanes_;
};

}  // namespace kvpool::transport::testing
