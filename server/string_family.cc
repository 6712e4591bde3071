// String commands (Redis 7.0 t_string.c semantics) and MEXISTS. Handlers
// parse their arguments, make Store calls and reply; arity, auth, MULTI
// queueing and the noeviction OOM gate were checked by the dispatcher.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/deferred_reply.h"
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
using storage::ItemRef;
using storage::Mutation;
using storage::SetCondition;
using storage::SetOptions;
using storage::SetResult;

// Replies value[offset, offset+len) of a pinned item, by reference when large.
void ReplyValueRange(ReplyBuilder& rb, ItemRef ref, size_t offset, size_t len) {
  std::string_view v = ref.value().substr(offset, len);
  if (v.size() < kZeroCopyMinBytes) {
    rb.Bulk(v);
    return;
  }
  void* token = ref.ReleaseToToken();
  rb.BulkRef(v.data(), v.size(), &ItemRef::ReleasePin, token);
}

void ReplyValue(ReplyBuilder& rb, ItemRef ref) {
  size_t len = ref.value().size();
  ReplyValueRange(rb, std::move(ref), 0, len);
}

// keyspace_hits / keyspace_misses, counted where Redis's lookupKeyRead does.
void CountLookup(CommandContext& cx, bool hit) {
  ServerStats& st = cx.server().stats();
  (hit ? st.keyspace_hits : st.keyspace_misses).fetch_add(1, std::memory_order_relaxed);
}

// A failed Store write: OOM as Redis words it, anything else as an ERR.
void ReplyStoreError(CommandContext& cx, const Status& s) {
  cx.reply().Error(errors::FromStatus(s));
}

void ReplyInvalidExpireTime(CommandContext& cx) {
  cx.reply().Error(std::string(errors::kInvalidExpireTimePrefix) + ToLower(cx.arg(0)) +
                   errors::kInvalidExpireTimeSuffix);
}

storage::Store& StoreOf(CommandContext& cx) { return cx.server().store(); }

// ---- SET / GETEX option parsing (Redis parseExtendedStringArgumentsOrReply) ----

enum ExtFlag : uint32_t {
  kFlagNx = 1 << 0,
  kFlagXx = 1 << 1,
  kFlagGet = 1 << 2,
  kFlagKeepTtl = 1 << 3,
  kFlagPersist = 1 << 4,
  kFlagEx = 1 << 5,
  kFlagPx = 1 << 6,
  kFlagExAt = 1 << 7,
  kFlagPxAt = 1 << 8,
};
constexpr uint32_t kAnyExpire = kFlagEx | kFlagPx | kFlagExAt | kFlagPxAt;

struct ExtArgs {
  uint32_t flags = 0;
  std::string_view expire;  // the number after EX/PX/EXAT/PXAT
};

// Options from argument `start` on, with exactly Redis's conflict rules (a
// repeated EX is allowed and the last wins; every conflict is a syntax
// error). `for_set` selects SET's options, else GETEX's. False after replying.
bool ParseExtArgs(CommandContext& cx, size_t start, bool for_set, ExtArgs* out) {
  uint32_t& f = out->flags;
  for (size_t j = start; j < cx.argc(); ++j) {
    std::string_view opt = cx.arg(j);
    bool has_next = j + 1 < cx.argc();
    auto expire_opt = [&](uint32_t flag) {
      f = (f & ~kAnyExpire) | flag;
      out->expire = cx.arg(++j);
    };
    if (for_set && EqualsIgnoreCase(opt, "nx") && !(f & kFlagXx)) {
      f |= kFlagNx;
    } else if (for_set && EqualsIgnoreCase(opt, "xx") && !(f & kFlagNx)) {
      f |= kFlagXx;
    } else if (for_set && EqualsIgnoreCase(opt, "get")) {
      f |= kFlagGet;
    } else if (for_set && EqualsIgnoreCase(opt, "keepttl") && !(f & (kFlagPersist | kAnyExpire))) {
      f |= kFlagKeepTtl;
    } else if (!for_set && EqualsIgnoreCase(opt, "persist") && !(f & (kAnyExpire | kFlagKeepTtl))) {
      f |= kFlagPersist;
    } else if (EqualsIgnoreCase(opt, "ex") && has_next &&
               !(f & (kFlagKeepTtl | kFlagPersist | kFlagExAt | kFlagPx | kFlagPxAt))) {
      expire_opt(kFlagEx);
    } else if (EqualsIgnoreCase(opt, "px") && has_next &&
               !(f & (kFlagKeepTtl | kFlagPersist | kFlagEx | kFlagExAt | kFlagPxAt))) {
      expire_opt(kFlagPx);
    } else if (EqualsIgnoreCase(opt, "exat") && has_next &&
               !(f & (kFlagKeepTtl | kFlagPersist | kFlagEx | kFlagPx | kFlagPxAt))) {
      expire_opt(kFlagExAt);
    } else if (EqualsIgnoreCase(opt, "pxat") && has_next &&
               !(f & (kFlagKeepTtl | kFlagPersist | kFlagEx | kFlagExAt | kFlagPx))) {
      expire_opt(kFlagPxAt);
    } else {
      cx.reply().Error(errors::kSyntax);
      return false;
    }
  }
  return true;
}

// Redis getExpireMillisecondsOrReply: the expire argument as an absolute
// time in ms. It must be > 0 and must not overflow when converted to ms or
// added to now. `unit_flag` is one of kFlagEx/Px/ExAt/PxAt. False after replying.
bool ExpireAtMs(CommandContext& cx, std::string_view text, uint32_t unit_flag, int64_t* at_ms) {
  int64_t v;
  if (!ParseInt64(text, &v)) {
    cx.reply().Error(errors::kNotInteger);
    return false;
  }
  bool seconds = unit_flag == kFlagEx || unit_flag == kFlagExAt;
  if (v <= 0 || (seconds && v > INT64_MAX / 1000)) {
    ReplyInvalidExpireTime(cx);
    return false;
  }
  if (seconds) v *= 1000;
  if (unit_flag == kFlagEx || unit_flag == kFlagPx) {
    if (v > INT64_MAX - cx.now_ms()) {
      ReplyInvalidExpireTime(cx);
      return false;
    }
    v += cx.now_ms();
  }
  *at_ms = v;
  return true;
}

void DropHeld(void* held) { delete static_cast<std::shared_ptr<const void>*>(held); }

// A found value: a large one goes to the reply by reference, never copied
// into it: the pinned item if it is held here, else the string a peer's
// bytes were received into (the reply takes it over).
void ReplyFound(ReplyBuilder& rb, pool::GetResult& r) {
  if (r.local) return ReplyValue(rb, std::move(r.local));
  const std::string_view v = r.value();
  if (v.size() < kZeroCopyMinBytes) return rb.Bulk(v);
  if (r.buffer) {
    // Where the peer's reply was received: the reply keeps that buffer.
    auto* held = new std::shared_ptr<const void>(std::move(r.buffer));
    return rb.BulkRef(v.data(), v.size(), &DropHeld, held);
  }
  auto* owned = new std::string(std::move(r.remote));
  rb.BulkRef(owned->data(), owned->size(), &protocol::DeleteString, owned);
}

void CountHits(ServerContext& server, uint64_t hits, uint64_t misses) {
  server.stats().keyspace_hits.fetch_add(hits, std::memory_order_relaxed);
  server.stats().keyspace_misses.fetch_add(misses, std::memory_order_relaxed);
}

// ---- GET family ----

void CmdGet(CommandContext& cx) {
  if (keys::ReadsElsewhere(cx, cx.arg(1))) {
    ServerContext* srv = &cx.server();
    return keys::MultiGet(cx, cx.args().subspan(1, 1),
                          [srv](ReplyBuilder& rb, std::vector<pool::GetResult>& results) {
                            pool::GetResult& r = results[0];
                            bool hit = r.state == pool::GetResult::kFound;
                            CountHits(*srv, hit ? 1 : 0, hit ? 0 : 1);
                            if (!hit) return rb.Null();
                            ReplyFound(rb, r);
                          });
  }
  ItemRef ref = StoreOf(cx).Get(cx.db(), cx.arg(1), cx.now_ms());
  CountLookup(cx, static_cast<bool>(ref));
  if (!ref) {
    cx.reply().Null();
    return;
  }
  ReplyValue(cx.reply(), std::move(ref));
}

// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT ts|PXAT ts|KEEPTTL]
void CmdSet(CommandContext& cx) {
  if (keys::SetByPairs(cx.args())) {
    return keys::MultiSet(cx, cx.args().subspan(1),
                          [](ReplyBuilder& rb, const Status& s, size_t) {
                            if (s.ok()) return rb.Ok();
                            rb.Error(errors::FromStatus(s));  // as SET's own errors
                          });
  }
  ExtArgs ext;
  if (!ParseExtArgs(cx, 3, /*for_set=*/true, &ext)) return;
  SetOptions opts;
  if (ext.flags & kAnyExpire) {
    if (!ExpireAtMs(cx, ext.expire, ext.flags & kAnyExpire, &opts.expire_at_ms)) return;
  }
  opts.cond = (ext.flags & kFlagNx)   ? SetCondition::kIfAbsent
              : (ext.flags & kFlagXx) ? SetCondition::kIfPresent
                                      : SetCondition::kAlways;
  opts.keep_ttl = (ext.flags & kFlagKeepTtl) != 0;
  opts.want_old = (ext.flags & kFlagGet) != 0;
  SetResult res;
  Status s = StoreOf(cx).Set(cx.db(), cx.arg(1), cx.arg(2), opts, cx.now_ms(), &res);
  if (!s.ok()) {
    ReplyStoreError(cx, s);
    return;
  }
  if (opts.want_old) {
    // With GET the reply is the old value whether or not NX/XX let the write happen.
    CountLookup(cx, static_cast<bool>(res.old));
    if (res.old) {
      ReplyValue(cx.reply(), std::move(res.old));
    } else {
      cx.reply().Null();
    }
    return;
  }
  if (res.written) {
    cx.reply().Ok();
  } else {
    cx.reply().Null();
  }
}

void CmdSetNx(CommandContext& cx) {
  SetOptions opts;
  opts.cond = SetCondition::kIfAbsent;
  SetResult res;
  Status s = StoreOf(cx).Set(cx.db(), cx.arg(1), cx.arg(2), opts, cx.now_ms(), &res);
  if (!s.ok()) {
    ReplyStoreError(cx, s);
    return;
  }
  cx.reply().Integer(res.written ? 1 : 0);
}

// SETEX key seconds value / PSETEX key milliseconds value.
void SetWithExpire(CommandContext& cx, uint32_t unit_flag) {
  SetOptions opts;
  if (!ExpireAtMs(cx, cx.arg(2), unit_flag, &opts.expire_at_ms)) return;
  SetResult res;
  Status s = StoreOf(cx).Set(cx.db(), cx.arg(1), cx.arg(3), opts, cx.now_ms(), &res);
  if (!s.ok()) {
    ReplyStoreError(cx, s);
    return;
  }
  cx.reply().Ok();
}

void CmdSetEx(CommandContext& cx) { SetWithExpire(cx, kFlagEx); }
void CmdPSetEx(CommandContext& cx) { SetWithExpire(cx, kFlagPx); }

void CmdGetSet(CommandContext& cx) {
  SetOptions opts;
  opts.want_old = true;
  SetResult res;
  Status s = StoreOf(cx).Set(cx.db(), cx.arg(1), cx.arg(2), opts, cx.now_ms(), &res);
  if (!s.ok()) {
    ReplyStoreError(cx, s);
    return;
  }
  CountLookup(cx, static_cast<bool>(res.old));
  if (res.old) {
    ReplyValue(cx.reply(), std::move(res.old));
  } else {
    cx.reply().Null();
  }
}

void CmdGetDel(CommandContext& cx) {
  // fn may run more than once; the last run decided. Pins taken by earlier
  // runs are dropped only after Mutate returns: dropping the last pin frees
  // the item, which must not happen inside the Store's critical section.
  std::vector<ItemRef> seen;
  Status s = StoreOf(cx).Mutate(cx.db(), cx.arg(1), cx.now_ms(), [&](const ItemRef* cur) {
    Mutation m;
    seen.push_back(cur ? cur->Clone() : ItemRef());
    if (cur != nullptr) m.kind = Mutation::kDelete;
    return m;
  });
  if (!s.ok()) {
    ReplyStoreError(cx, s);
    return;
  }
  ItemRef old = seen.empty() ? ItemRef() : std::move(seen.back());
  seen.clear();
  CountLookup(cx, static_cast<bool>(old));
  if (old) {
    ReplyValue(cx.reply(), std::move(old));
  } else {
    cx.reply().Null();
  }
}

// GETEX key [EX s|PX ms|EXAT ts|PXAT ts|PERSIST]
void CmdGetEx(CommandContext& cx) {
  ExtArgs ext;
  if (!ParseExtArgs(cx, 2, /*for_set=*/false, &ext)) return;
  int64_t at_ms = 0;
  uint32_t unit = ext.flags & kAnyExpire;
  if (unit && !ExpireAtMs(cx, ext.expire, unit, &at_ms)) return;

  storage::Store& store = StoreOf(cx);
  ItemRef ref = store.Get(cx.db(), cx.arg(1), cx.now_ms());
  CountLookup(cx, static_cast<bool>(ref));
  if (!ref) {
    cx.reply().Null();
    return;
  }
  ReplyValue(cx.reply(), std::move(ref));
  // An EXAT/PXAT already in the past deletes the key (SetExpire does so for
  // any time <= now); at_ms > 0 here, so it never reads as PERSIST.
  if (unit) {
    store.SetExpire(cx.db(), cx.arg(1), at_ms, storage::ExpireCondition::kAlways, cx.now_ms());
  } else if (ext.flags & kFlagPersist) {
    store.SetExpire(cx.db(), cx.arg(1), 0, storage::ExpireCondition::kXX, cx.now_ms());
  }
}

// MGET key [key ...]: a key whose node could not answer reads as a miss.
void CmdMGet(CommandContext& cx) {
  ServerContext* srv = &cx.server();
  keys::MultiGet(cx, cx.args().subspan(1),
                 [srv](ReplyBuilder& rb, std::vector<pool::GetResult>& results) {
                   rb.ArrayHeader(results.size());
                   uint64_t hits = 0;
                   for (pool::GetResult& r : results) {
                     if (r.state != pool::GetResult::kFound) {
                       rb.Null();
                       continue;
                     }
                     ++hits;
                     ReplyFound(rb, r);
                   }
                   CountHits(*srv, hits, results.size() - hits);
                 });
}

// MSET: atomic on each node. A failure names how many keys were not stored
// (Redis's OOM text when none was, for want of memory).
void CmdMSet(CommandContext& cx) {
  if (cx.argc() % 2 == 0) return cx.reply().Error(errors::WrongArity(ToLower(cx.arg(0))));
  size_t total = (cx.argc() - 1) / 2;
  keys::MultiSet(cx, cx.args().subspan(1),
                 [total](ReplyBuilder& rb, const Status& s, size_t failed) {
                   if (s.ok()) return rb.Ok();
                   if (s.code() == Code::kOutOfMemory && failed == total)
                     return rb.Error(errors::kOom);
                   rb.Error(errors::PoolNotStored(s, failed, total));
                 });
}

void CmdMSetNx(CommandContext& cx) {
  if (cx.argc() % 2 == 0) return cx.reply().Error(errors::WrongArity(ToLower(cx.arg(0))));
  keys::MultiSetNx(cx, cx.args().subspan(1),
                   [](ReplyBuilder& rb, int written, std::string_view error) {
                     if (!error.empty()) return rb.Error(error);
                     rb.Integer(written);
                   });
}

// MEXISTS key [key ...] -> one 1/0 per key, in key order. Peek: an existence
// probe must not change eviction order or TTLs.
// A key whose node could not answer reads as absent (0).
void CmdMExists(CommandContext& cx) {
  ServerContext* srv = &cx.server();
  keys::MultiExists(cx, cx.args().subspan(1),
                    [srv](ReplyBuilder& rb, std::vector<int8_t>& flags, std::string_view) {
                      rb.ArrayHeader(flags.size());
                      uint64_t hits = 0;
                      for (int8_t f : flags) {
                        hits += f == 1;
                        rb.Integer(f == 1 ? 1 : 0);
                      }
                      CountHits(*srv, hits, flags.size() - hits);
                    });
}

// ---- in-place edits ----

int64_t MaxBulkLen(CommandContext& cx) {
  return cx.server().hot().proto_max_bulk_len.load(std::memory_order_relaxed);
}

// Redis checkStringLength: would size + append exceed proto-max-bulk-len?
bool ExceedsMaxBulk(uint64_t size, uint64_t append, int64_t max) {
  uint64_t total = size + append;
  return total < size || total > static_cast<uint64_t>(max);
}

void CmdAppend(CommandContext& cx) {
  std::string_view add = cx.arg(2);
  int64_t max = MaxBulkLen(cx);
  bool too_long = false;
  size_t new_len = 0;
  Status s = StoreOf(cx).Mutate(cx.db(), cx.arg(1), cx.now_ms(), [&](const ItemRef* cur) {
    Mutation m;
    too_long = false;
    std::string_view old = cur ? cur->value() : std::string_view();
    // As Redis, only an append to an existing value is length-checked (the
    // argument alone was bounded by the parser).
    if (cur && ExceedsMaxBulk(old.size(), add.size(), max)) {
      too_long = true;
      return m;
    }
    m.kind = Mutation::kWrite;
    m.value.reserve(old.size() + add.size());
    m.value.append(old).append(add);
    m.expire_at_ms = cur ? cur->expire_at_ms() : 0;
    new_len = m.value.size();
    return m;
  });
  if (!s.ok()) {
    ReplyStoreError(cx, s);
  } else if (too_long) {
    cx.reply().Error(errors::kStringTooLong);
  } else {
    cx.reply().Integer(static_cast<int64_t>(new_len));
  }
}

void CmdStrLen(CommandContext& cx) {
  ItemRef ref = StoreOf(cx).Get(cx.db(), cx.arg(1), cx.now_ms());
  CountLookup(cx, static_cast<bool>(ref));
  cx.reply().Integer(ref ? static_cast<int64_t>(ref.value().size()) : 0);
}

// GETRANGE key start end (and SUBSTR), Redis's index arithmetic.
void CmdGetRange(CommandContext& cx) {
  int64_t start, end;
  if (!ParseInt64(cx.arg(2), &start) || !ParseInt64(cx.arg(3), &end)) {
    cx.reply().Error(errors::kNotInteger);
    return;
  }
  ItemRef ref = StoreOf(cx).Get(cx.db(), cx.arg(1), cx.now_ms());
  CountLookup(cx, static_cast<bool>(ref));
  if (!ref) {
    cx.reply().Bulk("");
    return;
  }
  int64_t len = static_cast<int64_t>(ref.value().size());
  if (start < 0 && end < 0 && start > end) {
    cx.reply().Bulk("");
    return;
  }
  if (start < 0) start += len;
  if (end < 0) end += len;
  if (start < 0) start = 0;
  if (end < 0) end = 0;
  if (end >= len) end = len - 1;
  if (start > end || len == 0) {
    cx.reply().Bulk("");
    return;
  }
  ReplyValueRange(cx.reply(), std::move(ref), static_cast<size_t>(start),
                  static_cast<size_t>(end - start + 1));
}

// SETRANGE key offset value
void CmdSetRange(CommandContext& cx) {
  int64_t offset;
  if (!ParseInt64(cx.arg(2), &offset)) {
    cx.reply().Error(errors::kNotInteger);
    return;
  }
  if (offset < 0) {
    cx.reply().Error(errors::kOffsetOutOfRange);
    return;
  }
  std::string_view patch = cx.arg(3);
  int64_t max = MaxBulkLen(cx);
  bool too_long = false;
  size_t new_len = 0;
  Status s = StoreOf(cx).Mutate(cx.db(), cx.arg(1), cx.now_ms(), [&](const ItemRef* cur) {
    Mutation m;
    too_long = false;
    std::string_view old = cur ? cur->value() : std::string_view();
    new_len = old.size();
    if (patch.empty()) return m;  // nothing to write: 0, or the existing length
    if (ExceedsMaxBulk(static_cast<uint64_t>(offset), patch.size(), max)) {
      too_long = true;
      return m;
    }
    size_t off = static_cast<size_t>(offset);
    m.kind = Mutation::kWrite;
    m.value.reserve(std::max(old.size(), off + patch.size()));
    m.value.assign(old);
    if (m.value.size() < off + patch.size()) m.value.resize(off + patch.size(), '\0');
    m.value.replace(off, patch.size(), patch);
    m.expire_at_ms = cur ? cur->expire_at_ms() : 0;
    new_len = m.value.size();
    return m;
  });
  if (!s.ok()) {
    ReplyStoreError(cx, s);
  } else if (too_long) {
    cx.reply().Error(errors::kStringTooLong);
  } else {
    cx.reply().Integer(static_cast<int64_t>(new_len));
  }
}

// ---- counters ----

void IncrDecr(CommandContext& cx, int64_t incr) {
  enum { kDone, kNotInt, kOverflow } outcome = kDone;
  int64_t result = 0;
  Status s = StoreOf(cx).Mutate(cx.db(), cx.arg(1), cx.now_ms(), [&](const ItemRef* cur) {
    Mutation m;
    int64_t old = 0;
    if (cur && !ParseInt64(cur->value(), &old)) {
      outcome = kNotInt;
      return m;
    }
    if ((incr < 0 && old < 0 && incr < INT64_MIN - old) ||
        (incr > 0 && old > 0 && incr > INT64_MAX - old)) {
      outcome = kOverflow;
      return m;
    }
    outcome = kDone;
    result = old + incr;
    m.kind = Mutation::kWrite;
    m.value = FormatInt64(result);
    m.expire_at_ms = cur ? cur->expire_at_ms() : 0;  // INCR keeps the TTL
    return m;
  });
  if (!s.ok()) {
    ReplyStoreError(cx, s);
  } else if (outcome == kNotInt) {
    cx.reply().Error(errors::kNotInteger);
  } else if (outcome == kOverflow) {
    cx.reply().Error(errors::kOverflow);
  } else {
    cx.reply().Integer(result);
  }
}

void CmdIncr(CommandContext& cx) { IncrDecr(cx, 1); }
void CmdDecr(CommandContext& cx) { IncrDecr(cx, -1); }

void CmdIncrBy(CommandContext& cx) {
  int64_t incr;
  if (!ParseInt64(cx.arg(2), &incr)) {
    cx.reply().Error(errors::kNotInteger);
    return;
  }
  IncrDecr(cx, incr);
}

void CmdDecrBy(CommandContext& cx) {
  int64_t decr;
  if (!ParseInt64(cx.arg(2), &decr)) {
    cx.reply().Error(errors::kNotInteger);
    return;
  }
  if (decr == INT64_MIN) {  // -decr is not representable
    cx.reply().Error(errors::kDecrOverflow);
    return;
  }
  IncrDecr(cx, -decr);
}

// Redis's string2ld accepts "inf"/"infinity" (any case, signed), which
// ParseLongDouble rejects; INCRBYFLOAT must then fail with "would produce NaN
// or Infinity", not "not a valid float".
bool ParseFloatOrInf(std::string_view s, long double* out) {
  if (ParseLongDouble(s, out)) return true;
  std::string_view body = s;
  bool neg = false;
  if (!body.empty() && (body[0] == '+' || body[0] == '-')) {
    neg = body[0] == '-';
    body.remove_prefix(1);
  }
  if (EqualsIgnoreCase(body, "inf") || EqualsIgnoreCase(body, "infinity")) {
    *out = neg ? -INFINITY : INFINITY;
    return true;
  }
  return false;
}

void CmdIncrByFloat(CommandContext& cx) {
  long double incr;
  if (!ParseFloatOrInf(cx.arg(2), &incr)) {
    cx.reply().Error(errors::kNotFloat);
    return;
  }
  enum { kDone, kNotFloat, kNaN } outcome = kDone;
  std::string text;
  Status s = StoreOf(cx).Mutate(cx.db(), cx.arg(1), cx.now_ms(), [&](const ItemRef* cur) {
    Mutation m;
    long double value = 0;
    if (cur && !ParseFloatOrInf(cur->value(), &value)) {
      outcome = kNotFloat;
      return m;
    }
    value += incr;
    if (std::isnan(value) || std::isinf(value)) {
      outcome = kNaN;
      return m;
    }
    outcome = kDone;
    text = FormatLongDouble(value);
    m.kind = Mutation::kWrite;
    m.value = text;
    m.expire_at_ms = cur ? cur->expire_at_ms() : 0;
    return m;
  });
  if (!s.ok()) {
    ReplyStoreError(cx, s);
  } else if (outcome == kNotFloat) {
    cx.reply().Error(errors::kNotFloat);
  } else if (outcome == kNaN) {
    cx.reply().Error(errors::kIncrFloatNaN);
  } else {
    cx.reply().Bulk(text);
  }
}

}  // namespace

void RegisterStringFamily(CommandTable& t) {
  constexpr uint32_t W = kCmdWrite, R = kCmdReadOnly, F = kCmdFast, M = kCmdDenyOom,
                     P = kCmdPoolAware;
  // name, arity, flags, first_key, last_key, key_step, handler, group, summary
  t.Add({"get", 2, R | F, 1, 1, 1, CmdGet, "string", "Get the value of a key"});
  t.Add({"set", -3, W | M, 1, 1, 1, CmdSet, "string", "Set the string value of a key"});
  t.Add({"setnx", 3, W | M | F, 1, 1, 1, CmdSetNx, "string",
         "Set the value of a key, only if the key does not exist"});
  t.Add({"setex", 4, W | M, 1, 1, 1, CmdSetEx, "string", "Set the value and expiration of a key"});
  t.Add({"psetex", 4, W | M, 1, 1, 1, CmdPSetEx, "string",
         "Set the value and expiration in milliseconds of a key"});
  t.Add({"getset", 3, W | M | F, 1, 1, 1, CmdGetSet, "string",
         "Set the string value of a key and return its old value"});
  t.Add({"getdel", 2, W | F, 1, 1, 1, CmdGetDel, "string",
         "Get the value of a key and delete the key"});
  t.Add({"getex", -2, W | F, 1, 1, 1, CmdGetEx, "string",
         "Get the value of a key and optionally set its expiration"});
  t.Add({"mget", -2, R | F | P, 1, -1, 1, CmdMGet, "string", "Get the values of all the given keys"});
  t.Add({"mset", -3, W | M | P, 1, -1, 2, CmdMSet, "string", "Set multiple keys to multiple values"});
  t.Add({"msetnx", -3, W | M | P, 1, -1, 2, CmdMSetNx, "string",
         "Set multiple keys to multiple values, only if none of the keys exist"});
  t.Add({"mexists", -2, R | F | P, 1, -1, 1, CmdMExists, "generic",
         "Determine which of the given keys exist, one 1/0 per key"});
  t.Add({"append", 3, W | M | F, 1, 1, 1, CmdAppend, "string", "Append a value to a key"});
  t.Add({"strlen", 2, R | F, 1, 1, 1, CmdStrLen, "string",
         "Get the length of the value stored in a key"});
  t.Add({"getrange", 4, R, 1, 1, 1, CmdGetRange, "string",
         "Get a substring of the string stored at a key"});
  t.Add({"substr", 4, R, 1, 1, 1, CmdGetRange, "string",
         "Get a substring of the string stored at a key"});
  t.Add({"setrange", 4, W | M, 1, 1, 1, CmdSetRange, "string",
         "Overwrite part of a string at key starting at the specified offset"});
  t.Add({"incr", 2, W | M | F, 1, 1, 1, CmdIncr, "string",
         "Increment the integer value of a key by one"});
  t.Add({"decr", 2, W | M | F, 1, 1, 1, CmdDecr, "string",
         "Decrement the integer value of a key by one"});
  t.Add({"incrby", 3, W | M | F, 1, 1, 1, CmdIncrBy, "string",
         "Increment the integer value of a key by the given amount"});
  t.Add({"decrby", 3, W | M | F, 1, 1, 1, CmdDecrBy, "string",
         "Decrement the integer value of a key by the given number"});
  t.Add({"incrbyfloat", 3, W | M | F, 1, 1, 1, CmdIncrByFloat, "string",
         "Increment the float value of a key by the given amount"});
}

}  // namespace kvpool
