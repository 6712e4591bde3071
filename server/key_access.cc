#include "server/key_access.h"

#include <memory>
#include <utility>

#include "protocol/deferred_reply.h"
#include "protocol/reply_reader.h"
#include "server/errors.h"
#include "server/server_context.h"

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

void MultiSet(CommandContext& cx, std::span<const std::string_view> kvs, SetReply reply) {
  pool::Pool* p = PoolFor(cx);
  if (p == nullptr) {
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
                     });
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
