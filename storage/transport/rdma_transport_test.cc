// The RDMA transport between real nodes over an RDMA device: the transport
// contract suite (transport_contract_test.cc) and what only RDMA does
// (registered regions, staging buffers, zombies, killed processes). CI runs it in
// the Soft-RoCE guest (tests/rdma/run_in_vm.sh); it needs $RXE_IP (the
// address of the RDMA interface) and skips without it. Not registered with
// ctest for that reason.
//
// The binary doubles as the peer process of the kill test:
//   rdma_transport_test --rdma-peer SELF PORT0 PORT1 ...
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>

#include <cstdio>

#include "storage/transport/rdma_test_util.h"
#include "storage/transport/rdma_wire.h"
#include "storage/transport/transport_contract_test.h"

extern char** environ;

namespace kvpool::transport::testing {
namespace {

// Why the tests skip here: "" where $RXE_IP names an RDMA interface.
std::string NoRdmaIp() {
  if (!RdmaIp().empty()) return "";
  return "no $RXE_IP: run inside the Soft-RoCE guest (tests/rdma/run_in_vm.sh)";
}

class RdmaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (RdmaIp().empty()) GTEST_SKIP() << NoRdmaIp();
  }
};

struct PairConfig {
  int lanes_a = 1;
  int lanes_b = 1;
  std::string secret_a = "pool-secret";
  std::string secret_b = "pool-secret";
  size_t staging = 1u << 20;
  int buffers = 8;
  size_t region = 0;  // bytes registered as a region on each node
  RdmaTuning tuning;
};

// Two nodes, A (index 0) calls B (index 1).
struct Pair {
  explicit Pair(PairConfig cfg = {})
      : ports{NextRdmaPort(), NextRdmaPort()}, region_a(cfg.region), region_b(cfg.region) {
    TransportOptions oa = MakeRdmaOptions(0, ports, cfg.secret_a, cfg.staging, cfg.buffers);
    TransportOptions ob = MakeRdmaOptions(1, ports, cfg.secret_b, cfg.staging, cfg.buffers);
    if (cfg.region) {
      oa.regions = {region_a.region()};
      ob.regions = {region_b.region()};
      logic_a.set_region(region_a.data());
      logic_b.set_region(region_b.data());
    }
    a = std::make_unique<RdmaNode>(oa, cfg.lanes_a, logic_a.Handler(), cfg.tuning);
    b = std::make_unique<RdmaNode>(ob, cfg.lanes_b, logic_b.Handler(), cfg.tuning);
    if (a->start_status().ok()) logic_a.Attach(*a);
    if (b->start_status().ok()) logic_b.Attach(*b);
  }
  std::vector<int> ports;
  Region region_a, region_b;
  RegionLogic logic_a, logic_b;
  std::unique_ptr<RdmaNode> a, b;
};

#define ASSERT_STARTED(p)                                                        \
  do {                                                                           \
    ASSERT_TRUE((p).a->start_status().ok()) << (p).a->start_status().ToString(); \
    ASSERT_TRUE((p).b->start_status().ok()) << (p).b->start_status().ToString(); \
  } while (0)

// Issues `n` calls from `lane` of `node` at once (on the lane's thread) and
// waits for all callbacks.
std::vector<CallResult> CallMany(RdmaNode& node, int lane, int peer, std::vector<CallArgs> calls,
                                 int timeout_ms = 30000) {
  const size_t n = calls.size();
  std::vector<CallResult> out(n);
  std::atomic<size_t> done{0};
  node.lane(lane).Post([&, calls = std::move(calls)]() mutable {
    for (size_t i = 0; i < n; ++i)
      node.t().Call(
          lane, peer, std::move(calls[i]), timeout_ms,
          [&, i](Status st, std::string_view reply, std::string_view bulk) {
            out[i] = {st, std::string(reply), std::string(bulk), std::this_thread::get_id()};
            done++;
          });
  });
  EXPECT_TRUE(WaitFor([&] { return done.load() == n; }, timeout_ms + 20000));
  return out;
}

const size_t kSizes[] = {0, 1, 4095, (64 << 10) + 3, (1 << 20) - 5, 1 << 20};

// The contract suite (transport_contract_test.cc) against RDMA: nodes on
// $RXE_IP with 8 staging buffers of 1 MiB.
const TransportKind kRdma{
    .name = "rdma",
    .unavailable = &NoRdmaIp,
    .port = &NextRdmaPort,
    .options = [](int self, const std::vector<int>& ports,
                  std::string secret) { return MakeRdmaOptions(self, ports, std::move(secret)); },
    .node = [](const TransportOptions& o, int lanes, CallHandler h) -> std::unique_ptr<TestNode> {
      return std::make_unique<RdmaNode>(o, lanes, std::move(h));
    },
    .max_bulk_per_call = 1u << 20,
    .bulk_sizes = {std::begin(kSizes), std::end(kSizes)},
    .chunk = 100000,
    .one_sided = true,
    .connections = [](TestNode& a, int) { return int(GetRdmaStats(a.t())->connections.load()); },
    .stats = [](TestNode& n) { return GetRdmaStats(n.t()); },
};

INSTANTIATE_TEST_SUITE_P(Rdma, TransportContract, ::testing::Values(&kRdma), KindName);

TEST_F(RdmaTest, BulkInAllSizesStraightIntoTheRegion) {
  PairConfig cfg;
  cfg.region = 4u << 20;
  Pair p(cfg);
  ASSERT_STARTED(p);
  for (size_t size : kSizes) {
    std::string data = Pattern(size, size + 11);
    CallArgs args = Args(kRegionVerifyIn, std::to_string(size + 11) + " 4096");
    args.bulk_in = {{data.data(), size}};
    CallResult r = p.a->CallSync(0, 1, std::move(args));
    ASSERT_TRUE(r.st.ok()) << size << " " << r.st.ToString();
    EXPECT_EQ(r.reply, "ok") << size;
  }
  EXPECT_GT(p.b->t().counters(0).rdma_reads.load(), 0u);
  EXPECT_GT(p.b->stats().direct_reads.load(), 0u);
  EXPECT_EQ(p.b->stats().bounced_reads.load(), 0u);
}

TEST_F(RdmaTest, BulkOutAllSizesStraightFromTheRegion) {
  PairConfig cfg;
  cfg.region = 4u << 20;
  Pair p(cfg);
  ASSERT_STARTED(p);
  int writes = 0;
  for (size_t size : kSizes) {
    for (size_t chunk : {size_t{0}, size_t{100000}}) {
      std::string body =
          std::to_string(size) + " " + std::to_string(size * 5) + " 8192 " + std::to_string(chunk);
      ASSERT_NO_FATAL_FAILURE(ExpectPatternBack(*p.a, kRegionPattern, body, size, size * 5));
      const size_t c = chunk ? chunk : (size ? size : 1);
      writes += static_cast<int>((size + c - 1) / c);
    }
  }
  EXPECT_GT(p.b->t().counters(0).rdma_writes.load(), 0u);
  EXPECT_GT(p.b->stats().direct_writes.load(), 0u);
  EXPECT_EQ(p.b->stats().bounced_writes.load(), 0u);
  // Every range given to WriteBulk is released (after its bytes left).
  EXPECT_TRUE(WaitFor([&] { return p.logic_b.released.load() == writes; }))
      << p.logic_b.released.load() << " of " << writes;
}

// Calls that queue behind many 4 MiB transfers: TCG (and ASan) make those
// slow, and a call's timeout runs while it waits for a staging buffer.
constexpr int kBigTimeoutMs = 180000;

// 64 MiB each way, split into staging-sized calls all issued at once (as the
// pool does for a large value), so they also queue for staging buffers.
TEST_F(RdmaTest, SixtyFourMiBSplitIntoCalls) {
  constexpr size_t kTotal = 64u << 20, kChunk = 4u << 20;
  PairConfig cfg;
  cfg.staging = kChunk;
  cfg.region = kTotal + (1u << 20);
  Pair p(cfg);
  ASSERT_STARTED(p);
  const std::string data = Pattern(kTotal, 99);
  // Put: each chunk READ straight into its place in B's region.
  std::vector<CallArgs> puts;
  for (size_t off = 0; off < kTotal; off += kChunk) {
    // Pattern(n, s) at byte offset o (o % 8 == 0) is Pattern(.., s + o / 8).
    CallArgs a = Args(kRegionVerifyIn, std::to_string(99 + off / 8) + " " + std::to_string(off));
    a.bulk_in = {{const_cast<char*>(data.data()) + off, kChunk}};
    puts.push_back(std::move(a));
  }
  for (const CallResult& r : CallMany(*p.a, 0, 1, std::move(puts), kBigTimeoutMs)) {
    ASSERT_TRUE(r.st.ok()) << r.st.ToString();
    EXPECT_EQ(r.reply, "ok");
  }
  EXPECT_TRUE(std::memcmp(p.region_b.data(), data.data(), kTotal) == 0);
  // Get: each chunk WRITTEN straight from B's region.
  std::vector<CallArgs> gets;
  for (size_t off = 0; off < kTotal; off += kChunk)
    gets.push_back(Args(kRegionPattern,
                        std::to_string(kChunk) + " " + std::to_string(77 + off / 8) + " " +
                            std::to_string(off) + " 0",
                        kChunk));
  std::string got;
  for (const CallResult& r : CallMany(*p.a, 0, 1, std::move(gets), kBigTimeoutMs)) {
    ASSERT_TRUE(r.st.ok()) << r.st.ToString();
    got += r.bulk;
  }
  ASSERT_EQ(got.size(), kTotal);
  EXPECT_TRUE(CheckPattern(got, 77));
  EXPECT_GT(p.a->stats().staging_waits.load(), 0u);
  EXPECT_EQ(p.b->stats().bounced_reads.load() + p.b->stats().bounced_writes.load(), 0u);
  EXPECT_GE(p.b->t().counters(0).rdma_reads.load(), 16u);
  EXPECT_GE(p.b->t().counters(0).rdma_writes.load(), 16u);
}

// The same 64 MiB out and back through the owner's bounce buffers (its
// memory is outside any region): bulk_in and bulk_out of one call need two
// staging buffers.
TEST_F(RdmaTest, SixtyFourMiBRoundTripThroughBounceBuffers) {
  constexpr size_t kTotal = 64u << 20, kChunk = 4u << 20;
  PairConfig cfg;
  cfg.staging = kChunk;
  Pair p(cfg);
  ASSERT_STARTED(p);
  const std::string data = Pattern(kTotal, 4242);
  std::vector<CallArgs> calls;
  for (size_t off = 0; off < kTotal; off += kChunk) {
    CallArgs a = Args(kBulkEcho, "", kChunk);
    a.bulk_in = {{const_cast<char*>(data.data()) + off, kChunk}};
    calls.push_back(std::move(a));
  }
  std::string got;
  for (const CallResult& r : CallMany(*p.a, 0, 1, std::move(calls), kBigTimeoutMs)) {
    ASSERT_TRUE(r.st.ok()) << r.st.ToString();
    EXPECT_EQ(r.reply, std::to_string(kChunk));
    got += r.bulk;
  }
  EXPECT_TRUE(got == data);
  EXPECT_EQ(p.a->t().counters(1).bytes_out.load(), kTotal);
  EXPECT_EQ(p.a->t().counters(1).bytes_in.load(), kTotal);
  EXPECT_GT(p.b->stats().bounced_reads.load(), 0u);
  EXPECT_GT(p.b->stats().bounced_writes.load(), 0u);
}

// Batched gets and puts whose values add up to more than a staging buffer:
// the requester splits them as the pool does (gets: ask again for what did
// not fit; puts: pack values into calls of at most max_bulk_per_call).
TEST_F(RdmaTest, BatchesLargerThanAStagingBuffer) {
  PairConfig cfg;
  cfg.region = 16u << 20;
  Pair p(cfg);
  ASSERT_STARTED(p);
  const size_t per_call = p.a->t().max_bulk_per_call();
  for (size_t value : {size_t{100}, size_t{100000}}) {
    const size_t n = value == 100 ? 3000 : 40;  // 300 KB of tiny values / 4 MB of large ones
    // MGET: value i (at B's region offset i * value) = Pattern(value, 500 + i).
    size_t start = 0;
    int calls = 0;
    while (start < n) {
      std::string body = std::to_string(n - start) + " " + std::to_string(value) + " " +
                         std::to_string(500 + start) + " " + std::to_string(start * value);
      CallResult r = p.a->CallSync(0, 1, Args(kRegionMultiGet, body, per_call));
      ASSERT_TRUE(r.st.ok()) << r.st.ToString();
      const size_t sent = std::stoul(r.reply);
      ASSERT_GT(sent, 0u);
      ASSERT_EQ(r.bulk.size(), sent * value);
      for (size_t i = 0; i < sent; ++i)
        ASSERT_TRUE(
            CheckPattern(std::string_view(r.bulk).substr(i * value, value), 500 + start + i))
            << i;
      start += sent;
      calls++;
    }
    EXPECT_GE(calls, static_cast<int>((n * value + per_call - 1) / per_call));
    // MSET: values packed into calls, all in flight at once, one ReadBulk per
    // value on the owner.
    std::vector<std::string> values;
    for (size_t i = 0; i < n; ++i) values.push_back(Pattern(value, 900 + i));
    std::vector<CallArgs> puts;
    const size_t fit = per_call / value;
    for (size_t first = 0; first < n; first += fit) {
      const size_t k = std::min(fit, n - first);
      CallArgs a = Args(kRegionMultiPut, std::to_string(k) + " " + std::to_string(value) + " " +
                                             std::to_string(900 + first) + " " +
                                             std::to_string((8u << 20) + first * value));
      for (size_t i = first; i < first + k; ++i) a.bulk_in.push_back({values[i].data(), value});
      puts.push_back(std::move(a));
    }
    for (const CallResult& r : CallMany(*p.a, 0, 1, std::move(puts))) {
      ASSERT_TRUE(r.st.ok()) << r.st.ToString();
      EXPECT_EQ(r.reply, "ok");
    }
  }
}

TEST_F(RdmaTest, StagingExhaustionQueuesCallsAndAllComplete) {
  PairConfig cfg;
  cfg.staging = 64u << 10;
  cfg.buffers = 2;
  Pair p(cfg);
  ASSERT_STARTED(p);
  std::vector<CallArgs> calls;
  std::vector<std::string> data;
  for (int i = 0; i < 40; ++i) data.push_back(Pattern(40000, 3000 + i));
  for (int i = 0; i < 40; ++i) {
    if (i % 2 == 0) {  // bulk_in + bulk_out: two buffers
      CallArgs a = Args(kBulkEcho, "", 40000);
      a.bulk_in = {{data[i].data(), data[i].size()}};
      calls.push_back(std::move(a));
    } else {  // bulk_out only: one buffer
      calls.push_back(Args(kPattern, "50000 " + std::to_string(3000 + i) + " 0", 50000));
    }
  }
  std::vector<CallResult> res = CallMany(*p.a, 0, 1, std::move(calls));
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(res[i].st.ok()) << i << " " << res[i].st.ToString();
    if (i % 2 == 0)
      EXPECT_TRUE(res[i].bulk == data[i]) << i;
    else
      EXPECT_TRUE(res[i].bulk.size() == 50000 && CheckPattern(res[i].bulk, 3000 + i)) << i;
  }
  EXPECT_GT(p.a->stats().staging_waits.load(), 10u);
}

TEST_F(RdmaTest, ConcurrentCallsFromSeveralLanes) {
  PairConfig cfg;
  cfg.lanes_a = 4;
  cfg.lanes_b = 2;
  cfg.region = 8u << 20;
  Pair p(cfg);
  ASSERT_STARTED(p);
  constexpr int kPerLane = 20;
  constexpr size_t kSize = 50000;
  std::atomic<int> ok{0}, bad{0}, wrong_thread{0};
  std::vector<std::string> data;
  for (int i = 0; i < 4 * kPerLane; ++i) data.push_back(Pattern(kSize, 7000 + i));
  for (int lane = 0; lane < 4; ++lane) {
    p.a->lane(lane).Post([&, lane] {
      const auto tid = std::this_thread::get_id();
      for (int k = 0; k < kPerLane; ++k) {
        const int i = lane * kPerLane + k;
        CallArgs a = Args(kRegionBulkEcho, std::to_string(i * 65536), kSize);
        a.bulk_in = {{data[i].data(), kSize}};
        p.a->t().Call(lane, 1, std::move(a), 30000,
                      [&, i, tid](Status st, std::string_view, std::string_view bulk) {
                        if (std::this_thread::get_id() != tid) wrong_thread++;
                        (st.ok() && bulk == data[i] ? ok : bad)++;
                      });
        p.a->t().Call(lane, 1, Args(kLaneOf, ""), 30000,
                      [&, lane](Status st, std::string_view reply, std::string_view) {
                        // The owner handles a lane's calls on lane (lane mod its lanes).
                        (st.ok() && reply == std::to_string(lane % 2) + " 1" ? ok : bad)++;
                      });
      }
    });
  }
  ASSERT_TRUE(WaitFor([&] { return ok.load() + bad.load() == 8 * kPerLane; }, 60000));
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(wrong_thread.load(), 0);
  EXPECT_EQ(p.a->stats().connections.load(), 4u);  // one QP per (lane, peer)
  EXPECT_EQ(p.b->stats().connections.load(), 4u);
}

// A call that timed out after it was sent keeps its staging buffer until
// the owner's late reply: the owner may still write into it.
TEST_F(RdmaTest, TimedOutCallKeepsItsBufferUntilTheLateReply) {
  PairConfig cfg;
  cfg.staging = 64u << 10;
  cfg.buffers = 2;
  cfg.tuning.zombie_grace_ms = 30000;
  Pair p(cfg);
  ASSERT_STARTED(p);
  CallResult r = p.a->CallSync(0, 1, Args(kNever, "", 1000), 300);
  EXPECT_EQ(r.st.code(), Code::kTimeout);
  // One buffer is quarantined: a call needing both cannot start.
  std::string data = Pattern(40000, 5);
  CallArgs two = Args(kBulkEcho, "", 40000);
  two.bulk_in = {{data.data(), data.size()}};
  r = p.a->CallSync(0, 1, std::move(two), 500);
  EXPECT_EQ(r.st.code(), Code::kTimeout) << r.st.ToString();
  // The late reply (after the owner is done with the buffer) frees it.
  ASSERT_TRUE(WaitFor([&] { return p.logic_b.base().stashed.load() == 1; }));
  p.b->lane(0).Run([&] { p.logic_b.base().FinishStash("late"); });
  two = Args(kBulkEcho, "", 40000);
  two.bulk_in = {{data.data(), data.size()}};
  r = p.a->CallSync(0, 1, std::move(two));
  ASSERT_TRUE(r.st.ok()) << r.st.ToString();
  EXPECT_TRUE(r.bulk == data);
  EXPECT_EQ(p.a->stats().zombie_resets.load(), 0u);
}

// If the late reply never comes, the link is reset to get the buffer back.
TEST_F(RdmaTest, UnansweredTimedOutCallResetsTheLinkAfterGrace) {
  PairConfig cfg;
  cfg.tuning.zombie_grace_ms = 300;
  Pair p(cfg);
  ASSERT_STARTED(p);
  std::promise<Status> other;
  p.a->lane(0).Post([&] {
    p.a->t().Call(0, 1, Args(kNever, "no bulk"), 60000,
                  [&](Status st, std::string_view, std::string_view) { other.set_value(st); });
  });
  CallResult r = p.a->CallSync(0, 1, Args(kNever, "", 1000), 200);
  EXPECT_EQ(r.st.code(), Code::kTimeout);
  auto f = other.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(f.get().code(), Code::kUnavailable);
  EXPECT_EQ(p.a->stats().zombie_resets.load(), 1u);
  r = p.a->CallSync(0, 1, Args(kEcho, "again"));
  ASSERT_TRUE(r.st.ok()) << r.st.ToString();
  p.b->lane(0).Run([&] { p.logic_b.base().FinishStash("nobody listens"); });
}

TEST_F(RdmaTest, RejectsBadArgumentsAndExplainsMissingDevices) {
  std::vector<int> ports{NextRdmaPort(), NextRdmaPort()};
  TransportOptions o = MakeRdmaOptions(0, ports);
  o.max_body = 100;
  o.max_bulk = 1u << 21;
  RegionLogic logic;
  RdmaNode a(o, 1, logic.Handler());
  ASSERT_TRUE(a.start_status().ok()) << a.start_status().ToString();
  EXPECT_EQ(a.CallSync(0, 2, Args(kEcho, "")).st.code(), Code::kInvalidArgument);
  EXPECT_EQ(a.CallSync(0, 1, Args(kEcho, std::string(101, 'x'))).st.code(), Code::kInvalidArgument);
  // Over max_bulk_per_call (= staging_bytes) but within max_bulk: the caller must split.
  CallResult r = a.CallSync(0, 1, Args(kEcho, "", (1u << 20) + 1));
  EXPECT_EQ(r.st.code(), Code::kInvalidArgument);
  EXPECT_NE(r.st.message().find("max_bulk_per_call"), std::string::npos) << r.st.message();
  std::string big((1u << 20) + 1, 'x');
  CallArgs args = Args(kEcho, "");
  args.bulk_in = {{big.data(), big.size()}};
  EXPECT_EQ(a.CallSync(0, 1, std::move(args)).st.code(), Code::kInvalidArgument);

  TransportOptions bad = MakeRdmaOptions(0, ports);
  bad.self = 2;
  EXPECT_EQ(CreateRdmaTransport(bad).status().code(), Code::kInvalidArgument);
  bad = MakeRdmaOptions(0, ports);
  bad.staging_buffers = 1;
  EXPECT_EQ(CreateRdmaTransport(bad).status().code(), Code::kInvalidArgument);
  bad = MakeRdmaOptions(0, ports);
  bad.rdma_device = "no-such-hca";
  Status st = CreateRdmaTransport(bad).status();
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_NE(st.message().find("no-such-hca"), std::string::npos) << st.message();
  bad = MakeRdmaOptions(0, ports);
  bad.bind_host = "127.0.0.1";  // rxe is not on lo
  st = CreateRdmaTransport(bad).status();
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_NE(st.message().find("127.0.0.1"), std::string::npos) << st.message();
  bad = MakeRdmaOptions(0, ports);
  bad.rdma_port = 7;
  st = CreateRdmaTransport(bad).status();
  EXPECT_EQ(st.code(), Code::kUnavailable) << st.ToString();
  bad = MakeRdmaOptions(0, ports);
  bad.rdma_gid_index = 200;
  st = CreateRdmaTransport(bad).status();
  EXPECT_EQ(st.code(), Code::kUnavailable) << st.ToString();
  // A second transport cannot listen on a port in use.
  RdmaNode dup(MakeRdmaOptions(0, ports), 1, logic.Handler());
  EXPECT_EQ(dup.start_status().code(), Code::kIOError) << dup.start_status().ToString();
}

TEST_F(RdmaTest, ExplicitGidIndex) {
  const char* gid = std::getenv("RXE_GID_IDX");
  if (!gid) GTEST_SKIP() << "no $RXE_GID_IDX";
  std::vector<int> ports{NextRdmaPort(), NextRdmaPort()};
  TransportOptions oa = MakeRdmaOptions(0, ports), ob = MakeRdmaOptions(1, ports);
  oa.rdma_gid_index = ob.rdma_gid_index = std::atoi(gid);
  oa.rdma_device = ob.rdma_device = std::getenv("RXE_DEV") ? std::getenv("RXE_DEV") : "";
  RegionLogic la, lb;
  RdmaNode a(oa, 1, la.Handler()), b(ob, 1, lb.Handler());
  ASSERT_TRUE(a.start_status().ok()) << a.start_status().ToString();
  ASSERT_TRUE(b.start_status().ok()) << b.start_status().ToString();
  std::string data = Pattern(300000, 8);
  CallArgs args = Args(kBulkEcho, "", data.size());
  args.bulk_in = {{data.data(), data.size()}};
  CallResult r = a.CallSync(0, 1, std::move(args));
  ASSERT_TRUE(r.st.ok()) << r.st.ToString();
  EXPECT_TRUE(r.bulk == data);
}

// ---- a peer in another process, killed with SIGKILL mid-transfer ----

pid_t SpawnPeer(int self, const std::vector<int>& ports, const char* mode = "--rdma-peer") {
  std::vector<std::string> args{"/proc/self/exe", mode, std::to_string(self)};
  for (int p : ports) args.push_back(std::to_string(p));
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  // posix_spawn (vfork-like): nothing of this process's registered memory is
  // copied or shared with the child.
  if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) != 0) return -1;
  return pid;
}

TEST_F(RdmaTest, PeerKilledMidTransferFailsOnlyItsCallsThenRecovers) {
  std::vector<int> ports{NextRdmaPort(), NextRdmaPort(), NextRdmaPort()};
  pid_t child = SpawnPeer(1, ports);
  ASSERT_GT(child, 0);
  RegionLogic logic_a, logic_c;
  RdmaNode a(MakeRdmaOptions(0, ports), 1, logic_a.Handler());
  RdmaNode c(MakeRdmaOptions(2, ports), 1, logic_c.Handler());
  ASSERT_TRUE(a.start_status().ok() && c.start_status().ok());
  ASSERT_TRUE(WaitFor([&] { return a.CallSync(0, 1, Args(kEcho, "up?")).st.ok(); }, 15000));

  constexpr int kCalls = 24, kTimeoutMs = 20000;
  constexpr size_t kSize = 1u << 20;
  const std::string data = Pattern(kSize, 31);
  std::atomic<int> ok{0}, unavailable{0}, other{0}, c_ok{0}, c_bad{0};
  std::atomic<int64_t> last_fail_ns{0};
  a.lane(0).Post([&] {
    for (int i = 0; i < kCalls; ++i) {
      CallArgs args = i % 2 ? Args(kPattern, std::to_string(kSize) + " 9 0", kSize)
                            : Args(kBulkEcho, "", kSize);
      if (i % 2 == 0) args.bulk_in = {{const_cast<char*>(data.data()), kSize}};
      a.t().Call(0, 1, std::move(args), kTimeoutMs,
                 [&](Status st, std::string_view, std::string_view) {
                   if (st.ok()) return void(ok++);
                   last_fail_ns = std::chrono::steady_clock::now().time_since_epoch().count();
                   (st.code() == Code::kUnavailable ? unavailable : other)++;
                 });
      // Calls to another peer on the same lane must not notice.
      CallArgs to_c = Args(kBulkEcho, "", 200000);
      to_c.bulk_in = {{const_cast<char*>(data.data()), 200000}};
      a.t().Call(0, 2, std::move(to_c), kTimeoutMs,
                 [&](Status st, std::string_view, std::string_view bulk) {
                   (st.ok() && bulk == std::string_view(data).substr(0, 200000) ? c_ok : c_bad)++;
                 });
    }
  });
  // Kill it while transfers are flowing.
  ASSERT_TRUE(WaitFor([&] { return ok.load() >= 2; }, 30000));
  ASSERT_EQ(kill(child, SIGKILL), 0);
  const auto killed = std::chrono::steady_clock::now();
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  ASSERT_TRUE(WaitFor([&] { return ok + unavailable + other == kCalls; }, kTimeoutMs + 5000));
  EXPECT_EQ(other.load(), 0);
  EXPECT_GT(unavailable.load(), 0) << "every call finished before the kill";
  const auto failed_at = std::chrono::steady_clock::time_point(
      std::chrono::steady_clock::duration(last_fail_ns.load()));
  EXPECT_LT(failed_at - killed, std::chrono::milliseconds(kTimeoutMs));
  std::printf("[          ] %d ok, %d failed kUnavailable, last %.0f ms after the kill\n",
              ok.load(), unavailable.load(),
              std::chrono::duration<double, std::milli>(failed_at - killed).count());
  ASSERT_TRUE(WaitFor([&] { return c_ok + c_bad == kCalls; }, kTimeoutMs + 5000));
  EXPECT_EQ(c_bad.load(), 0);

  // A new peer on the same address works again.
  child = SpawnPeer(1, ports);
  ASSERT_GT(child, 0);
  CallResult r;
  EXPECT_TRUE(WaitFor(
      [&] {
        r = a.CallSync(0, 1, Args(kEcho, "again"));
        return r.st.ok();
      },
      15000))
      << r.st.ToString();
  CallArgs args = Args(kBulkEcho, "", kSize);
  args.bulk_in = {{const_cast<char*>(data.data()), kSize}};
  r = a.CallSync(0, 1, std::move(args));
  EXPECT_TRUE(r.st.ok() && r.bulk == data) << r.st.ToString();
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
}

// The owner's side of the same: a requester process dies while the owner is
// READing its bulk_in and WRITEing its bulk_out. The owner's calls fail
// cleanly, every range it handed to WriteBulk is released, and the next
// requester is served.
TEST_F(RdmaTest, RequesterKilledMidTransferReleasesEverything) {
  std::vector<int> ports{NextRdmaPort(), NextRdmaPort()};
  Region region(64u << 20);
  TransportOptions ob = MakeRdmaOptions(1, ports);
  ob.regions = {region.region()};
  RegionLogic logic(region.data());
  RdmaNode b(ob, 1, logic.Handler());
  ASSERT_TRUE(b.start_status().ok()) << b.start_status().ToString();
  logic.Attach(b);
  pid_t child = SpawnPeer(0, ports, "--rdma-requester");
  ASSERT_GT(child, 0);
  ASSERT_TRUE(WaitFor([&] { return logic.writes_ok.load() >= 8; }, 30000));
  ASSERT_EQ(kill(child, SIGKILL), 0);
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  // Every WriteBulk range is released once its QP is gone.
  EXPECT_TRUE(WaitFor([&] { return logic.released.load() == logic.writes_ok.load(); }, 10000))
      << logic.released.load() << " of " << logic.writes_ok.load();
  RegionLogic logic_a;
  RdmaNode a(MakeRdmaOptions(0, ports), 1, logic_a.Handler());
  ASSERT_TRUE(a.start_status().ok()) << a.start_status().ToString();
  const std::string data = Pattern(1u << 20, 12);
  CallArgs args = Args(kRegionBulkEcho, "0", data.size());
  args.bulk_in = {{const_cast<char*>(data.data()), data.size()}};
  CallResult r = a.CallSync(0, 1, std::move(args));
  ASSERT_TRUE(r.st.ok()) << r.st.ToString();
  EXPECT_TRUE(r.bulk == data);
}

}  // namespace

// The requester process of the kill test above: keeps 8 large calls in
// flight to node 1 until killed.
int RunRequester(int argc, char** argv) {
  const int self = std::atoi(argv[2]);
  std::vector<int> ports;
  for (int i = 3; i < argc; ++i) ports.push_back(std::atoi(argv[i]));
  RegionLogic logic;
  RdmaNode node(MakeRdmaOptions(self, ports), 1, logic.Handler());
  if (!node.start_status().ok()) return 1;
  static const std::string data = Pattern(1u << 20, 3);
  std::function<void(int)> issue = [&](int slot) {
    CallArgs args = Args(kRegionBulkEcho, std::to_string(slot * (2u << 20)), data.size());
    args.bulk_in = {{const_cast<char*>(data.data()), data.size()}};
    node.t().Call(0, 1, std::move(args), 30000,
                  [&, slot](Status, std::string_view, std::string_view) { issue(slot); });
  };
  node.lane(0).Post([&] {
    for (int i = 0; i < 8; ++i) issue(i);
  });
  for (;;) pause();
}

// The peer process of the kill test: serves until killed.
int RunPeer(int argc, char** argv) {
  const int self = std::atoi(argv[2]);
  std::vector<int> ports;
  for (int i = 3; i < argc; ++i) ports.push_back(std::atoi(argv[i]));
  RegionLogic logic;
  RdmaNode node(MakeRdmaOptions(self, ports), 1, logic.Handler());
  if (!node.start_status().ok()) {
    std::fprintf(stderr, "peer: %s\n", node.start_status().ToString().c_str());
    return 1;
  }
  logic.Attach(node);
  for (;;) pause();
}

}  // namespace kvpool::transport::testing

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  if (argc >= 4 && std::string(argv[1]) == "--rdma-peer")
    return kvpool::transport::testing::RunPeer(argc, argv);
  if (argc >= 4 && std::string(argv[1]) == "--rdma-requester")
    return kvpool::transport::testing::RunRequester(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
