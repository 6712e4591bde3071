// Server commands: INFO, COMMAND, CONFIG, TIME, MEMORY, SHUTDOWN, LASTSAVE,
// SAVE/BGSAVE, DEBUG SLEEP, ROLE, LOLWUT, as Redis 7.0 answers them. DBSIZE
// and FLUSH* are the keyspace family's. INFO's text and COMMAND's metadata
// are built in info.cc.
//
// kvpool is a cache and keeps nothing on disk: SAVE and BGSAVE are errors,
// LASTSAVE is the start time, and CONFIG REWRITE does not touch files.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "server/command_table.h"
#include "server/errors.h"
#include "server/heap_usage.h"
#include "server/info.h"
#include "server/server_context.h"
#include "server/util/strings.h"

namespace kvpool {

namespace {

constexpr uint32_t kLS = kCmdLoading | kCmdStale;

void ReplyHelp(CommandContext& cx, std::span<const char* const> lines) {
  cx.reply().ArrayHeader(lines.size());
  for (const char* line : lines) cx.reply().SimpleString(line);
}

// ---- INFO ----

void CmdInfo(CommandContext& cx) {
  std::string text = InfoText(cx.server(), cx.args().subspan(1), cx.now_ms());
  cx.reply().Verbatim(text);  // RESP3: "=len\r\ntxt:..."; RESP2: a bulk
}

// ---- COMMAND ----

void CmdCommandCount(CommandContext& cx) {
  cx.reply().Integer(static_cast<int64_t>(cx.server().commands().All().size()));
}

void CmdCommandInfo(CommandContext& cx) {
  const CommandTable& table = cx.server().commands();
  if (cx.argc() == 2) {
    cx.reply().ArrayHeader(table.All().size());
    for (const CommandSpec& spec : table.All()) WriteCommandInfo(cx.reply(), spec);
    return;
  }
  cx.reply().ArrayHeader(cx.argc() - 2);
  for (size_t i = 2; i < cx.argc(); ++i) {
    const CommandSpec* spec = FindCommandOrSubcommand(table, cx.arg(i));
    if (spec == nullptr) {
      cx.reply().Null();
    } else {
      WriteCommandInfo(cx.reply(), *spec);
    }
  }
}

// A map of name -> docs; unknown names are left out, as Redis does.
void CmdCommandDocs(CommandContext& cx) {
  const CommandTable& table = cx.server().commands();
  std::vector<const CommandSpec*> found;
  if (cx.argc() == 2) {
    for (const CommandSpec& spec : table.All()) found.push_back(&spec);
  } else {
    for (size_t i = 2; i < cx.argc(); ++i) {
      const CommandSpec* spec = FindCommandOrSubcommand(table, cx.arg(i));
      if (spec != nullptr) found.push_back(spec);
    }
  }
  cx.reply().MapHeader(found.size());
  for (const CommandSpec* spec : found) {
    cx.reply().Bulk(spec->name);
    WriteCommandDocs(cx.reply(), *spec);
  }
}

// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]:
// every command and subcommand name.
void CmdCommandList(CommandContext& cx) {
  enum { kAll, kModule, kAclCat, kPattern } filter = kAll;
  std::string_view value;
  if (cx.argc() != 2) {
    if (cx.argc() != 5 || !EqualsIgnoreCase(cx.arg(2), "FILTERBY")) {
      cx.reply().Error(errors::kSyntax);
      return;
    }
    value = cx.arg(4);
    if (EqualsIgnoreCase(cx.arg(3), "MODULE")) {
      filter = kModule;
    } else if (EqualsIgnoreCase(cx.arg(3), "ACLCAT")) {
      filter = kAclCat;
    } else if (EqualsIgnoreCase(cx.arg(3), "PATTERN")) {
      filter = kPattern;
    } else {
      cx.reply().Error(errors::kSyntax);
      return;
    }
  }
  auto keep = [&](const CommandSpec& spec) {
    switch (filter) {
      case kAll:
        return true;
      case kModule:
        return false;  // kvpool has no modules
      case kAclCat: {
        std::vector<std::string_view> cats = CommandAclCategories(spec);
        return std::any_of(cats.begin(), cats.end(),
                           [&](std::string_view c) { return EqualsIgnoreCase(c, value); });
      }
      case kPattern:
        return GlobMatch(value, spec.name, true);
    }
    return false;
  };
  std::vector<std::string_view> names;
  for (const CommandSpec& spec : cx.server().commands().All()) {
    if (keep(spec)) names.push_back(spec.name);
    for (const CommandSpec& sub : Subcommands(spec.name))
      if (keep(sub)) names.push_back(sub.name);
  }
  cx.reply().BulkArray(names);
}

// COMMAND GETKEYS command arg...: the keys by the command's key positions.
void CmdCommandGetKeys(CommandContext& cx) {
  std::span<const std::string_view> argv = cx.args().subspan(2);
  const CommandSpec* spec = cx.server().commands().Find(argv[0]);
  if (spec != nullptr && !Subcommands(spec->name).empty()) {
    const CommandSpec* parent = spec;
    spec = nullptr;
    if (argv.size() >= 2) {
      for (const CommandSpec& sub : Subcommands(parent->name))
        if (EqualsIgnoreCase(sub.name.substr(sub.name.find('|') + 1), argv[1])) spec = &sub;
    }
  }
  if (spec == nullptr) {
    cx.reply().Error(errors::kInvalidCommandSpecified);
    return;
  }
  bool arity_ok = spec->arity >= 0 ? argv.size() == static_cast<size_t>(spec->arity)
                                   : argv.size() >= static_cast<size_t>(-spec->arity);
  if (!arity_ok) {
    cx.reply().Error(errors::kInvalidNumberOfArgs);
    return;
  }
  if (spec->first_key <= 0) {
    cx.reply().Error(errors::kNoKeyArguments);
    return;
  }
  int argc = static_cast<int>(argv.size());
  int last = spec->last_key < 0 ? argc + spec->last_key : spec->last_key;
  int step = std::max(spec->key_step, 1);
  std::vector<std::string_view> keys;
  for (int i = spec->first_key; i <= last && i < argc; i += step) keys.push_back(argv[i]);
  cx.reply().BulkArray(keys);
}

void CmdCommandHelp(CommandContext& cx) {
  static constexpr const char* kHelp[] = {
      "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
      "(no subcommand)",
      "    Return details about all commands.",
      "COUNT",
      "    Return the total number of commands in this server.",
      "LIST",
      "    Return a list of all commands in this server.",
      "INFO [<command-name> ...]",
      "    Return details about multiple commands.",
      "    If no command names are given, documentation details for all",
      "    commands are returned.",
      "DOCS [<command-name> ...]",
      "    Return documentation details about multiple commands.",
      "    If no command names are given, documentation details for all",
      "    commands are returned.",
      "GETKEYS <full-command>",
      "    Return the keys from a full command.",
      "HELP",
      "    Prints this help.",
  };
  ReplyHelp(cx, kHelp);
}

constexpr CommandSpec kCommandSubcommands[] = {
    {"command|count", 2, kLS, 0, 0, 0, CmdCommandCount, "server",
     "Get total number of Redis commands"},
    {"command|docs", -2, kLS, 0, 0, 0, CmdCommandDocs, "server",
     "Get array of specific Redis command documentation"},
    {"command|getkeys", -4, kLS, 0, 0, 0, CmdCommandGetKeys, "server",
     "Extract keys given a full Redis command"},
    {"command|help", 2, kLS, 0, 0, 0, CmdCommandHelp, "server",
     "Show helpful text about the different subcommands"},
    {"command|info", -2, kLS, 0, 0, 0, CmdCommandInfo, "server",
     "Get array of specific Redis command details, or all when no argument is given."},
    {"command|list", -2, kLS, 0, 0, 0, CmdCommandList, "server",
     "Get an array of Redis command names"},
};

void CmdCommand(CommandContext& cx) {
  if (cx.argc() == 1) {
    const CommandTable& table = cx.server().commands();
    cx.reply().ArrayHeader(table.All().size());
    for (const CommandSpec& spec : table.All()) WriteCommandInfo(cx.reply(), spec);
    return;
  }
  RunSubcommand(cx, kCommandSubcommands);
}

// ---- CONFIG ----

const OptionSpec* FindOption(std::string_view name) {
  for (const OptionSpec& spec : Config::Specs())
    if (EqualsIgnoreCase(spec.name, name)) return &spec;
  return nullptr;
}

bool IsGlob(std::string_view s) { return s.find_first_of("*?[") != std::string_view::npos; }

// CONFIG GET pattern [pattern ...]: a map of name -> value; a name without
// glob characters is looked up exactly and echoed as given, as Redis does.
void CmdConfigGet(CommandContext& cx) {
  const Config& config = cx.server().config();
  std::vector<std::pair<std::string, std::string>> out;
  auto seen = [&out](std::string_view name) {
    return std::any_of(out.begin(), out.end(),
                       [&](const auto& kv) { return EqualsIgnoreCase(kv.first, name); });
  };
  for (size_t i = 2; i < cx.argc(); ++i) {
    std::string_view pattern = cx.arg(i);
    if (!IsGlob(pattern)) {
      std::string value;
      if (!seen(pattern) && config.Get(pattern, &value)) out.emplace_back(pattern, value);
      continue;
    }
    for (auto& [name, value] : config.Match(pattern))
      if (!seen(name)) out.emplace_back(std::move(name), std::move(value));
  }
  cx.reply().MapHeader(out.size());
  for (const auto& [name, value] : out) {
    cx.reply().Bulk(name);
    cx.reply().Bulk(value);
  }
}

std::string ConfigSetFailed(std::string_view name, std::string_view reason) {
  return std::string(errors::kConfigSetFailedPrefix) + std::string(name) + "') - " +
         std::string(reason);
}

// CONFIG SET name value [name value ...]: all or nothing, as Redis 7. Names
// are checked first (unknown, immutable, repeated); then values are applied
// in order, and if one is refused the ones already applied are put back.
void CmdConfigSet(CommandContext& cx) {
  if (cx.argc() % 2 != 0) {
    cx.reply().Error(errors::kSyntax);
    return;
  }
  std::vector<const OptionSpec*> specs;
  for (size_t i = 2; i < cx.argc(); i += 2) {
    std::string_view name = cx.arg(i);
    const OptionSpec* spec = FindOption(name);
    if (spec == nullptr) {
      cx.reply().Error(std::string(errors::kConfigSetUnknownPrefix) + std::string(name) + "'");
      return;
    }
    if (!spec->runtime) {
      cx.reply().Error(ConfigSetFailed(name, "can't set immutable config"));
      return;
    }
    if (std::find(specs.begin(), specs.end(), spec) != specs.end()) {
      cx.reply().Error(ConfigSetFailed(name, "duplicate parameter"));
      return;
    }
    specs.push_back(spec);
  }
  // Whoever may run CONFIG SET is authenticated as the default user, so
  // setting requirepass does not lock this connection out (as in Redis).
  cx.client().authenticated = true;
  Config& config = cx.server().config();
  std::vector<std::pair<const OptionSpec*, std::string>> applied;  // spec, old value
  for (size_t k = 0; k < specs.size(); ++k) {
    std::string old = config.String(specs[k]->name);
    Status s = config.Set(specs[k]->name, cx.arg(3 + 2 * k), /*startup=*/false);
    if (!s.ok()) {
      for (auto it = applied.rbegin(); it != applied.rend(); ++it) {
        // The old value was accepted before, so it is accepted again.
        config.Restore(it->first->name, it->second).IgnoreError();
      }
      cx.reply().Error(ConfigSetFailed(cx.arg(2 + 2 * k), s.message()));
      return;
    }
    applied.emplace_back(specs[k], std::move(old));
  }
  cx.reply().Ok();
}

void CmdConfigResetStat(CommandContext& cx) {
  ServerContext& server = cx.server();
  server.stats().Reset();
  server.store().ResetStats();
  server.command_stats().Reset();
  server.used_memory_peak.store(UsedMemory(server, server.store().GetStats()),
                                std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> l(server.rate_mu);
    server.rate_sample_ms = cx.now_ms();
    server.rate_sample_commands = 0;
    server.ops_per_sec = 0;
  }
  cx.reply().Ok();
}

void CmdConfigRewrite(CommandContext& cx) {
  cx.reply().Error(cx.server().config_file.empty() ? errors::kNoConfigFile
                                                   : errors::kConfigRewriteUnsupported);
}

void CmdConfigHelp(CommandContext& cx) {
  static constexpr const char* kHelp[] = {
      "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
      "GET <pattern>",
      "    Return parameters matching the glob-like <pattern> and their values.",
      "SET <directive> <value>",
      "    Set the configuration <directive> to <value>.",
      "RESETSTAT",
      "    Reset statistics reported by the INFO command.",
      "REWRITE",
      "    Not supported by kvpool: edit the configuration file instead.",
      "HELP",
      "    Prints this help.",
  };
  ReplyHelp(cx, kHelp);
}

constexpr CommandSpec kConfigSubcommands[] = {
    {"config|get", -3, kCmdAdmin | kLS, 0, 0, 0, CmdConfigGet, "server",
     "Get the values of configuration parameters"},
    {"config|set", -4, kCmdAdmin | kLS, 0, 0, 0, CmdConfigSet, "server",
     "Set configuration parameters to the given values"},
    {"config|resetstat", 2, kCmdAdmin | kLS, 0, 0, 0, CmdConfigResetStat, "server",
     "Reset the stats returned by INFO"},
    {"config|rewrite", 2, kCmdAdmin | kLS, 0, 0, 0, CmdConfigRewrite, "server",
     "Rewrite the configuration file with the in memory configuration"},
    {"config|help", 2, kLS, 0, 0, 0, CmdConfigHelp, "server",
     "Show helpful text about the different subcommands"},
};

void CmdConfig(CommandContext& cx) { RunSubcommand(cx, kConfigSubcommands); }

// ---- MEMORY ----

// MEMORY USAGE key [SAMPLES count]: the bytes the item takes in the segment
// (key, value and item header); nil for a missing key. SAMPLES is checked and
// ignored: a string has nothing to sample.
void CmdMemoryUsage(CommandContext& cx) {
  for (size_t i = 3; i < cx.argc(); ++i) {
    if (EqualsIgnoreCase(cx.arg(i), "SAMPLES") && i + 1 < cx.argc()) {
      int64_t samples;
      if (!ParseInt64(cx.arg(i + 1), &samples)) {
        cx.reply().Error(errors::kNotInteger);
        return;
      }
      if (samples < 0) {
        cx.reply().Error(errors::kSyntax);
        return;
      }
      ++i;
    } else {
      cx.reply().Error(errors::kSyntax);
      return;
    }
  }
  storage::ItemRef item = cx.store().Peek(cx.db(), cx.arg(2), cx.now_ms());
  if (!item) {
    cx.reply().Null();
    return;
  }
  cx.reply().Integer(static_cast<int64_t>(item.alloc_size()));
}

void CmdMemoryStats(CommandContext& cx) {
  storage::StoreStats st = cx.store().GetStats();
  uint64_t used = UsedMemory(cx.server(), st);
  uint64_t peak = std::max(cx.server().used_memory_peak.load(std::memory_order_relaxed), used);
  cx.server().used_memory_peak.store(peak, std::memory_order_relaxed);
  uint64_t rss = ResidentSetBytes();
  protocol::ReplyBuilder& rb = cx.reply();
  auto integer = [&rb](std::string_view name, uint64_t v) {
    rb.Bulk(name);
    rb.Integer(static_cast<int64_t>(v));
  };
  rb.MapHeader(12);
  integer("peak.allocated", peak);
  integer("total.allocated", used);
  integer("startup.allocated", 0);
  integer("overhead.total", used - std::min(used, st.used_memory));
  integer("clients.normal", ClientsMemory(cx.server()));
  integer("keys.count", st.keys);
  integer("keys.bytes-per-key", st.keys ? st.used_memory / st.keys : 0);
  integer("dataset.bytes", st.used_memory);
  integer("segment.bytes", st.segment_bytes);
  integer("segment.used", st.segment_used);
  integer("rss.bytes", rss);
  rb.Bulk("fragmentation");
  rb.Double(used ? static_cast<double>(rss) / static_cast<double>(used) : 0);
}

void CmdMemoryDoctor(CommandContext& cx) {
  storage::StoreStats st = cx.store().GetStats();
  std::string report;
  if (st.keys == 0) {
    report = "Hi Sam, this instance is empty, so there is nothing to examine.\n";
  } else if (st.maxmemory > 0 && st.used_memory * 10 >= st.maxmemory * 9) {
    report = "Sam, I detected a few issues in this kvpool instance memory implants:\n\n"
             " * High memory use: used_memory is " + BytesToHuman(st.used_memory) +
             " of maxmemory " + BytesToHuman(st.maxmemory) +
             "; expect evictions (or OOM errors with maxmemory-policy noeviction).\n";
  } else {
    report = "Hi Sam, I can't find any memory issue in your instance. I can only account for "
             "what occurs on this base.\n";
  }
  cx.reply().Verbatim(report);
}

// MEMORY PURGE: as Redis asks jemalloc to purge, glibc gives free pages back.
void CmdMemoryPurge(CommandContext& cx) {
  ReleaseFreeHeap();
  cx.reply().Ok();
}

void CmdMemoryMallocStats(CommandContext& cx) { cx.reply().Verbatim(HeapStatsText()); }

void CmdMemoryHelp(CommandContext& cx) {
  static constexpr const char* kHelp[] = {
      "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
      "DOCTOR",
      "    Return memory problems reports.",
      "MALLOC-STATS",
      "    Return internal statistics report from the memory allocator.",
      "PURGE",
      "    Attempt to purge dirty pages for reclamation by the allocator.",
      "STATS",
      "    Return information about the memory usage of the server.",
      "USAGE <key> [SAMPLES <count>]",
      "    Return memory in bytes used by <key> and its value.",
      "HELP",
      "    Prints this help.",
  };
  ReplyHelp(cx, kHelp);
}

constexpr CommandSpec kMemorySubcommands[] = {
    {"memory|usage", -3, kCmdReadOnly, 2, 2, 1, CmdMemoryUsage, "server",
     "Estimate the memory usage of a key"},
    {"memory|stats", 2, 0, 0, 0, 0, CmdMemoryStats, "server", "Show memory usage details"},
    {"memory|doctor", 2, 0, 0, 0, 0, CmdMemoryDoctor, "server", "Outputs memory problems report"},
    {"memory|malloc-stats", 2, 0, 0, 0, 0, CmdMemoryMallocStats, "server",
     "Returns the allocator statistics"},
    {"memory|purge", 2, 0, 0, 0, 0, CmdMemoryPurge, "server",
     "Asks the allocator to release memory"},
    {"memory|help", 2, kLS, 0, 0, 0, CmdMemoryHelp, "server",
     "Show helpful text about the different subcommands"},
};

void CmdMemory(CommandContext& cx) { RunSubcommand(cx, kMemorySubcommands); }

// ---- TIME ROLE LASTSAVE LOLWUT ----

void CmdTime(CommandContext& cx) {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  cx.reply().ArrayHeader(2);
  cx.reply().Bulk(std::to_string(ts.tv_sec));
  cx.reply().Bulk(std::to_string(ts.tv_nsec / 1000));
}

void CmdRole(CommandContext& cx) {
  cx.reply().ArrayHeader(3);
  cx.reply().Bulk("master");
  cx.reply().Integer(0);
  cx.reply().ArrayHeader(0);
}

// Nothing is ever saved; like a Redis that has not saved yet, LASTSAVE
// reports the start time.
void CmdLastSave(CommandContext& cx) {
  int64_t start = cx.server().start_ms > 0 ? cx.server().start_ms : cx.now_ms();
  cx.reply().Integer(start / 1000);
}

void CmdLolwut(CommandContext& cx) {
  cx.reply().Verbatim("kvpool ver. " + std::string(kKvpoolVersion) + " (Redis " +
                      std::string(kRedisVersion) + " compatible)\n");
}

// ---- SAVE BGSAVE SHUTDOWN DEBUG ----

// Redis refuses its no-multi commands inside MULTI and fails the transaction.
bool RefuseInMulti(CommandContext& cx) {
  if (!cx.client().in_multi) return false;
  cx.client().multi_error = true;
  cx.reply().Error(errors::kNotAllowedInMulti);
  return true;
}

void CmdSave(CommandContext& cx) {
  if (RefuseInMulti(cx)) return;
  cx.reply().Error(errors::kNoPersistence);
}

void CmdBgSave(CommandContext& cx) { cx.reply().Error(errors::kNoPersistence); }

// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: there is nothing to save, so
// the options only need to be valid. On success no reply is written and the
// connection closes, as Redis does.
void CmdShutdown(CommandContext& cx) {
  if (RefuseInMulti(cx)) return;
  bool save = false, nosave = false, abort = false;
  for (size_t i = 1; i < cx.argc(); ++i) {
    std::string_view opt = cx.arg(i);
    if (EqualsIgnoreCase(opt, "NOSAVE")) nosave = true;
    else if (EqualsIgnoreCase(opt, "SAVE")) save = true;
    else if (EqualsIgnoreCase(opt, "ABORT")) abort = true;
    else if (!EqualsIgnoreCase(opt, "NOW") && !EqualsIgnoreCase(opt, "FORCE")) {
      cx.reply().Error(errors::kSyntax);
      return;
    }
  }
  if ((save && nosave) || (abort && cx.argc() != 2)) {
    cx.reply().Error(errors::kSyntax);
    return;
  }
  if (abort) {
    cx.reply().Error(errors::kNoShutdownInProgress);  // shutdown is never pending
    return;
  }
  if (!cx.server().request_shutdown) {
    cx.reply().Error(errors::kShutdownFailed);
    return;
  }
  cx.server().request_shutdown();
  cx.client().close_after_reply = true;
}

// DEBUG SLEEP seconds | DEBUG HELP. SLEEP blocks this client's I/O thread,
// as it blocks Redis.
void CmdDebug(CommandContext& cx) {
  std::string_view sub = cx.arg(1);
  if (EqualsIgnoreCase(sub, "SLEEP") && cx.argc() == 3) {
    double seconds;
    if (!ParseDouble(cx.arg(2), &seconds) || std::isnan(seconds)) {
      cx.reply().Error(errors::kNotFloat);
      return;
    }
    if (seconds > 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(std::llround(seconds * 1e6)));
    }
    cx.reply().Ok();
    return;
  }
  if (EqualsIgnoreCase(sub, "HELP") && cx.argc() == 2) {
    static constexpr const char* kHelp[] = {
        "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "SLEEP <seconds>",
        "    Stop the server for <seconds>. Decimals allowed.",
        "HELP",
        "    Prints this help.",
    };
    ReplyHelp(cx, kHelp);
    return;
  }
  cx.reply().Error(errors::UnknownSubcommandOrArity(sub, "DEBUG"));
}

}  // namespace

std::span<const CommandSpec> ConfigSubcommands() { return kConfigSubcommands; }
std::span<const CommandSpec> CommandSubcommands() { return kCommandSubcommands; }
std::span<const CommandSpec> MemorySubcommands() { return kMemorySubcommands; }

void RegisterServerFamily(CommandTable& t) {
  constexpr uint32_t A = kCmdAdmin, F = kCmdFast, N = kCmdNoMulti;
  // name, arity, flags, first_key, last_key, key_step, handler, group, summary
  t.Add({"info", -1, kLS, 0, 0, 0, CmdInfo, "server",
         "Get information and statistics about the server"});
  t.Add({"command", -1, kLS, 0, 0, 0, CmdCommand, "server", "Get array of Redis command details"});
  t.Add({"config", -2, 0, 0, 0, 0, CmdConfig, "server",
         "A container for server configuration commands"});
  t.Add({"memory", -2, 0, 0, 0, 0, CmdMemory, "server",
         "A container for memory diagnostics commands"});
  t.Add({"time", 1, kLS | F, 0, 0, 0, CmdTime, "server", "Return the current server time"});
  t.Add({"role", 1, kLS | F, 0, 0, 0, CmdRole, "server",
         "Return the role of the instance in the context of replication"});
  t.Add({"lastsave", 1, kLS | F, 0, 0, 0, CmdLastSave, "server",
         "Get the UNIX time stamp of the last successful save to disk"});
  t.Add({"lolwut", -1, kCmdReadOnly | F, 0, 0, 0, CmdLolwut, "server",
         "Display some computer art and the Redis version"});
  // SAVE and SHUTDOWN run at once inside MULTI only to be refused there.
  t.Add({"save", 1, A | N, 0, 0, 0, CmdSave, "server", "Synchronously save the dataset to disk"});
  t.Add({"bgsave", -1, A, 0, 0, 0, CmdBgSave, "server",
         "Asynchronously save the dataset to disk"});
  t.Add({"shutdown", -1, A | kLS | N, 0, 0, 0, CmdShutdown, "server",
         "Synchronously save the dataset to disk and then shut down the server"});
  t.Add({"debug", -2, A | kLS, 0, 0, 0, CmdDebug, "server",
         "A container for debugging commands"});
}

}  // namespace kvpool
