#include "server/command_table.h"

#include <cctype>
#include <cstring>
#include <string>

namespace kvpool {

CommandTable CommandTable::Build() {
  CommandTable t;
  RegisterStringFamily(t);
  RegisterKeyspaceFamily(t);
  RegisterConnectionFamily(t);
  RegisterTransactionFamily(t);
  RegisterServerFamily(t);
  RegisterPoolFamily(t);
  RegisterClusterFamily(t);
  RegisterStatsFamily(t);
  return t;
}

void CommandTable::Add(const CommandSpec& spec) {
  // specs_ may reallocate; the index maps names (static strings) to positions.
  index_[spec.name] = specs_.size();
  specs_.push_back(spec);
}

bool CommandTable::Disable(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  auto it = index_.find(lower);
  if (it == index_.end()) return false;
  index_.erase(it);
  return true;
}

const CommandSpec* CommandTable::Find(std::string_view name) const {
  char buf[32];
  if (name.size() >= sizeof(buf)) return nullptr;
  for (size_t i = 0; i < name.size(); ++i)
    buf[i] = static_cast<char>(tolower(static_cast<unsigned char>(name[i])));
  auto it = index_.find(std::string_view(buf, name.size()));
  return it == index_.end() ? nullptr : &specs_[it->second];
}

}  // namespace kvpool
