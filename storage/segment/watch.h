// WatchRegistry: which WatchTokens watch which (db, key).
//
// Writers do not come here unless the key's shard has watchers (Shard::
// watchers, one relaxed load), and they call Touch while still holding the
// shard lock, so a watcher never sees a write without its token being dirty.
// Lock order: shard locks before the registry's mutex; the registry never
// takes a shard lock.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "storage/segment/store.h"

namespace kvpool::storage {

class WatchRegistry {
 public:
  // Registers token on (db, key); false if it already was.
  bool Add(int db, std::string_view key, std::shared_ptr<WatchToken> token);
  // Forgets every watch of token; returns the (db, key) pairs it had.
  std::vector<std::pair<int, std::string>> Remove(const WatchToken* token);
  // Marks dirty every token watching (db, key).
  void Touch(int db, std::string_view key);
  // Marks dirty every token watching a key of db (db < 0: of any db).
  void TouchDb(int db);

 private:
  static std::string MapKey(int db, std::string_view key);

  std::mutex mu_;
  // db (4 bytes, native order) + key -> tokens
  std::unordered_map<std::string, std::vector<std::shared_ptr<WatchToken>>> by_key_;
  std::unordered_map<const WatchToken*, std::vector<std::string>> by_token_;
};

}  // namespace kvpool::storage
