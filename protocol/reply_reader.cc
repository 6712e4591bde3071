#include "protocol/reply_reader.h"

#include <charconv>

namespace kvpool::protocol {

namespace {

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool done() const { return pos_ == in_.size(); }

  bool Value(ReplyValue* out, int depth) {
    if (depth > kMaxReplyDepth || pos_ >= in_.size()) return false;
    char type = in_[pos_++];
    std::string_view line;
    if (!Line(&line)) return false;
    switch (type) {
      case '+':
      case '-':
        out->type = type == '+' ? ReplyValue::kStatus : ReplyValue::kError;
        out->str.assign(line);
        return true;
      case ':':
        out->type = ReplyValue::kInteger;
        return Int(line, &out->integer);
      case '_':
        out->type = ReplyValue::kNil;
        return line.empty();
      case '$':
        return Bulk(line, out);
      case '*':
        return Array(line, out, depth);
      default:
        return false;
    }
  }

 private:
  // The rest of the line up to CRLF (consumed with it).
  bool Line(std::string_view* line) {
    size_t end = in_.find("\r\n", pos_);
    if (end == std::string_view::npos) return false;
    *line = in_.substr(pos_, end - pos_);
    pos_ = end + 2;
    return true;
  }

  static bool Int(std::string_view s, int64_t* v) {
    if (s.empty()) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
    return ec == std::errc() && p == s.data() + s.size();
  }

  bool Bulk(std::string_view line, ReplyValue* out) {
    int64_t len;
    if (!Int(line, &len) || len < -1) return false;
    out->type = ReplyValue::kNil;
    if (len == -1) return true;
    // The payload and its CRLF must already be in the input.
    if (static_cast<uint64_t>(len) > in_.size() - pos_ ||
        in_.size() - pos_ - static_cast<size_t>(len) < 2)
      return false;
    size_t n = static_cast<size_t>(len);
    if (in_.compare(pos_ + n, 2, "\r\n") != 0) return false;
    out->type = ReplyValue::kString;
    out->str.assign(in_.substr(pos_, n));
    pos_ += n + 2;
    return true;
  }

  bool Array(std::string_view line, ReplyValue* out, int depth) {
    int64_t n;
    if (!Int(line, &n) || n < -1) return false;
    out->type = ReplyValue::kNil;
    if (n == -1) return true;
    // Each element takes at least 3 bytes ("_\r\n"): a count the input
    // cannot hold is refused before anything is allocated for it.
    if (static_cast<uint64_t>(n) > (in_.size() - pos_) / 3) return false;
    out->type = ReplyValue::kArray;
    out->elements.resize(static_cast<size_t>(n));
    for (ReplyValue& e : out->elements)
      if (!Value(&e, depth + 1)) return false;
    return true;
  }

  std::string_view in_;
  size_t pos_ = 0;
};

}  // namespace

bool ReadReply(std::string_view bytes, ReplyValue* out) {
  Reader r(bytes);
  *out = ReplyValue{};
  return r.Value(out, 0) && r.done();
}

}  // namespace kvpool::protocol
