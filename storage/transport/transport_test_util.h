// Helpers for the transport tests: event loops on their own threads, nodes
// with their lanes, synchronous calls, free loopback ports, byte patterns.
#pragma once

#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "storage/transport/tcp_transport.h"
#include "storage/transport/transport.h"

namespace kvpool::transport::testing {

inline void UseThreads() {
  static std::once_flag once;
  std::call_once(once, [] { evthread_use_pthreads(); });
}

// An event loop running on its own thread.
class LoopThread {
 public:
  LoopThread() {
    UseThreads();
    base_ = event_base_new();
    thread_ = std::thread([this] {
      tid_promise_.set_value(std::this_thread::get_id());
      event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY);
    });
    tid_ = tid_promise_.get_future().get();
  }
  ~LoopThread() { Stop(); }
  void Stop() {
    if (thread_.joinable()) {
      event_base_loopexit(base_, nullptr);
      thread_.join();
    }
    if (base_) event_base_free(base_);
    base_ = nullptr;
  }
  event_base* base() const { return base_; }
  std::thread::id thread_id() const { return tid_; }
  // Runs fn on the loop thread, soon.
  void Post(std::function<void()> fn) {
    auto* f = new std::function<void()>(std::move(fn));
    timeval tv{0, 0};
    event_base_once(
        base_, -1, EV_TIMEOUT,
        [](evutil_socket_t, short, void* a) {
          auto* f = static_cast<std::function<void()>*>(a);
          (*f)();
          delete f;
        },
        f, &tv);
  }
  // Runs fn on the loop thread and waits for it.
  void Run(std::function<void()> fn) {
    std::promise<void> done;
    Post([&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }

 private:
  event_base* base_ = nullptr;
  std::thread thread_;
  std::promise<std::thread::id> tid_promise_;
  std::thread::id tid_;
};

inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

inline TransportOptions MakeOptions(int self, const std::vector<int>& ports,
                                    std::string secret = "pool-secret") {
  TransportOptions o;
  o.self = self;
  for (int p : ports) o.peers.push_back({"127.0.0.1", p});
  o.bind_host = "127.0.0.1";
  o.listen_port = ports[self];
  o.secret = std::move(secret);
  return o;
}

struct CallResult {
  Status st;
  std::string reply;
  std::string bulk;
  std::thread::id thread;
};

// A node: its lanes (one thread each) and its transport.
class TestNode {
 public:
  TestNode(const TransportOptions& o, int lanes, CallHandler handler, TcpTuning tuning = {})
      : TestNode(
            lanes, [&] { return CreateTcpTransport(o, tuning); }, std::move(handler)) {}
  // Any transport: `create` builds it once the lanes exist. CallSync waits
  // `call_timeout_ms` unless told otherwise.
  TestNode(int lanes, const std::function<StatusOr<std::unique_ptr<Transport>>()>& create,
           CallHandler handler, int call_timeout_ms = 10000)
      : call_timeout_ms_(call_timeout_ms) {
    for (int i = 0; i < lanes; ++i) lanes_.push_back(std::make_unique<LoopThread>());
    auto t = create();
    if (!t.ok()) {
      start_ = t.status();
      return;
    }
    t_ = std::move(t.value());
    std::vector<event_base*> bases;
    for (auto& l : lanes_) bases.push_back(l->base());
    start_ = t_->Start(bases, std::move(handler));
  }
  virtual ~TestNode() { Kill(); }
  // Stops every lane on its thread, then destroys the transport.
  void Kill() {
    if (!t_) return;
    for (size_t i = 0; i < lanes_.size(); ++i) lanes_[i]->Run([&] { t_->StopLane(int(i)); });
    t_.reset();
  }
  const Status& start_status() const { return start_; }
  Transport& t() { return *t_; }
  LoopThread& lane(int i) { return *lanes_[i]; }
  int lanes() const { return static_cast<int>(lanes_.size()); }

  // Issues the call on `lane`'s thread and waits for its callback.
  CallResult CallSync(int lane, int peer, CallArgs args, int timeout_ms = -1) {
    if (timeout_ms < 0) timeout_ms = call_timeout_ms_;
    std::promise<CallResult> p;
    lanes_[lane]->Post([&, args = std::move(args)]() mutable {
      t_->Call(
          lane, peer, std::move(args), timeout_ms,
          [&p](Status st, std::string_view reply, std::string_view bulk) {
            p.set_value({st, std::string(reply), std::string(bulk), std::this_thread::get_id()});
          });
    });
    return p.get_future().get();
  }

  // As CallSync, keeping bulk_out past the callback (BulkOut::Keep).
  struct KeptResult {
    Status st;
    std::shared_ptr<const void> kept;
    std::string_view bulk;  // valid while `kept` lives
    bool moved = false;     // Keep copied the bytes elsewhere
  };
  KeptResult CallKeep(int lane, int peer, CallArgs args) {
    std::promise<KeptResult> p;
    lanes_[lane]->Post([&, args = std::move(args)]() mutable {
      t_->Call(lane, peer, std::move(args), call_timeout_ms_,
               [&p](Status st, std::string_view, BulkOut bulk) {
                 const char* before = bulk.data();
                 KeptResult r{st, bulk.Keep(), bulk.view(), false};
                 r.moved = r.bulk.data() != before;
                 p.set_value(std::move(r));
               });
    });
    return p.get_future().get();
  }

 private:
  const int call_timeout_ms_ = 10000;
  std::vector<std::unique_ptr<LoopThread>> lanes_;
  std::unique_ptr<Transport> t_;
  Status start_ = Status::Internal("not started");
};

inline CallArgs Args(uint16_t opcode, std::string body, size_t bulk_out_capacity = 0) {
  CallArgs a;
  a.opcode = opcode;
  a.body = std::move(body);
  a.bulk_out_capacity = bulk_out_capacity;
  return a;
}

// A deterministic pattern (not zeros), so misplaced bytes are caught.
inline void FillPattern(char* p, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; ++i) {
    uint64_t x = (i / 8 + seed) * 0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    p[i] = static_cast<char>(x >> ((i % 8) * 8));
  }
}
inline std::string Pattern(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  FillPattern(s.data(), n, seed);
  return s;
}
inline bool CheckPattern(std::string_view s, uint64_t seed) {
  std::string want = Pattern(s.size(), seed);
  return s == want;
}

// Opcodes of the test handler.
enum TestOp : uint16_t {
  kEcho = 1,  // reply = body
  kBulkEcho,  // bulk_in read with ReadBulk, written back to bulk_out
  kPattern,   // body "size seed chunk": bulk_out = Pattern(size, seed), in chunks
  kVerifyIn,  // body "seed": reply "ok" if bulk_in == Pattern(size, seed)
  kDelay,     // body "ms": reply = body after ms
  kNever,     // kept unanswered in the stash
  kDrop,      // destroyed without a reply
  kCapacity,  // fills bulk_out exactly; reports what over-filling returned
  kWhere,     // reply = this node's lane index
};

// The owner's side of the tests. Handlers run on the node's lane threads.
class ServerLogic {
 public:
  void Attach(TestNode& n, int lanes) {
    for (int i = 0; i < lanes; ++i) lanes_.push_back({n.lane(i).thread_id(), n.lane(i).base()});
  }
  CallHandler Handler() {
    return [this](std::unique_ptr<IncomingCall> c) { Handle(std::move(c)); };
  }
  std::atomic<int> handled{0};
  std::atomic<int> released{0};
  std::atomic<int> stashed{0};
  // Answers (or drops, with an empty body) the stashed calls; run on the lane.
  void FinishStash(const char* body) {
    std::vector<std::unique_ptr<IncomingCall>> calls;
    {
      std::lock_guard<std::mutex> lk(mu_);
      calls.swap(stash_);
    }
    for (auto& c : calls)
      if (body) c->Reply(body);
  }

 private:
  // A buffer handed to WriteBulk in one or more ranges.
  struct Buf {
    std::unique_ptr<char[]> data;
    int refs = 0;
    ServerLogic* logic;
  };
  static void Release(void* ctx) {
    auto* b = static_cast<Buf*>(ctx);
    b->logic->released++;
    if (--b->refs == 0) delete b;
  }
  int LaneIndex() const {
    for (size_t i = 0; i < lanes_.size(); ++i)
      if (lanes_[i].first == std::this_thread::get_id()) return int(i);
    return -1;
  }

  void Handle(std::unique_ptr<IncomingCall> c) {
    handled++;
    switch (c->opcode()) {
      case kEcho:
        return c->Reply(std::string(c->body()));
      case kWhere:
        return c->Reply(std::to_string(LaneIndex()));
      case kDrop:
        return;
      case kNever: {
        std::lock_guard<std::mutex> lk(mu_);
        stash_.push_back(std::move(c));
        stashed++;
        return;
      }
      case kDelay: {
        int ms = std::stoi(std::string(c->body()));
        auto* held = new std::unique_ptr<IncomingCall>(std::move(c));
        timeval tv{ms / 1000, (ms % 1000) * 1000};
        event_base_once(
            lanes_[LaneIndex()].second, -1, EV_TIMEOUT,
            [](evutil_socket_t, short, void* a) {
              auto* h = static_cast<std::unique_ptr<IncomingCall>*>(a);
              (*h)->Reply(std::string((*h)->body()));
              delete h;
            },
            held, &tv);
        return;
      }
      case kPattern: {
        size_t size = 0, chunk = 0;
        unsigned long long seed = 0;
        std::sscanf(std::string(c->body()).c_str(), "%zu %llu %zu", &size, &seed, &chunk);
        if (chunk == 0) chunk = size ? size : 1;
        auto* b = new Buf{std::unique_ptr<char[]>(new char[size + 1]), 1, this};
        FillPattern(b->data.get(), size, seed);
        for (size_t off = 0; off < size; off += chunk) {
          size_t n = std::min(chunk, size - off), at = 0;
          b->refs++;
          Status st = c->WriteBulk(b->data.get() + off, n, &Release, b, &at);
          if (!st.ok() || at != off) {
            b->refs--;
            return c->Reply("write failed");
          }
        }
        Release(b);  // the handler's own reference
        return c->Reply("ok");
      }
      case kBulkEcho:
      case kVerifyIn: {
        const size_t size = c->bulk_in_size();
        auto* b = new Buf{std::unique_ptr<char[]>(new char[size + 1]), 1, this};
        auto held = std::make_shared<std::unique_ptr<IncomingCall>>(std::move(c));
        IncomingCall* call = held->get();
        call->ReadBulk(0, size, b->data.get(), [this, held, b, size](Status st) {
          IncomingCall& c = **held;
          if (!st.ok()) {
            Release(b);
            return c.Reply("read failed");
          }
          if (c.opcode() == kVerifyIn) {
            unsigned long long seed = std::stoull(std::string(c.body()));
            bool ok = CheckPattern(std::string_view(b->data.get(), size), seed);
            Release(b);
            return c.Reply(ok ? "ok" : "bad");
          }
          size_t at = 0;
          if (!c.WriteBulk(b->data.get(), size, &Release, b, &at).ok()) {
            Release(b);
            return c.Reply("no room");
          }
          c.Reply(std::to_string(size));
        });
        return;
      }
      case kCapacity: {
        static const std::string data = Pattern(1 << 16, 77);
        const size_t cap = c->bulk_out_capacity();
        size_t at = 0;
        std::string report;
        report += c->WriteBulk(data.data(), cap + 1, nullptr, nullptr, &at).ok() ? "A" : "a";
        report += c->WriteBulk(data.data(), cap / 2, &CountRelease, this, &at).ok() ? "B" : "b";
        report += c->WriteBulk(data.data() + cap / 2, cap - cap / 2, &CountRelease, this, &at).ok()
                      ? "C"
                      : "c";
        report += c->WriteBulk(data.data(), 1, nullptr, nullptr, &at).ok() ? "D" : "d";
        return c->Reply(report);
      }
    }
    c->Reply("unknown opcode");
  }
  static void CountRelease(void* ctx) { static_cast<ServerLogic*>(ctx)->released++; }

  std::vector<std::pair<std::thread::id, event_base*>> lanes_;
  std::mutex mu_;
  std::vector<std::unique_ptr<IncomingCall>> stash_;
};

template <typename Pred>
bool WaitFor(Pred pred, int timeout_ms = 5000) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return pred();
}

}  // namespace kvpool::transport::testing
