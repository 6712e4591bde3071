// The TCP transport between real nodes on loopback, each on its own event
// loop thread(s): the transport contract suite (transport_contract_test.cc)
// and what only TCP does.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "storage/transport/transport_contract_test.h"
#include "storage/transport/transport_test_util.h"

namespace kvpool::transport::testing {
namespace {

// Established TCP connections whose local port is `port` (the accepted side).
int EstablishedAt(int port) {
  std::ifstream f("/proc/net/tcp");
  std::string line;
  std::getline(f, line);
  int n = 0;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string sl, local, remote, st;
    in >> sl >> local >> remote >> st;
    if (st == "01" && std::stoi(local.substr(local.find(':') + 1), nullptr, 16) == port) n++;
  }
  return n;
}

// Two nodes, A (index 0) calls B (index 1), one lane each unless asked.
struct Pair {
  explicit Pair(int lanes = 1, std::string secret_a = "pool-secret",
                std::string secret_b = "pool-secret")
      : ports{FreePort(), FreePort()} {
    a = std::make_unique<TestNode>(MakeOptions(0, ports, secret_a), lanes, logic_a.Handler());
    b = std::make_unique<TestNode>(MakeOptions(1, ports, secret_b), lanes, logic_b.Handler());
    logic_a.Attach(*a, lanes);
    logic_b.Attach(*b, lanes);
  }
  std::vector<int> ports;
  ServerLogic logic_a, logic_b;
  std::unique_ptr<TestNode> a, b;
};

const TransportKind kTcp{
    .name = "tcp",
    .unavailable = nullptr,
    .port = &FreePort,
    .options = [](int self, const std::vector<int>& ports,
                  std::string secret) { return MakeOptions(self, ports, std::move(secret)); },
    .node = [](const TransportOptions& o, int lanes,
               CallHandler h) { return std::make_unique<TestNode>(o, lanes, std::move(h)); },
    .max_bulk_per_call = 64u << 20,
    .bulk_sizes = {0, 1, 4095, (64 << 10) + 3, (1 << 20) + 7, 64 << 20},
    .chunk = 1u << 20,
    .one_sided = false,
    .connections = [](TestNode&, int port_b) { return EstablishedAt(port_b); },
    .stats = [](TestNode&) -> const RdmaStats* { return nullptr; },
};

INSTANTIATE_TEST_SUITE_P(Tcp, TransportContract, ::testing::Values(&kTcp), KindName);

TEST(TcpTransportTest, PeerKilledFailsPendingCallsThenRecovers) {
  Pair p;
  constexpr int kPending = 5;
  std::atomic<int> failed{0}, other{0};
  p.a->lane(0).Post([&] {
    for (int i = 0; i < kPending; ++i)
      p.a->t().Call(0, 1, Args(kNever, ""), 30000,
                    [&](Status st, std::string_view, std::string_view) {
                      (st.code() == Code::kUnavailable ? failed : other)++;
                    });
  });
  ASSERT_TRUE(WaitFor([&] { return p.logic_b.stashed.load() == kPending; }));
  auto start = std::chrono::steady_clock::now();
  p.b->Kill();
  ASSERT_TRUE(WaitFor([&] { return failed.load() + other.load() == kPending; }, 5000));
  EXPECT_EQ(failed.load(), kPending);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  // Answering after the node is gone is harmless.
  p.b->lane(0).Run([&] { p.logic_b.FinishStash("too late"); });

  // A new node on the same port.
  ServerLogic logic_b2;
  TestNode b2(MakeOptions(1, p.ports), 1, logic_b2.Handler());
  ASSERT_TRUE(b2.start_status().ok()) << b2.start_status().ToString();
  CallResult r;
  ASSERT_TRUE(WaitFor(
      [&] {
        r = p.a->CallSync(0, 1, Args(kEcho, "again"));
        return r.st.ok();
      },
      3000))
      << r.st.ToString();
  EXPECT_EQ(r.reply, "again");
}

TEST(TcpTransportTest, ConnectionsLandOnTheRequestersLane) {
  Pair p(2);
  for (int lane : {0, 1}) {
    CallResult r = p.a->CallSync(lane, 1, Args(kWhere, ""));
    ASSERT_TRUE(r.st.ok()) << r.st.ToString();
    EXPECT_EQ(r.reply, std::to_string(lane));
    EXPECT_EQ(r.thread, p.a->lane(lane).thread_id());
  }
  // An owner with fewer lanes folds them: lane index modulo its lane count.
  std::vector<int> ports{p.ports[0], FreePort()};
  ServerLogic logic_c;
  TestNode c(MakeOptions(1, ports), 1, logic_c.Handler());
  logic_c.Attach(c, 1);
  ServerLogic logic_a2;
  TestNode a2(MakeOptions(0, {FreePort(), ports[1]}), 2, logic_a2.Handler());
  CallResult r = a2.CallSync(1, 1, Args(kWhere, ""));
  ASSERT_TRUE(r.st.ok()) << r.st.ToString();
  EXPECT_EQ(r.reply, "0");
}

TEST(TcpTransportTest, RejectsBadArguments) {
  std::vector<int> ports{FreePort(), FreePort()};
  TransportOptions o = MakeOptions(0, ports);
  o.max_body = 100;
  o.max_bulk = 1000;
  ServerLogic logic;
  TestNode a(o, 1, logic.Handler());
  EXPECT_EQ(a.CallSync(0, 2, Args(kEcho, "")).st.code(), Code::kInvalidArgument);
  EXPECT_EQ(a.CallSync(0, 1, Args(kEcho, std::string(101, 'x'))).st.code(), Code::kInvalidArgument);
  EXPECT_EQ(a.CallSync(0, 1, Args(kEcho, "", 1001)).st.code(), Code::kInvalidArgument);
  std::string big(1001, 'x');
  CallArgs args = Args(kEcho, "");
  args.bulk_in = {{big.data(), big.size()}};
  EXPECT_EQ(a.CallSync(0, 1, std::move(args)).st.code(), Code::kInvalidArgument);
  EXPECT_TRUE(CreateTcpTransport(MakeOptions(0, ports)).ok());
  TransportOptions bad = MakeOptions(0, ports);
  bad.self = 2;
  EXPECT_EQ(CreateTcpTransport(bad).status().code(), Code::kInvalidArgument);
  // A second transport cannot listen on a port in use.
  TestNode dup(MakeOptions(0, ports), 1, logic.Handler());
  EXPECT_EQ(dup.start_status().code(), Code::kIOError);
}

}  // namespace
}  // namespace kvpool::transport::testing
