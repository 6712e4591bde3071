// One batch call's work on one node: the commands sent to it and how each
// reply is written back into the results, by the keys' original positions.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <string_view>
#include <vector>

#include "kvpool/client.h"
#include "node_conn.h"
#include "reply_reader.h"

namespace kvpool::client {

// A result not yet known, and one to send again after learning the map
// (the node was unreachable, or answered MOVED / ASK).
inline constexpr int64_t kPending = std::numeric_limits<int64_t>::min();
inline constexpr int64_t kRetry = std::numeric_limits<int64_t>::min() + 1;

enum class Op { kGet, kPut, kExists, kSize, kRemove };

// What a node's error text means for a key.
int64_t CodeOfError(std::string_view err);

// The keys of one call, as every Work of it sees them.
struct BatchArgs {
  Op op;
  std::span<const KeyIo> io;              // kGet, kPut
  std::span<const std::string_view> keys;  // the others
  std::span<int64_t> out;
  std::string_view Key(uint32_t i) const { return io.empty() ? keys[i] : io[i].key; }
};

class Work : public ReplySink {
 public:
  Work(const BatchArgs* args, NodeConn* conn) : args_(args), conn_(conn) {}
  std::vector<uint32_t>& positions() { return pos_; }
  NodeConn* conn() const { return conn_; }
  // Queues this node's commands on its connection.
  void Build();
  bool Done() const { return cur_ == expects_.size(); }
  // The connection failed or timed out: unanswered keys get `code`;
  // `broken`: the node could not be used (see broken()).
  void Fail(int64_t code, bool broken);
  bool broken() const { return broken_; }

  void OnArray(int64_t n) override;
  std::span<const Buffer> OnBulkStart(int64_t len) override;
  void OnBulkEnd(int64_t len, bool stored) override;
  void OnInteger(int64_t v) override;
  void OnStatus(std::string_view s) override;
  void OnError(std::string_view s) override;
  void OnReplyEnd() override;

 private:
  enum class Kind { kMGet, kSet, kMExists, kDel, kExists, kStrlen };
  struct Expect {
    Kind kind;
    uint32_t first;  // into pos_
    uint32_t count;
  };
  int64_t& Out(uint32_t k) { return args_->out[pos_[k]]; }
  void Chunked(std::string_view cmd, Kind kind);
  void PerKey(std::string_view cmd, Kind kind);

  const BatchArgs* args_;
  NodeConn* conn_;
  std::vector<uint32_t> pos_;  // positions in the call of this node's keys
  std::vector<Expect> expects_;
  size_t cur_ = 0;   // reply being read
  uint32_t elem_ = 0;  // element of that reply
  bool broken_ = false;
};

}  // namespace kvpool::client
