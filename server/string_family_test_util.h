// What the string family's handler tests share: a fixed clock, reply bytes
// spelled out, and the fixture (string_family_test.cc,
// string_multikey_test.cc).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "server/testing/command_harness.h"
#include "server/testing/resp_text.h"

namespace kvpool::string_test {

using kvpool::testing::CommandHarness;

inline constexpr int64_t kNow = 1'700'000'000'000;  // a fixed clock, ms

inline const std::string kOk = "+OK\r\n";
inline const std::string kNil = "$-1\r\n";
inline const std::string kEmpty = "$0\r\n\r\n";
inline const std::string kSyntaxErr = "-ERR syntax error\r\n";
inline const std::string kNotIntErr = "-ERR value is not an integer or out of range\r\n";
inline const std::string kNotFloatErr = "-ERR value is not a valid float\r\n";

using kvpool::testing::Bulk;
using kvpool::testing::Err;
using kvpool::testing::Int;
inline std::string Arr(const std::vector<std::string>& items) {
  std::string out = "*" + std::to_string(items.size()) + "\r\n";
  for (const auto& i : items) out += i;
  return out;
}

class StringFamilyTest : public ::testing::Test {
 protected:
  void SetUp() override { h.SetNow(kNow); }
  uint64_t Hits() { return h.server().stats().keyspace_hits.load(); }
  uint64_t Misses() { return h.server().stats().keyspace_misses.load(); }
  CommandHarness h;
};

}  // namespace kvpool::string_test
