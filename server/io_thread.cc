#include "server/io_thread.h"

#include <spdlog/spdlog.h>

#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>

#include "server/connection.h"

namespace kvpool {

int AutoIoThreads(int cores) { return cores < 4 ? 1 : std::min(cores - 1, 128); }  // io-threads' bound

IoThread::IoThread(int index) : index_(index) {}

IoThread::~IoThread() {
  conns_.clear();
  retired_.clear();
  if (task_ev_) event_free(task_ev_);
  if (reap_ev_) event_free(reap_ev_);
  if (lag_ev_) event_free(lag_ev_);
  if (base_) event_base_free(base_);
}

Status IoThread::Init() {
  base_ = event_base_new();
  if (base_ == nullptr) return Status::Internal("event_base_new failed");
  task_ev_ = event_new(base_, -1, 0, &IoThread::OnTasks, this);
  reap_ev_ = event_new(base_, -1, 0, &IoThread::OnReap, this);
  if (task_ev_ == nullptr || reap_ev_ == nullptr) return Status::Internal("event_new failed");
  return Status::OK();
}

namespace {

int64_t MonoUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t Us(const timeval& tv) { return int64_t{tv.tv_sec} * 1000000 + tv.tv_usec; }

// A loop turn that ran this long on the CPU is logged with where its time
// went (user code, the kernel, page faults), to tell a stall in our code
// from one in the kernel (reclaim, compaction) on a loaded machine.
constexpr int64_t kLongTurnUs = 100 * 1000;

}  // namespace

IoThread::Usage IoThread::ThreadUsage() {
  rusage ru{};
  getrusage(RUSAGE_THREAD, &ru);
  return Usage{Us(ru.ru_utime), Us(ru.ru_stime), ru.ru_minflt, ru.ru_majflt};
}

namespace {

void RaiseTo(std::atomic<uint64_t>* max, int64_t v) {
  uint64_t seen = max->load(std::memory_order_relaxed);
  while (v > 0 && static_cast<uint64_t>(v) > seen &&
         !max->compare_exchange_weak(seen, static_cast<uint64_t>(v), std::memory_order_relaxed)) {
  }
}

}  // namespace

void IoThread::WatchLag(std::atomic<uint64_t>* max_lag_us, std::atomic<uint64_t>* max_busy_us) {
  max_lag_us_ = max_lag_us;
  max_busy_us_ = max_busy_us;
  if (lag_ev_ == nullptr) lag_ev_ = evtimer_new(base_, &IoThread::OnLagProbe, this);
  if (lag_ev_ != nullptr) ArmLagProbe();
}

void IoThread::ArmLagProbe() {
  timeval tv{0, kLagProbeMs * 1000};
  lag_due_us_ = MonoUs() + kLagProbeMs * 1000;
  lag_armed_ = ThreadUsage();
  evtimer_add(lag_ev_, &tv);
}

void IoThread::OnLagProbe(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<IoThread*>(arg);
  int64_t late = MonoUs() - self->lag_due_us_;
  RaiseTo(self->max_lag_us_, late);
  Usage now = ThreadUsage();
  const Usage& then = self->lag_armed_;
  int64_t user = now.user_us - then.user_us, sys = now.sys_us - then.sys_us;
  int64_t busy = std::min(late, user + sys);
  RaiseTo(self->max_busy_us_, busy);
  if (busy >= kLongTurnUs) {
    spdlog::warn("io-{}: one event loop turn ran {} ms on the CPU ({} ms user, {} ms system, "
                 "{} minor and {} major page faults)",
                 self->index_, busy / 1000, user / 1000, sys / 1000, now.minflt - then.minflt,
                 now.majflt - then.majflt);
  }
  self->ArmLagProbe();
}

void IoThread::Start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), ("kvpool-io-" + std::to_string(index_)).c_str());
    // EVLOOP_NO_EXIT_ON_EMPTY: the loop waits for posted work even when idle.
    event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY);
  });
}

void IoThread::Stop() {
  Post([this] {
    CloseAll();
    event_base_loopexit(base_, nullptr);
  });
}

void IoThread::Join() {
  if (thread_.joinable()) thread_.join();
}

void IoThread::Post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> l(mu_);
    tasks_.push_back(std::move(task));
  }
  // Thread-safe with evthread_use_pthreads(); repeated activations coalesce.
  event_active(task_ev_, EV_READ, 0);
}

void IoThread::OnTasks(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<IoThread*>(arg);
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> l(self->mu_);
    tasks.swap(self->tasks_);
  }
  for (auto& t : tasks) t();
}

void IoThread::Adopt(std::unique_ptr<Connection> conn) {
  uint64_t id = conn->id();
  Connection* c = conn.get();
  conns_[id] = std::move(conn);
  c->Start();
}

void IoThread::CloseConnection(uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  it->second->Close();  // calls Retire
}

void IoThread::Retire(uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  retired_.push_back(std::move(it->second));
  conns_.erase(it);
  event_active(reap_ev_, EV_READ, 0);
}

void IoThread::OnReap(evutil_socket_t, short, void* arg) {
  static_cast<IoThread*>(arg)->retired_.clear();
}

void IoThread::CloseAll() {
  std::vector<uint64_t> ids;
  for (auto& [id, c] : conns_) ids.push_back(id);
  for (uint64_t id : ids) CloseConnection(id);
  retired_.clear();
}

void IoThread::ForEach(const std::function<void(Connection&)>& fn) {
  for (auto& [id, c] : conns_) fn(*c);
}

}  // namespace kvpool
