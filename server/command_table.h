// The one command table: every command the server knows, with arity, flags
// and key positions. Families register their commands in Register*Family.
#pragma once

#include <string_view>
#include <unordered_map>
#include <vector>

#include "server/command.h"

namespace kvpool {

class CommandTable {
 public:
  // A table holding every family's commands.
  static CommandTable Build();

  void Add(const CommandSpec& spec);
  // Switches a command off: Find() no longer knows it. false if unknown.
  bool Disable(std::string_view name);
  // Case-insensitive; nullptr if unknown.
  const CommandSpec* Find(std::string_view name) const;
  const std::vector<CommandSpec>& All() const { return specs_; }

 private:
  std::vector<CommandSpec> specs_;
  std::unordered_map<std::string_view, size_t> index_;  // lower-case name -> specs_ index
};

// Families (one file each).
void RegisterStringFamily(CommandTable& t);
void RegisterKeyspaceFamily(CommandTable& t);
void RegisterConnectionFamily(CommandTable& t);
void RegisterTransactionFamily(CommandTable& t);
void RegisterServerFamily(CommandTable& t);
void RegisterStatsFamily(CommandTable& t);  // SLOWLOG, LATENCY, MONITOR (stats_family.cc)
void RegisterPoolFamily(CommandTable& t);
void RegisterClusterFamily(CommandTable& t);

}  // namespace kvpool
