#include "bench/loadgen_result.h"

#include <cstdio>

namespace kvbench {

namespace {

std::string Num(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

std::string Ms(uint64_t ns) { return Num(static_cast<double>(ns) / 1e6, 4); }

}  // namespace

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (u < 0x20 || u >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatJson(const Result& r) {
  const Options& o = r.options;
  const Histogram& h = r.latency;
  std::string s = "{";
  auto field = [&](const char* name, const std::string& value, bool quote = false) {
    if (s.size() > 1) s += ",";
    s += "\"";
    s += name;
    s += "\":";
    if (quote) s += "\"" + JsonEscape(value) + "\"";
    else s += value;
  };
  field("command", CommandName(o.command), true);
  field("host", o.host, true);
  field("port", std::to_string(o.port));
  field("clients", std::to_string(o.clients));
  field("threads", std::to_string(o.threads));
  field("pipeline", std::to_string(o.pipeline));
  field("keys_per_batch", std::to_string(o.keys_per_batch));
  field("value_size", std::to_string(o.value_size));
  field("key_count", std::to_string(o.key_count));
  field("hit_ratio", Num(o.hit_ratio, 4));
  field("seed", std::to_string(o.seed));
  field("verify", o.verify ? "true" : "false");
  field("load_keys", std::to_string(r.load_keys));
  field("load_seconds", Num(r.load_seconds, 3));
  field("seconds", Num(r.seconds, 3));
  field("commands", std::to_string(r.commands));
  field("keys", std::to_string(r.keys));
  field("ops_per_sec", Num(r.ops_per_sec(), 1));
  field("keys_per_sec", Num(r.keys_per_sec(), 1));
  field("value_bytes", std::to_string(r.value_bytes));
  field("gbit_per_sec", Num(r.gbit_per_sec(), 3));
  field("hits", std::to_string(r.hits));
  field("misses", std::to_string(r.misses));
  field("p50_ms", Ms(h.Quantile(0.50)));
  field("p99_ms", Ms(h.Quantile(0.99)));
  field("p999_ms", Ms(h.Quantile(0.999)));
  field("max_ms", Ms(h.max()));
  field("mean_ms", Num(h.mean() / 1e6, 4));
  field("error_replies", std::to_string(r.error_replies));
  field("verify_errors", std::to_string(r.verify_errors));
  field("io_errors", std::to_string(r.io_errors));
  field("errors", std::to_string(r.error_replies + r.verify_errors + r.io_errors));
  field("first_error", r.first_error, true);
  s += "}";
  return s;
}

std::string FormatHuman(const Result& r) {
  const Options& o = r.options;
  const Histogram& h = r.latency;
  char buf[1024];
  std::string s;
  if (r.load_keys > 0) {
    std::snprintf(buf, sizeof(buf), "loaded %lld keys x %d B in %.2f s (%.0f keys/s)\n",
                  static_cast<long long>(r.load_keys), o.value_size, r.load_seconds,
                  r.load_seconds > 0 ? r.load_keys / r.load_seconds : 0.0);
    s += buf;
  }
  if (r.commands > 0 || r.seconds > 0) {
    std::snprintf(buf, sizeof(buf),
                  "%s x%d keys, %d B: %.0f ops/s, %.0f keys/s, %.3f Gbit/s of values over "
                  "%.2f s (%llu commands)\n"
                  "latency ms: p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n",
                  CommandName(o.command), o.keys_per_batch, o.value_size, r.ops_per_sec(),
                  r.keys_per_sec(), r.gbit_per_sec(), r.seconds,
                  static_cast<unsigned long long>(r.commands), h.Quantile(0.5) / 1e6,
                  h.Quantile(0.99) / 1e6, h.Quantile(0.999) / 1e6, h.max() / 1e6);
    s += buf;
  }
  if (!r.ok()) {
    std::snprintf(buf, sizeof(buf), "ERRORS: %llu error replies, %llu wrong replies, %llu I/O\n",
                  static_cast<unsigned long long>(r.error_replies),
                  static_cast<unsigned long long>(r.verify_errors),
                  static_cast<unsigned long long>(r.io_errors));
    s += buf;
    s += "first: " + r.first_error + "\n";
  } else if (o.verify) {
    s += "verify: every reply checked, all correct\n";
  }
  return s;
}

}  // namespace kvbench
