// Transactions: MULTI EXEC DISCARD WATCH UNWATCH, as Redis 7.0.
//
// Queueing is the dispatcher's: inside MULTI every command not flagged
// kCmdNoMulti is checked (unknown, arity, auth, OOM), then queued with
// "+QUEUED"; a failed check sets client.multi_error so EXEC aborts. The
// dispatcher runs EXEC holding the ExecGate exclusively, so the queued
// commands run with no other client's command in between.
//
// WATCH registers the keys with the store under one token per client; any
// write, delete, expiry, eviction or flush of a watched key sets the token
// dirty, and EXEC then replies a null array without running anything. In a
// pool, the dispatcher's routing watches keys of other nodes by version and
// forwards a transaction to the node owning its keys, where EXEC checks the
// versions it was given (ClientState::exec_versions).

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/command_table.h"
#include "server/dispatcher.h"
#include "server/errors.h"
#include "server/server_context.h"

namespace kvpool {

namespace {

void Unwatch(CommandContext& cx) {
  ClientState& c = cx.client();
  c.remote_watches.clear();
  if (!c.watch) return;
  cx.store().Unwatch(c.watch);
  c.watch.reset();
}

// Leaves MULTI and forgets the queue and the watches (DISCARD, EXEC).
void EndTransaction(CommandContext& cx) {
  ClientState& c = cx.client();
  c.in_multi = false;
  c.multi_error = false;
  c.queued.clear();
  c.info->multi_queued.store(-1, std::memory_order_relaxed);
  c.remote_watches.clear();
  c.exec_versions.clear();
  Unwatch(cx);
}

// False if a watched key changed: a local WATCH saw a write, or (for a
// transaction a peer forwarded) a key no longer has the version the peer
// watched (0 = absent). Runs under the EXEC gate, so nothing changes after.
bool WatchesHold(CommandContext& cx) {
  ClientState& c = cx.client();
  if (c.watch && c.watch->dirty.load(std::memory_order_acquire)) return false;
  for (const auto& [key, version] : c.exec_versions) {
    storage::ItemRef item = cx.store().Peek(cx.db(), key, cx.now_ms());
    if ((item ? item.version() : 0) != version) return false;
  }
  return true;
}

void CmdMulti(CommandContext& cx) {
  ClientState& c = cx.client();
  if (c.in_multi) {
    // As Redis: an error, but the open transaction is not marked failed.
    cx.reply().Error(errors::kMultiNested);
    return;
  }
  c.in_multi = true;
  c.multi_error = false;
  c.queued.clear();
  c.info->multi_queued.store(0, std::memory_order_relaxed);
  cx.reply().Ok();
}

void CmdExec(CommandContext& cx) {
  ClientState& c = cx.client();
  if (!c.in_multi) {
    cx.reply().Error(errors::kExecWithoutMulti);
    return;
  }
  if (c.multi_error) {
    EndTransaction(cx);
    cx.reply().Error(errors::kExecAbort);
    return;
  }
  if (!WatchesHold(cx)) {
    EndTransaction(cx);
    cx.reply().NullArray();  // RESP2 "*-1", RESP3 "_"
    return;
  }
  // Take the queue and leave MULTI first: the queued commands run as plain
  // commands, and the watches are no longer needed.
  std::vector<std::vector<std::string>> queued = std::move(c.queued);
  EndTransaction(cx);
  ServerStats& stats = cx.server().stats();
  cx.reply().ArrayHeader(queued.size());
  std::vector<std::string_view> args;
  // Each queued command answers at once, into the array, from this node's
  // store: none may defer (with replicas, the caller relays what the
  // transaction wrote to the other copies afterwards).
  auto defer = std::move(c.defer);
  c.defer = nullptr;
  for (const std::vector<std::string>& command : queued) {
    args.assign(command.begin(), command.end());
    stats.commands.fetch_add(1, std::memory_order_relaxed);
    Execute(cx.server(), c, cx.reply(), args, cx.now_ms());
  }
  c.defer = std::move(defer);
}

void CmdDiscard(CommandContext& cx) {
  if (!cx.client().in_multi) {
    cx.reply().Error(errors::kDiscardWithoutMulti);
    return;
  }
  EndTransaction(cx);
  cx.reply().Ok();
}

void CmdWatch(CommandContext& cx) {
  ClientState& c = cx.client();
  if (c.in_multi) {
    // Run at once (kCmdNoMulti) to answer this; the transaction stays valid.
    cx.reply().Error(errors::kWatchInMulti);
    return;
  }
  if (!c.watch) c.watch = std::make_shared<storage::WatchToken>();
  for (size_t i = 1; i < cx.argc(); ++i) cx.store().Watch(cx.db(), cx.arg(i), c.watch);
  cx.reply().Ok();
}

void CmdUnwatch(CommandContext& cx) {
  Unwatch(cx);
  cx.reply().Ok();
}

}  // namespace

void RegisterTransactionFamily(CommandTable& t) {
  constexpr uint32_t LS = kCmdLoading | kCmdStale, F = kCmdFast, N = kCmdNoMulti;
  // name, arity, flags, first_key, last_key, key_step, handler, group, summary
  // MULTI, EXEC, DISCARD and WATCH act at once inside MULTI; UNWATCH is
  // queued, as in Redis.
  t.Add({"multi", 1, LS | F | N, 0, 0, 0, CmdMulti, "transactions",
         "Mark the start of a transaction block"});
  t.Add({"exec", 1, LS | N, 0, 0, 0, CmdExec, "transactions",
         "Execute all commands issued after MULTI"});
  t.Add({"discard", 1, LS | F | N, 0, 0, 0, CmdDiscard, "transactions",
         "Discard all commands issued after MULTI"});
  t.Add({"watch", -2, LS | F | N, 1, -1, 1, CmdWatch, "transactions",
         "Watch the given keys to determine execution of the MULTI/EXEC block"});
  t.Add({"unwatch", 1, LS | F, 0, 0, 0, CmdUnwatch, "transactions",
         "Forget about all watched keys"});
}

}  // namespace kvpool
