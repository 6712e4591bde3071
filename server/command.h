// The command table's entries and the context a handler runs in. Handlers
// parse their arguments and reply, nothing more: arity, authentication,
// MULTI queueing and unknown commands are checked centrally (dispatcher.cc).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/reply_builder.h"
#include "server/client_state.h"

namespace kvpool {

namespace pool {
class Pool;
}
class ServerContext;

enum CommandFlag : uint32_t {
  kCmdWrite = 1 << 0,     // may modify the keyspace (OOM-checked, "write" in COMMAND)
  kCmdReadOnly = 1 << 1,  // reads the keyspace only
  kCmdAdmin = 1 << 2,     // server administration (CONFIG, SHUTDOWN, ...)
  kCmdNoAuth = 1 << 3,    // allowed before AUTH (AUTH, HELLO, QUIT, RESET)
  kCmdFast = 1 << 4,      // O(1) or O(log n)
  kCmdNoMulti = 1 << 5,   // runs at once inside MULTI instead of being queued
  kCmdDenyOom = 1 << 6,   // refused when over maxmemory with noeviction
  kCmdLoading = 1 << 7,
  kCmdStale = 1 << 8,
  kCmdConnection = 1 << 9,  // connection-level (PING, ECHO, SELECT, CLIENT)
  // Handles keys on other pool nodes itself (MGET, MSET, DEL, ...): the
  // dispatcher does not forward it to the keys' owner.
  kCmdPoolAware = 1 << 10,
};

class CommandContext;
using CommandHandler = void (*)(CommandContext& cx);

struct CommandSpec {
  std::string_view name;  // lower case
  int arity;              // Redis convention: N exact, -N at least N (name included)
  uint32_t flags;
  int first_key, last_key, key_step;  // key positions; last_key -1 = last argument
  CommandHandler handler;
  std::string_view group;    // COMMAND DOCS group: string, generic, connection, server, transactions
  std::string_view summary;  // COMMAND DOCS summary
};

// Everything a handler may touch while it runs.
class CommandContext {
 public:
  CommandContext(ServerContext& server, ClientState& client, protocol::ReplyBuilder& reply,
                 std::span<const std::string_view> args, int64_t now_ms)
      : server_(server), client_(client), reply_(reply), args_(args), now_ms_(now_ms) {}

  std::span<const std::string_view> args() const { return args_; }
  std::string_view arg(size_t i) const { return args_[i]; }
  size_t argc() const { return args_.size(); }

  protocol::ReplyBuilder& reply() { return reply_; }
  ClientState& client() { return client_; }
  ServerContext& server() { return server_; }
  storage::Store& store();
  int db() const { return client_.db; }
  int64_t now_ms() const { return now_ms_; }
  int lane() const { return client_.lane; }
  // The pool, when this node is part of one and the command may use it
  // (not for commands a peer forwarded here); else nullptr.
  pool::Pool* pool();
  // For a handler that answers later: the slot to Finish() with the encoded
  // reply. Null when this client cannot wait (then answer now).
  std::shared_ptr<ReplySlot> Defer() { return client_.defer ? client_.defer() : nullptr; }

 private:
  ServerContext& server_;
  ClientState& client_;
  protocol::ReplyBuilder& reply_;
  std::span<const std::string_view> args_;
  int64_t now_ms_;
};

}  // namespace kvpool
