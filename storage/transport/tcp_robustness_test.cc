// The TCP transport against misbehaving peers: raw sockets speaking partial
// frames, garbage and hostile lengths, stalled and lying owners.
#include <gtest/gtest.h>

#include "storage/transport/auth.h"
#include "storage/transport/frame_conn.h"
#include "storage/transport/tcp_internal.h"
#include "storage/transport/tcp_raw_test_util.h"
#include "storage/transport/transport_test_util.h"
#include "storage/transport/wire.h"

namespace kvpool::transport::testing {
namespace {

// A hand-written owner (node `self`): accepts connections one at a time,
// authenticates them, then lets `serve` misbehave.
class RawOwner {
 public:
  RawOwner(int port, int self, int nodes,
           std::function<void(int fd, int conn_no, RawMacs& macs)> serve)
      : serve_(std::move(serve)) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    listen(fd_, 16);
    thread_ = std::thread([this, self, nodes] {
      for (int n = 0;; ++n) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        RawMacs macs;
        if (Handshake(c, self, nodes, &macs)) serve_(c, n, macs);
        close(c);
      }
    });
  }
  ~RawOwner() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }

 private:
  static bool Handshake(int c, int self, int nodes, RawMacs* macs) {
    auth::Nonce nonce;
    if (!auth::RandomNonce(&nonce).ok()) return false;
    auth::ServerHandshake hs("pool-secret", self, nodes, nonce);
    FrameHeader h;
    std::string body;
    if (!RecvFrame(c, &h, &body)) return false;
    auto challenge = hs.OnHello(body);
    if (!challenge.ok() || !SendAll(c, Frame(FrameKind::kChallenge, challenge.value())))
      return false;
    if (!RecvFrame(c, &h, &body) || !hs.OnProof(body).ok()) return false;
    if (!hs.frame_keys() || !macs->Init(hs.frame_keys()->to_client, hs.frame_keys()->to_server))
      return false;
    return SendAll(c, Sealed(macs->send.get(), Frame(FrameKind::kAuthOk, "")));
  }
  int fd_;
  std::function<void(int, int, RawMacs&)> serve_;
  std::thread thread_;
};

struct Served {
  Served() : ports{FreePort(), FreePort()} {
    b = std::make_unique<TestNode>(MakeOptions(1, ports), 1, logic_b.Handler());
    a = std::make_unique<TestNode>(MakeOptions(0, ports), 1, logic_a.Handler());
  }
  void ExpectGoodPeerServed() {
    CallResult r = a->CallSync(0, 1, Args(kEcho, "still here"));
    ASSERT_TRUE(r.st.ok()) << r.st.ToString();
    EXPECT_EQ(r.reply, "still here");
  }
  std::vector<int> ports;
  ServerLogic logic_a, logic_b;
  std::unique_ptr<TestNode> a, b;
};

TEST(TcpRobustnessTest, PeerClosingMidFrameBeforeAuth) {
  Served s;
  auth::Hello hello;
  hello.ids = {0, 1, 0};
  const std::string full = Frame(FrameKind::kHello, auth::EncodeHello(hello));
  for (size_t cut : {size_t{1}, size_t{20}, kHeaderSize, kHeaderSize + 10, full.size() - 1}) {
    int fd = RawConnect(s.ports[1]);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(SendAll(fd, std::string_view(full).substr(0, cut)));
    // Half-close, so the node sees EOF mid-frame; it must close its side.
    shutdown(fd, SHUT_WR);
    EXPECT_TRUE(ClosedWithin(fd, 2000)) << cut;
    close(fd);
  }
  s.ExpectGoodPeerServed();
  EXPECT_EQ(s.logic_b.handled.load(), 1);
}

TEST(TcpRobustnessTest, PeerClosingMidCallAfterAuth) {
  Served s;
  for (size_t cut : {size_t{5}, kHeaderSize, kHeaderSize + 1000}) {
    int fd = RawConnect(s.ports[1]);
    ASSERT_TRUE(RawClientHandshake(fd, "pool-secret", 0, 1));
    std::string call = Frame(FrameKind::kCall, std::string(2000, 'k'), 1 << 20, 1 << 20, 0, 7);
    ASSERT_TRUE(SendAll(fd, std::string_view(call).substr(0, cut)));
    shutdown(fd, SHUT_WR);
    EXPECT_TRUE(ClosedWithin(fd, 2000)) << cut;
    close(fd);
  }
  s.ExpectGoodPeerServed();
  EXPECT_EQ(s.logic_b.handled.load(), 1);
}

TEST(TcpRobustnessTest, GarbageAndHugeLengthsBeforeAuthAreDroppedUnallocated) {
  Served s;
  tcp::g_largest_frame_alloc = 0;
  std::vector<std::string> evil;
  evil.push_back(std::string(64, '\xAB'));                                  // garbage
  evil.push_back("*1\r\n$4\r\nPING\r\n" + std::string(40, ' '));            // a Redis client
  evil.push_back(Frame(FrameKind::kHello, "", 1ull << 40));                 // huge HELLO
  evil.push_back(Frame(FrameKind::kHello, "", ~0ull));                      // huger
  evil.push_back(Frame(FrameKind::kCall, "", 10, 1ull << 50, 1ull << 50));  // call first
  evil.push_back(Frame(FrameKind::kProof, std::string(32, 'p')));           // out of order
  for (const std::string& e : evil) {
    int fd = RawConnect(s.ports[1]);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(SendAll(fd, e));
    EXPECT_TRUE(ClosedWithin(fd, 2000));
    close(fd);
  }
  EXPECT_LE(tcp::g_largest_frame_alloc.load(), tcp::kHandshakeLimits.max_body);
  s.ExpectGoodPeerServed();
  EXPECT_EQ(s.logic_b.handled.load(), 1);
}

TEST(TcpRobustnessTest, HugeLengthsAfterAuthAreDroppedUnallocated) {
  std::vector<int> ports{FreePort(), FreePort()};
  TransportOptions ob = MakeOptions(1, ports);
  ob.max_body = 1 << 20;
  ob.max_bulk = 4 << 20;
  ServerLogic logic_a, logic_b;
  TestNode b(ob, 1, logic_b.Handler());
  TestNode a(MakeOptions(0, ports), 1, logic_a.Handler());
  tcp::g_largest_frame_alloc = 0;
  const std::string evil[] = {
      Frame(FrameKind::kCall, "", (1 << 20) + 1),
      Frame(FrameKind::kCall, "", 0, (4 << 20) + 1),
      Frame(FrameKind::kCall, "", 0, 0, (4 << 20) + 1),
      Frame(FrameKind::kCall, "", ~0ull, ~0ull),
      Frame(FrameKind::kReply, "", 0),                 // owners do not receive replies
      Frame(FrameKind::kHello, std::string(48, 'h')),  // no second handshake
  };
  for (const std::string& e : evil) {
    int fd = RawConnect(ports[1]);
    ASSERT_TRUE(RawClientHandshake(fd, "pool-secret", 0, 1));
    ASSERT_TRUE(SendAll(fd, e));
    EXPECT_TRUE(ClosedWithin(fd, 2000));
    close(fd);
  }
  EXPECT_LT(tcp::g_largest_frame_alloc.load(), 1u << 20);
  CallResult r = a.CallSync(0, 1, Args(kEcho, "fine"));
  ASSERT_TRUE(r.st.ok()) << r.st.ToString();
  EXPECT_EQ(logic_b.handled.load(), 1);
}

TEST(TcpRobustnessTest, SilentConnectionTimesOutInHandshake) {
  std::vector<int> ports{FreePort(), FreePort()};
  ServerLogic logic;
  TcpTuning tuning;
  tuning.accept_timeout_ms = 300;
  TestNode b(MakeOptions(1, ports), 1, logic.Handler(), tuning);
  auto start = std::chrono::steady_clock::now();
  int fd = RawConnect(ports[1]);
  EXPECT_TRUE(ClosedWithin(fd, 3000));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(250));
  close(fd);
}

TEST(TcpRobustnessTest, HelloForAnotherNodeIsRefused) {
  // A believes node 1 listens on B's port, but B is node 2.
  const int pa = FreePort(), pb = FreePort();
  ServerLogic logic_a, logic_b;
  TestNode b(MakeOptions(2, {pa, pb, pb}), 1, logic_b.Handler());
  TestNode a(MakeOptions(0, {pa, pb, FreePort()}), 1, logic_a.Handler());
  CallResult r = a.CallSync(0, 1, Args(kEcho, "x"));
  EXPECT_EQ(r.st.code(), Code::kPermissionDenied) << r.st.ToString();
  EXPECT_NE(r.st.message().find("another node"), std::string::npos) << r.st.message();
  EXPECT_EQ(logic_b.handled.load(), 0);
}

// The requester against owners that lie.
TEST(TcpRobustnessTest, OwnerOverfillingBulkOutIsDisconnected) {
  std::vector<int> ports{FreePort(), FreePort()};
  RawOwner owner(ports[1], 1, 2, [](int fd, int conn_no, RawMacs& m) {
    FrameHeader h;
    std::string payload;
    FrameMac* out = m.send.get();
    while (RecvFrame(fd, &h, &payload, {1 << 20, 1 << 20}, m.recv.get())) {
      if (conn_no == 0) {  // more bulk than the call's capacity
        SendAll(fd, Sealed(out, Frame(FrameKind::kReply, std::string(h.bulk_cap + 10, 'z'), 0,
                                      h.bulk_cap + 10, 0, h.call_id)));
      } else if (conn_no == 1) {  // a length over max_bulk
        SendAll(fd, Frame(FrameKind::kReply, "", 0, 1ull << 40, 0, h.call_id));
      } else {  // a reply to an unknown call first (skipped), then the real one
        SendAll(fd, Sealed(out, Frame(FrameKind::kReply, std::string(100, 'u'), 0, 100, 0,
                                      h.call_id + 999)));
        SendAll(fd, Sealed(out, Frame(FrameKind::kReply, "ok" + std::string(h.bulk_cap, 'b'), 2,
                                      h.bulk_cap, 0, h.call_id)));
      }
    }
  });
  ServerLogic logic;
  TestNode a(MakeOptions(0, ports), 1, logic.Handler());
  CallResult r = a.CallSync(0, 1, Args(kEcho, "x", 16));
  EXPECT_EQ(r.st.code(), Code::kUnavailable) << r.st.ToString();
  r = a.CallSync(0, 1, Args(kEcho, "x", 16));
  EXPECT_EQ(r.st.code(), Code::kUnavailable) << r.st.ToString();
  r = a.CallSync(0, 1, Args(kEcho, "x", 16));
  ASSERT_TRUE(r.st.ok()) << r.st.ToString();
  EXPECT_EQ(r.reply, "ok");
  EXPECT_EQ(r.bulk, std::string(16, 'b'));
  a.Kill();
}

TEST(TcpRobustnessTest, TimeoutWithBulkStillQueuedDropsTheLink) {
  // An owner that authenticates and then never reads: a 64 MiB bulk_in
  // cannot leave. When the call times out its bytes must no longer be
  // referenced, since the caller frees them in its callback.
  std::vector<int> ports{FreePort(), FreePort()};
  std::atomic<bool> release{false};
  std::atomic<uint64_t> drained{0};
  std::atomic<bool> eof{false};
  RawOwner owner(ports[1], 1, 2, [&](int fd, int, RawMacs&) {
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    // Now read everything: had the transport kept the freed buffer queued,
    // it would send it now (and ASan would object).
    char buf[1 << 16];
    for (;;) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      drained += static_cast<uint64_t>(n);
    }
    eof = true;
  });
  ServerLogic logic;
  TestNode a(MakeOptions(0, ports), 1, logic.Handler());
  std::promise<Status> done;
  auto* data = new std::string(Pattern(64 << 20, 5));
  a.lane(0).Post([&] {
    CallArgs args = Args(kVerifyIn, "5");
    args.bulk_in = {{data->data(), data->size()}};
    a.t().Call(0, 1, std::move(args), 300, [&](Status st, std::string_view, std::string_view) {
      delete data;  // allowed: the call is over
      done.set_value(st);
    });
  });
  EXPECT_EQ(done.get_future().get().code(), Code::kTimeout);
  // Give the lane a few turns: nothing may touch the freed buffer.
  release = true;
  ASSERT_TRUE(WaitFor([&] { return eof.load(); })) << "drained " << drained.load();
  EXPECT_LT(drained.load(), 64u << 20);  // the link was dropped, not drained
  a.lane(0).Run([] {});
  a.Kill();
}

}  // namespace
}  // namespace kvpool::transport::testing

namespace kvpool::transport::testing {
namespace {

// The requester's side of frame authentication: a reply whose tag is not
// the link's (forged by someone without its keys) fails the call and closes
// the link; the next connection works.
TEST(TcpRobustnessTest, ForgedReplyIsRefused) {
  std::vector<int> ports{FreePort(), FreePort()};
  RawOwner owner(ports[1], 1, 2, [](int fd, int conn_no, RawMacs& m) {
    FrameHeader h;
    std::string payload;
    FrameMac forger;
    if (!forger.Init(FrameKey{}).ok()) return;
    while (RecvFrame(fd, &h, &payload, {1 << 20, 1 << 20}, m.recv.get())) {
      FrameMac* mac = conn_no == 0 ? &forger : m.send.get();
      SendAll(fd, Sealed(mac, Frame(FrameKind::kReply, payload, payload.size(), 0, 0, h.call_id)));
    }
  });
  ServerLogic logic;
  TestNode a(MakeOptions(0, ports), 1, logic.Handler());
  CallResult r = a.CallSync(0, 1, Args(kEcho, "x"));
  EXPECT_EQ(r.st.code(), Code::kUnavailable) << r.st.ToString();
  EXPECT_NE(r.st.message().find("authentication"), std::string::npos) << r.st.message();
  r = a.CallSync(0, 1, Args(kEcho, "y"));
  ASSERT_TRUE(r.st.ok()) << r.st.ToString();
  EXPECT_EQ(r.reply, "y");
  a.Kill();
}

}  // namespace
}  // namespace kvpool::transport::testing
