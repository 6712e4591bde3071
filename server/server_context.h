// What commands may reach of the server: configuration, the store, the
// command table, the clients, counters, and the few actions only the running
// server can take (close another client, shut down). Tests build one without
// sockets.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "server/client_state.h"
#include "server/command_stats.h"
#include "server/monitor.h"
#include "server/config.h"
#include "server/exec_gate.h"
#include "server/util/counter.h"
#include "storage/segment/store.h"

namespace kvpool {

class CommandTable;
namespace pool {
class Pool;
}

// Server-wide counters (INFO stats, /metrics). Relaxed atomics: exact totals,
// no ordering.
struct ServerStats {
  Counter commands;
  Counter connections_received;
  Counter rejected_connections;
  Counter keyspace_hits;
  Counter keyspace_misses;
  Counter net_input_bytes;
  Counter net_output_bytes;
  Counter protocol_errors;
  Counter unknown_commands;
  // Limits hit (INFO stats); each limit is logged once per process.
  Counter protected_mode_rejections;
  Counter query_buffer_limit_disconnections;
  Counter output_buffer_limit_disconnections;
  Counter idle_timeout_disconnections;
  // TLS clients closed because their handshake failed (no certificate, not
  // TLS at all) or did not finish within tls-handshake-timeout-ms.
  Counter tls_failed_connections;
  // The longest any event loop (I/O threads, pool control lane) was late,
  // in µs (IoThread::WatchLag): a maximum, not a count.
  std::atomic<uint64_t> io_loop_max_lag_us{0};
  // The part of such a delay the late loop's thread spent running (not
  // waiting for a core): what its own callbacks held it.
  std::atomic<uint64_t> io_loop_max_busy_us{0};
  std::atomic<bool> logged_maxclients{false}, logged_protected_mode{false},
      logged_query_buffer{false}, logged_output_buffer{false}, logged_protocol{false},
      logged_cross_protocol{false}, logged_tls{false};
  void Reset();
};

// Logs `what` at warning level the first time a limit is hit, so a flood of
// bad requests costs one log line, not one per request.
void LogLimitOnce(std::atomic<bool>& logged, const std::string& what);

// Every connected client, for CLIENT LIST/KILL and INFO clients.
class ClientRegistry {
 public:
  // `kill` must be callable from any thread; it asks the owner to close.
  void Add(std::shared_ptr<ClientInfo> info, std::function<void()> kill);
  void Remove(uint64_t id);
  uint64_t NextId() { return next_id_.fetch_add(1) + 1; }
  size_t Count() const;
  std::vector<std::shared_ptr<ClientInfo>> Snapshot() const;
  // Asks the client to close; false if no such client.
  bool Kill(uint64_t id);

 private:
  struct Entry {
    std::shared_ptr<ClientInfo> info;
    std::function<void()> kill;
  };
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, Entry> clients_;
  std::atomic<uint64_t> next_id_{0};
};

// maxmemory in bytes, with 0 ("auto") resolved to a quarter of physical RAM.
size_t EffectiveMaxMemory(const Config& config);

// Options read on every request, mirrored from Config into atomics by
// change hooks so the hot path takes no lock.
struct HotOptions {
  std::atomic<bool> requirepass_set{false};
  std::atomic<bool> noeviction{false};
  std::atomic<bool> cluster_redirects{false};
  std::atomic<int64_t> proto_max_bulk_len{512 << 20};
  std::atomic<int64_t> client_query_buffer_limit{int64_t{1} << 30};
  std::atomic<int64_t> proto_max_args{1 << 20};
  std::atomic<int64_t> proto_inline_max_len{64 << 10};
  // client-output-buffer-limit for normal clients (0 = none).
  std::atomic<int64_t> output_hard{0}, output_soft{0}, output_soft_seconds{0};
  // SLOWLOG and INFO latencystats.
  std::atomic<int64_t> slowlog_slower_than{10000};  // µs; < 0: off
  std::atomic<int64_t> slowlog_max_len{128};
  std::atomic<bool> latency_tracking{true};
  std::atomic<int64_t> latency_monitor_threshold_ms{0};  // 0: off
};

class ServerContext {
 public:
  // Binds `config` hooks that keep hot() and the store in step with CONFIG SET.
  ServerContext(Config* config, storage::Store* store, const CommandTable* commands,
                int io_threads = 1);

  Config& config() { return *config_; }
  storage::Store& store() { return *store_; }
  const CommandTable& commands() const { return *commands_; }
  ClientRegistry& clients() { return clients_; }
  ServerStats& stats() { return stats_; }
  ExecGate& gate() { return gate_; }
  // The pool this node belongs to; nullptr for a single node.
  pool::Pool* pool() const { return pool_; }
  void set_pool(pool::Pool* p) { pool_ = p; }
  const HotOptions& hot() const { return hot_; }
  // INFO commandstats / latencystats / errorstats, and SLOWLOG.
  CommandStats& command_stats() { return command_stats_; }
  SlowLog& slowlog() { return slowlog_; }
  LatencyMonitor& latency_monitor() { return latency_monitor_; }
  MonitorHub& monitor() { return monitor_; }

  int64_t start_ms = 0;
  int tcp_port = 0;
  int io_threads;
  std::string executable;
  std::string config_file;
  // Set by the running server; tests leave it empty.
  std::function<void()> request_shutdown;
  // The event loop of each I/O thread (client lane), set by the running
  // server before any client connects; empty in tests (work meant to be
  // spread over loop turns then runs at once).
  std::vector<struct event_base*> lane_bases;
  // A count of clients blocked by back-pressure etc. for INFO; filled by server.
  std::function<std::string()> extra_info;

  // ---- INFO (info.cc) ----
  // Lines of INFO's "# Pool" section, each "field:value\r\n"; set by the
  // pool. Unset: "pool_nodes:1" and "transport:local".
  std::function<std::string()> pool_info;
  // Highest used_memory seen so far; raised by INFO and MEMORY STATS (and by
  // any periodic sampler), lowered only by CONFIG RESETSTAT.
  std::atomic<uint64_t> used_memory_peak{0};
  // instantaneous_ops_per_sec: the last sample of stats().commands, taken by
  // INFO at most once a second. Guarded by rate_mu.
  std::mutex rate_mu;
  int64_t rate_sample_ms = 0;
  uint64_t rate_sample_commands = 0;
  double ops_per_sec = 0;

 private:
  Config* config_;
  storage::Store* store_;
  const CommandTable* commands_;
  ClientRegistry clients_;
  ServerStats stats_;
  ExecGate gate_;
  HotOptions hot_;
  CommandStats command_stats_;
  SlowLog slowlog_;
  LatencyMonitor latency_monitor_;
  MonitorHub monitor_;
  pool::Pool* pool_ = nullptr;
};


}  // namespace kvpool
