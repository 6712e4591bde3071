// Incremental, resumable, bounded parser for Redis requests: RESP multibulk
// (`*N\r\n$L\r\n...`) and inline commands (`SET k v\r\n`, as telnet and
// redis-cli paste send them). No I/O, no allocation sized by an unchecked
// length: every count and length read off the wire is checked against
// ParserLimits before it is used.
//
// Threading: one parser per connection; not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kvpool::protocol {

struct ParserLimits {
  // Longest bulk argument accepted ($<len>). Redis: proto-max-bulk-len.
  uint64_t max_bulk_len = 512ull * 1024 * 1024;
  // Most arguments accepted in one multibulk request (*<count>).
  uint64_t max_args = 1024 * 1024;
  // Longest inline command line, and longest `*`/`$` header line.
  uint64_t max_inline_len = 64 * 1024;
};

enum class ParseResult {
  kOk,        // one whole request parsed; see *consumed and args
  kNeedMore,  // input ends inside a request; call again with more bytes
  kError,     // malformed or over a limit; see error(). The connection must be
              // closed after replying with "-" + error() (as Redis does).
};

class RequestParser {
 public:
  explicit RequestParser(ParserLimits limits = {}) : limits_(limits) {}

  // Limits may be changed between requests (e.g. tighter before AUTH).
  void set_limits(const ParserLimits& limits) { limits_ = limits; }
  const ParserLimits& limits() const { return limits_; }

  // Parses one request from `input`.
  //
  // `input` must begin at the first byte of the request not yet returned and
  // hold every byte received since; a call after kNeedMore passes the same
  // prefix plus new bytes (the buffer may have moved). The parser resumes
  // where it stopped, so feeding a request one byte at a time is linear.
  //
  // kOk: *consumed = bytes of this request; `args` is replaced by its
  //   arguments, which point into `input` (multibulk) or into the parser
  //   (inline) and stay valid until the next call to Parse or Reset. An empty
  //   line or `*0`/`*-1` yields kOk with no arguments; callers skip it.
  // kNeedMore: *consumed = 0, `args` unspecified.
  // kError: *consumed = 0, error() holds Redis's text, e.g.
  //   "Protocol error: invalid bulk length". The parser must be Reset (or
  //   discarded) before reuse.
  ParseResult Parse(std::string_view input, size_t* consumed, std::vector<std::string_view>* args);

  // Error text of the last kError, without the leading '-' and with "ERR ".
  const std::string& error() const { return error_; }

  // After kNeedMore: the total size the current request will have at least
  // (bytes known to be coming, e.g. a bulk header just read), so the caller
  // can grow its buffer once for a large value. 0 if unknown.
  size_t min_request_size() const { return min_request_size_; }

  // Forgets any partial request.
  void Reset();

 private:
  enum class State { kStart, kArgCount, kBulkHeader, kBulkBody, kInline };

  ParseResult ParseMultibulk(std::string_view in, size_t* consumed, std::vector<std::string_view>* args);
  ParseResult ParseInline(std::string_view in, size_t* consumed, std::vector<std::string_view>* args);
  ParseResult Fail(const char* msg);

  ParserLimits limits_;
  State state_ = State::kStart;
  size_t pos_ = 0;          // resume offset inside the current request
  uint64_t argc_ = 0;       // announced argument count
  uint64_t bulk_len_ = 0;   // length of the bulk being read
  std::vector<std::pair<size_t, size_t>> spans_;  // (offset, len) of parsed args
  std::vector<std::string> inline_args_;          // unquoted inline arguments
  size_t min_request_size_ = 0;
  std::string error_;
};

}  // namespace kvpool::protocol
