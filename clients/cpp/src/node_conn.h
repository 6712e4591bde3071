// One connection to one node: connected and authenticated with hiredis,
// then driven non-blocking by the batch calls. Output is a queue of iovecs:
// command headers owned here, values referenced in the caller's buffers
// (valid until the call returns), written with writev as the socket takes
// them.
#pragma once

#include <hiredis/hiredis.h>
#include <sys/uio.h>

#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "reply_reader.h"

namespace kvpool::client {

struct NodeAddr {
  std::string host;
  int port = 0;
  bool operator==(const NodeAddr&) const = default;
};

// A blocking hiredis connection, authenticated when a password is set
// (control commands: CLUSTER SLOTS, DBSIZE, FLUSHALL). nullptr and *error on
// failure; the caller frees it with redisFree.
redisContext* ConnectBlocking(const NodeAddr& addr, const std::string& user,
                              const std::string& password, int timeout_ms, std::string* error);

class NodeConn {
 public:
  // Connects (timeout_ms), sends AUTH when a password is set, and makes the
  // socket non-blocking. nullptr and *error on failure.
  static std::unique_ptr<NodeConn> Open(const NodeAddr& addr, const std::string& user,
                                        const std::string& password, int timeout_ms,
                                        std::string* error);
  ~NodeConn();
  NodeConn(const NodeConn&) = delete;
  NodeConn& operator=(const NodeConn&) = delete;

  int fd() const { return ctx_->fd; }
  // Queues bytes this connection keeps (a command, a header).
  void Append(std::string bytes);
  // Queues caller's bytes by reference.
  void AppendRef(const void* p, size_t n);
  // Queues a command (a RESP array of bulk strings).
  void AppendCommand(const std::vector<std::string_view>& argv);
  bool WantWrite() const { return next_ < iov_.size(); }
  // Writes what the socket takes: 1 progress, 0 would block, -1 failed.
  int Flush(std::string* error);
  // Forgets queued output (after a failure) and the owned bytes.
  void ClearOutput();
  ReplyReader& reader() { return reader_; }

 private:
  explicit NodeConn(redisContext* ctx) : ctx_(ctx) {}
  redisContext* ctx_;
  std::deque<std::string> owned_;  // stable addresses for iov_
  std::vector<iovec> iov_;
  size_t next_ = 0;  // first iovec not fully written
  ReplyReader reader_;
};

}  // namespace kvpool::client
