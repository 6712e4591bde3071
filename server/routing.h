// Where a command runs when this node is part of a pool: on this node, on
// the single node that owns all its keys (forwarded whole, answered later),
// or nowhere (keys on several nodes, for commands that cannot split).
// Commands flagged kCmdPoolAware split themselves (pool_commands.cc).
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/reply_builder.h"
#include "server/client_state.h"
#include "server/command.h"
#include "server/server_context.h"

namespace kvpool {

// Calls fn(key) for each key argument of `args`, until fn returns false:
// MEMORY USAGE's one key, else those at the spec's first/last/step (none
// for commands without keys).
template <typename Fn>
void ForEachCommandKey(const CommandSpec& spec, std::span<const std::string_view> args, Fn&& fn);

// The key arguments of `args` (ForEachCommandKey's).
std::vector<std::string_view> CommandKeys(const CommandSpec& spec,
                                          std::span<const std::string_view> args);

// Runs `args` on this node only, as a fresh authenticated client of `db`
// speaking `resp`, and returns the encoded reply. What peers' forwarded
// commands run through, and how a read of a key whose owner is down is
// answered (this node does not hold the key: the reply is the "missing"
// one).
std::string RunLocally(ServerContext& server, int lane, int db, int resp,
                       std::span<const std::string_view> args);
// The same into `sink` (large values by reference: ReplySink::WriteRef).
void RunLocallyInto(ServerContext& server, int lane, int db, int resp,
                    std::span<const std::string_view> args, protocol::ReplySink* sink);

// For a command with keys and not pool-aware: true if it was handled here
// (forwarded to the owner, or refused); false if it should run locally.
bool RouteByKeys(ServerContext& server, ClientState& client, protocol::ReplyBuilder& reply,
                 const CommandSpec& spec, std::span<const std::string_view> args, int64_t now_ms);

// EXEC with a pool: true if handled (forwarded whole to the one node that
// owns every key of the transaction, or refused); false = run locally.
bool RouteExec(ServerContext& server, ClientState& client, protocol::ReplyBuilder& reply);

// WATCH with a pool: true if handled (some keys live elsewhere: their
// versions are fetched and remembered, local keys are watched here).
bool RouteWatch(ServerContext& server, ClientState& client, protocol::ReplyBuilder& reply,
                std::span<const std::string_view> args, int64_t now_ms);

// ---- template definitions ----

bool IsMemoryUsage(const CommandSpec& spec, std::span<const std::string_view> args);

template <typename Fn>
void ForEachCommandKey(const CommandSpec& spec, std::span<const std::string_view> args, Fn&& fn) {
  // Container commands whose subcommand takes a key (as Redis's key specs
  // of MEMORY|USAGE say).
  if (IsMemoryUsage(spec, args)) {
    fn(args[2]);
    return;
  }
  if (spec.first_key <= 0 || args.size() <= static_cast<size_t>(spec.first_key)) return;
  const int argc = static_cast<int>(args.size());
  const int last = spec.last_key < 0 ? argc + spec.last_key : spec.last_key;
  const int step = spec.key_step > 0 ? spec.key_step : 1;
  for (int i = spec.first_key; i <= last && i < argc; i += step)
    if (!fn(args[i])) return;
}

}  // namespace kvpool
