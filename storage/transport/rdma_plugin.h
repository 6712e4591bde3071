// The RDMA transport as a plugin: kvpool-server does not link libibverbs or
// librdmacm. The RDMA transport (rdma_*.cc) is built into its own shared
// object, libkvpool-rdma.so, which links them; the server dlopens it only
// when `transport rdma` is configured, so a TCP-only node starts on a
// machine without rdma-core's libraries.
//
// The plugin exports one C symbol, kvpool_rdma_plugin (rdma_plugin.map
// hides everything else, so its private copies of the transport's common
// code never clash with the server's), which returns an RdmaPlugin. The
// Transport interface crosses the boundary as C++ (virtual calls, Status,
// std::function), so the plugin must come from the same build as the server:
// abi and the sizes below catch the plain mismatches.
//
// Where it is looked for (first that exists wins; the first one that exists
// but does not load is an error, never skipped):
//   1. `rdma-plugin PATH` when set (then nothing else);
//   2. next to the executable (/proc/self/exe's directory: the build tree,
//      where CMake puts it beside server/kvpool-server);
//   3. <exe dir>/../<libdir>/kvpool/ (the installed layout, relative so the
//      install prefix may move).
// The handle is never closed: the transport's code and vtables live there.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "storage/transport/transport.h"

namespace kvpool::transport {

inline constexpr const char* kRdmaPluginFile = "libkvpool-rdma.so";
inline constexpr const char* kRdmaPluginSymbol = "kvpool_rdma_plugin";
// Bump when Transport, TransportOptions, Status or RdmaPlugin change shape.
inline constexpr uint32_t kRdmaPluginAbi = 2;  // 2: Transport::Counters

struct RdmaPlugin {
  uint32_t abi;            // kRdmaPluginAbi of the plugin's build
  uint32_t options_size;   // sizeof(TransportOptions) there
  uint32_t status_size;    // sizeof(Status) there
  StatusOr<std::unique_ptr<Transport>> (*create)(const TransportOptions& o);
};

// Loads the plugin (once per path; later calls return the same one).
// `path` empty = search as above. kUnavailable with a message naming the
// library and every path tried (and dlerror's reason, e.g. a missing
// libibverbs.so.1) when it cannot be loaded, or when it is not a kvpool
// RDMA plugin of this build.
[[nodiscard]] StatusOr<const RdmaPlugin*> LoadRdmaPlugin(const std::string& path);

// The paths searched when `rdma-plugin` is empty, in order.
std::vector<std::string> RdmaPluginSearchPath();

}  // namespace kvpool::transport

extern "C" const kvpool::transport::RdmaPlugin* kvpool_rdma_plugin();
