// Connection commands: PING ECHO QUIT RESET HELLO AUTH and CLIENT, with
// Redis 7.0's replies and error texts. SELECT is the keyspace family's.
//
// Authentication follows Redis's default user: with `requirepass` empty it
// has no password (AUTH <pass> is an error, AUTH default <anything> and
// HELLO AUTH default <anything> succeed); with it set, "default" + that
// password is the only pair accepted.

#include <algorithm>
#include <string>
#include <vector>

#include "server/command_table.h"
#include "server/errors.h"
#include "server/info.h"
#include "server/server_context.h"
#include "server/util/strings.h"

namespace kvpool {

namespace {

bool IsAuthenticated(CommandContext& cx) {
  return cx.client().authenticated ||
         !cx.server().hot().requirepass_set.load(std::memory_order_relaxed);
}

// Constant time in the length of the longer input, so a wrong password's
// timing says nothing about how much of it matched.
bool TimingSafeEquals(std::string_view a, std::string_view b) {
  size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

// The only user is "default" (names are case-sensitive, as Redis's).
bool CheckPassword(ServerContext& server, std::string_view user, std::string_view pass) {
  if (user != "default") return false;
  std::string required = server.config().String("requirepass");
  if (required.empty()) return true;  // the default user has no password
  return TimingSafeEquals(pass, required);
}

// As Redis's validateClientAttr: printable ASCII without spaces.
bool ValidClientAttr(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '!' && c <= '~'; });
}

void SetName(ClientState& client, std::string_view name) {
  std::lock_guard<std::mutex> l(client.info->mu);
  client.info->name.assign(name);
}

void SetResp(CommandContext& cx, int resp) {
  cx.client().resp = resp;
  cx.client().info->resp.store(resp, std::memory_order_relaxed);
  cx.reply().set_resp(resp);
}

// ---- PING ECHO QUIT RESET ----

void CmdPing(CommandContext& cx) {
  if (cx.argc() > 2) {
    cx.reply().Error(errors::WrongArity("ping"));
    return;
  }
  if (cx.argc() == 2) {
    cx.reply().Bulk(cx.arg(1));
  } else {
    cx.reply().SimpleString("PONG");
  }
}

void CmdEcho(CommandContext& cx) { cx.reply().Bulk(cx.arg(1)); }

void CmdQuit(CommandContext& cx) {
  cx.client().close_after_reply = true;
  cx.reply().Ok();
}

// As Redis's clearClientConnectionState: the connection as if just opened.
void CmdReset(CommandContext& cx) {
  ClientState& c = cx.client();
  c.in_multi = false;
  c.multi_error = false;
  c.queued.clear();
  c.info->multi_queued.store(-1, std::memory_order_relaxed);
  c.remote_watches.clear();
  if (c.watch) {
    cx.store().Unwatch(c.watch);
    c.watch.reset();
  }
  c.db = 0;
  c.info->db.store(0, std::memory_order_relaxed);
  SetResp(cx, 2);
  SetName(c, "");
  // Back to the default user: authenticated only if it has no password.
  c.authenticated = !cx.server().hot().requirepass_set.load(std::memory_order_relaxed);
  cx.reply().SimpleString("RESET");
}

// ---- AUTH HELLO ----

void CmdAuth(CommandContext& cx) {
  if (cx.argc() > 3) {
    cx.reply().Error(errors::kSyntax);
    return;
  }
  std::string_view user = "default", pass = cx.arg(1);
  if (cx.argc() == 2) {
    // The old one-argument form is an error when there is no password.
    if (cx.server().config().String("requirepass").empty()) {
      cx.reply().Error(errors::kAuthNoPassword);
      return;
    }
  } else {
    user = cx.arg(1);
    pass = cx.arg(2);
  }
  if (!CheckPassword(cx.server(), user, pass)) {
    // A failed AUTH leaves an authenticated connection authenticated.
    cx.reply().Error(errors::kWrongPass);
    return;
  }
  cx.client().authenticated = true;
  cx.reply().Ok();
}

// HELLO [protover [AUTH user pass] [SETNAME name]]
void CmdHello(CommandContext& cx) {
  int64_t ver = 0;
  size_t i = 1;
  if (cx.argc() >= 2) {
    if (!ParseInt64(cx.arg(1), &ver)) {
      cx.reply().Error(errors::kHelloBadProtover);
      return;
    }
    if (ver < 2 || ver > 3) {
      cx.reply().Error(errors::kNoProto);
      return;
    }
    i = 2;
  }
  std::string_view user, pass, name;
  bool auth = false, setname = false;
  for (; i < cx.argc(); ++i) {
    size_t more = cx.argc() - 1 - i;
    std::string_view opt = cx.arg(i);
    if (EqualsIgnoreCase(opt, "AUTH") && more >= 2) {
      auth = true;
      user = cx.arg(i + 1);
      pass = cx.arg(i + 2);
      i += 2;
    } else if (EqualsIgnoreCase(opt, "SETNAME") && more >= 1) {
      setname = true;
      name = cx.arg(i + 1);
      i += 1;
    } else {
      cx.reply().Error(std::string(errors::kHelloSyntaxPrefix) + std::string(opt) + "'");
      return;
    }
  }
  if (auth) {
    if (!CheckPassword(cx.server(), user, pass)) {
      cx.reply().Error(errors::kWrongPass);
      return;
    }
    cx.client().authenticated = true;
  }
  if (!IsAuthenticated(cx)) {
    cx.reply().Error(errors::kHelloNoAuth);
    return;
  }
  if (setname) {
    if (!ValidClientAttr(name)) {
      cx.reply().Error(errors::kClientNameInvalid);
      return;
    }
    SetName(cx.client(), name);
  }
  if (ver != 0) SetResp(cx, static_cast<int>(ver));  // the reply itself is in the new protocol

  protocol::ReplyBuilder& rb = cx.reply();
  rb.MapHeader(7);
  rb.Bulk("server");
  rb.Bulk("redis");
  rb.Bulk("version");
  rb.Bulk(kRedisVersion);
  rb.Bulk("proto");
  rb.Integer(cx.client().resp);
  rb.Bulk("id");
  rb.Integer(static_cast<int64_t>(cx.client().info->id));
  rb.Bulk("mode");
  rb.Bulk("standalone");
  rb.Bulk("role");
  rb.Bulk("master");
  rb.Bulk("modules");
  rb.ArrayHeader(0);
}

// ---- CLIENT ----

// One CLIENT LIST line in Redis 7.0's format (plus 7.2's lib-name/lib-ver),
// from what any thread may read of a client. Fields kvpool has no notion of
// (pub/sub, argv memory, reply blocks) are 0.
std::string ClientLine(const ClientInfo& c, bool self, int64_t now_ms) {
  std::string name, lib_name, lib_ver;
  {
    std::lock_guard<std::mutex> l(c.mu);
    name = c.name;
    lib_name = c.lib_name;
    lib_ver = c.lib_ver;
  }
  int64_t created = c.created_ms > 0 ? c.created_ms : now_ms;
  int64_t last = c.last_interaction_ms.load(std::memory_order_relaxed);
  if (last <= 0 || self) last = now_ms;  // the current client is not idle
  int multi = c.multi_queued.load(std::memory_order_relaxed);
  size_t qbuf = c.query_buffer.load(std::memory_order_relaxed);
  size_t omem = c.output_buffer.load(std::memory_order_relaxed);
  std::string line;
  line.reserve(400);
  auto field = [&line](std::string_view key, std::string_view value) {
    if (!line.empty()) line += ' ';
    line.append(key).append("=").append(value);
  };
  auto num = [](auto v) { return std::to_string(v); };
  field("id", num(c.id));
  field("addr", c.addr);
  field("laddr", c.laddr);
  field("fd", num(c.fd));
  field("name", name);
  field("age", num(std::max<int64_t>(0, (now_ms - created) / 1000)));
  field("idle", num(std::max<int64_t>(0, (now_ms - last) / 1000)));
  field("flags", multi >= 0 ? "x" : "N");
  field("db", num(c.db.load(std::memory_order_relaxed)));
  line += " sub=0 psub=0 ssub=0";
  field("multi", num(multi));
  field("qbuf", num(qbuf));
  line += " qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0";
  field("omem", num(omem));
  field("tot-mem", num(qbuf + omem));
  field("events", omem > 0 ? "rw" : "r");
  field("cmd", c.last_command.load(std::memory_order_relaxed));
  line += " user=default redir=-1";
  field("resp", num(c.resp.load(std::memory_order_relaxed)));
  field("lib-name", lib_name);
  field("lib-ver", lib_ver);
  line += '\n';
  return line;
}

void CmdClientId(CommandContext& cx) {
  cx.reply().Integer(static_cast<int64_t>(cx.client().info->id));
}

void CmdClientSetName(CommandContext& cx) {
  if (!ValidClientAttr(cx.arg(2))) {
    cx.reply().Error(errors::kClientNameInvalid);
    return;
  }
  SetName(cx.client(), cx.arg(2));
  cx.reply().Ok();
}

void CmdClientGetName(CommandContext& cx) {
  std::string name;
  {
    std::lock_guard<std::mutex> l(cx.client().info->mu);
    name = cx.client().info->name;
  }
  if (name.empty()) {
    cx.reply().Null();
  } else {
    cx.reply().Bulk(name);
  }
}

// CLIENT SETINFO LIB-NAME|LIB-VER value (Redis 7.2; clients send it on connect).
void CmdClientSetInfo(CommandContext& cx) {
  std::string_view attr = cx.arg(2), value = cx.arg(3);
  bool lib_name = EqualsIgnoreCase(attr, "lib-name");
  if (!lib_name && !EqualsIgnoreCase(attr, "lib-ver")) {
    cx.reply().Error(errors::UnrecognizedOption(attr));
    return;
  }
  if (!ValidClientAttr(value)) {
    cx.reply().Error(errors::ClientAttrInvalid(attr));
    return;
  }
  {
    std::lock_guard<std::mutex> l(cx.client().info->mu);
    (lib_name ? cx.client().info->lib_name : cx.client().info->lib_ver).assign(value);
  }
  cx.reply().Ok();
}

// Every kvpool client is a "normal" one; false for an unknown type name.
bool ParseClientType(std::string_view type, bool* normal) {
  if (EqualsIgnoreCase(type, "normal")) {
    *normal = true;
    return true;
  }
  for (std::string_view t : {"master", "replica", "slave", "pubsub"}) {
    if (EqualsIgnoreCase(type, t)) {
      *normal = false;
      return true;
    }
  }
  return false;
}

// CLIENT LIST [TYPE type | ID id [id ...]]
void CmdClientList(CommandContext& cx) {
  std::vector<std::shared_ptr<ClientInfo>> all = cx.server().clients().Snapshot();
  std::vector<std::shared_ptr<ClientInfo>> shown;
  if (cx.argc() == 2) {
    shown = std::move(all);
  } else if (cx.argc() == 4 && EqualsIgnoreCase(cx.arg(2), "TYPE")) {
    bool normal;
    if (!ParseClientType(cx.arg(3), &normal)) {
      cx.reply().Error(std::string(errors::kUnknownClientTypePrefix) + std::string(cx.arg(3)) +
                       "'");
      return;
    }
    if (normal) shown = std::move(all);
  } else if (cx.argc() >= 4 && EqualsIgnoreCase(cx.arg(2), "ID")) {
    std::vector<int64_t> ids;
    for (size_t i = 3; i < cx.argc(); ++i) {
      int64_t id;
      if (!ParseInt64(cx.arg(i), &id)) {
        cx.reply().Error(errors::kInvalidClientId);
        return;
      }
      ids.push_back(id);
    }
    // In the order asked for, as Redis.
    for (int64_t id : ids)
      for (const auto& c : all)
        if (static_cast<int64_t>(c->id) == id) shown.push_back(c);
  } else {
    cx.reply().Error(errors::kSyntax);
    return;
  }
  std::string text;
  for (const auto& c : shown)
    text += ClientLine(*c, c.get() == cx.client().info.get(), cx.now_ms());
  cx.reply().Verbatim(text);
}

void CmdClientInfo(CommandContext& cx) {
  cx.reply().Verbatim(ClientLine(*cx.client().info, true, cx.now_ms()));
}

// CLIENT KILL ip:port  |  CLIENT KILL <filter> <value> [<filter> <value> ...]
void CmdClientKill(CommandContext& cx) {
  ClientState& me = cx.client();
  std::vector<std::shared_ptr<ClientInfo>> all = cx.server().clients().Snapshot();
  auto kill = [&](const ClientInfo& c) {
    if (c.id == me.info->id) {
      me.close_after_reply = true;  // after this reply, as Redis
    } else {
      cx.server().clients().Kill(c.id);
    }
  };
  if (cx.argc() == 3) {  // the old form; it may kill the caller too
    bool found = false;
    for (const auto& c : all) {
      if (c->addr == cx.arg(2)) {
        kill(*c);
        found = true;
      }
    }
    if (found) {
      cx.reply().Ok();
    } else {
      cx.reply().Error(errors::kNoSuchClient);
    }
    return;
  }
  if (cx.argc() % 2 != 0) {
    cx.reply().Error(errors::kSyntax);
    return;
  }
  int64_t id = 0;
  std::string_view addr, laddr;
  bool has_addr = false, has_laddr = false, type_matches = true, skipme = true;
  for (size_t i = 2; i < cx.argc(); i += 2) {
    std::string_view opt = cx.arg(i), val = cx.arg(i + 1);
    if (EqualsIgnoreCase(opt, "ID")) {
      if (!ParseInt64(val, &id) || id <= 0) {
        cx.reply().Error(errors::kClientIdNotPositive);
        return;
      }
    } else if (EqualsIgnoreCase(opt, "ADDR")) {
      addr = val;
      has_addr = true;
    } else if (EqualsIgnoreCase(opt, "LADDR")) {
      laddr = val;
      has_laddr = true;
    } else if (EqualsIgnoreCase(opt, "TYPE")) {
      bool normal;
      if (!ParseClientType(val, &normal)) {
        cx.reply().Error(std::string(errors::kUnknownClientTypePrefix) + std::string(val) + "'");
        return;
      }
      type_matches = type_matches && normal;
    } else if (EqualsIgnoreCase(opt, "USER")) {
      if (val != "default") {
        cx.reply().Error(std::string(errors::kNoSuchUserPrefix) + std::string(val) + "'");
        return;
      }
    } else if (EqualsIgnoreCase(opt, "SKIPME")) {
      if (EqualsIgnoreCase(val, "yes")) {
        skipme = true;
      } else if (EqualsIgnoreCase(val, "no")) {
        skipme = false;
      } else {
        cx.reply().Error(errors::kSyntax);
        return;
      }
    } else {
      cx.reply().Error(errors::kSyntax);
      return;
    }
  }
  int64_t killed = 0;
  if (type_matches) {
    for (const auto& c : all) {
      if (id != 0 && static_cast<int64_t>(c->id) != id) continue;
      if (has_addr && c->addr != addr) continue;
      if (has_laddr && c->laddr != laddr) continue;
      if (skipme && c->id == me.info->id) continue;
      kill(*c);
      ++killed;
    }
  }
  cx.reply().Integer(killed);
}

// kvpool never evicts clients, so there is nothing to protect from: accepted.
void CmdClientNoEvict(CommandContext& cx) {
  if (EqualsIgnoreCase(cx.arg(2), "ON") || EqualsIgnoreCase(cx.arg(2), "OFF")) {
    cx.reply().Ok();
  } else {
    cx.reply().Error(errors::kSyntax);
  }
}

// Only ON: suppressing replies needs the connection's help (see report).
void CmdClientReply(CommandContext& cx) {
  std::string_view mode = cx.arg(2);
  if (EqualsIgnoreCase(mode, "ON")) {
    cx.reply().Ok();
  } else if (EqualsIgnoreCase(mode, "OFF") || EqualsIgnoreCase(mode, "SKIP")) {
    cx.reply().Error(errors::kClientReplyUnsupported);
  } else {
    cx.reply().Error(errors::kSyntax);
  }
}

void CmdClientHelp(CommandContext& cx) {
  static constexpr const char* kHelp[] = {
      "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
      "GETNAME",
      "    Return the name of the current connection.",
      "ID",
      "    Return the ID of the current connection.",
      "INFO",
      "    Return information about the current client connection.",
      "KILL <ip:port>",
      "    Kill connection made from <ip:port>.",
      "KILL <option> <value> [<option> <value> [...]]",
      "    Kill connections. Options are:",
      "    * ADDR (<ip:port>|<unixsocket>:0)",
      "      Kill connections made from the specified address",
      "    * LADDR (<ip:port>|<unixsocket>:0)",
      "      Kill connections made to specified local address",
      "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
      "      Kill connections by type.",
      "    * USER <username>",
      "      Kill connections authenticated by <username>.",
      "    * SKIPME (YES|NO)",
      "      Skip killing current connection (default: yes).",
      "LIST [options ...]",
      "    Return information about client connections. Options:",
      "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
      "      Return clients of specified type.",
      "    * ID <client-id> [<client-id> ...]",
      "      Return clients with the specified IDs.",
      "REPLY (ON|OFF|SKIP)",
      "    Control the replies sent to the current connection (kvpool: ON only).",
      "SETNAME <name>",
      "    Assign the name <name> to the current connection.",
      "SETINFO <LIB-NAME|LIB-VER> <value>",
      "    Set client library name or version.",
      "NO-EVICT (ON|OFF)",
      "    Protect current client connection from eviction.",
      "HELP",
      "    Prints this help.",
  };
  cx.reply().ArrayHeader(std::size(kHelp));
  for (const char* line : kHelp) cx.reply().SimpleString(line);
}

constexpr uint32_t kLS = kCmdLoading | kCmdStale;

// name, arity (from the parent's name), flags, keys, handler, group, summary
constexpr CommandSpec kClientSubcommands[] = {
    {"client|id", 2, kLS, 0, 0, 0, CmdClientId, "connection",
     "Returns the client ID for the current connection"},
    {"client|setname", 3, kLS, 0, 0, 0, CmdClientSetName, "connection",
     "Set the current connection name"},
    {"client|getname", 2, kLS, 0, 0, 0, CmdClientGetName, "connection",
     "Get the current connection name"},
    {"client|setinfo", 4, kLS, 0, 0, 0, CmdClientSetInfo, "connection",
     "Set client or connection specific info"},
    {"client|list", -2, kCmdAdmin | kLS, 0, 0, 0, CmdClientList, "connection",
     "Get the list of client connections"},
    {"client|info", 2, kLS, 0, 0, 0, CmdClientInfo, "connection",
     "Returns information about the current client connection."},
    {"client|kill", -3, kCmdAdmin | kLS, 0, 0, 0, CmdClientKill, "connection",
     "Kill the connection of a client"},
    {"client|no-evict", 3, kCmdAdmin | kLS, 0, 0, 0, CmdClientNoEvict, "connection",
     "Set client eviction mode for the current connection"},
    {"client|reply", 3, kLS, 0, 0, 0, CmdClientReply, "connection",
     "Instruct the server whether to reply to commands"},
    {"client|help", 2, kLS, 0, 0, 0, CmdClientHelp, "connection",
     "Show helpful text about the different subcommands"},
};

void CmdClient(CommandContext& cx) { RunSubcommand(cx, kClientSubcommands); }

}  // namespace

std::span<const CommandSpec> ClientSubcommands() { return kClientSubcommands; }

void RegisterConnectionFamily(CommandTable& t) {
  constexpr uint32_t C = kCmdConnection, F = kCmdFast, A = kCmdNoAuth, N = kCmdNoMulti;
  // name, arity, flags, first_key, last_key, key_step, handler, group, summary
  t.Add({"ping", -1, F | C, 0, 0, 0, CmdPing, "connection", "Ping the server"});
  t.Add({"echo", 2, kLS | F | C, 0, 0, 0, CmdEcho, "connection", "Echo the given string"});
  // QUIT and RESET act at once inside MULTI, as in Redis.
  t.Add({"quit", -1, kLS | F | A | N | C, 0, 0, 0, CmdQuit, "connection", "Close the connection"});
  t.Add({"reset", 1, kLS | F | A | N | C, 0, 0, 0, CmdReset, "connection",
         "Reset the connection"});
  t.Add({"hello", -1, kLS | F | A | C, 0, 0, 0, CmdHello, "connection", "Handshake with Redis"});
  t.Add({"auth", -2, kLS | F | A | C, 0, 0, 0, CmdAuth, "connection",
         "Authenticate to the server"});
  t.Add({"client", -2, C, 0, 0, 0, CmdClient, "connection",
         "A container for client connection commands"});
}

}  // namespace kvpool
