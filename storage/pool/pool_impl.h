// Internals shared by pool.cc (membership, whole commands), batch*.cc (the
// requester side of batch reads and writes), owner.cc and owner_put.cc
// (calls from peers), replica.cc, sync.cc and merge.cc (copies, catch-up) and
// evict.cc (evictions on copies).
#pragma once

#include <event2/event.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "storage/pool/codec.h"
#include "storage/pool/messages.h"
#include "storage/pool/pool.h"

namespace kvpool::pool {

struct SyncOp;
struct FateTable;
struct HeldEntry;  // held_reply.cc
struct HeldArg;    // held_args.cc

// Reply bodies start with a status: 0 = OK and the payload follows, else a
// kvpool::Code and a message.
std::string OkReply();
std::string ErrorReply(const Status& s);
// A command's arguments, {argc u32, arg*argc} (kOpCommand); false if malformed.
bool ReadArgv(Reader& r, std::vector<std::string_view>* argv);
void EncodeArgv(Writer& w, std::span<const std::string_view> argv);
// Splits a reply body; on OK, *payload is what follows the status byte.
Status ParseReplyStatus(std::string_view body, std::string_view* payload);

// Owner side (owner.cc): the error of a body that does not decode.
Status MalformedRequest();
// A db index u32 below `databases`.
[[nodiscard]] bool ReadDb(Reader& r, int databases, int* db);
// Writes the item's value to the call's bulk_out if it fits in *room (the
// pin travels with the bytes and is dropped once they are gone); returns
// the bytes sent: the value's length, or 0 (fetched later by kOpGetChunk).
uint64_t SendValue(transport::IncomingCall* call, storage::ItemRef& item, size_t* room);

// A key of one db as one string (replica.cc): the touched set's key.
std::string KeyId(int db, std::string_view key);
// Which value a copy evicted (evict.cc): its length and a hash of its ends.
uint64_t ValueFingerprint(std::string_view value);

struct PeerHealth {
  // Down until the peer has answered a heartbeat (so a node that is not
  // running, or cannot authenticate, is never shown up).
  std::atomic<bool> up{false};
  std::atomic<int64_t> last_ok_ms{0};  // MonoMs
  std::atomic<uint64_t> keys{0}, used_memory{0}, maxmemory{0};
  std::atomic<bool> syncing{false};  // it said it is catching up (replicas)
  std::atomic<bool> keys_only{false}; // ...only some keys again (otherwise it was away)
  std::atomic<int64_t> lag_ms{0};    // for how long, as it said
  std::atomic<bool> sees_me_up{false};  // it counts this node up (sends it writes)
  // Replicas: marked down since it last synced, so it may have missed
  // writes; not read from until it reports a newer sync generation.
  std::atomic<bool> stale{false};
  std::atomic<uint64_t> gen{0};       // its sync generation, as it last said
  // The copies it caught up without (its merges pending), bit n for node
  // n (all bits: some node past 63): a catch-up from it keeps, rather than
  // drops, what the catching-up node holds of the slots they share.
  std::atomic<uint64_t> pending{0};
  uint64_t stale_gen = 0;             // lane 0: its generation when marked stale
  std::atomic<bool> flags_me{false};  // its pings say this node is stale
  // A write of its slots went to the other copies only (it was down): set
  // by WriteNodes on any lane, taken by lane 0 once it is back.
  std::atomic<bool> wrote_without{false};
  bool resync_owed = false;       // lane 0: it must be told to catch up (kOpResync)
  bool resync_in_flight = false;  // lane 0
  bool ping_in_flight = false;  // lane 0 only
};

// Items received but not yet visible, published together by kOpPutEnd: one
// value received in chunks (kOpPutBegin, kOpPutChunk), or a staged batch
// (kOpStageBegin, kOpStageSet).
struct PendingPut {
  int db;
  std::vector<storage::PendingItem> items;
  int64_t active_ms;  // MonoMs of its last call, for the sweep
  bool staged = false;  // a batch: filled by kOpStageSet, not by chunks
  // Guarded by puts_mu: kOpStageSet calls still reading into the batch;
  // set once kOpPutEnd or the sweep took it (nothing is added after).
  int receiving = 0;
  bool ended = false;
};

struct Pool::Impl {
  Pool* pool;
  std::vector<event_base*> lanes;
  // The lane heartbeats run on ("lane 0" below; StartHeartbeats).
  int control_lane = 0;
  std::unique_ptr<PeerHealth[]> health;
  event* heartbeat = nullptr;
  // Every time below is on the monotonic clock (pool->MonoNow()) unless
  // it says wall clock.
  int64_t last_heartbeat_ms = 0;  // lane 0 only

  // ---- owner side only (owner_put.cc): puts received, not yet published ----
  std::mutex puts_mu;
  // Shared: a chunk being read into an item holds it until the read ends.
  std::unordered_map<uint64_t, std::shared_ptr<PendingPut>> puts;  // guarded by puts_mu
  uint64_t next_put = 1;                          // guarded by puts_mu
  // Lane 0, every heartbeat: drops puts older than 4 x pool-timeout-ms + 1 s.
  void SweepPuts(int64_t now);

  // ---- whole commands' large replies, sent in steps (held_reply.cc) ----
  std::mutex held_mu;
  std::unordered_map<uint64_t, std::shared_ptr<HeldEntry>> held;  // guarded by held_mu
  uint64_t next_held = 0;                                        // guarded by held_mu
  uint64_t NextHeldHandle();  // with held_mu held
  // The reply to a whole command: OkReply() and its bytes, or, if `may_hold`
  // and it is larger than a call carries, the mark and a handle to fetch it
  // by (the reply is kept here meanwhile).
  std::string CommandReply(std::unique_ptr<HeldReply> reply, bool may_hold);
  // Caller: `out` is a whole command's reply from `node`; a held one is
  // fetched in chunks (a few in flight) before done gets it.
  void FinishCommand(int lane, int node, std::string_view out, Pool::ReplyDone done);
  // Lane 0, every heartbeat (SweepPuts): drops replies no one fetched, and
  // arguments no command took.
  void SweepHeld(int64_t now);
  void SweepHeldArgs(int64_t now);
  // ---- whole commands' large arguments, sent ahead in steps (held_args.cc) ----
  std::unordered_map<uint64_t, std::shared_ptr<HeldArg>> held_args;  // guarded by held_mu
  // Caller: a command to send to `node` whose arguments larger than a call
  // carries go ahead in chunks, by reference (`owner` keeps their memory
  // alive); then `send` gets the body's argv part {argc, args} and its
  // tail {n, (index, handle)*n} (empty if none went ahead). Without an
  // owner, or with no such argument, `send` runs at once. `prefix`: the
  // body before the argv part (given back with it).
  using ArgsReady = std::function<void(Status, std::string argv_part, std::string tail)>;
  void SendArgs(int lane, int node, std::string prefix, std::span<const std::string_view> argv,
                std::shared_ptr<const void> owner, ArgsReady send);
  // Callee: the rest of a command's body, `r` past {hold u8}: the arguments
  // sent ahead take their places in *argv; *keep holds them until dropped.
  Status TakeArgs(Reader& r, std::vector<std::string_view>* argv,
                  std::vector<std::shared_ptr<HeldArg>>* keep);

  // ---- the fate of writes whose reply never came (fate.cc) ----
  // Requester: tokens of calls that may write, by lane (each used on its
  // own lane only).
  struct LaneTokens {
    uint64_t next = 1;
    std::set<uint64_t> open;  // sent, not yet settled
    uint64_t sending = 0;     // the token whose Call has not returned yet
    bool stopped = false;     // Pool::StopLane ran: no more fate queries
  };
  std::unique_ptr<LaneTokens[]> lane_tokens;
  uint64_t fate_epoch = 0;  // random, per process
  // Owner: what became of each token (shared with the calls running).
  std::shared_ptr<FateTable> fates;
  std::atomic<uint64_t> fates_landed{0}, fates_fenced{0}, fates_unknown{0};
  void InitFates(size_t lane_count);
  // Sends a call like Transport::Call. One that may write
  // (args.reset_on_timeout) carries a token (kOpTokened); if it times out
  // or its link breaks after it was sent, the owner is asked what became
  // of it (kOpFate): done then gets the write's own reply if it ran there,
  // the original error if it did not (it never will), or that error saying
  // the outcome is unknown.
  void WriteCall(int lane, int node, transport::CallArgs args, int timeout_ms,
                 transport::CallDone done);
  void AskFate(int lane, int node, uint64_t token, int timeout_ms, Status first,
               transport::CallDone done);

  // ---- requester side only (batch.cc, sync.cc) ----
  // Largest bulk one call may carry (a transport limit); larger values move
  // in chunks of this size.
  size_t chunk_bytes = 4u << 20;

  // ---- replicas (replica.cc) ----
  // This node is catching up from the other copies of its slots.
  std::atomic<bool> syncing{false};
  mutable std::mutex sync_mu;
  SyncStats sync;  // guarded by sync_mu
  // Keys written here while syncing ((db, key) -> touch sequence): the
  // catch-up never overwrites them with what it pulls, and fetches their
  // final state again at its end. A flush restarts the catch-up.
  std::unordered_map<std::string, uint64_t> touched;  // guarded by sync_mu
  // Touched keys whose state here may be wrong: a read-modify-write run on
  // what this node held, a write that failed here, a write another node
  // could not deliver (kOpCatchUp). Only these are fetched again at the
  // end; a blind write (MSET, DEL) that was applied here is as new as any.
  std::unordered_set<std::string> recheck;  // guarded by sync_mu
  uint64_t touch_seq = 0;                             // guarded by sync_mu
  uint64_t flush_seq = 0;                             // guarded by sync_mu
  std::shared_ptr<SyncOp> sync_op;  // lane 0 only
  int64_t sync_retry_ms = 0;        // lane 0 only
  int64_t sync_ready_ms = 0;        // lane 0 only: when every live peer saw this node up
  // Bumped by every finished catch-up (a wall-clock ms, growing: an
  // identity peers compare, not an interval).
  std::atomic<uint64_t> sync_gen{0};
  // reported_gen[r * nodes + c]: node c's sync generation as peer r last
  // reported it (its ping answers carry every node's as it knows them);
  // 0 = never seen in sync. Any lane writes and reads.
  std::unique_ptr<std::atomic<uint64_t>[]> reported_gen;
  // Per node, the client address it announces (cluster-announce-ip/-port;
  // a peer's from its last ping answer): empty / 0 = its pool-nodes entry.
  mutable std::mutex announce_mu;
  std::vector<std::pair<std::string, int>> announced;
  // Whether copy `node` may hold data (lane 0): up, it has been in sync
  // since it started; down, it had been when last heard of, here or by a
  // peer.
  bool MayHoldData(int node) const;
  // A catch-up's slots with no copy in sync (source -1) whose other copies
  // may hold data: the copies a node that never was in sync waits for
  // (rather than catching up from no one and then, in sync but empty,
  // being the source a returning copy refills from). Lane 0.
  std::vector<int> CopiesToWaitFor(const std::vector<int>& slot_source) const;
  // Copies of slots with no source in `slot_source` that are up and
  // catching up themselves, and that this node's whole catch-up waits for
  // (sync.cc).
  std::vector<int> CopiesCatchingUp(const std::vector<int>& slot_source) const;
  // Whether the catch-up planned as `slot_source` must wait for one of
  // those copies first (sync.cc). Lane 0.
  bool WaitsBeforeCatchingUp(const std::vector<int>& slot_source);
  // A catch-up after being away (not a fresh start): keys of slots with a
  // source are dropped first, so deletes made meanwhile are not undone.
  std::atomic<bool> purge_first{false};
  // The catch-up only fetches the touched keys again (CatchUpKeys): no scan.
  std::atomic<bool> keys_only{false};
  // This node caught up while copies of some of its slots that may hold
  // data were down (SyncStats::merge_pending): it may lack writes only they
  // took. Its pings say which (PeerHealth::pending, as a mask: SetPending).
  std::atomic<bool> partial{false};
  std::atomic<uint64_t> pending_mask{0};
  // Sets sync.merge_pending, partial and pending_mask (sync_mu held).
  void SetPending(std::vector<int> copies);
  std::shared_ptr<SyncOp> merge_op;  // lane 0 only
  // A merge is running: writes are touched (as while syncing), and the
  // merge stores no value over a key written here since it began.
  std::atomic<bool> merging{false};
  int64_t merge_retry_ms = 0;        // lane 0 only
  int64_t merge_ready_ms = 0;        // lane 0 only: merging set, the scan waits till then
  // Lane 0, every heartbeat while this node is in sync: once a pending
  // copy is up and in sync, scans the slots shared with it and stores each
  // value newer than the one here (MergeDone when it ends; merge.cc).
  void MergeTick(int64_t now);
  void MergeDone(int node, bool ok);
  // Keys deleted here while another copy of theirs was down or had a merge
  // pending ((db, key) -> the delete's version): no catch-up or merge takes
  // an older value of one back from a copy, and once that copy serves (and
  // was merged from) the deletes are sent to it (kOpApply, deleting only an
  // older value). Bounded by kMaxTombstones (past it, a delete is not
  // remembered: logged once).
  static constexpr size_t kMaxTombstones = size_t{1} << 18;
  struct Tombstone {
    uint64_t version = 0;
    uint64_t sent = 0;  // bit n: sent to node n since the last delete
  };
  std::unordered_map<std::string, Tombstone> tombstones;  // guarded by sync_mu
  bool tombstones_full_logged = false;                    // guarded by sync_mu
  bool tombstones_dirty = false;                          // guarded by sync_mu: one added
  uint64_t tomb_serving = 0, tomb_pending = 0;            // lane 0: masks at the last push
  void NoteDeleted(int db, std::string_view key, uint64_t version);
  // Whether key id (KeyId) was deleted here at `version` or later (sync_mu held).
  bool Tombstoned(const std::string& id, uint64_t version) const;
  // Sends the tombstones of `node`'s keys not yet sent to it; forgets those
  // of a node no merge is pending from (merge.cc). Lane 0: MergeTick, for
  // each copy serving, when a delete was added or which copies serve or
  // are pending changed.
  void PushTombstones(int node);
  void PushOwedTombstones();

  int64_t sync_stats_started_ms() const;
  // Call before a write of `key` is applied to this node's store. blind: it
  // sets the whole state of the key (MSET, DEL), and was applied (else
  // Touch again without).
  void Touch(int db, std::string_view key, bool blind = false);
  // Call before running a forwarded or local command: its write keys are
  // touched, a flush restarts a catch-up in progress.
  void NoteCommand(int db, const std::vector<std::string_view>& argv);
  // Lane 0, every heartbeat while syncing (now: MonoMs): starts (or
  // retries) the catch-up.
  void SyncTick(int64_t now);
  void SyncDone(bool ok);
  // A ping from `caller` said whether it counts this node stale (at which
  // generation); most peers saying so starts a catch-up (any lane).
  void NoteStaleFlag(int caller, bool stale, uint64_t gen);
  // Lane 0, at each answered ping of a peer this node counts stale: it
  // writes to it again; if writes were taken without it, it is told to
  // catch up (until its generation changes); if none were, it is not stale.
  void SettleStale(int n);
  // Starts a catch-up of a node that was in sync (any lane). A catch-up of
  // keys only in progress becomes a whole one.
  void BeginResync(const std::string& why);
  // `caller` could not tell whether its write of `keys` reached this node
  // (kOpCatchUp): they are fetched again, exactly, from another copy, after
  // writes in flight have ended; reads go to other copies meanwhile.
  void CatchUpKeys(int caller, int db, std::span<const std::string_view> keys);
  // Replicas: when the heartbeat loop last ran (read by Serving), and
  // whether this node saw no majority of the pool up (lane 0).
  std::atomic<int64_t> beat_ms{0};
  bool lost_majority = false;
  // Fewer than half of the nodes are up in this node's eyes: it may be the
  // minority side of a partition, so it serves no reads and takes no writes
  // (the majority side's writes win).
  std::atomic<bool> minority{false};
  // Most peers that answer say they count this node down (lane 0 writes).
  std::atomic<bool> counted_down{false};
  // Lane 0, after a ping answer: counted_down, and a catch-up when this
  // node is back with a majority after having lost it.
  void CheckMajority();
  // Drops this node's keys of slots that have a source (lane 0), except a
  // source that caught up without another copy of the slot
  // (PeerHealth::pending).
  void Purge(std::vector<int> slot_source);

  // ---- eviction on copies (evict.cc) ----
  struct EvictedKey {
    int db;
    std::string key;
    uint64_t len, fingerprint;
  };
  mutable std::mutex evicted_mu;
  std::vector<EvictedKey> evicted_q;  // guarded by evicted_mu
  uint64_t evictions_unsent = 0;      // guarded: over the queue bound, or the call failed
  uint64_t evictions_applied = 0;     // guarded: keys dropped here for a copy's eviction
  // The store's eviction listener (under a shard lock: queues only).
  void NoteEvicted(int db, std::string_view key, std::string_view value);
  // Lane 0, every heartbeat: sends the queue to the keys' other copies.
  void SendEvictions();

  void Heartbeat();

  // ---- owner side: calls from peers ----
  // Answers `call` with the handler of its opcode (messages.h), found in a
  // table (owner.cc); an unknown opcode is answered InvalidArgument
  // "unknown opcode". Each handler decodes its body, runs it against this
  // node's Store (or the CommandExecutor) and replies exactly once, maybe
  // later from a bulk read's callback. Any lane.
  using InCall = std::unique_ptr<transport::IncomingCall>;
  void HandleCall(InCall call);
  // owner.cc: membership, reads, deletes, whole commands, catch-up notices.
  void OnPing(InCall call);
  void OnMultiGet(InCall call);
  void OnGetChunk(InCall call);
  void OnMultiExists(InCall call);
  void OnMultiTouch(InCall call);
  // kOpMultiExists / kOpMultiTouch: 1 or 0 per key.
  void ReplyPresence(InCall call, bool touch);
  void OnMultiDel(InCall call);
  void OnVersions(InCall call);
  void OnCommand(InCall call);
  void OnTransaction(InCall call);
  void OnResync(InCall call);
  void OnCatchUp(InCall call);
  // owner_put.cc: writes, whole (kOpMultiSet), in chunks (kOpPutBegin,
  // kOpPutChunk, kOpPutEnd) or staged (kOpStageBegin, kOpStageSet).
  void OnMultiSet(InCall call);
  void OnStageSet(InCall call);
  void OnPutBegin(InCall call);
  void OnPutChunk(InCall call);
  void OnPutEnd(InCall call);
  void OnStageBegin(InCall call);
  // The rest of a kOpMultiSet / kOpStageSet body, {n u32, n x (key, len
  // u64, bulk_offset u64)}, read from `r`: values read from bulk_in into
  // space prepared in the Store, then published (batch null) or added to
  // `batch`.
  // ordered (kOpOrderedSet): this node is the keys' primary; the values
  // get one fresh version, are published unless newer ones are here, and
  // their state is relayed to the other copies before the reply.
  void ReceiveSet(InCall call, Reader& r, int db, std::shared_ptr<PendingPut> batch,
                  bool ordered = false);
  // ordered.cc: writes ordered by a slot's primary.
  void OnOrderedSet(InCall call);
  void OnOrderedCommand(InCall call);
  void OnApply(InCall call);
  void OnOrderedDel(InCall call);  // owner.cc, beside kOpMultiDel
  void OnRelayAgain(InCall call);  // owner.cc, beside kOpCatchUp
  // fate.cc: a tokened write, and what became of one (WriteCall).
  void OnTokened(InCall call);
  void OnFate(InCall call);
  void OnReplyChunk(InCall call);  // held_reply.cc
  void OnArgBegin(InCall call);    // held_args.cc
  void OnArgChunk(InCall call);
  // Whether this node may order writes of every key: it serves, and holds
  // a copy of each key's slot. (Coordinators send to the primary,
  // Pool::ReadNode; a node whose view differs for a heartbeat still takes
  // them: versions keep the copies converging.)
  bool PrimaryOfAll(std::span<const std::string_view> keys) const;
  // Sends the current state of `keys` here (value, version and expiry, or
  // absent) to their other copies that are up (kOpApply), all calls in
  // flight together; a copy that fails is told to fetch them again. done
  // runs once, on `lane`: OK, or kAborted naming the first copy that failed.
  // take, state: the copies on node `take` (the caller) are not sent a
  // call; the state of their keys (those no larger than a call) is written
  // to *state before Relay returns, for the reply (TakenReply).
  using RelayDone = std::function<void(Status)>;
  void Relay(int lane, int db, std::vector<std::string> keys, RelayDone done, int take = -1,
             std::string* state = nullptr);
  // Relay for keys just published here: `items` are their current items as
  // Store::Publish pinned them (`current`), so nothing is looked up again.
  void RelayPublished(int lane, int db, std::vector<storage::ItemRef> items, RelayDone done,
                      int take = -1, std::string* state = nullptr);
  struct RelayState;
  void RelayHeld(int lane, int db, std::shared_ptr<RelayState> st, int take, std::string* state);
  // The reply to an ordered call whose caller takes the state of its own
  // copies: {out, relay error ("" if every copy took it), state}.
  static std::string TakenReply(std::string_view out, const Status& relayed,
                                const std::string& state);
  // On the caller, the result of an ordered call that asked for its copies'
  // state (kOpOrderedSet or kOpOrderedCommand with take 1) for `keys`:
  // the state applied here, *out the command's reply. If the call failed
  // in transit (the primary may have applied it), the primary is asked to
  // relay the keys this node holds again (kOpRelayAgain, on `lane`).
  Status TakeOrdered(int lane, int primary, int db, std::span<const std::string_view> keys,
                     Status s, std::string_view reply, std::string_view* out);
  void RelayAgain(int lane, int primary, int db, std::span<const std::string_view> keys);
  // {n u32, n x (key, present u8, version u64, expire_at_ms i64, value)},
  // each stored here unless this node holds a newer version (kOpApply's
  // rule). Keys this node holds no copy of are refused.
  Status ApplyState(int db, std::string_view state);
  // Pool::Forward (ordered) for a caller holding copies of some of the
  // `written` keys: they take their state from the reply (TakeOrdered).
  void ForwardTaking(int lane, int primary, int db, int resp,
                     std::span<const std::string_view> argv,
                     std::span<const std::string_view> written, Pool::ReplyDone done,
                     std::shared_ptr<const void> owner = nullptr);
  // Its call, once the arguments are in `args`.
  void SendTaking(int lane, int primary, int db, std::vector<std::string> keys,
                  transport::CallArgs args, Pool::ReplyDone done);
  // Whether `node` holds a copy of key's slot (up or not).
  bool IsCopy(int node, std::string_view key) const;
  // Whether `node` holds a copy of the slots `owner` owns.
  bool HoldsCopy(int node, int owner) const;
  // One value larger than a call carries, to one copy: kOpPutBegin with
  // its version and expiry, the chunks in flight together, kOpPutEnd
  // (kPutEndGiven). `item` must stay pinned until done runs.
  void RelayLarge(int lane, int copy, int db, std::string_view key, const storage::ItemRef& item,
                  RelayDone done);
  // Relays to one copy gathered during one pass of a lane's loop, sent as
  // one kOpApply once the pass's other events ran (or sooner, when a call
  // is full): a primary that takes many small writes at once (a pipeline,
  // many clients) sends each copy one call for them, not one per write.
  // Lane-local: touched only on its lane's thread.
  struct ApplyBatch {
    int db = -1;
    uint32_t n = 0;
    uint64_t bytes = 0;
    std::string entries;           // kOpApply's entries, offsets into bulk
    std::vector<iovec> bulk;       // values, pinned by the waiters' relays
    std::vector<RelayDone> waiters;  // one per relay's part in the call
  };
  struct ApplyLane {
    Impl* impl;
    int lane;
    std::vector<ApplyBatch> to;  // [node]
    event* flush = nullptr;      // activated, never added: FlushApplies
  };
  std::vector<std::unique_ptr<ApplyLane>> applies;  // [lane]
  void InitApplies();              // Pool::Start
  // Pool::StopLane (send: what is gathered goes out first) and ~Pool.
  void FreeApplies(int lane, bool send);
  // Sends the gathered relays of `lane` to `copy` now (to every copy: -1).
  void FlushApplies(int lane, int copy = -1);
  // sync.cc: a syncing copy's catch-up reads.
  void OnSyncScan(InCall call);
  void OnSyncKeys(InCall call);
  // evict.cc
  void OnEvicted(InCall call);
  // copies.cc: what this node holds of one key (POOL COPIES).
  void OnCopy(InCall call);
};

}  // namespace kvpool::pool
