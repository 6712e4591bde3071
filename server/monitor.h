// MONITOR: every command the node runs, as a line, to each client that
// asked (in Redis's format). Feeding costs one relaxed load per command
// while no one monitors.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <string_view>

namespace kvpool {

class MonitorHub {
 public:
  // Called from any thread with one line; delivers it to its client's own
  // thread (the connection posts it there).
  using Push = std::function<void(std::string line)>;
  void Add(uint64_t client_id, Push push);
  void Remove(uint64_t client_id);
  bool active() const { return count_.load(std::memory_order_relaxed) > 0; }
  void Feed(const std::string& line);

 private:
  mutable std::mutex mu_;
  std::map<uint64_t, Push> feeds_;  // guarded by mu_
  std::atomic<int> count_{0};
};

// `+<seconds>.<µs> [<db> <addr>] "arg" "arg" ...\r\n`, each argument quoted
// and escaped as Redis's sdscatrepr does.
std::string MonitorLine(int64_t unix_us, int db, std::string_view addr,
                        std::span<const std::string_view> args);

}  // namespace kvpool
