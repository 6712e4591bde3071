// Reading configuration as redis-server does: a redis.conf-style file (its
// includes too) and `--name value` arguments, one directive at a time. Each
// directive is used (a kvpool option, include, rename-command), ignored (a
// Redis directive kvpool does not implement: logged once, with a warning if
// kvpool cannot honour what it asks) or invalid (an error naming the file and
// line; a name that is no Redis directive either is a typo).
#pragma once

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include <sys/types.h>

#include "server/config.h"
#include "storage/util/status.h"

namespace kvpool {

enum class DirectiveOutcome { kUsed, kIgnored, kInvalid };

// What became of one directive.
struct DirectiveRecord {
  DirectiveOutcome outcome;
  std::string where;  // "path:line", or "command line"
  std::string name;   // lower case
  // Ignored: why. Invalid: the error. Used: empty, or what kvpool cannot honour.
  std::string note;
  bool warning = false;  // asks for behaviour kvpool cannot honour
};

class ConfigLoader {
 public:
  // keep_going: an invalid directive is recorded and reading goes on (for
  // --check-config); otherwise the first one stops reading and is returned.
  explicit ConfigLoader(Config* config, bool keep_going = false);

  // Reads `path` (relative: to the working directory, as `dir` leaves it).
  [[nodiscard]] Status LoadFile(const std::string& path);
  // "--name value [value...]" as redis-server reads them (after the file).
  [[nodiscard]] Status LoadArgs(const std::vector<std::string>& args);

  const std::vector<DirectiveRecord>& records() const { return records_; }
  size_t Count(DirectiveOutcome outcome) const;
  // Logs each ignored directive, and each one kvpool cannot honour, once per
  // name (at warning level if it cannot honour it). Call once logging is set up.
  void LogNotes() const;
  // --check-config's listing: one line per directive, then the totals.
  std::string Report() const;

 private:
  [[nodiscard]] Status ReadFile(const std::string& path, const std::string& from);
  [[nodiscard]] Status Apply(const std::string& where, const std::vector<std::string>& argv);
  [[nodiscard]] Status Include(const std::string& where, const std::string& pattern);
  // `dir`: a directory that exists and can be entered; relative paths after
  // it lead there (the process changes into it once configured).
  [[nodiscard]] Status SetDir(const std::string& value);
  // Records an invalid directive; its error unless keep_going.
  [[nodiscard]] Status Invalid(const std::string& where, const std::string& name,
                               const std::string& message);
  // A path as the process would open it now (relative: against `dir`).
  std::string Resolve(const std::string& path) const;

  Config* config_;
  bool keep_going_;
  std::string start_dir_;  // working directory at start
  std::string dir_;        // where relative paths lead: start_dir_, or the last `dir`
  struct Reading {
    dev_t dev;
    ino_t ino;
    std::string path;
  };
  std::vector<Reading> reading_;  // the file being read and those including it
  std::vector<DirectiveRecord> records_;
};

// The text of an invalid directive's error: "path:line: 'name': message", or
// "'--name': message" for the command line.
std::string DirectiveError(const std::string& where, const std::string& name,
                           const std::string& message);

// kvpool-server --check-config FILE [--option value ...]: writes the report
// to `out`; returns the exit code (0 = nothing invalid, 1 otherwise).
int CheckConfig(const std::vector<std::string>& args, FILE* out);

// Changes into the configured `dir`, as redis-server does, so relative
// logfile and pidfile paths lead there. Nothing when `dir` is empty.
[[nodiscard]] Status EnterConfiguredDir(const Config& config);

}  // namespace kvpool
