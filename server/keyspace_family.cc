// Keyspace commands (Redis 7.0 db.c / expire.c semantics): deletion,
// existence, TTLs, iteration, renaming, databases. Handlers parse their
// arguments, make Store calls and reply; arity, auth, MULTI queueing and the
// noeviction OOM gate were checked by the dispatcher.
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "server/command.h"
#include "server/command_table.h"
#include "server/errors.h"
#include "server/key_access.h"
#include "server/pool_commands.h"
#include "server/server_context.h"
#include "server/util/strings.h"
#include "storage/segment/store.h"

namespace kvpool {
namespace {

using protocol::ReplyBuilder;
using storage::ExpireCondition;
using storage::ItemRef;
using storage::Mutation;
using storage::SetCondition;
using storage::SetOptions;
using storage::SetResult;

// Slots visited per Store::Scan call while KEYS walks the whole database.
constexpr size_t kKeysScanBatch = 1024;
// SCAN's COUNT when none is given (as Redis).
constexpr long kDefaultScanCount = 10;

storage::Store& StoreOf(CommandContext& cx) { return cx.server().store(); }

// keyspace_hits / keyspace_misses, counted where Redis's lookupKeyRead does.
void CountLookup(CommandContext& cx, bool hit) {
  ServerStats& st = cx.server().stats();
  (hit ? st.keyspace_hits : st.keyspace_misses).fetch_add(1, std::memory_order_relaxed);
}

void ReplyStoreError(CommandContext& cx, const Status& s) {
  cx.reply().Error(errors::FromStatus(s));
}

// A database index argument as SELECT/MOVE/COPY parse it (Redis
// getIntFromObjectOrReply, then selectDb). False after replying.
bool ParseDbIndex(CommandContext& cx, std::string_view text, int* db) {
  int64_t v;
  if (!ParseInt64(text, &v)) {
    cx.reply().Error(errors::kNotInteger);
    return false;
  }
  if (v < INT32_MIN || v > INT32_MAX) {
    cx.reply().Error(errors::kIntOutOfRange);
    return false;
  }
  if (v < 0 || v >= StoreOf(cx).databases()) {
    cx.reply().Error(errors::kDbIndexOutOfRange);
    return false;
  }
  *db = static_cast<int>(v);
  return true;
}

// ---- deletion and existence ----

// DEL and UNLINK: the Store frees memory without blocking either way.
// A key whose node could not answer fails the reply, saying why (naming
// that node) and how many keys were and were not deleted.
void CmdDel(CommandContext& cx) {
  keys::MultiDel(cx, cx.args().subspan(1),
                 [](ReplyBuilder& rb, std::vector<int8_t>& flags, std::string_view why) {
                   int64_t removed = 0;
                   size_t failed = 0;
                   for (int8_t f : flags) {
                     removed += f == 1;
                     failed += f < 0;
                   }
                   if (failed == 0) return rb.Integer(removed);
                   rb.Error(errors::PoolNotDeleted(why, failed, flags.size(), removed));
                 });
}

// EXISTS and TOUCH: the number of keys present (a key once per time it is
// named), counted as keyspace hits and misses.
keys::FlagsReply CountPresent(CommandContext& cx) {
  ServerStats* stats = &cx.server().stats();
  return [stats](ReplyBuilder& rb, std::vector<int8_t>& flags, std::string_view) {
    int64_t count = 0;
    for (int8_t f : flags) count += f == 1;
    stats->keyspace_hits.fetch_add(count, std::memory_order_relaxed);
    stats->keyspace_misses.fetch_add(flags.size() - count, std::memory_order_relaxed);
    rb.Integer(count);
  };
}

// EXISTS counts a key once per time it is named. Peek: no LRU touch, as
// Redis's LOOKUP_NOTOUCH.
// A key whose node could not answer counts as absent.
void CmdExists(CommandContext& cx) {
  keys::MultiExists(cx, cx.args().subspan(1), CountPresent(cx));
}

// TOUCH: a read of each key (updates LRU), counting the ones that exist.
// A key whose node could not answer counts as absent (as EXISTS).
void CmdTouch(CommandContext& cx) {
  keys::MultiTouch(cx, cx.args().subspan(1), CountPresent(cx));
}

void CmdType(CommandContext& cx) {
  bool found = static_cast<bool>(StoreOf(cx).Peek(cx.db(), cx.arg(1), cx.now_ms()));
  CountLookup(cx, found);
  cx.reply().SimpleString(found ? "string" : "none");
}

// ---- expiry ----

void ReplyInvalidExpireTime(CommandContext& cx) {
  cx.reply().Error(std::string(errors::kInvalidExpireTimePrefix) + ToLower(cx.arg(0)) +
                   errors::kInvalidExpireTimeSuffix);
}

// EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT key time [NX|XX|GT|LT ...], as Redis's
// expireGenericCommand: options first, then the number; the time may be
// negative (the key is deleted) but must not overflow in ms.
void ExpireGeneric(CommandContext& cx, int64_t basetime, bool seconds) {
  bool nx = false, xx = false, gt = false, lt = false;
  for (size_t j = 3; j < cx.argc(); ++j) {
    std::string_view opt = cx.arg(j);
    if (EqualsIgnoreCase(opt, "nx")) {
      nx = true;
    } else if (EqualsIgnoreCase(opt, "xx")) {
      xx = true;
    } else if (EqualsIgnoreCase(opt, "gt")) {
      gt = true;
    } else if (EqualsIgnoreCase(opt, "lt")) {
      lt = true;
    } else {
      cx.reply().Error(std::string(errors::kUnsupportedOptionPrefix) + std::string(opt));
      return;
    }
  }
  if (nx && (xx || gt || lt)) {
    cx.reply().Error(errors::kNxXxGtLt);
    return;
  }
  if (gt && lt) {
    cx.reply().Error(errors::kGtAndLt);
    return;
  }

  int64_t when;
  if (!ParseInt64(cx.arg(2), &when)) {
    cx.reply().Error(errors::kNotInteger);
    return;
  }
  if (seconds) {
    if (when > INT64_MAX / 1000 || when < INT64_MIN / 1000) {
      ReplyInvalidExpireTime(cx);
      return;
    }
    when *= 1000;
  }
  if (when > INT64_MAX - basetime) {
    ReplyInvalidExpireTime(cx);
    return;
  }
  when += basetime;

  storage::Store& store = StoreOf(cx);
  ExpireCondition cond = ExpireCondition::kAlways;
  if (nx) {
    cond = ExpireCondition::kNX;
  } else if (gt) {
    cond = ExpireCondition::kGT;  // XX GT == GT: GT already fails on a key without TTL
  } else if (lt) {
    cond = ExpireCondition::kLT;
    if (xx) {
      // XX LT: LT alone succeeds on a key without TTL; XX forbids that. The
      // Store takes one condition, so check XX here (see the report: a
      // combined condition would close the window between the two calls).
      ItemRef ref = store.Peek(cx.db(), cx.arg(1), cx.now_ms());
      if (!ref || ref.expire_at_ms() == 0) {
        cx.reply().Integer(0);
        return;
      }
    }
  } else if (xx) {
    cond = ExpireCondition::kXX;
  }
  // To the Store 0 means PERSIST; any time <= now deletes the key, so a
  // non-positive time becomes 1 (still in the past, and still below every
  // real expiry for GT/LT comparisons).
  int64_t at = when <= 0 ? 1 : when;
  bool changed = store.SetExpire(cx.db(), cx.arg(1), at, cond, cx.now_ms());
  cx.reply().Integer(changed ? 1 : 0);
}

void CmdExpire(CommandContext& cx) { ExpireGeneric(cx, cx.now_ms(), true); }
void CmdPExpire(CommandContext& cx) { ExpireGeneric(cx, cx.now_ms(), false); }
void CmdExpireAt(CommandContext& cx) { ExpireGeneric(cx, 0, true); }
void CmdPExpireAt(CommandContext& cx) { ExpireGeneric(cx, 0, false); }

// TTL/PTTL/EXPIRETIME/PEXPIRETIME: -2 missing, -1 no expiry; seconds are
// rounded as Redis does, (ms + 500) / 1000.
void TtlGeneric(CommandContext& cx, bool in_ms, bool absolute) {
  ItemRef ref = StoreOf(cx).Peek(cx.db(), cx.arg(1), cx.now_ms());
  CountLookup(cx, static_cast<bool>(ref));
  if (!ref) {
    cx.reply().Integer(-2);
    return;
  }
  int64_t expire = ref.expire_at_ms();
  if (expire == 0) {
    cx.reply().Integer(-1);
    return;
  }
  int64_t ttl = absolute ? expire : expire - cx.now_ms();
  if (ttl < 0) ttl = 0;
  cx.reply().Integer(in_ms ? ttl : (ttl + 500) / 1000);
}

void CmdTtl(CommandContext& cx) { TtlGeneric(cx, false, false); }
void CmdPTtl(CommandContext& cx) { TtlGeneric(cx, true, false); }
void CmdExpireTime(CommandContext& cx) { TtlGeneric(cx, false, true); }
void CmdPExpireTime(CommandContext& cx) { TtlGeneric(cx, true, true); }

void CmdPersist(CommandContext& cx) {
  // XX: true only when the key had a TTL, which is exactly PERSIST's 1.
  bool changed = StoreOf(cx).SetExpire(cx.db(), cx.arg(1), 0, ExpireCondition::kXX, cx.now_ms());
  cx.reply().Integer(changed ? 1 : 0);
}

// ---- iteration ----

// KEYS pattern: a Store::Scan loop to completion. Scan may return a key more
// than once (if the index resizes meanwhile); KEYS returns each once.
void CmdKeys(CommandContext& cx) {
  if (PoolKeys(cx)) return;
  std::string_view pattern = cx.arg(1);
  std::function<bool(std::string_view)> match;
  if (pattern != "*") match = [pattern](std::string_view key) { return GlobMatch(pattern, key); };
  storage::Store& store = StoreOf(cx);
  std::vector<std::string> keys;
  uint64_t cursor = 0;
  do {
    storage::ScanResult r = store.Scan(cx.db(), cursor, kKeysScanBatch, match, cx.now_ms());
    if (keys.empty()) {
      keys = std::move(r.keys);
    } else {
      for (std::string& k : r.keys) keys.push_back(std::move(k));
    }
    cursor = r.next_cursor;
  } while (cursor != 0);

  std::unordered_set<std::string_view> seen;
  seen.reserve(keys.size());
  size_t n = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (seen.insert(keys[i]).second) ++n;
  }
  ReplyBuilder& rb = cx.reply();
  rb.ArrayHeader(n);
  if (n == keys.size()) {
    for (const std::string& k : keys) rb.Bulk(k);
    return;
  }
  seen.clear();
  for (const std::string& k : keys) {
    if (seen.insert(k).second) rb.Bulk(k);
  }
}

// Redis parseScanCursorOrReply: strtoul's acceptance (a leading '+' or '-'
// is taken, "-1" wraps), no leading space, no trailing bytes, no overflow.
bool ParseScanCursor(std::string_view text, uint64_t* cursor) {
  std::string buf(text);  // NUL-terminated for strtoull
  if (!buf.empty() && isspace(static_cast<unsigned char>(buf[0]))) return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = strtoull(buf.c_str(), &end, 10);
  if (*end != '\0' || errno == ERANGE) return false;
  *cursor = v;
  return true;
}

// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
void CmdScan(CommandContext& cx) {
  if (PoolScan(cx)) return;
  uint64_t cursor;
  if (!ParseScanCursor(cx.arg(1), &cursor)) {
    cx.reply().Error(errors::kInvalidCursor);
    return;
  }
  long count = kDefaultScanCount;
  std::string_view pattern, type;
  bool use_pattern = false, use_type = false;
  for (size_t i = 2; i < cx.argc();) {
    std::string_view opt = cx.arg(i);
    bool has_value = i + 1 < cx.argc();
    if (EqualsIgnoreCase(opt, "count") && has_value) {
      int64_t v;
      if (!ParseInt64(cx.arg(i + 1), &v)) {
        cx.reply().Error(errors::kNotInteger);
        return;
      }
      if (v < 1) {
        cx.reply().Error(errors::kSyntax);
        return;
      }
      count = static_cast<long>(v);
    } else if (EqualsIgnoreCase(opt, "match") && has_value) {
      pattern = cx.arg(i + 1);
      use_pattern = pattern != "*";
    } else if (EqualsIgnoreCase(opt, "type") && has_value) {
      type = cx.arg(i + 1);
      use_type = true;
    } else {
      cx.reply().Error(errors::kSyntax);
      return;
    }
    i += 2;
  }

  std::function<bool(std::string_view)> match;
  if (use_pattern) match = [pattern](std::string_view key) { return GlobMatch(pattern, key); };
  storage::ScanResult r =
      StoreOf(cx).Scan(cx.db(), cursor, static_cast<size_t>(count), match, cx.now_ms());
  // Every key here is a string: TYPE string filters nothing, any other type
  // (known or not, as Redis 7.0) filters everything; the cursor moves on.
  if (use_type && !EqualsIgnoreCase(type, "string")) r.keys.clear();

  ReplyBuilder& rb = cx.reply();
  rb.ArrayHeader(2);
  rb.Bulk(std::to_string(r.next_cursor));
  rb.BulkArray(r.keys);
}

void CmdRandomKey(CommandContext& cx) {
  if (PoolRandomKey(cx)) return;
  std::string key;
  if (StoreOf(cx).RandomKey(cx.db(), cx.now_ms(), &key)) {
    cx.reply().Bulk(key);
  } else {
    cx.reply().Null();
  }
}

// ---- renaming and copying ----

void RenameGeneric(CommandContext& cx, bool nx) {
  keys::Rename(cx, cx.arg(1), cx.arg(2), nx,
               [nx](ReplyBuilder& rb, keys::RenameResult r, std::string_view error) {
                 switch (r) {
                   case keys::RenameResult::kRenamed:
                     return nx ? rb.Integer(1) : rb.Ok();
                   case keys::RenameResult::kNoSuchKey:
                     return rb.Error(errors::kNoSuchKey);
                   case keys::RenameResult::kDestinationExists:
                     return rb.Integer(0);
                   case keys::RenameResult::kError:
                     return rb.Error(error);
                 }
               });
}

void CmdRename(CommandContext& cx) { RenameGeneric(cx, false); }
void CmdRenameNx(CommandContext& cx) { RenameGeneric(cx, true); }

// MOVE key db: copy into db if absent there, then delete the source only if
// it is still the version that was copied.
void CmdMove(CommandContext& cx) {
  int dst_db;
  if (!ParseDbIndex(cx, cx.arg(2), &dst_db)) return;
  if (dst_db == cx.db()) {
    cx.reply().Error(errors::kSameObject);
    return;
  }
  storage::Store& store = StoreOf(cx);
  ItemRef ref = store.Peek(cx.db(), cx.arg(1), cx.now_ms());
  if (!ref) {
    cx.reply().Integer(0);
    return;
  }
  SetOptions opts;
  opts.cond = SetCondition::kIfAbsent;
  opts.expire_at_ms = ref.expire_at_ms();
  SetResult res;
  Status s = store.Set(dst_db, cx.arg(1), ref.value(), opts, cx.now_ms(), &res);
  if (!s.ok()) {
    ReplyStoreError(cx, s);
    return;
  }
  if (!res.written) {
    cx.reply().Integer(0);
    return;
  }
  uint64_t version = ref.version();
  // A delete never allocates, so Mutate cannot fail with OOM here.
  store
      .Mutate(cx.db(), cx.arg(1), cx.now_ms(),
              [version](const ItemRef* cur) {
                Mutation m;
                if (cur && cur->version() == version) m.kind = Mutation::kDelete;
                return m;
              })
      .IgnoreError();
  cx.reply().Integer(1);
}

// COPY source destination [DB destination-db] [REPLACE]
void CmdCopy(CommandContext& cx) {
  int dst_db = cx.db();
  bool replace = false;
  for (size_t j = 3; j < cx.argc(); ++j) {
    if (EqualsIgnoreCase(cx.arg(j), "replace")) {
      replace = true;
    } else if (EqualsIgnoreCase(cx.arg(j), "db") && j + 1 < cx.argc()) {
      if (!ParseDbIndex(cx, cx.arg(j + 1), &dst_db)) return;
      ++j;
    } else {
      cx.reply().Error(errors::kSyntax);
      return;
    }
  }
  if (dst_db == cx.db() && cx.arg(1) == cx.arg(2)) {
    cx.reply().Error(errors::kSameObject);
    return;
  }
  storage::Store& store = StoreOf(cx);
  ItemRef ref = store.Get(cx.db(), cx.arg(1), cx.now_ms());
  CountLookup(cx, static_cast<bool>(ref));
  if (!ref) {
    cx.reply().Integer(0);
    return;
  }
  SetOptions opts;
  opts.cond = replace ? SetCondition::kAlways : SetCondition::kIfAbsent;
  opts.expire_at_ms = ref.expire_at_ms();
  SetResult res;
  Status s = store.Set(dst_db, cx.arg(2), ref.value(), opts, cx.now_ms(), &res);
  if (!s.ok()) {
    ReplyStoreError(cx, s);
    return;
  }
  cx.reply().Integer(res.written ? 1 : 0);
}

// ---- databases ----

void CmdDbSize(CommandContext& cx) {
  if (PoolDbSize(cx)) return;
  cx.reply().Integer(static_cast<int64_t>(StoreOf(cx).DbSize(cx.db())));
}

// [ASYNC|SYNC]: both accepted; the Store's flush does not block on freeing.
bool ParseFlushMode(CommandContext& cx) {
  if (cx.argc() == 1) return true;
  if (cx.argc() == 2 &&
      (EqualsIgnoreCase(cx.arg(1), "sync") || EqualsIgnoreCase(cx.arg(1), "async"))) {
    return true;
  }
  cx.reply().Error(errors::kSyntax);
  return false;
}

void CmdFlushDb(CommandContext& cx) {
  if (PoolFlush(cx)) return;
  if (!ParseFlushMode(cx)) return;
  StoreOf(cx).FlushDb(cx.db());
  cx.reply().Ok();
}

void CmdFlushAll(CommandContext& cx) {
  if (PoolFlush(cx)) return;
  if (!ParseFlushMode(cx)) return;
  StoreOf(cx).FlushAll();
  cx.reply().Ok();
}

void CmdSelect(CommandContext& cx) {
  int db;
  if (!ParseDbIndex(cx, cx.arg(1), &db)) return;
  cx.client().db = db;
  cx.client().info->db.store(db, std::memory_order_relaxed);
  cx.reply().Ok();
}

}  // namespace

void RegisterKeyspaceFamily(CommandTable& t) {
  constexpr uint32_t W = kCmdWrite, R = kCmdReadOnly, F = kCmdFast, M = kCmdDenyOom,
                     P = kCmdPoolAware;
  // name, arity, flags, first_key, last_key, key_step, handler, group, summary
  t.Add({"del", -2, W | P, 1, -1, 1, CmdDel, "generic", "Delete a key"});
  t.Add({"unlink", -2, W | F | P, 1, -1, 1, CmdDel, "generic",
         "Delete a key asynchronously in another thread. Otherwise it is just as DEL, but non "
         "blocking."});
  t.Add({"exists", -2, R | F | P, 1, -1, 1, CmdExists, "generic", "Determine if a key exists"});
  t.Add({"touch", -2, R | F | P, 1, -1, 1, CmdTouch, "generic",
         "Alters the last access time of a key(s). Returns the number of existing keys "
         "specified."});
  t.Add({"type", 2, R | F, 1, 1, 1, CmdType, "generic", "Determine the type stored at key"});
  t.Add(
      {"expire", -3, W | F, 1, 1, 1, CmdExpire, "generic", "Set a key's time to live in seconds"});
  t.Add({"pexpire", -3, W | F, 1, 1, 1, CmdPExpire, "generic",
         "Set a key's time to live in milliseconds"});
  t.Add({"expireat", -3, W | F, 1, 1, 1, CmdExpireAt, "generic",
         "Set the expiration for a key as a UNIX timestamp"});
  t.Add({"pexpireat", -3, W | F, 1, 1, 1, CmdPExpireAt, "generic",
         "Set the expiration for a key as a UNIX timestamp specified in milliseconds"});
  t.Add({"ttl", 2, R | F, 1, 1, 1, CmdTtl, "generic", "Get the time to live for a key in seconds"});
  t.Add({"pttl", 2, R | F, 1, 1, 1, CmdPTtl, "generic",
         "Get the time to live for a key in milliseconds"});
  t.Add({"expiretime", 2, R | F, 1, 1, 1, CmdExpireTime, "generic",
         "Get the expiration Unix timestamp for a key"});
  t.Add({"pexpiretime", 2, R | F, 1, 1, 1, CmdPExpireTime, "generic",
         "Get the expiration Unix timestamp for a key in milliseconds"});
  t.Add({"persist", 2, W | F, 1, 1, 1, CmdPersist, "generic", "Remove the expiration from a key"});
  t.Add({"keys", 2, R | P, 0, 0, 0, CmdKeys, "generic", "Find all keys matching the given pattern"});
  t.Add({"scan", -2, R | P, 0, 0, 0, CmdScan, "generic", "Incrementally iterate the keys space"});
  t.Add({"randomkey", 1, R | P, 0, 0, 0, CmdRandomKey, "generic",
         "Return a random key from the keyspace"});
  t.Add({"rename", 3, W | P, 1, 2, 1, CmdRename, "generic", "Rename a key"});
  t.Add({"renamenx", 3, W | F | P, 1, 2, 1, CmdRenameNx, "generic",
         "Rename a key, only if the new key does not exist"});
  t.Add({"move", 3, W | F, 1, 1, 1, CmdMove, "generic", "Move a key to another database"});
  t.Add({"copy", -3, W | M, 1, 2, 1, CmdCopy, "generic", "Copy a key"});
  t.Add({"dbsize", 1, R | F | P, 0, 0, 0, CmdDbSize, "server",
         "Return the number of keys in the selected database"});
  t.Add({"flushdb", -1, W | P, 0, 0, 0, CmdFlushDb, "server",
         "Remove all keys from the current database"});
  t.Add({"flushall", -1, W | P, 0, 0, 0, CmdFlushAll, "server", "Remove all keys from all databases"});
  t.Add({"select", 2, kCmdLoading | kCmdStale | F | kCmdConnection, 0, 0, 0, CmdSelect,
         "connection", "Change the selected database for the current connection"});
}

}  // namespace kvpool
