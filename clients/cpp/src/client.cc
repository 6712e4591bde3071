#include "kvpool/client.h"

#include <hiredis/hiredis.h>
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "batch.h"
#include "node_conn.h"
#include "slot_map.h"

namespace kvpool::client {

namespace {

using Clock = std::chrono::steady_clock;

std::string Name(const NodeAddr& a) { return a.host + ":" + std::to_string(a.port); }

// One caller's connections, one per node, reused across its calls.
struct Session {
  std::map<std::string, std::unique_ptr<NodeConn>> conns;
};

}  // namespace

struct Client::Impl {
  Options opt;
  NodeAddr seed;
  mutable std::mutex mu;
  std::shared_ptr<const SlotMap> map;            // guarded by mu
  std::vector<std::unique_ptr<Session>> idle;    // guarded by mu
  std::string last_error;                        // guarded by mu

  std::shared_ptr<const SlotMap> Map() const {
    std::lock_guard<std::mutex> l(mu);
    return map;
  }
  void Error(std::string e) {
    std::lock_guard<std::mutex> l(mu);
    last_error = std::move(e);
  }
  std::unique_ptr<Session> TakeSession() {
    std::lock_guard<std::mutex> l(mu);
    if (idle.empty()) return std::make_unique<Session>();
    auto s = std::move(idle.back());
    idle.pop_back();
    return s;
  }
  void GiveBack(std::unique_ptr<Session> s) {
    std::lock_guard<std::mutex> l(mu);
    idle.push_back(std::move(s));
  }
  int Refresh(const std::vector<NodeAddr>& avoid);
  NodeConn* Conn(Session* s, const NodeAddr& a);
  void Run(std::vector<std::pair<NodeAddr, std::unique_ptr<Work>>>& works, Session* s,
           Clock::time_point deadline);
  void Execute(BatchArgs& args);
};

int Client::Impl::Refresh(const std::vector<NodeAddr>& avoid) {
  // Ask the nodes of the map that did not just fail, then the seed.
  std::vector<NodeAddr> ask;
  for (const NodeAddr& a : Map()->nodes())
    if (std::find(avoid.begin(), avoid.end(), a) == avoid.end()) ask.push_back(a);
  ask.push_back(seed);
  std::string err;
  for (const NodeAddr& a : ask) {
    SlotMap m(seed);
    if (SlotMap::Load(a, opt, &m, &err) == kOk) {
      std::lock_guard<std::mutex> l(mu);
      map = std::make_shared<const SlotMap>(std::move(m));
      return kOk;
    }
  }
  Error(err);
  return kRpcFail;
}

NodeConn* Client::Impl::Conn(Session* s, const NodeAddr& a) {
  std::string name = Name(a);
  auto it = s->conns.find(name);
  if (it != s->conns.end()) return it->second.get();
  std::string err;
  auto c = NodeConn::Open(a, opt.user, opt.password, opt.timeout_ms, &err);
  if (c == nullptr) {
    Error(err);
    return nullptr;
  }
  return s->conns.emplace(name, std::move(c)).first->second.get();
}

// Drives every node's connection from one poll loop until each has all its
// replies, failed, or the deadline passed.
void Client::Impl::Run(std::vector<std::pair<NodeAddr, std::unique_ptr<Work>>>& works,
                       Session* s, Clock::time_point deadline) {
  std::vector<Work*> live;
  for (auto& [addr, w] : works) {
    w->Build();
    if (!w->Done()) live.push_back(w.get());
  }
  auto drop = [&](Work* w, int64_t code, const std::string& why) {
    w->Fail(code, code == kRetry);
    Error(why);
    w->conn()->ClearOutput();
    for (auto it = s->conns.begin(); it != s->conns.end(); ++it)
      if (it->second.get() == w->conn()) {
        s->conns.erase(it);
        break;
      }
  };
  std::vector<pollfd> fds;
  while (!live.empty()) {
    fds.clear();
    for (Work* w : live) {
      short ev = POLLIN;
      if (w->conn()->WantWrite()) ev |= POLLOUT;
      fds.push_back(pollfd{w->conn()->fd(), ev, 0});
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    int n = left > 0 ? poll(fds.data(), fds.size(), static_cast<int>(left)) : 0;
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // Timed out: the nodes may still answer, so their streams are lost.
      for (Work* w : live) drop(w, kRpcFail, "timed out waiting for a node");
      return;
    }
    std::vector<Work*> next;
    for (size_t i = 0; i < live.size(); ++i) {
      Work* w = live[i];
      std::string err;
      bool failed = false;
      if ((fds[i].revents & (POLLOUT | POLLERR | POLLHUP)) && w->conn()->WantWrite())
        failed = w->conn()->Flush(&err) < 0;
      if (!failed && (fds[i].revents & (POLLIN | POLLERR | POLLHUP))) {
        failed = w->conn()->reader().Pump(w->conn()->fd(), w) < 0;
        if (failed) err = w->conn()->reader().error();
      }
      if (failed) {
        drop(w, kRetry, err);
      } else if (!w->Done()) {
        next.push_back(w);
      }
    }
    live.swap(next);
  }
}

void Client::Impl::Execute(BatchArgs& args) {
  for (int64_t& o : args.out) o = kPending;
  size_t n = args.out.size();
  auto deadline = Clock::now() + std::chrono::milliseconds(opt.timeout_ms);
  std::unique_ptr<Session> session = TakeSession();
  std::vector<NodeAddr> failed;  // nodes this call could not use
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::shared_ptr<const SlotMap> m = Map();
    // Group the keys still to do by node.
    std::map<std::string, std::pair<NodeAddr, std::unique_ptr<Work>>> by_node;
    std::vector<std::pair<NodeAddr, std::unique_ptr<Work>>> works;
    for (uint32_t i = 0; i < n; ++i) {
      int64_t& o = args.out[i];
      if (o != kPending && o != kRetry) continue;
      o = kPending;
      // A slot no copy serves, or whose server just failed us again after
      // learning the map, has nowhere to go.
      int node = opt.direct ? m->NodeOf(args.Key(i)) : -1;
      if (opt.direct && node < 0) {
        o = kRpcFail;
        continue;
      }
      const NodeAddr* to = opt.direct ? &m->nodes()[node] : &seed;
      if (std::find(failed.begin(), failed.end(), *to) != failed.end()) {
        o = attempt == 0 ? kRetry : int64_t{kRpcFail};
        continue;
      }
      std::string name = Name(*to);
      auto it = by_node.find(name);
      if (it == by_node.end()) {
        NodeConn* c = Conn(session.get(), *to);
        if (c == nullptr) {
          failed.push_back(*to);
          o = attempt == 0 ? kRetry : int64_t{kRpcFail};
          continue;
        }
        it = by_node.emplace(name, std::make_pair(*to, std::make_unique<Work>(&args, c))).first;
      }
      Work* w = it->second.second.get();
      w->positions().push_back(i);
    }
    for (auto& [name, entry] : by_node) works.push_back(std::move(entry));
    Run(works, session.get(), deadline);
    bool again = false;
    for (int64_t o : args.out) again |= o == kRetry;
    if (!again || attempt == 1) break;
    for (auto& [addr, w] : works)
      if (w->broken() && std::find(failed.begin(), failed.end(), addr) == failed.end())
        failed.push_back(addr);
    Refresh(failed);
  }
  for (int64_t& o : args.out)
    if (o == kRetry || o == kPending) o = kRpcFail;
  GiveBack(std::move(session));
}

// ---------------------------------------------------------------- Client

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

int Client::Open(const Options& opt, std::unique_ptr<Client>* out, std::string* error) {
  auto impl = std::make_unique<Impl>();
  impl->opt = opt;
  impl->seed = NodeAddr{opt.host, opt.port};
  SlotMap m(impl->seed);
  if (SlotMap::Load(impl->seed, opt, &m, error) != kOk) return kRpcFail;
  impl->map = std::make_shared<const SlotMap>(std::move(m));
  out->reset(new Client(std::move(impl)));
  return kOk;
}

void Client::BatchGetInto(std::span<const KeyIo> keys, std::span<int64_t> out) {
  BatchArgs a{Op::kGet, keys, {}, out};
  impl_->Execute(a);
}

void Client::BatchPutFrom(std::span<const KeyIo> keys, std::span<int64_t> out) {
  BatchArgs a{Op::kPut, keys, {}, out};
  impl_->Execute(a);
}

void Client::BatchExists(std::span<const std::string_view> keys, std::span<int64_t> out) {
  BatchArgs a{Op::kExists, {}, keys, out};
  impl_->Execute(a);
}

void Client::BatchSize(std::span<const std::string_view> keys, std::span<int64_t> out) {
  BatchArgs a{Op::kSize, {}, keys, out};
  impl_->Execute(a);
}

void Client::BatchRemove(std::span<const std::string_view> keys, std::span<int64_t> out) {
  BatchArgs a{Op::kRemove, {}, keys, out};
  impl_->Execute(a);
}

int64_t Client::RemoveAll() {
  std::string err;
  redisContext* ctx = nullptr;
  for (const NodeAddr& a : impl_->Map()->nodes()) {
    ctx = ConnectBlocking(a, impl_->opt.user, impl_->opt.password, impl_->opt.timeout_ms, &err);
    if (ctx != nullptr) break;
  }
  if (ctx == nullptr) {
    impl_->Error(err);
    return kRpcFail;
  }
  // A pool's DBSIZE and FLUSHALL cover every node from any node.
  int64_t count = kRpcFail;
  auto* r = static_cast<redisReply*>(redisCommand(ctx, "DBSIZE"));
  if (r != nullptr && r->type == REDIS_REPLY_INTEGER) count = r->integer;
  if (r) freeReplyObject(r);
  if (count >= 0) {
    r = static_cast<redisReply*>(redisCommand(ctx, "FLUSHALL"));
    if (r == nullptr) {
      impl_->Error(ctx->errstr);
      count = kRpcFail;
    } else if (r->type != REDIS_REPLY_STATUS) {
      std::string_view text = r->type == REDIS_REPLY_ERROR ? std::string_view(r->str, r->len) : "";
      impl_->Error(std::string(text));
      count = CodeOfError(text);
    }
    if (r) freeReplyObject(r);
  }
  redisFree(ctx);
  return count;
}

int Client::Refresh() { return impl_->Refresh({}); }

int Client::Nodes() const { return static_cast<int>(impl_->Map()->nodes().size()); }

std::string Client::LastError() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->last_error;
}

}  // namespace kvpool::client
