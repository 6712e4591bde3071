#include "server/monitor.h"

#include <cctype>
#include <cstdio>
#include <vector>

namespace kvpool {

void MonitorHub::Add(uint64_t client_id, Push push) {
  std::lock_guard<std::mutex> l(mu_);
  feeds_[client_id] = std::move(push);
  count_.store(static_cast<int>(feeds_.size()), std::memory_order_relaxed);
}

void MonitorHub::Remove(uint64_t client_id) {
  std::lock_guard<std::mutex> l(mu_);
  feeds_.erase(client_id);
  count_.store(static_cast<int>(feeds_.size()), std::memory_order_relaxed);
}

void MonitorHub::Feed(const std::string& line) {
  std::vector<Push> to;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [id, push] : feeds_) to.push_back(push);
  }
  for (const Push& p : to) p(line);
}

namespace {

void Repr(std::string& o, std::string_view s) {
  o += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '\\': o += "\\\\"; break;
      case '"': o += "\\\""; break;
      case '\n': o += "\\n"; break;
      case '\r': o += "\\r"; break;
      case '\t': o += "\\t"; break;
      case '\a': o += "\\a"; break;
      case '\b': o += "\\b"; break;
      default:
        if (isprint(c)) {
          o += static_cast<char>(c);
        } else {
          char buf[8];
          snprintf(buf, sizeof buf, "\\x%02x", c);
          o += buf;
        }
    }
  }
  o += '"';
}

}  // namespace

std::string MonitorLine(int64_t unix_us, int db, std::string_view addr,
                        std::span<const std::string_view> args) {
  char head[64];
  snprintf(head, sizeof head, "+%lld.%06lld [%d ", static_cast<long long>(unix_us / 1000000),
           static_cast<long long>(unix_us % 1000000), db);
  std::string o = head;
  o.append(addr);
  o += ']';
  for (std::string_view a : args) {
    o += ' ';
    Repr(o, a);
  }
  o += "\r\n";
  return o;
}

}  // namespace kvpool
