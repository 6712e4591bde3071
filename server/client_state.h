// What the server knows about one client, independent of its socket, so that
// commands can run in-process in tests. The Connection owns one.
//
// Threading: the fields under "owner" are touched only by the thread serving
// the client. ClientInfo is what other threads (CLIENT LIST, INFO) may read.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/deferred_reply.h"
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
  std::atomic<bool> kill_requested{false};  // CLIENT KILL before the I/O thread took it

  mutable std::mutex mu;
  std::string name;              // CLIENT SETNAME; guarded by mu
  std::string lib_name, lib_ver; // CLIENT SETINFO; guarded by mu
};

// Values at least this long go to the socket by reference (a pinned item, a
// value a peer sent) rather than copied into the output buffer. A reference
// costs a chain entry and a cleanup callback in the connection's output
// buffer (plus, for an item, two atomic pin operations, and its memory is not
// reused until the bytes reach the socket); below 16 KiB a copy costs less.
inline constexpr size_t kZeroCopyMinBytes = 16 * 1024;

// A reply that a handler completes later, once the pool has answered.
// Finish() is called at most once, on the client's thread, with the encoded
// reply; if the client has gone meanwhile it does nothing (a DeferredReply's
// references are then released).
class ReplySlot {
 public:
  virtual ~ReplySlot() = default;
  virtual void Finish(std::string_view encoded) = 0;
  virtual void Finish(protocol::DeferredReply&& reply) = 0;
  // False once the client is gone: a completion must then not touch the
  // ClientState it was started for.
  virtual bool alive() const = 0;
};

struct ClientState {
  // ---- owner thread ----
  int db = 0;
  int resp = 2;
  bool authenticated = false;
  bool close_after_reply = false;  // QUIT, CLIENT KILL of self
  // READONLY (a cluster client): reads of slots this node holds a copy of
  // are not redirected (cluster-redirects yes).
  bool readonly = false;

  // MULTI/EXEC.
  bool in_multi = false;
  bool multi_error = false;  // a command failed to queue: EXEC aborts
  std::vector<std::vector<std::string>> queued;
  std::shared_ptr<storage::WatchToken> watch;  // non-null while WATCHing
  // WATCHed keys owned by other pool nodes, with the version each had.
  struct RemoteWatch {
    int node;
    std::string key;
    uint64_t version;
  };
  std::vector<RemoteWatch> remote_watches;
  // A peer's forwarded transaction: EXEC aborts unless every key still has
  // this version (0 = absent). Checked under the EXEC gate.
  std::vector<std::pair<std::string_view, uint64_t>> exec_versions;

  // The pool: `lane` is the I/O thread serving the client (its transport
  // lane and ExecGate slot). `local_only` marks commands forwarded by a
  // peer: they run here and are never routed again. `defer`, set by the
  // connection, lets a handler answer later; null = it cannot (in-process
  // callers), and commands then run locally.
  int lane = 0;
  bool local_only = false;
  std::function<std::shared_ptr<ReplySlot>()> defer;
  // MONITOR: set by the connection; turns it into a monitor (its lines
  // come through ServerContext::monitor()). Null for in-process callers.
  std::function<void()> monitor;
  // Keeps the memory the current command's arguments point into alive;
  // handed to the pool with arguments it sends by reference.
  std::shared_ptr<const void> args_owner;

  // ---- shared ----
  std::shared_ptr<ClientInfo> info = std::make_shared<ClientInfo>();
};

}  // namespace kvpool
