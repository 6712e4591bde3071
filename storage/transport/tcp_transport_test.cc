// The TCP transport between real nodes on loopback, each on its own event
// loop thread(s).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

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

TEST(TcpTransportTest, Echo) {
  Pair p;
  ASSERT_TRUE(p.a->start_status().ok()) << p.a->start_status().ToString();
  ASSERT_TRUE(p.b->start_status().ok());
  EXPECT_STREQ(p.a->t().name(), "tcp");
  CallResult r = p.a->CallSync(0, 1, Args(kEcho, "hello"));
  ASSERT_TRUE(r.st.ok()) << r.st.ToString();
  EXPECT_EQ(r.reply, "hello");
  EXPECT_EQ(r.bulk, "");
  EXPECT_EQ(r.thread, p.a->lane(0).thread_id());
  // Both directions, and an empty body.
  r = p.b->CallSync(0, 0, Args(kEcho, ""));
  ASSERT_TRUE(r.st.ok()) << r.st.ToString();
  EXPECT_EQ(r.reply, "");
  EXPECT_EQ(p.a->t().counters(1).calls.load(), 1u);
  EXPECT_EQ(p.a->t().counters(1).errors.load(), 0u);
  EXPECT_TRUE(p.a->t().peer_up(1));
}

TEST(TcpTransportTest, CallToSelf) {
  Pair p;
  CallResult r = p.a->CallSync(0, 0, Args(kEcho, "me"));
  ASSERT_TRUE(r.st.ok()) << r.st.ToString();
  EXPECT_EQ(r.reply, "me");
}

TEST(TcpTransportTest, LargeBatchBody) {
  Pair p;
  std::string body;
  for (int i = 0; i < 20000; ++i) body += "key:" + std::to_string(i * 7919) + "\n";
  CallResult r = p.a->CallSync(0, 1, Args(kEcho, body));
  ASSERT_TRUE(r.st.ok()) << r.st.ToString();
  EXPECT_EQ(r.reply, body);
}

const size_t kSizes[] = {0, 1, 4095, (64 << 10) + 3, (1 << 20) + 7, 64 << 20};

TEST(TcpTransportTest, BulkInAllSizes) {
  Pair p;
  for (size_t size : kSizes) {
    std::string data = Pattern(size, size + 1);
    CallArgs args = Args(kVerifyIn, std::to_string(size + 1));
    // Split in three uneven pieces: bulk_in is a gather list.
    size_t a = size / 3, b = size / 2;
    args.bulk_in = {{data.data(), a}, {data.data() + a, b - a}, {data.data() + b, size - b}};
    CallResult r = p.a->CallSync(0, 1, std::move(args));
    ASSERT_TRUE(r.st.ok()) << size << " " << r.st.ToString();
    EXPECT_EQ(r.reply, "ok") << size;
  }
}

TEST(TcpTransportTest, BulkOutAllSizes) {
  Pair p;
  for (size_t size : kSizes) {
    for (size_t chunk : {size_t{0}, size_t{1} << 20}) {
      std::string body =
          std::to_string(size) + " " + std::to_string(size * 3) + " " + std::to_string(chunk);
      CallResult r = p.a->CallSync(0, 1, Args(kPattern, body, size));
      ASSERT_TRUE(r.st.ok()) << size << " " << r.st.ToString();
      ASSERT_EQ(r.reply, "ok");
      ASSERT_EQ(r.bulk.size(), size);
      EXPECT_TRUE(CheckPattern(r.bulk, size * 3)) << size;
    }
  }
  EXPECT_GE(p.a->t().counters(1).bytes_in.load(), 2 * (64u << 20));
  EXPECT_GE(p.b->t().counters(0).bytes_out.load(), 2 * (64u << 20));
}

TEST(TcpTransportTest, BulkInToBulkOutRoundTrip) {
  Pair p;
  const size_t size = 64 << 20;
  std::string data = Pattern(size, 4242);
  CallArgs args = Args(kBulkEcho, "", size);
  args.bulk_in = {{data.data(), size}};
  CallResult r = p.a->CallSync(0, 1, std::move(args));
  ASSERT_TRUE(r.st.ok()) << r.st.ToString();
  EXPECT_EQ(r.reply, std::to_string(size));
  EXPECT_TRUE(r.bulk == data);
  EXPECT_EQ(p.a->t().counters(1).bytes_out.load(), size);
  EXPECT_EQ(p.a->t().counters(1).bytes_in.load(), size);
}

TEST(TcpTransportTest, BulkOutCapacityEnforced) {
  Pair p;
  CallResult r = p.a->CallSync(0, 1, Args(kCapacity, "", 1000));
  ASSERT_TRUE(r.st.ok()) << r.st.ToString();
  EXPECT_EQ(r.reply, "aBCd");  // over capacity refused, exactly capacity accepted
  EXPECT_EQ(r.bulk, Pattern(1 << 16, 77).substr(0, 1000));
  EXPECT_TRUE(WaitFor([&] { return p.logic_b.released.load() == 2; }));
  // No capacity: every non-empty write is refused.
  r = p.a->CallSync(0, 1, Args(kCapacity, "", 0));
  ASSERT_TRUE(r.st.ok());
  EXPECT_EQ(r.reply, "aBCd");
  EXPECT_EQ(r.bulk, "");
}

TEST(TcpTransportTest, ThousandConcurrentCallsOutOfOrder) {
  Pair p;
  constexpr int kCalls = 1000;
  std::vector<int> order;
  std::atomic<int> done{0}, bad{0};
  p.a->lane(0).Post([&] {
    for (int i = 0; i < kCalls; ++i) {
      // Later calls get shorter delays, so replies overtake each other.
      std::string body = std::to_string((kCalls - i) % 25);
      p.a->t().Call(0, 1, Args(kDelay, body), 10000,
                    [&, i, body](Status st, std::string_view reply, std::string_view) {
                      if (!st.ok() || reply != body) bad++;
                      order.push_back(i);
                      done++;
                    });
    }
  });
  ASSERT_TRUE(WaitFor([&] { return done.load() == kCalls; }, 20000));
  EXPECT_EQ(bad.load(), 0);
  p.a->lane(0).Run([] {});
  EXPECT_FALSE(std::is_sorted(order.begin(), order.end()));
  EXPECT_EQ(p.logic_b.handled.load(), kCalls);
  EXPECT_EQ(EstablishedAt(p.ports[1]), 1);  // all multiplexed over one connection
}

TEST(TcpTransportTest, TimeoutAndLateReplyDropped) {
  Pair p;
  std::atomic<int> callbacks{0};
  std::promise<Status> result;
  auto start = std::chrono::steady_clock::now();
  p.a->lane(0).Post([&] {
    p.a->t().Call(0, 1, Args(kNever, "x"), 200, [&](Status st, std::string_view, std::string_view) {
      callbacks++;
      result.set_value(st);
    });
  });
  Status st = result.get_future().get();
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(st.code(), Code::kTimeout);
  EXPECT_GE(elapsed, std::chrono::milliseconds(180));
  EXPECT_LT(elapsed, std::chrono::milliseconds(3000));
  // The owner answers late: the reply is skipped, the link stays usable.
  ASSERT_EQ(p.logic_b.stashed.load(), 1);
  p.b->lane(0).Run([&] { p.logic_b.FinishStash("late"); });
  CallResult r = p.a->CallSync(0, 1, Args(kEcho, "after"));
  ASSERT_TRUE(r.st.ok()) << r.st.ToString();
  EXPECT_EQ(r.reply, "after");
  EXPECT_EQ(callbacks.load(), 1);
  EXPECT_EQ(p.a->t().counters(1).errors.load(), 1u);
}

TEST(TcpTransportTest, DroppedCallAnswersAtOnce) {
  Pair p;
  auto start = std::chrono::steady_clock::now();
  CallResult r = p.a->CallSync(0, 1, Args(kDrop, ""), 10000);
  EXPECT_EQ(r.st.code(), Code::kInternal);
  EXPECT_EQ(r.st.message(), "kvpool: call dropped");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(TcpTransportTest, WrongSecretIsPermissionDenied) {
  Pair p(1, "secret-a", "secret-b");
  CallResult r = p.a->CallSync(0, 1, Args(kEcho, "x"));
  EXPECT_EQ(r.st.code(), Code::kPermissionDenied) << r.st.ToString();
  // Within the backoff the next call fails at once, same reason.
  r = p.a->CallSync(0, 1, Args(kEcho, "x"));
  EXPECT_EQ(r.st.code(), Code::kPermissionDenied);
  r = p.b->CallSync(0, 0, Args(kEcho, "x"));
  EXPECT_EQ(r.st.code(), Code::kPermissionDenied);
  EXPECT_FALSE(p.a->t().peer_up(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  r = p.a->CallSync(0, 1, Args(kEcho, "x"));
  EXPECT_EQ(r.st.code(), Code::kPermissionDenied);
  EXPECT_EQ(p.logic_a.handled.load(), 0);
  EXPECT_EQ(p.logic_b.handled.load(), 0);
}

TEST(TcpTransportTest, NoListenerFailsFastThenBacksOff) {
  std::vector<int> ports{FreePort(), FreePort()};
  ServerLogic logic;
  TestNode a(MakeOptions(0, ports), 1, logic.Handler());
  CallResult r = a.CallSync(0, 1, Args(kEcho, "x"));
  EXPECT_EQ(r.st.code(), Code::kUnavailable) << r.st.ToString();
  EXPECT_FALSE(a.t().peer_up(1));
  r = a.CallSync(0, 1, Args(kEcho, "x"));
  EXPECT_EQ(r.st.code(), Code::kUnavailable);
  // The peer appears: after the backoff, calls go through.
  ServerLogic logic_b;
  TestNode b(MakeOptions(1, ports), 1, logic_b.Handler());
  ASSERT_TRUE(WaitFor([&] { return a.CallSync(0, 1, Args(kEcho, "y")).st.ok(); }, 3000));
  EXPECT_TRUE(a.t().peer_up(1));
}

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

TEST(TcpTransportTest, StopLaneFailsPendingAndLaterCalls) {
  Pair p;
  std::atomic<int> failed{0};
  p.a->lane(0).Post([&] {
    for (int i = 0; i < 3; ++i)
      p.a->t().Call(0, 1, Args(kNever, ""), 30000,
                    [&](Status st, std::string_view, std::string_view) {
                      if (st.code() == Code::kUnavailable) failed++;
                    });
  });
  ASSERT_TRUE(WaitFor([&] { return p.logic_b.stashed.load() == 3; }));
  p.a->lane(0).Run([&] { p.a->t().StopLane(0); });
  EXPECT_EQ(failed.load(), 3);
  CallResult r = p.a->CallSync(0, 1, Args(kEcho, "x"));
  EXPECT_EQ(r.st.code(), Code::kUnavailable);
  // B's replies to a stopped requester go nowhere.
  p.b->lane(0).Run([&] { p.logic_b.FinishStash("nobody listens"); });
  // A no longer listens either.
  r = p.b->CallSync(0, 0, Args(kEcho, "x"));
  EXPECT_EQ(r.st.code(), Code::kUnavailable);
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

TEST(TcpTransportTest, ThreeNodesCallEachOther) {
  std::vector<int> ports{FreePort(), FreePort(), FreePort()};
  ServerLogic logic[3];
  std::vector<std::unique_ptr<TestNode>> n;
  for (int i = 0; i < 3; ++i) {
    n.push_back(std::make_unique<TestNode>(MakeOptions(i, ports), 1, logic[i].Handler()));
    logic[i].Attach(*n[i], 1);
  }
  std::atomic<int> ok{0};
  constexpr int kEach = 50;
  for (int from = 0; from < 3; ++from) {
    n[from]->lane(0).Post([&, from] {
      for (int k = 0; k < kEach; ++k)
        for (int to = 0; to < 3; ++to) {
          std::string body =
              std::to_string(from) + ">" + std::to_string(to) + "#" + std::to_string(k);
          n[from]->t().Call(0, to, Args(kEcho, body), 10000,
                            [&, body](Status st, std::string_view reply, std::string_view) {
                              if (st.ok() && reply == body) ok++;
                            });
        }
    });
  }
  ASSERT_TRUE(WaitFor([&] { return ok.load() == 3 * 3 * kEach; }, 10000)) << ok.load();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(logic[i].handled.load(), 3 * kEach);
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
