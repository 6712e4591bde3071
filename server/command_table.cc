#include "server/command_table.h"

#include <algorithm>
#include <cstdint>

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

namespace {

// ASCII lower case; other bytes unchanged (as tolower in the "C" locale).
constexpr unsigned char Lower(unsigned char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<unsigned char>(c | 0x20) : c;
}

}  // namespace

uint64_t CommandTable::HashLower(std::string_view name) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a
  for (char c : name) h = (h ^ Lower(static_cast<unsigned char>(c))) * 1099511628211ull;
  return h | 1;  // never 0, the empty slot's mark
}

size_t CommandTable::Lookup(std::string_view name, uint64_t hash) const {
  if (slots_.empty()) return SIZE_MAX;
  size_t mask = slots_.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.hash == 0) return SIZE_MAX;
    if (s.hash != hash || s.name.size() != name.size()) continue;
    bool same = true;
    for (size_t k = 0; k < name.size() && same; ++k)
      same = Lower(static_cast<unsigned char>(name[k])) == static_cast<unsigned char>(s.name[k]);
    if (same) return i;
  }
}

void CommandTable::Rehash(size_t n) {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(n, Slot{});
  for (const Slot& s : old) {
    if (s.hash == 0) continue;
    size_t i = s.hash & (n - 1);
    while (slots_[i].hash != 0) i = (i + 1) & (n - 1);
    slots_[i] = s;
  }
}

void CommandTable::Add(const CommandSpec& spec) {
  uint64_t h = HashLower(spec.name);
  auto index = static_cast<uint32_t>(specs_.size());
  specs_.push_back(spec);
  if (size_t at = Lookup(spec.name, h); at != SIZE_MAX) {
    slots_[at].index = index;  // added again: the last one wins
    return;
  }
  if (specs_.size() * 4 > slots_.size()) Rehash(std::max<size_t>(64, slots_.size() * 2));
  size_t mask = slots_.size() - 1;
  size_t i = h & mask;
  while (slots_[i].hash != 0) i = (i + 1) & mask;
  slots_[i] = Slot{h, specs_.back().name, index};
}

bool CommandTable::Disable(std::string_view name) {
  size_t at = Lookup(name, HashLower(name));
  if (at == SIZE_MAX || slots_[at].index == kDisabled) return false;
  slots_[at].index = kDisabled;
  return true;
}

const CommandSpec* CommandTable::Find(std::string_view name) const {
  size_t at = Lookup(name, HashLower(name));
  return at == SIZE_MAX || slots_[at].index == kDisabled ? nullptr : &specs_[slots_[at].index];
}

}  // namespace kvpool
