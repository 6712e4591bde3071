#include "server/dispatcher.h"

#include <sys/time.h>

#include <ctime>

#include "server/cluster_family.h"
#include "server/command_stats.h"
#include "server/command_table.h"
#include "server/errors.h"
#include "server/exec_gate.h"
#include "server/routing.h"

namespace kvpool {

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

namespace {
// The open batch of this thread: its depth, and the end of the last command
// run in it (0 until one ran).
thread_local int t_batch_depth = 0;
thread_local uint64_t t_batch_mark_us = 0;

}  // namespace

void BeginCommandBatch() {
  if (t_batch_depth++ == 0) t_batch_mark_us = 0;
}

void EndCommandBatch() {
  if (--t_batch_depth == 0) t_batch_mark_us = 0;
}

storage::Store& CommandContext::store() { return server_.store(); }

pool::Pool* CommandContext::pool() { return client_.local_only ? nullptr : server_.pool(); }

namespace {

// "ERR unknown command 'foo', with args beginning with: 'a' 'b' " as Redis
// 7 words it, arguments cut to 128 bytes in all.
std::string UnknownCommandError(std::span<const std::string_view> args) {
  std::string preview;
  for (size_t i = 1; i < args.size() && preview.size() < 128; ++i) {
    size_t room = 128 - preview.size();
    preview += "'" + std::string(args[i].substr(0, room)) + "' ";
  }
  return errors::UnknownCommand(args[0], preview);
}

bool ArityOk(const CommandSpec& spec, size_t argc) {
  return spec.arity >= 0 ? argc == static_cast<size_t>(spec.arity)
                         : argc >= static_cast<size_t>(-spec.arity);
}

// Commands that act at once inside MULTI instead of being queued.
bool RunsInsideMulti(const CommandSpec& spec) { return (spec.flags & kCmdNoMulti) != 0; }

uint64_t MonoUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

// When a command starts, for its statistics.
uint64_t StartUs() {
  if (t_batch_depth > 0 && t_batch_mark_us != 0) return t_batch_mark_us;
  return MonoUs();
}

// When a command ended; the next one in the batch starts there.
uint64_t EndUs() {
  uint64_t now = MonoUs();
  if (t_batch_depth > 0) t_batch_mark_us = now;
  return now;
}

// What happened to one command, for its statistics.
enum class Outcome { kUnknown, kRejected, kQueued, kRan };

// Secrets stay out of the slow log.
bool Redacted(const CommandSpec& spec) { return spec.name == "auth" || spec.name == "hello"; }

// Counts one command (INFO commandstats / latencystats / errorstats) and
// logs it when slow (SLOWLOG). `started_us` is when it began to run.
void Account(ServerContext& server, ClientState& client, protocol::ReplyBuilder& reply,
             std::span<const std::string_view> args, const CommandSpec* spec, Outcome outcome,
             uint64_t errors_before, uint64_t started_us) {
  CommandStats& cs = server.command_stats();
  uint64_t errors = reply.errors() - errors_before;
  if (errors > 0) cs.CountError(reply.last_error_code(), errors);
  if (spec == nullptr) return;
  CommandCounters& c = cs.Mine(static_cast<size_t>(spec - server.commands().All().data()));
  if (outcome == Outcome::kRejected) {
    c.rejected.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (outcome != Outcome::kRan) return;
  uint64_t took = EndUs() - started_us;
  if (server.monitor().active() && spec->name != "monitor") {
    std::vector<std::string_view> shown(args.begin(), args.end());
    if (Redacted(*spec))
      for (size_t i = 1; i < shown.size(); ++i) shown[i] = "(redacted)";
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    server.monitor().Feed(MonitorLine(int64_t{ts.tv_sec} * 1000000 + ts.tv_nsec / 1000, client.db,
                                      client.info->addr, shown));
  }
  c.calls.fetch_add(1, std::memory_order_relaxed);
  c.usec.fetch_add(took, std::memory_order_relaxed);
  if (errors > 0) c.failed.fetch_add(1, std::memory_order_relaxed);
  const HotOptions& hot = server.hot();
  if (hot.latency_tracking.load(std::memory_order_relaxed)) c.latency.Record(took);
  int64_t monitor_ms = hot.latency_monitor_threshold_ms.load(std::memory_order_relaxed);
  if (monitor_ms > 0 && took / 1000 >= static_cast<uint64_t>(monitor_ms))
    server.latency_monitor().Add((spec->flags & kCmdFast) ? "fast-command" : "command", took / 1000,
                                 NowMs() / 1000);
  int64_t slower_than = hot.slowlog_slower_than.load(std::memory_order_relaxed);
  if (slower_than >= 0 && took >= static_cast<uint64_t>(slower_than) && spec->name != "exec") {
    std::string name;
    {
      std::lock_guard<std::mutex> l(client.info->mu);
      name = client.info->name;
    }
    std::vector<std::string_view> shown(args.begin(), args.end());
    if (Redacted(*spec))
      for (size_t i = 1; i < shown.size(); ++i) shown[i] = "(redacted)";
    server.slowlog().Add(shown, took, NowMs() / 1000, client.info->addr, std::move(name),
                         static_cast<size_t>(hot.slowlog_max_len.load(std::memory_order_relaxed)));
  }
}

Outcome Run(ServerContext& server, ClientState& client, protocol::ReplyBuilder& reply,
            std::span<const std::string_view> args, int64_t now_ms, int thread,
            const CommandSpec* spec, uint64_t* started_us);

}  // namespace

void Execute(ServerContext& server, ClientState& client, protocol::ReplyBuilder& reply,
             std::span<const std::string_view> args, int64_t now_ms) {
  const CommandSpec* spec = server.commands().Find(args[0]);
  uint64_t errors_before = reply.errors(), started = StartUs();
  CommandContext cx(server, client, reply, args, now_ms);
  spec->handler(cx);
  Account(server, client, reply, args, spec, Outcome::kRan, errors_before, started);
}

void Dispatch(ServerContext& server, ClientState& client, protocol::ReplyBuilder& reply,
              std::span<const std::string_view> args, int64_t now_ms, int thread) {
  const CommandSpec* spec = server.commands().Find(args[0]);
  uint64_t errors_before = reply.errors(), started = 0;
  Outcome outcome = Run(server, client, reply, args, now_ms, thread, spec, &started);
  Account(server, client, reply, args, spec, outcome, errors_before, started);
}

namespace {

Outcome Run(ServerContext& server, ClientState& client, protocol::ReplyBuilder& reply,
            std::span<const std::string_view> args, int64_t now_ms, int thread,
            const CommandSpec* spec, uint64_t* started_us) {
  ServerStats& stats = server.stats();
  if (spec == nullptr) {
    stats.unknown_commands.fetch_add(1, std::memory_order_relaxed);
    if (client.in_multi) client.multi_error = true;
    reply.Error(UnknownCommandError(args));
    return Outcome::kUnknown;
  }
  if (!client.authenticated && !(spec->flags & kCmdNoAuth) &&
      server.hot().requirepass_set.load(std::memory_order_relaxed)) {
    if (client.in_multi) client.multi_error = true;
    reply.Error(errors::kNoAuth);
    return Outcome::kRejected;
  }
  if (!ArityOk(*spec, args.size())) {
    if (client.in_multi) client.multi_error = true;
    reply.Error(errors::WrongArity(spec->name));
    return Outcome::kRejected;
  }
  if ((spec->flags & kCmdDenyOom) && server.hot().noeviction.load(std::memory_order_relaxed)) {
    storage::StoreStats st = server.store().GetStats();
    if (st.used_memory > st.maxmemory) {
      if (client.in_multi) client.multi_error = true;
      reply.Error(errors::kOom);
      return Outcome::kRejected;
    }
  }
  if (spec->first_key > 0 && server.pool() != nullptr && !client.local_only &&
      server.hot().cluster_redirects.load(std::memory_order_relaxed)) {
    if (std::string moved = MovedError(server, client, *spec, args); !moved.empty()) {
      if (client.in_multi) client.multi_error = true;
      reply.Error(moved);
      return Outcome::kRejected;
    }
  }
  if (client.in_multi && !RunsInsideMulti(*spec)) {
    client.queued.emplace_back(args.begin(), args.end());
    client.info->multi_queued.store(static_cast<int>(client.queued.size()),
                                    std::memory_order_relaxed);
    reply.SimpleString("QUEUED");
    return Outcome::kQueued;
  }
  *started_us = StartUs();

  stats.commands.fetch_add(1, std::memory_order_relaxed);
  client.info->last_command.store(spec->name.data(), std::memory_order_relaxed);
  if (server.pool() != nullptr && !client.local_only) {
    if (spec->name == "exec") {
      if (RouteExec(server, client, reply)) return Outcome::kRan;
    } else if (spec->name == "watch") {
      if (RouteWatch(server, client, reply, args, now_ms)) return Outcome::kRan;
    } else if ((spec->first_key > 0 || spec->name == "memory") &&
               !(spec->flags & kCmdPoolAware)) {
      if (RouteByKeys(server, client, reply, *spec, args, now_ms)) return Outcome::kRan;
    }
    if (spec->name == "discard" || spec->name == "unwatch" || spec->name == "reset")
      client.remote_watches.clear();
  }
  CommandContext cx(server, client, reply, args, now_ms);
  if (spec->name == "exec") {
    // EXEC holds every thread's slot so the transaction runs in isolation.
    server.gate().LockExclusive();
    spec->handler(cx);
    server.gate().UnlockExclusive();
  } else {
    server.gate().LockShared(thread);
    spec->handler(cx);
    server.gate().UnlockShared(thread);
  }
  return Outcome::kRan;
}

}  // namespace

}  // namespace kvpool
