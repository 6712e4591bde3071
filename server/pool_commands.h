// The pool side of commands that cover every node (KEYS, SCAN, DBSIZE,
// RANDOMKEY, FLUSHDB/FLUSHALL): broadcast, replies merged. Each
// returns false when the command should take its local path (no pool, a
// command forwarded here by a peer, or every key on this node); true when
// it has answered (now, or later through a deferred reply).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "server/command.h"

namespace kvpool {

bool PoolDbSize(CommandContext& cx);
bool PoolKeys(CommandContext& cx);
bool PoolScan(CommandContext& cx);
bool PoolRandomKey(CommandContext& cx);
bool PoolFlush(CommandContext& cx);   // FLUSHDB, FLUSHALL

}  // namespace kvpool
