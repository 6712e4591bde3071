// INFO commandstats / errorstats / latencystats and SLOWLOG, in process.
#include <gtest/gtest.h>

#include <string>

#include "server/command_stats.h"
#include "server/monitor.h"
#include "server/testing/command_harness.h"

namespace kvpool {
namespace {

using testing::CommandHarness;

std::string Info(CommandHarness& h, const std::string& section) { return h.Run({"INFO", section}); }

bool Has(const std::string& text, const std::string& line) {
  return text.find(line) != std::string::npos;
}

TEST(LatencyHistogram, PercentilesWithinABucket) {
  LatencyHistogram h;
  EXPECT_EQ(h.Percentile(50), 0);
  for (uint64_t us = 1; us <= 1000; ++us) h.Record(us);
  EXPECT_EQ(h.Count(), 1000u);
  EXPECT_NEAR(h.Percentile(50), 500, 500 * 0.125);
  EXPECT_NEAR(h.Percentile(99), 990, 990 * 0.125);
  EXPECT_NEAR(h.Percentile(100), 1000, 1000 * 0.125);
  for (uint64_t us = 0; us < 8; ++us) {
    LatencyHistogram small;
    small.Record(us);
    EXPECT_EQ(small.Percentile(50), static_cast<double>(us)) << "exact below 8 µs";
  }
  h.Record(uint64_t{1} << 50);  // beyond the last bucket: counted there
  EXPECT_EQ(h.Count(), 1001u);
  h.Reset();
  EXPECT_EQ(h.Count(), 0u);
}

TEST(StatsFamily, CommandAndErrorStats) {
  CommandHarness h;
  h.Run({"SET", "k", "v"});
  h.Run({"GET", "k"});
  h.Run({"GET", "k"});
  h.Run({"GET"});               // rejected: arity
  h.Run({"INCR", "k"});         // ran, failed: not an integer
  h.Run({"NOSUCHCOMMAND", "x"});  // an error, no command
  std::string cs = Info(h, "commandstats");
  EXPECT_TRUE(Has(cs, "# Commandstats\r\n")) << cs;
  EXPECT_TRUE(Has(cs, "cmdstat_get:calls=2,")) << cs;
  EXPECT_TRUE(Has(cs, ",rejected_calls=1,failed_calls=0\r\n")) << cs;
  EXPECT_TRUE(Has(cs, "cmdstat_set:calls=1,")) << cs;
  EXPECT_TRUE(Has(cs, "cmdstat_incr:calls=1,")) << cs;
  EXPECT_TRUE(Has(cs, ",rejected_calls=0,failed_calls=1\r\n")) << cs;
  EXPECT_FALSE(Has(cs, "cmdstat_del")) << "commands never called are not listed";
  EXPECT_TRUE(Has(Info(h, "errorstats"), "errorstat_ERR:count=3\r\n")) << Info(h, "errorstats");
  std::string ls = Info(h, "latencystats");
  EXPECT_TRUE(Has(ls, "latency_percentiles_usec_get:p50=")) << ls;
  EXPECT_TRUE(Has(ls, ",p99=")) << ls;
  EXPECT_TRUE(Has(ls, ",p99.9=")) << ls;

  h.Run({"CONFIG", "RESETSTAT"});
  EXPECT_FALSE(Has(Info(h, "commandstats"), "cmdstat_get")) << Info(h, "commandstats");
  EXPECT_EQ(Info(h, "errorstats"), "$14\r\n# Errorstats\r\n\r\n");

  h.Run({"CONFIG", "SET", "latency-tracking", "no"});
  h.Run({"CONFIG", "RESETSTAT"});
  h.Run({"GET", "k"});
  EXPECT_FALSE(Has(Info(h, "latencystats"), "usec_get")) << Info(h, "latencystats");
}

TEST(StatsFamily, SlowlogKeepsTheNewestCutAndRedacted) {
  CommandHarness h({"--slowlog-log-slower-than", "0", "--slowlog-max-len", "3"});
  h.Run({"SET", "a", std::string(200, 'x')});
  std::vector<std::string> many = {"MGET"};
  for (int i = 0; i < 40; ++i) many.push_back("k" + std::to_string(i));
  h.Run(many);
  h.Run({"AUTH", "secret"});
  EXPECT_EQ(h.Run({"SLOWLOG", "LEN"}), ":3\r\n");
  std::string got = h.Run({"SLOWLOG", "GET", "-1"});
  // Newest first: SLOWLOG LEN, AUTH (redacted), MGET (cut).
  size_t len = got.find("LEN"), auth = got.find("AUTH"), mget = got.find("MGET");
  ASSERT_NE(len, std::string::npos) << got;
  EXPECT_LT(len, auth);
  EXPECT_LT(auth, mget);
  EXPECT_FALSE(Has(got, "secret")) << got;
  EXPECT_TRUE(Has(got, "(redacted)")) << got;
  EXPECT_TRUE(Has(got, "... (10 more arguments)")) << got;
  EXPECT_FALSE(Has(got, "SET")) << "the oldest went (slowlog-max-len 3)";
  // One entry: [id, time, µs, [args], addr, name].
  std::string one = h.Run({"SLOWLOG", "GET", "1"});
  EXPECT_EQ(one.rfind("*1\r\n*6\r\n:", 0), 0u) << one;
  h.Run({"SET", "b", std::string(200, 'y')});
  EXPECT_TRUE(Has(h.Run({"SLOWLOG", "GET", "1"}), std::string(128, 'y') + "... (72 more bytes)"));
  EXPECT_EQ(h.Run({"SLOWLOG", "GET", "-2"}),
            "-ERR count should be greater than or equal to -1\r\n");
  EXPECT_EQ(h.Run({"SLOWLOG", "RESET"}), "+OK\r\n");
  EXPECT_EQ(h.Run({"SLOWLOG", "LEN"}), ":1\r\n") << "RESET itself is logged after";
  h.Run({"CONFIG", "SET", "slowlog-log-slower-than", "-1"});
  h.Run({"SLOWLOG", "RESET"});
  h.Run({"GET", "a"});
  EXPECT_EQ(h.Run({"SLOWLOG", "LEN"}), ":0\r\n");
}

}  // namespace
}  // namespace kvpool

namespace kvpool {
namespace {

using testing::CommandHarness;

TEST(StatsFamily, LatencyMonitorAndHistogram) {
  CommandHarness h({"--latency-monitor-threshold", "20"});
  EXPECT_EQ(h.Run({"LATENCY", "LATEST"}), "*0\r\n");
  h.Run({"DEBUG", "SLEEP", "0.03"});
  h.Run({"GET", "k"});  // fast: under the threshold
  std::string latest = h.Run({"LATENCY", "LATEST"});
  EXPECT_EQ(latest.rfind("*1\r\n*4\r\n$7\r\ncommand\r\n:", 0), 0u) << latest;
  std::string history = h.Run({"LATENCY", "HISTORY", "command"});
  EXPECT_EQ(history.rfind("*1\r\n*2\r\n:", 0), 0u) << history;
  EXPECT_EQ(h.Run({"LATENCY", "HISTORY", "nosuch"}), "*0\r\n");
  EXPECT_EQ(h.Run({"LATENCY", "RESET", "nosuch"}), ":0\r\n");
  EXPECT_EQ(h.Run({"LATENCY", "RESET"}), ":1\r\n");
  EXPECT_EQ(h.Run({"LATENCY", "LATEST"}), "*0\r\n");

  // GET ran twice more: calls 3 with the one above; the cumulative counts
  // end at the number of calls.
  h.Run({"GET", "k"});
  h.Run({"GET", "k"});
  std::string hist = h.Run({"LATENCY", "HISTOGRAM", "get"});
  EXPECT_EQ(hist.rfind("*2\r\n$3\r\nget\r\n*4\r\n$5\r\ncalls\r\n:3\r\n$14\r\nhistogram_usec\r\n*", 0), 0u)
      << hist;
  EXPECT_NE(hist.find(":3\r\n", hist.find("histogram_usec")), std::string::npos) << hist;
  EXPECT_EQ(h.Run({"LATENCY", "HISTOGRAM", "nosuchcommand"}), "*0\r\n");
}

}  // namespace
}  // namespace kvpool

namespace kvpool {
namespace {

TEST(Monitor, LineAsRedisWritesIt) {
  std::vector<std::string_view> args = {"set", "k y", std::string_view("a\"b\\\n\x01\xff", 7)};
  EXPECT_EQ(MonitorLine(1339518083107412, 0, "127.0.0.1:60866", args),
            "+1339518083.107412 [0 127.0.0.1:60866] \"set\" \"k y\" \"a\\\"b\\\\\\n\\x01\\xff\"\r\n");
  EXPECT_EQ(MonitorLine(5000001, 3, "x", {}), "+5.000001 [3 x]\r\n");
}

TEST(Monitor, NeedsAConnection) {
  testing::CommandHarness h;
  EXPECT_EQ(h.Run({"MONITOR"}), "-ERR MONITOR needs a client connection\r\n");
}

}  // namespace
}  // namespace kvpool
