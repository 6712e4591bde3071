#include "bench/loadgen_options.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace kvbench {

namespace {

struct CommandEntry {
  const char* name;
  Command cmd;
};
constexpr CommandEntry kCommands[] = {
    {"get", Command::kGet},         {"set", Command::kSet},       {"mget", Command::kMget},
    {"mset", Command::kMset},       {"mexists", Command::kMexists}, {"exists", Command::kExists},
    {"ping", Command::kPing},
};

bool ToInt64(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || end != s.c_str() + s.size()) return false;
  *out = v;
  return true;
}

bool ToDouble(const std::string& s, double* out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (errno != 0 || end != s.c_str() + s.size() || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

// "4k", "1m", "4kb", "1mib" -> bytes; plain numbers are bytes.
bool ToSize(const std::string& s, int64_t* out) {
  size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  int64_t n;
  if (!ToInt64(s.substr(0, i), &n)) return false;
  std::string unit;
  for (char c : s.substr(i)) unit += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  int64_t mult = 1;
  if (unit.empty() || unit == "b") mult = 1;
  else if (unit == "k" || unit == "kb" || unit == "kib") mult = 1024;
  else if (unit == "m" || unit == "mb" || unit == "mib") mult = 1024 * 1024;
  else return false;
  *out = n * mult;
  return true;
}

}  // namespace

bool ParseCommand(const std::string& name, Command* out) {
  std::string lower;
  for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& e : kCommands)
    if (lower == e.name) {
      *out = e.cmd;
      return true;
    }
  return false;
}

const char* CommandName(Command c) {
  for (const auto& e : kCommands)
    if (e.cmd == c) return e.name;
  return "?";
}

bool IsMultiKey(Command c) {
  return c == Command::kMget || c == Command::kMset || c == Command::kMexists ||
         c == Command::kExists;
}

bool IsWrite(Command c) { return c == Command::kSet || c == Command::kMset; }

std::string Usage() {
  return "usage: loadgen [options]\n"
         "  --host H            server address (127.0.0.1)\n"
         "  --port P            server port (6379)\n"
         "  --clients N         connections (50)\n"
         "  --threads N         event-loop threads of the generator (1)\n"
         "  --pipeline N        commands in flight per connection (1)\n"
         "  --command C         get|set|mget|mset|mexists|exists|ping (get)\n"
         "  --keys-per-batch N  keys per MGET/MSET/MEXISTS/EXISTS (1)\n"
         "  --value-size S      value bytes, e.g. 100, 4k, 1m (100)\n"
         "  --key-count N       keys 0..N-1 form the present set (100000)\n"
         "  --hit-ratio F       fraction of keys read that are present, 0..1 (1);\n"
         "                      in a batch exactly round(F*keys) keys are present\n"
         "  --duration S        seconds to run (5); 0 = no run (with --load: load only)\n"
         "  --requests N        run N commands instead of a duration\n"
         "  --load              first write keys 0..N-1 with pipelined MSET\n"
         "  --load-pipeline N   MSETs in flight per connection while loading (8)\n"
         "  --load-batch-bytes S  value bytes per loading MSET (256k)\n"
         "  --seed N            values and key choice derive from it (1)\n"
         "  --verify            check every reply (values, MEXISTS arrays, +OK)\n"
         "  --key-prefix P      key names are P%012d (kvb:)\n"
         "  --keys-owned-by A   only keys that POOL KEYNODE says node A (host:port) owns\n"
         "  --timeout S         seconds to wait for a reply before failing (30)\n"
         "  --quiet             no human-readable summary on stderr\n"
         "Prints one JSON line with the results on stdout; exit status 1 on\n"
         "errors (error replies, verification failures, lost connections).\n";
}

bool ParseOptions(const std::vector<std::string>& args, Options* out, std::string* error) {
  Options o;
  error->clear();
  bool have_duration = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string name = args[i];
    std::string value;
    bool has_inline_value = false;
    if (name == "-h" || name == "--help") return false;
    if (name.rfind("--", 0) != 0) {
      *error = "unexpected argument '" + name + "'";
      return false;
    }
    name = name.substr(2);
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_inline_value = true;
    }
    // Flags.
    if (name == "load" || name == "verify" || name == "quiet") {
      if (has_inline_value) {
        *error = "--" + name + " takes no value";
        return false;
      }
      (name == "load" ? o.load : name == "verify" ? o.verify : o.quiet) = true;
      continue;
    }
    if (!has_inline_value) {
      if (i + 1 >= args.size()) {
        *error = "--" + name + " needs a value";
        return false;
      }
      value = args[++i];
    }
    auto bad = [&](const std::string& why) {
      *error = "--" + name + " " + value + ": " + why;
      return false;
    };
    int64_t n = 0;
    double d = 0;
    if (name == "host") {
      if (value.empty()) return bad("empty");
      o.host = value;
    } else if (name == "port") {
      if (!ToInt64(value, &n) || n < 1 || n > 65535) return bad("expected 1..65535");
      o.port = static_cast<int>(n);
    } else if (name == "clients") {
      if (!ToInt64(value, &n) || n < 1 || n > 100000) return bad("expected 1..100000");
      o.clients = static_cast<int>(n);
    } else if (name == "threads") {
      if (!ToInt64(value, &n) || n < 1 || n > 1024) return bad("expected 1..1024");
      o.threads = static_cast<int>(n);
    } else if (name == "pipeline") {
      if (!ToInt64(value, &n) || n < 1 || n > 100000) return bad("expected 1..100000");
      o.pipeline = static_cast<int>(n);
    } else if (name == "command") {
      if (!ParseCommand(value, &o.command))
        return bad("expected get|set|mget|mset|mexists|exists|ping");
    } else if (name == "keys-per-batch") {
      if (!ToInt64(value, &n) || n < 1 || n > 1000000) return bad("expected 1..1000000");
      o.keys_per_batch = static_cast<int>(n);
    } else if (name == "value-size") {
      if (!ToSize(value, &n) || n < 1 || n > (512LL << 20)) return bad("expected 1..512m bytes");
      o.value_size = static_cast<int>(n);
    } else if (name == "key-count") {
      if (!ToInt64(value, &n) || n < 1 || n > 1000000000000LL) return bad("expected >= 1");
      o.key_count = n;
    } else if (name == "hit-ratio") {
      if (!ToDouble(value, &d) || d < 0 || d > 1) return bad("expected 0..1");
      o.hit_ratio = d;
    } else if (name == "duration") {
      if (!ToDouble(value, &d) || d < 0 || d > 1e6) return bad("expected seconds >= 0");
      o.duration = d;
      have_duration = true;
    } else if (name == "requests") {
      if (!ToInt64(value, &n) || n < 1) return bad("expected >= 1");
      o.requests = n;
    } else if (name == "load-pipeline") {
      if (!ToInt64(value, &n) || n < 1 || n > 100000) return bad("expected 1..100000");
      o.load_pipeline = static_cast<int>(n);
    } else if (name == "load-batch-bytes") {
      if (!ToSize(value, &n) || n < 1) return bad("expected bytes >= 1");
      o.load_batch_bytes = n;
    } else if (name == "seed") {
      if (!ToInt64(value, &n) || n < 0) return bad("expected >= 0");
      o.seed = static_cast<uint64_t>(n);
    } else if (name == "key-prefix") {
      o.key_prefix = value;
    } else if (name == "keys-owned-by") {
      auto colon = value.rfind(':');
      if (colon == std::string::npos || colon == 0 || !ToInt64(value.substr(colon + 1), &n) ||
          n < 1 || n > 65535)
        return bad("expected host:port");
      o.keys_owned_by = value;
    } else if (name == "timeout") {
      if (!ToDouble(value, &d) || d <= 0) return bad("expected seconds > 0");
      o.timeout = d;
    } else {
      *error = "unknown option --" + name;
      return false;
    }
  }
  if (o.requests > 0 && have_duration) {
    *error = "give --duration or --requests, not both";
    return false;
  }
  if (o.requests > 0) o.duration = 0;
  if (!IsMultiKey(o.command) && o.keys_per_batch != 1) {
    *error = std::string("--keys-per-batch must be 1 for ") + CommandName(o.command);
    return false;
  }
  if (o.threads > o.clients) {
    *error = "--threads must not exceed --clients";
    return false;
  }
  if (!o.load && o.duration == 0 && o.requests == 0) {
    *error = "nothing to do: --duration 0 without --load or --requests";
    return false;
  }
  *out = o;
  return true;
}

bool ParseOptions(int argc, const char* const* argv, Options* out, std::string* error) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return ParseOptions(args, out, error);
}

}  // namespace kvbench
