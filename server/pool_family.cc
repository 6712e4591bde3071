// POOL NODES / KEYNODE / MEXISTS / DBSIZE / COPIES, and
// INFO's pool section.
#include <string>

#include "server/command_table.h"
#include "server/errors.h"
#include "server/key_access.h"
#include "server/pool_commands.h"
#include "server/server_context.h"
#include "server/util/strings.h"
#include "storage/pool/pool.h"
#include "storage/util/digest.h"

namespace kvpool {

namespace {

std::string Ranges(const std::vector<std::pair<int, int>>& r) {
  std::string out;
  for (auto [a, b] : r) {
    if (!out.empty()) out += ",";
    out += a == b ? std::to_string(a) : std::to_string(a) + "-" + std::to_string(b);
  }
  return out.empty() ? "-" : out;
}

std::string SelfAddr(ServerContext& s) {
  std::vector<std::string> bind;
  (void)SplitArgs(s.config().String("bind"), &bind);
  return (bind.empty() ? std::string("127.0.0.1") : bind[0]) + ":" + std::to_string(s.tcp_port);
}

// One line per node: index, address@poolport, flags, state (up, down, or
// syncing with replicas), slot ranges as primary, keys, memory, transport;
// with replicas also the ranges held as replica and the lag.
const char* StateName(pool::NodeState s) {
  switch (s) {
    case pool::NodeState::kUp:
      return "up";
    case pool::NodeState::kSyncing:
      return "syncing";
    default:
      return "down";
  }
}

// Slots whose primary is `owner` and that no copy serves (in sync): their
// writes are refused and their reads miss until a copy is back.
int UnservedSlots(const pool::Pool& p, int owner) {
  return p.HasCopyServing(owner) ? 0 : p.slots().PrimarySlots(owner);
}

void CmdPoolNodes(CommandContext& cx) {
  pool::Pool* p = cx.server().pool();
  std::string out;
  if (p == nullptr) {
    storage::StoreStats st = cx.store().GetStats();
    out = "0 " + SelfAddr(cx.server()) + " myself up 0-16383 keys=" + std::to_string(st.keys) +
          " used_memory=" + std::to_string(st.used_memory) +
          " maxmemory=" + std::to_string(st.maxmemory) + " transport=local\n";
  } else {
    auto nodes = p->Nodes();
    for (size_t i = 0; i < nodes.size(); ++i) {
      const auto& n = nodes[i];
      out += std::to_string(i) + " " + n.spec.Addr() + "@" + std::to_string(n.spec.pool_port) +
             (n.self ? " myself " : " - ") + StateName(n.state) +
             " " + Ranges(p->slots().RangesOf(static_cast<int>(i))) +
             " keys=" + std::to_string(n.keys) + " used_memory=" + std::to_string(n.used_memory) +
             " maxmemory=" + std::to_string(n.maxmemory) + " transport=" +
             (n.self ? "local" : p->transport_name());
      if (p->replicas() > 1)
        out += " replica_slots=" + Ranges(p->slots().ReplicaRangesOf(static_cast<int>(i))) +
               " lag_ms=" + std::to_string(n.lag_ms) +
               " unserved_slots=" + std::to_string(UnservedSlots(*p, static_cast<int>(i)));
      out += "\n";
    }
  }
  cx.reply().Verbatim(out);
}

const char* CopyStateName(pool::CopyInfo::State s) {
  switch (s) {
    case pool::CopyInfo::kInSync:
      return "in-sync";
    case pool::CopyInfo::kSyncing:
      return "syncing";
    default:
      return "down";
  }
}

// POOL COPIES key: per copy of the key's slot, primary first,
// [address, state, version, digest]; version and digest nil where that
// copy holds no such key (or did not answer: state "down").
void CmdPoolCopies(CommandContext& cx) {
  pool::Pool* p = cx.server().pool();
  std::string self = p == nullptr ? SelfAddr(cx.server()) : std::string();
  keys::Copies(cx, cx.arg(2),
               [p, self](protocol::ReplyBuilder& rb, std::vector<pool::CopyInfo>& copies) {
                 rb.ArrayHeader(copies.size());
                 for (const pool::CopyInfo& c : copies) {
                   rb.ArrayHeader(4);
                   rb.Bulk(p != nullptr ? p->node(c.node).Addr() : self);
                   rb.Bulk(CopyStateName(c.state));
                   if (!c.present) {
                     rb.Null();
                     rb.Null();
                     continue;
                   }
                   rb.Integer(static_cast<int64_t>(c.version));
                   rb.Bulk(Hex64(c.digest));
                 }
               });
}

void CmdPool(CommandContext& cx) {
  std::string sub = ToLower(cx.arg(1));
  if (sub == "nodes" && cx.argc() == 2) return CmdPoolNodes(cx);
  if (sub == "keynode" && cx.argc() == 3) {
    pool::Pool* p = cx.server().pool();
    if (p == nullptr) return cx.reply().Bulk(SelfAddr(cx.server()));
    return cx.reply().Bulk(p->node(p->OwnerOf(cx.arg(2))).Addr());
  }
  if (sub == "mexists" && cx.argc() >= 3) {
    // As MEXISTS, but -1 for a key whose node could not answer (the LLM
    // client's batch_is_exist tells "absent" from "unknown").
    return keys::MultiExists(cx, cx.args().subspan(2),
                             [](protocol::ReplyBuilder& rb, std::vector<int8_t>& flags,
                                std::string_view) {
                               rb.ArrayHeader(flags.size());
                               for (int8_t f : flags) rb.Integer(f);
                             });
  }
  if (sub == "dbsize" && cx.argc() == 2) {
    // Keys of this db this node answers reads for (with replicas a key is
    // on several nodes; this counts it on one). A full scan: O(keys).
    pool::Pool* p = cx.server().pool();
    if (p == nullptr || p->replicas() == 1)
      return cx.reply().Integer(static_cast<int64_t>(cx.store().DbSize(cx.db())));
    int64_t n = 0;
    uint64_t cursor = 0;
    do {
      storage::ScanResult r = cx.store().Scan(
          cx.db(), cursor, 1024,
          [&](std::string_view k) { return p->ReadNode(p->OwnerOf(k)) == p->self(); }, cx.now_ms());
      cursor = r.next_cursor;
      n += static_cast<int64_t>(r.keys.size());
    } while (cursor != 0);
    return cx.reply().Integer(n);
  }
  if (sub == "copies") {
    if (cx.argc() != 3) return cx.reply().Error(errors::WrongArity("pool|copies"));
    return CmdPoolCopies(cx);
  }
  if (sub == "help") {
    cx.reply().ArrayHeader(6);
    cx.reply().SimpleString("POOL NODES -- every node: address, state, slots, keys, memory.");
    cx.reply().SimpleString("POOL KEYNODE <key> -- the node that owns <key>.");
    cx.reply().SimpleString(
        "POOL MEXISTS <key> [<key> ...] -- 1/0 per key as MEXISTS, -1 where its node is down.");
    cx.reply().SimpleString(
        "POOL DBSIZE -- keys of this db this node answers reads for (DBSIZE's part with replicas).");
    cx.reply().SimpleString(
        "POOL COPIES <key> -- per copy: [address, in-sync|syncing|down, version, digest].");
    cx.reply().SimpleString("POOL HELP");
    return;
  }
  cx.reply().Error(errors::UnknownSubcommandOrArity(cx.arg(1), "POOL"));
}

}  // namespace

void RegisterPoolFamily(CommandTable& t) {
  t.Add({"pool", -2, kCmdReadOnly | kCmdLoading | kCmdStale, 0, 0, 0, CmdPool, "server",
         "The nodes of the pool and which one owns a key."});
}

std::string PoolInfoSection(ServerContext& s) {
  pool::Pool* p = s.pool();
  if (p == nullptr) return "pool_nodes:1\r\npool_self:0\r\ntransport:local\r\n";
  std::string out;
  int up = 0;
  for (int n = 0; n < p->nodes(); ++n) up += p->NodeUp(n);
  out += "pool_nodes:" + std::to_string(p->nodes()) + "\r\n";
  out += "pool_self:" + std::to_string(p->self()) + "\r\n";
  out += "pool_nodes_up:" + std::to_string(up) + "\r\n";
  out += "transport:" + std::string(p->transport_name()) + "\r\n";
  out += "pool_timeout_ms:" + std::to_string(p->timeout_ms()) + "\r\n";
  // Connections to the pool port turned away before they authenticated.
  const auto& lc = p->listen_counters();
  out += "pool_port_refused_sources:" + std::to_string(lc.refused_sources.load()) + "\r\n";
  out += "pool_port_dropped_handshakes:" + std::to_string(lc.dropped_handshakes.load()) + "\r\n";
  // The transport's own counters (TCP: frames and their MAC; RDMA: RdmaStats).
  for (const transport::TransportCounter& c : p->transport_counters())
    out += "pool_transport_" + c.name + ":" + std::to_string(c.value) + "\r\n";
  // Writes whose reply never came, by what the owner said became of them.
  const pool::WriteFates wf = p->write_fates();
  out += "pool_write_fates_landed:" + std::to_string(wf.landed) + "\r\n";
  out += "pool_write_fates_fenced:" + std::to_string(wf.fenced) + "\r\n";
  out += "pool_write_fates_unknown:" + std::to_string(wf.unknown) + "\r\n";
  // Keys and whole commands of clients this node sent to another node (a
  // cluster client that goes to each key's node keeps both at 0).
  out += "pool_keys_elsewhere:" + std::to_string(p->routed().keys_elsewhere.load()) + "\r\n";
  out += "pool_commands_forwarded:" + std::to_string(p->routed().commands_forwarded.load()) + "\r\n";
  out += "pool_replicas:" + std::to_string(p->replicas()) + "\r\n";
  if (p->replicas() > 1) {
    pool::SyncStats ss = p->sync_stats();
    out += "pool_sync_state:" + std::string(ss.in_sync ? "in_sync" : "syncing") + "\r\n";
    out += "pool_sync_attempts:" + std::to_string(ss.attempts) + "\r\n";
    // A node that never was in sync waits for copies that may hold data of
    // slots no copy in sync holds.
    if (!ss.waiting_for.empty()) {
      std::string names;
      for (int c : ss.waiting_for) names += (names.empty() ? "" : ",") + p->node(c).Addr();
      out += "pool_sync_waiting_for:" + names + "\r\n";
    }
    // Copies this node caught up without: merged from once they are back.
    if (!ss.merge_pending.empty()) {
      std::string names;
      for (int c : ss.merge_pending) names += (names.empty() ? "" : ",") + p->node(c).Addr();
      out += "pool_sync_merge_pending:" + names + "\r\n";
    }
    int unserved = 0;
    for (int n = 0; n < p->nodes(); ++n) unserved += UnservedSlots(*p, n);
    out += "pool_slots_unserved:" + std::to_string(unserved) + "\r\n";
    out += "pool_sync_keys_pulled:" + std::to_string(ss.keys_pulled) + "\r\n";
    out += "pool_sync_keys_rechecked:" + std::to_string(ss.keys_rechecked) + "\r\n";
    out += "pool_sync_keys_merged:" + std::to_string(ss.keys_merged) + "\r\n";
    auto nodes = p->Nodes();
    // How long the catch-up took (so far, while syncing).
    out += "pool_sync_ms:" +
           std::to_string(ss.in_sync ? ss.finished_ms - ss.started_ms : nodes[p->self()].lag_ms) +
           "\r\n";
    out += "pool_replica_write_errors:" + std::to_string(ss.replica_write_errors) + "\r\n";
    // Writes that failed in transit to a copy: copies told to fetch those
    // keys again, and times this node was told so.
    out += "pool_catch_up_sent:" + std::to_string(ss.catch_ups_sent) + "\r\n";
    out += "pool_catch_up_received:" + std::to_string(ss.catch_ups_received) + "\r\n";
    // Keys dropped here because another copy evicted them; evictions here
    // the other copies could not be told of.
    out += "pool_evictions_applied:" + std::to_string(ss.evictions_applied) + "\r\n";
    out += "pool_evictions_unsent:" + std::to_string(ss.evictions_unsent) + "\r\n";
    // Per node, as this node sees it: slots held as primary and as replica,
    // state and lag (0 when up and in sync).
    for (int n = 0; n < p->nodes(); ++n)
      out += "node" + std::to_string(n) + ":addr=" + p->node(n).Addr() +
             ",state=" + StateName(nodes[n].state) +
             ",slots_primary=" + std::to_string(p->slots().PrimarySlots(n)) +
             ",slots_replica=" + std::to_string(p->slots().ReplicaSlots(n)) +
             ",lag_ms=" + std::to_string(nodes[n].lag_ms) + "\r\n";
  }
  for (int n = 0; n < p->nodes(); ++n) {
    if (n == p->self()) continue;
    const auto& c = p->counters(n);
    out += "peer" + std::to_string(n) + ":addr=" + p->node(n).Addr() +
           ",state=" + (p->NodeUp(n) ? "up" : "down") + ",transport=" + p->transport_name() +
           ",calls=" + std::to_string(c.calls.load()) +
           ",errors=" + std::to_string(c.errors.load()) +
           ",bytes_in=" + std::to_string(c.bytes_in.load()) +
           ",bytes_out=" + std::to_string(c.bytes_out.load()) +
           ",rdma_reads=" + std::to_string(c.rdma_reads.load()) +
           ",rdma_writes=" + std::to_string(c.rdma_writes.load()) + "\r\n";
  }
  return out;
}

}  // namespace kvpool
