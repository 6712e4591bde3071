// Helpers shared by the store tests.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "storage/segment/store.h"

namespace kvpool::storage {

inline constexpr int64_t kT0 = 1'700'000'000'000;  // a fixed "now"

inline std::unique_ptr<Store> OpenStore(StoreOptions o = {}) {
  auto s = Store::Open(o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return std::move(s.value());
}

inline void MustSet(Store& s, int db, std::string_view k, std::string_view v, int64_t now = kT0,
                    int64_t expire_at = 0) {
  SetOptions o;
  o.expire_at_ms = expire_at;
  ASSERT_TRUE(s.Set(db, k, v, o, now, nullptr).ok());
}

inline std::string GetStr(Store& s, int db, std::string_view k, int64_t now = kT0) {
  ItemRef r = s.Get(db, k, now);
  return r ? std::string(r.value()) : std::string("<nil>");
}

}  // namespace kvpool::storage
