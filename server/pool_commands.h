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

bool PoolMGet(CommandContext& cx);
bool PoolMSet(CommandContext& cx);
bool PoolMSetNx(CommandContext& cx);
bool PoolMExists(CommandContext& cx);
// POOL MEXISTS key [key ...]: as MEXISTS, but -1 for a key whose node could
// not answer (the LLM client's batch_is_exist needs to tell "absent" from
// "unknown"). Always answers.
void PoolMExistsTriState(CommandContext& cx);
bool PoolDel(CommandContext& cx);     // DEL, UNLINK
bool PoolExists(CommandContext& cx);  // EXISTS, TOUCH (counts)
bool PoolDbSize(CommandContext& cx);
bool PoolKeys(CommandContext& cx);
bool PoolScan(CommandContext& cx);
bool PoolRandomKey(CommandContext& cx);
bool PoolFlush(CommandContext& cx);   // FLUSHDB, FLUSHALL
bool PoolRename(CommandContext& cx);  // RENAME, RENAMENX with keys on two nodes

// Decoded RESP2 reply (the subset peers send back for broadcasts).
struct RespValue {
  enum Type { kNil, kInteger, kString, kStatus, kError, kArray } type = kNil;
  int64_t integer = 0;
  std::string str;
  std::vector<RespValue> elements;
};
// Parses one complete RESP2 reply; false if malformed or incomplete.
bool ParseResp2(std::string_view bytes, RespValue* out);

}  // namespace kvpool
