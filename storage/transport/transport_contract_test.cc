// The transport contract (transport.h), the same tests against every
// transport: instantiated for TCP in tcp_transport_test.cc and for RDMA in
// rdma_transport_test.cc. Where a transport can tell more (RDMA's
// one-sided counters and its own stats) the tests check that too.
#include "storage/transport/transport_contract_test.h"

#include <algorithm>
#include <future>

#include "storage/transport/rdma_wire.h"

namespace kvpool::transport::testing {
namespace {

TEST_P(TransportContract, Echo) {
  ContractPair p(kind());
  ASSERT_TRUE(p.started()) << p.why();
  EXPECT_STREQ(p.a->t().name(), kind().name);
  EXPECT_EQ(p.a->t().max_bulk_per_call(), kind().max_bulk_per_call);
  CallResult r = p.a->CallSync(0, 1, Args(kEcho, "hello"));
  ASSERT_TRUE(r.st.ok()) << r.st.ToString();
  EXPECT_EQ(r.reply, "hello");
  EXPECT_EQ(r.bulk, "");
  EXPECT_EQ(r.thread, p.a->lane(0).thread_id());
  // Both directions, and an empty body.
  r = p.b->CallSync(0, 0, Args(kEcho, ""));
  ASSERT_TRUE(r.st.ok()) << r.st.ToString();
  EXPECT_EQ(r.reply, "");
  // A node calls itself through the same path.
  r = p.a->CallSync(0, 0, Args(kEcho, "me"));
  ASSERT_TRUE(r.st.ok()) << r.st.ToString();
  EXPECT_EQ(r.reply, "me");
  EXPECT_EQ(p.a->t().counters(1).calls.load(), 1u);
  EXPECT_EQ(p.a->t().counters(1).errors.load(), 0u);
  EXPECT_TRUE(p.a->t().peer_up(1));
  if (const RdmaStats* s = kind().stats(*p.a)) {
    EXPECT_GE(s->connections.load(), 2u);  // A→B out, A→A out and in
  }
}

TEST_P(TransportContract, CallToSelf) {
  ContractPair p(kind());
  ASSERT_TRUE(p.started()) << p.why();
  CallResult r = p.a->CallSync(0, 0, Args(kEcho, "me"));
  ASSERT_TRUE(r.st.ok()) << r.st.ToString();
  EXPECT_EQ(r.reply, "me");
}

TEST_P(TransportContract, LargeBodies) {
  ContractPair p(kind());
  ASSERT_TRUE(p.started()) << p.why();
  for (int keys : {1000, 8000, 20000, 100000}) {
    std::string body;
    for (int i = 0; i < keys; ++i) body += "key:" + std::to_string(i * 7919) + "\n";
    const RdmaStats* s = kind().stats(*p.a);
    const uint64_t before = s ? s->segments_sent.load() : 0;
    CallResult r = p.a->CallSync(0, 1, Args(kEcho, body));
    ASSERT_TRUE(r.st.ok()) << keys << " " << r.st.ToString();
    EXPECT_TRUE(r.reply == body) << keys;  // the reply body is as large
    // RDMA: a body larger than a message slot travels as several segments.
    if (s) {
      EXPECT_GE(s->segments_sent.load() - before, body.size() / rdma::kMsgBytes);
    }
  }
}

TEST_P(TransportContract, BulkInAllSizes) {
  ContractPair p(kind());
  ASSERT_TRUE(p.started()) << p.why();
  uint64_t total = 0;
  for (size_t size : kind().bulk_sizes) {
    std::string data = Pattern(size, size + 1);
    CallArgs args = Args(kVerifyIn, std::to_string(size + 1));
    size_t a = size / 3, b = size / 2;  // a gather list of three uneven pieces
    args.bulk_in = {{data.data(), a}, {data.data() + a, b - a}, {data.data() + b, size - b}};
    CallResult r = p.a->CallSync(0, 1, std::move(args));
    ASSERT_TRUE(r.st.ok()) << size << " " << r.st.ToString();
    EXPECT_EQ(r.reply, "ok") << size;
    total += size;
  }
  EXPECT_EQ(p.a->t().counters(1).bytes_out.load(), total);
  EXPECT_EQ(p.b->t().counters(0).bytes_in.load(), total);
  if (kind().one_sided) {
    EXPECT_GT(p.b->t().counters(0).rdma_reads.load(), 0u);
  }
  if (const RdmaStats* s = kind().stats(*p.b)) {
    // ServerLogic reads into its heap: through bounce buffers.
    EXPECT_GT(s->bounced_reads.load(), 0u);
    EXPECT_EQ(s->direct_reads.load(), 0u);
  }
}

TEST_P(TransportContract, BulkOutAllSizes) {
  ContractPair p(kind());
  ASSERT_TRUE(p.started()) << p.why();
  uint64_t total = 0;
  for (size_t size : kind().bulk_sizes) {
    for (size_t chunk : {size_t{0}, kind().chunk}) {
      std::string body =
          std::to_string(size) + " " + std::to_string(size * 3) + " " + std::to_string(chunk);
      ASSERT_NO_FATAL_FAILURE(ExpectPatternBack(*p.a, kPattern, body, size, size * 3));
      total += size;
    }
  }
  EXPECT_GE(p.a->t().counters(1).bytes_in.load(), total);
  EXPECT_GE(p.b->t().counters(0).bytes_out.load(), total);
  if (kind().one_sided) {
    EXPECT_GT(p.b->t().counters(0).rdma_writes.load(), 0u);
  }
  if (const RdmaStats* s = kind().stats(*p.b)) {
    EXPECT_GT(s->bounced_writes.load(), 0u);
    EXPECT_EQ(s->direct_writes.load(), 0u);
  }
}

// A caller may keep what a reply's bulk_out holds past its callback,
// while later calls reuse whatever the transport received into; over TCP
// that is the received frame itself, handed over without a copy.
TEST_P(TransportContract, KeptBulkOutOutlivesTheCallback) {
  ContractPair p(kind());
  ASSERT_TRUE(p.started()) << p.why();
  std::vector<TestNode::KeptResult> kept;
  std::vector<std::string> sent;
  for (int round = 0; round < 3; ++round) {
    for (size_t size : kind().bulk_sizes) {
      std::string data = Pattern(size, 7000 + kept.size());
      CallArgs args = Args(kBulkEcho, "", size);
      args.bulk_in = {{data.data(), size}};
      kept.push_back(p.a->CallKeep(0, 1, std::move(args)));
      ASSERT_TRUE(kept.back().st.ok()) << kept.back().st.ToString();
      if (std::string(kind().name) == "tcp") {
        EXPECT_FALSE(kept.back().moved) << size;
      }
      sent.push_back(std::move(data));
    }
  }
  for (size_t i = 0; i < kept.size(); ++i) EXPECT_TRUE(kept[i].bulk == sent[i]) << i;
}

TEST_P(TransportContract, BulkInToBulkOutRoundTrip) {
  ContractPair p(kind());
  ASSERT_TRUE(p.started()) << p.why();
  const size_t size = kind().max_bulk_per_call;
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

TEST_P(TransportContract, BulkOutCapacityEnforced) {
  ContractPair p(kind());
  ASSERT_TRUE(p.started()) << p.why();
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
  EXPECT_TRUE(WaitFor([&] { return p.logic_b.released.load() == 4; }));
}

TEST_P(TransportContract, ThousandConcurrentCallsOutOfOrder) {
  ContractPair p(kind());
  ASSERT_TRUE(p.started()) << p.why();
  constexpr int kCalls = 1000;
  std::vector<int> order;
  std::atomic<int> done{0}, bad{0};
  p.a->lane(0).Post([&] {
    for (int i = 0; i < kCalls; ++i) {
      // Later calls get shorter delays, so replies overtake each other.
      std::string body = std::to_string((kCalls - i) % 25);
      p.a->t().Call(0, 1, Args(kDelay, body), 60000,
                    [&, i, body](Status st, std::string_view reply, std::string_view) {
                      if (!st.ok() || reply != body) bad++;
                      order.push_back(i);
                      done++;
                    });
    }
  });
  ASSERT_TRUE(WaitFor([&] { return done.load() == kCalls; }, 60000)) << done.load();
  EXPECT_EQ(bad.load(), 0);
  p.a->lane(0).Run([] {});
  EXPECT_FALSE(std::is_sorted(order.begin(), order.end()));
  EXPECT_EQ(p.logic_b.handled.load(), kCalls);
  EXPECT_EQ(kind().connections(*p.a, p.ports[1]), 1);  // all multiplexed over one connection
}

TEST_P(TransportContract, TimeoutAndLateReplyDropped) {
  ContractPair p(kind());
  ASSERT_TRUE(p.started()) << p.why();
  std::atomic<int> callbacks{0};
  std::promise<Status> result;
  auto start = std::chrono::steady_clock::now();
  p.a->lane(0).Post([&] {
    p.a->t().Call(0, 1, Args(kNever, "x"), 300, [&](Status st, std::string_view, std::string_view) {
      callbacks++;
      result.set_value(st);
    });
  });
  Status st = result.get_future().get();
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(st.code(), Code::kTimeout);
  EXPECT_GE(elapsed, std::chrono::milliseconds(280));
  EXPECT_LT(elapsed, std::chrono::milliseconds(3000));
  // The owner answers late: the reply is skipped, the link stays usable.
  ASSERT_TRUE(WaitFor([&] { return p.logic_b.stashed.load() == 1; }));
  p.b->lane(0).Run([&] { p.logic_b.FinishStash("late"); });
  CallResult r = p.a->CallSync(0, 1, Args(kEcho, "after"));
  ASSERT_TRUE(r.st.ok()) << r.st.ToString();
  EXPECT_EQ(r.reply, "after");
  EXPECT_EQ(callbacks.load(), 1);
  EXPECT_EQ(p.a->t().counters(1).errors.load(), 1u);
}

// A write that timed out (kTimeout) resets its link: the other call on it
// fails at once (kUnavailable); the next call opens a new link.
TEST_P(TransportContract, ResetOnTimeoutDropsTheLink) {
  ContractPair p(kind());
  ASSERT_TRUE(p.started()) << p.why();
  std::promise<Status> write, other;
  p.a->lane(0).Post([&] {
    p.a->t().Call(0, 1, Args(kNever, "held"), 30000,
                  [&](Status st, std::string_view, std::string_view) { other.set_value(st); });
    CallArgs w = Args(kNever, "write");
    w.reset_on_timeout = true;
    p.a->t().Call(0, 1, std::move(w), 300,
                  [&](Status st, std::string_view, std::string_view) { write.set_value(st); });
  });
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(write.get_future().get().code(), Code::kTimeout);
  Status st = other.get_future().get();
  EXPECT_EQ(st.code(), Code::kUnavailable) << st.ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  CallResult r = p.a->CallSync(0, 1, Args(kEcho, "after"));
  ASSERT_TRUE(r.st.ok()) << r.st.ToString();
  EXPECT_EQ(r.reply, "after");
}

TEST_P(TransportContract, DroppedCallAnswersAtOnce) {
  ContractPair p(kind());
  ASSERT_TRUE(p.started()) << p.why();
  auto start = std::chrono::steady_clock::now();
  CallResult r = p.a->CallSync(0, 1, Args(kDrop, ""), 10000);
  EXPECT_EQ(r.st.code(), Code::kInternal);
  EXPECT_EQ(r.st.message(), "kvpool: call dropped");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST_P(TransportContract, WrongSecretIsPermissionDenied) {
  ContractPair p(kind(), 1, "secret-a", "secret-b");
  ASSERT_TRUE(p.started()) << p.why();
  std::string data = Pattern(1000, 1);
  CallArgs args = Args(kVerifyIn, "1", 1000);
  args.bulk_in = {{data.data(), data.size()}};
  CallResult r = p.a->CallSync(0, 1, std::move(args));
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
  // Nothing one-sided ever happened: no rkey was sent.
  EXPECT_EQ(p.b->t().counters(0).rdma_reads.load(), 0u);
}

TEST_P(TransportContract, NoListenerFailsFastThenBacksOff) {
  std::vector<int> ports{kind().port(), kind().port()};
  ServerLogic logic;
  auto a = kind().node(kind().options(0, ports, "pool-secret"), 1, logic.Handler());
  ASSERT_TRUE(a->start_status().ok()) << a->start_status().ToString();
  auto start = std::chrono::steady_clock::now();
  CallResult r = a->CallSync(0, 1, Args(kEcho, "x"));
  EXPECT_EQ(r.st.code(), Code::kUnavailable) << r.st.ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_FALSE(a->t().peer_up(1));
  r = a->CallSync(0, 1, Args(kEcho, "x"));
  EXPECT_EQ(r.st.code(), Code::kUnavailable);
  // The peer appears: after the backoff, calls go through.
  ServerLogic logic_b;
  auto b = kind().node(kind().options(1, ports, "pool-secret"), 1, logic_b.Handler());
  ASSERT_TRUE(b->start_status().ok()) << b->start_status().ToString();
  ASSERT_TRUE(WaitFor([&] { return a->CallSync(0, 1, Args(kEcho, "y")).st.ok(); }, 5000));
  EXPECT_TRUE(a->t().peer_up(1));
}

TEST_P(TransportContract, StopLaneFailsPendingAndLaterCalls) {
  ContractPair p(kind());
  ASSERT_TRUE(p.started()) << p.why();
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

TEST_P(TransportContract, ThreeNodesCallEachOther) {
  std::vector<int> ports{kind().port(), kind().port(), kind().port()};
  ServerLogic logic[3];
  std::vector<std::unique_ptr<TestNode>> n;
  for (int i = 0; i < 3; ++i) {
    n.push_back(kind().node(kind().options(i, ports, "pool-secret"), 1, logic[i].Handler()));
    ASSERT_TRUE(n[i]->start_status().ok()) << n[i]->start_status().ToString();
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
          n[from]->t().Call(0, to, Args(kEcho, body), 20000,
                            [&, body](Status st, std::string_view reply, std::string_view) {
                              if (st.ok() && reply == body) ok++;
                            });
        }
    });
  }
  ASSERT_TRUE(WaitFor([&] { return ok.load() == 3 * 3 * kEach; }, 30000)) << ok.load();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(logic[i].handled.load(), 3 * kEach);
}

}  // namespace
}  // namespace kvpool::transport::testing
