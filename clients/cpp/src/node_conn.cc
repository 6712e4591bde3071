#include "node_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>

#include <algorithm>
#include <cstring>

namespace kvpool::client {

redisContext* ConnectBlocking(const NodeAddr& addr, const std::string& user,
                              const std::string& password, int timeout_ms, std::string* error) {
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  redisContext* ctx = redisConnectWithTimeout(addr.host.c_str(), addr.port, tv);
  if (ctx == nullptr || ctx->err) {
    *error = "connect " + addr.host + ":" + std::to_string(addr.port) + ": " +
             (ctx ? ctx->errstr : "out of memory");
    if (ctx) redisFree(ctx);
    return nullptr;
  }
  redisSetTimeout(ctx, tv);
  if (!password.empty()) {
    redisReply* r = user.empty()
                        ? static_cast<redisReply*>(redisCommand(ctx, "AUTH %b", password.data(), password.size()))
                        : static_cast<redisReply*>(redisCommand(ctx, "AUTH %b %b", user.data(), user.size(),
                                                                password.data(), password.size()));
    bool ok = r != nullptr && r->type == REDIS_REPLY_STATUS;
    *error = r == nullptr ? std::string(ctx->errstr)
                          : (r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len) : "");
    if (r) freeReplyObject(r);
    if (!ok) {
      redisFree(ctx);
      return nullptr;
    }
  }
  return ctx;
}

std::unique_ptr<NodeConn> NodeConn::Open(const NodeAddr& addr, const std::string& user,
                                         const std::string& password, int timeout_ms,
                                         std::string* error) {
  redisContext* ctx = ConnectBlocking(addr, user, password, timeout_ms, error);
  if (ctx == nullptr) return nullptr;
  std::unique_ptr<NodeConn> conn(new NodeConn(ctx));
  int flags = fcntl(ctx->fd, F_GETFL, 0);
  if (flags < 0 || fcntl(ctx->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    *error = std::string("fcntl: ") + strerror(errno);
    return nullptr;
  }
  return conn;
}

NodeConn::~NodeConn() { redisFree(ctx_); }

void NodeConn::Append(std::string bytes) {
  owned_.push_back(std::move(bytes));
  const std::string& s = owned_.back();
  if (!s.empty()) iov_.push_back(iovec{const_cast<char*>(s.data()), s.size()});
}

void NodeConn::AppendRef(const void* p, size_t n) {
  if (n > 0) iov_.push_back(iovec{const_cast<void*>(p), n});
}

void NodeConn::AppendCommand(const std::vector<std::string_view>& argv) {
  std::string cmd = "*" + std::to_string(argv.size()) + "\r\n";
  for (std::string_view a : argv) {
    cmd += "$" + std::to_string(a.size()) + "\r\n";
    cmd.append(a);
    cmd += "\r\n";
  }
  Append(std::move(cmd));
}

int NodeConn::Flush(std::string* error) {
  int progress = 0;
  while (next_ < iov_.size()) {
    int cnt = static_cast<int>(std::min<size_t>(iov_.size() - next_, IOV_MAX));
    ssize_t w = writev(fd(), iov_.data() + next_, cnt);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return progress;
      if (errno == EINTR) continue;
      *error = std::string("write: ") + strerror(errno);
      return -1;
    }
    progress = 1;
    size_t n = static_cast<size_t>(w);
    while (n > 0 && next_ < iov_.size()) {
      iovec& v = iov_[next_];
      if (n >= v.iov_len) {
        n -= v.iov_len;
        ++next_;
      } else {
        v.iov_base = static_cast<char*>(v.iov_base) + n;
        v.iov_len -= n;
        n = 0;
      }
    }
  }
  ClearOutput();
  return progress;
}

void NodeConn::ClearOutput() {
  iov_.clear();
  owned_.clear();
  next_ = 0;
}

}  // namespace kvpool::client
