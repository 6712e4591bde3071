// What the server knows about one client, independent of its socket, so that
// commands can run in-process in tests. The Connection owns one.
//
// Threading: the fields under "owner" are touched only by the thread serving
// the client. ClientInfo is what other threads (CLIENT LIST, INFO) may read.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "storage/segment/store.h"

namespace kvpool {

// Readable from any thread.
struct ClientInfo {
  uint64_t id = 0;
  std::string addr = "in-process:0", laddr = "in-process:0";  // set once before registration
  int fd = -1;
  int64_t created_ms = 0;
  std::atomic<int> db{0};
  std::atomic<int> resp{2};
  std::atomic<int64_t> last_interaction_ms{0};
  std::atomic<const char*> last_command{"NULL"};  // points to a static command name
  std::atomic<size_t> query_buffer{0};
  std::atomic<size_t> output_buffer{0};
  std::atomic<int> multi_queued{-1};  // -1 = not in MULTI

  mutable std::mutex mu;
  std::string name;              // CLIENT SETNAME; guarded by mu
  std::string lib_name, lib_ver; // CLIENT SETINFO; guarded by mu
};

struct ClientState {
  // ---- owner thread ----
  int db = 0;
  int resp = 2;
  bool authenticated = false;
  bool close_after_reply = false;  // QUIT, CLIENT KILL of self

  // MULTI/EXEC.
  bool in_multi = false;
  bool multi_error = false;  // a command failed to queue: EXEC aborts
  std::vector<std::vector<std::string>> queued;
  std::shared_ptr<storage::WatchToken> watch;  // non-null while WATCHing

  // ---- shared ----
  std::shared_ptr<ClientInfo> info = std::make_shared<ClientInfo>();
};

}  // namespace kvpool
