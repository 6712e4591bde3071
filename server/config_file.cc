// Reading configuration: a redis.conf-style file and `--name value`
// arguments, applied to a Config (server/config.h) one directive at a time.
#include "server/config_file.h"

#include <glob.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "server/redis_directives.h"
#include "server/util/strings.h"

namespace kvpool {

namespace {

constexpr const char* kCommandLine = "command line";

// kvpool options that take a value kvpool accepts but does not act on.
struct Unhonoured {
  const char* name;
  const char* quiet;  // the value at which nothing is lost
  const char* cannot;
};
constexpr Unhonoured kUnhonoured[] = {
    {"save", "", "kvpool never writes snapshots: nothing is saved"},
};

std::string Join(const std::vector<std::string>& argv, size_t from) {
  std::string out;
  for (size_t i = from; i < argv.size(); ++i) out += (i > from ? " " : "") + argv[i];
  return out;
}

std::string ErrnoText(int err) { return std::strerror(err); }

// Edit distance with transpositions (optimal string alignment).
size_t Distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

// The kvpool option or Redis directive `name` most likely meant; empty if none is close.
std::string Suggest(const std::string& name) {
  std::vector<const char*> names;
  for (const OptionSpec& s : Config::Specs()) names.push_back(s.name);
  for (const RedisDirective& d : RedisDirectives()) names.push_back(d.name);
  size_t limit = name.size() >= 6 ? 2 : 1, best = limit + 1;
  std::string out;
  for (const char* n : names) {
    size_t dist = Distance(name, n);
    if (dist < best) {
      best = dist;
      out = n;
    }
  }
  return out;
}

std::string CurrentDir() {
  char buf[PATH_MAX];
  return getcwd(buf, sizeof(buf)) != nullptr ? std::string(buf) : std::string(".");
}

}  // namespace

std::string DirectiveError(const std::string& where, const std::string& name,
                           const std::string& message) {
  if (where == kCommandLine) return "'--" + name + "': " + message;
  if (name.empty()) return where + ": " + message;
  return where + ": '" + name + "': " + message;
}

ConfigLoader::ConfigLoader(Config* config, bool keep_going)
    : config_(config), keep_going_(keep_going), start_dir_(CurrentDir()), dir_(start_dir_) {}

size_t ConfigLoader::Count(DirectiveOutcome outcome) const {
  return static_cast<size_t>(std::count_if(records_.begin(), records_.end(),
                                           [&](const auto& r) { return r.outcome == outcome; }));
}

Status ConfigLoader::Invalid(const std::string& where, const std::string& name,
                             const std::string& message) {
  records_.push_back({DirectiveOutcome::kInvalid, where, name, message});
  if (keep_going_) return Status::OK();
  return Status::InvalidArgument(DirectiveError(where, name, message));
}

std::string ConfigLoader::Resolve(const std::string& path) const {
  // As redis-server: relative to the working directory, which `dir` changes.
  if (path.empty() || path[0] == '/' || dir_ == start_dir_) return path;
  return dir_ + "/" + path;
}

Status ConfigLoader::LoadFile(const std::string& path) { return ReadFile(Resolve(path), ""); }

Status ConfigLoader::ReadFile(const std::string& path, const std::string& from) {
  auto fail = [&](Status s) -> Status {
    if (from.empty()) {  // the file named on the command line
      records_.push_back({DirectiveOutcome::kInvalid, path, "", s.message()});
      return keep_going_ ? Status::OK() : s;
    }
    return Invalid(from, "include", s.message());
  };
  struct stat st;
  if (stat(path.c_str(), &st) != 0)
    return fail(Status::IOError("cannot open config file '" + path + "': " + ErrnoText(errno)));
  if (S_ISDIR(st.st_mode))
    return fail(Status::IOError("cannot read config file '" + path + "': it is a directory"));
  for (size_t i = 0; i < reading_.size(); ++i) {
    if (reading_[i].dev != st.st_dev || reading_[i].ino != st.st_ino) continue;
    std::string chain;
    for (size_t j = i; j < reading_.size(); ++j) chain += reading_[j].path + " -> ";
    return fail(Status::InvalidArgument("include loop: " + chain + path));
  }
  std::ifstream in(path);
  if (!in)
    return fail(Status::IOError("cannot open config file '" + path + "': " + ErrnoText(errno)));
  reading_.push_back({st.st_dev, st.st_ino, path});
  Status result;
  std::string line;
  int lineno = 0;
  while (result.ok() && std::getline(in, line)) {
    ++lineno;
    std::string where = path + ":" + std::to_string(lineno);
    // Comments are skipped before splitting: their text need not be balanced.
    size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    std::vector<std::string> argv;
    if (!SplitArgs(line, &argv)) {
      result = Invalid(where, "", "unbalanced quotes");
      continue;
    }
    if (argv.empty() || argv[0].empty() || argv[0][0] == '#') continue;
    result = Apply(where, argv);
  }
  reading_.pop_back();
  return result;
}

Status ConfigLoader::LoadArgs(const std::vector<std::string>& args) {
  auto is_option = [](const std::string& a) { return a.size() > 2 && a.compare(0, 2, "--") == 0; };
  size_t i = 0;
  while (i < args.size()) {
    if (!is_option(args[i])) {
      Status s = Status::InvalidArgument("expected --option, got '" + args[i] + "'");
      records_.push_back({DirectiveOutcome::kInvalid, kCommandLine, "", s.message()});
      if (!keep_going_) return s;
      ++i;
      continue;
    }
    // Values run until the next "--option" (as redis-server reads them); a
    // lone "" stays an empty value.
    std::vector<std::string> argv{args[i].substr(2)};
    size_t j = i + 1;
    for (; j < args.size() && !is_option(args[j]); ++j) argv.push_back(args[j]);
    Status s = Apply(kCommandLine, argv);
    if (!s.ok()) return s;
    i = j;
  }
  return Status::OK();
}

Status ConfigLoader::Apply(const std::string& where, const std::vector<std::string>& argv) {
  const std::string name = ToLower(argv[0]);
  auto used = [&](std::string note = {}, bool warning = false) {
    records_.push_back({DirectiveOutcome::kUsed, where, name, std::move(note), warning});
    return Status::OK();
  };
  if (name == "include") {
    if (argv.size() != 2) return Invalid(where, name, "include takes one path (or glob)");
    used().IgnoreError();  // recorded before what the included file holds
    return Include(where, argv[1]);
  }
  if (name == "rename-command") {
    Status s = argv.size() == 3 ? config_->RenameCommand(argv[1], argv[2])
                                : Status::InvalidArgument("rename-command takes NAME NEWNAME");
    return s.ok() ? used() : Invalid(where, name, s.message());
  }
  const std::string value = Join(argv, 1);
  std::string current;
  if (config_->Get(name, &current)) {
    Status s = name == "dir" ? SetDir(value) : config_->Set(name, value, true);
    if (!s.ok()) return Invalid(where, name, s.message());
    for (const Unhonoured& u : kUnhonoured)
      if (name == u.name && ToLower(value) != u.quiet) return used(u.cannot, true);
    return used();
  }
  const RedisDirective* redis = FindRedisDirective(name);
  if (redis == nullptr) {
    std::string hint = Suggest(name);
    return Invalid(where, name,
                   "neither a kvpool option nor a Redis directive" +
                       (hint.empty() ? std::string() : " (did you mean '" + hint + "'?)"));
  }
  RedisVerdict v = JudgeRedisDirective(*redis, value);
  if (v.effect == RedisEffect::kRefuse) return Invalid(where, name, v.note);
  records_.push_back(
      {DirectiveOutcome::kIgnored, where, name, v.note, v.effect == RedisEffect::kWarn});
  return Status::OK();
}

Status ConfigLoader::Include(const std::string& where, const std::string& pattern) {
  const std::string path = Resolve(pattern);
  if (path.find_first_of("*?[") == std::string::npos) return ReadFile(path, where);
  // A glob that matches nothing is no error (an empty conf.d), as in Redis.
  glob_t g;
  int rc = glob(path.c_str(), 0, nullptr, &g);
  if (rc == GLOB_NOMATCH) return Status::OK();
  if (rc != 0) return Invalid(where, "include", "cannot expand '" + path + "'");
  std::vector<std::string> files(g.gl_pathv, g.gl_pathv + g.gl_pathc);
  globfree(&g);
  for (const std::string& f : files) {
    Status s = ReadFile(f, where);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

Status ConfigLoader::SetDir(const std::string& value) {
  if (value.empty()) {  // kvpool's default: where it was started
    dir_ = start_dir_;
    return config_->Set("dir", "", true);
  }
  std::string path = Resolve(value);
  char real[PATH_MAX];
  if (realpath(path.c_str(), real) == nullptr)
    return Status::InvalidArgument("cannot use '" + path + "': " + ErrnoText(errno));
  struct stat st;
  if (stat(real, &st) != 0 || !S_ISDIR(st.st_mode))
    return Status::InvalidArgument("'" + path + "' is not a directory");
  if (access(real, X_OK) != 0)
    return Status::InvalidArgument("cannot enter '" + path + "': " + ErrnoText(errno));
  Status s = config_->Set("dir", real, true);
  if (s.ok()) dir_ = real;
  return s;
}

void ConfigLoader::LogNotes() const {
  std::map<std::string, std::pair<const DirectiveRecord*, int>> seen;  // name -> first, count
  std::vector<std::string> order;
  for (const DirectiveRecord& r : records_) {
    if (r.outcome == DirectiveOutcome::kInvalid) continue;
    if (r.outcome == DirectiveOutcome::kUsed && !r.warning) continue;
    auto [it, fresh] = seen.try_emplace(r.name, &r, 0);
    if (fresh) order.push_back(r.name);
    ++it->second.second;
  }
  for (const std::string& name : order) {
    const auto& [r, count] = seen[name];
    std::string more = count > 1 ? ", and " + std::to_string(count - 1) + " more" : "";
    const char* what = r->outcome == DirectiveOutcome::kUsed ? "not honoured" : "ignored";
    if (r->warning)
      spdlog::warn("config: '{}' {} ({}{}): {}", name, what, r->where, more, r->note);
    else
      spdlog::info("config: '{}' {} ({}{}): {}", name, what, r->where, more, r->note);
  }
}

std::string ConfigLoader::Report() const {
  std::string out;
  size_t width = 0;
  for (const DirectiveRecord& r : records_) width = std::max(width, r.where.size());
  size_t warnings = 0;
  for (const DirectiveRecord& r : records_) {
    const char* status = r.outcome == DirectiveOutcome::kUsed      ? "used    "
                         : r.outcome == DirectiveOutcome::kIgnored ? "ignored "
                                                                   : "invalid ";
    out += status + r.where + std::string(width - r.where.size() + 1, ' ');
    out += r.name.empty() ? "-" : r.name;
    if (!r.note.empty()) out += std::string(": ") + (r.warning ? "warning: " : "") + r.note;
    out += "\n";
    if (r.outcome == DirectiveOutcome::kIgnored && r.warning) ++warnings;
  }
  out += std::to_string(Count(DirectiveOutcome::kUsed)) + " used, " +
         std::to_string(Count(DirectiveOutcome::kIgnored)) + " ignored (" +
         std::to_string(warnings) + " with a warning), " +
         std::to_string(Count(DirectiveOutcome::kInvalid)) + " invalid\n";
  return out;
}

int CheckConfig(const std::vector<std::string>& args, FILE* out) {
  if (args.empty() || args[0].rfind("--", 0) == 0) {
    fputs("usage: kvpool-server --check-config /path/to/file.conf [--option value ...]\n", out);
    return 1;
  }
  Config config;
  ConfigLoader loader(&config, /*keep_going=*/true);
  loader.LoadFile(args[0]).IgnoreError();  // keep_going: errors are in the records
  loader.LoadArgs({args.begin() + 1, args.end()}).IgnoreError();
  fputs(loader.Report().c_str(), out);
  return loader.Count(DirectiveOutcome::kInvalid) == 0 ? 0 : 1;
}

Status EnterConfiguredDir(const Config& config) {
  std::string dir = config.String("dir");
  if (dir.empty()) return Status::OK();
  if (chdir(dir.c_str()) != 0)
    return Status::IOError("cannot change into dir '" + dir + "': " + ErrnoText(errno));
  return Status::OK();
}

Status Config::LoadFile(const std::string& path) { return ConfigLoader(this).LoadFile(path); }

Status Config::LoadArgs(const std::vector<std::string>& args) {
  return ConfigLoader(this).LoadArgs(args);
}

}  // namespace kvpool
