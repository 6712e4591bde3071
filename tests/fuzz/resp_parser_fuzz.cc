// libFuzzer target for protocol::RequestParser. Build and run with
// tests/fuzz/build_and_run.sh.
//
// Each input is a byte stream from one connection. It is parsed whole, in
// chunks whose sizes derive from a hash of the data, and (when short) one
// byte at a time, under tight and default limits. Every Parse call sees a
// fresh exact-size heap copy of the pending bytes, so ASan catches reads past
// the input and pointers kept across calls. Checked:
//   - consumed is 0 unless kOk, and then 0 < consumed <= input size;
//   - multibulk args lie inside the consumed bytes and respect the limits;
//     inline args are readable (parser storage) and no longer than the line;
//   - after kError the parser makes no progress, even given more bytes;
//   - min_request_size() is 0 or beyond the bytes already given;
//   - every request re-encoded as multibulk parses back to the same args;
//   - the outcome does not depend on how the stream was split.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/resp_parser.h"

namespace {

using kvpool::protocol::ParseResult;
using kvpool::protocol::ParserLimits;
using kvpool::protocol::RequestParser;

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "resp_parser_fuzz: invariant violated: %s\n", what);
  std::abort();
}

void Check(bool ok, const char* what) {
  if (!ok) Die(what);
}

struct Outcome {
  std::vector<std::vector<std::string>> requests;
  std::string error;
  size_t leftover = 0;
  bool operator==(const Outcome&) const = default;
};

// Multibulk encoding of args, parsed back with a fresh parser.
void CheckRoundTrip(const std::vector<std::string_view>& args) {
  std::string wire = "*" + std::to_string(args.size()) + "\r\n";
  for (std::string_view a : args) {
    wire += "$" + std::to_string(a.size()) + "\r\n";
    wire.append(a);
    wire += "\r\n";
  }
  ParserLimits unlimited;
  unlimited.max_args = UINT64_MAX;
  unlimited.max_bulk_len = UINT64_MAX >> 1;
  RequestParser p(unlimited);
  size_t consumed = 0;
  std::vector<std::string_view> again;
  Check(p.Parse(wire, &consumed, &again) == ParseResult::kOk, "round trip parses");
  Check(consumed == wire.size(), "round trip consumes all");
  // "*0" parses as an empty request too, so this holds for no args.
  Check(again.size() == args.size(), "round trip arg count");
  for (size_t i = 0; i < args.size(); ++i) Check(again[i] == args[i], "round trip arg bytes");
}

void CheckOk(std::string_view in, size_t consumed, const std::vector<std::string_view>& args,
             const ParserLimits& limits) {
  Check(consumed > 0 && consumed <= in.size(), "0 < consumed <= input");
  if (in[0] == '*') {
    Check(args.size() <= limits.max_args, "args <= max_args");
    for (std::string_view a : args) {
      Check(a.data() >= in.data() && a.data() + a.size() <= in.data() + consumed,
            "multibulk arg inside consumed input");
      Check(a.size() <= limits.max_bulk_len, "arg <= max_bulk_len");
    }
  } else {
    Check(consumed <= limits.max_inline_len + 1, "inline line <= max_inline_len + 1");
    size_t total = 0;
    volatile unsigned char sink = 0;
    for (std::string_view a : args) {
      total += a.size();
      for (char c : a) sink = sink ^ static_cast<unsigned char>(c);  // ASan checks the storage
    }
    // Decoding never grows a token, and tokens are separated by a byte.
    Check(total + args.size() <= consumed, "inline args fit in the line");
  }
  CheckRoundTrip(args);
}

// Feeds `data` in the given chunk sizes (0 = the rest), as a server would.
Outcome Run(std::string_view data, const ParserLimits& limits, const std::vector<size_t>& chunks) {
  RequestParser parser(limits);
  Outcome out;
  std::string pending;
  std::vector<std::string_view> args;
  size_t fed = 0;
  for (size_t i = 0; fed < data.size(); ++i) {
    size_t n = i < chunks.size() && chunks[i] != 0 ? chunks[i] : data.size() - fed;
    if (n > data.size() - fed) n = data.size() - fed;
    pending.append(data.substr(fed, n));
    fed += n;
    for (;;) {
      std::unique_ptr<char[]> buf(new char[pending.size()]);  // exact: ASan sees overreads
      if (!pending.empty()) std::memcpy(buf.get(), pending.data(), pending.size());
      const std::string_view in(buf.get(), pending.size());
      size_t consumed = 777;
      const ParseResult r = parser.Parse(in, &consumed, &args);
      if (r == ParseResult::kError) {
        Check(consumed == 0, "consumed == 0 on kError");
        const std::string& e = parser.error();
        Check(e.rfind("ERR Protocol error: ", 0) == 0, "error has Redis prefix");
        Check(e.find_first_of("\r\n") == std::string::npos, "error has no CR/LF");
        // No progress after an error, whatever arrives next.
        std::string more = pending + "*1\r\n$4\r\nPING\r\n";
        Check(parser.Parse(more, &consumed, &args) == ParseResult::kError && consumed == 0,
              "no progress after kError");
        out.error = e;
        return out;
      }
      if (r == ParseResult::kNeedMore) {
        Check(consumed == 0, "consumed == 0 on kNeedMore");
        Check(parser.min_request_size() == 0 || parser.min_request_size() > in.size(),
              "min_request_size beyond the input");
        break;
      }
      CheckOk(in, consumed, args, limits);
      out.requests.emplace_back(args.begin(), args.end());
      pending.erase(0, consumed);
    }
  }
  out.leftover = pending.size();
  return out;
}

uint64_t Hash(const uint8_t* data, size_t size) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 1099511628211ull;
  return h;
}

// Chunk sizes from the data's hash: mostly tiny, sometimes larger, so splits
// land inside numbers, CRLFs, quotes and bulk bodies alike.
std::vector<size_t> SplitPlan(uint64_t seed, size_t size) {
  std::vector<size_t> plan;
  uint64_t x = seed | 1;
  for (size_t total = 0; total < size;) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const size_t n = (x & 3) == 0 ? 1 + (x >> 8) % 64 : 1 + (x >> 8) % 5;
    plan.push_back(n);
    total += n;
  }
  return plan;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view stream(reinterpret_cast<const char*>(data), size);
  ParserLimits tight;
  tight.max_bulk_len = 16;
  tight.max_args = 8;
  tight.max_inline_len = 32;
  const std::vector<size_t> plan = SplitPlan(Hash(data, size), size);
  const std::vector<size_t> bytewise(size, 1);
  for (const ParserLimits& limits : {tight, ParserLimits{}}) {
    const Outcome whole = Run(stream, limits, {});
    Check(Run(stream, limits, plan) == whole, "hashed split gives the same outcome");
    if (size <= 1024) Check(Run(stream, limits, bytewise) == whole, "byte split, same outcome");
  }
  return 0;
}
