// How the multi-key commands (MGET, MSET, MEXISTS, EXISTS, DEL/UNLINK) reach
// their keys: the one place that chooses between this node's Store and the
// pool. A family handler parses its arguments, calls one of these with a
// function that writes its reply from per-key results, and returns.
//
// With a pool, the call goes through pool::Pool, which answers the keys held
// here at once and sends the rest to their nodes. Without one (a single
// node), or for a command a peer forwarded here, the Store answers. Either
// way results are in the caller's key order, and `reply` runs exactly once:
// before the call returns when every key was answered here (it writes into
// the client's reply builder), or later on the client's thread (into a
// deferred reply; it must then touch only what it captured by value).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "protocol/reply_builder.h"
#include "server/command.h"
#include "storage/pool/pool.h"

namespace kvpool::keys {

using GetReply = std::function<void(protocol::ReplyBuilder&, std::vector<pool::GetResult>&)>;
// Per key: 1 present (or removed), 0 absent, -1 its node could not answer.
// `failed` says why some key's node could not answer, naming it (or,
// with replicas, the slots no copy in sync serves); "" if every one did.
using FlagsReply = std::function<void(protocol::ReplyBuilder&, std::vector<int8_t>& flags,
                                      std::string_view failed)>;
// `failed` keys were not stored; `status` says why (OK when none failed).
using SetReply = std::function<void(protocol::ReplyBuilder&, const Status& status, size_t failed)>;

// Values of `keys` (GetResult::kFound, kMissing, or kUnavailable when the
// node holding the key could not answer).
void MultiGet(CommandContext& cx, std::span<const std::string_view> keys, GetReply reply);
// Presence of `keys`; never refreshes a TTL or changes eviction order.
void MultiExists(CommandContext& cx, std::span<const std::string_view> keys, FlagsReply reply);
// As MultiExists, but a read of each key: refreshes its access time (LRU)
// on the copy that answers, as TOUCH.
void MultiTouch(CommandContext& cx, std::span<const std::string_view> keys, FlagsReply reply);
// Removes `keys`.
void MultiDel(CommandContext& cx, std::span<const std::string_view> keys, FlagsReply reply);
// Stores kvs = k1, v1, k2, v2 ... (an even count), with no expiry. Atomic on
// each node (pool::Pool::MultiSet).
void MultiSet(CommandContext& cx, std::span<const std::string_view> kvs, SetReply reply);
// MSETNX: stores kvs (an even count) only if none of their keys exists.
// `error` non-empty: the error reply (the owner's own, or why the check or
// the write failed); else written is 1 (stored) or 0 (a key exists). Atomic
// when one node holds every key (it runs there, ordered by the primary with
// replicas); across nodes, an existence check then the writes, and another
// client may create a key in between.
using SetNxReply =
    std::function<void(protocol::ReplyBuilder&, int written, std::string_view error)>;
void MultiSetNx(CommandContext& cx, std::span<const std::string_view> kvs, SetNxReply reply);
// RENAME / RENAMENX (nx) of src to dst. On one node (here, or run there
// whole, atomically; ordered by the primary with replicas). Across nodes:
// the value and TTL are read from src's node, written to dst's (NX for
// RENAMENX), then src is deleted: not atomic against other clients. A value
// over 1 MiB moves in steps as MGET and MSET move it; its NX is a check
// before the write and its TTL a PEXPIREAT after.
enum class RenameResult { kRenamed, kNoSuchKey, kDestinationExists, kError };
using RenameReply =
    std::function<void(protocol::ReplyBuilder&, RenameResult result, std::string_view error)>;
void Rename(CommandContext& cx, std::string_view src, std::string_view dst, bool nx,
            RenameReply reply);
// A plain SET (no options) of a value over 1 MiB: stored as an MSET of one
// key (MultiSet, the same semantics), so that over a pool its value moves
// in steps of pool::kTransferStep rather than as one forwarded command.
// argv: SET key value ...
inline bool SetByPairs(std::span<const std::string_view> argv) {
  return argv.size() == 3 && argv[2].size() > (1u << 20);
}

// True when a read of `key` is answered by another node (this node is in a
// pool and is not the copy reads of the key go to): GET then reads it
// through MultiGet, whose values move in steps of pool::kTransferStep,
// rather than as one forwarded command whose reply is one frame.
bool ReadsElsewhere(CommandContext& cx, std::string_view key);

// Every copy of `key` (pool::Pool::Copies), primary first. Without a pool,
// or when the caller cannot wait for a later answer, this node's own copy
// alone, as this node sees it.
using CopiesReply = std::function<void(protocol::ReplyBuilder&, std::vector<pool::CopyInfo>&)>;
void Copies(CommandContext& cx, std::string_view key, CopiesReply reply);

}  // namespace kvpool::keys
