#include "server/pool_commands.h"

#include <algorithm>
#include <random>
#include <set>

#include "protocol/reply_reader.h"
#include "server/errors.h"
#include "server/routing.h"
#include "server/server_context.h"
#include "server/util/strings.h"
#include "storage/pool/pool.h"

namespace kvpool {

using protocol::ReplyValue;

namespace {

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

}  // namespace

namespace {

// Runs the command on every node and hands the decoded replies to `merge`,
// which writes the client's reply.
void BroadcastAndMerge(CommandContext& cx, std::shared_ptr<ReplySlot> slot,
                       std::vector<std::string_view> argv,
                       std::function<void(std::vector<ReplyValue>&, std::vector<int>& down,
                                          protocol::ReplyBuilder&)>
                           merge) {
  int resp = cx.client().resp;
  cx.pool()->Broadcast(cx.lane(), cx.db(), argv,
                       [slot, resp, merge](std::vector<pool::NodeReply>& replies) {
                         std::vector<ReplyValue> values;
                         std::vector<int> down;
                         for (auto& r : replies) {
                           ReplyValue v;
                           if (!r.status.ok() || !protocol::ReadReply(r.reply, &v)) {
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
                    [](std::vector<ReplyValue>& v, std::vector<int>&, protocol::ReplyBuilder& rb) {
                      int64_t n = 0;
                      for (auto& x : v) n += x.type == ReplyValue::kInteger ? x.integer : 0;
                      rb.Integer(n);
                    });
  return true;
}

bool PoolKeys(CommandContext& cx) {
  std::shared_ptr<ReplySlot> slot;
  if (!Begin(cx, {}, &slot)) return false;
  BroadcastAndMerge(cx, slot, {cx.args().begin(), cx.args().end()},
                    [](std::vector<ReplyValue>& v, std::vector<int>&, protocol::ReplyBuilder& rb) {
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
                    [](std::vector<ReplyValue>& v, std::vector<int>&, protocol::ReplyBuilder& rb) {
                      std::vector<std::string*> keys;
                      for (auto& x : v)
                        if (x.type == ReplyValue::kString) keys.push_back(&x.str);
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
                    [p](std::vector<ReplyValue>& v, std::vector<int>& down,
                        protocol::ReplyBuilder& rb) {
                      for (auto& x : v)
                        if (x.type == ReplyValue::kError) return rb.Error(x.str);
                      // With replicas, fewer nodes down than copies leaves
                      // every slot a flushed copy; a node that comes back
                      // catches up from those.
                      bool covered = static_cast<int>(down.size()) < p->replicas();
                      if (!down.empty() && !covered) {
                        std::string names;
                        for (int n : down) names += (names.empty() ? "" : ", ") + p->node(n).Addr();
                        return rb.Error(errors::PoolNotFlushed(names));
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
    ReplyValue v;
    if (s.ok() && protocol::ReadReply(reply, &v) && v.type == ReplyValue::kError) {
      Encoded e(resp);
      e.rb().Error(v.str);  // bad options: every node would say the same
      return slot->Finish(e.out());
    }
    if (!s.ok() || v.type != ReplyValue::kArray || v.elements.size() != 2)
      return Answer(n, 0, nullptr);  // node down: skip it
    uint64_t next = strtoull(v.elements[0].str.c_str(), nullptr, 10);
    if (p->replicas() > 1) {
      // A key is on several nodes: listed by the one that answers its reads.
      auto& keys = v.elements[1].elements;
      keys.erase(std::remove_if(keys.begin(), keys.end(),
                                [&](const ReplyValue& k) { return p->ReadNode(p->OwnerOf(k.str)) != n; }),
                 keys.end());
    }
    Answer(n, next, &v.elements[1]);
  }

  void Answer(int n, uint64_t next_inner, const ReplyValue* keys) {
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

}  // namespace kvpool
