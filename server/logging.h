// spdlog set-up: Redis's level names (debug verbose notice warning) mapped
// onto spdlog's, to a file or standard output; the file can be reopened
// (SIGHUP, for logrotate without copytruncate).
//
// Threading: InitLogging and CaptureStdio run once at start, before any
// other thread; ReopenLog may run on any thread while others log (the sink's
// lock covers the reopen).
#pragma once

#include <string>

#include "storage/util/status.h"

namespace kvpool {

// Installs the default logger. `logfile` empty = stdout. A logfile whose
// directory does not exist, or that cannot be opened for appending, is an
// error naming the path (kIOError); nothing is created.
[[nodiscard]] Status InitLogging(const std::string& logfile, const std::string& level);
// Changes the level at run time (CONFIG SET loglevel); false if unknown.
bool SetLogLevel(const std::string& level);
// The log file's path; empty when logging to stdout.
const std::string& LogFilePath();
// Closes and opens the log file again at its path (a file renamed away is
// left alone; a new one is created there). A no-op when logging to stdout.
// On failure the old file stays in use and the error names the path.
[[nodiscard]] Status ReopenLog();
// Points standard output and error at the log file too (the daemon: so that
// what the process writes there, a crash report, is kept), now and after
// every ReopenLog. A no-op when logging to stdout.
[[nodiscard]] Status CaptureStdio();

}  // namespace kvpool
