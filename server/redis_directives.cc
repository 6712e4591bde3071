#include "server/redis_directives.h"

#include "server/util/strings.h"

namespace kvpool {

namespace {

using E = RedisEffect;

// What each group of directives is about (said when one is ignored).
constexpr const char* kOwn = "kvpool implements it";
constexpr const char* kPersistence = "persistence: kvpool is a cache and writes no RDB or AOF file";
constexpr const char* kReplication =
    "Redis replication: kvpool nodes keep copies with pool-replicas instead";
constexpr const char* kCluster = "Redis Cluster: a kvpool pool is set with pool-nodes";
constexpr const char* kTls =
    "TLS session caching, DH parameters (OpenSSL chooses them) and the client certificate Redis "
    "shows to a primary or cluster peer (pool links show tls-cert-file)";
constexpr const char* kEncoding =
    "encoding of lists, hashes, sets, sorted sets, streams or HyperLogLogs, which kvpool does not "
    "have";
constexpr const char* kTuning =
    "Redis's internal tuning of its allocator, rehashing, defragmentation, lazy freeing, "
    "eviction effort or accept loop; kvpool manages its own segment";
constexpr const char* kProcess =
    "the process's logo, title, CPU affinity, crash reports, OOM score, locale or warnings";
constexpr const char* kSyslog = "syslog: kvpool logs to logfile (or standard output)";
constexpr const char* kSockets = "sockets";
constexpr const char* kAcl = "ACL users and their log";
constexpr const char* kClients = "client-side caching and keyspace notifications";
constexpr const char* kScripting = "scripting: kvpool runs no scripts";
constexpr const char* kModules = "modules: kvpool loads none";
constexpr const char* kStats = "the percentiles INFO latencystats shows";
constexpr const char* kDebug = "Redis's debugging and testing hooks";
constexpr const char* kDeprecated = "deprecated: Redis 7 ignores it too";
constexpr const char* kSentinel = "Redis Sentinel";

// What kvpool cannot do, for the directives it cannot honour.
constexpr const char* kNoReplica =
    "kvpool cannot be a replica of a Redis primary: this node starts empty and takes writes "
    "itself";
constexpr const char* kNoAcl =
    "kvpool has no ACL users: ignoring them would let in clients this configuration refuses "
    "(set requirepass, the default user's password, instead)";
constexpr const char* kNoModules =
    "kvpool loads no modules: the module's commands answer 'unknown command'";
constexpr const char* kNoMinReplicas =
    "kvpool does not refuse writes for want of Redis replicas (its copies: pool-replicas)";

std::vector<RedisDirective> Build() {
  return {
      // ---- kvpool implements these (its option table comes first) ----
      {"appendonly", kOwn},
      {"bind", kOwn},
      {"client-output-buffer-limit", kOwn},
      {"client-query-buffer-limit", kOwn},
      {"cluster-announce-ip", kOwn},
      {"cluster-announce-port", kOwn},
      {"daemonize", kOwn},
      {"databases", kOwn},
      {"dir", kOwn},
      {"hz", kOwn},
      {"include", kOwn},
      {"io-threads", kOwn},
      {"logfile", kOwn},
      {"loglevel", kOwn},
      {"maxclients", kOwn},
      {"maxmemory", kOwn},
      {"maxmemory-policy", kOwn},
      {"maxmemory-samples", kOwn},
      {"pidfile", kOwn},
      {"port", kOwn},
      {"protected-mode", kOwn},
      {"proto-max-bulk-len", kOwn},
      {"rename-command", kOwn},
      {"requirepass", kOwn},
      {"latency-monitor-threshold", kOwn},
      {"latency-tracking", kOwn},
      {"save", kOwn},
      {"slowlog-log-slower-than", kOwn},
      {"slowlog-max-len", kOwn},
      {"supervised", kOwn},
      {"tcp-backlog", kOwn},
      {"tcp-keepalive", kOwn},
      {"timeout", kOwn},
      {"tls-auth-clients", kOwn},
      {"tls-ca-cert-dir", kOwn},
      {"tls-ca-cert-file", kOwn},
      {"tls-cert-file", kOwn},
      {"tls-ciphers", kOwn},
      {"tls-ciphersuites", kOwn},
      {"tls-cluster", kOwn},
      {"tls-key-file", kOwn},
      {"tls-key-file-pass", kOwn},
      {"tls-port", kOwn},
      {"tls-prefer-server-ciphers", kOwn},
      {"tls-protocols", kOwn},
      {"tls-replication", kOwn},
      // ---- persistence ----
      {"aof-disable-auto-gc", kPersistence},
      {"aof-load-truncated", kPersistence},
      {"aof-rewrite-incremental-fsync", kPersistence},
      {"aof-timestamp-enabled", kPersistence},
      {"aof-use-rdb-preamble", kPersistence},
      {"appenddirname", kPersistence},
      {"appendfilename", kPersistence},
      {"appendfsync", kPersistence},
      {"auto-aof-rewrite-min-size", kPersistence},
      {"auto-aof-rewrite-percentage", kPersistence},
      {"dbfilename", kPersistence},
      {"no-appendfsync-on-rewrite", kPersistence},
      {"rdb-del-sync-files", kPersistence},
      {"rdb-save-incremental-fsync", kPersistence},
      {"rdbchecksum", kPersistence},
      {"rdbcompression", kPersistence},
      {"sanitize-dump-payload", kPersistence},
      {"shutdown-on-sigint", kPersistence},
      {"shutdown-on-sigterm", kPersistence},
      {"shutdown-timeout", kPersistence},
      {"stop-writes-on-bgsave-error", kPersistence},
      // ---- replication ----
      {"replicaof", kReplication, E::kWarn, nullptr, kNoReplica},
      {"slaveof", kReplication, E::kWarn, nullptr, kNoReplica},
      {"min-replicas-to-write", kReplication, E::kWarn, "0", kNoMinReplicas},
      {"min-slaves-to-write", kReplication, E::kWarn, "0", kNoMinReplicas},
      {"masterauth", kReplication},
      {"masteruser", kReplication},
      {"min-replicas-max-lag", kReplication},
      {"min-slaves-max-lag", kReplication},
      {"propagation-error-behavior", kReplication},
      {"repl-backlog-size", kReplication},
      {"repl-backlog-ttl", kReplication},
      {"repl-disable-tcp-nodelay", kReplication},
      {"repl-diskless-load", kReplication},
      {"repl-diskless-sync", kReplication},
      {"repl-diskless-sync-delay", kReplication},
      {"repl-diskless-sync-max-replicas", kReplication},
      {"repl-ping-replica-period", kReplication},
      {"repl-ping-slave-period", kReplication},
      {"repl-timeout", kReplication},
      {"replica-announce-ip", kReplication},
      {"replica-announce-port", kReplication},
      {"replica-announced", kReplication},
      {"replica-full-sync-buffer-limit", kReplication},
      {"replica-ignore-disk-write-errors", kReplication},
      {"replica-ignore-maxmemory", kReplication},
      {"replica-lazy-flush", kReplication},
      {"replica-priority", kReplication},
      {"replica-read-only", kReplication},
      {"replica-serve-stale-data", kReplication},
      {"slave-announce-ip", kReplication},
      {"slave-announce-port", kReplication},
      {"slave-ignore-maxmemory", kReplication},
      {"slave-lazy-flush", kReplication},
      {"slave-priority", kReplication},
      {"slave-read-only", kReplication},
      {"slave-serve-stale-data", kReplication},
      // ---- Redis Cluster ----
      {"cluster-enabled", kCluster, E::kWarn, "no",
       "kvpool cannot join a Redis Cluster: this node serves alone, or in the pool pool-nodes "
       "lists"},
      {"cluster-allow-pubsubshard-when-down", kCluster},
      {"cluster-allow-reads-when-down", kCluster},
      {"cluster-allow-replica-migration", kCluster},
      {"cluster-announce-bus-port", kCluster},
      {"cluster-announce-hostname", kCluster},
      {"cluster-announce-human-nodename", kCluster},
      {"cluster-announce-tls-port", kCluster},
      {"cluster-compatibility-sample-ratio", kCluster},
      {"cluster-config-file", kCluster},
      {"cluster-link-sendbuf-limit", kCluster},
      {"cluster-migration-barrier", kCluster},
      {"cluster-node-timeout", kCluster},
      {"cluster-port", kCluster},
      {"cluster-preferred-endpoint-type", kCluster},
      {"cluster-replica-no-failover", kCluster},
      {"cluster-replica-validity-factor", kCluster},
      {"cluster-require-full-coverage", kCluster},
      {"cluster-slave-no-failover", kCluster},
      {"cluster-slave-validity-factor", kCluster},
      // ---- TLS: the rest of it is kvpool's (tls-port and the options above) ----
      {"tls-client-cert-file", kTls},
      {"tls-client-key-file", kTls},
      {"tls-client-key-file-pass", kTls},
      {"tls-dh-params-file", kTls},
      {"tls-session-cache-size", kTls},
      {"tls-session-cache-timeout", kTls},
      {"tls-session-caching", kTls},
      // ---- encodings of other data types ----
      {"hash-max-listpack-entries", kEncoding},
      {"hash-max-listpack-value", kEncoding},
      {"hash-max-ziplist-entries", kEncoding},
      {"hash-max-ziplist-value", kEncoding},
      {"hll-sparse-max-bytes", kEncoding},
      {"list-compress-depth", kEncoding},
      {"list-max-listpack-size", kEncoding},
      {"list-max-ziplist-size", kEncoding},
      {"set-max-intset-entries", kEncoding},
      {"set-max-listpack-entries", kEncoding},
      {"set-max-listpack-value", kEncoding},
      {"stream-node-max-bytes", kEncoding},
      {"stream-node-max-entries", kEncoding},
      {"zset-max-listpack-entries", kEncoding},
      {"zset-max-listpack-value", kEncoding},
      {"zset-max-ziplist-entries", kEncoding},
      {"zset-max-ziplist-value", kEncoding},
      // ---- internal tuning ----
      {"active-defrag-cycle-max", kTuning},
      {"active-defrag-cycle-min", kTuning},
      {"active-defrag-ignore-bytes", kTuning},
      {"active-defrag-max-scan-fields", kTuning},
      {"active-defrag-threshold-lower", kTuning},
      {"active-defrag-threshold-upper", kTuning},
      {"active-expire-effort", kTuning},
      {"activedefrag", kTuning},
      {"activerehashing", kTuning},
      {"disable-thp", kTuning},
      {"dynamic-hz", kTuning},
      {"io-threads-do-reads", kTuning},
      {"jemalloc-bg-thread", kTuning},
      {"lazyfree-lazy-eviction", kTuning},
      {"lazyfree-lazy-expire", kTuning},
      {"lazyfree-lazy-server-del", kTuning},
      {"lazyfree-lazy-user-del", kTuning},
      {"lazyfree-lazy-user-flush", kTuning},
      {"lfu-decay-time", kTuning},
      {"lfu-log-factor", kTuning},
      {"max-new-connections-per-cycle", kTuning},
      {"max-new-tls-connections-per-cycle", kTuning},
      {"maxmemory-eviction-tenacity", kTuning},
      // ---- the process ----
      {"oom-score-adj", kProcess, E::kWarn, "no",
       "kvpool does not set its OOM score (oom_score_adj)"},
      {"always-show-logo", kProcess},
      {"aof-rewrite-cpulist", kProcess},
      {"aof_rewrite_cpulist", kProcess},
      {"bgsave-cpulist", kProcess},
      {"bgsave_cpulist", kProcess},
      {"bio-cpulist", kProcess},
      {"bio_cpulist", kProcess},
      {"crash-log-enabled", kProcess},
      {"crash-memcheck-enabled", kProcess},
      {"hide-user-data-from-log", kProcess},
      {"ignore-warnings", kProcess},
      {"locale-collate", kProcess},
      {"oom-score-adj-values", kProcess},
      {"proc-title-template", kProcess},
      {"server-cpulist", kProcess},
      {"server_cpulist", kProcess},
      {"set-proc-title", kProcess},
      // ---- syslog ----
      {"syslog-enabled", kSyslog, E::kWarn, "no",
       "kvpool does not log to syslog: its log goes to logfile (or standard output)"},
      {"syslog-facility", kSyslog},
      {"syslog-ident", kSyslog},
      // ---- sockets ----
      {"unixsocket", kSockets, E::kWarn, "",
       "kvpool does not listen on a Unix socket: clients must connect over TCP"},
      {"socket-mark-id", kSockets, E::kWarn, "0",
       "kvpool does not mark its sockets (SO_MARK)"},
      {"bind-source-addr", kSockets},
      {"unixsocketperm", kSockets},
      // ---- ACL ----
      {"user", kAcl, E::kRefuse, nullptr, kNoAcl},
      {"aclfile", kAcl, E::kRefuse, "", kNoAcl},
      {"acl-pubsub-default", kAcl},
      {"acllog-max-len", kAcl},
      {"enable-protected-configs", kAcl},
      // ---- clients ----
      {"notify-keyspace-events", kClients, E::kWarn, "",
       "kvpool publishes no keyspace notifications"},
      {"maxmemory-clients", kClients, E::kWarn, "0",
       "kvpool does not evict clients by the memory they use (see client-output-buffer-limit "
       "and client-query-buffer-limit)"},
      {"tracking-table-max-keys", kClients},
      // ---- scripting and modules ----
      {"busy-reply-threshold", kScripting},
      {"lua-time-limit", kScripting},
      {"loadmodule", kModules, E::kWarn, nullptr, kNoModules},
      {"enable-module-command", kModules},
      // ---- latency ----
      {"latency-tracking-info-percentiles", kStats, E::kWarn, "50 99 99.9",
       "kvpool's INFO latencystats always shows p50, p99 and p99.9"},
      // ---- debugging and tests ----
      {"enable-debug-command", kDebug},
      {"key-load-delay", kDebug},
      {"loading-process-events-interval-bytes", kDebug},
      {"rdb-key-save-delay", kDebug},
      {"use-exit-on-panic", kDebug},
      {"watchdog-period", kDebug},
      // ---- deprecated: Redis accepts and ignores them ----
      {"list-max-ziplist-entries", kDeprecated},
      {"list-max-ziplist-value", kDeprecated},
      {"lua-replicate-commands", kDeprecated},
      // ---- Sentinel: Redis too refuses these outside sentinel mode ----
      {"sentinel", kSentinel, E::kRefuse, nullptr,
       "kvpool is not a Sentinel (redis-server too refuses sentinel directives outside sentinel "
       "mode)"},
  };
}

bool IsQuiet(const char* quiet, std::string_view value) {
  if (quiet == nullptr) return false;
  std::string v = ToLower(value);
  std::string_view q = quiet;
  while (true) {
    size_t bar = q.find('|');
    if (q.substr(0, bar) == v) return true;
    if (bar == std::string_view::npos) return false;
    q.remove_prefix(bar + 1);
  }
}

}  // namespace

const std::vector<RedisDirective>& RedisDirectives() {
  static const std::vector<RedisDirective> all = Build();
  return all;
}

const RedisDirective* FindRedisDirective(std::string_view name) {
  for (const RedisDirective& d : RedisDirectives())
    if (EqualsIgnoreCase(d.name, name)) return &d;
  static const RedisDirective kModuleOption{"(a module's option)", kModules, E::kWarn, nullptr,
                                            kNoModules};
  size_t dot = name.find('.');
  if (dot != std::string_view::npos && dot > 0 && dot + 1 < name.size()) return &kModuleOption;
  return nullptr;
}

RedisVerdict JudgeRedisDirective(const RedisDirective& d, std::string_view value) {
  if (d.effect == RedisEffect::kNone || IsQuiet(d.quiet, value))
    return {RedisEffect::kNone, std::string("Redis directive with no effect here: ") + d.area};
  return {d.effect, std::string("Redis directive kvpool cannot honour: ") + d.cannot};
}

}  // namespace kvpool
