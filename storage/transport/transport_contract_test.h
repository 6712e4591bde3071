// The contract of transport.h as one gtest suite, run against each
// transport: transport_contract_test.cc holds the tests, and each
// transport's test binary instantiates them with its TransportKind
// (tcp_transport_test.cc in transport_test; rdma_transport_test.cc in
// rdma_transport_test, which runs in the Soft-RoCE guest).
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "storage/transport/rdma_transport.h"
#include "storage/transport/transport_test_util.h"

namespace kvpool::transport::testing {

// How to build nodes of one transport, and what it can tell about itself.
struct TransportKind {
  const char* name;  // Transport::name()
  // Empty: the tests run; otherwise why they skip (no RDMA device here).
  std::function<std::string()> unavailable;
  std::function<int()> port;  // a free port for one node
  std::function<TransportOptions(int self, const std::vector<int>& ports, std::string secret)>
      options;
  std::function<std::unique_ptr<TestNode>(const TransportOptions& o, int lanes, CallHandler h)>
      node;
  size_t max_bulk_per_call;        // with the options above
  std::vector<size_t> bulk_sizes;  // bulk_in / bulk_out sizes to try, up to max_bulk_per_call
  size_t chunk;                    // a WriteBulk chunk smaller than the largest size
  bool one_sided;                  // counts rdma_reads / rdma_writes
  // Connections from A to B (one lane each) after A called only B.
  std::function<int(TestNode& a, int port_b)> connections;
  // The RDMA transport's own counters; null for other kinds.
  std::function<const RdmaStats*(TestNode& n)> stats;
};

// Two nodes of a kind, A (index 0) calls B (index 1), ServerLogic on both.
struct ContractPair {
  explicit ContractPair(const TransportKind& k, int lanes = 1,
                        const std::string& secret_a = "pool-secret",
                        const std::string& secret_b = "pool-secret")
      : ports{k.port(), k.port()} {
    a = k.node(k.options(0, ports, secret_a), lanes, logic_a.Handler());
    b = k.node(k.options(1, ports, secret_b), lanes, logic_b.Handler());
    logic_a.Attach(*a, lanes);
    logic_b.Attach(*b, lanes);
  }
  bool started() const { return a->start_status().ok() && b->start_status().ok(); }
  std::string why() const {
    return a->start_status().ToString() + " / " + b->start_status().ToString();
  }
  std::vector<int> ports;
  ServerLogic logic_a, logic_b;
  std::unique_ptr<TestNode> a, b;
};

class TransportContract : public ::testing::TestWithParam<const TransportKind*> {
 protected:
  void SetUp() override {
    const std::string why = kind().unavailable ? kind().unavailable() : "";
    if (!why.empty()) GTEST_SKIP() << why;
  }
  const TransportKind& kind() const { return *GetParam(); }
};

// Calls `op` from lane 0 of `a` to peer 1 with a bulk_out capacity of
// `size`; the owner must answer "ok" with bulk_out = Pattern(size, seed).
// Wrap in ASSERT_NO_FATAL_FAILURE.
inline void ExpectPatternBack(TestNode& a, uint16_t op, const std::string& body, size_t size,
                              uint64_t seed) {
  CallResult r = a.CallSync(0, 1, Args(op, body, size));
  ASSERT_TRUE(r.st.ok()) << size << " " << r.st.ToString();
  ASSERT_EQ(r.reply, "ok");
  ASSERT_EQ(r.bulk.size(), size);
  EXPECT_TRUE(CheckPattern(r.bulk, seed)) << size;
}

// For INSTANTIATE_TEST_SUITE_P: the kind's name as the test name suffix.
inline std::string KindName(const ::testing::TestParamInfo<const TransportKind*>& info) {
  return info.param->name;
}

}  // namespace kvpool::transport::testing
