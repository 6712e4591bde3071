// Config: the options table, parsing of files and arguments, memory units,
// runtime-only rules, change hooks, Match globbing and the generated
// kvpool.conf.
#include "server/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <vector>

namespace kvpool {
namespace {

// A file in the test temp dir, removed at the end of the test.
class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    std::string tmpl = ::testing::TempDir() + "kvpool_config_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    int fd = mkstemp(buf.data());
    EXPECT_GE(fd, 0);
    path_ = buf.data();
    if (fd >= 0) {
      EXPECT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
      close(fd);
    }
  }
  ~TempFile() { unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string Get(const Config& c, const std::string& name) {
  std::string v;
  EXPECT_TRUE(c.Get(name, &v)) << name;
  return v;
}

// ---------------- defaults ----------------

TEST(ConfigTest, DefaultsParseToCanonicalValues) {
  Config c;
  EXPECT_EQ(Get(c, "port"), "6379");
  EXPECT_EQ(Get(c, "bind"), "127.0.0.1");
  EXPECT_EQ(Get(c, "maxmemory"), "0");
  EXPECT_EQ(Get(c, "proto-max-bulk-len"), "536870912") << "512mb in bytes";
  EXPECT_EQ(Get(c, "client-query-buffer-limit"), "1073741824");
  EXPECT_EQ(Get(c, "maxmemory-policy"), "allkeys-lru");
  EXPECT_EQ(Get(c, "save"), "");
  EXPECT_EQ(Get(c, "appendonly"), "no");
  EXPECT_EQ(Get(c, "requirepass"), "");
  EXPECT_EQ(c.Int("port"), 6379);
  EXPECT_EQ(c.Int("maxmemory-policy"), 1) << "enum index";
  EXPECT_EQ(c.Int("appendonly"), 0);
  EXPECT_EQ(c.Int("proto-max-bulk-len"), 512 << 20);
}

TEST(ConfigTest, EveryDefaultIsValid) {
  for (const OptionSpec& spec : Config::Specs()) {
    Config c;
    std::string v;
    ASSERT_TRUE(c.Get(spec.name, &v)) << spec.name;
    // The canonical text of the default parses back to itself.
    EXPECT_TRUE(c.Set(spec.name, v, /*startup=*/true).ok()) << spec.name;
    EXPECT_EQ(Get(c, spec.name), v) << spec.name;
  }
}

TEST(ConfigTest, UnknownNames) {
  Config c;
  std::string v;
  EXPECT_FALSE(c.Get("nosuch", &v));
  EXPECT_EQ(c.Int("nosuch"), 0);
  EXPECT_EQ(c.String("nosuch"), "");
  Status s = c.Set("nosuch", "1", true);
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_EQ(s.message(), "Unknown option or number of arguments for CONFIG SET - 'nosuch'");
}

TEST(ConfigTest, NamesAreCaseInsensitive) {
  Config c;
  ASSERT_TRUE(c.Set("MaxMemory", "1mb", true).ok());
  EXPECT_EQ(Get(c, "MAXMEMORY"), "1048576");
  EXPECT_EQ(c.Int("maxmemory"), 1 << 20);
}

// ---------------- memory units ----------------

TEST(ConfigTest, ParseMemoryUnits) {
  struct Case {
    const char* in;
    int64_t out;
  };
  for (const Case& c : {Case{"0", 0}, Case{"100", 100}, Case{"1b", 1}, Case{"1k", 1000},
                        Case{"1kb", 1024}, Case{"1m", 1000000}, Case{"64mb", 64ll << 20},
                        Case{"1g", 1000000000}, Case{"1gb", 1ll << 30}, Case{"1GB", 1ll << 30},
                        Case{"2Mb", 2ll << 20}}) {
    int64_t v = -1;
    EXPECT_TRUE(ParseMemory(c.in, &v)) << c.in;
    EXPECT_EQ(v, c.out) << c.in;
  }
}

TEST(ConfigTest, ParseMemoryRejects) {
  for (const char* bad : {"", "abc", "mb", "1x", "1 mb", " 1mb", "-1", "+1", "1.5mb", "1tb",
                          "01", "9223372036854775807kb", "99999999999gb"}) {
    int64_t v = 7;
    EXPECT_FALSE(ParseMemory(bad, &v)) << bad;
  }
  int64_t v;
  EXPECT_TRUE(ParseMemory("9223372036854775807", &v));
  EXPECT_EQ(v, INT64_MAX);
}

TEST(ConfigTest, MemoryOptions) {
  Config c;
  ASSERT_TRUE(c.Set("maxmemory", "64mb", true).ok());
  EXPECT_EQ(c.Int("maxmemory"), 64ll << 20);
  EXPECT_EQ(Get(c, "maxmemory"), "67108864") << "canonical text is bytes";
  Status s = c.Set("maxmemory", "lots", true);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "argument must be a memory value");
  EXPECT_EQ(c.Int("maxmemory"), 64ll << 20) << "a refused value changes nothing";
  // proto-max-bulk-len has a floor of 1mb.
  s = c.Set("proto-max-bulk-len", "1k", true);
  EXPECT_EQ(s.message(), "argument must be between 1048576 and 4294967295 inclusive");
  EXPECT_TRUE(c.Set("proto-max-bulk-len", "1mb", true).ok());
}

// ---------------- ints, bools, enums, strings ----------------

TEST(ConfigTest, IntRanges) {
  Config c;
  EXPECT_TRUE(c.Set("port", "0", true).ok());
  EXPECT_TRUE(c.Set("port", "65535", true).ok());
  Status s = c.Set("port", "65536", true);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.message(), "argument must be between 0 and 65535 inclusive");
  s = c.Set("hz", "abc", true);
  EXPECT_EQ(s.message(), "argument couldn't be parsed into an integer");
  EXPECT_FALSE(c.Set("hz", "0", true).ok());
  EXPECT_FALSE(c.Set("hz", "10.5", true).ok());
  EXPECT_FALSE(c.Set("hz", "+10", true).ok());
  EXPECT_FALSE(c.Set("hz", "010", true).ok());
  EXPECT_EQ(c.Int("hz"), 10);
}

TEST(ConfigTest, Bools) {
  Config c;
  EXPECT_TRUE(c.Set("appendonly", "no", true).ok());
  EXPECT_TRUE(c.Set("appendonly", "NO", true).ok());
  EXPECT_EQ(Get(c, "appendonly"), "no");
  Status s = c.Set("appendonly", "maybe", true);
  EXPECT_EQ(s.message(), "argument must be 'yes' or 'no'");
  // Compatibility options accept only "no".
  s = c.Set("appendonly", "yes", true);
  EXPECT_EQ(s.message(), "appendonly yes is not supported by kvpool");
  EXPECT_EQ(c.Int("appendonly"), 0);
}

TEST(ConfigTest, SupervisionOptions) {
  Config c;
  EXPECT_EQ(Get(c, "daemonize"), "no");
  EXPECT_EQ(Get(c, "supervised"), "no");
  EXPECT_EQ(Get(c, "pidfile"), "");
  ASSERT_TRUE(c.Set("daemonize", "yes", true).ok());
  EXPECT_EQ(c.Int("daemonize"), 1);
  // Redis's four modes, in Redis's order; the text is what INFO and CONFIG GET show.
  int index = 0;
  for (const char* mode : {"no", "upstart", "systemd", "auto"}) {
    ASSERT_TRUE(c.Set("supervised", mode, true).ok()) << mode;
    EXPECT_EQ(c.Int("supervised"), index++);
  }
  ASSERT_TRUE(c.Set("supervised", "SYSTEMD", true).ok());
  EXPECT_EQ(Get(c, "supervised"), "systemd");
  EXPECT_EQ(c.Set("supervised", "launchd", true).message(),
            "argument(s) must be one of the following: no, upstart, systemd, auto");
  // All three are fixed at start: CONFIG SET refuses them.
  for (const char* name : {"daemonize", "supervised", "pidfile"})
    EXPECT_EQ(c.Set(name, Get(c, name), false).message(), "can't set immutable config") << name;
  // The command-line form a systemd unit uses.
  Config args;
  ASSERT_TRUE(args.LoadArgs({"--supervised", "systemd", "--daemonize", "no"}).ok());
  EXPECT_EQ(Get(args, "supervised"), "systemd");
  EXPECT_EQ(args.Int("daemonize"), 0);
}

TEST(ConfigTest, Enums) {
  Config c;
  ASSERT_TRUE(c.Set("maxmemory-policy", "NOEVICTION", true).ok());
  EXPECT_EQ(Get(c, "maxmemory-policy"), "noeviction");
  EXPECT_EQ(c.Int("maxmemory-policy"), 0);
  ASSERT_TRUE(c.Set("maxmemory-policy", "volatile-ttl", true).ok());
  EXPECT_EQ(c.Int("maxmemory-policy"), 4);
  Status s = c.Set("maxmemory-policy", "allkeys-lfu", true);
  EXPECT_EQ(s.message(),
            "argument(s) must be one of the following: noeviction, allkeys-lru, volatile-lru, "
            "allkeys-random, volatile-ttl");
  ASSERT_TRUE(c.Set("loglevel", "warning", true).ok());
  EXPECT_EQ(c.Int("loglevel"), 3);
}

TEST(ConfigTest, Strings) {
  Config c;
  ASSERT_TRUE(c.Set("requirepass", "s3cret pw", true).ok());
  EXPECT_EQ(c.String("requirepass"), "s3cret pw");
  ASSERT_TRUE(c.Set("requirepass", "", true).ok());
  EXPECT_EQ(c.String("requirepass"), "");
}

TEST(ConfigTest, PasswordsAreSensitive) {
  auto spec = [](const char* name) -> const OptionSpec& {
    for (const OptionSpec& s : Config::Specs())
      if (std::string(s.name) == name) return s;
    ADD_FAILURE() << name;
    return Config::Specs()[0];
  };
  EXPECT_TRUE(spec("requirepass").sensitive);
  for (const char* name : {"port", "bind", "maxmemory", "maxmemory-policy", "save"})
    EXPECT_FALSE(spec(name).sensitive) << name;
}

// ---------------- runtime rules and hooks ----------------

TEST(ConfigTest, RuntimeOnlyRules) {
  Config c;
  Status s = c.Set("port", "7000", /*startup=*/false);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.message(), "can't set immutable config");
  EXPECT_EQ(c.Int("port"), 6379);
  EXPECT_TRUE(c.Set("port", "7000", /*startup=*/true).ok());
  EXPECT_EQ(c.Int("port"), 7000);
  for (const char* name : {"bind", "databases", "io-threads", "daemonize", "logfile"})
    EXPECT_FALSE(c.Set(name, Get(c, name), false).ok()) << name;
  for (const char* name : {"maxmemory", "maxmemory-policy", "requirepass", "hz", "save",
                           "appendonly", "loglevel", "timeout"})
    EXPECT_TRUE(c.Set(name, Get(c, name), false).ok()) << name;
}

TEST(ConfigTest, ChangeHooksRunOnRuntimeSetsOnly) {
  Config c;
  int calls = 0;
  int64_t seen = -1;
  c.OnChange("maxmemory", [&](const Config& cfg) {
    ++calls;
    seen = cfg.Int("maxmemory");
  });
  ASSERT_TRUE(c.Set("maxmemory", "1mb", /*startup=*/true).ok());
  EXPECT_EQ(calls, 0) << "not at startup";
  ASSERT_TRUE(c.Set("maxmemory", "2mb", false).ok());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen, 2 << 20) << "the hook sees the new value";
  EXPECT_FALSE(c.Set("maxmemory", "bad", false).ok());
  EXPECT_EQ(calls, 1) << "not on a refused value";
  ASSERT_TRUE(c.Set("hz", "20", false).ok());
  EXPECT_EQ(calls, 1) << "not for other options";
}

// ---------------- Match ----------------

TEST(ConfigTest, MatchGlobs) {
  Config c;
  auto names = [&](const char* pattern) {
    std::vector<std::string> out;
    for (const auto& [name, value] : c.Match(pattern)) out.push_back(name);
    return out;
  };
  EXPECT_EQ(names("maxmemory*"),
            (std::vector<std::string>{"maxmemory", "maxmemory-policy", "maxmemory-samples"}));
  EXPECT_EQ(names("MAXMEMORY"), std::vector<std::string>{"maxmemory"}) << "case-insensitive";
  EXPECT_EQ(names("max?emory"), std::vector<std::string>{"maxmemory"});
  std::vector<std::string> p_or_h;
  for (const OptionSpec& spec : Config::Specs())
    if (spec.name[0] == 'p' || spec.name[0] == 'h') p_or_h.push_back(spec.name);
  std::sort(p_or_h.begin(), p_or_h.end());
  EXPECT_EQ(names("[ph]*"), p_or_h);
  EXPECT_EQ(names("[p-p]?rt"), std::vector<std::string>{"port"});
  EXPECT_EQ(names("[^a-z]*"), std::vector<std::string>{});
  EXPECT_EQ(names("*").size(), Config::Specs().size());
  EXPECT_TRUE(names("nosuch*").empty());
  auto all = c.Match("*");
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end()));
  auto save = c.Match("save");
  ASSERT_EQ(save.size(), 1u);
  EXPECT_EQ(save[0].second, "");
}

// ---------------- files and arguments ----------------

TEST(ConfigTest, LoadFile) {
  TempFile f(
      "# a comment\n"
      "\n"
      "   # an indented comment\n"
      "port 7001\n"
      "maxmemory 64mb\n"
      "MAXMEMORY-POLICY noeviction\n"
      "requirepass \"with space\"\n"
      "bind 127.0.0.1 ::1\n"
      "save ''\n"
      "logfile \"/tmp/x\\x41.log\"\n");
  Config c;
  Status s = c.LoadFile(f.path());
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c.Int("port"), 7001);
  EXPECT_EQ(c.Int("maxmemory"), 64ll << 20);
  EXPECT_EQ(Get(c, "maxmemory-policy"), "noeviction");
  EXPECT_EQ(c.String("requirepass"), "with space");
  EXPECT_EQ(c.String("bind"), "127.0.0.1 ::1");
  EXPECT_EQ(c.String("save"), "");
  EXPECT_EQ(c.String("logfile"), "/tmp/xA.log");
}

TEST(ConfigTest, LoadFileErrorsNameTheLine) {
  {
    TempFile f("port 7001\nnosuch 1\n");
    Config c;
    Status s = c.LoadFile(f.path());
    EXPECT_EQ(s.code(), Code::kInvalidArgument);
    EXPECT_NE(s.message().find(f.path() + ":2: 'nosuch'"), std::string::npos) << s.message();
  }
  {
    TempFile f("maxmemory lots\n");
    Config c;
    Status s = c.LoadFile(f.path());
    EXPECT_NE(s.message().find(":1: 'maxmemory': argument must be a memory value"),
              std::string::npos)
        << s.message();
  }
  {
    TempFile f("requirepass \"unbalanced\n");
    Config c;
    Status s = c.LoadFile(f.path());
    EXPECT_NE(s.message().find(":1: unbalanced quotes"), std::string::npos) << s.message();
  }
  Config c;
  EXPECT_EQ(c.LoadFile("/nonexistent/kvpool.conf").code(), Code::kIOError);
}

// As Redis: a comment line is skipped whole, so quotes in it do not matter.
TEST(ConfigTest, LoadFileSkipsCommentsBeforeSplitting) {
  TempFile f(
      "# don't panic\n"
      "  # \"half-quoted (e.g. \"a b\").\n"
      "port 7003\n");
  Config c;
  Status s = c.LoadFile(f.path());
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c.Int("port"), 7003);
}

TEST(ConfigTest, LoadArgs) {
  Config c;
  Status s = c.LoadArgs({"--port", "7002", "--maxmemory", "1gb", "--bind", "127.0.0.1", "::1",
                         "--save", "", "--requirepass", "pw"});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c.Int("port"), 7002);
  EXPECT_EQ(c.Int("maxmemory"), 1ll << 30);
  EXPECT_EQ(c.String("bind"), "127.0.0.1 ::1") << "values run to the next --option";
  EXPECT_EQ(c.String("save"), "");
  EXPECT_EQ(c.String("requirepass"), "pw");
  // Startup may set options CONFIG SET may not.
  EXPECT_TRUE(c.LoadArgs({"--databases", "4"}).ok());
  EXPECT_EQ(c.Int("databases"), 4);
}

TEST(ConfigTest, LoadArgsErrors) {
  Config c;
  Status s = c.LoadArgs({"port", "7000"});
  EXPECT_EQ(s.message(), "expected --option, got 'port'");
  s = c.LoadArgs({"--nosuch", "1"});
  EXPECT_EQ(s.message(), "'--nosuch': neither a kvpool option nor a Redis directive");
  s = c.LoadArgs({"--port", "x"});
  EXPECT_EQ(s.message(), "'--port': argument couldn't be parsed into an integer");
  EXPECT_FALSE(c.LoadArgs({"--"}).ok());
}

// ---------------- SplitArgs ----------------

TEST(ConfigTest, SplitArgs) {
  std::vector<std::string> v;
  ASSERT_TRUE(SplitArgs("  a  b\tc ", &v));
  EXPECT_EQ(v, (std::vector<std::string>{"a", "b", "c"}));
  ASSERT_TRUE(SplitArgs("set \"a b\" 'c d'", &v));
  EXPECT_EQ(v, (std::vector<std::string>{"set", "a b", "c d"}));
  ASSERT_TRUE(SplitArgs(R"("\x41\n\t\"" 'it\'s')", &v));
  EXPECT_EQ(v, (std::vector<std::string>{"A\n\t\"", "it's"}));
  ASSERT_TRUE(SplitArgs("\"\" ''", &v));
  EXPECT_EQ(v, (std::vector<std::string>{"", ""}));
  ASSERT_TRUE(SplitArgs("", &v));
  EXPECT_TRUE(v.empty());
  EXPECT_FALSE(SplitArgs("\"unterminated", &v));
  EXPECT_FALSE(SplitArgs("'unterminated", &v));
  EXPECT_FALSE(SplitArgs("\"a\"b", &v)) << "a closing quote must be followed by a space";
  EXPECT_FALSE(SplitArgs("'a'b", &v));
}

// ---------------- kvpool.conf ----------------

TEST(ConfigTest, DefaultConfFileListsEveryOption) {
  std::string text = Config::DefaultConfFile();
  for (const OptionSpec& spec : Config::Specs()) {
    EXPECT_NE(text.find("\n# " + std::string(spec.name) + " "), std::string::npos) << spec.name;
    EXPECT_NE(text.find(spec.help), std::string::npos) << spec.name;
  }
}

TEST(ConfigTest, DefaultConfFileLoadsAsIs) {
  TempFile f(Config::DefaultConfFile());
  Config loaded, defaults;
  Status s = loaded.LoadFile(f.path());
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(loaded.Match("*"), defaults.Match("*"));
}

TEST(ConfigTest, DefaultConfFileUncommentedLoadsToDefaults) {
  // Uncomment every "# name value" line: the file must load and change nothing.
  std::string text = Config::DefaultConfFile(), uncommented;
  std::set<std::string> names;
  for (const OptionSpec& spec : Config::Specs()) names.insert(spec.name);
  size_t pos = 0;
  int options = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.rfind("# ", 0) == 0) {
      std::string rest = line.substr(2);
      std::string first = rest.substr(0, rest.find(' '));
      if (names.count(first) && rest.size() > first.size()) {
        uncommented += rest + "\n";
        ++options;
        continue;
      }
    }
    uncommented += line + "\n";
  }
  EXPECT_EQ(options, static_cast<int>(Config::Specs().size()));
  TempFile f(uncommented);
  Config loaded, defaults;
  Status s = loaded.LoadFile(f.path());
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(loaded.Match("*"), defaults.Match("*"));
}

}  // namespace
}  // namespace kvpool
