// Helper of bench/run.sh: turns tool outputs into result records and prints
// the table. See report.h for the record format.
//
//   bench_report loadgen WORKLOAD SIDE ROUND RSS_KB METRIC [--cpu S C]  < loadgen JSON line
//   bench_report rb SIDE ROUND RSS_KB TEST=WORKLOAD... [--cpu S C --requests N]
//                                                             < redis-benchmark --csv
//   bench_report iperf WORKLOAD SIDE ROUND                    < iperf3 -J
//   bench_report value WORKLOAD SIDE ROUND VALUE UNIT RSS_KB
//   bench_report table RESULTS_FILE
// --cpu S C: CPU seconds (user + system) the server process(es) and the
// client used during the run; recorded per command (loadgen's "commands",
// or redis-benchmark's --requests). Records go to stdout; exit status 1 (with
// a message) if the input is not a valid result (e.g. loadgen reported errors).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "bench/report.h"

using namespace kvbench;

namespace {

std::string ReadAll(std::istream& in) {
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

double Number(const char* s) {
  if (std::string(s) == "-") return std::nan("");
  return std::strtod(s, nullptr);
}

int Fail(const std::string& msg) {
  std::fprintf(stderr, "bench_report: %s\n", msg.c_str());
  return 1;
}

int Usage() {
  std::fputs(
      "usage: bench_report loadgen WORKLOAD SIDE ROUND RSS_KB METRIC [--cpu S C] < json\n"
      "       bench_report rb SIDE ROUND RSS_KB TEST=WORKLOAD... [--cpu S C --requests N] < csv\n"
      "       bench_report iperf WORKLOAD SIDE ROUND < iperf3-json\n"
      "       bench_report value WORKLOAD SIDE ROUND VALUE UNIT RSS_KB\n"
      "       bench_report table RESULTS_FILE\n",
      stderr);
  return 2;
}

}  // namespace

int main(int raw_argc, char** raw_argv) {
  // Pull out --cpu S C and --requests N; the rest is positional.
  std::vector<char*> pos;
  double server_cpu = std::nan(""), client_cpu = std::nan(""), requests = std::nan("");
  for (int i = 0; i < raw_argc; ++i) {
    std::string a = raw_argv[i];
    if (a == "--cpu" && i + 2 < raw_argc) {
      server_cpu = Number(raw_argv[i + 1]);
      client_cpu = Number(raw_argv[i + 2]);
      i += 2;
    } else if (a == "--requests" && i + 1 < raw_argc) {
      requests = Number(raw_argv[++i]);
    } else {
      pos.push_back(raw_argv[i]);
    }
  }
  const int argc = static_cast<int>(pos.size());
  char** argv = pos.data();
  auto per_op = [](double seconds, double ops) {
    return ops > 0 ? seconds * 1e6 / ops : std::nan("");
  };
  if (argc < 2) return Usage();
  const std::string cmd = argv[1];
  std::string error;
  if (cmd == "loadgen" && argc == 7) {
    Record r;
    r.workload = argv[2];
    r.side = argv[3];
    r.round = std::atoi(argv[4]);
    r.rss_kb = Number(argv[5]);
    std::string json = ReadAll(std::cin);
    // The last line that looks like a result (loadgen prints exactly one).
    std::string line, last;
    std::istringstream in(json);
    while (std::getline(in, line))
      if (!line.empty() && line[0] == '{') last = line;
    if (!RecordFromLoadgen(last, argv[6], &r, &error)) return Fail(error);
    const double commands = JsonNumber(last, "commands").value_or(0);
    r.server_us_op = per_op(server_cpu, commands);
    r.client_us_op = per_op(client_cpu, commands);
    std::printf("%s\n", FormatRecord(r).c_str());
    return 0;
  }
  if (cmd == "rb" && argc >= 6) {
    std::vector<RbResult> results;
    if (!ParseRedisBenchmarkCsv(ReadAll(std::cin), &results, &error)) return Fail(error);
    for (int i = 5; i < argc; ++i) {
      std::string map = argv[i];
      auto eq = map.rfind('=');
      if (eq == std::string::npos) return Usage();
      const std::string test = map.substr(0, eq);
      bool found = false;
      for (const auto& rb : results) {
        if (rb.test != test) continue;
        Record r;
        r.workload = map.substr(eq + 1);
        r.side = argv[2];
        r.round = std::atoi(argv[3]);
        r.rss_kb = Number(argv[4]);
        r.value = rb.rps;
        r.unit = "ops/s";
        r.keys_per_s = std::nan("");
        r.p50_ms = rb.p50_ms;
        r.p99_ms = rb.p99_ms;
        r.server_us_op = per_op(server_cpu, requests);
        r.client_us_op = per_op(client_cpu, requests);
        std::printf("%s\n", FormatRecord(r).c_str());
        found = true;
      }
      if (!found) return Fail("no test \"" + test + "\" in redis-benchmark output");
    }
    return 0;
  }
  if (cmd == "iperf" && argc == 5) {
    double gbps;
    if (!ParseIperfGbps(ReadAll(std::cin), &gbps, &error)) return Fail(error);
    Record r;
    r.workload = argv[2];
    r.side = argv[3];
    r.round = std::atoi(argv[4]);
    r.value = gbps;
    r.unit = "Gbit/s";
    r.keys_per_s = r.p50_ms = r.p99_ms = r.rss_kb = std::nan("");
    std::printf("%s\n", FormatRecord(r).c_str());
    return 0;
  }
  if (cmd == "value" && argc == 8) {
    Record r;
    r.workload = argv[2];
    r.side = argv[3];
    r.round = std::atoi(argv[4]);
    r.value = Number(argv[5]);
    r.unit = argv[6];
    r.rss_kb = Number(argv[7]);
    r.keys_per_s = r.p50_ms = r.p99_ms = std::nan("");
    std::printf("%s\n", FormatRecord(r).c_str());
    return 0;
  }
  if (cmd == "table" && argc == 3) {
    std::ifstream in(argv[2]);
    if (!in) return Fail(std::string("cannot read ") + argv[2]);
    ResultsFile f;
    if (!ParseResultsFile(ReadAll(in), &f, &error)) return Fail(error);
    std::fputs(FormatMarkdown(BuildTable(f)).c_str(), stdout);
    return 0;
  }
  return Usage();
}
