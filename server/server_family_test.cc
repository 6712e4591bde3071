// Server family: INFO, COMMAND, CONFIG, TIME, MEMORY, SHUTDOWN and the rest,
// with the exact RESP bytes redis-server 7.0 sends where they are stable.
#include <gtest/gtest.h>

#include <unistd.h>

#include <ctime>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "protocol/reply_builder.h"
#include "server/command_table.h"
#include "server/dispatcher.h"
#include "server/info.h"
#include "server/io_thread.h"
#include "server/testing/command_harness.h"

namespace kvpool {
namespace {

using kvpool::testing::CommandHarness;

constexpr int64_t kNow = 1'700'000'000'000;

const std::string kOk = "+OK\r\n";
const std::string kNil = "$-1\r\n";
const std::string kSyntaxErr = "-ERR syntax error\r\n";

std::string Bulk(const std::string& s) {
  return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}
std::string Int(int64_t v) { return ":" + std::to_string(v) + "\r\n"; }
std::string Err(const std::string& msg) { return "-" + msg + "\r\n"; }
std::string WrongArgs(const std::string& cmd) {
  return Err("ERR wrong number of arguments for '" + cmd + "' command");
}
std::string Arr(const std::vector<std::string>& items) {
  std::string out = "*" + std::to_string(items.size()) + "\r\n";
  for (const auto& i : items) out += i;
  return out;
}

// The payload of a RESP2 bulk reply.
std::string BulkPayload(const std::string& reply) {
  size_t crlf = reply.find("\r\n");
  EXPECT_EQ(reply[0], '$') << reply;
  return reply.substr(crlf + 2, reply.size() - crlf - 4);
}

// "field:value" lines of an INFO text.
std::map<std::string, std::string> InfoFields(const std::string& text) {
  std::map<std::string, std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find("\r\n", pos);
    EXPECT_NE(end, std::string::npos) << "every line ends with CRLF";
    if (end == std::string::npos) break;
    std::string line = text.substr(pos, end - pos);
    size_t colon = line.find(':');
    if (!line.empty() && line[0] != '#' && colon != std::string::npos)
      out[line.substr(0, colon)] = line.substr(colon + 1);
    pos = end + 2;
  }
  return out;
}

std::vector<std::string> InfoSections(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while ((pos = text.find("# ", pos)) != std::string::npos) {
    size_t end = text.find("\r\n", pos);
    out.push_back(text.substr(pos + 2, end - pos - 2));
    pos = end;
  }
  return out;
}

class ServerFamilyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    h.SetNow(kNow);
    h.server().start_ms = kNow - 90'000;
    h.server().tcp_port = 6380;
  }
  std::string Info(std::vector<std::string> sections = {}) {
    sections.insert(sections.begin(), "INFO");
    return BulkPayload(h.Run(sections));
  }
  CommandHarness h;
};

// ---------------- INFO ----------------

TEST_F(ServerFamilyTest, InfoDefaultSections) {
  std::string text = Info();
  EXPECT_EQ(text.rfind("# Server\r\nredis_version:7.0.15\r\nkvpool_version:0.1.0\r\n", 0), 0u)
      << text;
  EXPECT_EQ(InfoSections(text),
            (std::vector<std::string>{"Server", "Clients", "Memory", "Persistence", "Stats",
                                      "Replication", "CPU", "Modules", "Errorstats", "Cluster",
                                      "Keyspace", "Pool"}));
  EXPECT_NE(text.find("\r\n\r\n# Clients\r\n"), std::string::npos) << "a blank line between";
  EXPECT_EQ(Info({"default"}).substr(0, 40), text.substr(0, 40));
  // As Redis: the long per-command sections only when asked for (or all).
  const std::vector<std::string> all = {"Server",       "Clients",     "Memory",       "Persistence",
                                        "Stats",        "Replication", "CPU",          "Modules",
                                        "Commandstats", "Errorstats",  "Latencystats", "Cluster",
                                        "Keyspace",     "Pool"};
  EXPECT_EQ(InfoSections(Info({"all"})), all);
  EXPECT_EQ(InfoSections(Info({"everything"})), all);
}

TEST_F(ServerFamilyTest, InfoServer) {
  std::string text = Info({"server"});
  EXPECT_EQ(InfoSections(text), std::vector<std::string>{"Server"});
  auto f = InfoFields(text);
  EXPECT_EQ(f["redis_version"], "7.0.15");
  EXPECT_EQ(f["kvpool_version"], "0.1.0");
  EXPECT_EQ(f["redis_mode"], "standalone");
  EXPECT_EQ(f["arch_bits"], "64");
  EXPECT_EQ(f["process_id"], std::to_string(getpid()));
  EXPECT_EQ(f["run_id"].size(), 40u);
  EXPECT_EQ(f["tcp_port"], "6380");
  EXPECT_EQ(f["uptime_in_seconds"], "90");
  EXPECT_EQ(f["uptime_in_days"], "0");
  EXPECT_EQ(f["hz"], "10");
  EXPECT_EQ(f["io_threads_active"], "0");
  EXPECT_TRUE(f.count("os") && f.count("executable") && f.count("config_file"));
  EXPECT_EQ(text, Info({"SERVER"}).substr(0, text.find("server_time_usec")) +
                      text.substr(text.find("server_time_usec")))
      << "section names are case-insensitive";
}

TEST_F(ServerFamilyTest, InfoMultipleSectionsKeepTheirOrder) {
  EXPECT_EQ(InfoSections(Info({"clients", "server"})),
            (std::vector<std::string>{"Server", "Clients"}));
  EXPECT_EQ(InfoSections(Info({"keyspace", "nosuch", "CPU"})),
            (std::vector<std::string>{"CPU", "Keyspace"}));
}

TEST_F(ServerFamilyTest, InfoUnknownSectionIsEmpty) {
  EXPECT_EQ(h.Run({"INFO", "nosuchsection"}), "$0\r\n\r\n");
}

TEST_F(ServerFamilyTest, InfoKeyspace) {
  EXPECT_EQ(h.Run({"INFO", "keyspace"}), Bulk("# Keyspace\r\n")) << "empty DBs are not listed";
  h.Run({"SET", "a", "1"});
  h.Run({"SET", "b", "2", "EX", "100"});
  h.client().db = 4;
  h.Run({"SET", "x", "1"});
  EXPECT_EQ(h.Run({"INFO", "keyspace"}),
            Bulk("# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=0\r\ndb4:keys=1,expires=0,avg_ttl=0\r\n"));
}

TEST_F(ServerFamilyTest, InfoResp3IsVerbatim) {
  h.client().resp = 3;
  std::string text = "# Keyspace\r\n";
  EXPECT_EQ(h.Run({"INFO", "keyspace"}),
            "=" + std::to_string(text.size() + 4) + "\r\ntxt:" + text + "\r\n");
}

TEST_F(ServerFamilyTest, InfoPool) {
  EXPECT_EQ(h.Run({"INFO", "pool"}), Bulk("# Pool\r\npool_nodes:1\r\ntransport:local\r\n"));
  h.server().pool_info = [] { return std::string("pool_nodes:3\r\ntransport:rdma\r\n"); };
  EXPECT_EQ(h.Run({"INFO", "pool"}), Bulk("# Pool\r\npool_nodes:3\r\ntransport:rdma\r\n"));
}

TEST_F(ServerFamilyTest, InfoClients) {
  auto info = std::make_shared<ClientInfo>();
  info->id = 1;
  info->query_buffer = 123;
  h.server().clients().Add(info, nullptr);
  h.server().extra_info = [] { return std::string("paused_clients:2\r\n"); };
  std::string text = Info({"clients"});
  auto f = InfoFields(text);
  EXPECT_EQ(f["connected_clients"], "1");
  EXPECT_EQ(f["maxclients"], "10000");
  EXPECT_EQ(f["blocked_clients"], "0");
  EXPECT_EQ(f["client_recent_max_input_buffer"], "123");
  EXPECT_EQ(f["paused_clients"], "2");
  EXPECT_TRUE(text.ends_with("paused_clients:2\r\n")) << text;
}

TEST_F(ServerFamilyTest, InfoMemory) {
  h.Run({"SET", "k", std::string(1000, 'x')});
  auto f = InfoFields(Info({"memory"}));
  for (const char* field :
       {"used_memory", "used_memory_human", "used_memory_rss", "used_memory_peak",
        "maxmemory", "maxmemory_human", "maxmemory_policy", "segment_bytes",
        "mem_fragmentation_ratio", "total_system_memory"})
    EXPECT_TRUE(f.count(field)) << field;
  EXPECT_GT(std::stoull(f["used_memory_dataset"]), 1000u) << "items + index";
  EXPECT_GE(std::stoull(f["used_memory"]), std::stoull(f["used_memory_dataset"]));
  EXPECT_GE(std::stoull(f["used_memory_peak"]), std::stoull(f["used_memory"]));
  EXPECT_GT(std::stoull(f["used_memory_rss"]), 0u);
  EXPECT_EQ(f["maxmemory"], std::to_string(h.store().GetStats().maxmemory));
  EXPECT_EQ(f["maxmemory_policy"], "allkeys-lru");
  EXPECT_EQ(h.Run({"CONFIG", "SET", "maxmemory", "10mb"}), kOk);
  f = InfoFields(Info({"memory"}));
  EXPECT_EQ(f["maxmemory"], "10485760");
  EXPECT_EQ(f["maxmemory_human"], "10.00M");
}

TEST_F(ServerFamilyTest, InfoPersistenceAndReplication) {
  auto f = InfoFields(Info({"persistence", "replication", "cluster"}));
  EXPECT_EQ(f["loading"], "0");
  EXPECT_EQ(f["rdb_bgsave_in_progress"], "0");
  EXPECT_EQ(f["aof_enabled"], "0");
  EXPECT_EQ(f["rdb_last_save_time"], std::to_string((kNow - 90'000) / 1000));
  EXPECT_EQ(f["role"], "master");
  EXPECT_EQ(f["connected_slaves"], "0");
  EXPECT_EQ(f["cluster_enabled"], "0");
}

TEST_F(ServerFamilyTest, InfoStats) {
  h.Run({"SET", "k", "v"});
  h.Run({"GET", "k"});
  h.Run({"GET", "missing"});
  h.server().stats().connections_received = 7;
  auto f = InfoFields(Info({"stats"}));
  EXPECT_EQ(f["total_commands_processed"], "4") << "including this INFO";
  EXPECT_EQ(f["keyspace_hits"], "1");
  EXPECT_EQ(f["keyspace_misses"], "1");
  EXPECT_EQ(f["total_connections_received"], "7");
  for (const char* field : {"instantaneous_ops_per_sec", "total_net_input_bytes",
                            "total_net_output_bytes", "rejected_connections", "expired_keys",
                            "evicted_keys"})
    EXPECT_TRUE(f.count(field)) << field;
}

TEST_F(ServerFamilyTest, InfoOpsPerSec) {
  h.server().stats().commands = 999;
  // The first sample covers the time since start (90 s): 1000 commands.
  EXPECT_EQ(InfoFields(Info({"stats"}))["instantaneous_ops_per_sec"], "11");
  h.server().stats().commands = 5999;
  h.SetNow(kNow + 500);  // under a second: the last rate stands
  EXPECT_EQ(InfoFields(Info({"stats"}))["instantaneous_ops_per_sec"], "11");
  h.SetNow(kNow + 2000);  // 6001 - 1000 commands (this INFO counts) in 2 s
  EXPECT_EQ(InfoFields(Info({"stats"}))["instantaneous_ops_per_sec"], "2501");
}

TEST_F(ServerFamilyTest, InfoCpu) {
  auto f = InfoFields(Info({"cpu"}));
  for (const char* field : {"used_cpu_sys", "used_cpu_user", "used_cpu_sys_children",
                            "used_cpu_user_children"}) {
    ASSERT_TRUE(f.count(field)) << field;
    EXPECT_EQ(f[field].size() - f[field].find('.'), 7u) << f[field];
  }
}

TEST(AutoIoThreadsTest, OneBelowFourCoresThenOnePerCoreButOne) {
  EXPECT_EQ(AutoIoThreads(0), 1);  // sysconf failed (-1 is < 4 too)
  EXPECT_EQ(AutoIoThreads(-1), 1);
  EXPECT_EQ(AutoIoThreads(1), 1);
  EXPECT_EQ(AutoIoThreads(2), 1);
  EXPECT_EQ(AutoIoThreads(3), 1);
  EXPECT_EQ(AutoIoThreads(4), 3);
  EXPECT_EQ(AutoIoThreads(8), 7);
  EXPECT_EQ(AutoIoThreads(64), 63);
  EXPECT_EQ(AutoIoThreads(512), 128);  // the most io-threads takes
}

TEST(BytesToHumanTest, AsRedis) {
  EXPECT_EQ(BytesToHuman(0), "0B");
  EXPECT_EQ(BytesToHuman(1023), "1023B");
  EXPECT_EQ(BytesToHuman(1024), "1.00K");
  EXPECT_EQ(BytesToHuman(1536), "1.50K");
  EXPECT_EQ(BytesToHuman(64ull << 20), "64.00M");
  EXPECT_EQ(BytesToHuman(3ull << 30), "3.00G");
  EXPECT_EQ(BytesToHuman(2ull << 40), "2.00T");
  EXPECT_EQ(BytesToHuman(5ull << 50), "5.00P");
  EXPECT_EQ(BytesToHuman(4096ull << 50), "4096.00P");
}

// ---------------- COMMAND ----------------

// COMMAND INFO entries as redis-server 7.0.15 sends them (RESP2).
struct ExpectedInfo {
  const char* name;
  const char* resp;
};
const ExpectedInfo kRedisCommandInfo[] = {
    {"ping",
     "*10\r\n$4\r\nping\r\n:-1\r\n*1\r\n+fast\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@fast\r\n+@connection\r\n*2\r\n$25\r\nrequest_policy:all_shards\r\n$29\r\nresponse_policy:all_succeeded\r\n*0\r\n*0\r\n"},
    {"echo",
     "*10\r\n$4\r\necho\r\n:2\r\n*3\r\n+loading\r\n+stale\r\n+fast\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@fast\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n"},
    {"quit",
     "*10\r\n$4\r\nquit\r\n:-1\r\n*6\r\n+noscript\r\n+loading\r\n+stale\r\n+fast\r\n+no_auth\r\n+allow_busy\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@fast\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n"},
    {"reset",
     "*10\r\n$5\r\nreset\r\n:1\r\n*6\r\n+noscript\r\n+loading\r\n+stale\r\n+fast\r\n+no_auth\r\n+allow_busy\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@fast\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n"},
    {"hello",
     "*10\r\n$5\r\nhello\r\n:-1\r\n*6\r\n+noscript\r\n+loading\r\n+stale\r\n+fast\r\n+no_auth\r\n+allow_busy\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@fast\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n"},
    {"auth",
     "*10\r\n$4\r\nauth\r\n:-2\r\n*6\r\n+noscript\r\n+loading\r\n+stale\r\n+fast\r\n+no_auth\r\n+allow_busy\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@fast\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n"},
    {"multi",
     "*10\r\n$5\r\nmulti\r\n:1\r\n*5\r\n+noscript\r\n+loading\r\n+stale\r\n+fast\r\n+allow_busy\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@fast\r\n+@transaction\r\n*0\r\n*0\r\n*0\r\n"},
    {"exec",
     "*10\r\n$4\r\nexec\r\n:1\r\n*4\r\n+noscript\r\n+loading\r\n+stale\r\n+skip_slowlog\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@slow\r\n+@transaction\r\n*0\r\n*0\r\n*0\r\n"},
    {"discard",
     "*10\r\n$7\r\ndiscard\r\n:1\r\n*5\r\n+noscript\r\n+loading\r\n+stale\r\n+fast\r\n+allow_busy\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@fast\r\n+@transaction\r\n*0\r\n*0\r\n*0\r\n"},
    {"watch",
     "*10\r\n$5\r\nwatch\r\n:-2\r\n*5\r\n+noscript\r\n+loading\r\n+stale\r\n+fast\r\n+allow_busy\r\n:1\r\n:-1\r\n:1\r\n*2\r\n+@fast\r\n+@transaction\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*1\r\n+RO\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:-1\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n"},
    {"unwatch",
     "*10\r\n$7\r\nunwatch\r\n:1\r\n*5\r\n+noscript\r\n+loading\r\n+stale\r\n+fast\r\n+allow_busy\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@fast\r\n+@transaction\r\n*0\r\n*0\r\n*0\r\n"},
    {"info",
     "*10\r\n$4\r\ninfo\r\n:-1\r\n*2\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@slow\r\n+@dangerous\r\n*3\r\n$23\r\nnondeterministic_output\r\n$25\r\nrequest_policy:all_shards\r\n$23\r\nresponse_policy:special\r\n*0\r\n*0\r\n"},
    {"time",
     "*10\r\n$4\r\ntime\r\n:1\r\n*3\r\n+loading\r\n+stale\r\n+fast\r\n:0\r\n:0\r\n:0\r\n*1\r\n+@fast\r\n*1\r\n$23\r\nnondeterministic_output\r\n*0\r\n*0\r\n"},
    {"role",
     "*10\r\n$4\r\nrole\r\n:1\r\n*4\r\n+noscript\r\n+loading\r\n+stale\r\n+fast\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@admin\r\n+@fast\r\n+@dangerous\r\n*0\r\n*0\r\n*0\r\n"},
    {"lastsave",
     "*10\r\n$8\r\nlastsave\r\n:1\r\n*3\r\n+loading\r\n+stale\r\n+fast\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@admin\r\n+@fast\r\n+@dangerous\r\n*1\r\n$23\r\nnondeterministic_output\r\n*0\r\n*0\r\n"},
    {"lolwut",
     "*10\r\n$6\r\nlolwut\r\n:-1\r\n*2\r\n+readonly\r\n+fast\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@read\r\n+@fast\r\n*0\r\n*0\r\n*0\r\n"},
    {"save",
     "*10\r\n$4\r\nsave\r\n:1\r\n*4\r\n+admin\r\n+noscript\r\n+no_async_loading\r\n+no_multi\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@admin\r\n+@slow\r\n+@dangerous\r\n*0\r\n*0\r\n*0\r\n"},
    {"bgsave",
     "*10\r\n$6\r\nbgsave\r\n:-1\r\n*3\r\n+admin\r\n+noscript\r\n+no_async_loading\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@admin\r\n+@slow\r\n+@dangerous\r\n*0\r\n*0\r\n*0\r\n"},
    {"shutdown",
     "*10\r\n$8\r\nshutdown\r\n:-1\r\n*6\r\n+admin\r\n+noscript\r\n+loading\r\n+stale\r\n+no_multi\r\n+allow_busy\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@admin\r\n+@slow\r\n+@dangerous\r\n*0\r\n*0\r\n*0\r\n"},
    {"debug",
     "*10\r\n$5\r\ndebug\r\n:-2\r\n*4\r\n+admin\r\n+noscript\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@admin\r\n+@slow\r\n+@dangerous\r\n*0\r\n*0\r\n*0\r\n"},
    {"get",
     "*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n"},
    {"mset",
     "*10\r\n$4\r\nmset\r\n:-3\r\n*2\r\n+write\r\n+denyoom\r\n:1\r\n:-1\r\n:2\r\n*3\r\n+@write\r\n+@string\r\n+@slow\r\n*2\r\n$26\r\nrequest_policy:multi_shard\r\n$29\r\nresponse_policy:all_succeeded\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+OW\r\n+update\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:-1\r\n$7\r\nkeystep\r\n:2\r\n$5\r\nlimit\r\n:0\r\n*0\r\n"},
    {"del",
     "*10\r\n$3\r\ndel\r\n:-2\r\n*1\r\n+write\r\n:1\r\n:-1\r\n:1\r\n*3\r\n+@keyspace\r\n+@write\r\n+@slow\r\n*2\r\n$26\r\nrequest_policy:multi_shard\r\n$23\r\nresponse_policy:agg_sum\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RM\r\n+delete\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:-1\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n"},
    {"rename",
     "*10\r\n$6\r\nrename\r\n:3\r\n*1\r\n+write\r\n:1\r\n:2\r\n:1\r\n*3\r\n+@keyspace\r\n+@write\r\n+@slow\r\n*0\r\n*2\r\n*6\r\n$5\r\nflags\r\n*3\r\n+RW\r\n+access\r\n+delete\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*6\r\n$5\r\nflags\r\n*2\r\n+OW\r\n+update\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:2\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n"},
    {"client|id",
     "*10\r\n$9\r\nclient|id\r\n:2\r\n*3\r\n+noscript\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@slow\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n"},
    {"client|setname",
     "*10\r\n$14\r\nclient|setname\r\n:3\r\n*3\r\n+noscript\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@slow\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n"},
    {"client|getname",
     "*10\r\n$14\r\nclient|getname\r\n:2\r\n*3\r\n+noscript\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@slow\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n"},
    {"client|list",
     "*10\r\n$11\r\nclient|list\r\n:-2\r\n*4\r\n+admin\r\n+noscript\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*4\r\n+@admin\r\n+@slow\r\n+@dangerous\r\n+@connection\r\n*1\r\n$23\r\nnondeterministic_output\r\n*0\r\n*0\r\n"},
    {"client|info",
     "*10\r\n$11\r\nclient|info\r\n:2\r\n*3\r\n+noscript\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@slow\r\n+@connection\r\n*1\r\n$23\r\nnondeterministic_output\r\n*0\r\n*0\r\n"},
    {"client|kill",
     "*10\r\n$11\r\nclient|kill\r\n:-3\r\n*4\r\n+admin\r\n+noscript\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*4\r\n+@admin\r\n+@slow\r\n+@dangerous\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n"},
    {"client|no-evict",
     "*10\r\n$15\r\nclient|no-evict\r\n:3\r\n*4\r\n+admin\r\n+noscript\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*4\r\n+@admin\r\n+@slow\r\n+@dangerous\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n"},
    {"client|reply",
     "*10\r\n$12\r\nclient|reply\r\n:3\r\n*3\r\n+noscript\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@slow\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n"},
    {"client|help",
     "*10\r\n$11\r\nclient|help\r\n:2\r\n*2\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@slow\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n"},
    {"config|get",
     "*10\r\n$10\r\nconfig|get\r\n:-3\r\n*4\r\n+admin\r\n+noscript\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@admin\r\n+@slow\r\n+@dangerous\r\n*0\r\n*0\r\n*0\r\n"},
    {"config|set",
     "*10\r\n$10\r\nconfig|set\r\n:-4\r\n*4\r\n+admin\r\n+noscript\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@admin\r\n+@slow\r\n+@dangerous\r\n*2\r\n$24\r\nrequest_policy:all_nodes\r\n$29\r\nresponse_policy:all_succeeded\r\n*0\r\n*0\r\n"},
    {"config|resetstat",
     "*10\r\n$16\r\nconfig|resetstat\r\n:2\r\n*4\r\n+admin\r\n+noscript\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@admin\r\n+@slow\r\n+@dangerous\r\n*0\r\n*0\r\n*0\r\n"},
    {"config|rewrite",
     "*10\r\n$14\r\nconfig|rewrite\r\n:2\r\n*4\r\n+admin\r\n+noscript\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@admin\r\n+@slow\r\n+@dangerous\r\n*0\r\n*0\r\n*0\r\n"},
    {"config|help",
     "*10\r\n$11\r\nconfig|help\r\n:2\r\n*2\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*1\r\n+@slow\r\n*0\r\n*0\r\n*0\r\n"},
    {"command|count",
     "*10\r\n$13\r\ncommand|count\r\n:2\r\n*2\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@slow\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n"},
    {"command|docs",
     "*10\r\n$12\r\ncommand|docs\r\n:-2\r\n*2\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@slow\r\n+@connection\r\n*1\r\n$29\r\nnondeterministic_output_order\r\n*0\r\n*0\r\n"},
    {"command|getkeys",
     "*10\r\n$15\r\ncommand|getkeys\r\n:-4\r\n*2\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@slow\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n"},
    {"command|help",
     "*10\r\n$12\r\ncommand|help\r\n:2\r\n*2\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@slow\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n"},
    {"command|info",
     "*10\r\n$12\r\ncommand|info\r\n:-2\r\n*2\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@slow\r\n+@connection\r\n*1\r\n$29\r\nnondeterministic_output_order\r\n*0\r\n*0\r\n"},
    {"command|list",
     "*10\r\n$12\r\ncommand|list\r\n:-2\r\n*2\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@slow\r\n+@connection\r\n*1\r\n$29\r\nnondeterministic_output_order\r\n*0\r\n*0\r\n"},
    {"memory|usage",
     "*10\r\n$12\r\nmemory|usage\r\n:-3\r\n*1\r\n+readonly\r\n:2\r\n:2\r\n:1\r\n*2\r\n+@read\r\n+@slow\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*1\r\n+RO\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:2\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n"},
    {"memory|stats",
     "*10\r\n$12\r\nmemory|stats\r\n:2\r\n*0\r\n:0\r\n:0\r\n:0\r\n*1\r\n+@slow\r\n*3\r\n$23\r\nnondeterministic_output\r\n$25\r\nrequest_policy:all_shards\r\n$23\r\nresponse_policy:special\r\n*0\r\n*0\r\n"},
    {"memory|doctor",
     "*10\r\n$13\r\nmemory|doctor\r\n:2\r\n*0\r\n:0\r\n:0\r\n:0\r\n*1\r\n+@slow\r\n*3\r\n$23\r\nnondeterministic_output\r\n$25\r\nrequest_policy:all_shards\r\n$23\r\nresponse_policy:special\r\n*0\r\n*0\r\n"},
    {"memory|help",
     "*10\r\n$11\r\nmemory|help\r\n:2\r\n*2\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*1\r\n+@slow\r\n*0\r\n*0\r\n*0\r\n"},
};

TEST_F(ServerFamilyTest, CommandInfoMatchesRedis) {
  for (const ExpectedInfo& e : kRedisCommandInfo)
    EXPECT_EQ(h.Run({"COMMAND", "INFO", e.name}), std::string("*1\r\n") + e.resp) << e.name;
}

TEST_F(ServerFamilyTest, CommandInfoResp3) {
  h.client().resp = 3;
  // As redis-server 7.0.15: sets for flags, categories, tips and key specs.
  EXPECT_EQ(h.Run({"COMMAND", "INFO", "get"}),
            "*1\r\n*10\r\n$3\r\nget\r\n:2\r\n~2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n~3\r\n"
            "+@read\r\n+@string\r\n+@fast\r\n~0\r\n~1\r\n%3\r\n$5\r\nflags\r\n~2\r\n+RO\r\n"
            "+access\r\n$12\r\nbegin_search\r\n%2\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n"
            "%1\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n%2\r\n$4\r\ntype\r\n$5\r\nrange\r\n"
            "$4\r\nspec\r\n%3\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n"
            ":0\r\n~0\r\n");
  EXPECT_EQ(h.Run({"COMMAND", "INFO", "nope"}), "*1\r\n_\r\n");
}

TEST_F(ServerFamilyTest, CommandInfoContainerListsSubcommands) {
  std::string reply = h.Run({"COMMAND", "INFO", "config"});
  EXPECT_EQ(reply.rfind("*1\r\n*10\r\n$6\r\nconfig\r\n:-2\r\n*0\r\n:0\r\n:0\r\n:0\r\n*1\r\n"
                        "+@slow\r\n*0\r\n*0\r\n*5\r\n*10\r\n$10\r\nconfig|get\r\n",
                        0),
            0u)
      << reply;
  EXPECT_NE(reply.find("$16\r\nconfig|resetstat\r\n"), std::string::npos);
}

TEST_F(ServerFamilyTest, CommandInfoMultipleAndUnknown) {
  std::string get = h.Run({"COMMAND", "INFO", "get"}).substr(4);
  std::string set = h.Run({"COMMAND", "INFO", "set"}).substr(4);
  EXPECT_EQ(h.Run({"COMMAND", "INFO", "GET", "nosuchcommand", "set", "client|nope"}),
            "*4\r\n" + get + kNil + set + kNil);
}

TEST_F(ServerFamilyTest, CommandAllAndCount) {
  size_t n = h.server().commands().All().size();
  EXPECT_EQ(h.Run({"COMMAND", "COUNT"}), Int(static_cast<int64_t>(n)));
  EXPECT_EQ(h.Run({"COMMAND"}).rfind("*" + std::to_string(n) + "\r\n*10\r\n", 0), 0u);
  EXPECT_EQ(h.Run({"COMMAND", "INFO"}), h.Run({"COMMAND"}));
  EXPECT_EQ(h.Run({"COMMAND", "COUNT", "x"}), WrongArgs("command|count"));
}

TEST_F(ServerFamilyTest, CommandDocs) {
  EXPECT_EQ(h.Run({"COMMAND", "DOCS", "get"}),
            "*2\r\n$3\r\nget\r\n*6\r\n$7\r\nsummary\r\n$22\r\nGet the value of a key\r\n"
            "$5\r\nsince\r\n$5\r\n1.0.0\r\n$5\r\ngroup\r\n$6\r\nstring\r\n");
  EXPECT_EQ(h.Run({"COMMAND", "DOCS", "nosuchcommand"}), "*0\r\n");
  EXPECT_EQ(h.Run({"COMMAND", "DOCS", "client|id"}),
            "*2\r\n$9\r\nclient|id\r\n*6\r\n$7\r\nsummary\r\n$48\r\nReturns the client ID for "
            "the current connection\r\n$5\r\nsince\r\n$5\r\n5.0.0\r\n$5\r\ngroup\r\n$10\r\n"
            "connection\r\n");
  std::string memory = h.Run({"COMMAND", "DOCS", "memory"});
  EXPECT_NE(memory.find("$11\r\nsubcommands\r\n*12\r\n$12\r\nmemory|usage\r\n"), std::string::npos)
      << memory;
  h.client().resp = 3;
  EXPECT_EQ(h.Run({"COMMAND", "DOCS", "get"}),
            "%1\r\n$3\r\nget\r\n%3\r\n$7\r\nsummary\r\n$22\r\nGet the value of a key\r\n"
            "$5\r\nsince\r\n$5\r\n1.0.0\r\n$5\r\ngroup\r\n$6\r\nstring\r\n");
  size_t n = h.server().commands().All().size();
  EXPECT_EQ(h.Run({"COMMAND", "DOCS"}).rfind("%" + std::to_string(n) + "\r\n", 0), 0u);
}

TEST_F(ServerFamilyTest, CommandList) {
  std::string all = h.Run({"COMMAND", "LIST"});
  for (const char* name : {"get", "ping", "client", "client|list", "config|get", "exec", "info"})
    EXPECT_NE(all.find(Bulk(name)), std::string::npos) << name;
  EXPECT_EQ(h.Run({"COMMAND", "LIST", "FILTERBY", "ACLCAT", "transaction"}),
            Arr({Bulk("multi"), Bulk("exec"), Bulk("discard"), Bulk("watch"), Bulk("unwatch")}));
  EXPECT_EQ(h.Run({"COMMAND", "LIST", "FILTERBY", "PATTERN", "config*"}),
            Arr({Bulk("config"), Bulk("config|get"), Bulk("config|set"), Bulk("config|resetstat"),
                 Bulk("config|rewrite"), Bulk("config|help")}));
  EXPECT_EQ(h.Run({"COMMAND", "LIST", "FILTERBY", "MODULE", "x"}), "*0\r\n");
  EXPECT_EQ(h.Run({"COMMAND", "LIST", "FILTERBY", "FOO", "x"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"COMMAND", "LIST", "FOO"}), kSyntaxErr);
}

TEST_F(ServerFamilyTest, CommandGetKeys) {
  EXPECT_EQ(h.Run({"COMMAND", "GETKEYS", "mset", "a", "b", "c", "d"}), Arr({Bulk("a"), Bulk("c")}));
  EXPECT_EQ(h.Run({"COMMAND", "GETKEYS", "GET", "k"}), Arr({Bulk("k")}));
  EXPECT_EQ(h.Run({"COMMAND", "GETKEYS", "rename", "a", "b"}), Arr({Bulk("a"), Bulk("b")}));
  EXPECT_EQ(h.Run({"COMMAND", "GETKEYS", "memory", "usage", "k"}), Arr({Bulk("k")}));
  EXPECT_EQ(h.Run({"COMMAND", "GETKEYS", "nope", "a"}), Err("ERR Invalid command specified"));
  EXPECT_EQ(h.Run({"COMMAND", "GETKEYS", "ping", "a"}),
            Err("ERR The command has no key arguments"));
  EXPECT_EQ(h.Run({"COMMAND", "GETKEYS", "get", "a", "b"}),
            Err("ERR Invalid number of arguments specified for command"));
  EXPECT_EQ(h.Run({"COMMAND", "GETKEYS", "get"}), WrongArgs("command|getkeys"));
}

TEST_F(ServerFamilyTest, CommandErrorsAndHelp) {
  EXPECT_EQ(h.Run({"COMMAND", "FOO"}), Err("ERR unknown subcommand 'FOO'. Try COMMAND HELP."));
  EXPECT_EQ(h.Run({"COMMAND", "HELP"}).rfind(
                "*19\r\n+COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n", 0),
            0u);
}

// ---------------- CONFIG ----------------

TEST_F(ServerFamilyTest, ConfigGet) {
  EXPECT_EQ(h.Run({"CONFIG", "GET", "save"}), Arr({Bulk("save"), Bulk("")}));
  EXPECT_EQ(h.Run({"CONFIG", "GET", "appendonly"}), Arr({Bulk("appendonly"), Bulk("no")}));
  EXPECT_EQ(h.Run({"CONFIG", "GET", "SAVE"}), Arr({Bulk("SAVE"), Bulk("")}))
      << "an exact name is echoed as given, as Redis";
  EXPECT_EQ(h.Run({"CONFIG", "GET", "databases"}), Arr({Bulk("databases"), Bulk("16")}));
  EXPECT_EQ(h.Run({"CONFIG", "GET", "nosuchparam"}), "*0\r\n");
  EXPECT_EQ(h.Run({"CONFIG", "GET", "maxmemory*"}),
            Arr({Bulk("maxmemory"), Bulk("0"), Bulk("maxmemory-policy"), Bulk("allkeys-lru"),
                 Bulk("maxmemory-samples"), Bulk("5")}));
  EXPECT_EQ(h.Run({"CONFIG", "GET", "hz", "save", "hz", "h?"}),
            Arr({Bulk("hz"), Bulk("10"), Bulk("save"), Bulk("")}))
      << "each parameter once";
  std::string all = h.Run({"CONFIG", "GET", "*"});
  EXPECT_EQ(all.rfind("*" + std::to_string(2 * Config::Specs().size()) + "\r\n", 0), 0u);
  EXPECT_EQ(h.Run({"CONFIG", "GET"}), WrongArgs("config|get"));
}

TEST_F(ServerFamilyTest, ConfigGetResp3IsAMap) {
  h.client().resp = 3;
  EXPECT_EQ(h.Run({"CONFIG", "GET", "maxmemory"}), "%1\r\n" + Bulk("maxmemory") + Bulk("0"));
  EXPECT_EQ(h.Run({"CONFIG", "GET", "nope"}), "%0\r\n");
}

TEST_F(ServerFamilyTest, ConfigSet) {
  EXPECT_EQ(h.Run({"CONFIG", "SET", "maxmemory", "10mb"}), kOk);
  EXPECT_EQ(h.Run({"CONFIG", "GET", "maxmemory"}), Arr({Bulk("maxmemory"), Bulk("10485760")}));
  EXPECT_EQ(h.store().GetStats().maxmemory, 10485760u) << "the change hook reached the store";
  EXPECT_EQ(h.Run({"CONFIG", "SET", "MAXMEMORY", "200mb"}), kOk);
  EXPECT_EQ(h.Run({"CONFIG", "GET", "maxmemory"}), Arr({Bulk("maxmemory"), Bulk("209715200")}));
  // The harness's segment was reserved for 256 MB: more is refused, the value stays.
  EXPECT_EQ(h.Run({"CONFIG", "SET", "maxmemory", "1gb"}).rfind(
                "-ERR CONFIG SET failed (possibly related to argument 'maxmemory') - maxmemory "
                "1073741824 is more than this node can honour: its segment was reserved at start "
                "for at most 268435456 bytes (256.00M)",
                0),
            0u);
  EXPECT_EQ(h.Run({"CONFIG", "GET", "maxmemory"}), Arr({Bulk("maxmemory"), Bulk("209715200")}));
  EXPECT_EQ(h.Run({"CONFIG", "SET", "maxmemory", "20mb", "maxmemory-policy", "noeviction"}), kOk);
  EXPECT_EQ(h.Run({"CONFIG", "GET", "maxmemory", "maxmemory-policy"}),
            Arr({Bulk("maxmemory"), Bulk("20971520"), Bulk("maxmemory-policy"),
                 Bulk("noeviction")}));
  EXPECT_TRUE(h.server().hot().noeviction.load());
}

TEST_F(ServerFamilyTest, ConfigSetErrors) {
  EXPECT_EQ(h.Run({"CONFIG", "SET", "nosuchparam", "1"}),
            Err("ERR Unknown option or number of arguments for CONFIG SET - 'nosuchparam'"));
  EXPECT_EQ(h.Run({"CONFIG", "SET", "hz", "abc", "foo", "1"}),
            Err("ERR Unknown option or number of arguments for CONFIG SET - 'foo'"))
      << "names are checked before values";
  EXPECT_EQ(h.Run({"CONFIG", "SET", "maxmemory", "abc"}),
            Err("ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument "
                "must be a memory value"));
  EXPECT_EQ(h.Run({"CONFIG", "SET", "hz", "abc"}),
            Err("ERR CONFIG SET failed (possibly related to argument 'hz') - argument couldn't "
                "be parsed into an integer"));
  EXPECT_EQ(h.Run({"CONFIG", "SET", "appendonly", "maybe"}),
            Err("ERR CONFIG SET failed (possibly related to argument 'appendonly') - argument "
                "must be 'yes' or 'no'"));
  EXPECT_EQ(h.Run({"CONFIG", "SET", "port", "1"}),
            Err("ERR CONFIG SET failed (possibly related to argument 'port') - can't set "
                "immutable config"));
  EXPECT_EQ(h.Run({"CONFIG", "SET", "hz", "10", "HZ", "11"}),
            Err("ERR CONFIG SET failed (possibly related to argument 'HZ') - duplicate "
                "parameter"));
  EXPECT_EQ(h.Run({"CONFIG", "SET", "maxmemory", "1", "hz"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"CONFIG", "SET", "maxmemory"}), WrongArgs("config|set"));
  EXPECT_EQ(h.Run({"CONFIG", "FOO"}), Err("ERR unknown subcommand 'FOO'. Try CONFIG HELP."));
  EXPECT_EQ(h.Run({"CONFIG"}), WrongArgs("config"));
}

TEST_F(ServerFamilyTest, ConfigSetIsAllOrNothing) {
  EXPECT_EQ(h.Run({"CONFIG", "SET", "hz", "20", "maxmemory", "5mb", "maxmemory-samples", "0"}),
            Err("ERR CONFIG SET failed (possibly related to argument 'maxmemory-samples') - "
                "argument must be between 1 and 64 inclusive"));
  EXPECT_EQ(h.Run({"CONFIG", "GET", "hz", "maxmemory"}),
            Arr({Bulk("hz"), Bulk("10"), Bulk("maxmemory"), Bulk("0")}));
}

TEST_F(ServerFamilyTest, ConfigSetRequirepassKeepsTheSetterIn) {
  EXPECT_EQ(h.Run({"CONFIG", "SET", "requirepass", "pw"}), kOk);
  EXPECT_EQ(h.Run({"PING"}), "+PONG\r\n");
  ClientState other;
  protocol::StringSink sink;
  protocol::ReplyBuilder rb(&sink);
  std::vector<std::string_view> ping = {"PING"};
  Dispatch(h.server(), other, rb, ping, kNow);
  EXPECT_EQ(sink.out, "-NOAUTH Authentication required.\r\n");
  EXPECT_EQ(h.Run({"CONFIG", "SET", "requirepass", ""}), kOk);
}

TEST_F(ServerFamilyTest, ConfigResetStat) {
  h.Run({"SET", "k", "v"});
  h.Run({"GET", "k"});
  h.Run({"GET", "missing"});
  EXPECT_EQ(h.Run({"CONFIG", "RESETSTAT"}), kOk);
  auto f = InfoFields(Info({"stats"}));
  EXPECT_EQ(f["keyspace_hits"], "0");
  EXPECT_EQ(f["keyspace_misses"], "0");
  EXPECT_EQ(f["total_commands_processed"], "1") << "only this INFO";
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("v")) << "RESETSTAT does not touch data";
  EXPECT_EQ(h.Run({"CONFIG", "RESETSTAT", "x"}), WrongArgs("config|resetstat"));
}

TEST_F(ServerFamilyTest, ConfigRewriteAndHelp) {
  EXPECT_EQ(h.Run({"CONFIG", "REWRITE"}), Err("ERR The server is running without a config file"));
  h.server().config_file = "/etc/kvpool.conf";
  EXPECT_EQ(h.Run({"CONFIG", "REWRITE"}),
            Err("ERR Rewriting config file: kvpool does not rewrite config files; edit the file "
                "instead"));
  EXPECT_EQ(h.Run({"CONFIG", "HELP"}).rfind(
                "*11\r\n+CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n", 0),
            0u);
}

// ---------------- TIME ROLE LASTSAVE LOLWUT SAVE ----------------

TEST_F(ServerFamilyTest, Time) {
  timespec before, after;
  clock_gettime(CLOCK_REALTIME, &before);
  std::string reply = h.Run({"TIME"});
  clock_gettime(CLOCK_REALTIME, &after);
  ASSERT_EQ(reply.rfind("*2\r\n$", 0), 0u) << reply;
  size_t p = reply.find("\r\n", 4) + 2;
  size_t e = reply.find("\r\n", p);
  int64_t secs = std::stoll(reply.substr(p, e - p));
  p = reply.find("\r\n", e + 2) + 2;
  e = reply.find("\r\n", p);
  int64_t usecs = std::stoll(reply.substr(p, e - p));
  EXPECT_GE(usecs, 0);
  EXPECT_LT(usecs, 1'000'000);
  EXPECT_GE(secs, before.tv_sec);
  EXPECT_LE(secs, after.tv_sec);
  EXPECT_EQ(h.Run({"TIME", "x"}), WrongArgs("time"));
}

TEST_F(ServerFamilyTest, RoleLastSaveLolwut) {
  EXPECT_EQ(h.Run({"ROLE"}), "*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n");
  EXPECT_EQ(h.Run({"LASTSAVE"}), Int((kNow - 90'000) / 1000));
  EXPECT_EQ(h.Run({"LOLWUT"}), Bulk("kvpool ver. 0.1.0 (Redis 7.0.15 compatible)\n"));
}

TEST_F(ServerFamilyTest, SaveAndBgsaveAreErrors) {
  const std::string err = Err("ERR kvpool is a cache and does not save data to disk");
  EXPECT_EQ(h.Run({"SAVE"}), err);
  EXPECT_EQ(h.Run({"BGSAVE"}), err);
  EXPECT_EQ(h.Run({"BGSAVE", "SCHEDULE"}), err);
}

TEST_F(ServerFamilyTest, Debug) {
  EXPECT_EQ(h.Run({"DEBUG", "SLEEP", "0"}), kOk);
  EXPECT_EQ(h.Run({"DEBUG", "sleep", "0.001"}), kOk);
  EXPECT_EQ(h.Run({"DEBUG", "SLEEP", "x"}), Err("ERR value is not a valid float"));
  EXPECT_EQ(h.Run({"DEBUG", "FOO"}),
            Err("ERR unknown subcommand or wrong number of arguments for 'FOO'. Try DEBUG HELP."));
  EXPECT_EQ(h.Run({"DEBUG", "SLEEP"}),
            Err("ERR unknown subcommand or wrong number of arguments for 'SLEEP'. Try DEBUG "
                "HELP."));
  EXPECT_EQ(h.Run({"DEBUG", "HELP"}).rfind("*5\r\n+DEBUG <subcommand>", 0), 0u);
}

// ---------------- MEMORY ----------------

TEST_F(ServerFamilyTest, MemoryUsage) {
  EXPECT_EQ(h.Run({"MEMORY", "USAGE", "missing"}), kNil);
  h.Run({"SET", "small", "v"});
  h.Run({"SET", "big", std::string(100'000, 'x')});
  std::string small = h.Run({"MEMORY", "USAGE", "small"});
  ASSERT_EQ(small[0], ':') << small;
  EXPECT_GT(std::stoll(small.substr(1)), 0);
  std::string big = h.Run({"MEMORY", "USAGE", "big"});
  ASSERT_EQ(big[0], ':') << big;
  EXPECT_GE(std::stoll(big.substr(1)), 100'000);
  EXPECT_LT(std::stoll(big.substr(1)), 200'000);
  EXPECT_EQ(h.Run({"MEMORY", "USAGE", "big", "SAMPLES", "5"}), big);
  EXPECT_EQ(h.Run({"memory", "usage", "big", "samples", "0"}), big);
  EXPECT_EQ(h.Run({"MEMORY", "USAGE", "big", "SAMPLES"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"MEMORY", "USAGE", "big", "SAMPLES", "x"}),
            Err("ERR value is not an integer or out of range"));
  EXPECT_EQ(h.Run({"MEMORY", "USAGE", "big", "SAMPLES", "-1"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"MEMORY", "USAGE", "big", "FOO", "5"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"MEMORY", "USAGE"}), WrongArgs("memory|usage"));
  h.client().resp = 3;
  EXPECT_EQ(h.Run({"MEMORY", "USAGE", "missing"}), "_\r\n");
}

TEST_F(ServerFamilyTest, MemoryStatsDoctorHelp) {
  h.Run({"SET", "k", "v"});
  std::string stats = h.Run({"MEMORY", "STATS"});
  EXPECT_EQ(stats.rfind("*24\r\n$14\r\npeak.allocated\r\n:", 0), 0u) << stats;
  EXPECT_NE(stats.find("$14\r\noverhead.total\r\n:"), std::string::npos) << stats;
  EXPECT_NE(stats.find("$10\r\nkeys.count\r\n:1\r\n"), std::string::npos) << stats;
  std::string doctor = BulkPayload(h.Run({"MEMORY", "DOCTOR"}));
  EXPECT_NE(doctor.find("Sam"), std::string::npos) << doctor;
  EXPECT_EQ(h.Run({"MEMORY", "HELP"}).rfind("*13\r\n+MEMORY <subcommand>", 0), 0u);
  EXPECT_EQ(h.Run({"MEMORY", "PURGE"}), "+OK\r\n");
  EXPECT_EQ(h.Run({"MEMORY", "PURGE", "now"}), WrongArgs("memory|purge"));
  std::string malloc_stats = BulkPayload(h.Run({"MEMORY", "MALLOC-STATS"}));
  EXPECT_NE(malloc_stats.find("in_use: "), std::string::npos) << malloc_stats;
  EXPECT_EQ(h.Run({"MEMORY", "FOO"}), Err("ERR unknown subcommand 'FOO'. Try MEMORY HELP."));
  EXPECT_EQ(h.Run({"MEMORY"}), WrongArgs("memory"));
}

// ---------------- SHUTDOWN ----------------

TEST_F(ServerFamilyTest, ShutdownWithoutAServerIsAnError) {
  EXPECT_EQ(h.Run({"SHUTDOWN"}), Err("ERR Errors trying to SHUTDOWN. Check logs."));
  EXPECT_FALSE(h.client().close_after_reply);
}

TEST_F(ServerFamilyTest, ShutdownClosesWithoutAReply) {
  int requested = 0;
  h.server().request_shutdown = [&requested] { ++requested; };
  EXPECT_EQ(h.Run({"SHUTDOWN", "ABORT"}), Err("ERR No shutdown in progress."));
  EXPECT_EQ(h.Run({"SHUTDOWN", "FOO"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"SHUTDOWN", "NOSAVE", "SAVE"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"SHUTDOWN", "NOW", "ABORT"}), kSyntaxErr);
  EXPECT_EQ(requested, 0);
  EXPECT_EQ(h.Run({"SHUTDOWN", "NOSAVE", "NOW", "FORCE"}), "");
  EXPECT_EQ(requested, 1);
  EXPECT_TRUE(h.client().close_after_reply);
}

}  // namespace
}  // namespace kvpool
