// Whole commands' large replies move in steps (issue 13: "large values never
// stall a node"). A command a peer forwards (kOpCommand, kOpOrderedCommand)
// is run with its values by reference (CommandExecutor::ExecuteHeld); a
// reply larger than one call carries stays here, pinned, and the caller
// fetches it in chunks of chunk_bytes, a few in flight (kOpReplyChunk),
// each written to the call's bulk_out straight from where the value is.
// So no loop copies or parses hundreds of MB in one turn: the owner copies
// none of it, the caller one chunk per reply it receives.
#include <map>
#include <random>

#include "storage/pool/pool_impl.h"
#include "storage/pool/requests.h"

namespace kvpool::pool {

using transport::IncomingCall;

struct HeldEntry {
  std::unique_ptr<HeldReply> reply;
  size_t total = 0;
  int64_t active_ms = 0;  // MonoMs of its last chunk asked for (guarded by held_mu)
  uint64_t served = 0;    // bytes asked for so far (guarded by held_mu)
};

namespace {

// A reply's total size as the caller may accept it: far above any value
// (proto-max-bulk-len), far below what reserving it could not survive.
constexpr uint64_t kMaxHeldReplyBytes = uint64_t{1} << 36;

void ReleaseHeld(void* ctx) { delete static_cast<std::shared_ptr<HeldEntry>*>(ctx); }

}  // namespace

// The default: Execute's string, held as one piece.
std::unique_ptr<HeldReply> CommandExecutor::ExecuteHeld(int lane, int db, int resp,
                                                        const std::vector<std::string_view>& argv) {
  struct Owned : HeldReply {
    std::string text;
    std::vector<std::string_view> views;
    const std::vector<std::string_view>& pieces() const override { return views; }
  };
  auto r = std::make_unique<Owned>();
  r->text = Execute(lane, db, resp, argv);
  r->views.push_back(r->text);
  return r;
}

uint64_t Pool::Impl::NextHeldHandle() {
  if (next_held == 0) {
    // Random per process: a caller still fetching from this node's
    // previous life finds no reply rather than another one.
    std::random_device rd;
    next_held = ((uint64_t{rd()} << 32) ^ rd()) | 1;
  }
  return next_held++;
}

std::string Pool::Impl::CommandReply(std::unique_ptr<HeldReply> reply, bool may_hold) {
  std::string out = OkReply();
  const size_t total = reply->size();
  if (!may_hold || total <= chunk_bytes) {
    out.reserve(out.size() + total);
    for (std::string_view p : reply->pieces()) out.append(p);
    return out;
  }
  auto e = std::make_shared<HeldEntry>();
  e->reply = std::move(reply);
  e->total = total;
  e->active_ms = pool->MonoNow();
  uint64_t handle;
  {
    std::lock_guard<std::mutex> l(held_mu);
    handle = NextHeldHandle();
    held[handle] = std::move(e);
  }
  out.push_back(kHeldReplyMark);
  Writer w(&out);
  w.U64(handle);
  w.U64(total);
  return out;
}

void Pool::Impl::OnReplyChunk(InCall call) {
  Reader r(call->body());
  uint64_t handle, offset, len;
  if (!r.U64(&handle) || !r.U64(&offset) || !r.U64(&len) || !r.done() ||
      len > call->bulk_out_capacity())
    return call->Reply(ErrorReply(MalformedRequest()));
  std::shared_ptr<HeldEntry> e;
  {
    std::lock_guard<std::mutex> l(held_mu);
    auto it = held.find(handle);
    if (it != held.end() && offset <= it->second->total && len <= it->second->total - offset) {
      e = it->second;
      e->active_ms = pool->MonoNow();
      e->served += len;
      // Every byte asked for: the calls below keep it until sent.
      if (e->served >= e->total) held.erase(it);
    }
  }
  if (!e) return call->Reply(ErrorReply(Status::NotFound("pool: no such held reply (expired?)")));
  // The pieces overlapping [offset, offset+len), by reference.
  size_t at = 0;
  const uint64_t end = offset + len;
  for (std::string_view p : e->reply->pieces()) {
    const size_t p_end = at + p.size();
    if (p_end > offset && at < end) {
      const size_t from = std::max<uint64_t>(offset, at) - at;
      const size_t to = std::min<uint64_t>(end, p_end) - at;
      size_t off;
      auto* hold = new std::shared_ptr<HeldEntry>(e);
      Status s = call->WriteBulk(p.data() + from, to - from, &ReleaseHeld, hold, &off);
      if (!s.ok()) {
        delete hold;
        return call->Reply(ErrorReply(s));
      }
    }
    at = p_end;
    if (at >= end) break;
  }
  call->Reply(OkReply());
}

void Pool::Impl::SweepHeld(int64_t now) {
  const int64_t max_age = 4 * int64_t{pool->options_.timeout_ms} + 1000;
  std::vector<std::shared_ptr<HeldEntry>> dropped;  // released outside the lock
  std::lock_guard<std::mutex> l(held_mu);
  for (auto it = held.begin(); it != held.end();) {
    if (now - it->second->active_ms > max_age) {
      dropped.push_back(std::move(it->second));
      it = held.erase(it);
    } else {
      ++it;
    }
  }

}

void Pool::Impl::FinishCommand(int lane, int node, std::string_view out, Pool::ReplyDone done) {
  if (out.empty() || out[0] != kHeldReplyMark) return done(Status::OK(), std::string(out));
  Reader r(out.substr(1));
  uint64_t handle, total;
  if (!r.U64(&handle) || !r.U64(&total) || !r.done() || total == 0 ||
      total > kMaxHeldReplyBytes)
    return done(Status::Internal("pool: malformed held reply from " + pool->node(node).Addr()), {});
  struct Fetch {
    std::string out;  // the chunks in order so far
    std::map<size_t, std::string> early;  // chunks that came before the one out ends at
    size_t total;
    Pool::ReplyDone done;
  };
  auto f = std::make_shared<Fetch>();
  // Only reserved: its pages are touched a chunk at a time as it fills.
  f->out.reserve(total);
  f->total = total;
  f->done = std::move(done);
  const size_t chunk = chunk_bytes;
  CallInWindow(
      {.transport = pool->transport_,
       .lane = lane,
       .node = node,
       .n = (total + chunk - 1) / chunk,
       .timeout_ms = pool->options_.timeout_ms,
       .make =
           [handle, chunk, total](size_t i) {
             transport::CallArgs a;
             a.opcode = kOpReplyChunk;
             const uint64_t len = std::min<uint64_t>(chunk, total - i * chunk);
             Writer w(&a.body);
             w.U64(handle);
             w.U64(i * chunk);
             w.U64(len);
             a.bulk_out_capacity = len;
             return a;
           },
       .reply =
           [f, chunk](size_t i, Status s, std::string_view reply, std::string_view bulk) {
             std::string_view payload;
             if (s.ok()) s = ParseReplyStatus(reply, &payload);
             if (!s.ok()) return s;
             if (bulk.size() != std::min<uint64_t>(chunk, f->total - i * chunk))
               return Status::Internal("pool: a held reply's chunk came short");
             if (i * chunk != f->out.size()) {
               f->early.emplace(i * chunk, std::string(bulk));
               return Status::OK();
             }
             f->out.append(bulk);
             for (auto it = f->early.begin(); it != f->early.end() && it->first == f->out.size();
                  it = f->early.erase(it))
               f->out.append(it->second);
             return Status::OK();
           },
       .done =
           [f, this, node](Status s) {
             if (s.ok() && f->out.size() != f->total)
               s = Status::Internal("pool: a held reply came incomplete");
             if (!s.ok())
               return f->done(Status(s.code(), "pool: the reply of " + pool->node(node).Addr() +
                                                   " could not be fetched (" + s.message() + ")"),
                              {});
             f->done(Status::OK(), std::move(f->out));
           }});
}

}  // namespace kvpool::pool
