// Batched get and put of values between two nodes over either transport:
// node A sends batches to node B, whose values live in a registered region
// (the segment), the way the pool layer uses the transport. A batch is split
// into calls of at most max_bulk_per_call bytes (values packed into a call;
// a larger value in chunks), all in flight at once; `inflight` batches are
// kept outstanding. Reports batches/s and bytes/s per value size.
//
//   rdma_transport_bench [--transport rdma|tcp] [--host IP] [--seconds S]
//                        [--sizes 4K,64K,1M,4M] [--batch-bytes N] [--max-batch N]
//                        [--inflight N] [--ops get,put]
//
// --host defaults to $RXE_IP (else 127.0.0.1). Over Soft-RoCE under TCG the
// numbers only show that it works; they say nothing about RDMA hardware.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "storage/transport/rdma_test_util.h"

using namespace kvpool;
using namespace kvpool::transport;
using namespace kvpool::transport::testing;

namespace {

enum BenchOp : uint16_t { kGet = 1, kPut = 2 };

struct Options {
  std::string transport = "rdma";
  std::string host;
  double seconds = 3;
  std::vector<size_t> sizes{4u << 10, 64u << 10, 1u << 20, 4u << 20};
  size_t batch_bytes = 16u << 20;  // cap on one batch's values
  size_t max_batch = 64;           // values per batch
  int inflight = 4;
  std::vector<std::string> ops{"get", "put"};
};

size_t ParseSize(const std::string& s) {
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  switch (end && *end ? *end : ' ') {
    case 'K':
    case 'k':
      v *= 1024;
      break;
    case 'M':
    case 'm':
      v *= 1024 * 1024;
      break;
    case 'G':
    case 'g':
      v *= 1024.0 * 1024 * 1024;
      break;
    default:
      break;
  }
  return static_cast<size_t>(v);
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  size_t b = 0;
  while (b <= s.size()) {
    size_t e = s.find(',', b);
    if (e == std::string::npos) e = s.size();
    if (e > b) out.push_back(s.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

// The owner: body "off len count": ranges k = 0..count-1 of `len` bytes at
// region + off + k*len. Get writes them to bulk_out (straight from the
// region), put reads bulk_in into them (straight into the region).
class Owner {
 public:
  explicit Owner(char* region) : region_(region) {}
  CallHandler Handler() {
    return [this](std::unique_ptr<IncomingCall> c) {
      unsigned long long off = 0, len = 0, count = 0;
      std::sscanf(std::string(c->body()).c_str(), "%llu %llu %llu", &off, &len, &count);
      if (c->opcode() == kGet) {
        size_t at;
        for (size_t k = 0; k < count; ++k)
          if (!c->WriteBulk(region_ + off + k * len, len, nullptr, nullptr, &at).ok())
            return c->Reply("no room");
        return c->Reply("ok");
      }
      struct Put {
        std::unique_ptr<IncomingCall> call;
        int pending = 1;
        bool ok = true;
      };
      auto put = std::make_shared<Put>();
      IncomingCall* call = c.get();
      put->call = std::move(c);
      auto finish = [put] {
        if (--put->pending == 0) put->call->Reply(put->ok ? "ok" : "read failed");
      };
      for (size_t k = 0; k < count; ++k) {
        ++put->pending;
        call->ReadBulk(k * len, len, region_ + off + k * len, [put, finish](Status st) {
          if (!st.ok()) put->ok = false;
          finish();
        });
      }
      finish();
    };
  }

 private:
  char* region_;
};

// A node on either transport.
class Node {
 public:
  Node(const std::string& kind, const TransportOptions& o, CallHandler handler) {
    lane_ = std::make_unique<LoopThread>();
    StatusOr<std::unique_ptr<Transport>> t =
        kind == "tcp" ? CreateTcpTransport(o) : CreateRdmaTransport(o, RdmaTuning{});
    if (!t.ok()) {
      st_ = t.status();
      return;
    }
    t_ = std::move(t.value());
    st_ = t_->Start({lane_->base()}, std::move(handler));
  }
  ~Node() {
    if (t_) lane_->Run([&] { t_->StopLane(0); });
    t_.reset();
  }
  const Status& status() const { return st_; }
  Transport& t() { return *t_; }
  LoopThread& lane() { return *lane_; }

 private:
  std::unique_ptr<LoopThread> lane_;
  std::unique_ptr<Transport> t_;
  Status st_;
};

struct Call {
  size_t off, len, count;  // values (or one chunk) at value-array offset off
};

// How a batch of n values of `size` is split into calls.
std::vector<Call> Plan(size_t n, size_t size, size_t per_call) {
  std::vector<Call> calls;
  if (size > per_call) {
    for (size_t v = 0; v < n; ++v)
      for (size_t o = 0; o < size; o += per_call)
        calls.push_back({v * size + o, std::min(per_call, size - o), 1});
    return calls;
  }
  const size_t fit = per_call / size;
  for (size_t v = 0; v < n; v += fit) calls.push_back({v * size, size, std::min(fit, n - v)});
  return calls;
}

struct Result {
  double batches_per_s = 0, bytes_per_s = 0, calls_per_s = 0;
  bool ok = true;
};

Result Run(Node& a, const std::string& op, size_t n, size_t size, const Options& opt, char* src,
           char* dst) {
  const size_t per_call = a.t().max_bulk_per_call();
  const std::vector<Call> plan = Plan(n, size, per_call);
  std::atomic<uint64_t> batches{0}, calls{0};
  std::atomic<bool> stop{false}, failed{false};
  std::atomic<int> active{0};
  std::function<void()> issue = [&] {
    active++;
    auto left = std::make_shared<size_t>(plan.size());
    for (const Call& c : plan) {
      CallArgs args;
      args.opcode = op == "get" ? kGet : kPut;
      args.body =
          std::to_string(c.off) + " " + std::to_string(c.len) + " " + std::to_string(c.count);
      if (op == "get")
        args.bulk_out_capacity = c.len * c.count;
      else
        args.bulk_in = {{src + c.off, c.len * c.count}};
      a.t().Call(0, 1, std::move(args), 30000,
                 [&, left, c](Status st, std::string_view reply, std::string_view bulk) {
                   calls++;
                   if (!st.ok() || reply != "ok") {
                     if (!failed.exchange(true))
                       std::fprintf(stderr, "call failed: %s %.*s\n", st.ToString().c_str(),
                                    static_cast<int>(reply.size()), reply.data());
                   } else if (!bulk.empty()) {
                     std::memcpy(dst + c.off, bulk.data(), bulk.size());  // as the pool does
                   }
                   if (--*left > 0) return;
                   batches++;
                   active--;
                   if (!stop.load() && !failed.load()) issue();
                 });
    }
  };
  // Warm up (connects) and check one batch end to end.
  auto start = std::chrono::steady_clock::now();
  a.lane().Run([&] {
    for (int i = 0; i < opt.inflight; ++i) issue();
  });
  std::this_thread::sleep_for(std::chrono::duration<double>(opt.seconds));
  stop = true;
  WaitFor([&] { return active.load() == 0; }, 60000);
  std::chrono::duration<double> el = std::chrono::steady_clock::now() - start;
  Result r;
  r.ok = !failed.load();
  r.batches_per_s = batches.load() / el.count();
  r.bytes_per_s = static_cast<double>(batches.load()) * n * size / el.count();
  r.calls_per_s = calls.load() / el.count();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  Options opt;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--transport")
      opt.transport = v;
    else if (k == "--host")
      opt.host = v;
    else if (k == "--seconds")
      opt.seconds = std::atof(v.c_str());
    else if (k == "--batch-bytes")
      opt.batch_bytes = ParseSize(v);
    else if (k == "--max-batch")
      opt.max_batch = ParseSize(v);
    else if (k == "--inflight")
      opt.inflight = std::atoi(v.c_str());
    else if (k == "--ops")
      opt.ops = Split(v);
    else if (k == "--sizes") {
      opt.sizes.clear();
      for (const std::string& s : Split(v)) opt.sizes.push_back(ParseSize(s));
    } else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  if (opt.host.empty()) opt.host = RdmaIp().empty() ? "127.0.0.1" : RdmaIp();
  if (opt.transport != "tcp" && opt.transport != "rdma") {
    std::fprintf(stderr, "--transport is tcp or rdma\n");
    return 2;
  }
  size_t region_bytes = 0;
  for (size_t s : opt.sizes)
    region_bytes = std::max(region_bytes,
                            std::max<size_t>(1, std::min(opt.max_batch, opt.batch_bytes / s)) * s);
  Region region(region_bytes), src(region_bytes), dst(region_bytes);
  FillPattern(region.data(), region_bytes, 1);
  FillPattern(src.data(), region_bytes, 2);

  std::vector<int> ports = opt.transport == "tcp"
                               ? std::vector<int>{FreePort(), FreePort()}
                               : std::vector<int>{NextRdmaPort(), NextRdmaPort()};
  auto options = [&](int self) {
    TransportOptions o;
    o.self = self;
    for (int p : ports) o.peers.push_back({opt.host, p});
    o.bind_host = opt.host;
    o.listen_port = ports[self];
    o.secret = "bench";
    o.regions = {region.region()};
    return o;
  };
  Owner owner(region.data());
  Node b(opt.transport, options(1), owner.Handler());
  Node a(opt.transport, options(0), [](std::unique_ptr<IncomingCall>) {});
  if (!a.status().ok() || !b.status().ok()) {
    std::fprintf(stderr, "start failed: %s / %s\n", a.status().ToString().c_str(),
                 b.status().ToString().c_str());
    return 1;
  }
  std::printf("transport %s on %s, max_bulk_per_call %zu, %d batches in flight, %.1f s each\n",
              a.t().name(), opt.host.c_str(), a.t().max_bulk_per_call(), opt.inflight, opt.seconds);
  std::printf("%-4s %8s %6s %7s %12s %12s %10s\n", "op", "value", "batch", "calls", "batches/s",
              "MB/s", "calls/s");
  int rc = 0;
  for (const std::string& op : opt.ops) {
    for (size_t size : opt.sizes) {
      const size_t n = std::max<size_t>(1, std::min(opt.max_batch, opt.batch_bytes / size));
      Result r = Run(a, op, n, size, opt, src.data(), dst.data());
      // The bytes really moved: gets bring the region's, puts leave src's.
      const bool same = op == "get" ? std::memcmp(dst.data(), region.data(), n * size) == 0
                                    : std::memcmp(region.data(), src.data(), n * size) == 0;
      if (!r.ok || !same) rc = 1;
      if (op == "put") FillPattern(region.data(), region_bytes, 1);
      std::printf("%-4s %7zuK %6zu %7zu %12.1f %12.1f %10.1f%s\n", op.c_str(), size >> 10, n,
                  Plan(n, size, a.t().max_bulk_per_call()).size(), r.batches_per_s,
                  r.bytes_per_s / 1e6, r.calls_per_s, r.ok && same ? "" : "  FAILED");
      std::fflush(stdout);
    }
  }
  return rc;
}
