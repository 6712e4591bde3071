// Store writes. Pattern: allocate and fill the new item with no lock held
// (eviction happens there too, taking only victims' shard locks), then lock
// the key's shard(s), check conditions against the current item, publish,
// and release replaced items after unlocking.
#include <algorithm>
#include <cstring>

#include "storage/segment/store_impl.h"

namespace kvpool::storage {

namespace {
bool Live(const Item* it, int64_t now_ms) { return it != nullptr && !it->ExpiredAt(now_ms); }
}  // namespace

Status Store::Set(int db, std::string_view key, std::string_view value, const SetOptions& opts,
                  int64_t now_ms, SetResult* result) {
  SetResult local;
  SetResult& r = result != nullptr ? *result : local;
  r.written = false;
  r.old.Reset();
  Impl& im = *impl_;
  Impl::Loc l = im.Locate(db, key);
  Shard& s = *l.shard;

  auto refused = [&](Item* cur) {
    bool live = Live(cur, now_ms);
    if (opts.cond == SetCondition::kIfAbsent) return live;
    if (opts.cond == SetCondition::kIfPresent) return !live;
    return false;
  };
  if (opts.cond != SetCondition::kAlways) {
    // Cheap pre-check: do not allocate (or evict) for a write NX/XX refuses.
    std::lock_guard<FutexMutex> g(s.mu);
    Item** pos = Index::Find(s, l.hash, key);
    Item* cur = pos != nullptr ? *pos : nullptr;
    if (refused(cur)) {
      if (opts.want_old && Live(cur, now_ms)) {
        cur->Pin();
        r.old = ItemRef(cur);
      }
      return Status::OK();
    }
  }

  Item* item;
  if (Status st = im.AllocItem(key, value.size(), Index::GrowthBytesIfInsert(s), 0, now_ms, &item);
      !st.ok())
    return st;
  if (!value.empty()) std::memcpy(item->value_data(), value.data(), value.size());
  item->expire_at_ms.store(opts.expire_at_ms, std::memory_order_relaxed);

  Item* old = nullptr;
  {
    std::lock_guard<FutexMutex> g(s.mu);
    Item** pos = Index::Find(s, l.hash, key);
    Item* cur = pos != nullptr ? *pos : nullptr;
    const bool live = Live(cur, now_ms);
    if (refused(cur)) {
      if (opts.want_old && live) {
        cur->Pin();
        r.old = ItemRef(cur);
      }
      im.Discard(item);
      return Status::OK();
    }
    if (opts.keep_ttl && live) {
      item->expire_at_ms.store(cur->expire_at_ms.load(std::memory_order_relaxed),
                               std::memory_order_relaxed);
    }
    item->version = opts.version != 0 ? im.Observe(opts.version) : im.NextVersion();
    if (cur != nullptr) {
      old = l.idx->Replace(s, pos, item);
      if (!live) im.expired.fetch_add(1, std::memory_order_relaxed);
      if (opts.want_old && live) {
        old->Pin();
        r.old = ItemRef(old);
      }
    } else {
      l.idx->Insert(s, l.hash, item);
    }
    im.TouchLocked(db, s, key);
    r.written = true;
  }
  if (old != nullptr) im.Release(old);
  return Status::OK();
}

Status Store::MultiSet(int db, const std::vector<std::string_view>& kvs, bool if_none_exist,
                       int64_t now_ms, bool* written) {
  bool ignored;
  bool& w = written != nullptr ? *written : ignored;
  w = false;
  if (kvs.size() % 2 != 0) return Status::InvalidArgument("odd number of arguments");
  const size_t n = kvs.size() / 2;
  if (n == 0) {
    w = true;
    return Status::OK();
  }
  Impl& im = *impl_;
  Index& idx = *im.dbs[db];
  std::vector<uint64_t> hashes(n);
  ShardSet shards;
  for (size_t i = 0; i < n; ++i) {
    hashes[i] = HashKey(kvs[2 * i]);
    shards.Add(Index::ShardOf(hashes[i]));
  }

  // Reserve memory for all items at once, then allocate and fill them.
  size_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    total += SlabAllocator::AllocSize(Item::BytesFor(kvs[2 * i].size(), kvs[2 * i + 1].size()));
  }
  if (Status st = im.EnsureMemory(total, now_ms); !st.ok()) return st;
  std::vector<Item*> items(n, nullptr);
  for (size_t i = 0; i < n; ++i) {
    Status st = im.AllocItem(kvs[2 * i], kvs[2 * i + 1].size(), 0, 0, now_ms, &items[i]);
    if (!st.ok()) {
      for (size_t j = 0; j < i; ++j) im.Discard(items[j]);
      return st;
    }
    std::string_view v = kvs[2 * i + 1];
    if (!v.empty()) std::memcpy(items[i]->value_data(), v.data(), v.size());
  }

  std::vector<Item*> old;
  shards.ForEach([&](uint32_t si) { idx.shard(si).mu.lock(); });
  bool refused = false;
  if (if_none_exist) {
    for (size_t i = 0; i < n && !refused; ++i) {
      Shard& s = idx.shard(Index::ShardOf(hashes[i]));
      Item** pos = Index::Find(s, hashes[i], kvs[2 * i]);
      refused = pos != nullptr && Live(*pos, now_ms);
    }
  }
  if (!refused) {
    idx.PrefetchAll(hashes);
    for (size_t i = 0; i < n; ++i) {
      Shard& s = idx.shard(Index::ShardOf(hashes[i]));
      Item* item = items[i];
      item->version = im.NextVersion();
      Item** pos = Index::Find(s, hashes[i], kvs[2 * i]);
      if (pos != nullptr) {
        if (!Live(*pos, now_ms)) im.expired.fetch_add(1, std::memory_order_relaxed);
        old.push_back(idx.Replace(s, pos, item));
      } else {
        idx.Insert(s, hashes[i], item);
      }
      im.TouchLocked(db, s, kvs[2 * i]);
    }
  }
  shards.ForEach([&](uint32_t si) { idx.shard(si).mu.unlock(); });
  if (refused) {
    for (Item* it : items) im.Discard(it);
    return Status::OK();
  }
  for (Item* it : old) im.Release(it);
  w = true;
  return Status::OK();
}

PendingItem& PendingItem::operator=(PendingItem&& o) noexcept {
  if (this != &o) {
    if (item_ != nullptr) ReleaseItem(item_);
    item_ = o.item_;
    o.item_ = nullptr;
  }
  return *this;
}

PendingItem::~PendingItem() {
  if (item_ != nullptr) ReleaseItem(item_);  // never published: refs == 1, so freed
}

char* PendingItem::value_data() { return item_->value_data(); }
size_t PendingItem::value_size() const { return item_->val_len; }
std::string_view PendingItem::key() const { return item_->key(); }
void PendingItem::set_version(uint64_t version) { item_->version = version; }
void PendingItem::set_expire_at_ms(int64_t ms) {
  item_->expire_at_ms.store(ms, std::memory_order_relaxed);
}

uint64_t Store::NewVersion() { return impl_->NextVersion(); }
void Store::AdvanceClock(uint64_t version) { impl_->Observe(version); }
void Store::SetVersionNode(uint8_t node) { impl_->version_node = node; }

StatusOr<PendingItem> Store::Prepare(std::string_view key, size_t value_len, int64_t now_ms) {
  Item* item;
  if (Status st = impl_->AllocItem(key, value_len, 0, 0, now_ms, &item); !st.ok()) return st;
  item->expire_at_ms.store(0, std::memory_order_relaxed);
  return PendingItem(item);
}

Status Store::Publish(int db, std::vector<PendingItem>* items, int64_t now_ms,
                      const PublishOptions& opts) {
  const bool if_not_older = opts.if_not_older;
  size_t* applied = opts.applied;
  std::vector<ItemRef>* current = opts.current;
  if (applied != nullptr) *applied = 0;
  const size_t n = items->size();
  if (current != nullptr) {
    current->clear();
    current->reserve(n);
  }
  if (n == 0) return Status::OK();
  Impl& im = *impl_;
  Index& idx = *im.dbs[db];
  std::vector<uint64_t> hashes(n);
  ShardSet shards;
  for (size_t i = 0; i < n; ++i) {
    hashes[i] = HashKey((*items)[i].key());
    shards.Add(Index::ShardOf(hashes[i]));
  }
  std::vector<Item*> old;
  shards.ForEach([&](uint32_t si) { idx.shard(si).mu.lock(); });
  for (size_t i = 0; i < n; ++i) {
    Shard& s = idx.shard(Index::ShardOf(hashes[i]));
    Item* item = (*items)[i].item_;
    std::string_view key = item->key();
    Item** pos = Index::Find(s, hashes[i], key);
    if (item->version != 0 && if_not_older && pos != nullptr && Live(*pos, now_ms) &&
        (*pos)->version > item->version) {
      im.Observe(item->version);
      if (current != nullptr) {
        (*pos)->Pin();
        current->emplace_back(*pos);
      }
      continue;  // a newer value is here: this one is dropped with its PendingItem
    }
    (*items)[i].item_ = nullptr;  // the index holds it now
    if (current != nullptr) {
      item->Pin();
      current->emplace_back(item);
    }
    item->version = item->version != 0 ? im.Observe(item->version) : im.NextVersion();
    if (applied != nullptr) ++*applied;
    if (pos != nullptr) {
      if (!Live(*pos, now_ms)) im.expired.fetch_add(1, std::memory_order_relaxed);
      old.push_back(idx.Replace(s, pos, item));
    } else {
      idx.Insert(s, hashes[i], item);
    }
    im.TouchLocked(db, s, key);
  }
  shards.ForEach([&](uint32_t si) { idx.shard(si).mu.unlock(); });
  items->clear();  // frees the items dropped as older
  for (Item* it : old) im.Release(it);
  return Status::OK();
}

Status Store::Mutate(int db, std::string_view key, int64_t now_ms, const MutateFn& fn) {
  Impl& im = *impl_;
  Impl::Loc l = im.Locate(db, key);
  Shard& s = *l.shard;
  for (;;) {
    ItemRef cur(im.Lookup(db, key, now_ms, /*touch_lru=*/false, /*pin=*/true));
    Item* expected = ItemRefAccess::Get(cur);
    const int64_t expected_ttl = cur ? cur.expire_at_ms() : 0;
    Mutation m = fn(cur ? &cur : nullptr);
    if (m.kind == Mutation::kKeep) return Status::OK();
    if (m.kind == Mutation::kDelete && expected == nullptr) return Status::OK();

    Item* item = nullptr;
    if (m.kind == Mutation::kWrite) {
      size_t credit = cur ? cur.alloc_size() : 0;
      if (Status st = im.AllocItem(key, m.value.size(), Index::GrowthBytesIfInsert(s), credit,
                                   now_ms, &item);
          !st.ok())
        return st;
      if (!m.value.empty()) std::memcpy(item->value_data(), m.value.data(), m.value.size());
      item->expire_at_ms.store(m.expire_at_ms, std::memory_order_relaxed);
    }

    Item* old = nullptr;
    bool done = false;
    {
      std::lock_guard<FutexMutex> g(s.mu);
      Item** pos = Index::Find(s, l.hash, key);
      Item* now_cur = pos != nullptr ? *pos : nullptr;
      // Unchanged: the same item (pinned, so the pointer cannot be reused)
      // with the same TTL, or still no live item.
      bool same = expected != nullptr
                      ? now_cur == expected &&
                            now_cur->expire_at_ms.load(std::memory_order_relaxed) == expected_ttl
                      : !Live(now_cur, now_ms);
      if (same) {
        if (item == nullptr) {
          old = im.RemoveLocked(db, *l.idx, s, pos, Removal::kDeleted);
          l.idx->MaybeShrink(s);
        } else {
          item->version = im.NextVersion();
          if (now_cur != nullptr) {
            if (expected == nullptr) im.expired.fetch_add(1, std::memory_order_relaxed);
            old = l.idx->Replace(s, pos, item);
          } else {
            l.idx->Insert(s, l.hash, item);
          }
          im.TouchLocked(db, s, key);
        }
        done = true;
      }
    }
    if (old != nullptr) im.Release(old);
    if (done) return Status::OK();
    if (item != nullptr) im.Discard(item);  // lost a race: run fn again
  }
}

bool Store::Del(int db, std::string_view key, int64_t now_ms) {
  Impl& im = *impl_;
  Impl::Loc l = im.Locate(db, key);
  Shard& s = *l.shard;
  Item* dead;
  bool live;
  {
    std::lock_guard<FutexMutex> g(s.mu);
    Item** pos = Index::Find(s, l.hash, key);
    if (pos == nullptr) return false;
    live = Live(*pos, now_ms);
    dead = im.RemoveLocked(db, *l.idx, s, pos, live ? Removal::kDeleted : Removal::kExpired);
    l.idx->MaybeShrink(s);
  }
  im.Release(dead);
  return live;
}

bool Store::DelIfOlder(int db, std::string_view key, uint64_t version, int64_t now_ms) {
  Impl& im = *impl_;
  Impl::Loc l = im.Locate(db, key);
  Shard& s = *l.shard;
  Item* dead;
  {
    std::lock_guard<FutexMutex> g(s.mu);
    im.Observe(version);
    Item** pos = Index::Find(s, l.hash, key);
    if (pos == nullptr || !Live(*pos, now_ms) || (*pos)->version >= version) return false;
    dead = im.RemoveLocked(db, *l.idx, s, pos, Removal::kDeleted);
    l.idx->MaybeShrink(s);
  }
  im.Release(dead);
  return true;
}

bool Store::SetExpire(int db, std::string_view key, int64_t expire_at_ms, ExpireCondition cond,
                      int64_t now_ms) {
  Impl& im = *impl_;
  Impl::Loc l = im.Locate(db, key);
  Shard& s = *l.shard;
  Item* dead = nullptr;
  bool changed = false;
  {
    std::lock_guard<FutexMutex> g(s.mu);
    Item** pos = Index::Find(s, l.hash, key);
    if (pos == nullptr) return false;
    Item* it = *pos;
    if (!Live(it, now_ms)) {
      dead = im.RemoveLocked(db, *l.idx, s, pos, Removal::kExpired);
      l.idx->MaybeShrink(s);
    } else {
      const int64_t cur = it->expire_at_ms.load(std::memory_order_relaxed);
      // As Redis: a key without TTL has an infinite TTL for GT/LT; so does 0.
      auto inf = [](int64_t t) { return t == 0 ? INT64_MAX : t; };
      bool ok = true;
      switch (cond) {
        case ExpireCondition::kAlways: break;
        case ExpireCondition::kNX: ok = cur == 0; break;
        case ExpireCondition::kXX: ok = cur != 0; break;
        case ExpireCondition::kGT: ok = cur != 0 && inf(expire_at_ms) > cur; break;
        case ExpireCondition::kLT: ok = inf(expire_at_ms) < inf(cur); break;
      }
      if (ok && expire_at_ms == 0 && cur == 0) ok = false;  // PERSIST without TTL
      if (ok) {
        changed = true;
        if (expire_at_ms != 0 && expire_at_ms <= now_ms) {
          dead = im.RemoveLocked(db, *l.idx, s, pos, Removal::kDeleted);
          l.idx->MaybeShrink(s);
        } else {
          l.idx->SetExpire(s, it, expire_at_ms);
          im.TouchLocked(db, s, key);
        }
      }
    }
  }
  if (dead != nullptr) im.Release(dead);
  return changed;
}

Status Store::Rename(int db, std::string_view src, std::string_view dst, bool nx,
                     int64_t now_ms) {
  Impl& im = *impl_;
  if (src == dst) {
    if (!Exists(db, src, now_ms)) return Status::NotFound();
    return nx ? Status::Aborted() : Status::OK();
  }
  Impl::Loc ls = im.Locate(db, src);
  Impl::Loc ld = im.Locate(db, dst);
  Index& idx = *ls.idx;
  for (;;) {
    ItemRef pin(im.Lookup(db, src, now_ms, /*touch_lru=*/false, /*pin=*/true));
    if (!pin) return Status::NotFound();
    if (nx && Exists(db, dst, now_ms)) return Status::Aborted();
    Item* expected = ItemRefAccess::Get(pin);
    Item* item;
    // The key is part of the item: rename writes a new one. It frees the
    // source's bytes, so only the difference needs room.
    if (Status st = im.AllocItem(dst, pin.value().size(), Index::GrowthBytesIfInsert(*ld.shard),
                                 pin.alloc_size(), now_ms, &item);
        !st.ok())
      return st;
    if (!pin.value().empty())
      std::memcpy(item->value_data(), pin.value().data(), pin.value().size());

    Shard* first = ls.shard < ld.shard ? ls.shard : ld.shard;
    Shard* second = ls.shard < ld.shard ? ld.shard : ls.shard;
    first->mu.lock();
    if (second != first) second->mu.lock();
    Item* src_item = nullptr;
    Item* dst_old = nullptr;
    Status result = Status::OK();
    bool retry = false;
    Item** spos = Index::Find(*ls.shard, ls.hash, src);
    if (spos == nullptr || *spos != expected || !Live(expected, now_ms)) {
      retry = true;
    } else {
      Item** dpos = Index::Find(*ld.shard, ld.hash, dst);
      if (nx && dpos != nullptr && Live(*dpos, now_ms)) {
        result = Status::Aborted();
      } else {
        item->expire_at_ms.store(expected->expire_at_ms.load(std::memory_order_relaxed),
                                 std::memory_order_relaxed);
        item->SetLru(expected->Lru());
        item->version = im.NextVersion();
        src_item = im.RemoveLocked(db, idx, *ls.shard, spos, Removal::kDeleted);
        dpos = Index::Find(*ld.shard, ld.hash, dst);  // the unlink may have moved it
        if (dpos != nullptr) {
          if (!Live(*dpos, now_ms)) im.expired.fetch_add(1, std::memory_order_relaxed);
          dst_old = idx.Replace(*ld.shard, dpos, item);
        } else {
          idx.Insert(*ld.shard, ld.hash, item);
        }
        im.TouchLocked(db, *ld.shard, dst);
        idx.MaybeShrink(*ls.shard);
      }
    }
    if (second != first) second->mu.unlock();
    first->mu.unlock();
    if (src_item == nullptr) im.Discard(item);
    if (src_item != nullptr) im.Release(src_item);
    if (dst_old != nullptr) im.Release(dst_old);
    if (!retry) return result;
  }
}

}  // namespace kvpool::storage
