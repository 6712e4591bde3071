#include "server/routing.h"

#include <set>

#include "server/command_table.h"
#include "server/dispatcher.h"
#include "server/errors.h"
#include "server/key_access.h"
#include "server/pool_executor.h"
#include "server/util/strings.h"
#include "storage/pool/pool.h"

namespace kvpool {

bool IsMemoryUsage(const CommandSpec& spec, std::span<const std::string_view> args) {
  return spec.name == "memory" && args.size() >= 3 && EqualsIgnoreCase(args[1], "usage");
}

std::vector<std::string_view> CommandKeys(const CommandSpec& spec,
                                          std::span<const std::string_view> args) {
  std::vector<std::string_view> keys;
  ForEachCommandKey(spec, args, [&](std::string_view k) {
    keys.push_back(k);
    return true;
  });
  return keys;
}

std::string RunLocally(ServerContext& server, int lane, int db, int resp,
                       std::span<const std::string_view> args) {
  protocol::StringSink sink;
  RunLocallyInto(server, lane, db, resp, args, &sink);
  return std::move(sink.out);
}

void RunLocallyInto(ServerContext& server, int lane, int db, int resp,
                    std::span<const std::string_view> args, protocol::ReplySink* sink) {
  ClientState c;
  c.authenticated = true;
  c.local_only = true;
  c.db = db;
  c.resp = resp;
  c.lane = lane;
  protocol::ReplyBuilder rb(sink, resp);
  Dispatch(server, c, rb, args, NowMs(), lane);
  if (c.watch) server.store().Unwatch(c.watch);
}

namespace {

// A reply a peer sent for a forwarded command, handed to the client whole:
// a large one (a value) by reference, never copied into its output nor
// counted there as a copy (client-output-buffer-limit).
void FinishForwarded(ReplySlot& slot, std::string reply) {
  if (reply.size() < kZeroCopyMinBytes) return slot.Finish(reply);
  protocol::DeferredReply out;
  auto* owned = new std::string(std::move(reply));
  out.WriteRef(owned->data(), owned->size(), &protocol::DeleteString, owned);
  slot.Finish(std::move(out));
}

std::string NodeList(const pool::Pool& p, const std::set<int>& nodes) {
  std::string out;
  for (int n : nodes) out += (out.empty() ? "" : ", ") + p.node(n).Addr();
  return out;
}

}  // namespace

namespace {

// With replicas: a read runs on the first copy in sync (here if that is
// this node); a write on every copy that is up (pool::Pool::RunOnCopies),
// or here alone when this node is the only copy up and in sync.
bool RouteToCopies(ServerContext& server, ClientState& client, protocol::ReplyBuilder& reply,
                   int owner, bool read_only, std::span<const std::string_view> args) {
  pool::Pool* p = server.pool();
  if (read_only) {
    int node = p->ReadNode(owner);
    if (node == p->self()) return false;
    if (node < 0) {
      // This node's copy, if any, may be stale: no answer rather than that.
      reply.Error(errors::PoolNodeDown(p->NoCopyError(owner)));
      return true;
    }
  } else {
    std::vector<int> to = p->WriteNodes(owner);
    if (to.empty()) {
      reply.Error(errors::PoolNodeDown(p->NoCopyError(owner)));
      return true;
    }
    if (to.size() == 1 && to[0] == p->self() && p->Serving(p->self())) return false;
  }
  std::shared_ptr<ReplySlot> slot = client.defer ? client.defer() : nullptr;
  if (!slot) return false;  // an in-process caller cannot wait
  ServerContext* srv = &server;
  int lane = client.lane, db = client.db, resp = client.resp;
  // Kept only for a read's fallback: a write's arguments may be hundreds of MB.
  std::vector<std::string> copy;
  if (read_only) copy.assign(args.begin(), args.end());
  p->RunOnCopies(lane, owner, db, resp, args, !read_only,
                 [slot, srv, lane, db, resp, owner, read_only, copy = std::move(copy)](
                     Status s, std::string r) {
                   if (s.ok()) return FinishForwarded(*slot, std::move(r));
                   // Only from a copy in sync: another node's answer (a miss,
                   // an empty range) would be a wrong one, not an error.
                   if (read_only && srv->pool()->ReadNode(owner) == srv->pool()->self()) {
                     std::vector<std::string_view> argv(copy.begin(), copy.end());
                     return slot->Finish(RunLocally(*srv, lane, db, resp, argv));
                   }
                   slot->Finish(protocol::EncodeError(errors::FromStatus(s)));
                 },
                 client.args_owner);
  return true;
}

}  // namespace

bool RouteByKeys(ServerContext& server, ClientState& client, protocol::ReplyBuilder& reply,
                 const CommandSpec& spec, std::span<const std::string_view> args, int64_t) {
  pool::Pool* p = server.pool();
  // Its handler stores it through the pool (keys::MultiSet).
  if (spec.name == "set" && keys::SetByPairs(args)) return false;
  std::vector<std::string_view> keys = CommandKeys(spec, args);
  if (keys.empty()) return false;
  std::set<int> owners;
  for (std::string_view k : keys) owners.insert(p->OwnerOf(k));
  if (owners.size() > 1) {
    reply.Error(errors::PoolKeysOnNodes(spec.name, NodeList(*p, owners)));
    return true;
  }
  int owner = *owners.begin();
  bool read_only = (spec.flags & kCmdReadOnly) != 0;
  if (spec.name == "get") {
    // Its handler reads through the pool (keys::ReadsElsewhere); with no
    // copy in sync it answers the slots' error, as other single-key reads.
    if (p->replicas() > 1 && p->ReadNode(owner) < 0) {
      reply.Error(errors::PoolNodeDown(p->NoCopyError(owner)));
      return true;
    }
    return false;
  }
  if (p->replicas() > 1) return RouteToCopies(server, client, reply, owner, read_only, args);
  if (owner == p->self()) return false;
  if (!p->NodeUp(owner)) {
    // Reads of keys on a down node answer as if the key were missing;
    // writes say which node could not take them.
    if (read_only) return false;
    reply.Error(errors::PoolNodeDown(p->NodeDownError(owner)));
    return true;
  }
  std::shared_ptr<ReplySlot> slot = client.defer ? client.defer() : nullptr;
  if (!slot) return false;  // an in-process caller cannot wait
  ServerContext* srv = &server;
  int lane = client.lane, db = client.db, resp = client.resp;
  // Kept only for a read's fallback: a write's arguments may be hundreds of MB.
  std::vector<std::string> copy;
  if (read_only) copy.assign(args.begin(), args.end());
  p->Forward(lane, owner, db, resp, args,
             [slot, srv, lane, db, resp, read_only, copy = std::move(copy)](Status s,
                                                                            std::string r) {
               if (s.ok()) return FinishForwarded(*slot, std::move(r));
               if (read_only) {
                 std::vector<std::string_view> argv(copy.begin(), copy.end());
                 return slot->Finish(RunLocally(*srv, lane, db, resp, argv));
               }
               slot->Finish(protocol::EncodeError(errors::FromStatus(s)));
             },
             /*ordered=*/false, client.args_owner);
  return true;
}

namespace {

bool Aborted(const std::string& r) {
  return r.empty() || r[0] == '_' || r[0] == '-' || r.compare(0, 3, "*-1") == 0;
}

// The db a client is in after EXEC of `cmds` (a SELECT among them moves it).
int DbAfter(ServerContext& server, int db, const std::vector<std::vector<std::string>>& cmds) {
  for (const auto& c : cmds) {
    int64_t to;
    if (c.size() == 2 && EqualsIgnoreCase(c[0], "select") && ParseInt64(c[1], &to) && to >= 0 &&
        to < server.store().databases())
      db = static_cast<int>(to);
  }
  return db;
}

bool Ran(const std::string& r) { return !Aborted(r); }

// With replicas, a transaction whose keys' primary is `owner`: run with its
// watches on that primary, the first copy in sync (here through the
// client's own EXEC), which then relays the state of the keys it wrote to
// every other copy that is up, as it does for any other write
// (storage/pool/ordered.cc): so copies end in the primary's order however
// transactions from different nodes interleave. Answered once all have it.
bool RouteExecToCopies(ServerContext& server, ClientState& client, protocol::ReplyBuilder& reply,
                       int owner, bool writes) {
  pool::Pool* p = server.pool();
  int acting = p->ReadNode(owner);
  bool others = false;
  if (writes)
    for (int c : p->WriteNodes(owner)) others |= c != acting;
  if (acting == p->self() && !others && client.remote_watches.empty()) return false;
  std::shared_ptr<ReplySlot> slot = client.defer ? client.defer() : nullptr;
  auto reset = [&] {
    client.in_multi = false;
    client.multi_error = false;
    client.queued.clear();
    client.info->multi_queued.store(-1, std::memory_order_relaxed);
    client.remote_watches.clear();
    if (client.watch) {
      server.store().Unwatch(client.watch);
      client.watch.reset();
    }
  };
  if (acting < 0 || !slot) {
    reply.Error(acting < 0 ? errors::PoolExecNoCopy(p->NoCopyError(owner))
                           : errors::PoolExecKeysOn(p->node(owner).Addr()));
    reset();
    return true;
  }
  const std::string null_reply = client.resp == 3 ? "_\r\n" : "*-1\r\n";
  int lane = client.lane, db = client.db, resp = client.resp;
  if (acting == p->self()) {
    std::vector<std::vector<std::string>> cmds = client.queued;
    std::string r;
    if (!client.remote_watches.empty()) {
      // Versions watched on another copy mean nothing here: abort, as a
      // changed key would.
      reset();
      r = null_reply;
    } else {
      protocol::StringSink sink;
      protocol::ReplyBuilder rb(&sink, resp);
      std::vector<std::string_view> exec{"EXEC"};
      server.gate().LockExclusive();
      Execute(server, client, rb, exec, NowMs());
      server.gate().UnlockExclusive();
      r = std::move(sink.out);
    }
    if (!writes || !Ran(r)) {
      slot->Finish(r);
      return true;
    }
    std::vector<std::vector<std::string_view>> views;
    for (const auto& cmd : cmds) views.emplace_back(cmd.begin(), cmd.end());
    std::vector<std::pair<int, std::string>> written;
    for (const auto& [kdb, k] : PoolExecutor(&server).TransactionWrites(db, views))
      written.emplace_back(kdb, std::string(k));
    p->RelayWritten(lane, written, [slot, r = std::move(r)](Status s) {
      slot->Finish(s.ok() ? r : protocol::EncodeError(errors::FromStatus(s)));
    });
    return true;
  }
  std::vector<std::pair<std::string, uint64_t>> watched;
  for (const auto& w : client.remote_watches) {
    // Versions are per node: watched elsewhere, they cannot hold here.
    watched.emplace_back(w.key, w.node == acting ? w.version : ~uint64_t{0});
  }
  // Keys watched here while this node answered their reads: it no longer
  // does, so they cannot be checked where the transaction runs.
  bool local_watch = client.watch != nullptr;
  std::vector<std::vector<std::string>> cmds = std::move(client.queued);
  reset();
  if (local_watch) {
    slot->Finish(null_reply);
    return true;
  }
  int final_db = DbAfter(server, db, cmds);
  ClientState* cl = &client;
  p->ForwardTransaction(
      lane, acting, db, resp, cmds, watched,
      [slot, cl, final_db](Status s, std::string r) {
        if (s.ok() && slot->alive() && Ran(r)) cl->db = final_db;
        if (s.ok()) return slot->Finish(r);
        // Refused by a node that is no longer primary, or ran there and a
        // copy missed it: not an EXECABORT, which says it did not run.
        slot->Finish(protocol::EncodeError(s.code() == Code::kAborted
                                               ? errors::FromStatus(s)
                                               : errors::ExecAbortFromStatus(s)));
      },
      /*ordered=*/writes);
  return true;
}

}  // namespace

bool RouteExec(ServerContext& server, ClientState& client, protocol::ReplyBuilder& reply) {
  pool::Pool* p = server.pool();
  if (!client.in_multi || client.multi_error) return false;
  std::set<int> owners;
  bool writes = false;
  for (const auto& cmd : client.queued) {
    const CommandSpec* spec = server.commands().Find(cmd[0]);
    if (spec == nullptr) continue;
    writes |= (spec->flags & kCmdWrite) != 0;
    std::vector<std::string_view> argv(cmd.begin(), cmd.end());
    for (std::string_view k : CommandKeys(*spec, argv)) owners.insert(p->OwnerOf(k));
  }
  if (p->replicas() > 1) {
    // Watches count by the keys' primary: the copy watched may differ.
    for (const auto& w : client.remote_watches) owners.insert(p->OwnerOf(w.key));
    if (owners.size() == 1) return RouteExecToCopies(server, client, reply, *owners.begin(), writes);
    if (owners.empty()) return false;
  }
  for (const auto& w : client.remote_watches) owners.insert(w.node);
  if (client.watch) owners.insert(p->self());
  if (owners.empty() || (owners.size() == 1 && *owners.begin() == p->self())) return false;

  auto reset = [&] {
    client.in_multi = false;
    client.multi_error = false;
    client.queued.clear();
    client.info->multi_queued.store(-1, std::memory_order_relaxed);
    client.remote_watches.clear();
    if (client.watch) {
      server.store().Unwatch(client.watch);
      client.watch.reset();
    }
  };
  if (owners.size() > 1) {
    reply.Error(errors::PoolExecAcrossNodes(NodeList(*p, owners)));
    reset();
    return true;
  }
  int owner = *owners.begin();
  std::shared_ptr<ReplySlot> slot = client.defer ? client.defer() : nullptr;
  if (!slot) {
    reply.Error(errors::PoolExecKeysOn(p->node(owner).Addr()));
    reset();
    return true;
  }
  std::vector<std::pair<std::string, uint64_t>> watched;
  for (const auto& w : client.remote_watches) watched.emplace_back(w.key, w.version);
  std::vector<std::vector<std::string>> cmds = std::move(client.queued);
  // A SELECT inside the transaction runs on the owner; the client's own db
  // must follow it, as it would after a local EXEC.
  int final_db = DbAfter(server, client.db, cmds);
  ClientState* cl = &client;
  p->ForwardTransaction(client.lane, owner, client.db, client.resp, cmds, watched,
                        [slot, cl, final_db](Status s, std::string r) {
                          if (s.ok() && slot->alive() && Ran(r)) cl->db = final_db;
                          slot->Finish(s.ok() ? r : protocol::EncodeError(errors::ExecAbortFromStatus(s)));
                        });
  reset();
  return true;
}

bool RouteWatch(ServerContext& server, ClientState& client, protocol::ReplyBuilder& reply,
                std::span<const std::string_view> args, int64_t now_ms) {
  pool::Pool* p = server.pool();
  if (client.in_multi) return false;  // the handler refuses it
  std::vector<std::vector<std::string_view>> remote(p->nodes());
  std::vector<std::string_view> local{args[0]};
  for (size_t i = 1; i < args.size(); ++i) {
    int o = p->OwnerOf(args[i]);
    // With replicas, versions come from the copy that answers reads.
    if (p->replicas() > 1 && p->ReadNode(o) >= 0) o = p->ReadNode(o);
    if (o == p->self()) local.push_back(args[i]);
    else remote[o].push_back(args[i]);
  }
  if (local.size() == args.size()) return false;
  std::shared_ptr<ReplySlot> slot = client.defer ? client.defer() : nullptr;
  if (!slot) return false;
  if (local.size() > 1) {
    protocol::StringSink ignore;
    protocol::ReplyBuilder rb(&ignore, client.resp);
    Execute(server, client, rb, local, now_ms);
  }
  struct State {
    int pending = 1;
    std::string error;
    std::shared_ptr<ReplySlot> slot;
    ClientState* client;  // used only while slot->alive()
  };
  auto st = std::make_shared<State>();
  st->slot = slot;
  st->client = &client;
  auto finish = [st] {
    if (--st->pending > 0) return;
    st->slot->Finish(st->error.empty() ? "+OK\r\n" : protocol::EncodeError(st->error));
  };
  for (int n = 0; n < p->nodes(); ++n) {
    if (remote[n].empty()) continue;
    ++st->pending;
    std::vector<std::string> keys(remote[n].begin(), remote[n].end());
    p->Versions(client.lane, n, client.db, remote[n],
                [st, n, keys, finish](Status s, std::vector<uint64_t>& versions) {
                  if (!s.ok()) {
                    st->error = errors::PoolWatchFailed(s);
                  } else if (st->slot->alive()) {
                    for (size_t i = 0; i < keys.size(); ++i)
                      st->client->remote_watches.push_back({n, keys[i], versions[i]});
                  }
                  finish();
                });
  }
  finish();
  return true;
}

}  // namespace kvpool
