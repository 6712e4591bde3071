// The fate of a write whose reply never came. A call that may write
// (CallArgs::reset_on_timeout) travels as kOpTokened with a token unique to
// this process (epoch), its lane and the call. If it times out, or its link
// breaks after it was sent, the write may or may not have run there; the
// caller then asks the owner (kOpFate) what became of the token:
//   - it ran: the owner kept its reply, and the caller answers with it, so
//     a write that landed is reported as landed;
//   - the owner never saw it: the owner fences the token (the write is
//     refused if it arrives later), so the failure reported is true;
//   - no answer either: the error says that whether it landed is unknown.
// The owner's table forgets a token once the caller says it is settled
// (each call carries the lowest token its lane still waits on) or after a
// minute.
#include <map>
#include <random>
#include <tuple>

#include "storage/pool/pool_impl.h"

namespace kvpool::pool {

using transport::IncomingCall;

namespace {

constexpr size_t kTrailer = kTokenTrailerBytes;
// Replies kept for kOpFate up to this size (larger: "ran", without it).
constexpr size_t kKeepReply = 1u << 20;
// Entries older than this are forgotten whatever their state.
constexpr int64_t kForgetMs = 60000;
constexpr uint64_t kTokenBits = 56;

bool MayCarryToken(uint32_t op) {
  switch (op) {
    case kOpMultiSet:
    case kOpPutEnd:
    case kOpMultiDel:
    case kOpCommand:
    case kOpTransaction:
    case kOpOrderedSet:
    case kOpOrderedCommand:
    case kOpOrderedDel:
    case kOpApply:
      return true;
    default:
      return false;
  }
}

std::string FateReply(FateState state, bool kept = false, std::string_view reply = {}) {
  std::string out = OkReply();
  Writer w(&out);
  w.U8(state);
  if (state == kFateDone) {
    w.U8(kept ? 1 : 0);
    out.append(reply.data(), reply.size());
  }
  return out;
}

}  // namespace

// Owner side: what became of each token, by caller.
struct FateTable {
  struct Entry {
    FateState state = kFateRunning;
    bool kept = false;
    std::string reply;
    int64_t ms = 0;  // when it was seen first
    int lane = -1;   // the lane the write runs on (kOpFate waits there)
    std::vector<std::unique_ptr<IncomingCall>> waiters;  // kOpFate calls
  };
  // (peer, epoch, the caller's lane: the token's top byte)
  using GroupKey = std::tuple<int, uint64_t, uint64_t>;

  std::mutex mu;
  std::map<GroupKey, std::map<uint64_t, Entry>> groups;  // guarded by mu
  int64_t swept_ms = 0;                                   // guarded by mu

  static GroupKey KeyOf(int peer, uint64_t epoch, uint64_t token) {
    return {peer, epoch, token >> kTokenBits};
  }
  // Under mu: once a second, forgets entries older than kForgetMs.
  void Sweep(int64_t now) {
    if (now - swept_ms < 1000) return;
    swept_ms = now;
    for (auto g = groups.begin(); g != groups.end();) {
      for (auto e = g->second.begin(); e != g->second.end();) {
        if (now - e->second.ms > kForgetMs && e->second.waiters.empty())
          e = g->second.erase(e);
        else
          ++e;
      }
      g = g->second.empty() ? groups.erase(g) : std::next(g);
    }
  }
  // Records a write about to run; false if its token was seen or fenced.
  bool Begin(int peer, uint64_t epoch, uint64_t token, uint64_t watermark, int lane, int64_t now) {
    std::lock_guard<std::mutex> l(mu);
    Sweep(now);
    auto& g = groups[KeyOf(peer, epoch, token)];
    // Tokens below the watermark are settled on the caller: forgotten.
    for (auto e = g.begin(); e != g.end() && e->first < watermark;) {
      if (e->second.state == kFateDone && e->second.waiters.empty())
        e = g.erase(e);
      else
        ++e;
    }
    auto [it, fresh] = g.try_emplace(token);
    if (!fresh) return false;
    it->second.ms = now;
    it->second.lane = lane;
    return true;
  }
  // The write ended with `reply`: kept, and sent to whoever asked meanwhile.
  void End(int peer, uint64_t epoch, uint64_t token, std::string_view reply) {
    std::vector<std::unique_ptr<IncomingCall>> waiters;
    std::string answer;
    {
      std::lock_guard<std::mutex> l(mu);
      auto g = groups.find(KeyOf(peer, epoch, token));
      if (g == groups.end()) return;
      auto e = g->second.find(token);
      if (e == g->second.end()) return;
      Entry& en = e->second;
      en.state = kFateDone;
      en.kept = reply.size() <= kKeepReply;
      if (en.kept) en.reply.assign(reply.data(), reply.size());
      waiters.swap(en.waiters);
      if (!waiters.empty()) answer = FateReply(kFateDone, en.kept, en.reply);
    }
    for (auto& w : waiters) w->Reply(answer);
  }
};

namespace {

// A tokened write as its handler sees it: the inner opcode and body; its
// reply is recorded before it is sent.
class TokenedCall final : public IncomingCall {
 public:
  TokenedCall(std::unique_ptr<IncomingCall> in, uint16_t op, std::string_view body,
              std::shared_ptr<FateTable> table, uint64_t epoch, uint64_t token)
      : in_(std::move(in)), op_(op), body_(body), table_(std::move(table)), epoch_(epoch),
        token_(token), peer_(in_->peer()) {}
  ~TokenedCall() override {
    if (in_) table_->End(peer_, epoch_, token_, ErrorReply(Status::Internal("kvpool: call dropped")));
  }
  uint16_t opcode() const override { return op_; }
  std::string_view body() const override { return body_; }
  int peer() const override { return peer_; }
  int lane() const override { return in_->lane(); }
  size_t bulk_in_size() const override { return in_->bulk_in_size(); }
  size_t bulk_out_capacity() const override { return in_->bulk_out_capacity(); }
  void ReadBulk(size_t offset, size_t len, char* dst, std::function<void(Status)> done) override {
    in_->ReadBulk(offset, len, dst, std::move(done));
  }
  Status WriteBulk(const char* src, size_t len, transport::ReleaseFn release, void* ctx,
                   size_t* offset) override {
    return in_->WriteBulk(src, len, release, ctx, offset);
  }
  void Reply(std::string body) override {
    table_->End(peer_, epoch_, token_, body);
    std::unique_ptr<IncomingCall> in = std::move(in_);
    in->Reply(std::move(body));
  }

 private:
  std::unique_ptr<IncomingCall> in_;
  uint16_t op_;
  std::string_view body_;  // inside in_'s body
  std::shared_ptr<FateTable> table_;
  uint64_t epoch_, token_;
  int peer_;
};

}  // namespace

WriteFates Pool::write_fates() const {
  WriteFates f;
  f.landed = impl_->fates_landed.load(std::memory_order_relaxed);
  f.fenced = impl_->fates_fenced.load(std::memory_order_relaxed);
  f.unknown = impl_->fates_unknown.load(std::memory_order_relaxed);
  return f;
}

void Pool::Impl::InitFates(size_t lane_count) {
  std::random_device rd;
  fate_epoch = (uint64_t{rd()} << 32) ^ rd() ^ static_cast<uint64_t>(MonoMs());
  lane_tokens = std::make_unique<LaneTokens[]>(lane_count);
  if (!fates) fates = std::make_shared<FateTable>();
}

void Pool::Impl::OnTokened(InCall call) {
  std::string_view b = call->body();
  uint32_t op = 0;
  uint64_t epoch = 0, token = 0, watermark = 0;
  Reader r(b.size() >= kTrailer ? b.substr(b.size() - kTrailer) : std::string_view());
  if (!r.U32(&op) || !r.U64(&epoch) || !r.U64(&token) || !r.U64(&watermark) || !MayCarryToken(op))
    return call->Reply(ErrorReply(MalformedRequest()));
  if (!fates->Begin(call->peer(), epoch, token, watermark, call->lane(), pool->MonoNow()))
    return call->Reply(ErrorReply(Status::Aborted(
        "pool: a write its sender gave up on arrived late at " + pool->node(pool->self()).Addr() +
        " and was refused")));
  std::string_view inner = b.substr(0, b.size() - kTrailer);
  HandleCall(std::make_unique<TokenedCall>(std::move(call), static_cast<uint16_t>(op), inner,
                                           fates, epoch, token));
}

void Pool::Impl::OnFate(InCall call) {
  Reader r(call->body());
  uint64_t epoch, token;
  if (!r.U64(&epoch) || !r.U64(&token) || !r.done())
    return call->Reply(ErrorReply(MalformedRequest()));
  std::string answer;
  {
    std::lock_guard<std::mutex> l(fates->mu);
    fates->Sweep(pool->MonoNow());
    auto& g = fates->groups[FateTable::KeyOf(call->peer(), epoch, token)];
    auto [it, fresh] = g.try_emplace(token);
    FateTable::Entry& e = it->second;
    if (fresh) {
      e.state = kFateFenced;
      e.ms = pool->MonoNow();
      answer = FateReply(kFateFenced);
    } else if (e.state == kFateRunning && e.lane == call->lane()) {
      e.waiters.push_back(std::move(call));  // answered by End, on this lane
      return;
    } else {
      answer = FateReply(e.state, e.kept, e.reply);
    }
  }
  call->Reply(std::move(answer));
}

void Pool::Impl::WriteCall(int lane, int node, transport::CallArgs args, int timeout_ms,
                           transport::CallDone done) {
  transport::Transport* t = pool->transport_;
  if (!args.reset_on_timeout || !lane_tokens) return t->Call(lane, node, std::move(args), timeout_ms, std::move(done));
  LaneTokens& lt = lane_tokens[lane];
  const uint64_t token =
      (static_cast<uint64_t>(lane) << kTokenBits) | (lt.next++ & ((uint64_t{1} << kTokenBits) - 1));
  lt.open.insert(token);
  Writer w(&args.body);
  w.U32(args.opcode);
  w.U64(fate_epoch);
  w.U64(token);
  w.U64(*lt.open.begin());
  args.opcode = kOpTokened;
  // A call that fails before Call returns (while lt.sending is its token)
  // was never sent: nothing to ask.
  lt.sending = token;
  t->Call(lane, node, std::move(args), timeout_ms,
          [this, lane, node, token, timeout_ms, done = std::move(done)](
              Status s, std::string_view reply, transport::BulkOut bulk) mutable {
            LaneTokens& lt = lane_tokens[lane];
            if (lt.sending != token && !lt.stopped &&
                (s.code() == Code::kTimeout || s.code() == Code::kUnavailable))
              return AskFate(lane, node, token, timeout_ms, std::move(s), std::move(done));
            lt.open.erase(token);
            done(s, reply, std::move(bulk));
          });
  lt.sending = 0;
}

void Pool::Impl::AskFate(int lane, int node, uint64_t token, int timeout_ms, Status first,
                         transport::CallDone done) {
  transport::CallArgs a;
  a.opcode = kOpFate;
  Writer w(&a.body);
  w.U64(fate_epoch);
  w.U64(token);
  pool->transport_->Call(
      lane, node, std::move(a), timeout_ms,
      [this, lane, node, token, first = std::move(first), done = std::move(done)](
          Status s, std::string_view reply, transport::BulkOut) {
        lane_tokens[lane].open.erase(token);
        std::string_view payload;
        if (s.ok()) s = ParseReplyStatus(reply, &payload);
        Reader r(payload);
        uint8_t fate = 0, kept = 0;
        if (s.ok() && r.U8(&fate)) {
          if (fate == kFateFenced) {
            fates_fenced.fetch_add(1, std::memory_order_relaxed);
            return done(first, {}, {});  // it never ran there, and never will
          }
          if (fate == kFateDone && r.U8(&kept)) {
            fates_landed.fetch_add(1, std::memory_order_relaxed);
            if (kept) return done(Status::OK(), r.rest(), {});
            return done(Status::Aborted("pool: the write landed on " + pool->node(node).Addr() +
                                        " but its reply was lost (" + first.message() + ")"),
                        {}, {});
          }
        }
        fates_unknown.fetch_add(1, std::memory_order_relaxed);
        done(Status(first.code(), first.message() + "; whether the write landed there is not known"),
             {}, {});
      });
}

}  // namespace kvpool::pool
