// One event loop on its own thread, serving the connections handed to it.
// Other threads talk to it only through Post().
#pragma once

#include <event2/event.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "storage/util/status.h"

namespace kvpool {

class Connection;

// `io-threads 0`: how many event loops serve clients on a machine with
// `cores` online. One below 4 cores; from 4 up, one per core but one
// (Redis's advice for its I/O threads: at least 4 cores, one spare). Measured
// on 2 cores with the client on the same machine (bench/RESULTS.md): a
// second loop costs 3-50% more server CPU per request and no throughput.
// At most 128, the most `io-threads` takes.
int AutoIoThreads(int cores);

class IoThread {
 public:
  explicit IoThread(int index);
  ~IoThread();
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  [[nodiscard]] Status Init();
  void Start();  // runs the loop on a new thread
  // Stops the loop after the tasks posted before it; then Join().
  void Stop();
  void Join();

  // Runs `task` on this thread's loop. Thread-safe; tasks run in order.
  void Post(std::function<void()> task);

  // Keeps in *max_lag_us the longest this loop was late, in µs: a timer
  // due every kLagProbeMs fires late by about as long as the loop was busy
  // in one callback (a huge copy, a slow command), or as the thread waited
  // for a core (a busy machine). *max_busy_us keeps the part of each delay
  // this thread spent running (its CPU time, CLOCK_THREAD_CPUTIME_ID, since
  // the probe was armed, capped at the delay): its own work, not the
  // scheduler's. Call before Start().
  void WatchLag(std::atomic<uint64_t>* max_lag_us, std::atomic<uint64_t>* max_busy_us);
  static constexpr int kLagProbeMs = 10;

  event_base* base() const { return base_; }
  int index() const { return index_; }

  // Connections served by this thread (owned here). Loop thread only.
  void Adopt(std::unique_ptr<Connection> conn);
  // Closes and frees the connection with this client id, if it is here.
  void CloseConnection(uint64_t id);
  // Called by a connection that closed itself; frees it after the current
  // callback returns.
  void Retire(uint64_t id);
  // Closes every connection (shutdown). Loop thread only.
  void CloseAll();
  // Calls fn for each live connection (loop thread only).
  void ForEach(const std::function<void(Connection&)>& fn);

 private:
  static void OnTasks(evutil_socket_t, short, void* arg);
  static void OnReap(evutil_socket_t, short, void* arg);
  static void OnLagProbe(evutil_socket_t, short, void* arg);
  void ArmLagProbe();

  int index_;
  event_base* base_ = nullptr;
  event* task_ev_ = nullptr;
  event* reap_ev_ = nullptr;
  event* lag_ev_ = nullptr;
  std::atomic<uint64_t>* max_lag_us_ = nullptr;
  std::atomic<uint64_t>* max_busy_us_ = nullptr;
  // This thread's CPU time and page faults so far (getrusage RUSAGE_THREAD).
  struct Usage {
    int64_t user_us = 0;
    int64_t sys_us = 0;
    long minflt = 0;
    long majflt = 0;
  };
  static Usage ThreadUsage();
  Usage lag_armed_;  // when the probe was armed
  int64_t lag_due_us_ = 0;  // monotonic µs the probe is due
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::function<void()>> tasks_;  // guarded by mu_
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> conns_;
  std::vector<std::unique_ptr<Connection>> retired_;
};

}  // namespace kvpool
