#include "bench/report.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace kvbench {

namespace {

const double kNaN = std::nan("");

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

bool ToNum(const std::string& s, double* out) {
  if (s == "-" || s == "nan") {
    *out = kNaN;
    return true;
  }
  if (s.empty()) return false;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return false;
  *out = v;
  return true;
}

std::string Num(double v) {
  if (std::isnan(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

std::string Fixed(double v, int d) {
  if (std::isnan(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", d, v);
  return buf;
}

std::string StripCr(std::string s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == '\n')) s.pop_back();
  return s;
}

// Splits one CSV line with "quoted" fields.
std::vector<std::string> CsvFields(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cur += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cur += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

}  // namespace

std::string FormatRecord(const Record& r) {
  return r.workload + "\t" + r.side + "\t" + std::to_string(r.round) + "\t" + Num(r.value) + "\t" +
         r.unit + "\t" + Num(r.keys_per_s) + "\t" + Num(r.p50_ms) + "\t" + Num(r.p99_ms) + "\t" +
         Num(r.rss_kb) + "\t" + Num(r.server_us_op) + "\t" + Num(r.client_us_op);
}

bool ParseRecord(const std::string& line, Record* out) {
  auto f = Split(StripCr(line), '\t');
  if ((f.size() != 9 && f.size() != 11) || f[0].empty() || f[1].empty()) return false;
  Record r;
  r.workload = f[0];
  r.side = f[1];
  double round;
  if (!ToNum(f[2], &round) || std::isnan(round)) return false;
  r.round = static_cast<int>(round);
  r.unit = f[4];
  if (!ToNum(f[3], &r.value) || !ToNum(f[5], &r.keys_per_s) || !ToNum(f[6], &r.p50_ms) ||
      !ToNum(f[7], &r.p99_ms) || !ToNum(f[8], &r.rss_kb))
    return false;
  if (f.size() == 11 && (!ToNum(f[9], &r.server_us_op) || !ToNum(f[10], &r.client_us_op)))
    return false;
  *out = r;
  return true;
}

std::optional<double> JsonNumber(const std::string& json, const std::string& key,
                                 const std::string& anchor) {
  size_t from = 0;
  if (!anchor.empty()) {
    from = json.find(anchor);
    if (from == std::string::npos) return std::nullopt;
    from += anchor.size();
  }
  const std::string quoted = "\"" + key + "\"";
  for (size_t at = json.find(quoted, from); at != std::string::npos;
       at = json.find(quoted, at + 1)) {
    size_t p = at + quoted.size();
    while (p < json.size() && std::isspace(static_cast<unsigned char>(json[p]))) ++p;
    if (p >= json.size() || json[p] != ':') continue;
    ++p;
    while (p < json.size() && std::isspace(static_cast<unsigned char>(json[p]))) ++p;
    const char* start = json.c_str() + p;
    char* end = nullptr;
    double v = std::strtod(start, &end);
    if (end == start) return std::nullopt;  // not a number (string, object...)
    return v;
  }
  return std::nullopt;
}

bool RecordFromLoadgen(const std::string& json, const std::string& metric, Record* out,
                       std::string* error) {
  auto ops = JsonNumber(json, "ops_per_sec");
  auto keys = JsonNumber(json, "keys_per_sec");
  auto gbit = JsonNumber(json, "gbit_per_sec");
  auto p50 = JsonNumber(json, "p50_ms");
  auto p99 = JsonNumber(json, "p99_ms");
  auto errors = JsonNumber(json, "errors");
  if (!ops || !keys || !gbit || !p50 || !p99 || !errors) {
    *error = "not a loadgen result line";
    return false;
  }
  if (*errors > 0) {
    *error = "loadgen reported " + Num(*errors) + " errors";
    return false;
  }
  if (metric == "ops") {
    out->value = *ops;
    out->unit = "ops/s";
  } else if (metric == "keys") {
    out->value = *keys;
    out->unit = "keys/s";
  } else if (metric == "gbit") {
    out->value = *gbit;
    out->unit = "Gbit/s";
  } else {
    *error = "metric must be ops, keys or gbit";
    return false;
  }
  out->keys_per_s = *keys;
  out->p50_ms = *p50;
  out->p99_ms = *p99;
  return true;
}

bool ParseRedisBenchmarkCsv(const std::string& csv, std::vector<RbResult>* out,
                            std::string* error) {
  out->clear();
  std::istringstream in(csv);
  std::string line;
  int col_test = -1, col_rps = -1, col_p50 = -1, col_p99 = -1;
  bool header = false;
  while (std::getline(in, line)) {
    line = StripCr(line);
    if (line.empty()) continue;
    auto f = CsvFields(line);
    if (!header) {
      for (size_t i = 0; i < f.size(); ++i) {
        if (f[i] == "test") col_test = static_cast<int>(i);
        if (f[i] == "rps") col_rps = static_cast<int>(i);
        if (f[i] == "p50_latency_ms") col_p50 = static_cast<int>(i);
        if (f[i] == "p99_latency_ms") col_p99 = static_cast<int>(i);
      }
      if (col_test < 0 || col_rps < 0) continue;  // e.g. a warning line before the header
      header = true;
      continue;
    }
    const int need = std::max({col_test, col_rps, col_p50, col_p99});
    if (static_cast<int>(f.size()) <= need) {
      *error = "short line: " + line;
      return false;
    }
    RbResult r;
    r.test = f[static_cast<size_t>(col_test)];
    if (!ToNum(f[static_cast<size_t>(col_rps)], &r.rps)) {
      *error = "bad rps in: " + line;
      return false;
    }
    r.p50_ms = kNaN;
    r.p99_ms = kNaN;
    if (col_p50 >= 0 && !ToNum(f[static_cast<size_t>(col_p50)], &r.p50_ms)) r.p50_ms = kNaN;
    if (col_p99 >= 0 && !ToNum(f[static_cast<size_t>(col_p99)], &r.p99_ms)) r.p99_ms = kNaN;
    out->push_back(r);
  }
  if (!header) {
    *error = "no redis-benchmark CSV header";
    return false;
  }
  if (out->empty()) {
    *error = "no results in redis-benchmark output";
    return false;
  }
  return true;
}

bool ParseIperfGbps(const std::string& json, double* gbps, std::string* error) {
  if (json.find("\"error\"") != std::string::npos) {
    *error = "iperf3 reported an error";
    return false;
  }
  auto bps = JsonNumber(json, "bits_per_second", "\"sum_received\"");
  if (!bps) {
    *error = "no end.sum_received.bits_per_second in iperf3 output";
    return false;
  }
  *gbps = *bps / 1e9;
  return true;
}

double Median(std::vector<double> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return std::isnan(x); }), v.end());
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

bool ParseResultsFile(const std::string& text, ResultsFile* out, std::string* error) {
  ResultsFile f;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    line = StripCr(line);
    if (line.empty()) continue;
    auto bad = [&](const std::string& why) {
      *error = "line " + std::to_string(lineno) + ": " + why;
      return false;
    };
    if (line.rfind("#workload\t", 0) == 0) {
      auto p = Split(line, '\t');
      if (p.size() != 6) return bad("#workload needs 5 fields");
      WorkloadMeta m;
      m.id = p[1];
      m.title = p[2];
      m.op = p[3];
      if (m.op != ">=" && m.op != "<=" && m.op != "-") return bad("op must be >=, <= or -");
      if (!ToNum(p[4], &m.target)) return bad("bad target");
      m.p99_rule = p[5] == "yes";
      f.workloads.push_back(m);
    } else if (line.rfind("#row\t", 0) == 0) {
      auto p = Split(line, '\t');
      if (p.size() != 4) return bad("#row needs 3 fields");
      f.rows.push_back({p[1], p[2], p[3]});
    } else if (line[0] == '#') {
      continue;
    } else {
      Record r;
      if (!ParseRecord(line, &r)) return bad("not a record: " + line);
      f.records.push_back(r);
    }
  }
  *out = std::move(f);
  return true;
}

std::vector<TableRow> BuildTable(const ResultsFile& f) {
  std::vector<TableRow> rows;
  auto collect = [&](const std::string& w, const std::string& side, double Record::*field,
                     int* rounds) {
    std::vector<double> v;
    for (const auto& r : f.records)
      if (r.workload == w && r.side == side) v.push_back(r.*field);
    if (rounds) *rounds = static_cast<int>(v.size());
    return Median(v);
  };
  auto unit_of = [&](const std::string& w) {
    for (const auto& r : f.records)
      if (r.workload == w) return r.unit;
    return std::string();
  };
  for (const auto& spec : f.rows) {
    TableRow t;
    t.workload = spec.workload;
    t.kv_side = spec.kv_side;
    t.base_side = spec.base_side;
    t.unit = unit_of(spec.workload);
    const WorkloadMeta* meta = nullptr;
    for (const auto& m : f.workloads)
      if (m.id == spec.workload) meta = &m;
    t.title = meta ? meta->title : spec.workload;
    t.kv = collect(spec.workload, spec.kv_side, &Record::value, &t.kv_rounds);
    t.base = collect(spec.workload, spec.base_side, &Record::value, &t.base_rounds);
    t.kv_p50 = collect(spec.workload, spec.kv_side, &Record::p50_ms, nullptr);
    t.base_p50 = collect(spec.workload, spec.base_side, &Record::p50_ms, nullptr);
    t.kv_p99 = collect(spec.workload, spec.kv_side, &Record::p99_ms, nullptr);
    t.base_p99 = collect(spec.workload, spec.base_side, &Record::p99_ms, nullptr);
    t.kv_rss = collect(spec.workload, spec.kv_side, &Record::rss_kb, nullptr);
    t.base_rss = collect(spec.workload, spec.base_side, &Record::rss_kb, nullptr);
    t.kv_cpu = collect(spec.workload, spec.kv_side, &Record::server_us_op, nullptr);
    t.base_cpu = collect(spec.workload, spec.base_side, &Record::server_us_op, nullptr);
    t.kv_client_cpu = collect(spec.workload, spec.kv_side, &Record::client_us_op, nullptr);
    t.base_client_cpu = collect(spec.workload, spec.base_side, &Record::client_us_op, nullptr);
    t.ratio = (std::isnan(t.kv) || std::isnan(t.base) || t.base == 0) ? kNaN : t.kv / t.base;
    if (meta == nullptr || meta->op == "-") {
      t.met = "n/a";
    } else {
      t.target = meta->op + " " + Fixed(meta->target, 2) + "x";
      if (std::isnan(t.ratio)) {
        t.met = "no data";
      } else {
        const bool ok = meta->op == ">=" ? t.ratio >= meta->target : t.ratio <= meta->target;
        if (!ok) {
          t.met = "no (" + Fixed(t.ratio / meta->target * 100, 0) + "% of target)";
        } else if (meta->p99_rule && !(t.kv_p99 <= t.base_p99)) {
          t.met = "no: p99 " + Fixed(t.kv_p99, 2) + " > " + Fixed(t.base_p99, 2) + " ms";
        } else {
          t.met = "yes";
        }
      }
    }
    rows.push_back(t);
  }
  return rows;
}

std::string FormatValue(double v, const std::string& unit) {
  if (std::isnan(v)) return "-";
  char buf[64];
  if (unit == "ops/s" || unit == "keys/s") {
    if (v >= 1e6) std::snprintf(buf, sizeof(buf), "%.2fM", v / 1e6);
    else if (v >= 1e3) std::snprintf(buf, sizeof(buf), "%.1fk", v / 1e3);
    else std::snprintf(buf, sizeof(buf), "%.0f", v);
  } else {
    std::snprintf(buf, sizeof(buf), "%.2f", v);
  }
  return buf;
}

std::string FormatMarkdown(const std::vector<TableRow>& rows) {
  std::string s =
      "| # | workload | kvpool side | kvpool | baseline side | baseline | unit | ratio | target | "
      "met | p50 ms kv / base | p99 ms kv / base | RSS MiB kv / base | server CPU us/op kv / base "
      "| client CPU us/op kv / base | rounds |\n"
      "|---|---|---|---:|---|---:|---|---:|---|---|---:|---:|---:|---:|---:|---:|\n";
  auto mib = [](double kb) { return std::isnan(kb) ? std::string("-") : Fixed(kb / 1024, 0); };
  auto ms = [](double v) {
    return std::isnan(v) ? std::string("-") : Fixed(v, v < 1 ? 3 : (v < 10 ? 2 : 1));
  };
  auto us = [](double v) {
    return std::isnan(v) ? std::string("-") : Fixed(v, v < 10 ? 2 : (v < 100 ? 1 : 0));
  };
  for (const auto& t : rows) {
    s += "| " + t.workload + " | " + t.title + " | " + t.kv_side + " | " +
         FormatValue(t.kv, t.unit) + " | " + t.base_side + " | " + FormatValue(t.base, t.unit) +
         " | " + t.unit + " | " + (std::isnan(t.ratio) ? "-" : Fixed(t.ratio, 2)) + " | " +
         (t.target.empty() ? "-" : t.target) + " | " + t.met + " | " + ms(t.kv_p50) + " / " +
         ms(t.base_p50) + " | " + ms(t.kv_p99) + " / " + ms(t.base_p99) + " | " + mib(t.kv_rss) +
         " / " + mib(t.base_rss) + " | " + us(t.kv_cpu) + " / " + us(t.base_cpu) + " | " +
         us(t.kv_client_cpu) + " / " + us(t.base_client_cpu) + " | " +
         std::to_string(t.kv_rounds) + "/" +
         std::to_string(t.base_rounds) + " |\n";
  }
  return s;
}

}  // namespace kvbench
