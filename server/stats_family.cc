// SLOWLOG, and INFO's commandstats, errorstats and latencystats sections,
// from ServerContext::command_stats() and slowlog() (command_stats.h), which
// the dispatcher fills for every command.
#include <cstdio>
#include <string>

#include "server/command_stats.h"
#include "server/command_table.h"
#include "server/errors.h"
#include "server/info.h"
#include "server/util/strings.h"

namespace kvpool {

namespace {

constexpr uint32_t kLS = kCmdLoading | kCmdStale;

std::string Fixed(double v, int digits) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// ---- SLOWLOG ----

// SLOWLOG GET [count]: the newest `count` entries (10 by default, -1 all),
// each [id, unix time, µs, [args...], client addr, client name].
void CmdSlowlogGet(CommandContext& cx) {
  int64_t count = 10;
  if (cx.argc() == 3) {
    if (!ParseInt64(cx.arg(2), &count) || count < -1) {
      cx.reply().Error(errors::kSlowlogCount);
      return;
    }
  }
  auto entries = cx.server().slowlog().Get(count < 0 ? SIZE_MAX : static_cast<size_t>(count));
  protocol::ReplyBuilder& rb = cx.reply();
  rb.ArrayHeader(entries.size());
  for (const SlowLog::Entry& e : entries) {
    rb.ArrayHeader(6);
    rb.Integer(static_cast<int64_t>(e.id));
    rb.Integer(e.unix_time);
    rb.Integer(static_cast<int64_t>(e.duration_us));
    rb.BulkArray(e.args);
    rb.Bulk(e.client_addr);
    rb.Bulk(e.client_name);
  }
}

void CmdSlowlogLen(CommandContext& cx) {
  cx.reply().Integer(static_cast<int64_t>(cx.server().slowlog().Len()));
}

void CmdSlowlogReset(CommandContext& cx) {
  cx.server().slowlog().Reset();
  cx.reply().Ok();
}

void CmdSlowlogHelp(CommandContext& cx) {
  static constexpr const char* kHelp[] = {
      "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
      "GET [<count>]",
      "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
      "    Entries are made of:",
      "    id, timestamp, time in microseconds, arguments array, client IP and port,",
      "    client name",
      "LEN",
      "    Return the length of the slowlog.",
      "RESET",
      "    Reset the slowlog.",
      "HELP",
      "    Prints this help.",
  };
  cx.reply().ArrayHeader(std::size(kHelp));
  for (const char* line : kHelp) cx.reply().SimpleString(line);
}

constexpr CommandSpec kSlowlogSubcommands[] = {
    {"slowlog|get", -2, kCmdAdmin | kLS, 0, 0, 0, CmdSlowlogGet, "server",
     "Returns the slow log's entries"},
    {"slowlog|len", 2, kCmdAdmin | kLS, 0, 0, 0, CmdSlowlogLen, "server",
     "Returns the number of entries in the slow log"},
    {"slowlog|reset", 2, kCmdAdmin | kLS, 0, 0, 0, CmdSlowlogReset, "server",
     "Clears all entries from the slow log"},
    {"slowlog|help", 2, kLS, 0, 0, 0, CmdSlowlogHelp, "server",
     "Show helpful text about the different subcommands"},
};

void CmdSlowlog(CommandContext& cx) { RunSubcommand(cx, kSlowlogSubcommands); }

}  // namespace

std::span<const CommandSpec> SlowlogSubcommands() { return kSlowlogSubcommands; }

// ---- INFO sections ----

void CommandStatsSection(ServerContext& s, std::string& o) {
  const auto& specs = s.commands().All();
  for (size_t i = 0; i < specs.size(); ++i) {
    CommandStats::Totals c = s.command_stats().Sum(i);
    uint64_t calls = c.calls, rejected = c.rejected, usec = c.usec;
    if (calls == 0 && rejected == 0) continue;
    o += "cmdstat_" + std::string(specs[i].name) + ":calls=" + std::to_string(calls) +
         ",usec=" + std::to_string(usec) + ",usec_per_call=" +
         Fixed(calls ? static_cast<double>(usec) / static_cast<double>(calls) : 0, 2) +
         ",rejected_calls=" + std::to_string(rejected) +
         ",failed_calls=" + std::to_string(c.failed) + "\r\n";
  }
}

void ErrorStatsSection(ServerContext& s, std::string& o) {
  for (const auto& [code, n] : s.command_stats().Errors())
    o += "errorstat_" + code + ":count=" + std::to_string(n) + "\r\n";
}

void LatencyStatsSection(ServerContext& s, std::string& o) {
  const auto& specs = s.commands().All();
  for (size_t i = 0; i < specs.size(); ++i) {
    const CommandStats& cs = s.command_stats();
    if (cs.LatencyCount(i) == 0) continue;
    o += "latency_percentiles_usec_" + std::string(specs[i].name) +
         ":p50=" + Fixed(cs.LatencyPercentile(i, 50), 3) +
         ",p99=" + Fixed(cs.LatencyPercentile(i, 99), 3) +
         ",p99.9=" + Fixed(cs.LatencyPercentile(i, 99.9), 3) + "\r\n";
  }
}

void RegisterStatsFamily(CommandTable& t) {
  t.Add({"slowlog", -2, kCmdAdmin | kLS, 0, 0, 0, CmdSlowlog, "server",
         "A container for slow log commands"});
}

}  // namespace kvpool
