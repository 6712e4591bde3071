#include "server/command_table.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kvpool {
namespace {

void Nop(CommandContext&) {}

CommandSpec Spec(std::string_view name, int arity = 1) {
  CommandSpec s{};
  s.name = name;
  s.arity = arity;
  s.handler = &Nop;
  return s;
}

TEST(CommandTableTest, FindsEveryCommandInAnyCase) {
  CommandTable t = CommandTable::Build();
  ASSERT_GT(t.All().size(), 50u);
  for (const CommandSpec& s : t.All()) {
    std::string upper(s.name), mixed(s.name);
    for (size_t i = 0; i < upper.size(); ++i) {
      upper[i] = static_cast<char>(toupper(static_cast<unsigned char>(upper[i])));
      if (i % 2 == 0) mixed[i] = upper[i];
    }
    EXPECT_EQ(t.Find(s.name), &s) << s.name;
    EXPECT_EQ(t.Find(upper), &s) << upper;
    EXPECT_EQ(t.Find(mixed), &s) << mixed;
  }
}

TEST(CommandTableTest, UnknownNamesAreNotFound) {
  CommandTable t = CommandTable::Build();
  for (std::string_view name : {"", "ge", "gett", "get ", " get", "g\xC9t", "getx",
                                "a-name-longer-than-any-command-of-redis-at-all"})
    EXPECT_EQ(t.Find(name), nullptr) << name;
  // "GET" with a NUL appended, and a byte that only a locale would lower.
  EXPECT_EQ(t.Find(std::string_view("get\0", 4)), nullptr);
  EXPECT_EQ(t.Find("G\xC5T"), nullptr);
}

TEST(CommandTableTest, DisableAndAddAgain) {
  CommandTable t;
  std::vector<std::string> names;
  for (int i = 0; i < 500; ++i) names.push_back("cmd" + std::to_string(i));  // several rehashes
  for (const std::string& n : names) t.Add(Spec(n));
  for (size_t i = 0; i < names.size(); ++i) ASSERT_EQ(t.Find(names[i]), &t.All()[i]) << names[i];
  EXPECT_TRUE(t.Disable("CMD7"));
  EXPECT_FALSE(t.Disable("cmd7")) << "already off";
  EXPECT_FALSE(t.Disable("nosuch"));
  EXPECT_EQ(t.Find("cmd7"), nullptr);
  EXPECT_EQ(t.Find("cmd70"), &t.All()[70]) << "probes go past a disabled slot";
  t.Add(Spec(names[7], 3));
  ASSERT_NE(t.Find("Cmd7"), nullptr);
  EXPECT_EQ(t.Find("Cmd7")->arity, 3) << "added again: the last one wins";
}

}  // namespace
}  // namespace kvpool
