// RESP2 reply bytes spelled out, for tests that compare replies exactly.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

namespace kvpool::testing {

inline const std::string kOkReply = "+OK\r\n";
inline const std::string kNilReply = "$-1\r\n";
inline const std::string kNilArrayReply = "*-1\r\n";
inline const std::string kQueuedReply = "+QUEUED\r\n";

inline std::string Bulk(const std::string& s) {
  return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}
inline std::string Int(int64_t v) { return ":" + std::to_string(v) + "\r\n"; }
inline std::string Err(const std::string& msg) { return "-" + msg + "\r\n"; }
// An array of already encoded elements.
inline std::string Array(std::initializer_list<std::string> elements) {
  std::string out = "*" + std::to_string(elements.size()) + "\r\n";
  for (const std::string& e : elements) out += e;
  return out;
}

}  // namespace kvpool::testing
