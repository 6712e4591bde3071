#include "server/metrics_http.h"

#include <event2/buffer.h>

#include <cstdio>
#include <cstring>

#include "server/command_table.h"
#include "server/dispatcher.h"
#include "server/info.h"
#include "storage/pool/pool.h"

namespace kvpool {

namespace {

void Metric(std::string* out, const char* name, const char* type, const char* help, uint64_t v) {
  *out += "# HELP ";
  *out += name;
  *out += " ";
  *out += help;
  *out += "\n# TYPE ";
  *out += name;
  *out += " ";
  *out += type;
  *out += "\n";
  *out += name;
  *out += " " + std::to_string(v) + "\n";
}

// Replicas: per node (as this node sees it) slots as primary and replica,
// state and lag, and this node's catch-up.
void PoolReplicaMetrics(std::string* out, const pool::Pool& p) {
  if (p.replicas() < 2) return;
  auto nodes = p.Nodes();
  auto family = [&](const char* name, const char* help, auto value) {
    *out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n";
    for (int n = 0; n < p.nodes(); ++n)
      *out += std::string(name) + "{node=\"" + std::to_string(n) + "\",addr=\"" +
              p.node(n).Addr() + "\"} " + std::to_string(value(n)) + "\n";
  };
  family("kvpool_pool_node_slots_primary", "Slots the node holds as primary.",
         [&](int n) { return p.slots().PrimarySlots(n); });
  family("kvpool_pool_node_slots_replica", "Slots the node holds as replica.",
         [&](int n) { return p.slots().ReplicaSlots(n); });
  family("kvpool_pool_node_state", "0 down, 1 up (in sync), 2 syncing.", [&](int n) {
    return nodes[n].state == pool::NodeState::kUp ? 1 : nodes[n].state == pool::NodeState::kSyncing ? 2 : 0;
  });
  family("kvpool_pool_node_lag_ms",
         "How far behind the node may be: 0 in sync, else since it started syncing or was last heard.",
         [&](int n) { return nodes[n].lag_ms; });
  family("kvpool_pool_node_slots_unserved",
         "Slots the node is primary of that no copy in sync serves (writes refused, reads miss).",
         [&](int n) { return p.HasCopyServing(n) ? 0 : p.slots().PrimarySlots(n); });
  pool::SyncStats ss = p.sync_stats();
  Metric(out, "kvpool_pool_in_sync", "gauge", "1 once this node holds all its slots' keys.",
         ss.in_sync ? 1 : 0);
  Metric(out, "kvpool_pool_sync_keys_pulled_total", "counter",
         "Keys copied from other copies by catch-ups.", ss.keys_pulled);
  Metric(out, "kvpool_pool_replica_write_errors_total", "counter",
         "Writes a live copy did not take (the client got an error).", ss.replica_write_errors);
  Metric(out, "kvpool_pool_catch_up_sent_total", "counter",
         "Copies told to fetch keys again after a write to them failed in transit.",
         ss.catch_ups_sent);
  Metric(out, "kvpool_pool_catch_up_received_total", "counter",
         "Times this node was told to fetch keys again.", ss.catch_ups_received);
}

void Family(std::string* out, const char* name, const char* type, const char* help) {
  *out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

std::string Num(double v) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// Every node of the pool as this one sees it, with what this node sent it.
void PoolPeerMetrics(std::string* out, const pool::Pool& p) {
  auto nodes = p.Nodes();
  auto family = [&](const char* name, const char* type, const char* help, auto value) {
    Family(out, name, type, help);
    for (int n = 0; n < p.nodes(); ++n) {
      if (n == p.self()) continue;
      *out += std::string(name) + "{node=\"" + std::to_string(n) + "\",addr=\"" + p.node(n).Addr() +
              "\"} " + std::to_string(value(n)) + "\n";
    }
  };
  family("kvpool_pool_peer_up", "gauge", "1 while the peer answers heartbeats (up or syncing).",
         [&](int n) { return nodes[n].state != pool::NodeState::kDown ? 1 : 0; });
  family("kvpool_pool_peer_calls_total", "counter", "Calls this node made to the peer.",
         [&](int n) { return p.counters(n).calls.load(std::memory_order_relaxed); });
  family("kvpool_pool_peer_errors_total", "counter",
         "Calls to the peer that did not end OK (refused, timed out, link lost).",
         [&](int n) { return p.counters(n).errors.load(std::memory_order_relaxed); });
  family("kvpool_pool_peer_bytes_out_total", "counter", "Value bytes sent to the peer.",
         [&](int n) { return p.counters(n).bytes_out.load(std::memory_order_relaxed); });
  family("kvpool_pool_peer_bytes_in_total", "counter", "Value bytes received from the peer.",
         [&](int n) { return p.counters(n).bytes_in.load(std::memory_order_relaxed); });
}

// The transport's own counters, under its names: what an operator has of
// the link layer (frames or segments, MAC refusals, connections).
void PoolTransportMetrics(std::string* out, const pool::Pool& p) {
  for (const transport::TransportCounter& c : p.transport_counters()) {
    const std::string name = "kvpool_pool_transport_" + c.name + "_total";
    Family(out, name.c_str(), "counter", (std::string(p.transport_name()) + ": " + c.help).c_str());
    *out += name + " " + std::to_string(c.value) + "\n";
  }
}

// The series redis_exporter exports, under its names, so its dashboards
// and alerts work unchanged.
void RedisExporterMetrics(std::string* out, ServerContext& server) {
  Family(out, "redis_up", "gauge", "1: the node answers.");
  *out += "redis_up 1\n";
  Family(out, "redis_instance_info", "gauge", "Versions of the node (the value is 1).");
  *out += "redis_instance_info{redis_version=\"" + std::string(kRedisVersion) +
          "\",kvpool_version=\"" + std::string(kKvpoolVersion) + "\",redis_mode=\"" +
          (server.pool() != nullptr ? "cluster" : "standalone") + "\",tcp_port=\"" +
          std::to_string(server.tcp_port) + "\"} 1\n";
  Family(out, "redis_uptime_in_seconds", "gauge", "Seconds since the node started.");
  int64_t now = NowMs();
  *out += "redis_uptime_in_seconds " +
          std::to_string(server.start_ms > 0 ? (now - server.start_ms) / 1000 : 0) + "\n";
  Family(out, "redis_db_keys", "gauge", "Keys per database.");
  Family(out, "redis_db_keys_expiring", "gauge", "Keys with a TTL per database.");
  std::string expiring;
  storage::Store& store = server.store();
  for (int db = 0; db < store.databases(); ++db) {
    storage::DbStats st = store.GetDbStats(db);
    if (st.keys == 0 && db != 0) continue;
    std::string label = "{db=\"db" + std::to_string(db) + "\"} ";
    *out += "redis_db_keys" + label + std::to_string(st.keys) + "\n";
    expiring += "redis_db_keys_expiring" + label + std::to_string(st.expires) + "\n";
  }
  *out += expiring;

  const CommandStats& cs = server.command_stats();
  const auto& specs = server.commands().All();
  std::string calls, secs, rejected, failed, lat;
  for (size_t i = 0; i < specs.size(); ++i) {
    CommandStats::Totals t = cs.Sum(i);
    if (t.calls == 0 && t.rejected == 0) continue;
    std::string cmd = "cmd=\"" + std::string(specs[i].name) + "\"";
    calls += "redis_commands_total{" + cmd + "} " + std::to_string(t.calls) + "\n";
    secs += "redis_commands_duration_seconds_total{" + cmd + "} " +
            Num(static_cast<double>(t.usec) / 1e6) + "\n";
    rejected += "redis_commands_rejected_calls_total{" + cmd + "} " + std::to_string(t.rejected) + "\n";
    failed += "redis_commands_failed_calls_total{" + cmd + "} " + std::to_string(t.failed) + "\n";
    if (cs.LatencyCount(i) == 0) continue;
    for (double q : {50.0, 99.0, 99.9})
      lat += "redis_latency_percentiles_usec{" + cmd + ",quantile=\"" + Num(q / 100) + "\"} " +
             Num(cs.LatencyPercentile(i, q)) + "\n";
  }
  Family(out, "redis_commands_total", "counter", "Calls per command.");
  *out += calls;
  Family(out, "redis_commands_duration_seconds_total", "counter",
         "Seconds spent in each command.");
  *out += secs;
  Family(out, "redis_commands_rejected_calls_total", "counter",
         "Calls refused before they ran (arity, auth, OOM, MOVED).");
  *out += rejected;
  Family(out, "redis_commands_failed_calls_total", "counter", "Calls that answered an error.");
  *out += failed;
  Family(out, "redis_latency_percentiles_usec", "summary",
         "Per-command latency percentiles, microseconds (INFO latencystats).");
  *out += lat;
  Family(out, "redis_errors_total", "counter", "Error replies by error code (INFO errorstats).");
  for (const auto& [code, n] : cs.Errors())
    *out += "redis_errors_total{err=\"" + code + "\"} " + std::to_string(n) + "\n";

  const ServerStats& s = server.stats();
  storage::StoreStats st = store.GetStats();
  auto ld = [](const Counter& a) { return a.load(std::memory_order_relaxed); };
  Metric(out, "redis_connected_clients", "gauge", "Client connections open.",
         server.clients().Count());
  Metric(out, "redis_commands_processed_total", "counter", "Commands processed.",
         ld(s.commands));
  Metric(out, "redis_keyspace_hits_total", "counter", "Reads that found their key.",
         ld(s.keyspace_hits));
  Metric(out, "redis_keyspace_misses_total", "counter", "Reads that missed.",
         ld(s.keyspace_misses));
  Metric(out, "redis_memory_used_bytes", "gauge", "INFO used_memory.", UsedMemory(server, st));
  Metric(out, "redis_memory_max_bytes", "gauge", "maxmemory.", st.maxmemory);
  Metric(out, "redis_evicted_keys_total", "counter", "Keys evicted under maxmemory.",
         st.evicted_keys);
  Metric(out, "redis_expired_keys_total", "counter", "Keys removed by expiry.", st.expired_keys);
  Metric(out, "redis_net_input_bytes_total", "counter", "Bytes read from clients.",
         ld(s.net_input_bytes));
  Metric(out, "redis_net_output_bytes_total", "counter", "Bytes written to clients.",
         ld(s.net_output_bytes));
}

}  // namespace

std::string RenderMetrics(ServerContext& server) {
  std::string out;
  const ServerStats& s = server.stats();
  storage::StoreStats st = server.store().GetStats();
  auto ld = [](const Counter& a) { return a.load(std::memory_order_relaxed); };
  Metric(&out, "kvpool_commands_processed_total", "counter", "Commands processed.",
         ld(s.commands));
  Metric(&out, "kvpool_keyspace_hits_total", "counter", "Reads that found their key.",
         ld(s.keyspace_hits));
  Metric(&out, "kvpool_keyspace_misses_total", "counter", "Reads that missed.",
         ld(s.keyspace_misses));
  Metric(&out, "kvpool_keys", "gauge", "Keys in all databases of this node.", st.keys);
  Metric(&out, "kvpool_memory_used_bytes", "gauge", "Memory used by items and index.",
         st.used_memory);
  Metric(&out, "kvpool_memory_max_bytes", "gauge", "maxmemory.", st.maxmemory);
  Metric(&out, "kvpool_segment_bytes", "gauge", "Size of the reserved segment.",
         st.segment_bytes);
  Metric(&out, "kvpool_evicted_keys_total", "counter", "Keys evicted under maxmemory.",
         st.evicted_keys);
  Metric(&out, "kvpool_expired_keys_total", "counter", "Keys removed by expiry.",
         st.expired_keys);
  Metric(&out, "kvpool_connected_clients", "gauge", "Client connections open.",
         server.clients().Count());
  Metric(&out, "kvpool_connections_received_total", "counter", "Client connections accepted.",
         ld(s.connections_received));
  Metric(&out, "kvpool_rejected_connections_total", "counter",
         "Connections refused (maxclients).", ld(s.rejected_connections));
  Metric(&out, "kvpool_net_input_bytes_total", "counter", "Bytes read from clients.",
         ld(s.net_input_bytes));
  Metric(&out, "kvpool_net_output_bytes_total", "counter", "Bytes written to clients.",
         ld(s.net_output_bytes));
  if (server.pool() != nullptr) {
    PoolPeerMetrics(&out, *server.pool());
    PoolTransportMetrics(&out, *server.pool());
    PoolReplicaMetrics(&out, *server.pool());
  }
  RedisExporterMetrics(&out, server);
  return out;
}

MetricsHttp::~MetricsHttp() {
  if (http_) evhttp_free(http_);
}

Status MetricsHttp::Listen(const std::string& address, int port) {
  http_ = evhttp_new(base_);
  if (http_ == nullptr) return Status::Internal("evhttp_new failed");
  if (evhttp_bind_socket(http_, address.c_str(), static_cast<uint16_t>(port)) != 0)
    return Status::IOError("cannot listen for metrics on " + address + ":" +
                           std::to_string(port) + ": " + strerror(errno));
  evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
  evhttp_set_gencb(http_, &MetricsHttp::OnRequest, this);
  return Status::OK();
}

void MetricsHttp::OnRequest(evhttp_request* req, void* arg) {
  auto* self = static_cast<MetricsHttp*>(arg);
  const char* uri = evhttp_request_get_uri(req);
  if (uri == nullptr || (strcmp(uri, "/metrics") != 0 && strncmp(uri, "/metrics?", 9) != 0)) {
    evhttp_send_error(req, HTTP_NOTFOUND, "try /metrics");
    return;
  }
  std::string body = RenderMetrics(*self->server_);
  evbuffer* buf = evbuffer_new();
  evbuffer_add(buf, body.data(), body.size());
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                    "text/plain; version=0.0.4");
  evhttp_send_reply(req, HTTP_OK, "OK", buf);
  evbuffer_free(buf);
}

}  // namespace kvpool
