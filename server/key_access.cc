#include "server/key_access.h"

#include <memory>
#include <utility>

#include "protocol/deferred_reply.h"
#include "protocol/reply_reader.h"
#include "server/errors.h"
#include "server/server_context.h"
#include "storage/pool/fill_steps.h"

namespace kvpool::keys {

namespace {

// The pool to send a command's keys through, or null: this node's Store
// answers (no pool, a command a peer forwarded here, or a caller that
// cannot wait for a later answer).
pool::Pool* PoolFor(CommandContext& cx) {
  pool::Pool* p = cx.pool();
  return p != nullptr && cx.client().defer ? p : nullptr;
}

// Where a reply goes: the client's builder while the handler still runs,
// else the deferred slot reserved when the handler returned first.
class Answer {
 public:
  // Runs start(answer), which hands `answer` to a pool call's completion.
  template <typename Start>
  static void Run(CommandContext& cx, Start&& start) {
    auto a = std::make_shared<Answer>(cx);
    start(a);
    if (a->written_) return;
    a->cx_ = nullptr;
    a->slot_ = cx.Defer();
  }

  explicit Answer(CommandContext& cx) : cx_(&cx), resp_(cx.client().resp) {}

  template <typename Fn>
  void Write(Fn&& fn) {
    if (cx_ != nullptr) {
      written_ = true;
      fn(cx_->reply());
      return;
    }
    protocol::DeferredReply out;
    protocol::ReplyBuilder rb(&out, resp_);
    fn(rb);
    slot_->Finish(std::move(out));
  }

 private:
  CommandContext* cx_;  // null once the handler returned
  int resp_;
  bool written_ = false;
  std::shared_ptr<ReplySlot> slot_;
};

}  // namespace

void MultiGet(CommandContext& cx, std::span<const std::string_view> keys, GetReply reply) {
  pool::Pool* p = PoolFor(cx);
  if (p == nullptr) {
    std::vector<std::string_view> list(keys.begin(), keys.end());
    std::vector<storage::ItemRef> refs = cx.store().MultiGet(cx.db(), list, cx.now_ms());
    std::vector<pool::GetResult> results(refs.size());
    for (size_t i = 0; i < refs.size(); ++i) {
      if (!refs[i]) continue;
      results[i].state = pool::GetResult::kFound;
      results[i].local = std::move(refs[i]);
    }
    return reply(cx.reply(), results);
  }
  Answer::Run(cx, [&](std::shared_ptr<Answer> a) {
    p->MultiGet(cx.lane(), cx.db(), keys, cx.now_ms(),
                [a, reply = std::move(reply)](std::vector<pool::GetResult>& results) {
                  a->Write([&](protocol::ReplyBuilder& rb) { reply(rb, results); });
                });
  });
}

bool ReadsElsewhere(CommandContext& cx, std::string_view key) {
  pool::Pool* p = PoolFor(cx);
  return p != nullptr && p->ReadNode(p->OwnerOf(key)) != p->self();
}

namespace {

// MultiExists, or with `touch` MultiTouch.
void Presence(CommandContext& cx, std::span<const std::string_view> keys, bool touch,
              FlagsReply reply) {
  pool::Pool* p = PoolFor(cx);
  if (p == nullptr) {
    std::vector<int8_t> flags(keys.size());
    if (touch) {
      for (size_t i = 0; i < keys.size(); ++i)
        flags[i] = cx.store().Get(cx.db(), keys[i], cx.now_ms()) ? 1 : 0;
    } else {
      std::vector<std::string_view> list(keys.begin(), keys.end());
      std::vector<uint8_t> found = cx.store().MultiExists(cx.db(), list, cx.now_ms());
      flags.assign(found.begin(), found.end());
    }
    return reply(cx.reply(), flags, {});
  }
  Answer::Run(cx, [&](std::shared_ptr<Answer> a) {
    auto done = [a, reply = std::move(reply)](std::vector<int8_t>& flags) {
      a->Write([&](protocol::ReplyBuilder& rb) { reply(rb, flags, {}); });
    };
    if (touch) p->MultiTouch(cx.lane(), cx.db(), keys, cx.now_ms(), std::move(done));
    else p->MultiExists(cx.lane(), cx.db(), keys, cx.now_ms(), std::move(done));
  });
}

}  // namespace

void MultiExists(CommandContext& cx, std::span<const std::string_view> keys, FlagsReply reply) {
  Presence(cx, keys, false, std::move(reply));
}

void MultiTouch(CommandContext& cx, std::span<const std::string_view> keys, FlagsReply reply) {
  Presence(cx, keys, true, std::move(reply));
}

void MultiDel(CommandContext& cx, std::span<const std::string_view> keys, FlagsReply reply) {
  pool::Pool* p = PoolFor(cx);
  if (p == nullptr) {
    std::vector<int8_t> flags(keys.size());
    for (size_t i = 0; i < keys.size(); ++i)
      flags[i] = cx.store().Del(cx.db(), keys[i], cx.now_ms()) ? 1 : 0;
    return reply(cx.reply(), flags, {});
  }
  // The error of a failed delete names a node that failed: the keys'
  // primaries, kept by index (the keys themselves may be gone by then).
  std::vector<int> owners(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) owners[i] = p->OwnerOf(keys[i]);
  Answer::Run(cx, [&](std::shared_ptr<Answer> a) {
    p->MultiDel(cx.lane(), cx.db(), keys, cx.now_ms(),
                [a, p, owners = std::move(owners), reply = std::move(reply)](
                    std::vector<int8_t>& flags) {
                  std::string failed;
                  for (size_t i = 0; i < flags.size(); ++i) {
                    if (flags[i] >= 0) continue;
                    failed = p->replicas() > 1 && !p->HasCopyServing(owners[i])
                                 ? p->NoCopyError(owners[i])
                                 : p->NodeDownError(owners[i]);
                  }
                  a->Write([&](protocol::ReplyBuilder& rb) { reply(rb, flags, failed); });
                });
  });
}

namespace {

// A single node copies the values of a SET or MSET of more than this into
// the store in steps of this much, one per loop turn, and publishes them
// together once all are in (the pool does the same with its own keys): a
// value of hundreds of MB, whose pages the kernel faults in and zeroes as
// the copy first touches them, does not hold the loop for a second.
constexpr size_t kFillStep = 1u << 20;

size_t ValueBytes(std::span<const std::string_view> kvs) {
  size_t n = 0;
  for (size_t i = 1; i < kvs.size(); i += 2) n += kvs[i].size();
  return n;
}

// True if it took the write (answered now or later); false: too small, or
// this client cannot be answered later (a transaction, a script).
bool SetInSteps(CommandContext& cx, std::span<const std::string_view> kvs, SetReply& reply) {
  const auto& bases = cx.server().lane_bases;
  if (ValueBytes(kvs) <= kFillStep || !cx.client().defer || cx.lane() < 0 ||
      static_cast<size_t>(cx.lane()) >= bases.size())
    return false;
  std::vector<std::string_view> values;
  std::vector<storage::PendingItem> items;
  for (size_t i = 0; i < kvs.size(); i += 2) {
    auto item = cx.store().Prepare(kvs[i], kvs[i + 1].size(), cx.now_ms());
    if (!item.ok()) {  // nothing written
      reply(cx.reply(), item.status(), kvs.size() / 2);
      return true;
    }
    items.push_back(std::move(item.value()));
    values.push_back(kvs[i + 1]);
  }
  storage::Store* store = &cx.store();
  const int db = cx.db();
  Answer::Run(cx, [&](std::shared_ptr<Answer> a) {
    pool::FillInSteps(bases[cx.lane()], kFillStep, std::move(values), std::move(items),
                      cx.client().args_owner,
                      [store, db, a, reply = std::move(reply)](std::vector<storage::PendingItem>& items) {
                        Status s = store->Publish(db, &items, pool::WallMs());
                        const size_t n = items.size();
                        a->Write([&](protocol::ReplyBuilder& rb) { reply(rb, s, s.ok() ? 0 : n); });
                      });
  });
  return true;
}

}  // namespace

void MultiSet(CommandContext& cx, std::span<const std::string_view> kvs, SetReply reply) {
  pool::Pool* p = PoolFor(cx);
  if (p == nullptr) {
    if (SetInSteps(cx, kvs, reply)) return;
    std::vector<std::string_view> pairs(kvs.begin(), kvs.end());
    bool written = false;
    Status s = cx.store().MultiSet(cx.db(), pairs, false, cx.now_ms(), &written);
    return reply(cx.reply(), s, s.ok() ? 0 : kvs.size() / 2);
  }
  Answer::Run(cx, [&](std::shared_ptr<Answer> a) {
    p->MultiSet(cx.lane(), cx.db(), kvs, cx.now_ms(), cx.client().args_owner,
                [a, reply = std::move(reply)](Status s, size_t failed) {
                  a->Write([&](protocol::ReplyBuilder& rb) { reply(rb, s, failed); });
                });
  });
}

void MultiSetNx(CommandContext& cx, std::span<const std::string_view> kvs, SetNxReply reply) {
  std::vector<std::string_view> keys;
  for (size_t i = 0; i < kvs.size(); i += 2) keys.push_back(kvs[i]);
  pool::Pool* p = PoolFor(cx);
  const int owner = p ? p->OwnerOf(keys[0]) : 0;
  bool one_node = true;
  if (p)
    for (auto k : keys) one_node &= p->OwnerOf(k) == owner;
  if (p == nullptr || (one_node && p->AllLocal(keys, true))) {
    std::vector<std::string_view> pairs(kvs.begin(), kvs.end());
    bool written = false;
    Status s = cx.store().MultiSet(cx.db(), pairs, true, cx.now_ms(), &written);
    return reply(cx.reply(), written ? 1 : 0, s.ok() ? "" : errors::FromStatus(s));
  }
  const int lane = cx.lane(), db = cx.db();
  if (one_node) {
    // One other node (with replicas, the keys' primary, which orders it):
    // the command runs there whole, atomically.
    Answer::Run(cx, [&](std::shared_ptr<Answer> a) {
      p->RunOnCopies(lane, owner, db, cx.client().resp, cx.args(), true,
                     [a, reply = std::move(reply)](Status s, std::string r) {
                       protocol::ReplyValue v;
                       std::string error;
                       if (!s.ok()) error = errors::FromStatus(s);
                       else if (!protocol::ReadReply(r, &v)) error = errors::kPoolBadReply;
                       else if (v.type == protocol::ReplyValue::kError) error = v.str;
                       else if (v.type != protocol::ReplyValue::kInteger) error = errors::kPoolBadReply;
                       a->Write([&](protocol::ReplyBuilder& rb) {
                         reply(rb, v.integer == 1 ? 1 : 0, error);
                       });
                     },
                     cx.client().args_owner);  // large values go ahead in chunks
    });
    return;
  }
  auto pairs = std::make_shared<std::vector<std::string_view>>(kvs.begin(), kvs.end());
  std::shared_ptr<const void> args = cx.client().args_owner;
  const int64_t now = cx.now_ms();
  Answer::Run(cx, [&](std::shared_ptr<Answer> a) {
    p->MultiExists(lane, db, keys, now,
                   [a, p, lane, db, pairs, args, now, reply = std::move(reply)](
                       std::vector<int8_t>& found) mutable {
                     for (int8_t f : found) {
                       if (f == 0) continue;
                       std::string_view error = f < 0 ? errors::kMSetNxUncheckable : "";
                       return a->Write([&](protocol::ReplyBuilder& rb) { reply(rb, 0, error); });
                     }
                     p->MultiSet(lane, db, *pairs, now, args,
                                 [a, pairs, reply = std::move(reply)](Status s, size_t failed) {
                                   std::string error;
                                   if (!s.ok())
                                     error = errors::PoolNotStored(s, failed, pairs->size() / 2);
                                   a->Write([&](protocol::ReplyBuilder& rb) {
                                     reply(rb, s.ok() ? 1 : 0, error);
                                   });
                                 });
                   });
  });
}

namespace {

// src and dst on one node, this one: the Store renames.
void RenameHere(CommandContext& cx, std::string_view src, std::string_view dst, bool nx,
                const RenameReply& reply) {
  storage::Store& store = cx.store();
  RenameResult result = RenameResult::kRenamed;
  std::string error;
  if (src == dst) {
    // Redis: no-op, but a missing key is still an error; RENAMENX says 0.
    if (!store.Peek(cx.db(), src, cx.now_ms())) result = RenameResult::kNoSuchKey;
    else if (nx) result = RenameResult::kDestinationExists;
    return reply(cx.reply(), result, error);
  }
  Status s = store.Rename(cx.db(), src, dst, nx, cx.now_ms());
  if (s.code() == Code::kNotFound) {
    result = RenameResult::kNoSuchKey;
  } else if (s.code() == Code::kAborted && nx) {
    result = RenameResult::kDestinationExists;
  } else if (!s.ok()) {
    result = RenameResult::kError;
    error = errors::FromStatus(s);
  }
  reply(cx.reply(), result, error);
}

// A peer's reply to a RENAME or RENAMENX run there whole.
RenameResult RenamedThere(const Status& s, const std::string& reply, std::string* error) {
  protocol::ReplyValue v;
  if (!s.ok()) {
    *error = errors::FromStatus(s);
  } else if (!protocol::ReadReply(reply, &v)) {
    *error = errors::kPoolBadReply;
  } else if (v.type == protocol::ReplyValue::kError) {
    if (v.str == errors::kNoSuchKey) return RenameResult::kNoSuchKey;
    *error = v.str;
  } else if (v.type == protocol::ReplyValue::kInteger) {
    return v.integer == 1 ? RenameResult::kRenamed : RenameResult::kDestinationExists;
  } else if (v.type == protocol::ReplyValue::kStatus) {
    return RenameResult::kRenamed;
  } else {
    *error = errors::kPoolBadReply;
  }
  return RenameResult::kError;
}

// src and dst on two nodes. src's value is read as MGET reads it (a large
// value in steps, never as one reply), then its PTTL. A value of up to
// kOneCallBytes is written by one SET (PX, NX) on dst's node, atomic there.
// A larger one is stored as MSET stores it (in steps, published at once),
// after an EXISTS of dst for NX and followed by PEXPIREAT for a TTL: moved
// as one forwarded command, 300 MB kept each loop on its way busy for
// 1.4 to 1.7 s. Then src is deleted; `done` gets the outcome.
struct CrossRename : std::enable_shared_from_this<CrossRename> {
  static constexpr size_t kOneCallBytes = 1u << 20;

  pool::Pool* p;
  int lane, db, from, to;
  std::string src, dst;
  bool nx;
  std::function<void(RenameResult, std::string_view)> done;
  std::vector<pool::GetResult> got;  // src's value, pinned or received
  std::string_view kvs[2];           // dst, value: what MultiSet stores

  // Runs argv on the copies of `node`'s slots (a read on the one that
  // answers reads) and hands on the decoded reply.
  void Run(int node, std::vector<std::string> argv, bool write,
           std::function<void(Status, protocol::ReplyValue)> next) {
    std::vector<std::string_view> av(argv.begin(), argv.end());
    p->RunOnCopies(lane, node, db, 2, av, write,
                   [next = std::move(next)](Status s, std::string r) {
                     protocol::ReplyValue v;
                     if (s.ok() && !protocol::ReadReply(r, &v))
                       s = Status::Internal("malformed reply");
                     next(s, std::move(v));
                   });
  }
  void Fail(const Status& s) { done(RenameResult::kError, errors::FromStatus(s)); }
  void Down(int node) { Fail(Status::Unavailable(p->NodeDownError(node))); }
  std::string_view value() const { return got[0].value(); }

  void Start() {
    auto self = shared_from_this();
    std::string_view keys[] = {src};
    p->MultiGet(lane, db, keys, pool::WallMs(), [self](std::vector<pool::GetResult>& r) {
      if (r[0].state == pool::GetResult::kUnavailable) return self->Down(self->from);
      if (r[0].state != pool::GetResult::kFound) return self->done(RenameResult::kNoSuchKey, "");
      self->got = std::move(r);
      self->Run(self->from, {"PTTL", self->src}, false, [self](Status s, protocol::ReplyValue ttl) {
        if (!s.ok()) return self->Fail(s);
        int64_t ttl_ms = ttl.type == protocol::ReplyValue::kInteger ? ttl.integer : -1;
        if (self->value().size() <= kOneCallBytes) return self->Write(ttl_ms);
        if (!self->nx) return self->Store(ttl_ms);
        std::string_view dst[] = {self->dst};
        self->p->MultiExists(self->lane, self->db, dst, pool::WallMs(),
                             [self, ttl_ms](std::vector<int8_t>& present) {
                               if (present[0] < 0) return self->Down(self->to);
                               if (present[0] == 1)
                                 return self->done(RenameResult::kDestinationExists, "");
                               self->Store(ttl_ms);
                             });
      });
    });
  }
  void Write(int64_t ttl_ms) {
    auto self = shared_from_this();
    std::vector<std::string> set{"SET", dst, std::string(value())};
    if (ttl_ms > 0) {
      set.push_back("PX");
      set.push_back(std::to_string(ttl_ms));
    }
    if (nx) set.push_back("NX");
    Run(to, std::move(set), true, [self](Status s, protocol::ReplyValue r) {
      if (!s.ok()) return self->Fail(s);
      if (r.type == protocol::ReplyValue::kError) return self->done(RenameResult::kError, r.str);
      if (r.type == protocol::ReplyValue::kNil)  // NX and the destination exists
        return self->done(RenameResult::kDestinationExists, "");
      self->DeleteSource();
    });
  }
  void Store(int64_t ttl_ms) {
    auto self = shared_from_this();
    const int64_t expire_at = ttl_ms > 0 ? pool::WallMs() + ttl_ms : 0;
    kvs[0] = dst;
    kvs[1] = value();
    p->MultiSet(lane, db, kvs, pool::WallMs(), self, [self, expire_at](Status s, size_t) {
      if (!s.ok()) return self->Fail(s);
      if (expire_at == 0) return self->DeleteSource();
      self->Run(self->to, {"PEXPIREAT", self->dst, std::to_string(expire_at)}, true,
                [self](Status s, protocol::ReplyValue r) {
                  if (!s.ok()) return self->Fail(s);
                  if (r.type == protocol::ReplyValue::kError)
                    return self->done(RenameResult::kError, r.str);
                  self->DeleteSource();
                });
    });
  }
  void DeleteSource() {
    auto self = shared_from_this();
    Run(from, {"DEL", src}, true, [self](Status s, protocol::ReplyValue) {
      if (!s.ok()) return self->Fail(s);
      self->done(RenameResult::kRenamed, "");
    });
  }
};

}  // namespace

void Rename(CommandContext& cx, std::string_view src, std::string_view dst, bool nx,
            RenameReply reply) {
  pool::Pool* p = PoolFor(cx);
  const int from = p ? p->OwnerOf(src) : 0, to = p ? p->OwnerOf(dst) : 0;
  std::string_view both[] = {src, dst};
  if (p == nullptr || (from == to && p->AllLocal(both, true)))
    return RenameHere(cx, src, dst, nx, reply);
  Answer::Run(cx, [&](std::shared_ptr<Answer> a) {
    auto finish = [a, reply = std::move(reply)](RenameResult r, std::string_view error) {
      a->Write([&](protocol::ReplyBuilder& rb) { reply(rb, r, error); });
    };
    if (from == to) {
      // Both keys on one other node: it renames atomically.
      p->RunOnCopies(cx.lane(), from, cx.db(), cx.client().resp, cx.args(), true,
                     [finish](Status s, std::string r) {
                       std::string error;
                       RenameResult result = RenamedThere(s, r, &error);
                       finish(result, error);
                     });
      return;
    }
    auto op = std::make_shared<CrossRename>();
    op->p = p;
    op->lane = cx.lane();
    op->db = cx.db();
    op->from = from;
    op->to = to;
    op->src = std::string(src);
    op->dst = std::string(dst);
    op->nx = nx;
    op->done = finish;
    op->Start();
  });
}

void Copies(CommandContext& cx, std::string_view key, CopiesReply reply) {
  pool::Pool* p = PoolFor(cx);
  if (p == nullptr) {
    std::vector<pool::CopyInfo> copies(1);
    copies[0] = pool::ReadCopy(cx.store(), cx.db(), key, cx.now_ms());
    pool::Pool* here = cx.pool();
    copies[0].node = here ? here->self() : 0;
    copies[0].state = !here || here->Serving(here->self()) ? pool::CopyInfo::kInSync
                                                           : pool::CopyInfo::kSyncing;
    return reply(cx.reply(), copies);
  }
  Answer::Run(cx, [&](std::shared_ptr<Answer> a) {
    p->Copies(cx.lane(), cx.db(), key,
              [a, reply = std::move(reply)](std::vector<pool::CopyInfo>& copies) {
                a->Write([&](protocol::ReplyBuilder& rb) { reply(rb, copies); });
              });
  });
}

}  // namespace kvpool::keys
