// Finding and loading libkvpool-rdma.so (see rdma_plugin.h). Linked into
// the server; nothing here touches verbs.
#include "storage/transport/rdma_plugin.h"

#include <dlfcn.h>
#include <limits.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <map>
#include <mutex>

#ifndef KVPOOL_RDMA_PLUGIN_RELDIR
#define KVPOOL_RDMA_PLUGIN_RELDIR "../lib/kvpool"
#endif

namespace kvpool::transport {

namespace {

std::string ExeDir() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return {};
  std::string p(buf, static_cast<size_t>(n));
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? std::string() : p.substr(0, slash);
}

// Opens `path` and checks it is a plugin of this build. The handle is kept
// (never closed) on success.
StatusOr<const RdmaPlugin*> Open(const std::string& path) {
  dlerror();
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* err = dlerror();
    return Status::Unavailable(err ? err : path + ": dlopen failed");
  }
  using Entry = const RdmaPlugin* (*)();
  auto entry = reinterpret_cast<Entry>(dlsym(h, kRdmaPluginSymbol));
  if (entry == nullptr) {
    dlclose(h);
    return Status::Unavailable(path + " does not export " + kRdmaPluginSymbol +
                               ": not a kvpool RDMA plugin");
  }
  const RdmaPlugin* p = entry();
  if (p == nullptr || p->abi != kRdmaPluginAbi || p->options_size != sizeof(TransportOptions) ||
      p->status_size != sizeof(Status) || p->create == nullptr) {
    std::string got = p == nullptr ? std::string("no plugin description")
                                   : "abi " + std::to_string(p->abi) + ", options size " +
                                         std::to_string(p->options_size);
    dlclose(h);
    return Status::Unavailable(path + " is from another kvpool build (" + got +
                               "; this server: abi " + std::to_string(kRdmaPluginAbi) +
                               ", options size " + std::to_string(sizeof(TransportOptions)) +
                               "): use the one built with this kvpool-server");
  }
  spdlog::info("rdma: loaded the RDMA transport plugin {}", path);
  return p;
}

}  // namespace

std::vector<std::string> RdmaPluginSearchPath() {
  std::string dir = ExeDir();
  if (dir.empty()) return {};
  return {dir + "/" + kRdmaPluginFile,
          dir + "/" + KVPOOL_RDMA_PLUGIN_RELDIR + "/" + kRdmaPluginFile};
}

StatusOr<const RdmaPlugin*> LoadRdmaPlugin(const std::string& path) {
  static std::mutex mu;
  static std::map<std::string, const RdmaPlugin*> loaded;
  std::lock_guard<std::mutex> lock(mu);
  auto it = loaded.find(path);
  if (it != loaded.end()) return it->second;

  StatusOr<const RdmaPlugin*> p = Status::Unavailable("unset");
  if (!path.empty()) {
    p = Open(path);
    if (!p.ok())
      return Status::Unavailable("cannot load the RDMA transport plugin " + path + " (rdma-plugin): " +
                                 p.status().message());
  } else {
    std::vector<std::string> tried = RdmaPluginSearchPath();
    std::string where;
    bool found = false;
    for (const std::string& candidate : tried) {
      if (access(candidate.c_str(), F_OK) != 0) {
        where += (where.empty() ? "" : ", ") + candidate;
        continue;
      }
      // It is there: load it or say why not (never skip to the next one).
      found = true;
      p = Open(candidate);
      if (!p.ok())
        return Status::Unavailable(std::string("cannot load the RDMA transport plugin ") +
                                   kRdmaPluginFile + ": " + p.status().message());
      break;
    }
    if (!found)
      return Status::Unavailable(std::string("cannot load the RDMA transport plugin ") +
                                 kRdmaPluginFile + ": not found (looked for " +
                                 (where.empty() ? std::string("nothing: no /proc/self/exe") : where) +
                                 "); install it beside kvpool-server or name it with rdma-plugin");
  }
  loaded[path] = p.value();
  return p.value();
}

}  // namespace kvpool::transport
