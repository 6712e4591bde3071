// COMMAND's metadata (flags, ACL categories, tips, key specs as Redis 7.0
// reports them) and the subcommand tables' dispatch; split out of info.cc,
// which keeps INFO.
#include <cctype>
#include <iterator>
#include <unordered_map>

#include "server/errors.h"
#include "server/info.h"
#include "server/util/strings.h"

namespace kvpool {

namespace {

// ---------------------------------------------------------------------------
// Command metadata
// ---------------------------------------------------------------------------

// What Redis 7.0 reports for a command beyond what a CommandSpec holds. The
// flags and ACL categories a CommandSpec implies (write -> "write" and
// "@write", fast -> "@fast", else "@slow", group -> "@string"...) are derived
// and not repeated here; these are the rest. Taken from redis-server 7.0's
// COMMAND INFO / COMMAND DOCS (client|setinfo from 7.2).
struct CommandMeta {
  std::string_view name;       // "get", or "client|list" for a subcommand
  std::string_view flags;      // further command flags, space separated
  std::string_view acl;        // further ACL categories, without '@'
  std::string_view tips;       // command tips
  std::string_view since;      // first Redis version with the command
  std::string_view key_specs;  // key-spec flags, one spec per '|'
};

// The commands of the string, generic, connection, transactions and server
// groups kvpool has or may have, and the subcommands of its containers.
// name, flags, acl, tips, since, key specs
// clang-format off
constexpr CommandMeta kMeta[] = {
  {"append", "", "", "", "2.0.0", "RW insert"},
  {"auth", "noscript allow_busy", "", "", "1.0.0", ""},
  {"bgsave", "noscript no_async_loading", "", "", "1.0.0", ""},
  {"client", "", "", "", "2.4.0", ""},
  {"client|id", "noscript", "", "", "5.0.0", ""},
  {"client|setname", "noscript", "", "", "2.6.9", ""},
  {"client|setinfo", "noscript", "", "", "7.2.0", ""},
  {"client|getname", "noscript", "", "", "2.6.9", ""},
  {"client|list", "noscript", "", "nondeterministic_output", "2.4.0", ""},
  {"client|info", "noscript", "", "nondeterministic_output", "6.2.0", ""},
  {"client|kill", "noscript", "", "", "2.4.0", ""},
  {"client|no-evict", "noscript", "", "", "7.0.0", ""},
  {"client|reply", "noscript", "", "", "3.2.0", ""},
  {"client|help", "", "", "", "5.0.0", ""},
  {"command", "", "connection", "nondeterministic_output_order", "2.8.13", ""},
  {"command|count", "", "connection", "", "2.8.13", ""},
  {"command|docs", "", "connection", "nondeterministic_output_order", "7.0.0", ""},
  {"command|getkeys", "", "connection", "", "2.8.13", ""},
  {"command|help", "", "connection", "", "5.0.0", ""},
  {"command|info", "", "connection", "nondeterministic_output_order", "2.8.13", ""},
  {"command|list", "", "connection", "nondeterministic_output_order", "7.0.0", ""},
  {"config", "", "", "", "2.0.0", ""},
  {"config|get", "noscript", "", "", "2.0.0", ""},
  {"config|set", "noscript", "",
   "request_policy:all_nodes response_policy:all_succeeded", "2.0.0", ""},
  {"config|resetstat", "noscript", "", "", "2.0.0", ""},
  {"config|rewrite", "noscript", "", "", "2.8.0", ""},
  {"config|help", "", "", "", "5.0.0", ""},
  {"copy", "", "", "", "6.2.0", "RO access|OW update"},
  {"dbsize", "", "keyspace", "request_policy:all_shards response_policy:agg_sum", "1.0.0", ""},
  {"debug", "noscript", "", "", "1.0.0", ""},
  {"decr", "", "", "", "1.0.0", "RW access update"},
  {"decrby", "", "", "", "1.0.0", "RW access update"},
  {"del", "", "", "request_policy:multi_shard response_policy:agg_sum", "1.0.0", "RM delete"},
  {"discard", "noscript allow_busy", "", "", "2.0.0", ""},
  {"echo", "", "", "", "1.0.0", ""},
  {"exec", "noscript skip_slowlog", "", "", "1.2.0", ""},
  {"exists", "", "", "request_policy:multi_shard response_policy:agg_sum", "1.0.0", "RO"},
  {"expire", "", "", "", "1.0.0", "RW update"},
  {"expireat", "", "", "", "1.2.0", "RW update"},
  {"expiretime", "", "", "", "7.0.0", "RO access"},
  {"flushall", "", "keyspace dangerous",
   "request_policy:all_shards response_policy:all_succeeded", "1.0.0", ""},
  {"flushdb", "", "keyspace dangerous",
   "request_policy:all_shards response_policy:all_succeeded", "1.0.0", ""},
  {"get", "", "", "", "1.0.0", "RO access"},
  {"getdel", "", "", "", "6.2.0", "RW access delete"},
  {"getex", "", "", "", "6.2.0", "RW access update"},
  {"getrange", "", "", "", "2.4.0", "RO access"},
  {"getset", "", "", "", "1.0.0", "RW access update"},
  {"hello", "noscript allow_busy", "", "", "6.0.0", ""},
  {"incr", "", "", "", "1.0.0", "RW access update"},
  {"incrby", "", "", "", "1.0.0", "RW access update"},
  {"incrbyfloat", "", "", "", "2.6.0", "RW access update"},
  {"info", "", "dangerous",
   "nondeterministic_output request_policy:all_shards response_policy:special", "1.0.0", ""},
  {"keys", "", "dangerous", "request_policy:all_shards nondeterministic_output_order", "1.0.0", ""},
  {"lastsave", "", "admin dangerous", "nondeterministic_output", "1.0.0", ""},
  {"lolwut", "", "", "", "5.0.0", ""},
  {"memory", "", "", "", "4.0.0", ""},
  {"memory|usage", "", "", "", "4.0.0", "RO"},
  {"memory|stats", "", "",
   "nondeterministic_output request_policy:all_shards response_policy:special", "4.0.0", ""},
  {"memory|doctor", "", "",
   "nondeterministic_output request_policy:all_shards response_policy:special", "4.0.0", ""},
  {"memory|help", "", "", "", "4.0.0", ""},
  {"memory|malloc-stats", "", "",
   "nondeterministic_output request_policy:all_shards response_policy:special", "4.0.0", ""},
  {"memory|purge", "", "", "request_policy:all_shards response_policy:all_succeeded", "4.0.0",
   ""},
  {"mget", "", "", "request_policy:multi_shard", "1.0.0", "RO access"},
  {"move", "", "", "", "1.0.0", "RW access update"},
  {"mset", "", "",
   "request_policy:multi_shard response_policy:all_succeeded", "1.0.1", "OW update"},
  {"msetnx", "", "", "request_policy:multi_shard response_policy:agg_min", "1.0.1", "OW insert"},
  {"multi", "noscript allow_busy", "", "", "1.2.0", ""},
  {"persist", "", "", "", "2.2.0", "RW update"},
  {"pexpire", "", "", "", "2.6.0", "RW update"},
  {"pexpireat", "", "", "", "2.6.0", "RW update"},
  {"pexpiretime", "", "", "", "7.0.0", "RO access"},
  {"ping", "", "", "request_policy:all_shards response_policy:all_succeeded", "1.0.0", ""},
  {"psetex", "", "", "", "2.6.0", "OW update"},
  {"pttl", "", "", "nondeterministic_output", "2.6.0", "RO access"},
  {"quit", "noscript allow_busy", "", "", "1.0.0", ""},
  {"randomkey", "", "", "request_policy:all_shards nondeterministic_output", "1.0.0", ""},
  {"rename", "", "", "", "1.0.0", "RW access delete|OW update"},
  {"renamenx", "", "", "", "1.0.0", "RW access delete|OW insert"},
  {"reset", "noscript allow_busy", "", "", "6.2.0", ""},
  {"role", "noscript", "admin dangerous", "", "2.8.12", ""},
  {"save", "noscript no_async_loading no_multi", "", "", "1.0.0", ""},
  {"scan", "", "", "nondeterministic_output request_policy:special", "2.8.0", ""},
  {"select", "", "", "", "1.0.0", ""},
  {"set", "", "", "", "1.0.0", "RW access update variable_flags"},
  {"setex", "", "", "", "2.0.0", "OW update"},
  {"setnx", "", "", "", "1.0.0", "OW insert"},
  {"setrange", "", "", "", "2.2.0", "RW update"},
  {"shutdown", "noscript no_multi allow_busy", "", "", "1.0.0", ""},
  {"strlen", "", "", "", "2.2.0", "RO"},
  {"substr", "", "", "", "1.0.0", "RO access"},
  {"swapdb", "", "keyspace dangerous", "", "4.0.0", ""},
  {"time", "", "", "nondeterministic_output", "2.6.0", ""},
  {"touch", "", "", "request_policy:multi_shard response_policy:agg_sum", "3.2.1", "RO"},
  {"ttl", "", "", "nondeterministic_output", "1.0.0", "RO access"},
  {"type", "", "", "", "1.0.0", "RO"},
  {"unlink", "", "", "request_policy:multi_shard response_policy:agg_sum", "4.0.0", "RM delete"},
  {"unwatch", "noscript allow_busy", "", "", "2.2.0", ""},
  {"watch", "noscript allow_busy", "", "", "2.2.0", "RO"},
};
// clang-format on

const CommandMeta* FindMeta(std::string_view name) {
  static const std::unordered_map<std::string_view, const CommandMeta*> index = [] {
    std::unordered_map<std::string_view, const CommandMeta*> m;
    for (const CommandMeta& c : kMeta) m[c.name] = &c;
    return m;
  }();
  auto it = index.find(name);
  return it == index.end() ? nullptr : it->second;
}

// Command flags and ACL categories in the order Redis 7.0 prints them.
constexpr std::string_view kFlagNames[] = {
    "write",        "readonly",     "denyoom",           "module",           "admin",
    "pubsub",       "noscript",     "blocking",          "loading",          "stale",
    "skip_monitor", "skip_slowlog", "asking",            "fast",             "no_auth",
    "no_mandatory_keys",            "no_async_loading",  "no_multi",         "movablekeys",
    "allow_busy"};
constexpr std::string_view kAclNames[] = {
    "keyspace", "read",   "write",  "set",       "sortedset",  "list",        "hash",
    "string",   "bitmap", "hyperloglog",         "geo",        "stream",      "pubsub",
    "admin",    "fast",   "slow",   "blocking",  "dangerous",  "connection",  "transaction",
    "scripting"};
static_assert(std::size(kFlagNames) <= 32 && std::size(kAclNames) <= 32, "bits of a uint32_t");

template <size_t N>
int IndexOf(const std::string_view (&names)[N], std::string_view name) {
  for (size_t i = 0; i < N; ++i)
    if (names[i] == name) return static_cast<int>(i);
  return -1;
}

// Splits on `sep`, dropping empty pieces.
std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(sep, i);
    if (j == std::string_view::npos) j = s.size();
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

template <size_t N>
uint32_t Bits(const std::string_view (&names)[N], std::string_view words) {
  uint32_t bits = 0;
  for (std::string_view w : Split(words, ' ')) {
    int i = IndexOf(names, w);
    if (i >= 0) bits |= 1u << i;
  }
  return bits;
}

template <size_t N>
uint32_t Bit(const std::string_view (&names)[N], std::string_view name) {
  return 1u << IndexOf(names, name);
}

uint32_t FlagBits(const CommandSpec& spec, const CommandMeta* meta) {
  static const std::pair<uint32_t, std::string_view> kDerived[] = {
      {kCmdWrite, "write"}, {kCmdReadOnly, "readonly"}, {kCmdDenyOom, "denyoom"},
      {kCmdAdmin, "admin"}, {kCmdLoading, "loading"},   {kCmdStale, "stale"},
      {kCmdFast, "fast"},   {kCmdNoAuth, "no_auth"}};
  uint32_t bits = meta ? Bits(kFlagNames, meta->flags) : 0;
  for (const auto& [flag, name] : kDerived)
    if (spec.flags & flag) bits |= Bit(kFlagNames, name);
  return bits;
}

// The ACL category a command group implies; containers have none.
std::string_view GroupCategory(std::string_view group) {
  if (group == "string") return "string";
  if (group == "generic") return "keyspace";
  if (group == "connection") return "connection";
  if (group == "transactions") return "transaction";
  return {};
}

// As Redis's setImplicitACLCategories plus the command's own categories.
uint32_t AclBits(const CommandSpec& spec, const CommandMeta* meta) {
  uint32_t bits = meta ? Bits(kAclNames, meta->acl) : 0;
  if (spec.flags & kCmdWrite) bits |= Bit(kAclNames, "write");
  if (spec.flags & kCmdReadOnly) bits |= Bit(kAclNames, "read");
  if (spec.flags & kCmdAdmin) bits |= Bit(kAclNames, "admin") | Bit(kAclNames, "dangerous");
  bits |= Bit(kAclNames, (spec.flags & kCmdFast) ? "fast" : "slow");
  std::string_view group_cat = GroupCategory(spec.group);
  if (!group_cat.empty() && Subcommands(spec.name).empty()) bits |= Bit(kAclNames, group_cat);
  return bits;
}

template <size_t N>
void WriteNameSet(protocol::ReplyBuilder& rb, const std::string_view (&names)[N], uint32_t bits,
                  std::string_view prefix) {
  rb.SetHeader(static_cast<size_t>(__builtin_popcount(bits)));
  for (size_t i = 0; i < N; ++i)
    if (bits & (1u << i)) rb.SimpleString(std::string(prefix) + std::string(names[i]));
}

void WriteKeySpec(protocol::ReplyBuilder& rb, std::string_view flags, int index, int lastkey,
                  int keystep) {
  std::vector<std::string_view> words = Split(flags, ' ');
  rb.MapHeader(3);
  rb.Bulk("flags");
  rb.SetHeader(words.size());
  for (std::string_view w : words) rb.SimpleString(w);
  rb.Bulk("begin_search");
  rb.MapHeader(2);
  rb.Bulk("type");
  rb.Bulk("index");
  rb.Bulk("spec");
  rb.MapHeader(1);
  rb.Bulk("index");
  rb.Integer(index);
  rb.Bulk("find_keys");
  rb.MapHeader(2);
  rb.Bulk("type");
  rb.Bulk("range");
  rb.Bulk("spec");
  rb.MapHeader(3);
  rb.Bulk("lastkey");
  rb.Integer(lastkey);
  rb.Bulk("keystep");
  rb.Integer(keystep);
  rb.Bulk("limit");
  rb.Integer(0);
}

// Key specs from the key positions: one range spec, or (when the metadata
// lists several, as for RENAME) one spec per key position.
void WriteKeySpecs(protocol::ReplyBuilder& rb, const CommandSpec& spec, const CommandMeta* meta) {
  if (spec.first_key <= 0) {
    rb.SetHeader(0);
    return;
  }
  std::vector<std::string_view> specs;
  if (meta != nullptr) specs = Split(meta->key_specs, '|');
  if (specs.empty()) {
    specs.push_back((spec.flags & kCmdWrite)      ? "RW update"
                    : (spec.flags & kCmdReadOnly) ? "RO access"
                                                  : "RO");
  }
  rb.SetHeader(specs.size());
  if (specs.size() == 1) {
    int lastkey = spec.last_key < 0 ? spec.last_key : spec.last_key - spec.first_key;
    WriteKeySpec(rb, specs[0], spec.first_key, lastkey, spec.key_step);
    return;
  }
  for (size_t i = 0; i < specs.size(); ++i)
    WriteKeySpec(rb, specs[i], spec.first_key + static_cast<int>(i) * spec.key_step, 0, 1);
}
}  // namespace

// ---------------------------------------------------------------------------
// Public: subcommands and COMMAND
// ---------------------------------------------------------------------------

std::span<const CommandSpec> Subcommands(std::string_view parent) {
  if (EqualsIgnoreCase(parent, "client")) return ClientSubcommands();
  if (EqualsIgnoreCase(parent, "config")) return ConfigSubcommands();
  if (EqualsIgnoreCase(parent, "command")) return CommandSubcommands();
  if (EqualsIgnoreCase(parent, "memory")) return MemorySubcommands();
  if (EqualsIgnoreCase(parent, "slowlog")) return SlowlogSubcommands();
  if (EqualsIgnoreCase(parent, "latency")) return LatencySubcommands();
  return {};
}

void RunSubcommand(CommandContext& cx, std::span<const CommandSpec> subs) {
  std::string_view sub = cx.arg(1);
  for (const CommandSpec& s : subs) {
    std::string_view short_name = s.name.substr(s.name.find('|') + 1);
    if (!EqualsIgnoreCase(short_name, sub)) continue;
    // Names are string literals, so data() is a static NUL-terminated string.
    cx.client().info->last_command.store(s.name.data(), std::memory_order_relaxed);
    size_t argc = cx.argc();
    bool arity_ok = s.arity >= 0 ? argc == static_cast<size_t>(s.arity)
                                 : argc >= static_cast<size_t>(-s.arity);
    if (!arity_ok) {
      cx.reply().Error(errors::WrongArity(s.name));
      return;
    }
    s.handler(cx);
    return;
  }
  std::string parent(cx.arg(0));
  for (char& c : parent) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
  cx.reply().Error(errors::UnknownSubcommand(sub, parent));
}

const CommandSpec* FindCommandOrSubcommand(const CommandTable& table, std::string_view name) {
  size_t bar = name.find('|');
  if (bar == std::string_view::npos) return table.Find(name);
  const CommandSpec* parent = table.Find(name.substr(0, bar));
  if (parent == nullptr) return nullptr;
  for (const CommandSpec& s : Subcommands(parent->name))
    if (EqualsIgnoreCase(s.name, name)) return &s;
  return nullptr;
}

void WriteCommandInfo(protocol::ReplyBuilder& rb, const CommandSpec& spec) {
  const CommandMeta* meta = FindMeta(spec.name);
  std::span<const CommandSpec> subs = Subcommands(spec.name);
  rb.ArrayHeader(10);
  rb.Bulk(spec.name);
  rb.Integer(spec.arity);
  WriteNameSet(rb, kFlagNames, FlagBits(spec, meta), "");
  rb.Integer(spec.first_key);
  rb.Integer(spec.last_key);
  rb.Integer(spec.key_step);
  WriteNameSet(rb, kAclNames, AclBits(spec, meta), "@");
  std::vector<std::string_view> tips;
  if (meta != nullptr) tips = Split(meta->tips, ' ');
  rb.SetHeader(tips.size());
  for (std::string_view t : tips) rb.Bulk(t);
  WriteKeySpecs(rb, spec, meta);
  if (subs.empty()) {
    rb.SetHeader(0);  // as Redis: an empty set, but an array when there are some
  } else {
    rb.ArrayHeader(subs.size());
    for (const CommandSpec& s : subs) WriteCommandInfo(rb, s);
  }
}

void WriteCommandDocs(protocol::ReplyBuilder& rb, const CommandSpec& spec) {
  const CommandMeta* meta = FindMeta(spec.name);
  std::span<const CommandSpec> subs = Subcommands(spec.name);
  bool since = meta != nullptr && !meta->since.empty();
  rb.MapHeader(2 + (since ? 1 : 0) + (subs.empty() ? 0 : 1));
  rb.Bulk("summary");
  rb.Bulk(spec.summary);
  if (since) {
    rb.Bulk("since");
    rb.Bulk(meta->since);
  }
  rb.Bulk("group");
  rb.Bulk(spec.group);
  if (!subs.empty()) {
    rb.Bulk("subcommands");
    rb.MapHeader(subs.size());
    for (const CommandSpec& s : subs) {
      rb.Bulk(s.name);
      WriteCommandDocs(rb, s);
    }
  }
}

std::vector<std::string_view> CommandAclCategories(const CommandSpec& spec) {
  uint32_t bits = AclBits(spec, FindMeta(spec.name));
  std::vector<std::string_view> out;
  for (size_t i = 0; i < std::size(kAclNames); ++i)
    if (bits & (1u << i)) out.push_back(kAclNames[i]);
  return out;
}

}  // namespace kvpool
