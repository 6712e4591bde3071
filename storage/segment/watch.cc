#include "storage/segment/watch.h"

#include <algorithm>
#include <cstring>

namespace kvpool::storage {

std::string WatchRegistry::MapKey(int db, std::string_view key) {
  std::string k(sizeof(int) + key.size(), '\0');
  std::memcpy(k.data(), &db, sizeof(int));
  std::memcpy(k.data() + sizeof(int), key.data(), key.size());
  return k;
}

bool WatchRegistry::Add(int db, std::string_view key, std::shared_ptr<WatchToken> token) {
  std::string mk = MapKey(db, key);
  std::lock_guard<std::mutex> l(mu_);
  auto& tokens = by_key_[mk];
  for (const auto& t : tokens) {
    if (t == token) return false;
  }
  by_token_[token.get()].push_back(mk);
  tokens.push_back(std::move(token));
  return true;
}

std::vector<std::pair<int, std::string>> WatchRegistry::Remove(const WatchToken* token) {
  std::vector<std::pair<int, std::string>> out;
  std::lock_guard<std::mutex> l(mu_);
  auto it = by_token_.find(token);
  if (it == by_token_.end()) return out;
  for (const std::string& mk : it->second) {
    auto k = by_key_.find(mk);
    if (k != by_key_.end()) {
      auto& v = k->second;
      v.erase(std::remove_if(v.begin(), v.end(), [&](const auto& t) { return t.get() == token; }),
              v.end());
      if (v.empty()) by_key_.erase(k);
    }
    int db;
    std::memcpy(&db, mk.data(), sizeof(int));
    out.emplace_back(db, mk.substr(sizeof(int)));
  }
  by_token_.erase(it);
  return out;
}

void WatchRegistry::Touch(int db, std::string_view key) {
  std::string mk = MapKey(db, key);
  std::lock_guard<std::mutex> l(mu_);
  auto it = by_key_.find(mk);
  if (it == by_key_.end()) return;
  for (const auto& t : it->second) t->dirty.store(true, std::memory_order_release);
}

void WatchRegistry::TouchDb(int db) {
  std::lock_guard<std::mutex> l(mu_);
  for (auto& [mk, tokens] : by_key_) {
    int d;
    std::memcpy(&d, mk.data(), sizeof(int));
    if (db >= 0 && d != db) continue;
    for (const auto& t : tokens) t->dirty.store(true, std::memory_order_release);
  }
}

}  // namespace kvpool::storage
