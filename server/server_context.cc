#include "server/server_context.h"

#include <unistd.h>

#include <algorithm>

#include <spdlog/spdlog.h>

#include "server/util/strings.h"

#include "server/command_table.h"
#include "server/info.h"

namespace kvpool {

void ServerStats::Reset() {
  for (auto* c : {&commands, &connections_received, &rejected_connections, &keyspace_hits,
                  &keyspace_misses, &net_input_bytes, &net_output_bytes, &protocol_errors,
                  &unknown_commands, &protected_mode_rejections,
                  &query_buffer_limit_disconnections, &output_buffer_limit_disconnections,
                  &idle_timeout_disconnections, &tls_failed_connections})
    c->store(0, std::memory_order_relaxed);
  io_loop_max_lag_us.store(0, std::memory_order_relaxed);
  io_loop_max_busy_us.store(0, std::memory_order_relaxed);
}

void LogLimitOnce(std::atomic<bool>& logged, const std::string& what) {
  if (!logged.exchange(true, std::memory_order_relaxed))
    spdlog::warn("{} (logged once; INFO stats counts every time)", what);
}

void ClientRegistry::Add(std::shared_ptr<ClientInfo> info, std::function<void()> kill) {
  std::lock_guard<std::mutex> l(mu_);
  uint64_t id = info->id;
  clients_[id] = Entry{std::move(info), std::move(kill)};
}

void ClientRegistry::Remove(uint64_t id) {
  std::lock_guard<std::mutex> l(mu_);
  clients_.erase(id);
}

size_t ClientRegistry::Count() const {
  std::lock_guard<std::mutex> l(mu_);
  return clients_.size();
}

std::vector<std::shared_ptr<ClientInfo>> ClientRegistry::Snapshot() const {
  std::vector<std::shared_ptr<ClientInfo>> out;
  std::lock_guard<std::mutex> l(mu_);
  out.reserve(clients_.size());
  for (const auto& [id, e] : clients_) out.push_back(e.info);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a->id < b->id; });
  return out;
}

bool ClientRegistry::Kill(uint64_t id) {
  std::function<void()> kill;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = clients_.find(id);
    if (it == clients_.end()) return false;
    kill = it->second.kill;
  }
  if (kill) kill();
  return true;
}

static size_t RamQuarter() {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  size_t ram = pages > 0 && page > 0 ? static_cast<size_t>(pages) * page : (size_t{4} << 30);
  return ram / 4;
}

size_t EffectiveMaxMemory(const Config& config) {
  int64_t v = config.Int("maxmemory");
  return v > 0 ? static_cast<size_t>(v) : RamQuarter();
}

ServerContext::ServerContext(Config* config, storage::Store* store, const CommandTable* commands,
                             int io_threads)
    : io_threads(io_threads),
      config_(config),
      store_(store),
      commands_(commands),
      gate_(io_threads),
      command_stats_(commands != nullptr ? commands->All().size() : 0) {
  auto sync = [this](const Config& c) {
    hot_.requirepass_set.store(!c.String("requirepass").empty());
    hot_.noeviction.store(c.Int("maxmemory-policy") == 0);
    hot_.cluster_redirects.store(c.Int("cluster-redirects") != 0);
    hot_.proto_max_bulk_len.store(c.Int("proto-max-bulk-len"));
    hot_.client_query_buffer_limit.store(c.Int("client-query-buffer-limit"));
    hot_.proto_max_args.store(c.Int("proto-max-args"));
    hot_.proto_inline_max_len.store(c.Int("proto-inline-max-len"));
    hot_.slowlog_slower_than.store(c.Int("slowlog-log-slower-than"));
    hot_.slowlog_max_len.store(c.Int("slowlog-max-len"));
    hot_.latency_tracking.store(c.Int("latency-tracking") != 0);
    hot_.latency_monitor_threshold_ms.store(c.Int("latency-monitor-threshold"));
    int64_t h = 0, s = 0, t = 0;
    if (ParseOutputLimit(c.String("client-output-buffer-limit"), &h, &s, &t)) {
      hot_.output_hard.store(h);
      hot_.output_soft.store(s);
      hot_.output_soft_seconds.store(t);
    }
  };
  sync(*config_);
  for (const char* name :
       {"requirepass", "maxmemory-policy", "cluster-redirects", "proto-max-bulk-len", "client-query-buffer-limit",
        "proto-max-args", "proto-inline-max-len", "client-output-buffer-limit",
        "slowlog-log-slower-than", "slowlog-max-len", "latency-tracking",
        "latency-monitor-threshold"})
    config_->OnChange(name, sync);
  config_->OnChange("slowlog-max-len", [this](const Config& c) {
    slowlog_.Trim(static_cast<size_t>(c.Int("slowlog-max-len")));
  });
  config_->OnChange("maxmemory",
                    [this](const Config& c) { store_->SetMaxMemory(EffectiveMaxMemory(c)); });
  // The segment was reserved at start for the maxmemory of then: a larger
  // one would run out of pages before it evicts, so it is refused.
  config_->OnCheck("maxmemory", [this](int64_t num) {
    size_t want = num > 0 ? static_cast<size_t>(num) : RamQuarter();
    size_t most = store_->MaxMemoryLimit();
    if (want <= most) return Status::OK();
    return Status::InvalidArgument(
        (num > 0 ? "maxmemory " + std::to_string(want)
                 : "maxmemory 0 (a quarter of RAM here: " + std::to_string(want) + ")") +
        " is more than this node can honour: its segment was reserved at start for at most " +
        std::to_string(most) + " bytes (" + BytesToHuman(most) +
        "); restart it with a larger maxmemory");
  });
  config_->OnChange("maxmemory-policy", [this](const Config& c) {
    store_->SetPolicy(static_cast<storage::EvictionPolicy>(c.Int("maxmemory-policy")));
  });
  config_->OnChange("maxmemory-samples", [this](const Config& c) {
    store_->SetMaxMemorySamples(static_cast<int>(c.Int("maxmemory-samples")));
  });
}

}  // namespace kvpool
