// Prometheus text exposition at GET /metrics on metrics-port (evhttp).
#pragma once

#include <event2/event.h>
#include <event2/http.h>

#include <string>

#include "server/server_context.h"
#include "storage/util/status.h"

namespace kvpool {

// The metrics page as Prometheus text format 0.0.4.
std::string RenderMetrics(ServerContext& server);

// metrics-port -1 (the default) listens here when the port is free:
// redis_exporter's port, where Redis dashboards already scrape.
inline constexpr int kDefaultMetricsPort = 9121;

class MetricsHttp {
 public:
  MetricsHttp(event_base* base, ServerContext* server) : base_(base), server_(server) {}
  ~MetricsHttp();
  [[nodiscard]] Status Listen(const std::string& address, int port);

 private:
  static void OnRequest(evhttp_request* req, void* arg);
  event_base* base_;
  ServerContext* server_;
  evhttp* http_ = nullptr;
};

}  // namespace kvpool
