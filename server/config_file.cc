// Reading configuration: a redis.conf-style file and `--name value`
// arguments, applied to a Config (server/config.h) one directive at a time.
#include <fstream>
#include <string>
#include <vector>

#include "server/config.h"
#include "server/util/strings.h"

namespace kvpool {

Status Config::LoadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::IOError("cannot open config file '" + path + "'");
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    // Comments are skipped before splitting: their text need not be balanced.
    size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    std::vector<std::string> argv;
    if (!SplitArgs(line, &argv))
      return Status::InvalidArgument(path + ":" + std::to_string(lineno) + ": unbalanced quotes");
    if (argv.empty() || argv[0][0] == '#') continue;
    if (ToLower(argv[0]) == "rename-command") {
      Status s = argv.size() == 3 ? RenameCommand(argv[1], argv[2])
                                  : Status::InvalidArgument("rename-command takes NAME NEWNAME");
      if (!s.ok())
        return Status::InvalidArgument(path + ":" + std::to_string(lineno) + ": " + s.message());
      continue;
    }
    std::string value;
    for (size_t i = 1; i < argv.size(); ++i) value += (i > 1 ? " " : "") + argv[i];
    Status s = Set(argv[0], value, true);
    if (!s.ok())
      return Status::InvalidArgument(path + ":" + std::to_string(lineno) + ": '" + argv[0] +
                                     "': " + s.message());
  }
  return Status::OK();
}

Status Config::LoadArgs(const std::vector<std::string>& args) {
  size_t i = 0;
  while (i < args.size()) {
    const std::string& a = args[i];
    if (a.size() < 3 || a.compare(0, 2, "--") != 0)
      return Status::InvalidArgument("expected --option, got '" + a + "'");
    std::string name = a.substr(2);
    std::string value;
    size_t j = i + 1;
    if (ToLower(name) == "rename-command") {
      Status s = j + 1 < args.size() ? RenameCommand(args[j], args[j + 1])
                                     : Status::InvalidArgument("rename-command takes NAME NEWNAME");
      if (!s.ok()) return Status::InvalidArgument("'--rename-command': " + s.message());
      i = j + 2;
      continue;
    }
    // Values run until the next "--option" (as redis-server reads them); a
    // lone "" stays an empty value.
    for (; j < args.size() && !(args[j].size() > 2 && args[j].compare(0, 2, "--") == 0); ++j)
      value += (j > i + 1 ? " " : "") + args[j];
    Status s = Set(name, value, true);
    if (!s.ok()) return Status::InvalidArgument("'--" + name + "': " + s.message());
    i = j;
  }
  return Status::OK();
}

}  // namespace kvpool
