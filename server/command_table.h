// The one command table: every command the server knows, with arity, flags
// and key positions. Families register their commands in Register*Family.
#pragma once

#include <cstdint>
#include <string_view>
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
  // Case-insensitive; nullptr if unknown. Runs once per command: no
  // allocation, no copy of the name, one pass over its bytes to hash them
  // lowered, then (usually) one probe and one comparison.
  const CommandSpec* Find(std::string_view name) const;
  const std::vector<CommandSpec>& All() const { return specs_; }

 private:
  // Open addressing, linear probing, at most a quarter full. A slot holds
  // the name's hash (0 = empty), the name (a static string, lower case) and
  // the specs_ index (kDisabled once switched off: the slot stays so that
  // probes go past it).
  struct Slot {
    uint64_t hash = 0;
    std::string_view name;
    uint32_t index = 0;
  };
  static constexpr uint32_t kDisabled = UINT32_MAX;
  static uint64_t HashLower(std::string_view name);
  // The position of `name`'s slot in slots_, or SIZE_MAX if it has none.
  size_t Lookup(std::string_view name, uint64_t hash) const;
  void Rehash(size_t slots);

  std::vector<CommandSpec> specs_;  // names are lower case
  std::vector<Slot> slots_;         // size a power of two
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
