// kvpool's native batch client: Mooncake Store's zero-copy calls
// (batch_get_into / batch_put_from / batch_is_exist ...) over the Redis
// protocol, straight to the node that owns each key.
//
// Contract
//  * Keys are grouped by the node that serves their slot (CLUSTER SLOTS of
//    a pool; a single node serves every slot), each node gets its keys as one
//    pipeline, and all nodes are driven in parallel from one poll loop.
//    Results come back aligned one-to-one with the keys given.
//  * A value read lands straight in the caller's buffers: the bytes of a
//    bulk reply go from the socket into the key's buffers (in order, as one
//    concatenation), never through a Python or heap copy of their own. A
//    value written is sent from the caller's buffers by reference (writev).
//  * Nothing throws. Each key's result is its byte count (reads) or 0
//    (writes), else one of the negative codes below (Mooncake's values).
//  * A node that cannot be reached, or a map gone stale (MOVED), makes the
//    client learn the map again and send those keys once more, through the
//    new owner or any node that answers (every node of a pool can serve any
//    key); keys that still fail report kRpcFail, the others land.
//  * Thread-safe: calls from several threads run in parallel, each on
//    connections of its own (kept in a pool and reused).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace kvpool::client {

// Mooncake Store's ErrorCode values, where one fits.
enum Code : int {
  kOk = 0,
  kInternal = -1,         // the node refused the command (text in LastError)
  kBufferOverflow = -10,  // the value is larger than the key's buffers
  kNoMemory = -200,       // the owner is at maxmemory (OOM)
  kInvalidParams = -600,  // bad arguments (lengths, a key too long ...)
  kNotFound = -704,       // no such key
  kRpcFail = -900,        // the node could not be reached or timed out
};

struct Options {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string user;       // ACL user for AUTH (empty: "default")
  std::string password;   // empty: no AUTH
  int timeout_ms = 30000;  // connect and each batch call
  // false: send everything to the seed node (it routes), as redis-py does.
  bool direct = true;
};

struct Buffer {
  void* ptr = nullptr;
  size_t size = 0;
};

// One key of a batch and its buffers (a value is their concatenation).
struct KeyIo {
  std::string_view key;
  const Buffer* bufs = nullptr;
  size_t nbufs = 0;
};

class Client {
 public:
  // Connects to the seed node and learns the slot map. Returns kOk, or
  // kRpcFail (unreachable, AUTH refused: see *error).
  [[nodiscard]] static int Open(const Options& opt, std::unique_ptr<Client>* out,
                                std::string* error);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // out[i]: bytes of keys[i]'s value written into its buffers, or a code.
  void BatchGetInto(std::span<const KeyIo> keys, std::span<int64_t> out);
  // out[i]: kOk once the node said OK, or a code.
  void BatchPutFrom(std::span<const KeyIo> keys, std::span<int64_t> out);
  // out[i]: 1 present, 0 absent, or a code. Never touches TTLs or LRU.
  void BatchExists(std::span<const std::string_view> keys, std::span<int64_t> out);
  // out[i]: the value's size in bytes, or a code (kNotFound).
  void BatchSize(std::span<const std::string_view> keys, std::span<int64_t> out);
  // out[i]: kOk if removed, kNotFound if it was not there, or a code.
  void BatchRemove(std::span<const std::string_view> keys, std::span<int64_t> out);
  // Removes every key of the pool; returns how many there were, or a code.
  int64_t RemoveAll();

  // Learns the slot map again now; kOk or kRpcFail.
  int Refresh();
  // How many nodes the map names (1 for a single node).
  int Nodes() const;
  // The last error text a node sent (or a connection error), for logs.
  std::string LastError() const;

  struct Impl;

 private:
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Redis Cluster's slot of a key (CRC16 of the key or its {hashtag}).
int KeySlot(std::string_view key);

}  // namespace kvpool::client
