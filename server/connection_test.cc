// A connection in process (a real IoThread and Connection over a
// socketpair): a seeded random mix of commands sent as one pipeline gets
// byte for byte the replies it gets sent one command at a time. What a
// pipeline changes (several commands parsed from one read, their keys
// prefetched together, their replies sent in one write) must change no
// reply (issue 20).
#include "server/connection.h"

#include <event2/thread.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "protocol/reply_reader.h"
#include "server/command_table.h"
#include "server/config.h"
#include "server/io_thread.h"
#include "server/server_context.h"
#include "storage/segment/store.h"

namespace kvpool {
namespace {

// One node's keyspace and one I/O thread serving the connections it is given.
class Node {
 public:
  Node() {
    static std::once_flag once;
    std::call_once(once, [] { evthread_use_pthreads(); });
    storage::StoreOptions so;
    so.maxmemory = 64u << 20;
    auto store = storage::Store::Open(so);
    if (!store.ok()) abort();
    store_ = std::move(store.value());
    table_ = std::make_unique<CommandTable>(CommandTable::Build());
    ctx_ = std::make_unique<ServerContext>(&config_, store_.get(), table_.get());
    thread_ = std::make_unique<IoThread>(0);
    if (!thread_->Init().ok()) abort();
    thread_->Start();
  }
  ~Node() {
    thread_->Stop();
    thread_->Join();
  }

  // A connected client socket (blocking), served by this node's thread.
  int Connect() {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) abort();
    evutil_make_socket_nonblocking(fds[0]);
    auto conn = std::make_shared<std::unique_ptr<Connection>>(
        std::make_unique<Connection>(ctx_.get(), thread_.get(), fds[0], "test:1", "test:0"));
    IoThread* t = thread_.get();
    t->Post([t, conn] { t->Adopt(std::move(*conn)); });
    return fds[1];
  }

 private:
  Config config_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<CommandTable> table_;
  std::unique_ptr<ServerContext> ctx_;
  std::unique_ptr<IoThread> thread_;
};

std::string Encode(const std::vector<std::string>& args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (const std::string& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return out;
}

void SendAll(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    ASSERT_GT(n, 0);
    off += static_cast<size_t>(n);
  }
}

// Reads until done(buffer) says the replies are complete (or 10 s pass).
std::string ReadUntil(int fd, const std::function<bool(const std::string&)>& done) {
  std::string buf;
  char chunk[65536];
  while (!done(buf)) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 10000) <= 0) break;  // the caller's comparison fails
    ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) break;
    buf.append(chunk, static_cast<size_t>(n));
  }
  return buf;
}

// A seeded mix of reads, writes, TTLs, transactions and errors over a few
// keys, so that commands of one pipeline touch what earlier ones wrote.
std::vector<std::vector<std::string>> Mix(uint32_t seed, int n) {
  std::mt19937 rng(seed);
  auto pick = [&](int k) { return static_cast<int>(rng() % static_cast<uint32_t>(k)); };
  auto key = [&] { return "k" + std::to_string(pick(6)); };
  auto value = [&] {
    std::string v;
    for (int i = pick(12); i > 0; --i) v.push_back(static_cast<char>('a' + pick(26)));
    return v;
  };
  std::vector<std::vector<std::string>> out;
  while (static_cast<int>(out.size()) < n) {
    switch (pick(20)) {
      case 0: out.push_back({"SET", key(), value()}); break;
      case 1: out.push_back({"SET", key(), value(), pick(2) ? "NX" : "XX", "GET"}); break;
      case 2: out.push_back({"GET", key()}); break;
      case 3: out.push_back({"MGET", key(), key(), key()}); break;
      case 4: out.push_back({"MSET", key(), value(), key(), value()}); break;
      case 5: out.push_back({"DEL", key(), key()}); break;
      case 6: out.push_back({"EXISTS", key(), key()}); break;
      case 7: out.push_back({"INCR", "n" + std::to_string(pick(2))}); break;
      case 8: out.push_back({"APPEND", key(), value()}); break;
      case 9: out.push_back({"GETRANGE", key(), std::to_string(pick(4)), std::to_string(pick(8) - 2)}); break;
      case 10: out.push_back({"EXPIRE", key(), "100000"}); break;
      case 11: out.push_back({"TTL", key()}); break;
      case 12: out.push_back({"PERSIST", key()}); break;
      case 13: out.push_back({"GETDEL", key()}); break;
      case 14: out.push_back({"INCRBY", key(), "1"}); break;  // often not an integer
      case 15: out.push_back({"NOSUCHCOMMAND", key()}); break;
      case 16: out.push_back({"GET"}); break;  // wrong number of arguments
      case 17: out.push_back({"STRLEN", key()}); break;
      default: {
        out.push_back({"MULTI"});
        out.push_back({"SET", key(), value()});
        if (pick(3) == 0) out.push_back({"INCR"});  // a queued error: EXECABORT
        out.push_back({"GET", key()});
        out.push_back({pick(4) == 0 ? "DISCARD" : "EXEC"});
      }
    }
  }
  return out;
}

TEST(ConnectionTest, APipelineGetsTheRepliesOfOneByOne) {
  for (uint32_t seed : {1u, 2u, 3u, 4u, 5u}) {
    std::vector<std::vector<std::string>> cmds = Mix(seed, 400);
    const std::string end_reply = "$7\r\n__end__\r\n";
    // One command at a time, each reply read before the next is sent.
    std::string one_by_one;
    {
      Node node;
      int fd = node.Connect();
      for (const auto& c : cmds) {
        SendAll(fd, Encode(c));
        protocol::ReplyValue v;
        one_by_one += ReadUntil(fd, [&](const std::string& b) { return protocol::ReadReply(b, &v); });
      }
      close(fd);
    }
    // All of them in one write, then ECHO's reply marks the end.
    std::string pipelined;
    {
      Node node;
      int fd = node.Connect();
      std::string all;
      for (const auto& c : cmds) all += Encode(c);
      SendAll(fd, all + Encode({"ECHO", "__end__"}));
      pipelined = ReadUntil(fd, [&](const std::string& b) {
        return b.size() >= end_reply.size() &&
               b.compare(b.size() - end_reply.size(), end_reply.size(), end_reply) == 0;
      });
      close(fd);
    }
    ASSERT_GE(pipelined.size(), end_reply.size()) << "seed " << seed;
    pipelined.resize(pipelined.size() - end_reply.size());
    EXPECT_EQ(pipelined, one_by_one) << "seed " << seed;
    EXPECT_NE(one_by_one.find("EXECABORT"), std::string::npos) << "seed " << seed;
    EXPECT_NE(one_by_one.find("-ERR unknown command"), std::string::npos) << "seed " << seed;
  }
}

}  // namespace
}  // namespace kvpool
