// Throughput of batched 1 MiB gets over the TCP transport on loopback,
// against plain TCP between two threads on the same machine.
//
//   transport_bench [seconds=3] [values_per_call=8] [calls_in_flight=4] [secret=pool-secret]
//
// With a secret every frame carries a MAC (frame_mac.h); pass "" to
// measure the link without it.
#include <cstdio>
#include <cstdlib>

#include "storage/transport/transport_test_util.h"

using namespace kvpool;
using namespace kvpool::transport;
using namespace kvpool::transport::testing;

namespace {

constexpr size_t kValue = 1 << 20;

double RawTcpGbps(double seconds) {
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  listen(lfd, 1);
  socklen_t len = sizeof(a);
  getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
  std::atomic<bool> stop{false};
  std::thread sender([&] {
    int fd = accept(lfd, nullptr, nullptr);
    std::string buf = Pattern(kValue, 1);
    while (!stop.load())
      if (send(fd, buf.data(), buf.size(), MSG_NOSIGNAL) <= 0) break;
    close(fd);
  });
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  std::unique_ptr<char[]> buf(new char[kValue]);
  uint64_t total = 0;
  auto start = std::chrono::steady_clock::now();
  std::chrono::duration<double> el{};
  while ((el = std::chrono::steady_clock::now() - start).count() < seconds) {
    ssize_t n = recv(fd, buf.get(), kValue, 0);
    if (n <= 0) break;
    total += static_cast<uint64_t>(n);
  }
  stop = true;
  close(fd);
  sender.join();
  close(lfd);
  return total * 8 / el.count() / 1e9;
}

struct Owner {
  std::string value = Pattern(kValue, 7);
  CallHandler Handler() {
    return [this](std::unique_ptr<IncomingCall> c) {
      const int n = std::atoi(std::string(c->body()).c_str());
      size_t at;
      for (int i = 0; i < n; ++i)  // zero copy: straight from "the segment"
        if (!c->WriteBulk(value.data(), value.size(), nullptr, nullptr, &at).ok()) break;
      c->Reply("ok");
    };
  }
};

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 3;
  const int per_call = argc > 2 ? std::atoi(argv[2]) : 8;
  const int inflight = argc > 3 ? std::atoi(argv[3]) : 4;
  const std::string secret = argc > 4 ? argv[4] : "pool-secret";

  std::vector<int> ports{FreePort(), FreePort()};
  Owner owner;
  ServerLogic unused;
  TestNode b(MakeOptions(1, ports, secret), 1, owner.Handler());
  TestNode a(MakeOptions(0, ports, secret), 1, unused.Handler());
  if (!a.start_status().ok() || !b.start_status().ok()) {
    std::fprintf(stderr, "start failed\n");
    return 1;
  }
  CallResult warm = a.CallSync(0, 1, Args(1, std::to_string(per_call), per_call * kValue));
  if (!warm.st.ok() || warm.bulk.size() != per_call * kValue ||
      warm.bulk.substr(0, kValue) != owner.value) {
    std::fprintf(stderr, "warm-up failed: %s\n", warm.st.ToString().c_str());
    return 1;
  }

  std::atomic<uint64_t> bytes{0};
  std::atomic<bool> stop{false};
  std::atomic<int> active{0};
  std::function<void()> issue = [&] {
    active++;
    a.t().Call(0, 1, Args(1, std::to_string(per_call), per_call * kValue), 10000,
               [&](Status st, std::string_view, std::string_view bulk) {
                 active--;
                 if (!st.ok()) {
                   std::fprintf(stderr, "call failed: %s\n", st.ToString().c_str());
                   return;
                 }
                 bytes += bulk.size();
                 if (!stop.load()) issue();
               });
  };
  auto start = std::chrono::steady_clock::now();
  a.lane(0).Run([&] {
    for (int i = 0; i < inflight; ++i) issue();
  });
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  WaitFor([&] { return active.load() == 0; }, 10000);
  std::chrono::duration<double> el = std::chrono::steady_clock::now() - start;
  const double transport = bytes.load() * 8 / el.count() / 1e9;
  const double raw = RawTcpGbps(seconds);
  std::printf("frames %s\n", secret.empty() ? "unauthenticated (no secret)" : "authenticated (ChaCha20-Poly1305 tags)");
  std::printf("transport: %d x 1 MiB per call, %d calls in flight: %.2f Gbit/s (%.0f MiB/s)\n",
              per_call, inflight, transport, bytes.load() / el.count() / (1 << 20));
  std::printf("raw loopback TCP, 1 stream:                     %.2f Gbit/s\n", raw);
  std::printf("ratio: %.2f\n", transport / raw);
  a.Kill();
  b.Kill();
  return 0;
}
