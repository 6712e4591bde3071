// The pool: several nodes serving one keyspace. Placement by slot (slots.h),
// membership by heartbeats, and the batch router: a multi-key request is
// split by owner, the local part runs on this node's Store at once, each
// remote part goes to its owner as one call, all calls in flight together,
// and results are written back by the key's original index.
//
// Threading: the request methods run on an I/O thread ("lane") and call
// `done` on the same lane, possibly before they return (all keys local, or
// every remote part failed at once). Node states may be read from any
// thread. Requests to a node known to be down fail at once; no request
// waits longer than pool-timeout-ms.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storage/pool/slots.h"
#include "storage/segment/store.h"
#include "storage/transport/transport.h"
#include "storage/util/status.h"

namespace kvpool::pool {

struct NodeSpec {
  std::string host;
  int port = 0;       // client port
  int pool_port = 0;  // node-to-node port (default port + 10000)
  std::string Addr() const { return host + ":" + std::to_string(port); }
};

// Parses "host:port[@poolport] ..." (space separated).
[[nodiscard]] Status ParseNodes(std::string_view text, std::vector<NodeSpec>* out);

// Milliseconds on CLOCK_REALTIME (absolute times a client sees: TTLs,
// NodeStatus::last_seen_ms) and on CLOCK_MONOTONIC (every deadline,
// timeout, heartbeat and liveness interval: a step of the wall clock moves
// none of them).
int64_t WallMs();
int64_t MonoMs();

struct PoolOptions {
  std::vector<NodeSpec> nodes;
  int self = 0;
  int timeout_ms = 3000;      // pool-timeout-ms: bound on any remote part
  int heartbeat_ms = 100;     // ping every peer this often
  int down_after_ms = 1000;   // no answered ping for this long: down
  size_t max_batch_keys = 4096;  // keys per call to one peer (pool-max-batch)
  // pool-replicas: copies of every slot, primary included (1 = no copies).
  // With more, writes go to every copy that is up and are acknowledged once
  // all of them hold it; reads go to the first copy that is up and in sync.
  int replicas = 1;
  // The clocks the pool reads, replaceable in tests (to step one of them).
  // wall_ms: the now_ms the pool gives the Store and last_seen_ms; mono_ms:
  // everything measured as an interval.
  int64_t (*wall_ms)() = &WallMs;
  int64_t (*mono_ms)() = &MonoMs;
  // Frees a large buffer (an argument held for a command, new char[bytes]);
  // the server passes one that frees in the background, as unmapping
  // hundreds of MB of touched pages takes tens of ms. null: delete[].
  void (*free_large)(char* p, size_t bytes) = nullptr;
};

// A command's RESP reply as pieces, in order: small texts, and large
// values by reference (pinned until it is destroyed), never copied into
// one string. Destroyed on any thread.
class HeldReply {
 public:
  virtual ~HeldReply() = default;
  virtual const std::vector<std::string_view>& pieces() const = 0;
  size_t size() const {
    size_t n = 0;
    for (std::string_view p : pieces()) n += p.size();
    return n;
  }
};

// Runs commands that peers forward, on this node only (never re-routed).
// Implemented by the server.
class CommandExecutor {
 public:
  virtual ~CommandExecutor() = default;
  // The RESP reply of `argv` run against `db` by a client speaking `resp`.
  virtual std::string Execute(int lane, int db, int resp,
                              const std::vector<std::string_view>& argv) = 0;
  // As Execute, its large values by reference: a reply of hundreds of MB
  // is sent to the caller in steps from where the value is (held_reply.cc).
  // The default holds Execute's string.
  virtual std::unique_ptr<HeldReply> ExecuteHeld(int lane, int db, int resp,
                                                 const std::vector<std::string_view>& argv);
  // MULTI + cmds + EXEC, aborted (null reply) if any watched key's version
  // differs from the one given (0 = absent).
  virtual std::string ExecuteTransaction(
      int lane, int db, int resp, const std::vector<std::vector<std::string_view>>& cmds,
      const std::vector<std::pair<std::string_view, uint64_t>>& watched) = 0;
  // The keys `argv` may write (empty for reads and unknown commands). A
  // syncing replica remembers them so its catch-up does not overwrite them.
  virtual std::vector<std::string_view> WriteKeys(const std::vector<std::string_view>&) {
    return {};
  }
  // Whether `argv` only reads keys (a syncing replica refuses those).
  virtual bool ReadsKeys(const std::vector<std::string_view>&) { return false; }
  // The keys a transaction run against `db` may write, each with the db it
  // is in then (a SELECT among cmds moves the later ones).
  virtual std::vector<std::pair<int, std::string_view>> TransactionWrites(
      int db, const std::vector<std::vector<std::string_view>>&) {
    (void)db;
    return {};
  }
};

// One key's answer in a batch read.
struct GetResult {
  enum State : uint8_t { kMissing, kFound, kUnavailable };
  State state = kMissing;
  storage::ItemRef local;  // found on this node (pinned)
  // Found on a peer: where its reply was received (`received`, alive as
  // long as `buffer`: not copied out), or, for a value fetched in chunks,
  // assembled into `remote`.
  std::string_view received;
  std::shared_ptr<const void> buffer;
  std::string remote;
  std::string_view value() const {
    return local ? local.value() : buffer ? received : std::string_view(remote);
  }
  // Forgets any bytes a peer sent.
  void DropRemote() {
    received = {};
    buffer.reset();
    remote.clear();
  }
};

// kSyncing (only with replicas): up, taking writes, catching up from the
// other copies of its slots; reads go elsewhere until it is done.
enum class NodeState : uint8_t { kUp, kDown, kSyncing };

struct NodeStatus {
  NodeSpec spec;
  NodeState state;
  bool self;
  uint64_t keys;
  uint64_t used_memory;
  uint64_t maxmemory;
  int64_t last_seen_ms;  // wall clock (WallMs): when it last answered a ping
  // How far behind the node may be, in ms: 0 when up and in sync; while
  // syncing, since it started; while down, since it was last heard.
  int64_t lag_ms = 0;
};

// This node's catch-up from the other copies of its slots (replicas only).
struct SyncStats {
  bool in_sync = true;
  // On the monotonic clock (MonoMs): only their difference means anything.
  int64_t started_ms = 0, finished_ms = 0;
  uint64_t attempts = 0;      // catch-ups begun (a failed one starts over)
  uint64_t keys_pulled = 0;   // values copied from peers
  uint64_t keys_rechecked = 0;  // keys written meanwhile, fetched again at the end
  uint64_t replica_write_errors = 0;  // writes a live copy did not take
  uint64_t catch_ups_sent = 0;    // copies told to catch up (or primaries asked to relay again)
                                  // after a write failed in transit
  uint64_t catch_ups_received = 0;    // times this node was told so
  uint64_t evictions_applied = 0;     // keys dropped here because another copy evicted them
  uint64_t evictions_unsent = 0;      // evictions here other copies were not told of
  // A node that has never been in sync waits, before it catches up, for
  // these copies: they may hold data of slots no copy in sync holds.
  std::vector<int> waiting_for;
  // Copies this node caught up without (they were down, and may hold writes
  // it missed): once each is up and in sync, the slots it shares with it
  // are merged from it, the newer version of each key winning.
  std::vector<int> merge_pending;
  uint64_t keys_merged = 0;  // values taken from such a copy because they were newer
};

// Writes to another node whose reply never came (timed out, or the link
// broke after they were sent), by what asking the owner found (fate.cc).
struct WriteFates {
  uint64_t landed = 0;   // it ran there: reported with its own reply
  uint64_t fenced = 0;   // it never ran, and now never will: reported failed
  uint64_t unknown = 0;  // no answer: reported failed, "whether ... is not known"
};

// How often this node had to reach another node for a client (INFO pool):
// keys a read or write went to another node for, and whole commands run on
// another node. A cluster client that sends each key to its node keeps
// both at 0.
struct RouteCounters {
  std::atomic<uint64_t> keys_elsewhere{0};
  std::atomic<uint64_t> commands_forwarded{0};
};

// One copy of a key as POOL COPIES shows it (Pool::Copies).
struct CopyInfo {
  enum State : uint8_t { kInSync, kSyncing, kDown };
  int node = 0;
  State state = kDown;
  bool present = false;  // it answered and holds the key (not expired)
  uint64_t version = 0;  // if present: the item's version on that node
  uint64_t digest = 0;   // if present: Hash64 of the value (storage/util/digest.h)
};

// What `store` holds of `key` (present, version, digest); node and state
// are left as they are. Pins the item while it hashes the whole value on
// the calling thread (about 2.8 GB/s).
CopyInfo ReadCopy(storage::Store& store, int db, std::string_view key, int64_t now_ms);

// The outcome of one command run on every node (broadcast).
struct NodeReply {
  int node;
  Status status;      // kUnavailable if the node is down
  std::string reply;  // RESP2 bytes
};

class Pool {
 public:
  Pool(PoolOptions options, storage::Store* store, transport::Transport* transport,
       CommandExecutor* executor);
  ~Pool();

  // Registers the call handler with the transport and starts it on `lanes`.
  [[nodiscard]] Status Start(std::vector<event_base*> lanes);
  // Lane 0: starts heartbeats. Call on lane 0's thread.
  // `lane` (lanes[lane] == base) becomes the control lane: heartbeats,
  // catch-up, eviction notices and resync calls run there. A server gives
  // the pool a lane of its own for it, so that a client's long request on
  // an I/O thread cannot delay heartbeats and get this node counted down.
  void StartHeartbeats(event_base* base, int lane = 0);
  // Stops the lane's part (heartbeats on lane 0, transport links). Lane thread.
  void StopLane(int lane);

  int self() const { return options_.self; }
  int nodes() const { return static_cast<int>(options_.nodes.size()); }
  const NodeSpec& node(int i) const { return options_.nodes[i]; }
  const SlotTable& slots() const { return slots_; }
  // The key's primary (its slot's first copy).
  int OwnerOf(std::string_view key) const { return slots_.OwnerOfKey(key); }
  // Reads of the key are answered here.
  bool IsLocal(std::string_view key) const { return ReadNode(OwnerOf(key)) == options_.self; }
  // Reads (write = false) or writes of every key are this node's alone.
  bool AllLocal(std::span<const std::string_view> keys, bool write = false) const;
  bool NodeUp(int node) const;

  // ---- replicas (with replicas() == 1 every copy set is {owner}) ----
  int replicas() const { return slots_.replicas(); }
  // Up and, with replicas, in sync: may answer reads.
  bool Serving(int node) const;
  bool InSync() const;
  // Where reads of keys whose primary is `owner` go: the first copy that is
  // serving and lacks no writes another serving copy took (LacksWrites),
  // else the first serving; -1 if none is (with replicas() == 1: always
  // `owner`).
  int ReadNode(int owner) const;
  // Whether copy `node` has a merge pending from another copy of `owner`'s
  // slots that is serving (it may lack writes only that copy took).
  bool LacksWrites(int node, int owner) const;
  // The first copy serving other than `failed` (a read retried after a
  // copy failed), -1 if none.
  int ReadNodeAfter(int owner, int failed) const;
  // Where writes of keys whose primary is `owner` go: every copy that is up
  // (syncing ones too), primary first; empty if no copy is serving (in
  // sync), or if this node sees fewer than half of the nodes up (with
  // replicas() == 1: always {owner}, up or not). A write taken only by
  // syncing copies could be lost or forked: each may lack what the other
  // holds.
  std::vector<int> WriteNodes(int owner) const;
  // With replicas: whether some copy of `owner`'s slots is serving.
  bool HasCopyServing(int owner) const { return ReadNode(owner) >= 0; }
  // Why `owner`'s slots can be neither read nor written: the slots, and
  // each copy's state as this node sees it.
  std::string NoCopyError(int owner) const;
  SyncStats sync_stats() const;
  WriteFates write_fates() const;
  std::vector<NodeStatus> Nodes() const;
  const char* transport_name() const { return transport_->name(); }
  const transport::PeerCounters& counters(int node) const { return transport_->counters(node); }
  const transport::ListenCounters& listen_counters() const { return transport_->listen_counters(); }
  // The transport's own counters, those with a valid name only, each name
  // once (the RDMA plugin's come from another shared object).
  std::vector<transport::TransportCounter> transport_counters() const;
  int timeout_ms() const { return options_.timeout_ms; }

  // ---- batch requests (lane thread; done on the lane) ----
  using GetDone = std::function<void(std::vector<GetResult>& results)>;
  void MultiGet(int lane, int db, std::span<const std::string_view> keys, int64_t now_ms,
                GetDone done);
  // 1 present, 0 absent, -1 the owner could not answer.
  using ExistsDone = std::function<void(std::vector<int8_t>& results)>;
  void MultiExists(int lane, int db, std::span<const std::string_view> keys, int64_t now_ms,
                   ExistsDone done);
  // As MultiExists, but a read of each key: refreshes its access time on
  // the copy that answers (TOUCH).
  void MultiTouch(int lane, int db, std::span<const std::string_view> keys, int64_t now_ms,
                  ExistsDone done);
  // Per key: 1 removed, 0 absent, -1 the owner could not answer.
  void MultiDel(int lane, int db, std::span<const std::string_view> keys, int64_t now_ms,
                ExistsDone done);
  // kvs = k1, v1, k2, v2... (an even count). Atomic on each node: a node's
  // part larger than one call (pool-max-batch keys, max_bulk_per_call()
  // bytes, which is 64 MiB over TCP) is staged there call by call and
  // published at once; only a value larger than one call is stored on its
  // own. On failure, `failed_keys` counts keys not stored and the status
  // names a node that failed. Values may be sent by reference: `owner`
  // keeps their memory alive until no transport needs it (which may be
  // after done).
  using SetDone = std::function<void(Status status, size_t failed_keys)>;
  void MultiSet(int lane, int db, std::span<const std::string_view> kvs, int64_t now_ms,
                std::shared_ptr<const void> owner, SetDone done);
  // Versions of keys (0 = absent), for WATCH of keys on other nodes.
  using VersionsDone = std::function<void(Status status, std::vector<uint64_t>& versions)>;
  void Versions(int lane, int node, int db, std::span<const std::string_view> keys,
                VersionsDone done);

  // ---- whole commands ----
  using ReplyDone = std::function<void(Status status, std::string reply)>;
  // Runs argv on `node` (not this one) and returns its RESP reply.
  // ordered: node is the slot's primary, which runs argv and relays the
  // state of the keys it wrote to the other copies (kOpOrderedCommand).
  // owner: keeps argv's memory alive, so arguments larger than a call can
  // go ahead in chunks by reference (without, they go in the call).
  void Forward(int lane, int node, int db, int resp, std::span<const std::string_view> argv,
               ReplyDone done, bool ordered = false, std::shared_ptr<const void> owner = nullptr);
  // MULTI + cmds + EXEC on `node`, aborted there if a watched key's version
  // differs. ordered: node is the primary of the keys it writes; it relays
  // their state to the other copies before it answers (an error if a copy
  // missed it), so every copy ends in the primary's order.
  void ForwardTransaction(int lane, int node, int db, int resp,
                          const std::vector<std::vector<std::string>>& cmds,
                          const std::vector<std::pair<std::string, uint64_t>>& watched,
                          ReplyDone done, bool ordered = false);
  // A transaction ran here, the primary of the keys it wrote (`written`,
  // each with its db): relays their state to the other copies; done once
  // they all have it, or with the first copy that missed it.
  void RelayWritten(int lane, const std::vector<std::pair<int, std::string>>& written,
                    std::function<void(Status)> done);
  // Runs argv on every node (this one through the executor) in RESP2.
  using BroadcastDone = std::function<void(std::vector<NodeReply>& replies)>;
  void Broadcast(int lane, int db, std::span<const std::string_view> argv, BroadcastDone done);

  // Runs argv on the copies of `owner`'s slots. A write runs on the slot's
  // primary (ReadNode), which relays the state of the keys it wrote to the
  // other copies (ordered.cc; values larger than one call in chunks) and
  // answers once they have it (an error if a copy failed). A read runs on
  // ReadNode(owner) only. With
  // replicas() == 1 this is Forward to the owner, or the executor when the
  // owner is this node.
  // args_owner: as Forward's owner.
  void RunOnCopies(int lane, int owner, int db, int resp, std::span<const std::string_view> argv,
                   bool write, ReplyDone done, std::shared_ptr<const void> args_owner = nullptr);

  // A write of `keys` to `copy` failed with `s`. When it failed in transit
  // (timeout, broken link) the copy may miss the write or apply it late,
  // out of order: with replicas it is told to fetch those keys again
  // (kOpCatchUp, sent on `lane` after the write). Lane thread.
  void NoteWriteFailed(int lane, int copy, int db, std::span<const std::string_view> keys,
                       const Status& s);

  // Every copy of the key's slot, primary first, as this node sees it:
  // state kDown for a copy not up or that did not answer within
  // pool-timeout-ms (present false), else kSyncing or kInSync (Serving);
  // what each holds is read here for this node and asked of the others in
  // parallel (kOpCopy). `done` runs once on the lane, maybe before this
  // returns.
  using CopiesDone = std::function<void(std::vector<CopyInfo>& copies)>;
  void Copies(int lane, int db, std::string_view key, CopiesDone done);

  // Error text for a write that could not reach `node`.
  std::string NodeDownError(int node) const;

  RouteCounters& routed() const { return routed_; }

  // cluster-announce-ip / -port: the address clients are told to use for
  // this node (empty host / port 0: its pool-nodes entry's). Peers learn it
  // from this node's heartbeat answers. Any thread.
  void SetAnnounce(std::string host, int port);
  // Where clients reach `node`: the address it announces (a peer's as of
  // its last heartbeat answer), else its pool-nodes entry. Any thread.
  NodeSpec Announced(int node) const;

 private:
  // Forward's call, once its arguments are in `args`.
  void SendCommand(int lane, int node, transport::CallArgs args, ReplyDone done);
  friend struct SyncOp;
  friend struct SetOp;    // batch.cc
  friend struct FlagsOp;  // batch.cc
  struct Impl;
  int64_t WallNow() const { return options_.wall_ms(); }
  int64_t MonoNow() const { return options_.mono_ms(); }
  PoolOptions options_;
  SlotTable slots_;
  storage::Store* store_;
  transport::Transport* transport_;
  CommandExecutor* executor_;
  std::unique_ptr<Impl> impl_;
  mutable RouteCounters routed_;
};

}  // namespace kvpool::pool
