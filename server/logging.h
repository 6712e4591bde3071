// spdlog set-up: Redis's level names (debug verbose notice warning) mapped
// onto spdlog's, to a file or standard output.
#pragma once

#include <string>

#include "storage/util/status.h"

namespace kvpool {

// Installs the default logger. `logfile` empty = stdout.
[[nodiscard]] Status InitLogging(const std::string& logfile, const std::string& level);
// Changes the level at run time (CONFIG SET loglevel); false if unknown.
bool SetLogLevel(const std::string& level);

}  // namespace kvpool
