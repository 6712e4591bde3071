// SLOWLOG, LATENCY, and INFO's commandstats, errorstats and latencystats
// sections, from ServerContext::command_stats(), slowlog() and
// latency_monitor() (command_stats.h), which the dispatcher fills.
#include <cstdio>
#include <utility>
#include <vector>
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

// ---- LATENCY ----

// LATENCY LATEST: per event [name, time of the latest spike, its ms, the
// highest ms].
void CmdLatencyLatest(CommandContext& cx) {
  auto events = cx.server().latency_monitor().All();
  protocol::ReplyBuilder& rb = cx.reply();
  rb.ArrayHeader(events.size());
  for (const LatencyMonitor::Event& e : events) {
    rb.ArrayHeader(4);
    rb.Bulk(e.name);
    rb.Integer(e.samples.empty() ? 0 : e.samples.back().unix_time);
    rb.Integer(static_cast<int64_t>(e.samples.empty() ? 0 : e.samples.back().ms));
    rb.Integer(static_cast<int64_t>(e.max_ms));
  }
}

// LATENCY HISTORY event: [time, ms] per second that had a spike.
void CmdLatencyHistory(CommandContext& cx) {
  auto samples = cx.server().latency_monitor().History(cx.arg(2));
  protocol::ReplyBuilder& rb = cx.reply();
  rb.ArrayHeader(samples.size());
  for (const LatencyMonitor::Sample& s : samples) {
    rb.ArrayHeader(2);
    rb.Integer(s.unix_time);
    rb.Integer(static_cast<int64_t>(s.ms));
  }
}

void CmdLatencyReset(CommandContext& cx) {
  std::vector<std::string_view> events(cx.args().begin() + 2, cx.args().end());
  cx.reply().Integer(static_cast<int64_t>(cx.server().latency_monitor().Reset(events)));
}

// LATENCY HISTOGRAM [command ...]: per command (all that ran when none is
// named) a map of calls and histogram_usec, the cumulative count of calls
// at or under each power of two of µs, from the first to the last that
// adds any.
void CmdLatencyHistogram(CommandContext& cx) {
  const auto& specs = cx.server().commands().All();
  const CommandStats& cs = cx.server().command_stats();
  std::vector<size_t> wanted;
  for (size_t i = 0; i < specs.size(); ++i) {
    bool named = cx.argc() == 2;
    for (size_t a = 2; a < cx.argc() && !named; ++a) named = EqualsIgnoreCase(cx.arg(a), specs[i].name);
    if (named && cs.LatencyCount(i) > 0) wanted.push_back(i);
  }
  protocol::ReplyBuilder& rb = cx.reply();
  rb.MapHeader(wanted.size());
  for (size_t i : wanted) {
    auto hs = cs.Histograms(i);
    uint64_t total = cs.LatencyCount(i);
    std::vector<std::pair<uint64_t, uint64_t>> buckets;
    uint64_t last = 0;
    for (uint64_t bound = 1; last < total && bound <= (uint64_t{1} << 36); bound <<= 1) {
      uint64_t n = LatencyHistogram::AtMost(hs, bound);
      if (n > last || (n > 0 && buckets.empty())) buckets.emplace_back(bound, n);
      last = n;
    }
    rb.Bulk(specs[i].name);
    rb.MapHeader(2);
    rb.Bulk("calls");
    rb.Integer(static_cast<int64_t>(total));
    rb.Bulk("histogram_usec");
    rb.MapHeader(buckets.size());
    for (const auto& [bound, n] : buckets) {
      rb.Integer(static_cast<int64_t>(bound));
      rb.Integer(static_cast<int64_t>(n));
    }
  }
}

void CmdLatencyHelp(CommandContext& cx) {
  static constexpr const char* kHelp[] = {
      "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
      "HISTORY <event>",
      "    Return time-latency samples for the <event> class.",
      "LATEST",
      "    Return the latest latency samples for all events.",
      "RESET [<event> ...]",
      "    Reset latency data of one or more <event> classes.",
      "    (default: reset all data for all event classes)",
      "HISTOGRAM [COMMAND ...]",
      "    Return a cumulative distribution of latencies in the format of a histogram for the",
      "    specified command names.",
      "    If no commands are specified then all histograms are replied.",
      "HELP",
      "    Prints this help.",
  };
  cx.reply().ArrayHeader(std::size(kHelp));
  for (const char* line : kHelp) cx.reply().SimpleString(line);
}

constexpr CommandSpec kLatencySubcommands[] = {
    {"latency|latest", 2, kCmdAdmin | kLS, 0, 0, 0, CmdLatencyLatest, "server",
     "Returns the latest latency samples for all events"},
    {"latency|history", 3, kCmdAdmin | kLS, 0, 0, 0, CmdLatencyHistory, "server",
     "Returns timestamp-latency samples for an event"},
    {"latency|reset", -2, kCmdAdmin | kLS, 0, 0, 0, CmdLatencyReset, "server",
     "Resets the latency data for one or more events"},
    {"latency|histogram", -2, kCmdAdmin | kLS, 0, 0, 0, CmdLatencyHistogram, "server",
     "Returns the cumulative distribution of latencies of a subset or all commands"},
    {"latency|help", 2, kLS, 0, 0, 0, CmdLatencyHelp, "server",
     "Returns helpful text about the different subcommands"},
};

void CmdLatency(CommandContext& cx) { RunSubcommand(cx, kLatencySubcommands); }

// ---- MONITOR ----

void CmdMonitor(CommandContext& cx) {
  if (!cx.client().monitor) {
    cx.reply().Error(errors::kMonitorNeedsConnection);
    return;
  }
  cx.client().monitor();
  cx.reply().Ok();
}

}  // namespace

std::span<const CommandSpec> SlowlogSubcommands() { return kSlowlogSubcommands; }
std::span<const CommandSpec> LatencySubcommands() { return kLatencySubcommands; }

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
  t.Add({"latency", -2, kCmdAdmin | kLS, 0, 0, 0, CmdLatency, "server",
         "A container for latency diagnostics commands"});
  t.Add({"monitor", 1, kCmdAdmin | kCmdNoMulti | kLS, 0, 0, 0, CmdMonitor, "server",
         "Listens for all requests received by the server in real-time"});
}

}  // namespace kvpool
