// The pool port against floods of unauthenticated connections (issue 13):
// only pool-nodes hosts get a handshake, pending handshakes are bounded per
// source and in all, a HELLO already received is read before any bound is
// applied, and the oldest silent connection makes room for the newest, so a
// peer that says HELLO promptly always gets in.
#include <gtest/gtest.h>
#include <poll.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "storage/transport/auth.h"
#include "storage/transport/tcp_internal.h"
#include "storage/transport/tcp_raw_test_util.h"
#include "storage/transport/transport_test_util.h"
#include "storage/transport/wire.h"

namespace kvpool::transport::testing {
namespace {

// Pending-handshake bounds under test, with a handshake deadline that
// outlives the test: only the bounds close anything.
TcpTuning Bounds(int total, int per_source = 64) {
  TcpTuning t;
  t.max_pending_handshakes = total;
  t.max_pending_per_source = per_source;
  t.accept_timeout_ms = 10000;
  return t;
}

// Half-open connections that never send a byte, held open by the test.
std::vector<int> HoldSilent(int port, int n, const char* source = nullptr) {
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) fds.push_back(RawConnect(port, source));
  return fds;
}
void CloseAll(const std::vector<int>& fds) {
  for (int fd : fds)
    if (fd >= 0) close(fd);
}
// Lane 0 accepts asynchronously: wait until it has closed `fd` or given up.
bool StaysOpen(int fd, int ms) { return fd >= 0 && !ClosedWithin(fd, ms); }

TEST(TcpHandshakeBoundsTest, UnauthenticatedConnectionsAreBoundedOldestFirst) {
  std::vector<int> ports{FreePort(), FreePort()};
  ServerLogic logic_a, logic_b;
  const TcpTuning tuning = Bounds(4);
  TestNode b(MakeOptions(1, ports), 1, logic_b.Handler(), tuning);
  std::vector<int> idle = HoldSilent(ports[1], 4);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let lane 0 accept them
  int extra = RawConnect(ports[1]);
  // The oldest makes room for the newest; the table stays at 4.
  EXPECT_TRUE(ClosedWithin(idle[0], 1000));
  EXPECT_TRUE(StaysOpen(extra, 300));
  for (size_t i = 1; i < idle.size(); ++i) EXPECT_TRUE(StaysOpen(idle[i], 50)) << i;
  EXPECT_EQ(static_cast<tcp::TcpTransport&>(b.t()).evicted_handshakes(), 1u);
  close(extra);
  CloseAll(idle);
  TestNode a(MakeOptions(0, ports), 1, logic_a.Handler());
  ASSERT_TRUE(WaitFor([&] { return a.CallSync(0, 1, Args(kEcho, "x")).st.ok(); }, 3000));
}

// Issue 13: every node runs on 127.0.0.1; 127.0.0.2 is loopback too but
// not in pool-nodes, so it is closed at accept, before any handshake.
TEST(TcpHandshakeBoundsTest, SourceNotInPoolNodesIsClosedAtAccept) {
  std::vector<int> ports{FreePort(), FreePort()};
  ServerLogic logic_a, logic_b;
  const TcpTuning tuning = Bounds(256);
  TestNode b(MakeOptions(1, ports), 1, logic_b.Handler(), tuning);
  TestNode a(MakeOptions(0, ports), 1, logic_a.Handler());
  for (int i = 0; i < 3; ++i) {
    int fd = RawConnect(ports[1], "127.0.0.2");
    ASSERT_GE(fd, 0) << "cannot bind to 127.0.0.2";
    auth::Hello hello;
    hello.ids = {0, 1, 0};
    SendAll(fd, Frame(FrameKind::kHello, auth::EncodeHello(hello)));  // may fail: closed
    FrameHeader h;
    std::string body;
    EXPECT_FALSE(RecvFrame(fd, &h, &body)) << "a frame came back to 127.0.0.2";
    EXPECT_TRUE(ClosedWithin(fd, 500));
    close(fd);
  }
  EXPECT_EQ(static_cast<tcp::TcpTransport&>(b.t()).refused_sources(), 3u);
  int ok = RawConnect(ports[1], "127.0.0.1");
  EXPECT_TRUE(StaysOpen(ok, 300));
  close(ok);
  CallResult r = a.CallSync(0, 1, Args(kEcho, "from 127.0.0.1"));
  ASSERT_TRUE(r.st.ok()) << r.st.ToString();
  EXPECT_EQ(logic_b.handled.load(), 1);
}

// Issue 13: a flood of half-open handshakes from a pool host, held open,
// does not keep a genuine peer out: its fresh connection evicts the oldest.
TEST(TcpHandshakeBoundsTest, HalfOpenFloodDoesNotKeepAPeerOut) {
  std::vector<int> ports{FreePort(), FreePort()};
  ServerLogic logic_a, logic_b;
  const TcpTuning tuning = Bounds(8);
  TestNode b(MakeOptions(1, ports), 1, logic_b.Handler(), tuning);
  std::vector<int> flood = HoldSilent(ports[1], 24);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let lane 0 accept them
  TestNode a(MakeOptions(0, ports), 1, logic_a.Handler());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(WaitFor([&] { return a.CallSync(0, 1, Args(kEcho, "x"), 1000).st.ok(); }, 2000));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  EXPECT_LT(ms, 2000);
  // The flood is still held: the newest 8 minus the one the peer evicted.
  int open = 0;
  for (int fd : flood) open += StaysOpen(fd, 10);
  EXPECT_EQ(open, 7);
  CloseAll(flood);
}

// Issue 13: one source address holds at most max_pending_per_source
// handshakes; its own oldest make room, other sources' are left alone.
TEST(TcpHandshakeBoundsTest, PendingHandshakesAreCappedPerSource) {
  const int pa = FreePort(), pb = FreePort();
  TransportOptions ob = MakeOptions(1, {pa, pb, FreePort()});
  ob.peers[2].host = "127.0.0.2";  // a third pool host, so it is let in
  ServerLogic logic;
  const TcpTuning tuning = Bounds(64, 4);
  TestNode b(ob, 1, logic.Handler(), tuning);
  int other = RawConnect(pb, "127.0.0.1");  // the oldest of all, from another source
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::vector<int> flood = HoldSilent(pb, 4, "127.0.0.2");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  for (int fd : flood) EXPECT_TRUE(StaysOpen(fd, 10));
  int extra = RawConnect(pb, "127.0.0.2");
  EXPECT_TRUE(ClosedWithin(flood[0], 1000)) << "127.0.0.2's oldest should make room";
  EXPECT_TRUE(StaysOpen(extra, 300));
  for (size_t i = 1; i < flood.size(); ++i) EXPECT_TRUE(StaysOpen(flood[i], 10)) << i;
  EXPECT_TRUE(StaysOpen(other, 10)) << "another source's handshake was evicted";
  EXPECT_EQ(static_cast<tcp::TcpTransport&>(b.t()).evicted_handshakes(), 1u);
  close(other);
  close(extra);
  CloseAll(flood);
}

// A handshake under way (HELLO sent, CHALLENGE received) is not what a
// flood of silent connections evicts: the oldest silent one goes instead.
TEST(TcpHandshakeBoundsTest, EvictionSparesAHandshakeUnderWay) {
  std::vector<int> ports{FreePort(), FreePort()};
  ServerLogic logic;
  const TcpTuning tuning = Bounds(4);
  TestNode b(MakeOptions(1, ports), 1, logic.Handler(), tuning);
  int started = RawConnect(ports[1]);  // the oldest
  auth::Nonce nonce;
  ASSERT_TRUE(auth::RandomNonce(&nonce).ok());
  auth::ClientHandshake hs("pool-secret", {0, 1, 0}, nonce);
  ASSERT_TRUE(SendAll(started, Frame(FrameKind::kHello, hs.HelloBody())));
  FrameHeader h;
  std::string challenge;
  ASSERT_TRUE(RecvFrame(started, &h, &challenge));
  ASSERT_EQ(h.kind, FrameKind::kChallenge);
  std::vector<int> silent = HoldSilent(ports[1], 3);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  int extra = RawConnect(ports[1]);
  EXPECT_TRUE(ClosedWithin(silent[0], 1000)) << "the oldest silent one should make room";
  EXPECT_TRUE(StaysOpen(started, 200));
  // ... and the handshake it was in finishes.
  auto proof = hs.OnChallenge(challenge);
  ASSERT_TRUE(proof.ok());
  ASSERT_TRUE(SendAll(started, Frame(FrameKind::kProof, proof.value())));
  std::string body;
  ASSERT_TRUE(RecvFrame(started, &h, &body));
  EXPECT_EQ(h.kind, FrameKind::kAuthOk);
  close(started);
  close(extra);
  CloseAll(silent);
}

// A connector that sent its HELLO and waits for the CHALLENGE.
struct HelloSent {
  explicit HelloSent(int port, uint32_t client = 0)
      : nonce(MakeNonce()), hs("pool-secret", {client, 1, 0}, nonce), fd(RawConnect(port)) {
    sent = fd >= 0 && SendAll(fd, Frame(FrameKind::kHello, hs.HelloBody()));
  }
  ~HelloSent() {
    if (fd >= 0) close(fd);
  }
  // CHALLENGE in, PROOF out, AUTH_OK in.
  bool Finish() {
    FrameHeader h;
    std::string body;
    if (!sent || !RecvFrame(fd, &h, &body) || h.kind != FrameKind::kChallenge) return false;
    auto proof = hs.OnChallenge(body);
    if (!proof.ok() || !SendAll(fd, Frame(FrameKind::kProof, proof.value()))) return false;
    return RecvFrame(fd, &h, &body) && h.kind == FrameKind::kAuthOk;
  }
  static auth::Nonce MakeNonce() {
    auth::Nonce n{};
    if (!auth::RandomNonce(&n).ok()) n.fill(7);
    return n;
  }
  auth::Nonce nonce;
  auth::ClientHandshake hs;
  int fd;
  bool sent = false;
};

// Lane 0 busy while this lives: connections wait in the listen backlog, as
// they do for a node that was stopped (SIGSTOP) and then resumed.
class StalledLane {
 public:
  explicit StalledLane(LoopThread& lane) : gate_(std::make_shared<Gate>()) {
    lane.Post([gate = gate_] {
      std::unique_lock<std::mutex> lk(gate->mu);
      gate->running = true;
      gate->cv.notify_all();
      gate->cv.wait(lk, [&] { return gate->released; });
    });
    std::unique_lock<std::mutex> lk(gate_->mu);
    gate_->cv.wait(lk, [&] { return gate_->running; });
  }
  ~StalledLane() {
    std::lock_guard<std::mutex> lk(gate_->mu);
    gate_->released = true;
    gate_->cv.notify_all();
  }

 private:
  struct Gate {
    std::mutex mu;
    std::condition_variable cv;
    bool running = false;
    bool released = false;
  };
  std::shared_ptr<Gate> gate_;  // shared with the stalled lane
};

// Issue 13 (the revert of the first attempt): peers' connections that
// waited in the backlog with their HELLO sent, among silent ones from the
// same address, are not evicted when the node accepts them all at once.
TEST(TcpHandshakeBoundsTest, HellosWaitingInTheBacklogAreReadBeforeAnyBound) {
  std::vector<int> ports{FreePort(), FreePort()};
  ServerLogic logic;
  const TcpTuning tuning = Bounds(32, 4);
  TestNode b(MakeOptions(1, ports), 1, logic.Handler(), tuning);
  std::vector<std::unique_ptr<HelloSent>> peers;
  std::vector<int> silent;
  {
    StalledLane stall(b.lane(0));
    // Peers first (the oldest), then a silent one after each.
    for (int i = 0; i < 12; ++i) {
      peers.push_back(std::make_unique<HelloSent>(ports[1]));
      ASSERT_TRUE(peers.back()->sent) << i;
      silent.push_back(RawConnect(ports[1]));
    }
  }
  for (size_t i = 0; i < peers.size(); ++i) EXPECT_TRUE(peers[i]->Finish()) << "peer " << i;
  // The bound held: only the newest 4 silent ones are left.
  for (size_t i = 0; i < silent.size(); ++i)
    EXPECT_EQ(StaysOpen(silent[i], 20), i >= silent.size() - 4) << "silent " << i;
  EXPECT_EQ(static_cast<tcp::TcpTransport&>(b.t()).evicted_handshakes(), 8u);
  CloseAll(silent);
}

// Silent connections from 127.0.0.1 (the peers' own address), each one
// re-opened as soon as the node closes it, from a thread.
class ChurningFlood {
 public:
  ChurningFlood(int port, size_t n) : thread_([this, port, n] { Run(port, n); }) {}
  ~ChurningFlood() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  uint64_t opened() const { return opened_.load(); }

 private:
  void Run(int port, size_t n) {
    std::vector<pollfd> fds;
    while (!stop_) {
      while (fds.size() < n && !stop_) {
        const int fd = RawConnect(port);
        if (fd < 0) break;
        fds.push_back({fd, POLLIN, 0});
        opened_++;
      }
      if (poll(fds.data(), fds.size(), 5) <= 0) continue;
      for (size_t i = 0; i < fds.size();) {
        if (fds[i].revents == 0) {
          ++i;
          continue;
        }
        close(fds[i].fd);  // the node closed it (EOF): open another
        fds[i] = fds.back();
        fds.pop_back();
      }
    }
    for (const pollfd& p : fds) close(p.fd);
  }
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> opened_{0};
  std::thread thread_;
};

// A peer that shares its address with a flood that holds (and keeps
// refilling) the per-source bound still connects on every lane, and a link
// already authenticated on lane 0 keeps being served meanwhile.
TEST(TcpHandshakeBoundsTest, PeerGetsInWhileAChurningFloodHoldsTheBound) {
  std::vector<int> ports{FreePort(), FreePort()};
  ServerLogic logic_a, logic_b;
  const TcpTuning tuning = Bounds(16, 8);
  TestNode b(MakeOptions(1, ports), 1, logic_b.Handler(), tuning);
  TestNode a(MakeOptions(0, ports), 4, logic_a.Handler());
  ASSERT_TRUE(a.CallSync(0, 1, Args(kEcho, "before")).st.ok());
  ChurningFlood flood(ports[1], 32);
  ASSERT_TRUE(WaitFor([&] { return flood.opened() > 64; }, 5000)) << "the flood did not start";
  const auto start = std::chrono::steady_clock::now();
  for (int lane = 1; lane < 4; ++lane)
    EXPECT_TRUE(WaitFor([&] { return a.CallSync(lane, 1, Args(kEcho, "x"), 1000).st.ok(); }, 5000))
        << "lane " << lane << " kept out";
  const auto connect_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - start)
                              .count();
  int64_t worst_ms = 0;
  for (int i = 0; i < 50; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    CallResult r = a.CallSync(0, 1, Args(kEcho, "during"), 2000);
    EXPECT_TRUE(r.st.ok()) << r.st.ToString();
    worst_ms = std::max<int64_t>(worst_ms, std::chrono::duration_cast<std::chrono::milliseconds>(
                                               std::chrono::steady_clock::now() - t0)
                                               .count());
  }
  flood.Stop();
  EXPECT_LT(worst_ms, 500) << "lane 0 starved by the accepts";
  EXPECT_GT(static_cast<tcp::TcpTransport&>(b.t()).evicted_handshakes(), 0u);
  std::printf(
      "flood opened %llu connections; 3 lanes in after %lld ms; worst call on lane 0: "
      "%lld ms\n",
      static_cast<unsigned long long>(flood.opened()), static_cast<long long>(connect_ms),
      static_cast<long long>(worst_ms));
}

// A burst of accepts does not hold lane 0: a call that arrived together
// with 300 connections is served before the node worked through more than
// one turn (64 accepts) of them.
TEST(TcpHandshakeBoundsTest, AcceptBurstYieldsToCallsOnLaneZero) {
  std::vector<int> ports{FreePort(), FreePort()};
  ServerLogic logic_a;
  const TcpTuning tuning = Bounds(16, 8);
  std::atomic<tcp::TcpTransport*> tb{nullptr};
  std::atomic<int64_t> evicted_at_call{-1};
  auto handler = [&](std::unique_ptr<IncomingCall> c) {
    tcp::TcpTransport* t = tb.load();
    int64_t unset = -1;
    if (t) evicted_at_call.compare_exchange_strong(unset, int64_t(t->evicted_handshakes()));
    c->Reply(std::string(c->body()));
  };
  TestNode b(MakeOptions(1, ports), 1, handler, tuning);
  TestNode a(MakeOptions(0, ports), 1, logic_a.Handler());
  ASSERT_TRUE(a.CallSync(0, 1, Args(kEcho, "warm")).st.ok());  // the link is up
  tb = &static_cast<tcp::TcpTransport&>(b.t());
  std::vector<int> silent;
  std::future<CallResult> call;
  {
    StalledLane stall(b.lane(0));
    silent = HoldSilent(ports[1], 300);
    call = std::async(std::launch::async, [&] { return a.CallSync(0, 1, Args(kEcho, "x"), 5000); });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the call reaches B's socket
  }
  CallResult r = call.get();
  ASSERT_TRUE(r.st.ok()) << r.st.ToString();
  EXPECT_GE(evicted_at_call.load(), 0);
  EXPECT_LE(evicted_at_call.load(), 64) << "the call waited for the whole burst";
  CloseAll(silent);
}

}  // namespace
}  // namespace kvpool::transport::testing
