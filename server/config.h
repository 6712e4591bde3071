// Server configuration: one table of options, read from a redis.conf-style
// file and `--name value` arguments, and changed at run time by CONFIG SET
// where the option allows it.
//
// Threading: Get/Set/Match may be called from any thread. Typed accessors
// of numeric options are lock-free atomics; string options take a mutex.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "storage/util/status.h"

namespace kvpool {

enum class OptionType {
  kInt,     // integer in [min, max]
  kMemory,  // bytes; accepts 1k 1kb 1m 1mb 1g 1gb (k = 1000, kb = 1024, as Redis)
  kBool,    // yes|no
  kEnum,    // one of `choices`
  kString,  // any text (may be empty)
};

struct OptionSpec {
  const char* name;
  OptionType type;
  const char* default_value;
  bool runtime;  // CONFIG SET allowed
  const char* help;
  int64_t min = 0;
  int64_t max = INT64_MAX;
  std::vector<std::string> choices = {};
  bool sensitive = false;  // never logged (passwords)
};

class Config {
 public:
  Config();

  // Loads `path` (lines "name value...", '#' comments, quoted values).
  [[nodiscard]] Status LoadFile(const std::string& path);
  // Applies argv after the optional config file: "--name value [value...]".
  [[nodiscard]] Status LoadArgs(const std::vector<std::string>& args);
  // Sets one option from its text form. `startup` allows non-runtime options.
  // Calls the option's change hook (if any) after a successful runtime set.
  [[nodiscard]] Status Set(std::string_view name, std::string_view value, bool startup);
  // Puts back a value that was in force (a CONFIG SET undoing what it did):
  // as a runtime set, hooks included, but its checks (OnCheck) do not run.
  [[nodiscard]] Status Restore(std::string_view name, std::string_view value);
  // Redis's `rename-command NAME ""`: adds NAME to disable-commands.
  // Renaming to another name is not supported (kInvalidArgument).
  [[nodiscard]] Status RenameCommand(std::string_view command, std::string_view new_name);
  // Current text value; false if no such option.
  bool Get(std::string_view name, std::string* value) const;
  // (name, value) of every option whose name matches the glob, sorted.
  std::vector<std::pair<std::string, std::string>> Match(std::string_view pattern) const;
  // The whole table, for conf/kvpool.conf and --help.
  static const std::vector<OptionSpec>& Specs();
  // Text of a kvpool.conf listing every option commented with its default.
  static std::string DefaultConfFile();

  // Called (on the CONFIG SET thread) after `name` changed at run time.
  void OnChange(const std::string& name, std::function<void(const Config&)> hook);
  // Called before `name` changes at run time, with the new value's number
  // (Int's form); a failed status refuses the change (CONFIG SET's error):
  // for what the node cannot honour.
  void OnCheck(const std::string& name, std::function<Status(int64_t num)> check);

  // ---- typed accessors (numeric: atomic; strings: copy under lock) ----
  int64_t Int(std::string_view name) const;  // kInt, kMemory, kBool (0/1), kEnum (index)
  std::string String(std::string_view name) const;

 private:
  struct Value {
    const OptionSpec* spec;
    std::atomic<int64_t> num{0};
    std::string text;  // canonical text form; guarded by mu_
  };
  [[nodiscard]] Status Parse(const OptionSpec& spec, std::string_view in, int64_t* num,
                             std::string* canonical) const;
  [[nodiscard]] Status SetValue(std::string_view name, std::string_view value, bool startup,
                                bool check);
  Value* Find(std::string_view name);
  const Value* Find(std::string_view name) const;

  mutable std::mutex mu_;
  std::map<std::string, Value, std::less<>> values_;
  std::map<std::string, std::vector<std::function<void(const Config&)>>> hooks_;
  std::map<std::string, std::vector<std::function<Status(int64_t)>>> checks_;
};

// Parses "64mb"-style sizes as Redis's memtoll; false on bad input or overflow.
bool ParseMemory(std::string_view s, int64_t* out);
// Splits a config line as Redis does (quotes and escapes); false if unbalanced.
bool SplitArgs(std::string_view line, std::vector<std::string>* out);
// client-output-buffer-limit: "<class> <hard> <soft> <seconds>" groups; the
// limits of class normal (other classes are accepted and ignored: kvpool has
// no replica or pub/sub clients). False on bad input or no normal class.
bool ParseOutputLimit(std::string_view text, int64_t* hard, int64_t* soft, int64_t* secs);
// Redis's client-output-buffer-limit update: each "<class> <hard> <soft>
// <seconds>" group of `update` (class normal, replica or slave, pubsub)
// replaces that class's group in `current`. False on bad input.
bool MergeOutputLimit(std::string_view current, std::string_view update, std::string* merged);

}  // namespace kvpool
