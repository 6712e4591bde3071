// Logging set-up errors. (Reopening on SIGHUP is checked against a real
// process: tests/integration/test_supervision.py.)
#include "server/logging.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace kvpool {
namespace {

TEST(LoggingTest, MissingLogDirectoryIsAnErrorAndNothingIsCreated) {
  std::string base = ::testing::TempDir() + "kvpool_log_XXXXXX";
  ASSERT_NE(mkdtemp(base.data()), nullptr);
  std::string dir = base + "/missing";
  Status s = InitLogging(dir + "/sub/kvpool.log", "notice");
  EXPECT_EQ(s.code(), Code::kIOError);
  EXPECT_EQ(s.message(), "cannot open log file '" + dir + "/sub/kvpool.log': directory '" + dir +
                             "/sub' does not exist");
  EXPECT_NE(access(dir.c_str(), F_OK), 0) << "spdlog used to create it";
  rmdir(base.c_str());
}

}  // namespace
}  // namespace kvpool
