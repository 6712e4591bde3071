#include "server/config.h"

#include <cctype>
#include <sstream>

#include "server/util/strings.h"

namespace kvpool {

namespace {

constexpr int64_t kMaxBulk = int64_t{4} * 1024 * 1024 * 1024 - 1;  // item length field is 32-bit

std::vector<OptionSpec> BuildSpecs() {
  using T = OptionType;
  return {
      // ---- network ----
      {"port", T::kInt, "6379", false, "TCP port for clients.", 0, 65535},
      {"bind", T::kString, "127.0.0.1", false,
       "Addresses to listen on, space separated (e.g. \"127.0.0.1 ::1\")."},
      {"tcp-backlog", T::kInt, "511", false, "listen() backlog.", 1, 65535},
      {"tcp-keepalive", T::kInt, "300", true, "SO_KEEPALIVE interval in seconds; 0 = off.", 0,
       INT32_MAX},
      {"timeout", T::kInt, "0", true, "Close a client idle this many seconds; 0 = never.", 0,
       INT32_MAX},
      {"maxclients", T::kInt, "10000", true, "Most client connections at once.", 1, 1000000},
      {"io-threads", T::kInt, "0", false,
       "Event loops serving connections; 0 = auto: 1 below 4 CPU cores, else one per core but one.",
       0, 128},
      // ---- TLS (as Redis 6+; OpenSSL, TLSv1.2 and TLSv1.3 only) ----
      {"tls-port", T::kInt, "0", false,
       "TCP port for TLS clients; 0 = none. Both it and port may listen (port 0 = TLS only).", 0,
       65535},
      {"tls-cert-file", T::kString, "", false,
       "PEM certificate (chain) the node shows to clients and, with pool-tls, to peers."},
      {"tls-key-file", T::kString, "", false, "PEM private key of tls-cert-file."},
      {"tls-key-file-pass", T::kString, "", false, "Passphrase of tls-key-file, if it has one.",
       0, 0, {}, true},
      {"tls-ca-cert-file", T::kString, "", false,
       "PEM CA certificates client (and peer) certificates are verified against."},
      {"tls-ca-cert-dir", T::kString, "", false,
       "Directory of CA certificates (c_rehash layout), besides or instead of tls-ca-cert-file."},
      {"tls-auth-clients", T::kEnum, "yes", false,
       "yes = a TLS client must show a certificate the CA signed; optional = checked if shown; "
       "no = not asked for.",
       0, 0, {"no", "yes", "optional"}},
      {"tls-protocols", T::kString, "TLSv1.2 TLSv1.3", false,
       "TLS versions allowed, space separated: TLSv1.2, TLSv1.3."},
      {"tls-ciphers", T::kString, "", false,
       "TLSv1.2 cipher list (OpenSSL syntax); empty = OpenSSL's default."},
      {"tls-ciphersuites", T::kString, "", false,
       "TLSv1.3 cipher suites (OpenSSL syntax); empty = OpenSSL's default."},
      {"tls-prefer-server-ciphers", T::kBool, "no", false,
       "yes = the node's cipher order wins over the client's.", 0, 1},
      {"tls-handshake-timeout-ms", T::kInt, "10000", true,
       "A TLS client that has not finished its handshake this long after connecting is closed.",
       100, 600000},
      {"tls-cluster", T::kBool, "no", false,
       "Redis's name for pool-tls: yes = the pool's links use TLS.", 0, 1},
      {"tls-replication", T::kBool, "no", false,
       "Accepted from redis.conf: kvpool has no Redis replication (its copies travel on the pool "
       "links: pool-tls).",
       0, 1},
      // ---- limits ----
      {"proto-max-bulk-len", T::kMemory, "512mb", true, "Longest bulk argument (value) accepted.",
       1024 * 1024, kMaxBulk},
      {"client-query-buffer-limit", T::kMemory, "1gb", true,
       "Most bytes buffered for one client's unparsed input; a client over it is closed.",
       1024 * 1024, INT64_MAX},
      {"proto-max-args", T::kInt, "1048576", true,
       "Most arguments in one request (*<count>); more is a protocol error.", 1, 1 << 30},
      {"proto-inline-max-len", T::kMemory, "64kb", true,
       "Longest inline command line (and *, $ header line).", 64, 1 << 30},
      {"client-output-buffer-limit", T::kString, "normal 0 0 0", true,
       "For normal clients: <hard> <soft> <soft-seconds>. A client whose unsent replies "
       "(copies; values sent by reference, from the store or as a peer sent them, do not "
       "count) exceed hard, or stay over soft for soft-seconds, is closed. 0 = no limit, "
       "Redis's default."},
      // ---- memory ----
      {"maxmemory", T::kMemory, "0", true,
       "Bound on memory used by keys and values; 0 = a quarter of the machine's RAM. The "
       "segment is reserved at start for this size, so CONFIG SET refuses a larger one (lower, "
       "and back up to the start value, is fine)."},
      {"maxmemory-policy", T::kEnum, "allkeys-lru", true,
       "What to evict at maxmemory: noeviction allkeys-lru volatile-lru allkeys-random "
       "volatile-ttl.",
       0, 0, {"noeviction", "allkeys-lru", "volatile-lru", "allkeys-random", "volatile-ttl"}},
      {"maxmemory-samples", T::kInt, "5", true, "Keys sampled per eviction.", 1, 64},
      {"databases", T::kInt, "16", false, "Number of databases (SELECT 0..N-1).", 1, 1024},
      {"hz", T::kInt, "10", true, "Housekeeping runs per second (active expiry, timeouts).", 1,
       500},
      // ---- security ----
      {"requirepass", T::kString, "", true, "Password clients must AUTH with; empty = none.", 0,
       0, {}, true},
      {"protected-mode", T::kBool, "yes", true,
       "With no requirepass and a non-loopback bind, refuse clients that are not on loopback.",
       0, 1},
      {"disable-commands", T::kString, "", false,
       "Commands to switch off, space separated (e.g. \"flushall keys config shutdown\"); "
       "they answer as unknown commands. Also set by rename-command NAME \"\"."},
      // ---- logging and observability ----
      {"loglevel", T::kEnum, "notice", true, "debug verbose notice warning.", 0, 0,
       {"debug", "verbose", "notice", "warning"}},
      {"logfile", T::kString, "", false,
       "Log file (its directory must exist); empty = standard output. SIGHUP reopens it, so "
       "logrotate needs no copytruncate."},
      {"metrics-port", T::kInt, "-1", false,
       "Port serving Prometheus text at GET /metrics; -1 = 9121 (redis_exporter's port) when "
       "it is free, else off with a warning; 0 = off; N = this port (busy = error at start).",
       -1, 65535},
      {"pidfile", T::kString, "", false,
       "Write the process id here at start (a file that cannot be written is an error) and "
       "remove it at exit; empty = none (with daemonize yes: /var/run/kvpool.pid)."},
      {"supervised", T::kEnum, "no", false,
       "Tell a service manager the node is ready: no, upstart (SIGSTOP once ready), systemd "
       "(sd_notify READY=1 once accepting connections, STOPPING=1 at shutdown), auto (upstart "
       "if UPSTART_JOB is set, else systemd if NOTIFY_SOCKET is set, else no).",
       0, 0, {"no", "upstart", "systemd", "auto"}},
      // ---- the pool ----
      {"pool-nodes", T::kString, "", false,
       "Client address of every node of the pool, this one included, in the same order on "
       "every node: \"host:port[@poolport] ...\". Empty or one node = no pool."},
      {"pool-port", T::kInt, "0", false,
       "Port for node-to-node traffic; 0 = port + 10000 (or the @poolport of this node's "
       "pool-nodes entry).",
       0, 65535},
      {"transport", T::kEnum, "tcp", false, "Node-to-node transport: tcp or rdma.", 0, 0,
       {"tcp", "rdma"}},
      {"transport-fallback", T::kBool, "yes", false,
       "With transport rdma and no usable RDMA device: yes = use tcp, no = refuse to start. "
       "An RDMA plugin that cannot be loaded is always refused.",
       0, 1},
      {"pool-tls", T::kBool, "no", false,
       "yes = the pool's TCP links use TLS with tls-cert-file and tls-key-file, and each side "
       "verifies the other against tls-ca-cert-file. Every node must agree.",
       0, 1},
      {"pool-secret", T::kString, "", false,
       "Shared secret nodes prove to each other (HMAC challenge-response; never sent); every "
       "frame (tcp) or control message (rdma) after it also carries a MAC keyed from it. "
       "Empty = any peer may join, frames unauthenticated.",
       0, 0, {}, true},
      {"pool-timeout-ms", T::kInt, "3000", true,
       "Longest a request waits for the remote parts it needs.", 1, 600000},
      {"pool-heartbeat-ms", T::kInt, "100", false, "How often each node pings every other.", 10,
       10000},
      {"pool-down-after-ms", T::kInt, "1000", false,
       "A node that answers no heartbeat for this long is down.", 50, 600000},
      {"pool-max-batch", T::kInt, "4096", true, "Most keys in one call to one peer.", 1,
       1000000},
      {"pool-replicas", T::kInt, "1", false,
       "Copies of every slot, primary included, on distinct nodes (the primary and the next "
       "nodes of pool-nodes); writes are acknowledged once every live copy holds them. 1 = no "
       "copies. At most the number of nodes.",
       1, 1024},
      {"slowlog-log-slower-than", T::kInt, "10000", true,
       "Commands that run at least this many microseconds go to the slow log (SLOWLOG); "
       "0 logs every command, a negative value none.",
       -1, INT64_MAX},
      {"slowlog-max-len", T::kInt, "128", true, "Entries the slow log keeps (the oldest go).",
       0, INT64_MAX},
      {"latency-tracking", T::kBool, "yes", true,
       "yes = per-command latency percentiles in INFO latencystats.", 0, 1},
      {"latency-monitor-threshold", T::kInt, "0", true,
       "Commands that run at least this many milliseconds are LATENCY events ('command', or "
       "'fast-command' for O(1) ones); 0 = off.",
       0, INT64_MAX},
      {"cluster-redirects", T::kBool, "no", true,
       "yes = a single-key command for a slot another node serves answers -MOVED <slot> "
       "<host>:<port>, as Redis Cluster does, so strict cluster clients go to the owner; "
       "no = every node serves every key. Multi-key commands are served across slots either "
       "way.",
       0, 1},
      {"cluster-announce-ip", T::kString, "", true,
       "Address clients are told to reach this node at (CLUSTER SLOTS, SHARDS, NODES, MOVED), "
       "for a node behind NAT or in a container; empty = its pool-nodes entry's host. Other "
       "nodes learn it from heartbeats. At most 255 bytes."},
      {"cluster-announce-port", T::kInt, "0", true,
       "Client port clients are told to use for this node; 0 = its own port.", 0, 65535},
      {"rdma-plugin", T::kString, "", false,
       "The RDMA transport plugin (libkvpool-rdma.so, which links libibverbs and librdmacm), "
       "loaded only with transport rdma; empty = beside the kvpool-server executable, then in "
       "the installed lib/kvpool directory."},
      {"rdma-device", T::kString, "", false, "RDMA device (e.g. mlx5_0, rxe0); empty = first active."},
      {"rdma-port", T::kInt, "1", false, "Port of the RDMA device.", 1, 255},
      {"rdma-gid-index", T::kInt, "-1", false,
       "GID index for RoCE; -1 = the one rdma_cm picks for the address.", -1, 1024},
      {"rdma-staging-bytes", T::kMemory, "4mb", false,
       "Size of one registered staging buffer: the most value bytes one RDMA call moves (larger "
       "values move in chunks of this size).",
       64 * 1024, 1 << 30},
      {"rdma-staging-buffers", T::kInt, "8", false,
       "Staging buffers per I/O thread (calls wait for one when all are in use).", 1, 1024},
      {"rdma-queue-depth", T::kInt, "128", false, "Work requests per queue pair and direction.",
       8, 16384},
      // ---- persistence: kvpool is a cache; these exist so tools that read them work ----
      {"dir", T::kString, "", false,
       "Working directory: kvpool changes into it at start, as redis-server does, so relative "
       "logfile and pidfile paths (and include paths after it) lead there. kvpool writes no "
       "data files. Empty = where it was started."},
      {"save", T::kString, "", true, "Accepted for compatibility; kvpool never snapshots."},
      {"appendonly", T::kBool, "no", true,
       "Accepted for compatibility; kvpool keeps no append-only file (only 'no').", 0, 0},
      {"daemonize", T::kBool, "no", false,
       "yes = run in the background: the started process exits 0 once the daemon accepts "
       "connections (1 with the error if it fails); standard output and error go to the log "
       "file, or /dev/null.",
       0, 1},
  };
}

}  // namespace

const std::vector<OptionSpec>& Config::Specs() {
  static const std::vector<OptionSpec> specs = BuildSpecs();
  return specs;
}

Config::Config() {
  for (const OptionSpec& spec : Specs()) {
    Value& v = values_[spec.name];
    v.spec = &spec;
    int64_t num = 0;
    std::string canonical;
    Status s = Parse(spec, spec.default_value, &num, &canonical);
    (void)s;  // defaults are valid by construction; config_test checks it
    v.num.store(num);
    v.text = canonical;
  }
}

bool ParseMemory(std::string_view s, int64_t* out) {
  size_t i = 0;
  while (i < s.size() && isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == 0) {
    // Redis allows a negative number ("-1") for a few options; we do not.
    return false;
  }
  int64_t base;
  if (!ParseInt64(s.substr(0, i), &base)) return false;
  std::string unit = ToLower(s.substr(i));
  int64_t mul = 1;
  if (unit.empty() || unit == "b") mul = 1;
  else if (unit == "k") mul = 1000;
  else if (unit == "kb") mul = 1024;
  else if (unit == "m") mul = 1000 * 1000;
  else if (unit == "mb") mul = 1024 * 1024;
  else if (unit == "g") mul = 1000LL * 1000 * 1000;
  else if (unit == "gb") mul = 1024LL * 1024 * 1024;
  else return false;
  if (base > INT64_MAX / mul) return false;
  *out = base * mul;
  return true;
}

Status Config::Parse(const OptionSpec& spec, std::string_view in, int64_t* num,
                     std::string* canonical) const {
  switch (spec.type) {
    case OptionType::kInt: {
      int64_t v;
      if (!ParseInt64(in, &v)) return Status::InvalidArgument("argument couldn't be parsed into an integer");
      if (v < spec.min || v > spec.max)
        return Status::InvalidArgument("argument must be between " + std::to_string(spec.min) +
                                       " and " + std::to_string(spec.max) + " inclusive");
      *num = v;
      *canonical = std::to_string(v);
      return Status::OK();
    }
    case OptionType::kMemory: {
      int64_t v;
      if (!ParseMemory(in, &v)) return Status::InvalidArgument("argument must be a memory value");
      if (v != 0 || spec.min > 0) {
        if (v < spec.min || v > spec.max)
          return Status::InvalidArgument("argument must be between " + std::to_string(spec.min) +
                                         " and " + std::to_string(spec.max) + " inclusive");
      }
      *num = v;
      *canonical = std::to_string(v);
      return Status::OK();
    }
    case OptionType::kBool: {
      std::string l = ToLower(in);
      if (l != "yes" && l != "no") return Status::InvalidArgument("argument must be 'yes' or 'no'");
      // appendonly exists for compatibility and only takes "no".
      if (l == "yes" && spec.max == 0)
        return Status::InvalidArgument(std::string(spec.name) + " yes is not supported by kvpool");
      *num = l == "yes";
      *canonical = l;
      return Status::OK();
    }
    case OptionType::kEnum: {
      std::string l = ToLower(in);
      for (size_t i = 0; i < spec.choices.size(); ++i) {
        if (spec.choices[i] == l) {
          *num = static_cast<int64_t>(i);
          *canonical = l;
          return Status::OK();
        }
      }
      return Status::InvalidArgument("argument(s) must be one of the following: " +
                                     [&] {
                                       std::string all;
                                       for (auto& c : spec.choices) all += (all.empty() ? "" : ", ") + c;
                                       return all;
                                     }());
    }
    case OptionType::kString:
      if (std::string_view(spec.name) == "client-output-buffer-limit") {
        int64_t h, s, t;
        if (!ParseOutputLimit(in, &h, &s, &t))
          return Status::InvalidArgument("argument must be 'normal <hard> <soft> <soft-seconds>'");
      }
      *num = 0;
      *canonical = std::string(in);
      return Status::OK();
  }
  return Status::Internal("bad option type");
}

Config::Value* Config::Find(std::string_view name) {
  auto it = values_.find(ToLower(name));
  return it == values_.end() ? nullptr : &it->second;
}

const Config::Value* Config::Find(std::string_view name) const {
  auto it = values_.find(ToLower(name));
  return it == values_.end() ? nullptr : &it->second;
}

Status Config::Set(std::string_view name, std::string_view value, bool startup) {
  return SetValue(name, value, startup, /*check=*/!startup);
}

Status Config::Restore(std::string_view name, std::string_view value) {
  return SetValue(name, value, /*startup=*/false, /*check=*/false);
}

Status Config::SetValue(std::string_view name, std::string_view value, bool startup, bool check) {
  Value* v = Find(name);
  if (v == nullptr) return Status::NotFound("Unknown option or number of arguments for CONFIG SET - '" + std::string(name) + "'");
  if (!startup && !v->spec->runtime)
    return Status::InvalidArgument("can't set immutable config");
  std::string merged;
  if (v->spec->name == std::string_view("client-output-buffer-limit")) {
    // As Redis: each class given replaces that class's limits, the others stay.
    std::string current;
    {
      std::lock_guard<std::mutex> l(mu_);
      current = v->text;
    }
    if (!MergeOutputLimit(current, value, &merged))
      return Status::InvalidArgument(
          "argument must be '<class> <hard> <soft> <soft-seconds>' groups, class normal, "
          "replica or pubsub");
    value = merged;
  }
  int64_t num;
  std::string canonical;
  Status s = Parse(*v->spec, value, &num, &canonical);
  if (!s.ok()) return s;
  if (check) {
    std::vector<std::function<Status(int64_t)>> checks;
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = checks_.find(v->spec->name);
      if (it != checks_.end()) checks = it->second;
    }
    for (auto& check : checks) {
      s = check(num);
      if (!s.ok()) return s;
    }
  }
  std::vector<std::function<void(const Config&)>> hooks;
  {
    std::lock_guard<std::mutex> l(mu_);
    v->text = std::move(canonical);
    v->num.store(num, std::memory_order_release);
    if (!startup) {
      auto it = hooks_.find(v->spec->name);
      if (it != hooks_.end()) hooks = it->second;
    }
  }
  for (auto& h : hooks) h(*this);
  return Status::OK();
}

Status Config::RenameCommand(std::string_view command, std::string_view new_name) {
  if (!new_name.empty())
    return Status::InvalidArgument(
        "kvpool can only disable a command (rename-command NAME \"\"), not rename it");
  std::string list = String("disable-commands");
  return Set("disable-commands", list.empty() ? std::string(command) : list + " " + std::string(command),
             true);
}

bool Config::Get(std::string_view name, std::string* value) const {
  const Value* v = Find(name);
  if (v == nullptr) return false;
  std::lock_guard<std::mutex> l(mu_);
  *value = v->text;
  return true;
}

std::vector<std::pair<std::string, std::string>> Config::Match(std::string_view pattern) const {
  std::vector<std::pair<std::string, std::string>> out;
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& [name, v] : values_) {
    if (GlobMatch(pattern, name, true)) out.emplace_back(name, v.text);
  }
  return out;
}

void Config::OnCheck(const std::string& name, std::function<Status(int64_t num)> check) {
  std::lock_guard<std::mutex> l(mu_);
  checks_[name].push_back(std::move(check));
}

void Config::OnChange(const std::string& name, std::function<void(const Config&)> hook) {
  std::lock_guard<std::mutex> l(mu_);
  hooks_[name].push_back(std::move(hook));
}

int64_t Config::Int(std::string_view name) const {
  const Value* v = Find(name);
  return v == nullptr ? 0 : v->num.load(std::memory_order_acquire);
}

std::string Config::String(std::string_view name) const {
  std::string s;
  (void)Get(name, &s);
  return s;
}

bool SplitArgs(std::string_view line, std::vector<std::string>* out) {
  out->clear();
  size_t i = 0;
  const size_t n = line.size();
  auto hexval = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  while (true) {
    while (i < n && isspace(static_cast<unsigned char>(line[i]))) ++i;
    if (i >= n) return true;
    std::string cur;
    bool inq = false, insq = false;
    while (true) {
      if (inq) {
        if (i >= n) return false;
        if (line[i] == '\\' && i + 3 < n && line[i + 1] == 'x' && hexval(line[i + 2]) >= 0 &&
            hexval(line[i + 3]) >= 0) {
          cur.push_back(static_cast<char>(hexval(line[i + 2]) * 16 + hexval(line[i + 3])));
          i += 3;
        } else if (line[i] == '\\' && i + 1 < n) {
          ++i;
          switch (line[i]) {
            case 'n': cur.push_back('\n'); break;
            case 'r': cur.push_back('\r'); break;
            case 't': cur.push_back('\t'); break;
            case 'b': cur.push_back('\b'); break;
            case 'a': cur.push_back('\a'); break;
            default: cur.push_back(line[i]); break;
          }
        } else if (line[i] == '"') {
          if (i + 1 < n && !isspace(static_cast<unsigned char>(line[i + 1]))) return false;
          inq = false;
          ++i;
          break;
        } else {
          cur.push_back(line[i]);
        }
      } else if (insq) {
        if (i >= n) return false;
        if (line[i] == '\\' && i + 1 < n && line[i + 1] == '\'') {
          ++i;
          cur.push_back('\'');
        } else if (line[i] == '\'') {
          if (i + 1 < n && !isspace(static_cast<unsigned char>(line[i + 1]))) return false;
          insq = false;
          ++i;
          break;
        } else {
          cur.push_back(line[i]);
        }
      } else {
        if (i >= n || isspace(static_cast<unsigned char>(line[i]))) break;
        if (line[i] == '"') inq = true;
        else if (line[i] == '\'') insq = true;
        else cur.push_back(line[i]);
      }
      ++i;
    }
    out->push_back(std::move(cur));
  }
}

std::string Config::DefaultConfFile() {
  std::ostringstream o;
  o << "# kvpool configuration. Every option, commented out, at its default.\n"
       "# Start a node with: kvpool-server conf/kvpool.conf [--option value ...]\n"
       "# Each option can also be given on the command line as --option value,\n"
       "# and options marked (runtime) can be changed with CONFIG SET.\n";
  for (const OptionSpec& s : Specs()) {
    o << "\n# " << s.help << (s.runtime ? " (runtime)" : "") << "\n";
    std::string def = s.default_value;
    if (def.empty() || def.find(' ') != std::string::npos) def = "\"" + def + "\"";
    o << "# " << s.name << " " << def << "\n";
  }
  return o.str();
}

bool MergeOutputLimit(std::string_view current, std::string_view update, std::string* merged) {
  std::vector<std::string> cur, upd;
  if (!SplitArgs(current, &cur) || !SplitArgs(update, &upd) || upd.empty() || upd.size() % 4 != 0)
    return false;
  // Redis's classes, in the order it lists them; "slave" is replica's old name.
  const char* kClasses[] = {"normal", "replica", "pubsub"};
  std::string groups[3];
  auto put = [&](const std::vector<std::string>& a, size_t i) {
    std::string cls = ToLower(a[i]);
    if (cls == "slave") cls = "replica";
    int64_t h, s, t;
    if (!ParseMemory(a[i + 1], &h) || !ParseMemory(a[i + 2], &s) || !ParseInt64(a[i + 3], &t) ||
        t < 0)
      return false;
    for (int c = 0; c < 3; ++c) {
      if (cls != kClasses[c]) continue;
      groups[c] = cls + " " + a[i + 1] + " " + a[i + 2] + " " + a[i + 3];
      return true;
    }
    return false;
  };
  for (size_t i = 0; i + 3 < cur.size(); i += 4) (void)put(cur, i);
  for (size_t i = 0; i < upd.size(); i += 4)
    if (!put(upd, i)) return false;
  merged->clear();
  for (const std::string& g : groups)
    if (!g.empty()) *merged += (merged->empty() ? "" : " ") + g;
  return true;
}

bool ParseOutputLimit(std::string_view text, int64_t* hard, int64_t* soft, int64_t* secs) {
  std::vector<std::string> a;
  if (!SplitArgs(text, &a) || a.size() % 4 != 0) return false;
  bool found = false;
  for (size_t i = 0; i < a.size(); i += 4) {
    int64_t h, s, t;
    if (!ParseMemory(a[i + 1], &h) || !ParseMemory(a[i + 2], &s) || !ParseInt64(a[i + 3], &t) ||
        t < 0)
      return false;
    if (a[i] == "normal") {
      *hard = h;
      *soft = s;
      *secs = t;
      found = true;
    }
  }
  return found;
}

}  // namespace kvpool
