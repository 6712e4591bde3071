// Result records of bench/run.sh and the table it prints: parsing the
// outputs of loadgen (JSON line), redis-benchmark (--csv) and iperf3 (-J)
// into records, medians over rounds, ratios against the baseline, targets.
//
// A results file holds one record per line, tab separated:
//   workload side round value unit keys_per_s p50_ms p99_ms rss_kb
//   server_us_op client_us_op
// ("-" for a missing number; the last two may be absent), and meta lines:
//   #workload <id> <title> <op> <target> <p99>   op: >= <= or -; p99: yes|no
//   #row <id> <kvpool-side> <baseline-side>
// Other lines starting with '#' are ignored.
#pragma once

#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kvbench {

struct Record {
  std::string workload, side;
  int round = 0;
  double value = 0;
  std::string unit;
  double keys_per_s = 0, p50_ms = 0, p99_ms = 0, rss_kb = 0;  // NaN = missing
  // CPU time (user + system) per command of the server process(es) and of
  // the client (load generator), microseconds; NaN = not measured.
  double server_us_op = std::nan(""), client_us_op = std::nan("");
};

std::string FormatRecord(const Record& r);
bool ParseRecord(const std::string& line, Record* out);

// The number of a top-level or nested "key": <number> in a JSON text; the
// first occurrence after `anchor` when given (e.g. "\"sum_received\"").
std::optional<double> JsonNumber(const std::string& json, const std::string& key,
                                 const std::string& anchor = "");

// loadgen's JSON line -> record. metric: ops (commands/s), keys (keys/s) or
// gbit (Gbit/s of values).
bool RecordFromLoadgen(const std::string& json, const std::string& metric, Record* out,
                       std::string* error);

struct RbResult {
  std::string test;
  double rps = 0, p50_ms = 0, p99_ms = 0;
};
// redis-benchmark --csv output (header line, then one line per test).
bool ParseRedisBenchmarkCsv(const std::string& csv, std::vector<RbResult>* out,
                            std::string* error);

// iperf3 -J (client side): receiver's bits per second, in Gbit/s.
bool ParseIperfGbps(const std::string& json, double* gbps, std::string* error);

// Median of the numbers that are not NaN; NaN if none.
double Median(std::vector<double> v);

struct WorkloadMeta {
  std::string id, title, op;  // op: ">=", "<=", "-"
  double target = 0;
  bool p99_rule = false;      // kvpool's p99 must also be <= the baseline's
};
struct RowSpec {
  std::string workload, kv_side, base_side;
};
struct ResultsFile {
  std::vector<WorkloadMeta> workloads;
  std::vector<RowSpec> rows;
  std::vector<Record> records;
};
bool ParseResultsFile(const std::string& text, ResultsFile* out, std::string* error);

struct TableRow {
  std::string workload, title, kv_side, base_side, unit;
  double kv = 0, base = 0, ratio = 0;  // medians; NaN if missing
  double kv_p50 = 0, base_p50 = 0, kv_p99 = 0, base_p99 = 0, kv_rss = 0, base_rss = 0;
  double kv_cpu = 0, base_cpu = 0, kv_client_cpu = 0, base_client_cpu = 0;  // us/op
  int kv_rounds = 0, base_rounds = 0;
  std::string target;  // e.g. ">= 1.3x", "" if none
  std::string met;     // "yes", "no (0.87x)", "no: p99", "n/a"
};
std::vector<TableRow> BuildTable(const ResultsFile& f);
std::string FormatMarkdown(const std::vector<TableRow>& rows);
// "412.3k", "1.23M", "2.50"
std::string FormatValue(double v, const std::string& unit);

}  // namespace kvbench
