#include "server/info.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <random>
#include <type_traits>
#include <unordered_map>

#include "server/errors.h"
#include "server/heap_usage.h"
#include "server/supervision.h"
#include "server/util/strings.h"

namespace kvpool {

namespace {

// ---------------------------------------------------------------------------
// INFO
// ---------------------------------------------------------------------------

void Line(std::string& o, std::string_view k, std::string_view v) {
  o.append(k).append(":").append(v).append("\r\n");
}
template <typename T>
  requires std::is_integral_v<T>
void Line(std::string& o, std::string_view k, T v) {
  Line(o, k, std::to_string(v));
}

std::string Fixed(double v, int digits) {
  char buf[64];
  snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

std::string CpuSeconds(const timeval& tv) {
  char buf[64];
  snprintf(buf, sizeof(buf), "%ld.%06ld", static_cast<long>(tv.tv_sec),
           static_cast<long>(tv.tv_usec));
  return buf;
}

// 40 random hex digits, as Redis's run_id and replication id.
std::string RandomHex40() {
  std::random_device rd;
  std::mt19937_64 gen((static_cast<uint64_t>(rd()) << 32) ^ rd());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(40, '0');
  for (char& c : s) c = kHex[gen() & 15];
  return s;
}

const std::string& RunId() {
  static const std::string id = RandomHex40();
  return id;
}

const std::string& ReplicationId() {
  static const std::string id = RandomHex40();
  return id;
}

uint64_t TotalSystemMemory() {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
}

int64_t StartMs(const ServerContext& s, int64_t now_ms) {
  return s.start_ms > 0 ? s.start_ms : now_ms;
}

// instantaneous_ops_per_sec: commands per second between the last two
// samples, a new sample being taken when the last one is a second old.
double OpsPerSec(ServerContext& s, int64_t now_ms) {
  uint64_t commands = s.stats().commands.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> l(s.rate_mu);
  if (s.rate_sample_ms == 0) s.rate_sample_ms = StartMs(s, now_ms);
  if (commands < s.rate_sample_commands) {  // CONFIG RESETSTAT
    s.rate_sample_ms = now_ms;
    s.rate_sample_commands = commands;
    s.ops_per_sec = 0;
  }
  int64_t elapsed = now_ms - s.rate_sample_ms;
  if (elapsed >= 1000) {
    s.ops_per_sec = static_cast<double>(commands - s.rate_sample_commands) * 1000.0 /
                    static_cast<double>(elapsed);
    s.rate_sample_ms = now_ms;
    s.rate_sample_commands = commands;
  }
  return s.ops_per_sec;
}

uint64_t RaisePeak(ServerContext& s, uint64_t used) {
  uint64_t peak = s.used_memory_peak.load(std::memory_order_relaxed);
  while (used > peak &&
         !s.used_memory_peak.compare_exchange_weak(peak, used, std::memory_order_relaxed)) {
  }
  return std::max(peak, used);
}

void ServerSection(ServerContext& s, int64_t now_ms, std::string& o) {
  utsname u{};
  std::string os = uname(&u) == 0
                       ? std::string(u.sysname) + " " + u.release + " " + u.machine
                       : std::string("unknown");
  int64_t uptime_s = (now_ms - StartMs(s, now_ms)) / 1000;
  Line(o, "redis_version", kRedisVersion);
  Line(o, "kvpool_version", kKvpoolVersion);
  Line(o, "redis_git_sha1", "00000000");
  Line(o, "redis_git_dirty", 0);
  Line(o, "redis_mode", "standalone");
  Line(o, "os", os);
  Line(o, "arch_bits", static_cast<int>(sizeof(void*) * 8));
  Line(o, "gcc_version",
       std::to_string(__GNUC__) + "." + std::to_string(__GNUC_MINOR__) + "." +
           std::to_string(__GNUC_PATCHLEVEL__));
  Line(o, "process_id", static_cast<int64_t>(getpid()));
  Line(o, "process_supervised", Supervisor::Mode(s.config()));
  Line(o, "run_id", RunId());
  Line(o, "tcp_port", s.tcp_port);
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  Line(o, "server_time_usec", int64_t{ts.tv_sec} * 1000000 + ts.tv_nsec / 1000);
  Line(o, "uptime_in_seconds", uptime_s);
  Line(o, "uptime_in_days", uptime_s / 86400);
  Line(o, "hz", s.config().Int("hz"));
  Line(o, "configured_hz", s.config().Int("hz"));
  Line(o, "executable", s.executable);
  Line(o, "config_file", s.config_file);
  Line(o, "io_threads_active", s.io_threads > 1 ? 1 : 0);
  Line(o, "io_threads", s.io_threads);  // kvpool's: the event loops serving clients
}

void ClientsSection(ServerContext& s, std::string& o) {
  size_t max_in = 0, max_out = 0;
  std::vector<std::shared_ptr<ClientInfo>> clients = s.clients().Snapshot();
  for (const auto& c : clients) {
    max_in = std::max(max_in, c->query_buffer.load(std::memory_order_relaxed));
    max_out = std::max(max_out, c->output_buffer.load(std::memory_order_relaxed));
  }
  Line(o, "connected_clients", clients.size());
  Line(o, "cluster_connections", 0);
  Line(o, "maxclients", s.config().Int("maxclients"));
  Line(o, "client_recent_max_input_buffer", max_in);
  Line(o, "client_recent_max_output_buffer", max_out);
  Line(o, "blocked_clients", 0);
  Line(o, "tracking_clients", 0);
  Line(o, "clients_in_timeout_table", 0);
  if (s.extra_info) o += s.extra_info();
}

void MemorySection(ServerContext& s, std::string& o) {
  storage::StoreStats st = s.store().GetStats();
  uint64_t clients = ClientsMemory(s);
  uint64_t used = UsedMemory(s, st);
  uint64_t rss = ResidentSetBytes();
  uint64_t peak = RaisePeak(s, used);
  uint64_t total = TotalSystemMemory();
  Line(o, "used_memory", used);
  Line(o, "used_memory_human", BytesToHuman(used));
  Line(o, "used_memory_rss", rss);
  Line(o, "used_memory_rss_human", BytesToHuman(rss));
  Line(o, "used_memory_peak", peak);
  Line(o, "used_memory_peak_human", BytesToHuman(peak));
  Line(o, "used_memory_peak_perc",
       Fixed(peak ? 100.0 * static_cast<double>(used) / static_cast<double>(peak) : 0, 2) + "%");
  Line(o, "used_memory_overhead", used - std::min(used, st.used_memory));
  Line(o, "used_memory_dataset", st.used_memory);
  Line(o, "used_memory_dataset_perc",
       Fixed(used ? 100.0 * static_cast<double>(st.used_memory) / static_cast<double>(used) : 0,
             2) + "%");
  Line(o, "mem_clients_normal", clients);
  Line(o, "total_system_memory", total);
  Line(o, "total_system_memory_human", BytesToHuman(total));
  Line(o, "maxmemory", st.maxmemory);
  Line(o, "maxmemory_human", BytesToHuman(st.maxmemory));
  Line(o, "maxmemory_policy", s.config().String("maxmemory-policy"));
  Line(o, "segment_bytes", st.segment_bytes);
  Line(o, "segment_bytes_human", BytesToHuman(st.segment_bytes));
  Line(o, "segment_used", st.segment_used);
  Line(o, "mem_fragmentation_ratio",
       Fixed(used ? static_cast<double>(rss) / static_cast<double>(used) : 0, 2));
  Line(o, "mem_allocator", "libc+segment");
  // What the allocator holds free (glibc); the cron gives it back to the
  // kernel once it grows (Server::OnCron).
  Line(o, "allocator_free", HeapBytesFree());
}

void PersistenceSection(ServerContext& s, int64_t now_ms, std::string& o) {
  // kvpool is a cache: nothing is ever saved or loaded. The fields exist
  // because redis-benchmark and some clients read them.
  Line(o, "loading", 0);
  Line(o, "async_loading", 0);
  Line(o, "rdb_changes_since_last_save", 0);
  Line(o, "rdb_bgsave_in_progress", 0);
  Line(o, "rdb_last_save_time", StartMs(s, now_ms) / 1000);
  Line(o, "rdb_last_bgsave_status", "ok");
  Line(o, "rdb_last_bgsave_time_sec", -1);
  Line(o, "rdb_current_bgsave_time_sec", -1);
  Line(o, "rdb_saves", 0);
  Line(o, "aof_enabled", 0);
  Line(o, "aof_rewrite_in_progress", 0);
  Line(o, "aof_rewrite_scheduled", 0);
  Line(o, "aof_last_rewrite_time_sec", -1);
  Line(o, "aof_current_rewrite_time_sec", -1);
  Line(o, "aof_last_bgrewrite_status", "ok");
  Line(o, "aof_last_write_status", "ok");
}

void StatsSection(ServerContext& s, int64_t now_ms, std::string& o) {
  const ServerStats& st = s.stats();
  storage::StoreStats store = s.store().GetStats();
  auto get = [](const Counter& a) { return a.load(std::memory_order_relaxed); };
  Line(o, "total_connections_received", get(st.connections_received));
  Line(o, "total_commands_processed", get(st.commands));
  Line(o, "instantaneous_ops_per_sec", std::llround(OpsPerSec(s, now_ms)));
  Line(o, "total_net_input_bytes", get(st.net_input_bytes));
  Line(o, "total_net_output_bytes", get(st.net_output_bytes));
  Line(o, "rejected_connections", get(st.rejected_connections));
  Line(o, "expired_keys", store.expired_keys);
  Line(o, "evicted_keys", store.evicted_keys);
  Line(o, "keyspace_hits", get(st.keyspace_hits));
  Line(o, "keyspace_misses", get(st.keyspace_misses));
  Line(o, "pubsub_channels", 0);
  Line(o, "pubsub_patterns", 0);
  Line(o, "unknown_commands", get(st.unknown_commands));
  Line(o, "total_error_replies", s.command_stats().total_errors());
  Line(o, "protected_mode_rejections", get(st.protected_mode_rejections));
  Line(o, "client_query_buffer_limit_disconnections", get(st.query_buffer_limit_disconnections));
  Line(o, "client_output_buffer_limit_disconnections", get(st.output_buffer_limit_disconnections));
  Line(o, "client_idle_timeout_disconnections", get(st.idle_timeout_disconnections));
  Line(o, "protocol_errors", get(st.protocol_errors));
  Line(o, "tls_failed_connections", get(st.tls_failed_connections));
  // Since start or CONFIG RESETSTAT: how long one callback held a loop at most.
  Line(o, "io_loop_max_lag_ms", st.io_loop_max_lag_us.load(std::memory_order_relaxed) / 1000);
  // The part of it the loop's thread was running (its CPU time): the rest
  // was waiting for a core.
  Line(o, "io_loop_max_busy_ms", st.io_loop_max_busy_us.load(std::memory_order_relaxed) / 1000);
}

void ReplicationSection(std::string& o) {
  Line(o, "role", "master");
  Line(o, "connected_slaves", 0);
  Line(o, "master_failover_state", "no-failover");
  Line(o, "master_replid", ReplicationId());
  Line(o, "master_replid2", std::string(40, '0'));
  Line(o, "master_repl_offset", 0);
  Line(o, "second_repl_offset", -1);
  Line(o, "repl_backlog_active", 0);
  Line(o, "repl_backlog_size", 0);
  Line(o, "repl_backlog_first_byte_offset", 0);
  Line(o, "repl_backlog_histlen", 0);
}

void CpuSection(std::string& o) {
  rusage self{}, children{};
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &children);
  Line(o, "used_cpu_sys", CpuSeconds(self.ru_stime));
  Line(o, "used_cpu_user", CpuSeconds(self.ru_utime));
  Line(o, "used_cpu_sys_children", CpuSeconds(children.ru_stime));
  Line(o, "used_cpu_user_children", CpuSeconds(children.ru_utime));
}

void KeyspaceSection(ServerContext& s, std::string& o) {
  storage::Store& store = s.store();
  for (int db = 0; db < store.databases(); ++db) {
    storage::DbStats st = store.GetDbStats(db);
    if (st.keys == 0) continue;
    Line(o, "db" + std::to_string(db),
         "keys=" + std::to_string(st.keys) + ",expires=" + std::to_string(st.expires) +
             ",avg_ttl=0");
  }
}

void PoolSection(ServerContext& s, std::string& o) {
  if (s.pool_info) {
    o += s.pool_info();
    return;
  }
  Line(o, "pool_nodes", 1);
  Line(o, "transport", "local");
}

}  // namespace

// ---------------------------------------------------------------------------
// Public: INFO
// ---------------------------------------------------------------------------

std::string BytesToHuman(uint64_t n) {
  static constexpr const char* kUnits[] = {"K", "M", "G", "T", "P"};
  if (n < 1024) return std::to_string(n) + "B";
  double d = static_cast<double>(n) / 1024;
  for (const char* unit : kUnits) {
    if (d < 1024 || unit == kUnits[4]) return Fixed(d, 2) + unit;
    d /= 1024;
  }
  return std::to_string(n) + "B";
}

// open/read rather than a stream: called once a second by the cron, and
// it must fail quietly (0) when the process is out of file descriptors.
uint64_t ResidentSetBytes() {
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128];
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  unsigned long long size = 0, resident = 0;
  if (sscanf(buf, "%llu %llu", &size, &resident) != 2) return 0;
  long page = sysconf(_SC_PAGE_SIZE);
  return page > 0 ? resident * static_cast<uint64_t>(page) : 0;
}

uint64_t ClientsMemory(ServerContext& server) {
  uint64_t total = 0;
  for (const auto& c : server.clients().Snapshot()) {
    total += sizeof(ClientState) + sizeof(ClientInfo) +
             c->query_buffer.load(std::memory_order_relaxed) +
             c->output_buffer.load(std::memory_order_relaxed);
  }
  return total;
}

uint64_t UsedMemory(ServerContext& server, const storage::StoreStats& st) {
  uint64_t counted = st.items_bytes + HeapBytesInUse();
  return std::max(counted, st.used_memory + ClientsMemory(server));
}

std::string InfoText(ServerContext& server, std::span<const std::string_view> sections,
                     int64_t now_ms) {
  bool all = false, defaults = sections.empty();
  std::vector<std::string> wanted;
  for (std::string_view s : sections) {
    std::string l = ToLower(s);
    if (l == "all" || l == "everything") all = true;
    else if (l == "default") defaults = true;
    else wanted.push_back(std::move(l));
  }
  struct Section {
    const char* name;   // lower case, as asked for
    const char* title;  // as printed after "# "
    bool by_default;    // in INFO without arguments (as Redis: not the long ones)
  };
  static constexpr Section kSections[] = {
      {"server", "Server", true},           {"clients", "Clients", true},
      {"memory", "Memory", true},           {"persistence", "Persistence", true},
      {"stats", "Stats", true},             {"replication", "Replication", true},
      {"cpu", "CPU", true},                 {"modules", "Modules", true},
      {"commandstats", "Commandstats", false}, {"errorstats", "Errorstats", true},
      {"latencystats", "Latencystats", false}, {"cluster", "Cluster", true},
      {"keyspace", "Keyspace", true},       {"pool", "Pool", true}};
  std::string out;
  for (const Section& sec : kSections) {
    std::string_view name = sec.name;
    bool include = all || (defaults && sec.by_default) ||
                   std::find(wanted.begin(), wanted.end(), name) != wanted.end();
    if (!include) continue;
    if (!out.empty()) out += "\r\n";
    out.append("# ").append(sec.title).append("\r\n");
    if (name == "server") ServerSection(server, now_ms, out);
    else if (name == "clients") ClientsSection(server, out);
    else if (name == "memory") MemorySection(server, out);
    else if (name == "persistence") PersistenceSection(server, now_ms, out);
    else if (name == "stats") StatsSection(server, now_ms, out);
    else if (name == "replication") ReplicationSection(out);
    else if (name == "cpu") CpuSection(out);
    else if (name == "cluster") Line(out, "cluster_enabled", server.pool() != nullptr ? 1 : 0);
    else if (name == "keyspace") KeyspaceSection(server, out);
    else if (name == "pool") PoolSection(server, out);
    else if (name == "commandstats") CommandStatsSection(server, out);
    else if (name == "errorstats") ErrorStatsSection(server, out);
    else if (name == "latencystats") LatencyStatsSection(server, out);
    // "modules": kvpool loads none, so the section is empty, as in Redis.
  }
  return out;
}

}  // namespace kvpool
