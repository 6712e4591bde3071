// The pool side of commands that split by owner or cover every node. Each
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
bool PoolRename(CommandContext& cx);  // RENAME, RENAMENX with keys on two nodes

}  // namespace kvpool
