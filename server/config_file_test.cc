// Reading redis.conf files (server/config_file.h): Redis directives used,
// ignored (quietly, or with a warning when kvpool cannot honour them) or
// refused with the file and line; include (relative paths, globs, loops);
// --check-config's listing; the client-output-buffer-limit classes of a
// stock file; runtime checks (CONFIG SET refusing what the node cannot
// honour); the list of Redis's directive names.
#include "server/config_file.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "server/config.h"
#include "server/redis_directives.h"

namespace kvpool {
namespace {

// A directory in the test temp dir with files in it, removed at the end.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "kvpool_confdir_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    EXPECT_NE(mkdtemp(buf.data()), nullptr);
    path_ = buf.data();
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  // Writes `text` to `name` (in this directory); returns its path.
  std::string Write(const std::string& name, const std::string& text) const {
    std::filesystem::create_directories(std::filesystem::path(path_ + "/" + name).parent_path());
    std::ofstream(path_ + "/" + name) << text;
    return path_ + "/" + name;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// "outcome name [warning]" of each record, in order.
std::vector<std::string> Outcomes(const ConfigLoader& l) {
  std::vector<std::string> out;
  for (const DirectiveRecord& r : l.records()) {
    const char* o = r.outcome == DirectiveOutcome::kUsed      ? "used "
                    : r.outcome == DirectiveOutcome::kIgnored ? "ignored "
                                                              : "invalid ";
    out.push_back(o + r.name + (r.warning ? " warning" : ""));
  }
  return out;
}

TEST(ConfigFileTest, RedisDirectiveIsIgnoredAndTheNodeStarts) {
  TempDir d;
  std::string conf = d.Write("redis.conf",
                             "port 7001\n"
                             "always-show-logo yes\n"
                             "hash-max-listpack-entries 512\n"
                             "lazyfree-lazy-eviction no\n"
                             "SET-PROC-TITLE yes\n"
                             "maxmemory 64mb\n");
  Config c;
  ConfigLoader l(&c);
  Status s = l.LoadFile(conf);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c.Int("port"), 7001);
  EXPECT_EQ(c.Int("maxmemory"), 64 << 20) << "read on past the ignored lines";
  EXPECT_EQ(Outcomes(l), (std::vector<std::string>{
                             "used port", "ignored always-show-logo",
                             "ignored hash-max-listpack-entries", "ignored lazyfree-lazy-eviction",
                             "ignored set-proc-title", "used maxmemory"}));
  EXPECT_EQ(l.records()[1].where, conf + ":2");
  EXPECT_NE(l.records()[1].note.find("no effect here"), std::string::npos);
  // The command line takes them too, as redis-server does.
  ConfigLoader args(&c);
  ASSERT_TRUE(args.LoadArgs({"--always-show-logo", "no", "--port", "7002"}).ok());
  EXPECT_EQ(Outcomes(args), (std::vector<std::string>{"ignored always-show-logo", "used port"}));
  EXPECT_EQ(args.records()[0].where, "command line");
}

TEST(ConfigFileTest, WhatKvpoolCannotHonourIsIgnoredWithAWarning) {
  TempDir d;
  std::string conf = d.Write("redis.conf",
                             "notify-keyspace-events KEA\n"
                             "notify-keyspace-events \"\"\n"
                             "replicaof 10.0.0.1 6379\n"
                             "cluster-enabled no\n"
                             "cluster-enabled yes\n"
                             "loadmodule /usr/lib/redis/modules/redisearch.so\n"
                             "search.timeout 500\n"
                             "unixsocket /run/redis.sock\n"
                             "aclfile \"\"\n"
                             "save \"900 1\"\n"
                             "save \"\"\n");
  Config c;
  ConfigLoader l(&c);
  Status s = l.LoadFile(conf);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Outcomes(l),
            (std::vector<std::string>{
                "ignored notify-keyspace-events warning", "ignored notify-keyspace-events",
                "ignored replicaof warning",
                "ignored cluster-enabled", "ignored cluster-enabled warning",
                "ignored loadmodule warning", "ignored search.timeout warning",
                "ignored unixsocket warning", "ignored aclfile", "used save warning",
                "used save"}));
  EXPECT_NE(l.records()[0].note.find("cannot honour: kvpool publishes no keyspace notifications"),
            std::string::npos)
      << l.records()[0].note;
  EXPECT_NE(l.records()[9].note.find("never writes snapshots"), std::string::npos);
}

TEST(ConfigFileTest, NotARedisDirectiveIsAnErrorNamingFileAndLine) {
  TempDir d;
  std::string conf = d.Write("redis.conf", "port 7001\n# daemonize\n\ndaemonise yes\nport 7002\n");
  Config c;
  Status s = c.LoadFile(conf);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.message(), conf + ":4: 'daemonise': neither a kvpool option nor a Redis directive "
                                "(did you mean 'daemonize'?)");
  EXPECT_EQ(c.Int("port"), 7001) << "reading stopped at the error";
  conf = d.Write("other.conf", "frobnicate 1\n");
  EXPECT_EQ(c.LoadFile(conf).message(),
            conf + ":1: 'frobnicate': neither a kvpool option nor a Redis directive");
  // A bad value names the file and line, not CONFIG SET.
  conf = d.Write("value.conf", "port 7001\nmaxmemory-policy allkeys-lfu\n");
  s = c.LoadFile(conf);
  EXPECT_EQ(s.message().rfind(conf + ":2: 'maxmemory-policy': argument(s) must be one of", 0), 0u)
      << s.message();
  EXPECT_EQ(s.message().find("CONFIG SET"), std::string::npos);
  // ACL users cannot be ignored: the node would let in whom they keep out.
  conf = d.Write("acl.conf", "user alice on >secret ~* +@all\n");
  s = c.LoadFile(conf);
  EXPECT_EQ(s.message().rfind(conf + ":1: 'user': Redis directive kvpool cannot honour", 0), 0u)
      << s.message();
  EXPECT_EQ(s.message().find("secret"), std::string::npos) << "values are not echoed";
  EXPECT_EQ(c.LoadArgs({"--frobnicate", "1"}).message(),
            "'--frobnicate': neither a kvpool option nor a Redis directive");
}

TEST(ConfigFileTest, Include) {
  TempDir d;
  std::string b = d.Write("b.conf", "maxmemory 32mb\nport 7002\n");
  std::string a = d.Write("a.conf", "port 7001\ninclude " + b + "\nhz 20\n");
  Config c;
  ConfigLoader l(&c);
  Status s = l.LoadFile(a);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c.Int("port"), 7002) << "the included file's line comes later";
  EXPECT_EQ(c.Int("maxmemory"), 32 << 20);
  EXPECT_EQ(c.Int("hz"), 20);
  EXPECT_EQ(Outcomes(l), (std::vector<std::string>{"used port", "used include", "used maxmemory",
                                                   "used port", "used hz"}));
  EXPECT_EQ(l.records()[3].where, b + ":2");
  // An error in an included file names that file and its line.
  d.Write("b.conf", "maxmemory 32mb\nmaxmemory lots\n");
  EXPECT_EQ(c.LoadFile(a).message(), b + ":2: 'maxmemory': argument must be a memory value");
  // A missing one names the include line.
  std::string m = d.Write("m.conf", "include " + d.path() + "/nope.conf\n");
  EXPECT_EQ(c.LoadFile(m).message().rfind(m + ":1: 'include': cannot open config file '" +
                                              d.path() + "/nope.conf': No such file",
                                          0),
            0u)
      << c.LoadFile(m).message();
}

// As Redis: a relative include is relative to the working directory (which
// a `dir` line before it changes), not to the including file.
TEST(ConfigFileTest, IncludeRelativePaths) {
  TempDir d;
  d.Write("conf/b.conf", "port 7005\n");
  std::string a = d.Write("a.conf", "include conf/b.conf\n");
  Config c;
  std::string cwd = std::filesystem::current_path();
  std::filesystem::current_path(d.path());
  Status s = c.LoadFile("a.conf");
  std::filesystem::current_path(cwd);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c.Int("port"), 7005);
  // From elsewhere, "conf/b.conf" is not there...
  EXPECT_NE(c.LoadFile(a).message().find(":1: 'include': cannot open config file 'conf/b.conf'"),
            std::string::npos);
  // ... unless `dir` leads there first.
  std::string with_dir = d.Write("dir.conf", "dir " + d.path() + "\ninclude conf/b.conf\n");
  Config c2;
  s = c2.LoadFile(with_dir);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c2.Int("port"), 7005);
  EXPECT_EQ(c2.String("dir"), std::filesystem::canonical(d.path()).string());
  // A dir that does not exist is an error, as for redis-server.
  std::string bad = d.Write("bad.conf", "dir " + d.path() + "/nope\n");
  EXPECT_EQ(c2.LoadFile(bad).message().rfind(bad + ":1: 'dir': cannot use", 0), 0u);
}

TEST(ConfigFileTest, IncludeGlob) {
  TempDir d;
  d.Write("conf.d/20-b.conf", "hz 30\n");
  d.Write("conf.d/10-a.conf", "hz 20\nport 7003\n");
  std::string a = d.Write("a.conf", "include " + d.path() + "/conf.d/*.conf\n" +
                                        "include " + d.path() + "/empty.d/*.conf\n");
  Config c;
  Status s = c.LoadFile(a);
  ASSERT_TRUE(s.ok()) << s.ToString() << " (a glob matching nothing is no error)";
  EXPECT_EQ(c.Int("hz"), 30) << "files in name order";
  EXPECT_EQ(c.Int("port"), 7003);
}

TEST(ConfigFileTest, IncludeLoopIsAnError) {
  TempDir d;
  std::string a = d.path() + "/a.conf", b = d.path() + "/b.conf";
  d.Write("a.conf", "port 7001\ninclude " + b + "\n");
  d.Write("b.conf", "hz 20\ninclude " + a + "\n");
  Config c;
  EXPECT_EQ(c.LoadFile(a).message(),
            b + ":2: 'include': include loop: " + a + " -> " + b + " -> " + a);
  d.Write("self.conf", "include " + d.path() + "/self.conf\n");
  EXPECT_NE(c.LoadFile(d.path() + "/self.conf").message().find("include loop"),
            std::string::npos);
  // The same file twice, one after the other, is no loop.
  std::string twice = d.Write("twice.conf", "include " + d.Write("x.conf", "hz 11\n") +
                                                "\ninclude " + d.path() + "/x.conf\n");
  EXPECT_TRUE(c.LoadFile(twice).ok());
}

TEST(ConfigFileTest, CheckConfigListsUsedIgnoredAndInvalid) {
  TempDir d;
  std::string conf = d.Write("redis.conf",
                             "port 7001\n"
                             "always-show-logo no\n"
                             "notify-keyspace-events KEA\n"
                             "daemonise yes\n"
                             "maxmemory lots\n"
                             "hz 20\n");
  std::string out_path = d.path() + "/out.txt";
  FILE* out = fopen(out_path.c_str(), "w");
  ASSERT_NE(out, nullptr);
  int rc = CheckConfig({conf, "--tcp-keepalive", "60"}, out);
  fclose(out);
  std::ifstream in(out_path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  EXPECT_EQ(rc, 1) << "something is invalid";
  ASSERT_EQ(lines.size(), 8u);
  auto starts = [&](size_t i, const std::string& prefix) {
    EXPECT_EQ(lines[i].rfind(prefix, 0), 0u) << lines[i];
  };
  starts(0, "used    " + conf + ":1 port");
  starts(1, "ignored " + conf + ":2 always-show-logo: Redis directive with no effect here");
  starts(2, "ignored " + conf + ":3 notify-keyspace-events: warning: Redis directive kvpool "
               "cannot honour");
  starts(3, "invalid " + conf + ":4 daemonise: neither a kvpool option nor a Redis directive");
  starts(4, "invalid " + conf + ":5 maxmemory: argument must be a memory value");
  starts(5, "used    " + conf + ":6 hz");
  starts(6, "used    command line");
  EXPECT_NE(lines[6].find("tcp-keepalive"), std::string::npos);
  EXPECT_EQ(lines[7], "3 used, 2 ignored (1 with a warning), 2 invalid");
  // Nothing invalid: exit code 0.
  conf = d.Write("good.conf", "port 7001\nalways-show-logo no\n");
  out = fopen(out_path.c_str(), "w");
  EXPECT_EQ(CheckConfig({conf}, out), 0);
  fclose(out);
  out = fopen(out_path.c_str(), "w");
  EXPECT_EQ(CheckConfig({d.path() + "/missing.conf"}, out), 1);
  fclose(out);
}

// Every line of Debian's redis.conf is used or ignored: the stock file starts a node.
TEST(ConfigFileTest, DebianRedisConfIsUsedOrIgnored) {
  std::ifstream stock("/etc/redis/redis.conf");
  // Fails, never skips: scripts/install-deps.sh installs redis-server, which ships it.
  ASSERT_TRUE(stock) << "/etc/redis/redis.conf is not installed (Debian's redis-server package)";
  // Its dir (/var/lib/redis) is the redis user's: point it elsewhere, as a user would.
  TempDir d;
  std::string text;
  for (std::string line; std::getline(stock, line);)
    text += (line.rfind("dir ", 0) == 0 ? "dir " + d.path() : line) + "\n";
  Config c;
  ConfigLoader l(&c, /*keep_going=*/true);
  ASSERT_TRUE(l.LoadFile(d.Write("redis.conf", text)).ok());
  for (const DirectiveRecord& r : l.records())
    EXPECT_NE(r.outcome, DirectiveOutcome::kInvalid) << r.where << " " << r.name << ": " << r.note;
  EXPECT_GE(l.Count(DirectiveOutcome::kUsed), 13u);
  EXPECT_EQ(c.Int("port"), 6379);
}

// Its three lines (normal, replica, pubsub) each set their class, as in Redis.
TEST(ConfigFileTest, OutputBufferLimitClassesMerge) {
  Config c;
  ASSERT_TRUE(c.Set("client-output-buffer-limit", "normal 1mb 512kb 10", true).ok());
  ASSERT_TRUE(c.Set("client-output-buffer-limit", "replica 256mb 64mb 60", true).ok());
  ASSERT_TRUE(c.Set("client-output-buffer-limit", "pubsub 32mb 8mb 60", true).ok());
  EXPECT_EQ(c.String("client-output-buffer-limit"),
            "normal 1mb 512kb 10 replica 256mb 64mb 60 pubsub 32mb 8mb 60");
  ASSERT_TRUE(c.Set("client-output-buffer-limit", "slave 1mb 1mb 1 normal 0 0 0", false).ok());
  EXPECT_EQ(c.String("client-output-buffer-limit"), "normal 0 0 0 replica 1mb 1mb 1 pubsub 32mb 8mb 60");
  int64_t h, s, t;
  ASSERT_TRUE(ParseOutputLimit(c.String("client-output-buffer-limit"), &h, &s, &t));
  EXPECT_EQ(h, 0);
  for (const char* bad : {"other 1 1 1", "normal 1 1", "normal x 1 1", "normal 1 1 -1", ""})
    EXPECT_FALSE(c.Set("client-output-buffer-limit", bad, true).ok()) << bad;
}

// OnCheck: what the node cannot honour is refused at run time, and the value stays.
TEST(ConfigFileTest, RuntimeChecksRefuse) {
  Config c;
  ASSERT_TRUE(c.Set("maxmemory", "100mb", true).ok());
  c.OnCheck("maxmemory", [](int64_t num) {
    return num > (100 << 20) ? Status::InvalidArgument("too much") : Status::OK();
  });
  EXPECT_EQ(c.Set("maxmemory", "1gb", false).message(), "too much");
  EXPECT_EQ(c.Int("maxmemory"), 100 << 20);
  EXPECT_TRUE(c.Set("maxmemory", "50mb", false).ok());
  EXPECT_TRUE(c.Set("maxmemory", "1gb", true).ok()) << "start-up values size the segment";
  // CONFIG SET undoing its own changes puts back what was in force, unchecked.
  int changes = 0;
  c.OnChange("maxmemory", [&](const Config&) { ++changes; });
  EXPECT_TRUE(c.Restore("maxmemory", "2gb").ok());
  EXPECT_EQ(c.Int("maxmemory"), int64_t{2} << 30);
  EXPECT_EQ(changes, 1) << "a restore reaches the store through the hooks";
}

// Each ignored name is logged once, at warning level when kvpool cannot honour it.
TEST(ConfigFileTest, IgnoredDirectivesAreLoggedOncePerName) {
  TempDir d;
  std::string conf = d.Write("redis.conf",
                             "always-show-logo no\n"
                             "loadmodule /a.so\n"
                             "loadmodule /b.so\n"
                             "port 7001\n");
  Config c;
  ConfigLoader l(&c);
  ASSERT_TRUE(l.LoadFile(conf).ok());
  std::ostringstream text;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(text);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", sink));
  spdlog::set_level(spdlog::level::info);
  l.LogNotes();
  spdlog::set_default_logger(previous);
  std::string log = text.str();
  EXPECT_NE(log.find("[info] config: 'always-show-logo' ignored (" + conf + ":1)"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("[warning] config: 'loadmodule' ignored (" + conf +
                     ":2, and 1 more): Redis directive kvpool cannot honour"),
            std::string::npos)
      << log;
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 2) << log;
}

// The list of Redis directives: every name Redis 7.0's CONFIG GET * shows
// is known, and those marked as kvpool's own are kvpool options.
TEST(ConfigFileTest, RedisDirectiveList) {
  const char* redis70 =
      "acl-pubsub-default aclfile acllog-max-len active-defrag-cycle-max active-defrag-cycle-min "
      "active-defrag-ignore-bytes active-defrag-max-scan-fields active-defrag-threshold-lower "
      "active-defrag-threshold-upper active-expire-effort activedefrag activerehashing "
      "always-show-logo aof-disable-auto-gc aof-load-truncated aof-rewrite-incremental-fsync "
      "aof-timestamp-enabled aof-use-rdb-preamble aof_rewrite_cpulist appenddirname "
      "appendfilename appendfsync appendonly auto-aof-rewrite-min-size "
      "auto-aof-rewrite-percentage bgsave_cpulist bind bind-source-addr bio_cpulist "
      "busy-reply-threshold client-output-buffer-limit client-query-buffer-limit "
      "cluster-allow-pubsubshard-when-down cluster-allow-reads-when-down "
      "cluster-allow-replica-migration cluster-announce-bus-port cluster-announce-hostname "
      "cluster-announce-ip cluster-announce-port cluster-announce-tls-port cluster-config-file "
      "cluster-enabled cluster-link-sendbuf-limit cluster-migration-barrier cluster-node-timeout "
      "cluster-port cluster-preferred-endpoint-type cluster-replica-no-failover "
      "cluster-replica-validity-factor cluster-require-full-coverage cluster-slave-no-failover "
      "cluster-slave-validity-factor crash-log-enabled crash-memcheck-enabled daemonize "
      "databases dbfilename dir disable-thp dynamic-hz enable-debug-command "
      "enable-module-command enable-protected-configs hash-max-listpack-entries "
      "hash-max-listpack-value hash-max-ziplist-entries hash-max-ziplist-value "
      "hll-sparse-max-bytes hz ignore-warnings io-threads io-threads-do-reads "
      "jemalloc-bg-thread latency-monitor-threshold latency-tracking "
      "latency-tracking-info-percentiles lazyfree-lazy-eviction lazyfree-lazy-expire "
      "lazyfree-lazy-server-del lazyfree-lazy-user-del lazyfree-lazy-user-flush lfu-decay-time "
      "lfu-log-factor list-compress-depth list-max-listpack-size list-max-ziplist-size logfile "
      "loglevel lua-time-limit masterauth masteruser maxclients maxmemory maxmemory-clients "
      "maxmemory-eviction-tenacity maxmemory-policy maxmemory-samples min-replicas-max-lag "
      "min-replicas-to-write min-slaves-max-lag min-slaves-to-write no-appendfsync-on-rewrite "
      "notify-keyspace-events oom-score-adj oom-score-adj-values pidfile port "
      "proc-title-template propagation-error-behavior protected-mode proto-max-bulk-len "
      "rdb-del-sync-files rdb-save-incremental-fsync rdbchecksum rdbcompression "
      "repl-backlog-size repl-backlog-ttl repl-disable-tcp-nodelay repl-diskless-load "
      "repl-diskless-sync repl-diskless-sync-delay repl-diskless-sync-max-replicas "
      "repl-ping-replica-period repl-ping-slave-period repl-timeout replica-announce-ip "
      "replica-announce-port replica-announced replica-ignore-disk-write-errors "
      "replica-ignore-maxmemory replica-lazy-flush replica-priority replica-read-only "
      "replica-serve-stale-data replicaof requirepass sanitize-dump-payload save "
      "server_cpulist set-max-intset-entries set-proc-title shutdown-on-sigint "
      "shutdown-on-sigterm shutdown-timeout slave-announce-ip slave-announce-port "
      "slave-ignore-maxmemory slave-lazy-flush slave-priority slave-read-only "
      "slave-serve-stale-data slaveof slowlog-log-slower-than slowlog-max-len socket-mark-id "
      "stop-writes-on-bgsave-error stream-node-max-bytes stream-node-max-entries supervised "
      "syslog-enabled syslog-facility syslog-ident tcp-backlog tcp-keepalive timeout "
      "tls-auth-clients tls-ca-cert-dir tls-ca-cert-file tls-cert-file tls-ciphers "
      "tls-ciphersuites tls-client-cert-file tls-client-key-file tls-client-key-file-pass "
      "tls-cluster tls-dh-params-file tls-key-file tls-key-file-pass tls-port "
      "tls-prefer-server-ciphers tls-protocols tls-replication tls-session-cache-size "
      "tls-session-cache-timeout tls-session-caching tracking-table-max-keys unixsocket "
      "unixsocketperm zset-max-listpack-entries zset-max-listpack-value "
      "zset-max-ziplist-entries zset-max-ziplist-value "
      // not in CONFIG GET: directives of the file only, hidden and deprecated ones
      "include rename-command user loadmodule sentinel list-max-ziplist-entries "
      "list-max-ziplist-value lua-replicate-commands watchdog-period use-exit-on-panic";
  std::vector<std::string> names;
  ASSERT_TRUE(SplitArgs(redis70, &names));
  EXPECT_EQ(names.size(), 202u);
  for (const std::string& n : names) EXPECT_NE(FindRedisDirective(n), nullptr) << n;
  Config c;
  std::set<std::string> seen;
  for (const RedisDirective& d : RedisDirectives()) {
    EXPECT_TRUE(seen.insert(d.name).second) << "twice: " << d.name;
    std::string v;
    if (std::string(d.area) == "kvpool implements it") {
      EXPECT_TRUE(c.Get(d.name, &v) || d.name == std::string("include") ||
                  d.name == std::string("rename-command"))
          << d.name;
    }
    if (d.effect != RedisEffect::kNone) {
      EXPECT_NE(d.cannot, nullptr) << d.name;
    }
  }
  EXPECT_NE(FindRedisDirective("SEARCH.TIMEOUT"), nullptr) << "a module's option";
  EXPECT_EQ(FindRedisDirective("daemonise"), nullptr);
}

}  // namespace
}  // namespace kvpool
