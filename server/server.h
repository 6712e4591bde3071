// The running node: the store, the command table, the listeners, the I/O
// threads and housekeeping. Created once by main().
#pragma once

#include <event2/event.h>
#include <event2/listener.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "server/command_table.h"
#include "server/config.h"
#include "server/io_thread.h"
#include "server/server_context.h"
#include "storage/segment/store.h"
#include "storage/transport/tls.h"

namespace kvpool {

class MetricsHttp;
class PoolExecutor;
namespace pool {
class Pool;
}
namespace transport {
class Transport;
}

class Server {
 public:
  // Builds the store (reserving the segment) and everything else; does not
  // listen yet.
  static StatusOr<std::unique_ptr<Server>> Create(Config* config, std::string config_file,
                                                  std::string executable);
  ~Server();

  // What Run tells its caller (the supervisor), on the main thread.
  struct RunHooks {
    // Once listening and serving: a one-line status ("Ready to accept ...").
    std::function<void(const std::string& status)> ready;
    // When shutdown begins, before connections are closed.
    std::function<void()> stopping;
  };

  // Listens, serves until RequestShutdown() or SIGTERM/SIGINT, then closes
  // every connection and returns. SIGHUP reopens the log file.
  [[nodiscard]] Status Run(const RunHooks& hooks = {});
  // Thread-safe.
  void RequestShutdown();

 private:
  Server() = default;
  [[nodiscard]] Status Listen();
  // One listener per bind address on `port`; `tls` picks the TLS accept.
  [[nodiscard]] Status ListenOn(int port, bool tls);
  // tls-port set: the context its clients' sessions use (bad files, a key
  // that does not match: the node does not start).
  [[nodiscard]] Status SetUpTls();
  // With two or more pool-nodes: this node's place, the transport, the pool.
  [[nodiscard]] Status SetUpPool();
  static void OnAccept(evconnlistener* l, evutil_socket_t fd, sockaddr* addr, int len, void* arg);
  static void OnAcceptTls(evconnlistener* l, evutil_socket_t fd, sockaddr* addr, int len,
                          void* arg);
  // accept() failed (EMFILE...): pause the listener for a moment instead of
  // spinning on a socket that stays readable.
  static void OnAcceptError(evconnlistener* l, void* arg);
  // As Redis: room for maxclients connections plus the server's own files.
  static void RaiseOpenFilesLimit(const Config& config);
  static void OnSignal(evutil_socket_t sig, short, void* arg);
  static void OnCron(evutil_socket_t, short, void* arg);
  void Accept(int fd, sockaddr* addr, bool tls);
  bool ProtectedModeRefuses(const sockaddr* addr) const;

  Config* config_ = nullptr;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<CommandTable> table_;
  std::unique_ptr<ServerContext> ctx_;
  event_base* base_ = nullptr;
  std::vector<evconnlistener*> listeners_;
  std::shared_ptr<const transport::TlsContext> tls_;  // null without tls-port
  std::vector<std::unique_ptr<IoThread>> threads_;
  std::vector<event*> thread_crons_;
  std::vector<std::unique_ptr<std::pair<IoThread*, ServerContext*>>> cron_holders_;
  std::vector<event*> events_;  // signals and cron on base_
  int cron_ticks_ = 0;
  size_t trim_rss_low_ = 0;   // lowest RSS since the last malloc_trim
  size_t trim_free_low_ = 0;  // lowest glibc free bytes since then
  std::unique_ptr<MetricsHttp> metrics_;
  std::unique_ptr<PoolExecutor> executor_;
  std::unique_ptr<transport::Transport> transport_;
  std::unique_ptr<pool::Pool> pool_;
  // The pool's control lane (heartbeats, catch-up): a loop of its own, no
  // clients, so a long request on an I/O thread cannot get this node
  // counted down. Its lane index is threads_.size().
  std::unique_ptr<IoThread> pool_thread_;
  std::atomic<uint32_t> next_thread_{0};
  std::atomic<bool> logged_accept_error_{false};
};

}  // namespace kvpool
