// Opcodes of the calls nodes make to each other, and the layout of their
// bodies (encoded with codec.h). Values never travel in bodies: they move
// through the call's bulk regions (one-sided over RDMA, inline over TCP).
#pragma once

#include <cstdint>

namespace kvpool::pool {

enum Opcode : uint16_t {
  // {} -> {node u32, keys u64, used_memory u64, maxmemory u64}
  kOpPing = 1,
  // {db u32, n u32, key*n} -> {n x (state u8, total u64, sent u64, version u64)}
  // Found values are written to bulk_out in key order while they fit; a
  // value that does not fit is reported with sent 0 and fetched later.
  kOpMultiGet = 2,
  // {db u32, key, version u64, offset u64, len u64} -> {state u8, total u64, version u64}
  // Writes value[offset, offset+len) to bulk_out if the version still holds.
  kOpGetChunk = 3,
  // {db u32, n u32, n x (key, len u64, bulk_offset u64)} -> {}
  // Values are read from bulk_in; all published atomically on the owner.
  kOpMultiSet = 4,
  // {db u32, key, total u64[, version u64, expire_at_ms i64]} -> {handle
  // u64}: space for one large value (version and expiry: a primary's relay,
  // published with kPutEndGiven).
  kOpPutBegin = 5,
  // {handle u64, offset u64} + bulk_in -> {}: fills part of it.
  kOpPutChunk = 6,
  // {handle u64, publish u8 (PutEndMode)} -> {}: publishes (or drops) it.
  kOpPutEnd = 7,
  // {db u32, n u32, key*n} -> {n x u8 (1 present, 0 absent)}
  kOpMultiExists = 8,
  // {db u32, n u32, key*n} -> {n x u8 (1 removed)}
  kOpMultiDel = 9,
  // {db u32, resp u8, argc u32, arg*argc} -> RESP reply bytes
  kOpCommand = 10,
  // {db u32, resp u8, ncmd u32, (argc u32, arg*argc)*ncmd, nwatch u32, (key, version u64)*nwatch}
  //   -> RESP reply bytes of EXEC
  kOpTransaction = 11,
  // {db u32, n u32, key*n} -> {n x version u64 (0 = absent)}
  kOpVersions = 12,
  // Catch-up of a syncing replica (replica.cc). Entries are
  // {state u8, expire_at_ms i64, total u64, sent u64, version u64}; found
  // values are written to bulk_out in order while they fit, the rest are
  // reported with sent 0 and fetched with kOpGetChunk.
  // {db u32, cursor u64, max_keys u32, slot bitmap (bytes, kSlots bits)}
  //   -> {next_cursor u64, n u32, n x (key, entry)}: live keys of those slots.
  kOpSyncScan = 13,
  // {n u32, n x (db u32, key)} -> {n x entry}: the current state of keys.
  kOpSyncKeys = 14,
  // {} -> {}: a write the caller sent to this node failed in transit (timed
  // out, or the link broke) while other copies may have taken it. This node
  // may miss it, or take it late, after a newer write of the same key: it
  // catches up again from the other copies (replica.cc).
  kOpCatchUp = 15,
  // {db u32, n u32, n x (key, len u64, fingerprint u64)} -> {}: the caller
  // evicted these keys (evict.cc); a copy holding the same value drops it.
  kOpEvicted = 16,
  // {} -> {}: the caller took writes of this node's slots without it while
  // it counted it down: it catches up again, whole (replica.cc).
  kOpResync = 17,
  // An MSET part too large for one call, published at once (batch.cc):
  // {db u32} -> {handle u64}: an empty staged batch; then kOpStageSet calls
  // fill it, and kOpPutEnd {handle, publish} publishes (or drops) it whole.
  kOpStageBegin = 18,
  // {handle u64, n u32, n x (key, len u64, bulk_offset u64)} -> {}: values
  // read from bulk_in into the batch, invisible until it is published.
  kOpStageSet = 19,
  // {db u32, key} -> {present u8, version u64, digest u64}: what this node
  // holds of the key (POOL COPIES, copies.cc); version and digest (Hash64
  // of the value, storage/util/digest.h) are 0 when absent or expired.
  kOpCopy = 20,
  // Ordered replicas (ordered.cc): a write of a slot goes to its primary,
  // the first copy in sync, which stamps it with a version from its store's
  // clock, applies it, and relays the result to the other copies (kOpApply)
  // before it replies. A call for keys this node is not the primary of
  // fails (kAborted).
  // Both may end with {take u8}: 1 when the caller holds copies of some of
  // the keys; the primary then sends them no kOpApply and replies
  // {out, relay_error, n u32, n x (key, present u8, version u64,
  // expire_at_ms i64, value)} instead: the state of the caller's copies
  // (values larger than a call are still relayed), which it applies by
  // kOpApply's rule before it answers its client.
  // Body as kOpMultiSet -> {} (out ""): one version for the whole part.
  kOpOrderedSet = 21,
  // Body as kOpCommand -> RESP reply bytes (out).
  kOpOrderedCommand = 22,
  // {db u32, n u32, n x (key, present u8, version u64, expire_at_ms i64,
  //  len u64, bulk_offset u64)} -> {}: from a primary. A present key is
  // stored unless this node holds a newer version of it; an absent one is
  // deleted if what is here is older.
  kOpApply = 23,
  // Body as kOpMultiDel -> {n x u8 (1 removed)}.
  kOpOrderedDel = 24,
  // {db u32, n u32, n x key} -> {}: the caller's ordered call that took the
  // state in its reply failed in transit, so its copies may miss a write
  // this node applied. Sent on the same lane, it arrives after that call
  // (even to a node paused meanwhile): this node relays the current state
  // of those keys to their copies (kOpApply), then replies.
  kOpRelayAgain = 25,
  // Body as kOpMultiExists -> {n x u8 (1 present)}: a read of each key, as
  // TOUCH: it refreshes the key's access time (LRU), unlike kOpMultiExists.
  kOpMultiTouch = 26,
  // A write with a token (fate.cc): the write's own body, then
  // {opcode u32, epoch u64, token u64, watermark u64} -> the write's reply.
  // The owner records what became of the token; tokens of the caller's
  // (epoch, lane) below watermark are settled and forgotten. A token it has
  // already seen (or fenced) is refused, not run again.
  kOpTokened = 27,  // (the trailer: kTokenTrailerBytes)
  // {epoch u64, token u64} -> {fate u8 (FateState)[, kept u8, reply of the
  // write]}: what became of a tokened write whose reply the caller never
  // got. One it never saw is fenced: refused if it arrives later. One still
  // running is answered when it ends.
  kOpFate = 28,
  // {handle u64, offset u64, len u64} -> {}: bytes [offset, offset+len) of
  // a whole command's reply held here (held_reply.cc) written to bulk_out
  // (len at most its capacity). The reply is dropped once its last byte
  // was asked for, or when no chunk was asked for a while.
  // Held replies: a kOpCommand or kOpOrderedCommand body may end with
  // {hold u8 = 1} (after {take u8} for kOpOrderedCommand): a reply larger
  // than a call carries is then answered as kHeldReplyMark, {handle u64,
  // total u64} instead of its bytes (in `out` for kOpOrderedCommand), and
  // fetched with kOpReplyChunk. A RESP reply never starts with that byte.
  kOpReplyChunk = 29,
  // A whole command's argument larger than a call carries, sent ahead in
  // chunks (held_args.cc): {total u64} -> {handle u64}: room for it; then
  // kOpArgChunk {handle u64, offset u64} + bulk_in -> {} fills part of it.
  // The command (kOpCommand, kOpOrderedCommand) sends such an argument
  // empty and ends, after {hold u8}, with {n u32, n x (index u32, handle
  // u64)}: the arguments it takes from there (each used once). Room no
  // command took is dropped after a while.
  kOpArgBegin = 30,
  kOpArgChunk = 31,
};

inline constexpr char kHeldReplyMark = '\0';

// kOpTokened's trailer: {opcode u32, epoch u64, token u64, watermark u64}.
inline constexpr unsigned kTokenTrailerBytes = 4 + 8 + 8 + 8;

// What kOpFate says of a token.
enum FateState : uint8_t {
  kFateFenced = 0,   // never ran, and now never will
  kFateRunning = 1,  // still running (answered so only if it cannot wait)
  kFateDone = 2,     // ran: its reply follows (if kept)
};

// What kOpPutEnd does with the put or staged batch.
enum PutEndMode : uint8_t {
  kPutEndDrop = 0,
  kPutEndPublish = 1,   // with fresh versions (unordered)
  kPutEndOrdered = 2,   // this node orders it: one fresh version, relayed
  kPutEndGiven = 3,     // the versions given at kOpPutBegin, unless older
};

// Per-key states in replies.
enum KeyState : uint8_t { kKeyMissing = 0, kKeyFound = 1, kKeyChanged = 2 };

}  // namespace kvpool::pool
