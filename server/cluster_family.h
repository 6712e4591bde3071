// The pool seen as a Redis Cluster (cluster_family.cc).
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "server/client_state.h"
#include "server/command.h"
#include "server/server_context.h"

namespace kvpool {

// With cluster-redirects yes: "MOVED <slot> <host>:<port>" for a command
// of exactly one key whose slot another node serves (its first copy in
// sync), unless the client is READONLY, the command only reads, and this
// node holds an in-sync copy of the slot; empty = serve it here. Needs a
// pool.
std::string MovedError(ServerContext& server, const ClientState& client, const CommandSpec& spec,
                       std::span<const std::string_view> args);

}  // namespace kvpool
