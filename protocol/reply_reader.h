// Reads one complete RESP reply (the RESP2 types plus RESP3's null "_") into
// a tree. For the server's merge of replies that peers send back (KEYS, SCAN,
// DBSIZE ... run on every node). No I/O; bounded: nesting deeper than
// kMaxReplyDepth, a count or length that cannot fit in the input, or any
// malformed line makes it fail without allocating from that number.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kvpool::protocol {

struct ReplyValue {
  enum Type { kNil, kInteger, kString, kStatus, kError, kArray } type = kNil;
  int64_t integer = 0;
  std::string str;  // kString, kStatus, kError
  std::vector<ReplyValue> elements;
};

inline constexpr int kMaxReplyDepth = 8;

// True if `bytes` is exactly one well-formed reply (nothing before or after
// it); *out holds it. False otherwise (*out unspecified).
[[nodiscard]] bool ReadReply(std::string_view bytes, ReplyValue* out);

}  // namespace kvpool::protocol
