#include "server/pool_commands.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <random>
#include <set>

#include "server/errors.h"
#include "server/routing.h"
#include "server/server_context.h"
#include "server/util/strings.h"
#include "storage/pool/pool.h"

namespace kvpool {

namespace {

void Convert(const redisReply* r, RespValue* out) {
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      out->type = RespValue::kInteger;
      out->integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      out->type = r->type == REDIS_REPLY_STRING   ? RespValue::kString
                  : r->type == REDIS_REPLY_STATUS ? RespValue::kStatus
                                                  : RespValue::kError;
      out->str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      out->type = RespValue::kArray;
      out->elements.resize(r->elements);
      for (size_t i = 0; i < r->elements; ++i) Convert(r->element[i], &out->elements[i]);
      break;
    default:
      out->type = RespValue::kNil;
  }
}

// Encodes a reply (written with the client's protocol) for a deferred slot.
class Encoded {
 public:
  explicit Encoded(int resp) : rb_(&sink_, resp) {}
  protocol::ReplyBuilder& rb() { return rb_; }
  std::string& out() { return sink_.out; }

 private:
  protocol::StringSink sink_;
  protocol::ReplyBuilder rb_;
};

std::vector<std::string_view> Tail(CommandContext& cx, size_t from) {
  return {cx.args().begin() + from, cx.args().end()};
}

// The pool to use and a slot to answer through, or false: local path (every
// key read here, or, for a `write`, written here alone).
bool Begin(CommandContext& cx, std::span<const std::string_view> keys,
           std::shared_ptr<ReplySlot>* slot, bool write = false) {
  pool::Pool* p = cx.pool();
  if (p == nullptr || !cx.client().defer) return false;
  if (!keys.empty() && p->AllLocal(keys, write)) return false;
  *slot = cx.Defer();
  return *slot != nullptr;
}

// A found value: a large one goes to the reply by reference, never copied
// into it: the pinned item if local, else the string a peer's bytes were
// received into (the reply takes it over).
void ReplyFound(protocol::ReplyBuilder& rb, pool::GetResult& r) {
  std::string_view v = r.value();
  if (v.size() < kZeroCopyMinBytes) return rb.Bulk(v);
  if (r.local) {
    rb.BulkRef(v.data(), v.size(), &storage::ItemRef::ReleasePin, r.local.ReleaseToToken());
    return;
  }
  auto* owned = new std::string(std::move(r.remote));
  rb.BulkRef(owned->data(), owned->size(), &protocol::DeleteString, owned);
}

void CountHits(ServerContext& s, uint64_t hits, uint64_t misses) {
  s.stats().keyspace_hits.fetch_add(hits, std::memory_order_relaxed);
  s.stats().keyspace_misses.fetch_add(misses, std::memory_order_relaxed);
}

}  // namespace

bool ParseResp2(std::string_view bytes, RespValue* out) {
  redisReader* reader = redisReaderCreate();
  if (reader == nullptr) return false;
  bool ok = false;
  void* reply = nullptr;
  if (redisReaderFeed(reader, bytes.data(), bytes.size()) == REDIS_OK &&
      redisReaderGetReply(reader, &reply) == REDIS_OK && reply != nullptr) {
    Convert(static_cast<redisReply*>(reply), out);
    freeReplyObject(reply);
    ok = true;
  }
  redisReaderFree(reader);
  return ok;
}

bool PoolMGet(CommandContext& cx) {
  auto keys = Tail(cx, 1);
  std::shared_ptr<ReplySlot> slot;
  if (!Begin(cx, keys, &slot)) return false;
  ServerContext* srv = &cx.server();
  int resp = cx.client().resp;
  cx.pool()->MultiGet(cx.lane(), cx.db(), keys, cx.now_ms(),
                      [slot, srv, resp](std::vector<pool::GetResult>& results) {
                        protocol::DeferredReply reply;
                        protocol::ReplyBuilder rb(&reply, resp);
                        rb.ArrayHeader(results.size());
                        uint64_t hits = 0;
                        for (auto& r : results) {
                          if (r.state == pool::GetResult::kFound) {
                            ++hits;
                            ReplyFound(rb, r);
                          } else {
                            rb.Null();
                          }
                        }
                        CountHits(*srv, hits, results.size() - hits);
                        slot->Finish(std::move(reply));
                      });
  return true;
}

bool PoolMSet(CommandContext& cx) {
  if (cx.argc() % 2 == 0) return false;  // the local path answers the arity error
  std::vector<std::string_view> keys;
  for (size_t i = 1; i < cx.argc(); i += 2) keys.push_back(cx.arg(i));
  std::shared_ptr<ReplySlot> slot;
  if (!Begin(cx, keys, &slot, true)) return false;
  auto kvs = Tail(cx, 1);
  size_t total = keys.size();
  int resp = cx.client().resp;
  cx.pool()->MultiSet(cx.lane(), cx.db(), kvs, cx.now_ms(), cx.client().args_owner,
                      [slot, total, resp](Status s, size_t failed) {
                        Encoded e(resp);
                        if (s.ok()) {
                          e.rb().Ok();
                        } else if (s.code() == Code::kOutOfMemory && failed == total) {
                          e.rb().Error(errors::kOom);
                        } else {
                          e.rb().Error("ERR " + s.message() + ": " + std::to_string(failed) +
                                       " of " + std::to_string(total) + " keys were not stored");
                        }
                        slot->Finish(e.out());
                      });
  return true;
}

namespace {

// MEXISTS over keys args[from..]: 1/0 per key; with `tri_state`, -1 for a
// key whose node could not answer (else it reads as absent, 0).
bool MExistsFrom(CommandContext& cx, size_t from, bool tri_state) {
  std::vector<std::string_view> keys(cx.args().begin() + from, cx.args().end());
  std::shared_ptr<ReplySlot> slot;
  if (!Begin(cx, keys, &slot)) return false;
  int resp = cx.client().resp;
  cx.pool()->MultiExists(cx.lane(), cx.db(), keys, cx.now_ms(),
                         [slot, resp, tri_state](std::vector<int8_t>& results) {
                           Encoded e(resp);
                           e.rb().ArrayHeader(results.size());
                           for (int8_t r : results) e.rb().Integer(r >= 0 || tri_state ? r : 0);
                           slot->Finish(e.out());
                         });
  return true;
}

}  // namespace

bool PoolMExists(CommandContext& cx) { return MExistsFrom(cx, 1, false); }

// MSETNX with keys on several nodes: an existence check of every key, then
// the writes if none exists. Atomic on one node; across nodes another
// client may create a key between the check and the write (documented).
bool PoolMSetNx(CommandContext& cx) {
  if (cx.argc() % 2 == 0) return false;  // the local path answers the arity error
  std::vector<std::string_view> keys;
  for (size_t i = 1; i < cx.argc(); i += 2) keys.push_back(cx.arg(i));
  pool::Pool* p = cx.pool();
  if (p == nullptr || !cx.client().defer) return false;
  int owner = p->OwnerOf(keys[0]);
  bool one_node = true;
  for (auto k : keys) one_node &= p->OwnerOf(k) == owner;
  if (one_node && p->AllLocal(keys, true)) return false;
  std::shared_ptr<ReplySlot> slot = cx.Defer();
  if (!slot) return false;
  int resp = cx.client().resp, lane = cx.lane(), db = cx.db();
  if (one_node) {
    // One other node (or, with replicas, each copy): it does it atomically.
    p->RunOnCopies(lane, owner, db, resp, cx.args(), true, [slot](Status s, std::string r) {
      slot->Finish(s.ok() ? r : "-ERR " + s.message() + "\r\n");
    });
    return true;
  }
  auto kvs = std::make_shared<std::vector<std::string_view>>(cx.args().begin() + 1,
                                                             cx.args().end());
  std::shared_ptr<const void> owner_mem = cx.client().args_owner;
  int64_t now = cx.now_ms();
  p->MultiExists(lane, db, keys, now,
                 [p, slot, resp, lane, db, kvs, owner_mem, now](std::vector<int8_t>& found) {
                   Encoded e(resp);
                   for (int8_t f : found) {
                     if (f < 0) {
                       e.rb().Error("ERR a pool node is unavailable: MSETNX could not check "
                                    "every key");
                       return slot->Finish(e.out());
                     }
                     if (f == 1) {
                       e.rb().Integer(0);
                       return slot->Finish(e.out());
                     }
                   }
                   p->MultiSet(lane, db, *kvs, now, owner_mem,
                               [slot, resp, kvs](Status s, size_t failed) {
                                 Encoded e(resp);
                                 if (s.ok()) e.rb().Integer(1);
                                 else
                                   e.rb().Error("ERR " + s.message() + ": " +
                                                std::to_string(failed) + " of " +
                                                std::to_string(kvs->size() / 2) +
                                                " keys were not stored");
                                 slot->Finish(e.out());
                               });
                 });
  return true;
}

void PoolMExistsTriState(CommandContext& cx) {
  if (MExistsFrom(cx, 2, true)) return;
  // Single node (or every key here): all answer.
  protocol::ReplyBuilder& rb = cx.reply();
  rb.ArrayHeader(cx.argc() - 2);
  for (size_t i = 2; i < cx.argc(); ++i)
    rb.Integer(cx.store().Peek(cx.db(), cx.arg(i), cx.now_ms()) ? 1 : 0);
}

bool PoolDel(CommandContext& cx) {
  auto keys = Tail(cx, 1);
  std::shared_ptr<ReplySlot> slot;
  if (!Begin(cx, keys, &slot, true)) return false;
  int resp = cx.client().resp;
  pool::Pool* p = cx.pool();
  std::vector<std::string> owners;
  for (auto k : keys) owners.push_back(p->node(p->OwnerOf(k)).Addr());
  p->MultiDel(cx.lane(), cx.db(), keys, cx.now_ms(),
              [slot, resp, owners](std::vector<int8_t>& results) {
                Encoded e(resp);
                int64_t removed = 0;
                size_t failed = 0;
                std::string node;
                for (size_t i = 0; i < results.size(); ++i) {
                  if (results[i] == 1) ++removed;
                  if (results[i] < 0) {
                    ++failed;
                    node = owners[i];
                  }
                }
                if (failed > 0) {
                  e.rb().Error("ERR pool node " + node + " is unavailable: " +
                               std::to_string(failed) + " of " + std::to_string(results.size()) +
                               " keys were not deleted (" + std::to_string(removed) +
                               " deleted)");
                } else {
                  e.rb().Integer(removed);
                }
                slot->Finish(e.out());
              });
  return true;
}

bool PoolExists(CommandContext& cx) {
  auto keys = Tail(cx, 1);
  std::shared_ptr<ReplySlot> slot;
  if (!Begin(cx, keys, &slot)) return false;
  int resp = cx.client().resp;
  cx.pool()->MultiExists(cx.lane(), cx.db(), keys, cx.now_ms(),
                         [slot, resp](std::vector<int8_t>& results) {
                           Encoded e(resp);
                           int64_t n = 0;
                           for (int8_t r : results) n += r == 1;
                           e.rb().Integer(n);
                           slot->Finish(e.out());
                         });
  return true;
}

namespace {

// Runs the command on every node and hands the decoded replies to `merge`,
// which writes the client's reply.
void BroadcastAndMerge(CommandContext& cx, std::shared_ptr<ReplySlot> slot,
                       std::vector<std::string_view> argv,
                       std::function<void(std::vector<RespValue>&, std::vector<int>& down,
                                          protocol::ReplyBuilder&)>
                           merge) {
  int resp = cx.client().resp;
  cx.pool()->Broadcast(cx.lane(), cx.db(), argv,
                       [slot, resp, merge](std::vector<pool::NodeReply>& replies) {
                         std::vector<RespValue> values;
                         std::vector<int> down;
                         for (auto& r : replies) {
                           RespValue v;
                           if (!r.status.ok() || !ParseResp2(r.reply, &v)) {
                             down.push_back(r.node);
                             continue;
                           }
                           values.push_back(std::move(v));
                         }
                         Encoded e(resp);
                         merge(values, down, e.rb());
                         slot->Finish(e.out());
                       });
}

}  // namespace

bool PoolDbSize(CommandContext& cx) {
  std::shared_ptr<ReplySlot> slot;
  if (!Begin(cx, {}, &slot)) return false;
  // With replicas each node counts only the keys it answers reads for, so
  // a key held by several nodes counts once.
  std::vector<std::string_view> argv{"DBSIZE"};
  if (cx.pool()->replicas() > 1) argv = {"POOL", "DBSIZE"};
  BroadcastAndMerge(cx, slot, argv,
                    [](std::vector<RespValue>& v, std::vector<int>&, protocol::ReplyBuilder& rb) {
                      int64_t n = 0;
                      for (auto& x : v) n += x.type == RespValue::kInteger ? x.integer : 0;
                      rb.Integer(n);
                    });
  return true;
}

bool PoolKeys(CommandContext& cx) {
  std::shared_ptr<ReplySlot> slot;
  if (!Begin(cx, {}, &slot)) return false;
  BroadcastAndMerge(cx, slot, {cx.args().begin(), cx.args().end()},
                    [](std::vector<RespValue>& v, std::vector<int>&, protocol::ReplyBuilder& rb) {
                      // With replicas a key is on several nodes: listed once.
                      std::set<std::string_view> seen;
                      std::vector<std::string_view> keys;
                      for (auto& x : v)
                        for (auto& k : x.elements)
                          if (seen.insert(k.str).second) keys.push_back(k.str);
                      rb.ArrayHeader(keys.size());
                      for (auto k : keys) rb.Bulk(k);
                    });
  return true;
}

bool PoolRandomKey(CommandContext& cx) {
  std::shared_ptr<ReplySlot> slot;
  if (!Begin(cx, {}, &slot)) return false;
  BroadcastAndMerge(cx, slot, {"RANDOMKEY"},
                    [](std::vector<RespValue>& v, std::vector<int>&, protocol::ReplyBuilder& rb) {
                      std::vector<std::string*> keys;
                      for (auto& x : v)
                        if (x.type == RespValue::kString) keys.push_back(&x.str);
                      if (keys.empty()) return rb.Null();
                      static thread_local std::mt19937_64 rng{std::random_device{}()};
                      rb.Bulk(*keys[rng() % keys.size()]);
                    });
  return true;
}

bool PoolFlush(CommandContext& cx) {
  std::shared_ptr<ReplySlot> slot;
  if (!Begin(cx, {}, &slot)) return false;
  pool::Pool* p = cx.pool();
  BroadcastAndMerge(cx, slot, {cx.args().begin(), cx.args().end()},
                    [p](std::vector<RespValue>& v, std::vector<int>& down,
                        protocol::ReplyBuilder& rb) {
                      for (auto& x : v)
                        if (x.type == RespValue::kError) return rb.Error(x.str);
                      // With replicas, fewer nodes down than copies leaves
                      // every slot a flushed copy; a node that comes back
                      // catches up from those.
                      bool covered = static_cast<int>(down.size()) < p->replicas();
                      if (!down.empty() && !covered) {
                        std::string names;
                        for (int n : down) names += (names.empty() ? "" : ", ") + p->node(n).Addr();
                        return rb.Error("ERR pool node(s) " + names +
                                        " unavailable: their keys were not flushed");
                      }
                      rb.Ok();
                    });
  return true;
}

// SCAN across nodes: the cursor's low 10 bits name the node being scanned,
// the rest is that node's own cursor. Nodes are visited in order; a node
// that is down is skipped (its keys cannot be listed), and so is a node
// that is finished and gave no keys, so an empty pool answers cursor 0.
namespace {

constexpr int kScanNodeBits = 10;

struct ScanOp : std::enable_shared_from_this<ScanOp> {
  pool::Pool* p;
  ServerContext* srv;
  std::shared_ptr<ReplySlot> slot;
  std::vector<std::string> argv;
  int lane, db, resp;

  void Step(int n, uint64_t c) {
    auto self = shared_from_this();
    std::vector<std::string> a = argv;
    a[1] = std::to_string(c);
    std::vector<std::string_view> av(a.begin(), a.end());
    if (n == p->self()) return Handle(n, Status::OK(), RunLocally(*srv, lane, db, 2, av));
    if (!p->NodeUp(n)) return Handle(n, Status::Unavailable(""), {});
    p->Forward(lane, n, db, 2, av, [self, n](Status s, std::string r) { self->Handle(n, s, r); });
  }

  void Handle(int n, const Status& s, const std::string& reply) {
    RespValue v;
    if (s.ok() && ParseResp2(reply, &v) && v.type == RespValue::kError) {
      Encoded e(resp);
      e.rb().Error(v.str);  // bad options: every node would say the same
      return slot->Finish(e.out());
    }
    if (!s.ok() || v.type != RespValue::kArray || v.elements.size() != 2)
      return Answer(n, 0, nullptr);  // node down: skip it
    uint64_t next = strtoull(v.elements[0].str.c_str(), nullptr, 10);
    if (p->replicas() > 1) {
      // A key is on several nodes: listed by the one that answers its reads.
      auto& keys = v.elements[1].elements;
      keys.erase(std::remove_if(keys.begin(), keys.end(),
                                [&](const RespValue& k) { return p->ReadNode(p->OwnerOf(k.str)) != n; }),
                 keys.end());
    }
    Answer(n, next, &v.elements[1]);
  }

  void Answer(int n, uint64_t next_inner, const RespValue* keys) {
    size_t count = keys ? keys->elements.size() : 0;
    if (next_inner == 0 && count == 0 && n + 1 < p->nodes()) return Step(n + 1, 0);
    uint64_t next = 0;
    if (next_inner != 0) next = (next_inner << kScanNodeBits) | static_cast<uint64_t>(n);
    else if (n + 1 < p->nodes()) next = static_cast<uint64_t>(n + 1);
    Encoded e(resp);
    e.rb().ArrayHeader(2);
    e.rb().Bulk(std::to_string(next));
    e.rb().ArrayHeader(count);
    for (size_t i = 0; i < count; ++i) e.rb().Bulk(keys->elements[i].str);
    slot->Finish(e.out());
  }
};

}  // namespace

bool PoolScan(CommandContext& cx) {
  pool::Pool* p = cx.pool();
  if (p == nullptr || !cx.client().defer) return false;
  uint64_t cursor;
  {
    // Redis parses the cursor as an unsigned 64-bit number.
    std::string tmp(cx.arg(1));
    char* end = nullptr;
    errno = 0;
    cursor = strtoull(tmp.c_str(), &end, 10);
    if (tmp.empty() || *end != '\0' || errno == ERANGE || tmp[0] == '-') {
      cx.reply().Error(errors::kInvalidCursor);
      return true;
    }
  }
  int node = static_cast<int>(cursor & ((1u << kScanNodeBits) - 1));
  uint64_t inner = cursor >> kScanNodeBits;
  if (node >= p->nodes()) {
    cx.reply().Error(errors::kInvalidCursor);
    return true;
  }
  std::shared_ptr<ReplySlot> slot = cx.Defer();
  if (!slot) return false;
  auto op = std::make_shared<ScanOp>();
  op->p = p;
  op->srv = &cx.server();
  op->slot = slot;
  op->argv.assign(cx.args().begin(), cx.args().end());
  op->lane = cx.lane();
  op->db = cx.db();
  op->resp = cx.client().resp;
  op->Step(node, inner);
  return true;
}

// RENAME/RENAMENX with source and destination on different nodes: read the
// value and TTL from the source's owner, write the destination on its owner
// (NX for RENAMENX), then delete the source. Not atomic across nodes.
bool PoolRename(CommandContext& cx) {
  pool::Pool* p = cx.pool();
  if (p == nullptr || !cx.client().defer) return false;
  std::string src(cx.arg(1)), dst(cx.arg(2));
  int from = p->OwnerOf(src), to = p->OwnerOf(dst);
  std::string_view both[] = {src, dst};
  if (from == to && p->AllLocal(both, true)) return false;
  std::shared_ptr<ReplySlot> slot = cx.Defer();
  if (!slot) return false;
  if (from == to) {
    // Both keys on one other node (or, with replicas, each copy): it
    // renames atomically.
    p->RunOnCopies(cx.lane(), from, cx.db(), cx.client().resp, cx.args(), true,
                   [slot](Status s, std::string r) {
                     slot->Finish(s.ok() ? r : "-ERR " + s.message() + "\r\n");
                   });
    return true;
  }
  bool nx = EqualsIgnoreCase(cx.arg(0), "renamenx");
  int lane = cx.lane(), db = cx.db(), resp = cx.client().resp;
  // Runs argv on the copies of `node`'s slots (a read on the one that
  // answers reads) and returns the decoded reply.
  auto run = [p, lane, db](int node, std::vector<std::string> argv,
                           std::function<void(Status, RespValue)> done) {
    std::vector<std::string_view> av(argv.begin(), argv.end());
    bool write = !EqualsIgnoreCase(av[0], "get") && !EqualsIgnoreCase(av[0], "pttl");
    p->RunOnCopies(lane, node, db, 2, av, write, [done](Status s, std::string r) {
      RespValue v;
      if (s.ok() && !ParseResp2(r, &v)) s = Status::Internal("bad reply");
      done(s, std::move(v));
    });
  };
  auto fail = [slot, resp](const std::string& msg) {
    Encoded e(resp);
    e.rb().Error(msg);
    slot->Finish(e.out());
  };
  run(from, {"GET", src}, [=](Status s, RespValue value) {
    if (!s.ok()) return fail("ERR " + s.message());
    if (value.type == RespValue::kNil) return fail(errors::kNoSuchKey);
    run(from, {"PTTL", src}, [=](Status s, RespValue ttl) {
      if (!s.ok()) return fail("ERR " + s.message());
      std::vector<std::string> set{"SET", dst, value.str};
      if (ttl.type == RespValue::kInteger && ttl.integer > 0) {
        set.push_back("PX");
        set.push_back(std::to_string(ttl.integer));
      }
      if (nx) set.push_back("NX");
      run(to, set, [=](Status s, RespValue r) {
        if (!s.ok()) return fail("ERR " + s.message());
        if (r.type == RespValue::kError) return fail(r.str);
        if (r.type == RespValue::kNil) {  // NX and the destination exists
          Encoded e(resp);
          e.rb().Integer(0);
          return slot->Finish(e.out());
        }
        run(from, {"DEL", src}, [=](Status s, RespValue) {
          if (!s.ok()) return fail("ERR " + s.message());
          Encoded e(resp);
          if (nx) e.rb().Integer(1);
          else e.rb().Ok();
          slot->Finish(e.out());
        });
      });
    });
  });
  return true;
}

}  // namespace kvpool
