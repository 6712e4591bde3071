// The load generator's results and how they are printed: one JSON line
// (machine-readable) and a short human summary.
#pragma once

#include <cstdint>
#include <string>

#include "bench/histogram.h"
#include "bench/loadgen_options.h"

namespace kvbench {

struct Result {
  Options options;
  // Loading (--load).
  int64_t load_keys = 0;
  double load_seconds = 0;
  // The timed run.
  double seconds = 0;          // first command sent .. last reply received
  uint64_t commands = 0;       // replies received
  uint64_t keys = 0;           // keys in those commands
  uint64_t value_bytes = 0;    // value bytes moved (read hits or written)
  uint64_t error_replies = 0;  // -ERR replies
  uint64_t verify_errors = 0;  // replies --verify found wrong (error replies included)
  uint64_t hits = 0;           // keys found (GET/MGET values, MEXISTS 1s, EXISTS counts)
  uint64_t misses = 0;         // keys not found
  uint64_t io_errors = 0;      // lost connections, timeouts, protocol errors
  std::string first_error;     // first problem seen, for the message
  Histogram latency;           // per command, ns

  double ops_per_sec() const { return seconds > 0 ? commands / seconds : 0; }
  double keys_per_sec() const { return seconds > 0 ? keys / seconds : 0; }
  double gbit_per_sec() const { return seconds > 0 ? value_bytes * 8.0 / seconds / 1e9 : 0; }
  bool ok() const { return error_replies == 0 && verify_errors == 0 && io_errors == 0; }
};

std::string JsonEscape(const std::string& s);
// One line, no trailing newline. Latencies in milliseconds.
std::string FormatJson(const Result& r);
std::string FormatHuman(const Result& r);

}  // namespace kvbench
