#include "server/metrics_http.h"

#include <event2/buffer.h>

#include <cstring>

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
