#include "protocol/reply_builder.h"

#include <charconv>
#include <cmath>
#include <cstring>

namespace kvpool::protocol {
namespace {

// Replies up to this size are assembled on the stack and handed to the sink
// in one Write; larger payloads go as header + payload + CRLF so they are not
// copied twice.
constexpr size_t kStackReply = 512;
// "$" + 20 digits + CRLF.
constexpr size_t kMaxHeader = 1 + 20 + 2;
// Longest prefix TypedBlob takes ("txt:" for verbatim strings).
constexpr size_t kMaxBlobPrefix = 4;

constexpr char kDigitPairs[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

// Writes v in decimal so that it ends just before `end`, and returns where
// it starts. Filling backwards needs no digit count; two digits per division.
char* FormatU64(char* end, uint64_t v) {
  char* p = end;
  while (v >= 100) {
    const size_t i = static_cast<size_t>(v % 100) * 2;
    v /= 100;
    *--p = kDigitPairs[i + 1];
    *--p = kDigitPairs[i];
  }
  if (v >= 10) {
    const size_t i = static_cast<size_t>(v) * 2;
    *--p = kDigitPairs[i + 1];
    *--p = kDigitPairs[i];
  } else {
    *--p = static_cast<char>('0' + v);
  }
  return p;
}

// "<type><n>\r\n" ending just before `end`; returns where it starts.
char* FormatHeader(char* end, char type, uint64_t n) {
  end[-2] = '\r';
  end[-1] = '\n';
  char* p = FormatU64(end - 2, n);
  *--p = type;
  return p;
}

// Copies s to p and returns the end. (memcpy from an empty view's null data
// is undefined behaviour, hence the check.)
char* Append(char* p, std::string_view s) {
  if (!s.empty()) std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

}  // namespace

void ReplyBuilder::Header(char type, uint64_t n) {
  char buf[kMaxHeader];
  char* const end = buf + sizeof(buf);
  const char* p = FormatHeader(end, type, n);
  sink_->Write(p, static_cast<size_t>(end - p));
}

// Shared by SimpleString and Error: a line reply whose CR/LF become spaces,
// so a message built from user input can never end the frame early.
void ReplyBuilder::Line(char type, std::string_view s) {
  char buf[kStackReply];
  size_t n = 0;
  buf[n++] = type;
  for (const char c : s) {
    if (n == sizeof(buf)) {
      sink_->Write(buf, n);
      n = 0;
    }
    buf[n++] = (c == '\r' || c == '\n') ? ' ' : c;
  }
  if (n + 2 > sizeof(buf)) {
    sink_->Write(buf, n);
    n = 0;
  }
  buf[n++] = '\r';
  buf[n++] = '\n';
  sink_->Write(buf, n);
}

void ReplyBuilder::SimpleString(std::string_view s) { Line('+', s); }

void ReplyBuilder::Error(std::string_view msg) {
  ++errors_;
  last_error_code_.assign(msg.substr(0, msg.find(' ')));
  Line('-', msg);
}

std::string EncodeError(std::string_view msg) {
  StringSink sink;
  ReplyBuilder(&sink).Error(msg);
  return std::move(sink.out);
}

void ReplyBuilder::Integer(int64_t v) {
  char buf[1 + 20 + 2];
  char* const end = buf + sizeof(buf);
  end[-2] = '\r';
  end[-1] = '\n';
  const uint64_t u = static_cast<uint64_t>(v);
  char* p = FormatU64(end - 2, v < 0 ? 0 - u : u);  // 0 - u is exact for INT64_MIN too
  if (v < 0) *--p = '-';
  *--p = ':';
  sink_->Write(p, static_cast<size_t>(end - p));
}

void ReplyBuilder::TypedBlob(char type, std::string_view prefix, std::string_view s) {
  const size_t total = prefix.size() + s.size();
  if (kMaxHeader + total + 2 <= kStackReply) {
    // The header is filled backwards into the first kMaxHeader bytes so the
    // payload can be copied right behind it.
    char buf[kStackReply];
    char* const start = FormatHeader(buf + kMaxHeader, type, total);
    char* p = Append(Append(buf + kMaxHeader, prefix), s);
    *p++ = '\r';
    *p++ = '\n';
    sink_->Write(start, static_cast<size_t>(p - start));
    return;
  }
  char head[kMaxHeader + kMaxBlobPrefix];
  char* const start = FormatHeader(head + kMaxHeader, type, total);
  // Private callers pass at most kMaxBlobPrefix bytes ("txt:").
  const char* p = Append(head + kMaxHeader, prefix.substr(0, kMaxBlobPrefix));
  sink_->Write(start, static_cast<size_t>(p - start));
  sink_->Write(s.data(), s.size());
  sink_->Write("\r\n", 2);
}

void ReplyBuilder::Bulk(std::string_view s) { TypedBlob('$', {}, s); }

void ReplyBuilder::BulkRef(const char* data, size_t len, void (*release)(void*), void* ctx) {
  Header('$', len);
  sink_->WriteRef(data, len, release, ctx);
  sink_->Write("\r\n", 2);
}

void ReplyBuilder::Null() {
  if (resp_ >= 3) {
    sink_->Write("_\r\n", 3);
  } else {
    sink_->Write("$-1\r\n", 5);
  }
}

void ReplyBuilder::NullArray() {
  if (resp_ >= 3) {
    sink_->Write("_\r\n", 3);
  } else {
    sink_->Write("*-1\r\n", 5);
  }
}

void ReplyBuilder::ArrayHeader(size_t n) { Header('*', n); }

void ReplyBuilder::MapHeader(size_t n) {
  if (resp_ >= 3) {
    Header('%', n);
  } else {
    Header('*', static_cast<uint64_t>(n) * 2);
  }
}

void ReplyBuilder::SetHeader(size_t n) { Header(resp_ >= 3 ? '~' : '*', n); }

void ReplyBuilder::Double(double v) {
  // As Redis 7 addReplyDouble: "%.17g", with inf/-inf spelled out (libc
  // spellings vary) and NaN as "nan" whatever its sign bit.
  char num[32];
  std::string_view text;
  if (std::isnan(v)) {
    text = "nan";
  } else if (std::isinf(v)) {
    text = v > 0 ? "inf" : "-inf";
  } else {
    // Same digits as printf("%.17g") (the standard defines it so), faster.
    const auto res = std::to_chars(num, num + sizeof(num), v, std::chars_format::general, 17);
    text = std::string_view(num, static_cast<size_t>(res.ptr - num));
  }
  const size_t len = text.size();
  if (resp_ < 3) {
    Bulk(text);
    return;
  }
  char buf[1 + sizeof(num) + 2];
  buf[0] = ',';
  Append(buf + 1, text);
  buf[len + 1] = '\r';
  buf[len + 2] = '\n';
  sink_->Write(buf, len + 3);
}

void ReplyBuilder::Bool(bool v) {
  if (resp_ >= 3) {
    sink_->Write(v ? "#t\r\n" : "#f\r\n", 4);
  } else {
    sink_->Write(v ? ":1\r\n" : ":0\r\n", 4);
  }
}

void ReplyBuilder::Verbatim(std::string_view s, std::string_view format) {
  if (resp_ < 3) {
    Bulk(s);
    return;
  }
  // As Redis addReplyVerbatim: the format is exactly three bytes, truncated
  // or padded with spaces.
  char prefix[4] = {' ', ' ', ' ', ':'};
  Append(prefix, format.substr(0, 3));
  TypedBlob('=', std::string_view(prefix, 4), s);
}

void ReplyBuilder::Raw(std::string_view encoded) {
  if (!encoded.empty()) sink_->Write(encoded.data(), encoded.size());
}

}  // namespace kvpool::protocol
