#include "protocol/resp_parser.h"

#include <algorithm>
#include <cstring>

namespace kvpool::protocol {
namespace {

// Up-front reservation cap: a client may announce a million arguments and
// send none, so memory follows the bytes that actually arrive.
constexpr uint64_t kMaxReserve = 1024;
// Above this many args, drop the span storage after the request so one huge
// MSET does not pin megabytes on an idle connection.
constexpr size_t kKeepSpans = 4096;

constexpr char kInvalidMbulk[] = "ERR Protocol error: invalid multibulk length";
constexpr char kInvalidBulk[] = "ERR Protocol error: invalid bulk length";

// Strict decimal, exactly what Redis string2ll accepts: optional '-', then
// "0" or a digit 1-9 followed by digits, within int64. No '+', no spaces, no
// leading zeros, no empty string.
bool ParseInt64(const char* p, size_t len, int64_t* out) {
  if (len == 0 || len > 20) return false;
  if (len == 1 && p[0] == '0') {
    *out = 0;
    return true;
  }
  size_t i = 0;
  const bool negative = p[0] == '-';
  if (negative && ++i == len) return false;
  if (p[i] < '1' || p[i] > '9') return false;
  uint64_t v = static_cast<uint64_t>(p[i++] - '0');
  for (; i < len; ++i) {
    const unsigned d = static_cast<unsigned char>(p[i]) - unsigned{'0'};
    if (d > 9) return false;
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  constexpr uint64_t kMaxPositive = static_cast<uint64_t>(INT64_MAX);
  if (negative) {
    if (v > kMaxPositive + 1) return false;
    *out = static_cast<int64_t>(0 - v);  // modular in C++20; -2^63 is exact
  } else {
    if (v > kMaxPositive) return false;
    *out = static_cast<int64_t>(v);
  }
  return true;
}

// C isspace() in the "C" locale, which sdssplitargs uses between tokens.
inline bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

inline int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

void RequestParser::Reset() {
  state_ = State::kStart;
  pos_ = 0;
  scan_ = 0;
  args_left_ = 0;
  bulk_len_ = 0;
  seen_ = 0;
  spans_.clear();
  min_request_size_ = 0;
  error_.clear();
}

ParseResult RequestParser::Parse(std::string_view in, size_t* consumed,
                                 std::vector<std::string_view>* args) {
  *consumed = 0;
  min_request_size_ = 0;
  if (state_ == State::kError) return ParseResult::kError;
  // Offsets below are only valid if the caller kept every byte it gave us.
  if (in.size() < seen_) return Fail("ERR Protocol error: parser input shrank between calls");
  seen_ = in.size();
  if (state_ == State::kStart) {
    if (in.empty()) return ParseResult::kNeedMore;
    state_ = in[0] == '*' ? State::kArgCount : State::kInline;
  }
  if (state_ == State::kInline) return ParseInline(in, consumed, args);
  return ParseMultibulk(in, consumed, args);
}

RequestParser::Line RequestParser::FindLineEnd(std::string_view in, char delim, size_t* at) {
  // A line may hold at most max_inline_len bytes before its delimiter, so
  // only that window is searched: how the input was split cannot change the
  // verdict, and garbage without a delimiter fails after max_inline_len bytes.
  const size_t avail = in.size() - pos_;
  const uint64_t max = limits_.max_inline_len;
  const size_t window = avail <= max ? avail : static_cast<size_t>(max) + 1;
  if (scan_ < window) {
    const void* hit = std::memchr(in.data() + pos_ + scan_, delim, window - scan_);
    if (hit != nullptr) {
      *at = static_cast<size_t>(static_cast<const char*>(hit) - in.data());
      scan_ = *at - pos_;  // found again at once if the LF after it is late
      return Line::kFound;
    }
    scan_ = window;
  }
  return avail > max ? Line::kTooLong : Line::kNeedMore;
}

ParseResult RequestParser::ParseMultibulk(std::string_view in, size_t* consumed,
                                          std::vector<std::string_view>* args) {
  for (;;) {
    switch (state_) {
      case State::kArgCount: {
        size_t cr = 0;
        const Line line = FindLineEnd(in, '\r', &cr);
        if (line == Line::kTooLong) return Fail("ERR Protocol error: too big mbulk count string");
        if (line == Line::kNeedMore || cr + 1 >= in.size()) return ParseResult::kNeedMore;
        int64_t count = 0;
        if (in[cr + 1] != '\n' || !ParseInt64(in.data() + pos_ + 1, cr - pos_ - 1, &count)) {
          return Fail(kInvalidMbulk);
        }
        pos_ = cr + 2;
        scan_ = 0;
        spans_.clear();
        if (count <= 0) return Finish(in.data(), pos_, consumed, args);  // Redis ignores these
        if (static_cast<uint64_t>(count) > limits_.max_args) return Fail(kInvalidMbulk);
        args_left_ = static_cast<uint64_t>(count);
        spans_.reserve(static_cast<size_t>(std::min(args_left_, kMaxReserve)));
        state_ = State::kBulkHeader;
        break;
      }
      case State::kBulkHeader: {
        if (pos_ >= in.size()) return ParseResult::kNeedMore;
        if (in[pos_] != '$') {
          // Redis waits for the whole line first; the verdict cannot change,
          // so fail as soon as the byte is here. CR/LF would break the reply.
          const char got = (in[pos_] == '\r' || in[pos_] == '\n') ? ' ' : in[pos_];
          return Fail(std::string("ERR Protocol error: expected '$', got '") + got + "'");
        }
        size_t cr = 0;
        const Line line = FindLineEnd(in, '\r', &cr);
        if (line == Line::kTooLong) return Fail("ERR Protocol error: too big bulk count string");
        if (line == Line::kNeedMore || cr + 1 >= in.size()) return ParseResult::kNeedMore;
        int64_t len = 0;
        if (in[cr + 1] != '\n' || !ParseInt64(in.data() + pos_ + 1, cr - pos_ - 1, &len) ||
            len < 0 || static_cast<uint64_t>(len) > limits_.max_bulk_len) {
          return Fail(kInvalidBulk);
        }
        bulk_len_ = static_cast<uint64_t>(len);
        pos_ = cr + 2;
        scan_ = 0;
        state_ = State::kBulkBody;
        break;
      }
      case State::kBulkBody: {
        // bulk_len_ <= INT64_MAX and pos_ is an offset into real memory, so
        // this cannot wrap on a 64-bit size_t.
        const size_t end = pos_ + static_cast<size_t>(bulk_len_);
        if (in.size() < end + 2) {
          if (in.size() > end && in[end] != '\r') {
            return Fail("ERR Protocol error: expected CRLF after bulk");
          }
          min_request_size_ = end + 2;  // lets the caller grow its buffer once
          return ParseResult::kNeedMore;
        }
        if (in[end] != '\r' || in[end + 1] != '\n') {
          return Fail("ERR Protocol error: expected CRLF after bulk");
        }
        spans_.emplace_back(pos_, static_cast<size_t>(bulk_len_));
        pos_ = end + 2;
        if (--args_left_ == 0) return Finish(in.data(), pos_, consumed, args);
        state_ = State::kBulkHeader;
        break;
      }
      default:
        return Fail("ERR Protocol error: internal parser state");
    }
  }
}

ParseResult RequestParser::ParseInline(std::string_view in, size_t* consumed,
                                       std::vector<std::string_view>* args) {
  size_t lf = 0;
  const Line line = FindLineEnd(in, '\n', &lf);
  if (line == Line::kTooLong) return Fail("ERR Protocol error: too big inline request");
  if (line == Line::kNeedMore) return ParseResult::kNeedMore;
  size_t len = lf;
  if (len > 0 && in[len - 1] == '\r') --len;
  if (!SplitInline(in.substr(0, len))) {
    return Fail("ERR Protocol error: unbalanced quotes in request");
  }
  return Finish(inline_buf_.data(), lf + 1, consumed, args);
}

// Mirrors Redis sdssplitargs (sds.c) token by token, except that the line
// ends at its length rather than at a NUL byte. Every argument is copied into
// inline_buf_: inline commands come from humans and telnet, not the hot path.
bool RequestParser::SplitInline(std::string_view line) {
  inline_buf_.clear();
  spans_.clear();
  const size_t n = line.size();
  size_t i = 0;
  for (;;) {
    while (i < n && IsSpace(line[i])) ++i;
    if (i == n) return true;
    const size_t start = inline_buf_.size();
    bool in_dq = false;  // inside "double quotes"
    bool in_sq = false;  // inside 'single quotes'
    for (bool done = false; !done;) {
      if (in_dq) {
        if (i == n) return false;  // unterminated
        const char c = line[i];
        if (c == '\\' && i + 3 < n && line[i + 1] == 'x' && HexValue(line[i + 2]) >= 0 &&
            HexValue(line[i + 3]) >= 0) {
          inline_buf_.push_back(
              static_cast<char>(HexValue(line[i + 2]) * 16 + HexValue(line[i + 3])));
          i += 4;
        } else if (c == '\\' && i + 1 < n) {
          char e = line[i + 1];
          switch (e) {
            case 'n':
              e = '\n';
              break;
            case 'r':
              e = '\r';
              break;
            case 't':
              e = '\t';
              break;
            case 'b':
              e = '\b';
              break;
            case 'a':
              e = '\a';
              break;
            default:
              break;  // \\ \" and any other char stand for themselves
          }
          inline_buf_.push_back(e);
          i += 2;
        } else if (c == '"') {
          // A closing quote must be followed by a space or the end.
          if (i + 1 < n && !IsSpace(line[i + 1])) return false;
          ++i;
          done = true;
        } else {
          inline_buf_.push_back(c);
          ++i;
        }
      } else if (in_sq) {
        if (i == n) return false;
        const char c = line[i];
        if (c == '\\' && i + 1 < n && line[i + 1] == '\'') {
          inline_buf_.push_back('\'');
          i += 2;
        } else if (c == '\'') {
          if (i + 1 < n && !IsSpace(line[i + 1])) return false;
          ++i;
          done = true;
        } else {
          inline_buf_.push_back(c);
          ++i;
        }
      } else if (i == n) {
        done = true;
      } else {
        const char c = line[i++];
        switch (c) {
          // sdssplitargs ends an unquoted token only on these (not \v, \f).
          case ' ':
          case '\n':
          case '\r':
          case '\t':
            done = true;
            break;
          case '"':
            in_dq = true;
            break;
          case '\'':
            in_sq = true;
            break;
          default:
            inline_buf_.push_back(c);
            break;
        }
      }
    }
    spans_.emplace_back(start, inline_buf_.size() - start);
  }
}

ParseResult RequestParser::Finish(const char* base, size_t end, size_t* consumed,
                                  std::vector<std::string_view>* args) {
  args->clear();
  args->reserve(spans_.size());
  for (const auto& [off, len] : spans_) args->emplace_back(base + off, len);
  *consumed = end;
  state_ = State::kStart;
  pos_ = 0;
  scan_ = 0;
  args_left_ = 0;
  bulk_len_ = 0;
  seen_ = 0;
  if (spans_.capacity() > kKeepSpans) {
    std::vector<std::pair<size_t, size_t>>().swap(spans_);
  } else {
    spans_.clear();
  }
  return ParseResult::kOk;
}

ParseResult RequestParser::Fail(std::string msg) {
  state_ = State::kError;
  error_ = std::move(msg);
  return ParseResult::kError;
}

}  // namespace kvpool::protocol
