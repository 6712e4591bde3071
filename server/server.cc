#include "server/server.h"
#include "server/info.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include <spdlog/spdlog.h>

#include "protocol/lazy_free.h"
#include "server/connection.h"
#include "server/dispatcher.h"
#include "server/errors.h"
#include "server/heap_usage.h"
#include "server/logging.h"
#include "server/metrics_http.h"
#include "server/pool_executor.h"
#include "storage/pool/pool.h"
#include "storage/transport/rdma_plugin.h"
#include "storage/transport/transport.h"

namespace kvpool {

namespace {

constexpr const char* kVersion = "0.1.0";

std::string SockaddrText(const sockaddr* sa) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    port = ntohs(in->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    port = ntohs(in6->sin6_port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

std::string LocalAddr(int fd) {
  sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?:0";
  return SockaddrText(reinterpret_cast<sockaddr*>(&ss));
}

}  // namespace

// The tls-* options, for the client listener and (pool-tls) the pool links.
transport::TlsOptions TlsOptionsFrom(const Config& c) {
  transport::TlsOptions o;
  o.cert_file = c.String("tls-cert-file");
  o.key_file = c.String("tls-key-file");
  o.key_file_pass = c.String("tls-key-file-pass");
  o.ca_cert_file = c.String("tls-ca-cert-file");
  o.ca_cert_dir = c.String("tls-ca-cert-dir");
  o.auth_clients = static_cast<transport::TlsAuthClients>(c.Int("tls-auth-clients"));
  o.protocols = c.String("tls-protocols");
  o.ciphers = c.String("tls-ciphers");
  o.ciphersuites = c.String("tls-ciphersuites");
  o.prefer_server_ciphers = c.Int("tls-prefer-server-ciphers") != 0;
  return o;
}

Status Server::SetUpTls() {
  if (config_->Int("tls-port") == 0) return Status::OK();
  auto ctx = transport::TlsContext::Create(TlsOptionsFrom(*config_),
                                           transport::TlsContext::Role::kServer);
  if (!ctx.ok()) return ctx.status();
  tls_ = std::move(ctx.value());
  return Status::OK();
}

std::string PoolInfoSection(ServerContext& s);  // pool_family.cc

Status Server::SetUpPool() {
  std::vector<pool::NodeSpec> nodes;
  Status s = pool::ParseNodes(config_->String("pool-nodes"), &nodes);
  if (!s.ok()) return s;
  if (nodes.size() < 2) return Status::OK();  // a single node: no pool

  // This node is the entry with our client port on one of our addresses.
  int port = static_cast<int>(config_->Int("port"));
  std::vector<std::string> binds;
  (void)SplitArgs(config_->String("bind"), &binds);
  auto is_ours = [&](const std::string& host) {
    for (std::string b : binds) {
      if (!b.empty() && b[0] == '-') b = b.substr(1);
      if (b == host || b == "*" || b == "0.0.0.0" || b == "::") return true;
      if ((host == "localhost" || host == "127.0.0.1") && (b == "127.0.0.1" || b == "localhost"))
        return true;
    }
    return false;
  };
  // Each node's index is in the low 8 bits of the versions it stamps.
  if (nodes.size() > 256)
    return Status::InvalidArgument("pool-nodes lists " + std::to_string(nodes.size()) +
                                   " nodes; a pool holds at most 256");
  int self = -1;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].port != port || !is_ours(nodes[i].host)) continue;
    if (self >= 0)
      return Status::InvalidArgument("pool-nodes: this node matches both " +
                                     nodes[self].Addr() + " and " + nodes[i].Addr());
    self = static_cast<int>(i);
  }
  if (self < 0)
    return Status::InvalidArgument("pool-nodes does not list this node (port " +
                                   std::to_string(port) + " on " + config_->String("bind") + ")");
  int pool_port = static_cast<int>(config_->Int("pool-port"));
  if (pool_port != 0 && pool_port != nodes[self].pool_port)
    return Status::InvalidArgument("pool-port " + std::to_string(pool_port) +
                                   " differs from this node's pool-nodes entry " +
                                   nodes[self].Addr() + "@" +
                                   std::to_string(nodes[self].pool_port));

  transport::TransportOptions to;
  to.self = self;
  for (const auto& n : nodes) to.peers.push_back({n.host, n.pool_port});
  to.bind_host = binds.empty() ? "127.0.0.1" : binds[0];
  if (!to.bind_host.empty() && to.bind_host[0] == '-') to.bind_host = to.bind_host.substr(1);
  to.listen_port = nodes[self].pool_port;
  to.secret = config_->String("pool-secret");
  // A forwarded command carries its arguments (values up to
  // proto-max-bulk-len) in the call body, and its reply may hold such a
  // value: both limits must admit the largest legal value. They bound what
  // a peer may announce, not what is allocated up front.
  to.max_bulk = static_cast<uint64_t>(config_->Int("proto-max-bulk-len")) + (64u << 20);
  to.max_body = to.max_bulk;
  to.rdma_device = config_->String("rdma-device");
  to.rdma_port = static_cast<int>(config_->Int("rdma-port"));
  to.rdma_gid_index = static_cast<int>(config_->Int("rdma-gid-index"));
  to.staging_bytes = static_cast<size_t>(config_->Int("rdma-staging-bytes"));
  to.staging_buffers = static_cast<int>(config_->Int("rdma-staging-buffers"));
  to.rdma_queue_depth = static_cast<int>(config_->Int("rdma-queue-depth"));
  // The segment is registered once, so values move straight between it and
  // the wire (READ into a prepared item, WRITE from a pinned one).
  to.regions.push_back({store_->segment_base(), store_->segment_size()});
  if (to.secret.empty())
    spdlog::warn("pool: pool-secret is empty: any process that can reach port {} can join",
                 to.listen_port);

  bool want_rdma = config_->String("transport") == "rdma";
  if (config_->Int("pool-tls") || config_->Int("tls-cluster")) {
    // Same certificates as the client listener; both ends verify the other.
    if (want_rdma)
      return Status::InvalidArgument("pool-tls: TLS covers the tcp transport only, not rdma");
    auto tls = transport::TlsContext::Create(TlsOptionsFrom(*config_),
                                             transport::TlsContext::Role::kPeer);
    if (!tls.ok()) return Status::InvalidArgument("pool-tls: " + tls.status().message());
    to.tls = std::move(tls.value());
  }
  if (want_rdma) {
    // A plugin that cannot be loaded is an install or config error, not a
    // machine without RDMA: refused whatever transport-fallback says.
    auto plugin = transport::LoadRdmaPlugin(config_->String("rdma-plugin"));
    if (!plugin.ok()) return plugin.status();
    auto t = plugin.value()->create(to);
    if (t.ok()) {
      transport_ = std::move(t.value());
    } else if (config_->Int("transport-fallback")) {
      spdlog::warn("pool: transport rdma unavailable ({}); using tcp (transport-fallback yes)",
                   t.status().message());
    } else {
      return Status::Unavailable("transport rdma unavailable (" + t.status().message() +
                                 ") and transport-fallback is no");
    }
  }
  if (!transport_) {
    auto t = transport::CreateTcpTransport(to);
    if (!t.ok()) return t.status();
    transport_ = std::move(t.value());
  }

  pool::PoolOptions po;
  po.nodes = nodes;
  po.self = self;
  po.timeout_ms = static_cast<int>(config_->Int("pool-timeout-ms"));
  po.heartbeat_ms = static_cast<int>(config_->Int("pool-heartbeat-ms"));
  po.down_after_ms = static_cast<int>(config_->Int("pool-down-after-ms"));
  po.max_batch_keys = static_cast<size_t>(config_->Int("pool-max-batch"));
  po.replicas = static_cast<int>(config_->Int("pool-replicas"));
  po.free_large = &protocol::DeleteArrayLater;
  if (po.replicas > static_cast<int>(nodes.size()))
    return Status::InvalidArgument("pool-replicas " + std::to_string(po.replicas) +
                                   " is more than the " + std::to_string(nodes.size()) +
                                   " nodes of pool-nodes");
  store_->SetVersionNode(static_cast<uint8_t>(self));
  executor_ = std::make_unique<PoolExecutor>(ctx_.get());
  pool_ = std::make_unique<pool::Pool>(po, store_.get(), transport_.get(), executor_.get());
  ctx_->set_pool(pool_.get());
  // The address cluster clients are told to use for this node.
  pool::Pool* pool = pool_.get();
  auto announce = [pool](const Config& c) {
    std::string host = c.String("cluster-announce-ip");
    if (host.size() > 255) host.clear();
    pool->SetAnnounce(std::move(host), static_cast<int>(c.Int("cluster-announce-port")));
  };
  announce(*config_);
  config_->OnChange("cluster-announce-ip", announce);
  config_->OnChange("cluster-announce-port", announce);
  ServerContext* ctx = ctx_.get();
  ctx_->pool_info = [ctx] { return PoolInfoSection(*ctx); };
  spdlog::info("pool: node {} of {} ({}), transport {}, pool port {}", self, nodes.size(),
               nodes[self].Addr(), transport_->name(), to.listen_port);
  return Status::OK();
}

StatusOr<std::unique_ptr<Server>> Server::Create(Config* config, std::string config_file,
                                                 std::string executable) {
  std::unique_ptr<Server> s(new Server());
  s->config_ = config;
  RaiseOpenFilesLimit(*config);
  storage::StoreOptions so;
  so.maxmemory = EffectiveMaxMemory(*config);
  so.policy = static_cast<storage::EvictionPolicy>(config->Int("maxmemory-policy"));
  so.maxmemory_samples = static_cast<int>(config->Int("maxmemory-samples"));
  so.databases = static_cast<int>(config->Int("databases"));
  // An RDMA-registered segment must keep its physical pages: giving freed
  // pages back to the kernel would leave the NIC pointing at the old ones.
  if (config->String("transport") == "rdma") so.release_free_pages = false;
  auto store = storage::Store::Open(so);
  if (!store.ok()) return store.status();
  s->store_ = std::move(store.value());
  s->table_ = std::make_unique<CommandTable>(CommandTable::Build());
  std::vector<std::string> disabled;
  if (!SplitArgs(config->String("disable-commands"), &disabled))
    return Status::InvalidArgument("disable-commands: unbalanced quotes");
  for (const std::string& name : disabled) {
    if (!s->table_->Disable(name))
      return Status::InvalidArgument("disable-commands: no command named '" + name + "'");
    spdlog::info("command {} is disabled", name);
  }

  int threads = static_cast<int>(config->Int("io-threads"));
  if (threads <= 0) threads = AutoIoThreads(static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)));
  s->ctx_ = std::make_unique<ServerContext>(config, s->store_.get(), s->table_.get(), threads);
  s->ctx_->start_ms = NowMs();
  s->ctx_->tcp_port = static_cast<int>(config->Int("port"));
  s->ctx_->executable = std::move(executable);
  s->ctx_->config_file = std::move(config_file);
  Server* raw = s.get();
  s->ctx_->request_shutdown = [raw] { raw->RequestShutdown(); };
  config->OnChange("loglevel", [](const Config& c) { SetLogLevel(c.String("loglevel")); });

  s->base_ = event_base_new();
  if (s->base_ == nullptr) return Status::Internal("event_base_new failed");
  for (int i = 0; i < threads; ++i) {
    auto t = std::make_unique<IoThread>(i);
    Status st = t->Init();
    if (!st.ok()) return st;
    s->threads_.push_back(std::move(t));
  }
  if (Status ts = s->SetUpTls(); !ts.ok()) return ts;
  Status ps = s->SetUpPool();
  if (!ps.ok()) return ps;
  return s;
}

Server::~Server() {
  for (auto* l : listeners_) evconnlistener_free(l);
  for (auto* e : thread_crons_) event_free(e);
  for (auto* e : events_) event_free(e);
  // Freeing the signal events restored SIG_DFL; a second SIGTERM during the
  // rest of the teardown must not turn a clean shutdown into a kill (nor a
  // SIGHUP from logrotate).
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  metrics_.reset();
  if (ctx_) ctx_->set_pool(nullptr);
  pool_.reset();
  transport_.reset();  // after StopLane ran on every lane, before the bases go
  threads_.clear();    // after their loops stopped (Run)
  if (base_) event_base_free(base_);
}

// As Redis: port and tls-port both listen when set; port 0 = TLS only.
Status Server::Listen() {
  int port = static_cast<int>(config_->Int("port"));
  int tls_port = static_cast<int>(config_->Int("tls-port"));
  if (port == 0 && tls_port == 0)
    return Status::InvalidArgument("port and tls-port are both 0: nothing to listen on");
  if (port != 0) {
    if (Status s = ListenOn(port, false); !s.ok()) return s;
  }
  if (tls_port != 0) {
    if (Status s = ListenOn(tls_port, true); !s.ok()) return s;
  }
  return Status::OK();
}

Status Server::ListenOn(int port, bool tls) {
  int backlog = static_cast<int>(config_->Int("tcp-backlog"));
  std::vector<std::string> addrs;
  if (!SplitArgs(config_->String("bind"), &addrs) || addrs.empty())
    return Status::InvalidArgument("bind: no address");
  for (std::string a : addrs) {
    bool optional = !a.empty() && a[0] == '-';  // Redis: "-::1" may fail quietly
    if (optional) a = a.substr(1);
    if (a == "*") a = "0.0.0.0";
    sockaddr_storage ss{};
    int len = sizeof(ss);
    std::string text = a.find(':') != std::string::npos ? "[" + a + "]:" + std::to_string(port)
                                                        : a + ":" + std::to_string(port);
    if (evutil_parse_sockaddr_port(text.c_str(), reinterpret_cast<sockaddr*>(&ss), &len) != 0)
      return Status::InvalidArgument("bind: cannot parse address '" + a + "'");
    evconnlistener* l = evconnlistener_new_bind(
        base_, tls ? &Server::OnAcceptTls : &Server::OnAccept, this, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, backlog,
        reinterpret_cast<sockaddr*>(&ss), len);
    if (l == nullptr) {
      if (optional) continue;
      return Status::IOError("could not listen on " + text + ": " + strerror(errno));
    }
    evconnlistener_set_error_cb(l, &Server::OnAcceptError);
    listeners_.push_back(l);
  }
  return Status::OK();
}

void Server::RaiseOpenFilesLimit(const Config& config) {
  // Clients, listeners, pool peers, log and metrics files, libevent's own.
  constexpr rlim_t kReserved = 64;
  rlim_t want = static_cast<rlim_t>(config.Int("maxclients")) + kReserved;
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want) return;
  rlim_t target = rl.rlim_max == RLIM_INFINITY ? want : std::min(want, rl.rlim_max);
  rlimit raised{target, rl.rlim_max};
  if (target > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &raised) == 0) rl.rlim_cur = target;
  if (rl.rlim_cur < want)
    spdlog::warn("open files limit is {}: fewer than maxclients {} clients can connect (raise "
                 "ulimit -n to at least {})", rl.rlim_cur, config.Int("maxclients"), want);
}

void Server::OnAcceptError(evconnlistener* l, void* arg) {
  auto* self = static_cast<Server*>(arg);
  int err = EVUTIL_SOCKET_ERROR();
  if (!self->logged_accept_error_.exchange(true))
    spdlog::warn("accept failed: {} (logged once; the listener pauses 100 ms after each failure)",
                 strerror(err));
  // The pending connection stays in the backlog and keeps the socket
  // readable: without a pause the loop would spin (and log) at full speed.
  evconnlistener_disable(l);
  // Re-enables every listener still open (none once shutdown freed them).
  timeval tv{0, 100 * 1000};
  event_base_once(
      self->base_, -1, EV_TIMEOUT,
      [](evutil_socket_t, short, void* server) {
        for (auto* listener : static_cast<Server*>(server)->listeners_) evconnlistener_enable(listener);
      },
      self, &tv);
}

void Server::OnAccept(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int, void* arg) {
  static_cast<Server*>(arg)->Accept(fd, addr, false);
}

void Server::OnAcceptTls(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int, void* arg) {
  static_cast<Server*>(arg)->Accept(fd, addr, true);
}

// A TLS client refused is closed without the plaintext error (it would
// read it as a broken handshake). Half-open TLS handshakes count against
// maxclients as any connection does, and last tls-handshake-timeout-ms.
void Server::Accept(int fd, sockaddr* addr, bool tls) {
  ServerStats& stats = ctx_->stats();
  if (ctx_->clients().Count() >= static_cast<size_t>(config_->Int("maxclients"))) {
    ssize_t ignored = tls ? 0
                          : send(fd, errors::kMaxClients, strlen(errors::kMaxClients),
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)ignored;  // best effort, as Redis
    close(fd);
    stats.rejected_connections.fetch_add(1, std::memory_order_relaxed);
    LogLimitOnce(stats.logged_maxclients, "refused a client: maxclients reached");
    return;
  }
  if (ProtectedModeRefuses(addr)) {
    ssize_t ignored = tls ? 0
                          : send(fd, errors::kProtectedMode, strlen(errors::kProtectedMode),
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)ignored;  // best effort, as Redis
    close(fd);
    stats.protected_mode_rejections.fetch_add(1, std::memory_order_relaxed);
    LogLimitOnce(stats.logged_protected_mode,
                 "refused a non-loopback client: protected mode (no requirepass)");
    return;
  }
  stats.connections_received.fetch_add(1, std::memory_order_relaxed);
  evutil_make_socket_nonblocking(fd);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  int keepalive = static_cast<int>(config_->Int("tcp-keepalive"));
  if (keepalive > 0) {
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &keepalive, sizeof(keepalive));
  }
  std::string peer = SockaddrText(addr), local = LocalAddr(fd);
  IoThread* t = threads_[next_thread_.fetch_add(1) % threads_.size()].get();
  auto conn = std::make_shared<std::unique_ptr<Connection>>(
      std::make_unique<Connection>(ctx_.get(), t, fd, peer, local, tls ? tls_ : nullptr));
  t->Post([t, conn] { t->Adopt(std::move(*conn)); });
}

// Protected mode (as Redis): no password, and we listen beyond loopback, so
// only loopback peers are let in.
bool Server::ProtectedModeRefuses(const sockaddr* addr) const {
  if (!config_->Int("protected-mode") || ctx_->hot().requirepass_set.load()) return false;
  bool loopback_only = true;
  std::vector<std::string> binds;
  (void)SplitArgs(config_->String("bind"), &binds);
  for (std::string b : binds) {
    if (!b.empty() && b[0] == '-') b = b.substr(1);
    if (b != "127.0.0.1" && b != "::1" && b != "localhost" && b.rfind("127.", 0) != 0)
      loopback_only = false;
  }
  if (loopback_only) return false;
  if (addr->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(addr);
    return (ntohl(in->sin_addr.s_addr) >> 24) != 127;
  }
  if (addr->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(addr);
    if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) return false;
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) return in6->sin6_addr.s6_addr[12] != 127;
    return true;
  }
  return false;  // unix sockets are local
}

void Server::OnSignal(evutil_socket_t sig, short, void* arg) {
  if (sig == SIGHUP) {
    // As logrotate's postrotate expects: the file was renamed away, lines go
    // to a new one at the configured path from now on.
    if (LogFilePath().empty()) {
      spdlog::info("Received SIGHUP: logging to standard output, no log file to reopen");
    } else if (Status s = ReopenLog(); s.ok()) {
      spdlog::info("Received SIGHUP, reopened the log file {}", LogFilePath());
    } else {
      spdlog::warn("Received SIGHUP: {}; still logging to the old file", s.message());
    }
    return;
  }
  spdlog::warn("Received {}, scheduling shutdown...", sig == SIGINT ? "SIGINT" : "SIGTERM");
  static_cast<Server*>(arg)->RequestShutdown();
}

void Server::RequestShutdown() { event_base_loopbreak(base_); }

void Server::OnCron(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Server*>(arg);
  int hz = static_cast<int>(self->config_->Int("hz"));
  // Active expiry may use a quarter of one core, as Redis's slow cycle does.
  self->store_->Tick(NowMs(), 250000 / std::max(hz, 1));
  // Once a second: give memory that glibc holds free back to the kernel when
  // there is much of it (main.cc keeps large freed buffers for reuse).
  if (++self->cron_ticks_ >= hz) {
    self->cron_ticks_ = 0;
    // Trimmed pages stay counted as free, so trim only when RSS or the free
    // bytes grew by a slack over their lowest since the last trim. Lowest,
    // not "at the trim": a trim while big buffers were still in use would
    // otherwise set a mark that later growth never passes.
    constexpr size_t kSlack = 32 << 20;
    size_t rss = ResidentSetBytes();
    size_t free_bytes = HeapBytesFree();
    self->trim_rss_low_ = std::min(self->trim_rss_low_, rss);
    self->trim_free_low_ = std::min(self->trim_free_low_, free_bytes);
    if (free_bytes > kSlack && (rss > self->trim_rss_low_ + kSlack ||
                                free_bytes > self->trim_free_low_ + kSlack)) {
      ReleaseFreeHeap();
      self->trim_rss_low_ = ResidentSetBytes();
      self->trim_free_low_ = HeapBytesFree();
    }
  }
}

Status Server::Run(const RunHooks& hooks) {
  Status s = Listen();
  if (!s.ok()) return s;

  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    event* ev = evsignal_new(base_, sig, &Server::OnSignal, this);
    event_add(ev, nullptr);
    events_.push_back(ev);
  }
  int hz = static_cast<int>(config_->Int("hz"));
  event* cron = event_new(base_, -1, EV_PERSIST, &Server::OnCron, this);
  timeval tv{0, 1000000 / std::max(hz, 1)};
  event_add(cron, &tv);
  events_.push_back(cron);

  // Idle timeouts and output limits, checked once a second on each I/O thread.
  for (auto& t : threads_) {
    IoThread* tp = t.get();
    ServerContext* ctx = ctx_.get();
    auto* holder = new std::pair<IoThread*, ServerContext*>(tp, ctx);
    event* ev = event_new(
        tp->base(), -1, EV_PERSIST,
        [](evutil_socket_t, short, void* arg) {
          auto* p = static_cast<std::pair<IoThread*, ServerContext*>*>(arg);
          int64_t timeout_ms = p->second->config().Int("timeout") * 1000;
          int64_t now = NowMs();
          std::vector<Connection*> conns;
          p->first->ForEach([&](Connection& c) { conns.push_back(&c); });
          for (Connection* c : conns) c->Cron(now, timeout_ms);
        },
        holder);
    timeval one{1, 0};
    event_add(ev, &one);
    thread_crons_.push_back(ev);
    cron_holders_.emplace_back(holder);
  }

  int metrics_port = static_cast<int>(config_->Int("metrics-port"));
  bool metrics_default = metrics_port < 0;
  if (metrics_default) metrics_port = kDefaultMetricsPort;
  if (metrics_port > 0) {
    metrics_ = std::make_unique<MetricsHttp>(base_, ctx_.get());
    std::vector<std::string> addrs;
    (void)SplitArgs(config_->String("bind"), &addrs);
    Status ms = metrics_->Listen(addrs.empty() ? "127.0.0.1" : addrs[0], metrics_port);
    if (!ms.ok() && !metrics_default) return ms;
    if (!ms.ok()) {
      // The default port is taken (another node on this host, or
      // redis_exporter itself): the node starts without /metrics.
      spdlog::warn("metrics: {}; /metrics is off (set metrics-port to a free port)", ms.message());
      metrics_.reset();
    } else {
      spdlog::info("metrics: Prometheus text at http://{}:{}/metrics",
                   addrs.empty() ? "127.0.0.1" : addrs[0], metrics_port);
    }
  }

  if (pool_) {
    pool_thread_ = std::make_unique<IoThread>(static_cast<int>(threads_.size()));
    if (Status st = pool_thread_->Init(); !st.ok()) return st;
    pool_thread_->WatchLag(&ctx_->stats().io_loop_max_lag_us, &ctx_->stats().io_loop_max_busy_us);
    std::vector<event_base*> lanes;
    for (auto& t : threads_) lanes.push_back(t->base());
    lanes.push_back(pool_thread_->base());
    Status ps = pool_->Start(lanes);
    if (!ps.ok()) return ps;
    pool_->StartHeartbeats(pool_thread_->base(), static_cast<int>(threads_.size()));
    pool_thread_->Start();
  }
  for (auto& t : threads_) ctx_->lane_bases.push_back(t->base());
  for (auto& t : threads_) {
    t->WatchLag(&ctx_->stats().io_loop_max_lag_us, &ctx_->stats().io_loop_max_busy_us);
    t->Start();
  }
  storage::StoreStats st = store_->GetStats();
  spdlog::info("kvpool {} ready to accept connections on {} port {} tls-port {} (io-threads {}, "
               "maxmemory {} bytes, policy {}, segment {} bytes)",
               kVersion, config_->String("bind"), config_->Int("port"), config_->Int("tls-port"),
               threads_.size(),
               st.maxmemory, config_->String("maxmemory-policy"), st.segment_bytes);
  if (hooks.ready)
    hooks.ready("Ready to accept connections on " + config_->String("bind") + " port " +
                std::to_string(config_->Int("port")));

  event_base_dispatch(base_);

  if (hooks.stopping) hooks.stopping();
  spdlog::info("shutting down: closing listeners and {} clients", ctx_->clients().Count());
  for (auto* l : listeners_) evconnlistener_free(l);
  listeners_.clear();
  if (pool_) {
    for (auto& t : threads_) {
      int lane = t->index();
      pool::Pool* p = pool_.get();
      t->Post([p, lane] { p->StopLane(lane); });
    }
    int lane = pool_thread_->index();
    pool::Pool* p = pool_.get();
    pool_thread_->Post([p, lane] { p->StopLane(lane); });
    pool_thread_->Stop();
  }
  for (auto& t : threads_) t->Stop();
  for (auto& t : threads_) t->Join();
  if (pool_thread_) pool_thread_->Join();
  spdlog::info("kvpool is now ready to exit, bye bye...");
  return Status::OK();
}

}  // namespace kvpool
