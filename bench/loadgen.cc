// kvpool's load generator: many connections over a few event-loop threads,
// pipelined commands, hiredis's reply parser, per-command latency, optional
// check of every reply. See `loadgen --help` and bench/README.md.

// hiredis 0.14's sds.h has no extern "C" of its own; it must come first so
// that hiredis.h (included by the headers below) reuses this declaration.
extern "C" {
#include <hiredis/sds.h>
}
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <hiredis/hiredis.h>

#include "bench/loadgen_options.h"
#include "bench/loadgen_result.h"
#include "bench/workload.h"

namespace kvbench {
namespace {

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

// ---------------------------------------------------------------------------
// Fast reply accounting: hiredis's parser with object functions that build
// nothing and only count (used unless --verify, which needs the reply tree).

struct Tally {
  uint64_t strings = 0, string_bytes = 0, nils = 0, int_sum = 0, errors = 0;
  std::string first_error;
};
thread_local Tally* t_tally = nullptr;
char g_dummy;

void* TallyString(const redisReadTask* task, char* s, size_t len) {
  if (task->type == REDIS_REPLY_ERROR) {
    if (t_tally->errors++ == 0) t_tally->first_error.assign(s, len);
  } else if (task->type == REDIS_REPLY_STRING) {
    ++t_tally->strings;
    t_tally->string_bytes += len;
  }
  return &g_dummy;
}
void* TallyArray(const redisReadTask*, int) { return &g_dummy; }
void* TallyInteger(const redisReadTask*, long long v) {
  t_tally->int_sum += static_cast<uint64_t>(v);
  return &g_dummy;
}
void* TallyNil(const redisReadTask*) {
  ++t_tally->nils;
  return &g_dummy;
}
void TallyFree(void*) {}
redisReplyObjectFunctions g_tally_fns = {TallyString, TallyArray, TallyInteger, TallyNil,
                                         TallyFree};

// The same counts from a full reply tree (--verify).
void TallyTree(const redisReply* r, Tally* t) {
  switch (r->type) {
    case REDIS_REPLY_STRING: ++t->strings; t->string_bytes += r->len; break;
    case REDIS_REPLY_NIL: ++t->nils; break;
    case REDIS_REPLY_INTEGER: t->int_sum += static_cast<uint64_t>(r->integer); break;
    case REDIS_REPLY_ERROR:
      if (t->errors++ == 0) t->first_error.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      for (size_t i = 0; i < r->elements; ++i)
        if (r->element[i]) TallyTree(r->element[i], t);
      break;
  }
}

// ---------------------------------------------------------------------------

int Connect(const std::string& host, int port, std::string* error) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) {
    *error = "resolve " + host + ": " + gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = res; a; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    *error = "connect " + host + ":" + std::to_string(port) + ": " + std::strerror(errno);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

struct Pending {
  uint64_t sent_ns = 0;
  int keys = 0;
  Batch batch;  // filled with --verify only
};

struct Conn {
  int fd = -1;
  redisReader* reader = nullptr;
  std::string out;
  size_t out_off = 0;
  bool epollout = false;
  // In-flight commands, a ring of pipeline slots.
  std::vector<Pending> ring;
  size_t head = 0, count = 0;
  uint64_t last_progress = 0;
  // Loading: this connection's share of the keys.
  int64_t load_next = 0, load_end = 0;
  bool dead = false;
  // Counts of the reply being parsed: a large reply is parsed across many
  // reads, so they live with the connection until the reply is complete.
  Tally tally;
};

enum class Phase { kLoad, kRun };

struct Shared {
  const Options* opts;
  const Keyspace* ks;
  std::atomic<int64_t> requests_left{0};
  std::atomic<uint64_t> run_start{0};
  std::atomic<bool> abort{false};
};

class Worker {
 public:
  Worker(Shared* sh, int index, int conns) : sh_(sh), o_(*sh->opts), rng_(0) {
    rng_ = Rng(o_.seed * 1000003ULL + static_cast<uint64_t>(index) * 7919ULL + 1);
    conns_.resize(static_cast<size_t>(conns));
  }
  ~Worker() {
    for (auto& c : conns_) {
      if (c.reader) redisReaderFree(c.reader);
      if (c.fd >= 0) close(c.fd);
    }
    if (ep_ >= 0) close(ep_);
  }

  bool Connect(std::string* error) {
    ep_ = epoll_create1(0);
    for (size_t i = 0; i < conns_.size(); ++i) {
      Conn& c = conns_[i];
      c.fd = kvbench::Connect(o_.host, o_.port, error);
      if (c.fd < 0) return false;
      c.reader = o_.verify ? redisReaderCreate() : redisReaderCreateWithFunctions(&g_tally_fns);
      c.reader->maxbuf = 0;  // keep the buffer: replies may be large
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = i;
      epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev);
    }
    return true;
  }

  void AssignLoad(int64_t first, int64_t end) {
    // Split [first, end) over this worker's connections.
    const int64_t n = static_cast<int64_t>(conns_.size());
    const int64_t total = end - first;
    for (int64_t i = 0; i < n; ++i) {
      conns_[static_cast<size_t>(i)].load_next = first + total * i / n;
      conns_[static_cast<size_t>(i)].load_end = first + total * (i + 1) / n;
    }
  }

  void Run(Phase phase, uint64_t deadline_ns) {
    phase_ = phase;
    deadline_ = deadline_ns;
    depth_ = phase == Phase::kLoad ? o_.load_pipeline : o_.pipeline;
    for (auto& c : conns_) {
      c.ring.assign(static_cast<size_t>(depth_), Pending{});
      c.head = c.count = 0;
      c.last_progress = NowNs();
    }
    for (size_t i = 0; i < conns_.size(); ++i) Fill(i);
    epoll_event evs[256];
    for (;;) {
      if (sh_->abort.load(std::memory_order_relaxed)) break;
      bool busy = false;
      for (auto& c : conns_)
        if (!c.dead && c.count > 0) busy = true;
      if (!busy) break;
      int n = epoll_wait(ep_, evs, 256, 100);
      for (int k = 0; k < n; ++k) {
        const size_t i = evs[k].data.u64;
        Conn& c = conns_[i];
        if (c.dead) continue;
        if (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) Read(i);
        if (!c.dead && (evs[k].events & EPOLLOUT)) Flush(i);
      }
      const uint64_t now = NowNs();
      for (size_t i = 0; i < conns_.size(); ++i) {
        Conn& c = conns_[i];
        if (!c.dead && c.count > 0 && now - c.last_progress > o_.timeout * 1e9)
          Fail(i, "no reply for " + std::to_string(o_.timeout) + " s");
      }
    }
  }

  Result& result() { return res_; }
  int64_t load_errors() const { return load_errors_; }

 private:
  static constexpr size_t kBuf = 256 * 1024;

  bool MoreToSend(Conn& c) {
    if (phase_ == Phase::kLoad) return c.load_next < c.load_end;
    if (o_.requests > 0) return sh_->requests_left.fetch_sub(1, std::memory_order_relaxed) > 0;
    return NowNs() < deadline_;
  }

  void Fill(size_t i) {
    Conn& c = conns_[i];
    if (c.dead) return;
    bool appended = false;
    const uint64_t now = NowNs();
    while (c.count < static_cast<size_t>(depth_) && MoreToSend(c)) {
      Pending& p = c.ring[(c.head + c.count) % c.ring.size()];
      p.sent_ns = now;
      if (phase_ == Phase::kLoad) {
        const int64_t per = std::clamp<int64_t>(o_.load_batch_bytes / o_.value_size, 1, 1000);
        const int64_t n = std::min(per, c.load_end - c.load_next);
        AppendLoadCommand(c.load_next, n, *sh_->ks, &c.out);
        c.load_next += n;
        p.keys = static_cast<int>(n);
      } else {
        PickBatch(o_.command, o_.keys_per_batch, o_.hit_ratio, *sh_->ks, &rng_, &batch_);
        AppendCommand(o_.command, batch_, *sh_->ks, &c.out);
        p.keys = static_cast<int>(batch_.ids.size());
        if (o_.verify) std::swap(p.batch, batch_);
      }
      ++c.count;
      appended = true;
    }
    if (appended) Flush(i);
  }

  void Flush(size_t i) {
    Conn& c = conns_[i];
    while (c.out_off < c.out.size()) {
      ssize_t n = write(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off);
      if (n > 0) {
        c.out_off += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      Fail(i, std::string("write: ") + std::strerror(errno));
      return;
    }
    const bool pending = c.out_off < c.out.size();
    if (!pending) {
      c.out.clear();
      c.out_off = 0;
    }
    if (pending != c.epollout) {
      epoll_event ev{};
      ev.events = EPOLLIN | (pending ? static_cast<uint32_t>(EPOLLOUT) : 0u);
      ev.data.u64 = i;
      epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
      c.epollout = pending;
    }
  }

  void Read(size_t i) {
    Conn& c = conns_[i];
    // Read straight into the reader's buffer: redisReaderFeed would copy
    // every byte once more, which was half of the generator's CPU time with
    // 400 KB replies (profiled).
    redisReader* rd = c.reader;
    rd->buf = sdsMakeRoomFor(rd->buf, kBuf);
    if (rd->buf == nullptr) return Fail(i, "out of memory");
    ssize_t n = read(c.fd, rd->buf + rd->len, kBuf);
    if (n == 0) return Fail(i, "server closed the connection");
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      return Fail(i, std::string("read: ") + std::strerror(errno));
    }
    sdsIncrLen(rd->buf, static_cast<int>(n));
    rd->len = sdslen(rd->buf);
    const uint64_t now = NowNs();
    c.last_progress = now;
    for (;;) {
      void* reply = nullptr;
      t_tally = &c.tally;
      if (redisReaderGetReply(c.reader, &reply) != REDIS_OK)
        return Fail(i, std::string("protocol error: ") + c.reader->errstr);
      if (reply == nullptr) break;
      if (c.count == 0) {
        if (o_.verify) freeReplyObject(reply);
        return Fail(i, "reply to no command");
      }
      Pending& p = c.ring[c.head];
      c.head = (c.head + 1) % c.ring.size();
      --c.count;
      std::string wrong;
      Tally tally;
      std::swap(tally, c.tally);  // the complete reply's counts; c.tally starts afresh
      if (o_.verify) {
        auto* r = static_cast<redisReply*>(reply);
        TallyTree(r, &tally);
        if (phase_ == Phase::kRun) wrong = CheckReply(o_.command, p.batch, *sh_->ks, r);
        else if (r->type != REDIS_REPLY_STATUS || std::string(r->str, r->len) != "OK")
          wrong = "loading MSET: expected +OK";
        freeReplyObject(reply);
      }
      Account(p, tally, wrong, now);
    }
    Fill(i);
  }

  void Account(const Pending& p, const Tally& t, const std::string& wrong, uint64_t now) {
    if (phase_ == Phase::kLoad) {
      if (t.errors > 0 || !wrong.empty()) {
        ++load_errors_;
        Note(!wrong.empty() ? wrong : "loading MSET: " + t.first_error);
      }
      return;
    }
    // Timed runs count replies that arrive by the deadline.
    if (o_.requests == 0 && now > deadline_) return;
    res_.commands++;
    res_.keys += static_cast<uint64_t>(p.keys);
    res_.latency.Record(now - p.sent_ns);
    if (t.errors > 0) {
      res_.error_replies++;
      Note("error reply: " + t.first_error);
    }
    if (!wrong.empty()) {
      res_.verify_errors++;
      Note(wrong);
    }
    if (IsWrite(o_.command)) {
      res_.value_bytes += static_cast<uint64_t>(p.keys) * static_cast<uint64_t>(o_.value_size);
    } else if (o_.command != Command::kPing) {
      const uint64_t hits = t.strings + t.int_sum;
      res_.hits += hits;
      res_.misses += static_cast<uint64_t>(p.keys) > hits ? p.keys - hits : 0;
      res_.value_bytes += t.string_bytes;
    }
  }

  void Note(const std::string& what) {
    if (res_.first_error.empty()) res_.first_error = what;
  }

  void Fail(size_t i, const std::string& why) {
    Conn& c = conns_[i];
    if (c.dead) return;
    c.dead = true;
    res_.io_errors++;
    Note(why);
    epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
    sh_->abort = true;  // a lost connection spoils the figures: stop
  }

  Shared* sh_;
  const Options& o_;
  Rng rng_;
  std::vector<Conn> conns_;
  int ep_ = -1;
  Phase phase_ = Phase::kRun;
  uint64_t deadline_ = 0;
  int depth_ = 1;
  Batch batch_;
  Result res_;
  int64_t load_errors_ = 0;
};

// --keys-owned-by: the first key ids that POOL KEYNODE places on that node.
bool ResolveOwnedKeys(const Options& o, Keyspace* ks, std::string* error) {
  redisContext* c = redisConnect(o.host.c_str(), o.port);
  if (c == nullptr || c->err) {
    *error = std::string("connect: ") + (c ? c->errstr : "out of memory");
    if (c) redisFree(c);
    return false;
  }
  const bool need_absent = o.hit_ratio < 1.0 && !IsWrite(o.command);
  const size_t want_present = static_cast<size_t>(o.key_count);
  const size_t want_absent = need_absent ? want_present : 0;
  std::vector<uint64_t> present, absent;
  uint64_t next = 0;
  constexpr uint64_t kChunk = 4096;
  while (present.size() < want_present || absent.size() < want_absent) {
    if (next > 1000 * (want_present + want_absent) + 100000) {
      *error = "POOL KEYNODE: too few keys owned by " + o.keys_owned_by;
      redisFree(c);
      return false;
    }
    for (uint64_t id = next; id < next + kChunk; ++id) {
      std::string key = ks->Key(id);
      redisAppendCommand(c, "POOL KEYNODE %b", key.data(), key.size());
    }
    for (uint64_t id = next; id < next + kChunk; ++id) {
      void* rv = nullptr;
      if (redisGetReply(c, &rv) != REDIS_OK) {
        *error = std::string("POOL KEYNODE: ") + c->errstr;
        redisFree(c);
        return false;
      }
      auto* r = static_cast<redisReply*>(rv);
      if (r->type != REDIS_REPLY_STRING) {
        *error = "POOL KEYNODE: unexpected reply" +
                 (r->type == REDIS_REPLY_ERROR ? ": " + std::string(r->str, r->len) : "");
        freeReplyObject(r);
        redisFree(c);
        return false;
      }
      if (std::string(r->str, r->len) == o.keys_owned_by) {
        if (present.size() < want_present) present.push_back(id);
        else if (absent.size() < want_absent) absent.push_back(id);
      }
      freeReplyObject(r);
    }
    next += kChunk;
  }
  redisFree(c);
  ks->SetIdMap(std::move(present), std::move(absent));
  return true;
}

int Main(int argc, char** argv) {
  Options o;
  std::string error;
  if (!ParseOptions(argc, argv, &o, &error)) {
    if (error.empty()) {
      std::fputs(Usage().c_str(), stdout);
      return 0;
    }
    std::fprintf(stderr, "loadgen: %s\n%s", error.c_str(), Usage().c_str());
    return 2;
  }
  Keyspace ks(o.key_prefix, o.key_count, o.value_size, o.seed);
  if (!o.keys_owned_by.empty() && !ResolveOwnedKeys(o, &ks, &error)) {
    std::fprintf(stderr, "loadgen: %s\n", error.c_str());
    return 2;
  }

  Shared sh;
  sh.opts = &o;
  sh.ks = &ks;
  sh.requests_left = o.requests;
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < o.threads; ++t) {
    const int conns = o.clients / o.threads + (t < o.clients % o.threads ? 1 : 0);
    workers.push_back(std::make_unique<Worker>(&sh, t, conns));
  }
  for (auto& w : workers)
    if (!w->Connect(&error)) {
      std::fprintf(stderr, "loadgen: %s\n", error.c_str());
      return 2;
    }

  Result total;
  total.options = o;
  std::mutex mu;
  std::barrier sync(o.threads);
  uint64_t load_start = 0, load_end = 0, run_start = 0, run_end = 0;
  int64_t load_errors = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < o.threads; ++t) {
    threads.emplace_back([&, t] {
      Worker& w = *workers[static_cast<size_t>(t)];
      if (o.load) {
        w.AssignLoad(o.key_count * t / o.threads, o.key_count * (t + 1) / o.threads);
        sync.arrive_and_wait();
        if (t == 0) load_start = NowNs();
        w.Run(Phase::kLoad, 0);
        sync.arrive_and_wait();
        if (t == 0) load_end = NowNs();
      }
      if (o.duration > 0 || o.requests > 0) {
        sync.arrive_and_wait();
        if (t == 0) sh.run_start = NowNs();
        sync.arrive_and_wait();
        const uint64_t start = sh.run_start.load();
        w.Run(Phase::kRun, start + static_cast<uint64_t>(o.duration * 1e9));
        sync.arrive_and_wait();
        if (t == 0) run_end = NowNs();
      }
      std::lock_guard<std::mutex> lock(mu);
      Result& r = w.result();
      load_errors += w.load_errors();
      total.commands += r.commands;
      total.keys += r.keys;
      total.value_bytes += r.value_bytes;
      total.error_replies += r.error_replies;
      total.verify_errors += r.verify_errors;
      total.hits += r.hits;
      total.misses += r.misses;
      total.io_errors += r.io_errors;
      total.latency.Merge(r.latency);
      if (total.first_error.empty()) total.first_error = r.first_error;
    });
  }
  for (auto& th : threads) th.join();
  run_start = sh.run_start.load();
  if (o.load) {
    total.load_keys = o.key_count;
    total.load_seconds = (load_end - load_start) / 1e9;
    total.error_replies += static_cast<uint64_t>(load_errors);
  }
  if (run_start != 0)
    total.seconds = o.requests > 0 ? (run_end - run_start) / 1e9 : o.duration;
  std::printf("%s\n", FormatJson(total).c_str());
  std::fflush(stdout);
  if (!o.quiet) std::fputs(FormatHuman(total).c_str(), stderr);
  return total.ok() ? 0 : 1;
}

}  // namespace
}  // namespace kvbench

int main(int argc, char** argv) { return kvbench::Main(argc, argv); }
