// Whole commands' large arguments move in steps (issue 13: "large values
// never stall a node"). SET key <300 MB> GET, GETSET, APPEND, SETRANGE...
// sent to the node that runs them (kOpCommand, kOpOrderedCommand): an
// argument larger than one call carries goes ahead in chunks of
// chunk_bytes, a few in flight, straight from the client's request (kept
// alive by its owner), into room the other node holds for it (kOpArgBegin,
// kOpArgChunk); the command then names it by handle. Neither side copies
// the argument in one turn of its loop.
#include <new>

#include "storage/pool/pool_impl.h"
#include "storage/pool/requests.h"

namespace kvpool::pool {

using transport::IncomingCall;

struct HeldArg {
  // By PoolOptions::free_large (in the background, on a server).
  struct Free {
    size_t bytes;
    void (*fn)(char*, size_t);
    void operator()(char* p) const {
      if (fn != nullptr) {
        fn(p, bytes);
      } else {
        delete[] p;
      }
    }
  };
  std::unique_ptr<char[], Free> data{nullptr, Free{0, nullptr}};
  uint64_t total = 0;
  uint64_t filled = 0;    // bytes received (guarded by held_mu)
  int64_t active_ms = 0;  // MonoMs of its last call (guarded by held_mu)
};

namespace {

// Far above any argument (proto-max-bulk-len), far below what one node could hold.
constexpr uint64_t kMaxHeldArgBytes = uint64_t{1} << 36;
// {index u32, handle u64}
constexpr size_t kTakenArgBytes = 4 + 8;

// The arguments of one command going ahead, one after the other.
struct Upload {
  transport::Transport* transport;
  int lane, node, timeout_ms;
  size_t chunk;
  std::string prefix;
  std::vector<std::string_view> argv;
  std::vector<uint32_t> large;  // indices of the arguments going ahead
  std::vector<uint64_t> handles;
  std::shared_ptr<const void> owner;
  std::function<void(Status, std::string body, std::string tail)> send;

  void Finish() {
    std::string body = std::move(prefix);
    Writer w(&body);
    w.U32(static_cast<uint32_t>(argv.size()));
    size_t k = 0;
    for (uint32_t i = 0; i < argv.size(); ++i) {
      const bool ahead = k < large.size() && large[k] == i;
      w.Bytes(ahead ? std::string_view() : argv[i]);
      k += ahead;
    }
    std::string tail;
    Writer t(&tail);
    t.U32(static_cast<uint32_t>(large.size()));
    for (size_t j = 0; j < large.size(); ++j) {
      t.U32(large[j]);
      t.U64(handles[j]);
    }
    send(Status::OK(), std::move(body), std::move(tail));
  }

  static void Next(std::shared_ptr<Upload> up) {
    if (up->handles.size() == up->large.size()) return up->Finish();
    const std::string_view value = up->argv[up->large[up->handles.size()]];
    transport::CallArgs begin;
    begin.opcode = kOpArgBegin;
    Writer(&begin.body).U64(value.size());
    Upload* u = up.get();
    u->transport->Call(
        u->lane, u->node, std::move(begin), u->timeout_ms,
        [up = std::move(up), value](Status s, std::string_view reply, std::string_view) mutable {
          std::string_view payload;
          if (s.ok()) s = ParseReplyStatus(reply, &payload);
          uint64_t handle = 0;
          Reader r(payload);
          if (s.ok() && (!r.U64(&handle) || !r.done())) s = Status::Internal("malformed argument reply");
          if (!s.ok()) return up->send(s, {}, {});
          Upload* u = up.get();
          const size_t chunk = u->chunk;
          CallInWindow(
              {.transport = u->transport,
               .lane = u->lane,
               .node = u->node,
               .n = (value.size() + chunk - 1) / chunk,
               .timeout_ms = u->timeout_ms,
               .make =
                   [up, value, chunk, handle](size_t i) {
                     transport::CallArgs a;
                     a.opcode = kOpArgChunk;
                     const uint64_t off = i * chunk;
                     Writer w(&a.body);
                     w.U64(handle);
                     w.U64(off);
                     a.bulk_in.push_back({const_cast<char*>(value.data() + off),
                                          std::min<uint64_t>(chunk, value.size() - off)});
                     return a;
                   },
               .reply =
                   [](size_t, Status s, std::string_view reply, std::string_view) {
                     std::string_view payload;
                     if (s.ok()) s = ParseReplyStatus(reply, &payload);
                     return s;
                   },
               .done =
                   [up, handle](Status s) {
                     if (!s.ok()) return up->send(s, {}, {});
                     up->handles.push_back(handle);
                     Next(up);
                   }});
        });
  }
};

}  // namespace

void Pool::Impl::SendArgs(int lane, int node, std::string prefix,
                          std::span<const std::string_view> argv,
                          std::shared_ptr<const void> owner, ArgsReady send) {
  std::vector<uint32_t> large;
  if (owner)
    for (uint32_t i = 0; i < argv.size(); ++i)
      if (argv[i].size() > chunk_bytes) large.push_back(i);
  if (large.empty()) {
    Writer w(&prefix);
    EncodeArgv(w, argv);
    std::string tail;
    Writer(&tail).U32(0);
    return send(Status::OK(), std::move(prefix), std::move(tail));
  }
  auto up = std::make_shared<Upload>();
  up->transport = pool->transport_;
  up->lane = lane;
  up->node = node;
  up->timeout_ms = pool->options_.timeout_ms;
  up->chunk = chunk_bytes;
  up->prefix = std::move(prefix);
  up->argv.assign(argv.begin(), argv.end());
  up->large = std::move(large);
  up->owner = std::move(owner);
  up->send = std::move(send);
  Upload::Next(std::move(up));
}

void Pool::Impl::OnArgBegin(InCall call) {
  Reader r(call->body());
  uint64_t total;
  if (!r.U64(&total) || !r.done() || total == 0 || total > kMaxHeldArgBytes)
    return call->Reply(ErrorReply(MalformedRequest()));
  auto a = std::make_shared<HeldArg>();
  // Not zeroed: its pages are touched a chunk at a time as it fills.
  a->data = std::unique_ptr<char[], HeldArg::Free>(
      new (std::nothrow) char[total], HeldArg::Free{total, pool->options_.free_large});
  if (!a->data) return call->Reply(ErrorReply(Status::OutOfMemory("pool: no memory for an argument")));
  a->total = total;
  a->active_ms = pool->MonoNow();
  uint64_t handle;
  {
    std::lock_guard<std::mutex> l(held_mu);
    handle = NextHeldHandle();
    held_args[handle] = std::move(a);
  }
  std::string out = OkReply();
  Writer(&out).U64(handle);
  call->Reply(std::move(out));
}

void Pool::Impl::OnArgChunk(InCall call) {
  Reader r(call->body());
  uint64_t handle, off;
  if (!r.U64(&handle) || !r.U64(&off) || !r.done()) return call->Reply(ErrorReply(MalformedRequest()));
  std::shared_ptr<HeldArg> a;
  {
    std::lock_guard<std::mutex> l(held_mu);
    auto it = held_args.find(handle);
    if (it != held_args.end()) {
      a = it->second;
      a->active_ms = pool->MonoNow();
    }
  }
  if (!a) return call->Reply(ErrorReply(Status::NotFound("pool: no such argument (expired?)")));
  const size_t len = call->bulk_in_size();
  if (off > a->total || len > a->total - off) return call->Reply(ErrorReply(MalformedRequest()));
  IncomingCall* c = call.get();
  auto holder = std::make_shared<InCall>(std::move(call));
  // The read holds the argument: the sweep cannot free it meanwhile.
  c->ReadBulk(0, len, a->data.get() + off, [this, holder, a, len](Status s) {
    if (s.ok()) {
      std::lock_guard<std::mutex> l(held_mu);
      a->filled += len;
    }
    (*holder)->Reply(s.ok() ? OkReply() : ErrorReply(s));
  });
}

void Pool::Impl::SweepHeldArgs(int64_t now) {
  const int64_t max_age = 4 * int64_t{pool->options_.timeout_ms} + 1000;
  std::vector<std::shared_ptr<HeldArg>> dropped;  // released outside the lock
  std::lock_guard<std::mutex> l(held_mu);
  for (auto it = held_args.begin(); it != held_args.end();) {
    if (now - it->second->active_ms > max_age) {
      dropped.push_back(std::move(it->second));
      it = held_args.erase(it);
    } else {
      ++it;
    }
  }
}

Status Pool::Impl::TakeArgs(Reader& r, std::vector<std::string_view>* argv,
                            std::vector<std::shared_ptr<HeldArg>>* keep) {
  if (r.done()) return Status::OK();  // a caller that sends none ahead
  uint32_t n;
  if (!r.Count(&n, kTakenArgBytes)) return MalformedRequest();
  std::lock_guard<std::mutex> l(held_mu);
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t index;
    uint64_t handle;
    if (!r.U32(&index) || !r.U64(&handle) || index >= argv->size() || !(*argv)[index].empty())
      return MalformedRequest();
    auto it = held_args.find(handle);
    if (it == held_args.end()) return Status::NotFound("pool: no such argument (expired?)");
    std::shared_ptr<HeldArg> a = std::move(it->second);
    held_args.erase(it);
    if (a->filled != a->total) return Status::Internal("pool: an argument sent ahead is incomplete");
    (*argv)[index] = std::string_view(a->data.get(), a->total);
    keep->push_back(std::move(a));
  }
  return r.done() ? Status::OK() : MalformedRequest();
}

}  // namespace kvpool::pool
