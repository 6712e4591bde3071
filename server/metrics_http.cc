#include "server/metrics_http.h"

#include <event2/buffer.h>

#include <cstring>

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
  if (server.pool() != nullptr) PoolReplicaMetrics(&out, *server.pool());
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
