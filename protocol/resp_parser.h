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
#include <utility>
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
  //   arguments, which point into `input` (multibulk; valid while the caller
  //   keeps those bytes) or into the parser (inline; valid until the next
  //   call to Parse or Reset). An empty line or `*0`/`*-1` yields kOk with
  //   no arguments; callers skip it.
  // kNeedMore: *consumed = 0, `args` unspecified.
  // kError: *consumed = 0, error() holds Redis's text, e.g.
  //   "ERR Protocol error: invalid bulk length". The parser must be Reset (or
  //   discarded) before reuse; until then every call returns kError again.
  //
  // Errors (all prefixed "ERR Protocol error: "), as Redis 7 networking.c:
  //   "invalid multibulk length"   *<count> not a strict integer, > max_args,
  //                                or its line not ended by CRLF
  //   "too big mbulk count string" no CR within max_inline_len of '*'
  //   "expected '$', got 'X'"      X = the byte (CR/LF shown as a space);
  //                                reported as soon as that byte arrives
  //   "too big bulk count string"  no CR within max_inline_len of '$'
  //   "invalid bulk length"        $<len> negative, not a strict integer,
  //                                > max_bulk_len, or not ended by CRLF
  //   "expected CRLF after bulk"   body not followed by CRLF (Redis skips
  //                                two bytes unchecked; we reject)
  //   "too big inline request"     no LF within max_inline_len+1 bytes
  //   "unbalanced quotes in request"  inline quoting as sdssplitargs rejects
  //   "parser input shrank between calls"  the caller broke the contract above
  // Integers are strict as Redis string2ll: optional '-', no '+', spaces or
  // leading zeros, no overflow. Inline lines treat NUL as an ordinary byte
  // (Redis's C-string split would end the line there).
  [[nodiscard]] ParseResult Parse(std::string_view input, size_t* consumed,
                                  std::vector<std::string_view>* args);

  // Error text of the last kError, without the leading '-' and with "ERR ".
  const std::string& error() const { return error_; }

  // After kNeedMore: the total size the current request will have at least
  // (bytes known to be coming, e.g. a bulk header just read), so the caller
  // can grow its buffer once for a large value. 0 if unknown.
  size_t min_request_size() const { return min_request_size_; }

  // Forgets any partial request.
  void Reset();

 private:
  enum class State : uint8_t { kStart, kArgCount, kBulkHeader, kBulkBody, kInline, kError };
  enum class Line : uint8_t { kFound, kNeedMore, kTooLong };

  ParseResult ParseMultibulk(std::string_view in, size_t* consumed,
                             std::vector<std::string_view>* args);
  ParseResult ParseInline(std::string_view in, size_t* consumed,
                          std::vector<std::string_view>* args);
  // Finds `delim` in the line that starts at pos_, resuming where the last
  // call stopped (scan_), so a line fed byte by byte is searched once.
  Line FindLineEnd(std::string_view in, char delim, size_t* at);
  // Splits one inline line like Redis sdssplitargs into inline_buf_/spans_.
  // Returns false on unbalanced quotes.
  bool SplitInline(std::string_view line);
  // Hands the parsed request to the caller and readies the next one.
  ParseResult Finish(const char* base, size_t end, size_t* consumed,
                     std::vector<std::string_view>* args);
  ParseResult Fail(std::string msg);

  ParserLimits limits_;
  State state_ = State::kStart;
  // Offsets, never pointers: the caller's buffer may move between calls.
  size_t pos_ = 0;          // start of the next header line or bulk body
  size_t scan_ = 0;         // bytes after pos_ already searched for the delimiter
  uint64_t args_left_ = 0;  // bulks still to read in this multibulk
  uint64_t bulk_len_ = 0;   // length of the bulk being read
  size_t seen_ = 0;         // input size at the last call (contract check)
  // (offset, len) of parsed args, into the input (multibulk) or inline_buf_.
  std::vector<std::pair<size_t, size_t>> spans_;
  std::string inline_buf_;  // unquoted inline arguments, back to back
  size_t min_request_size_ = 0;
  std::string error_;
};

}  // namespace kvpool::protocol
