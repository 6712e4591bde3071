#include "server/dispatcher.h"

#include <sys/time.h>

#include <ctime>

#include "server/cluster_family.h"
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

}  // namespace

void Execute(ServerContext& server, ClientState& client, protocol::ReplyBuilder& reply,
             std::span<const std::string_view> args, int64_t now_ms) {
  const CommandSpec* spec = server.commands().Find(args[0]);
  CommandContext cx(server, client, reply, args, now_ms);
  spec->handler(cx);
}

void Dispatch(ServerContext& server, ClientState& client, protocol::ReplyBuilder& reply,
              std::span<const std::string_view> args, int64_t now_ms, int thread) {
  ServerStats& stats = server.stats();
  const CommandSpec* spec = server.commands().Find(args[0]);
  if (spec == nullptr) {
    stats.unknown_commands.fetch_add(1, std::memory_order_relaxed);
    if (client.in_multi) client.multi_error = true;
    reply.Error(UnknownCommandError(args));
    return;
  }
  if (!client.authenticated && !(spec->flags & kCmdNoAuth) &&
      server.hot().requirepass_set.load(std::memory_order_relaxed)) {
    if (client.in_multi) client.multi_error = true;
    reply.Error(errors::kNoAuth);
    return;
  }
  if (!ArityOk(*spec, args.size())) {
    if (client.in_multi) client.multi_error = true;
    reply.Error(errors::WrongArity(spec->name));
    return;
  }
  if ((spec->flags & kCmdDenyOom) && server.hot().noeviction.load(std::memory_order_relaxed)) {
    storage::StoreStats st = server.store().GetStats();
    if (st.used_memory > st.maxmemory) {
      if (client.in_multi) client.multi_error = true;
      reply.Error(errors::kOom);
      return;
    }
  }
  if (spec->first_key > 0 && server.pool() != nullptr && !client.local_only &&
      server.hot().cluster_redirects.load(std::memory_order_relaxed)) {
    if (std::string moved = MovedError(server, client, *spec, args); !moved.empty()) {
      if (client.in_multi) client.multi_error = true;
      reply.Error(moved);
      return;
    }
  }
  if (client.in_multi && !RunsInsideMulti(*spec)) {
    client.queued.emplace_back(args.begin(), args.end());
    client.info->multi_queued.store(static_cast<int>(client.queued.size()),
                                    std::memory_order_relaxed);
    reply.SimpleString("QUEUED");
    return;
  }

  stats.commands.fetch_add(1, std::memory_order_relaxed);
  client.info->last_command.store(spec->name.data(), std::memory_order_relaxed);
  if (server.pool() != nullptr && !client.local_only) {
    if (spec->name == "exec") {
      if (RouteExec(server, client, reply)) return;
    } else if (spec->name == "watch") {
      if (RouteWatch(server, client, reply, args, now_ms)) return;
    } else if ((spec->first_key > 0 || spec->name == "memory") &&
               !(spec->flags & kCmdPoolAware)) {
      if (RouteByKeys(server, client, reply, *spec, args, now_ms)) return;
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
}

}  // namespace kvpool
