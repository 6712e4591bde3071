// The Redis Cluster view of the pool, for cluster clients (redis-py
// RedisCluster, ioredis Cluster, node-redis createCluster, redis-cli -c and
// --cluster check): CLUSTER SLOTS / SHARDS / NODES / INFO / MYID /
// MYSHARDID / KEYSLOT / COUNTKEYSINSLOT / GETKEYSINSLOT, and READONLY,
// READWRITE, ASKING. Answered from the pool's slot table (slots.h) and
// what this node sees of the other nodes; nothing is gossiped.
//
// A slot range is served by its first copy in sync (the primary that orders
// its writes, Pool::ReadNode), shown as its master, so a client's map moves
// with the pool's when a primary is down; the range's other copies that are
// up are its replicas. In CLUSTER NODES every node is a master (a node is
// the primary of one range and a replica of another, which its lines
// cannot say); its slots are the ranges it serves now.
//
// Node ids are derived from the node's entry in pool-nodes (its client and
// pool addresses): the same on every node and across restarts. Addresses
// are those nodes announce (cluster-announce-ip/-port, learnt from their
// heartbeat answers), else their pool-nodes entries.
#include <algorithm>
#include <iterator>
#include <string>
#include <vector>

#include "server/cluster_family.h"

#include "server/command_table.h"
#include "server/errors.h"
#include "server/routing.h"
#include "server/server_context.h"
#include "server/util/strings.h"
#include "storage/pool/pool.h"
#include "storage/util/digest.h"

namespace kvpool {

namespace {

// 40 hex digits, like a Redis Cluster node id.
std::string Id40(const std::string& seed) {
  std::string id;
  for (int i = 0; id.size() < 40; ++i) id += Hex64(Hash64(std::to_string(i) + " " + seed));
  return id.substr(0, 40);
}

std::string NodeId(const pool::NodeSpec& n) {
  return Id40("kvpool node " + n.Addr() + "@" + std::to_string(n.pool_port));
}

std::string ShardId(const pool::NodeSpec& owner) {
  return Id40("kvpool shard " + owner.Addr() + "@" + std::to_string(owner.pool_port));
}

// Who serves the slots whose first copy is `owner`: the master clients send
// them to, and the other copies that are up.
struct RangeView {
  int master;
  bool served;  // some copy in sync answers them
  std::vector<int> replicas;
};

RangeView ViewOf(const pool::Pool& p, int owner) {
  RangeView v;
  int r = p.ReadNode(owner);
  v.served = r >= 0 && p.NodeUp(r);
  v.master = r >= 0 ? r : owner;
  for (int i = 0; i < p.replicas(); ++i) {
    int c = (owner + i) % p.nodes();
    if (c != v.master && p.NodeUp(c)) v.replicas.push_back(c);
  }
  return v;
}

// Every primary range, in slot order: {first, last, owner}.
struct Range {
  int first, last, owner;
};

std::vector<Range> AllRanges(const pool::Pool& p) {
  std::vector<Range> out;
  for (int n = 0; n < p.nodes(); ++n)
    for (auto [a, b] : p.slots().RangesOf(n)) out.push_back({a, b, n});
  std::sort(out.begin(), out.end(), [](const Range& x, const Range& y) { return x.first < y.first; });
  return out;
}

void NodeEntry(protocol::ReplyBuilder& rb, const pool::Pool& p, int node) {
  const pool::NodeSpec n = p.Announced(node);
  rb.ArrayHeader(4);
  rb.Bulk(n.host);
  rb.Integer(n.port);
  rb.Bulk(NodeId(p.node(node)));
  rb.MapHeader(0);  // no hostname or other metadata
}

void Slots(CommandContext& cx, const pool::Pool& p) {
  std::vector<Range> ranges = AllRanges(p);
  protocol::ReplyBuilder& rb = cx.reply();
  rb.ArrayHeader(ranges.size());
  for (const Range& r : ranges) {
    RangeView v = ViewOf(p, r.owner);
    rb.ArrayHeader(3 + v.replicas.size());
    rb.Integer(r.first);
    rb.Integer(r.last);
    NodeEntry(rb, p, v.master);
    for (int c : v.replicas) NodeEntry(rb, p, c);
  }
}

const char* Health(const pool::Pool& p, int n) {
  if (!p.NodeUp(n)) return "failed";
  return p.Serving(n) ? "online" : "loading";
}

void ShardNode(protocol::ReplyBuilder& rb, const pool::Pool& p, int n, bool master) {
  const pool::NodeSpec s = p.Announced(n);
  rb.MapHeader(7);
  rb.Bulk("id");
  rb.Bulk(NodeId(p.node(n)));
  rb.Bulk("port");
  rb.Integer(s.port);
  rb.Bulk("ip");
  rb.Bulk(s.host);
  rb.Bulk("endpoint");
  rb.Bulk(s.host);
  rb.Bulk("role");
  rb.Bulk(master ? "master" : "replica");
  rb.Bulk("replication-offset");
  rb.Integer(0);
  rb.Bulk("health");
  rb.Bulk(Health(p, n));
}

void Shards(CommandContext& cx, const pool::Pool& p) {
  protocol::ReplyBuilder& rb = cx.reply();
  rb.ArrayHeader(p.nodes());
  for (int owner = 0; owner < p.nodes(); ++owner) {
    RangeView v = ViewOf(p, owner);
    auto ranges = p.slots().RangesOf(owner);
    rb.MapHeader(2);
    rb.Bulk("slots");
    rb.ArrayHeader(2 * ranges.size());
    for (auto [a, b] : ranges) {
      rb.Integer(a);
      rb.Integer(b);
    }
    rb.Bulk("nodes");
    rb.ArrayHeader(1 + v.replicas.size());
    ShardNode(rb, p, v.master, true);
    for (int c : v.replicas) ShardNode(rb, p, c, false);
  }
}

void Nodes(CommandContext& cx, const pool::Pool& p) {
  std::vector<Range> ranges = AllRanges(p);
  std::vector<pool::NodeStatus> status = p.Nodes();
  std::string out;
  for (int n = 0; n < p.nodes(); ++n) {
    const pool::NodeSpec s = p.Announced(n);
    const bool up = p.NodeUp(n), self = n == p.self();
    out += NodeId(p.node(n)) + " " + s.Addr() + "@" + std::to_string(s.pool_port) + " " +
           (self ? "myself,master" : "master") + (up ? "" : ",fail") + " - 0 " +
           std::to_string(self ? 0 : status[n].last_seen_ms) + " " + std::to_string(n + 1) + " " +
           (up ? "connected" : "disconnected");
    for (const Range& r : ranges) {
      if (ViewOf(p, r.owner).master != n) continue;
      out += " " + std::to_string(r.first);
      if (r.last != r.first) out += "-" + std::to_string(r.last);
    }
    out += "\n";
  }
  cx.reply().Verbatim(out);
}

void Info(CommandContext& cx, const pool::Pool& p) {
  int ok = 0, up = 0;
  for (const Range& r : AllRanges(p))
    if (ViewOf(p, r.owner).served) ok += r.last - r.first + 1;
  for (int n = 0; n < p.nodes(); ++n) up += p.NodeUp(n);
  // A node that sees fewer than half of the pool serves nothing.
  const bool state_ok = ok == pool::kSlots && up * 2 >= p.nodes();
  std::string out;
  auto line = [&out](std::string_view k, const std::string& v) {
    out.append(k).append(":").append(v).append("\r\n");
  };
  line("cluster_state", state_ok ? "ok" : "fail");
  line("cluster_slots_assigned", std::to_string(pool::kSlots));
  line("cluster_slots_ok", std::to_string(ok));
  line("cluster_slots_pfail", "0");
  line("cluster_slots_fail", std::to_string(pool::kSlots - ok));
  line("cluster_known_nodes", std::to_string(p.nodes()));
  line("cluster_size", std::to_string(p.nodes()));
  line("cluster_current_epoch", std::to_string(p.nodes()));
  line("cluster_my_epoch", std::to_string(p.self() + 1));
  line("cluster_stats_messages_sent", "0");
  line("cluster_stats_messages_received", "0");
  line("total_cluster_links_buffer_limit_exceeded", "0");
  cx.reply().Verbatim(out);
}

bool ParseSlot(std::string_view arg, int* slot) {
  int64_t v;
  if (!ParseInt64(arg, &v) || v < 0 || v >= pool::kSlots) return false;
  *slot = static_cast<int>(v);
  return true;
}

// Keys of `slot` this node holds (as a Redis Cluster node answers for its
// own data), at most `limit`; a full scan of the db.
std::vector<std::string> KeysInSlot(CommandContext& cx, int slot, uint64_t limit) {
  std::vector<std::string> keys;
  uint64_t cursor = 0;
  do {
    storage::ScanResult r = cx.store().Scan(
        cx.db(), cursor, 1024, [slot](std::string_view k) { return pool::KeySlot(k) == slot; },
        cx.now_ms());
    cursor = r.next_cursor;
    for (auto& k : r.keys) {
      if (keys.size() >= limit) return keys;
      keys.push_back(std::move(k));
    }
  } while (cursor != 0);
  return keys;
}

void CmdCluster(CommandContext& cx) {
  std::string sub = ToLower(cx.arg(1));
  if (sub == "keyslot" && cx.argc() == 3) return cx.reply().Integer(pool::KeySlot(cx.arg(2)));
  pool::Pool* p = cx.server().pool();
  if (p == nullptr) return cx.reply().Error(errors::kClusterDisabled);
  const size_t n = cx.argc();
  if (sub == "slots" && n == 2) return Slots(cx, *p);
  if (sub == "shards" && n == 2) return Shards(cx, *p);
  if (sub == "nodes" && n == 2) return Nodes(cx, *p);
  if (sub == "info" && n == 2) return Info(cx, *p);
  if (sub == "myid" && n == 2) return cx.reply().Bulk(NodeId(p->node(p->self())));
  if (sub == "myshardid" && n == 2) return cx.reply().Bulk(ShardId(p->node(p->self())));
  if (sub == "countkeysinslot" && n == 3) {
    int slot;
    if (!ParseSlot(cx.arg(2), &slot)) return cx.reply().Error(errors::kInvalidSlot);
    return cx.reply().Integer(static_cast<int64_t>(KeysInSlot(cx, slot, UINT64_MAX).size()));
  }
  if (sub == "getkeysinslot" && n == 4) {
    int slot;
    int64_t count;
    if (!ParseSlot(cx.arg(2), &slot) || !ParseInt64(cx.arg(3), &count) || count < 0)
      return cx.reply().Error(errors::kInvalidSlotOrCount);
    std::vector<std::string> keys = KeysInSlot(cx, slot, static_cast<uint64_t>(count));
    cx.reply().ArrayHeader(keys.size());
    for (const auto& k : keys) cx.reply().Bulk(k);
    return;
  }
  if (sub == "help" && n == 2) {
    static constexpr const char* kHelp[] = {
        "CLUSTER <subcommand> [<arg> ...]. kvpool's pool seen as a Redis Cluster:",
        "SLOTS -- slot ranges with the node serving each and its replicas.",
        "SHARDS -- per shard: its slot ranges and nodes.",
        "NODES -- one line per node.",
        "INFO -- state and counts.",
        "MYID / MYSHARDID -- this node's id / its shard's id.",
        "KEYSLOT <key> -- the hash slot of a key.",
        "COUNTKEYSINSLOT <slot> / GETKEYSINSLOT <slot> <count> -- keys of a slot held here.",
    };
    cx.reply().ArrayHeader(std::size(kHelp));
    for (const char* line : kHelp) cx.reply().SimpleString(line);
    return;
  }
  static constexpr const char* kManaged[] = {
      "addslots", "addslotsrange", "delslots", "delslotsrange", "flushslots", "forget",
      "meet", "replicate", "reset", "setslot", "failover", "bumpepoch", "set-config-epoch",
      "saveconfig"};
  for (const char* m : kManaged)
    if (sub == m) return cx.reply().Error(errors::kClusterPlacesSlotsItself);
  cx.reply().Error(errors::UnknownSubcommandOrArity(cx.arg(1), "CLUSTER"));
}

// READONLY / READWRITE: whether a cluster client's reads may be served by a
// node holding a replica of their slot (cluster-redirects yes). ASKING is
// accepted: slots never migrate in a pool.
void CmdReadOnly(CommandContext& cx) {
  if (cx.server().pool() == nullptr) return cx.reply().Error(errors::kClusterDisabled);
  cx.client().readonly = true;
  cx.reply().Ok();
}

void CmdReadWrite(CommandContext& cx) {
  if (cx.server().pool() == nullptr) return cx.reply().Error(errors::kClusterDisabled);
  cx.client().readonly = false;
  cx.reply().Ok();
}

void CmdAsking(CommandContext& cx) {
  if (cx.server().pool() == nullptr) return cx.reply().Error(errors::kClusterDisabled);
  cx.reply().Ok();
}

}  // namespace

std::string MovedError(ServerContext& server, const ClientState& client, const CommandSpec& spec,
                       std::span<const std::string_view> args) {
  pool::Pool* p = server.pool();
  std::vector<std::string_view> keys = CommandKeys(spec, args);
  if (keys.size() != 1) return {};  // multi-key commands are served across slots
  const int slot = pool::KeySlot(keys[0]);
  const int owner = p->slots().OwnerOfSlot(slot);
  const int target = p->ReadNode(owner);
  if (target < 0 || target == p->self()) return {};
  // READONLY: a read of a slot this node holds a copy of, in sync, is served here.
  if (client.readonly && (spec.flags & kCmdReadOnly) && p->slots().HoldsSlot(p->self(), slot) &&
      p->Serving(p->self()))
    return {};
  return errors::Moved(slot, p->Announced(target).Addr());
}

void RegisterClusterFamily(CommandTable& t) {
  t.Add({"cluster", -2, kCmdLoading | kCmdStale, 0, 0, 0, CmdCluster, "cluster",
         "The pool as a Redis Cluster: SLOTS, SHARDS, NODES, INFO, MYID, KEYSLOT, ..."});
  t.Add({"readonly", 1, kCmdFast | kCmdLoading | kCmdStale | kCmdConnection, 0, 0, 0, CmdReadOnly,
         "cluster", "Reads of slots this node holds a replica of are served here."});
  t.Add({"readwrite", 1, kCmdFast | kCmdLoading | kCmdStale | kCmdConnection, 0, 0, 0,
         CmdReadWrite, "cluster", "Ends READONLY."});
  t.Add({"asking", 1, kCmdFast | kCmdLoading | kCmdStale | kCmdConnection, 0, 0, 0, CmdAsking,
         "cluster", "Accepted (slots never migrate in a pool)."});
}

}  // namespace kvpool
