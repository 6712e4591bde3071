// Server introspection shared by the command families: the INFO text, and
// the command metadata behind COMMAND INFO / DOCS / LIST (flags, ACL
// categories, tips and key specs as Redis 7.0 reports them), including the
// subcommand tables of the container commands (CLIENT, CONFIG, COMMAND,
// MEMORY) and their dispatch.
//
// Threading: every function may be called from any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/reply_builder.h"
#include "server/command.h"
#include "server/command_table.h"
#include "server/server_context.h"

namespace kvpool {

// The Redis version clients see (HELLO, INFO redis_version); the commands and
// replies follow it. kvpool's own version is INFO's kvpool_version.
inline constexpr std::string_view kRedisVersion = "7.0.15";
inline constexpr std::string_view kKvpoolVersion = "0.1.0";

// ---- INFO ----

// INFO's text for `sections` (names as the client gave them, any case). No
// names or "default": the default sections (all but Commandstats and
// Latencystats, as Redis); "all" or "everything": every section; unknown
// names add nothing (so the text may be empty). Sections come in a fixed
// order whatever the argument order: Server, Clients, Memory, Persistence,
// Stats, Replication, CPU, Modules, Commandstats, Errorstats, Latencystats,
// Cluster, Keyspace, Pool. Each is "# Name\r\n" then "field:value\r\n" lines; sections are
// separated by "\r\n". Keyspace lists only non-empty databases. The Clients
// section ends with server.extra_info() if set; Pool is server.pool_info().
// Raises server.used_memory_peak and takes the ops/sec sample.
std::string InfoText(ServerContext& server, std::span<const std::string_view> sections,
                     int64_t now_ms);

// Redis's bytesToHuman: "512B", "1.50K", "64.00M", "2.00G".
std::string BytesToHuman(uint64_t n);

// This process's resident set size in bytes (/proc/self/statm), 0 if unknown.
uint64_t ResidentSetBytes();

// What the connected clients hold: their state and their query and output
// buffers (INFO's mem_clients_normal).
uint64_t ClientsMemory(ServerContext& server);

// INFO's used_memory, what the node holds as Redis counts it (the
// allocator's bytes in use): the items in the segment (st.items_bytes) plus
// the process heap (HeapBytesInUse(): the index, connections and their
// buffers, pool buffers). maxmemory bounds the dataset alone
// (st.used_memory: items + index; INFO's used_memory_dataset), so
// used_memory may exceed maxmemory by the heap. Never below the dataset plus
// ClientsMemory() (a heap count that is not there reads as 0).
uint64_t UsedMemory(ServerContext& server, const storage::StoreStats& st);

// ---- subcommands ----
// A container command's subcommands are CommandSpecs named "parent|sub"
// (e.g. "client|list"), with arity counted from the parent's name as Redis
// does ("client|setname" is 3), their own flags, key positions and handler.

std::span<const CommandSpec> ClientSubcommands();   // connection_family.cc
std::span<const CommandSpec> ConfigSubcommands();   // server_family.cc
std::span<const CommandSpec> CommandSubcommands();  // server_family.cc
std::span<const CommandSpec> MemorySubcommands();   // server_family.cc
std::span<const CommandSpec> SlowlogSubcommands();  // stats_family.cc
std::span<const CommandSpec> LatencySubcommands();  // stats_family.cc

// INFO's commandstats, errorstats and latencystats lines (stats_family.cc).
void CommandStatsSection(ServerContext& s, std::string& o);
void ErrorStatsSection(ServerContext& s, std::string& o);
void LatencyStatsSection(ServerContext& s, std::string& o);

// The subcommands of a top-level command (name in any case); empty if it is
// not a container.
std::span<const CommandSpec> Subcommands(std::string_view parent);

// Runs the subcommand named by cx.arg(1), as Redis 7.0 does: records
// "parent|sub" as the client's last command, checks its arity, calls its
// handler. Replies "ERR unknown subcommand 'x'. Try PARENT HELP." if there is
// no such subcommand and "ERR wrong number of arguments for 'parent|sub'
// command" on a bad arity. Requires cx.argc() >= 2.
void RunSubcommand(CommandContext& cx, std::span<const CommandSpec> subs);

// ---- COMMAND ----

// A top-level command, or a subcommand by its full name "parent|sub"; any
// case. nullptr if unknown.
const CommandSpec* FindCommandOrSubcommand(const CommandTable& table, std::string_view name);

// One COMMAND INFO entry, Redis 7.0's 10 fields: name, arity, flags (set of
// simple strings), first key, last key, step, ACL categories (set), tips
// (set), key specs (set of maps), subcommands (array of entries).
void WriteCommandInfo(protocol::ReplyBuilder& rb, const CommandSpec& spec);

// One COMMAND DOCS value: a map of summary, since (when known), group, and
// subcommands (a map of name -> docs) for containers.
void WriteCommandDocs(protocol::ReplyBuilder& rb, const CommandSpec& spec);

// The command's ACL categories without '@' ("read", "string", "fast"), in
// Redis's order; for COMMAND LIST FILTERBY ACLCAT.
std::vector<std::string_view> CommandAclCategories(const CommandSpec& spec);

}  // namespace kvpool
