#include "server/errors.h"

#include <gtest/gtest.h>

namespace kvpool {
namespace {

// A client never sees a Status's code name: only its message, prefixed as
// Redis prefixes errors.
TEST(ErrorsTest, FromStatusShowsNoCodeName) {
  const Status cases[] = {
      Status::InvalidArgument("value too large"), Status::Timeout("no reply from peer"),
      Status::Unavailable("pool node 1.2.3.4:7002 is down"), Status::Internal("bad reply"),
      Status::Aborted(), Status::Timeout(), Status::Unavailable(""), Status::Internal(""),
      Status::IOError("broken link"), Status::NotFound()};
  const char* names[] = {"InvalidArgument", "Timeout:",    "Unavailable", "Internal:",
                         "Aborted",         "IOError",     "NotFound",    "PermissionDenied"};
  for (const Status& s : cases) {
    std::string text = errors::FromStatus(s);
    EXPECT_EQ(text.rfind("ERR ", 0), 0u) << text;
    for (const char* n : names) EXPECT_EQ(text.find(n), std::string::npos) << text;
    if (!s.message().empty()) {
      EXPECT_EQ(text, "ERR " + s.message());
    }
    EXPECT_GT(text.size(), 4u) << "an empty message still says something";
    std::string abort = errors::ExecAbortFromStatus(s);
    EXPECT_EQ(abort.rfind("EXECABORT ", 0), 0u) << abort;
    for (const char* n : names) EXPECT_EQ(abort.find(n), std::string::npos) << abort;
  }
}

TEST(ErrorsTest, OutOfMemoryIsRedisOomText) {
  EXPECT_STREQ(errors::FromStatus(Status::OutOfMemory("segment full")).c_str(), errors::kOom);
}

TEST(ErrorsTest, TextsWithArgumentsAsRedisWordsThem) {
  EXPECT_EQ(errors::WrongArity("get"), "ERR wrong number of arguments for 'get' command");
  EXPECT_EQ(errors::UnknownSubcommand("foo", "CLIENT"),
            "ERR unknown subcommand 'foo'. Try CLIENT HELP.");
  EXPECT_EQ(errors::UnknownCommand("foo", "'a' "),
            "ERR unknown command 'foo', with args beginning with: 'a' ");
  EXPECT_EQ(errors::PoolNotStored(Status::Unavailable("pool node x is down"), 2, 5),
            "ERR pool node x is down: 2 of 5 keys were not stored");
}

}  // namespace
}  // namespace kvpool
