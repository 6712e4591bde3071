// A resumable reader of one connection's RESP2 replies, each a scalar or a
// flat array of scalars (what the batch commands answer). A bulk string goes
// straight into the buffers its sink names: once the reader's own buffer is
// drained, the rest of a large bulk is received by readv() into them.
// Every length is checked against a limit before it is used.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvpool/client.h"

namespace kvpool::client {

class ReplySink {
 public:
  virtual ~ReplySink() = default;
  virtual void OnArray(int64_t n) = 0;  // n < 0: a nil array
  // A bulk of `len` bytes is next. Returns where it goes (total capacity
  // >= len), or an empty span to drop it.
  virtual std::span<const Buffer> OnBulkStart(int64_t len) = 0;
  // After the bulk arrived (len -1: nil); `stored` when it went to buffers.
  virtual void OnBulkEnd(int64_t len, bool stored) = 0;
  virtual void OnInteger(int64_t v) = 0;
  virtual void OnStatus(std::string_view s) = 0;
  virtual void OnError(std::string_view s) = 0;
  virtual void OnReplyEnd() = 0;  // one whole reply (scalar or array) done
};

class ReplyReader {
 public:
  static constexpr size_t kBufferSize = 64 * 1024;
  static constexpr size_t kMaxLine = 64 * 1024;
  static constexpr int64_t kMaxArray = 1 << 20;
  static constexpr int64_t kMaxBulk = int64_t{1} << 40;
  // Below this, a bulk's bytes are read through the reader's buffer.
  static constexpr size_t kDirectMin = 16 * 1024;

  ReplyReader();
  // Parses what is buffered, then reads from `fd` (non-blocking) until it
  // would block. Returns 1 after progress, 0 when nothing could be read, -1
  // on EOF, a socket error or a protocol error (see error()), and from then
  // on.
  int Pump(int fd, ReplySink* sink);
  // Parses bytes given (tests; the fuzzer). Same returns as Pump.
  int Feed(std::string_view bytes, ReplySink* sink);
  // Whether the reader is between replies (nothing half-read).
  bool Idle() const { return st_ == St::kLine && !in_array_ && rpos_ == wpos_; }
  const std::string& error() const { return error_; }

 private:
  enum class St { kLine, kBulk, kBulkEnd };
  bool Parse(ReplySink* sink);  // false on a protocol error
  bool Line(std::string_view line, ReplySink* sink);
  void ElementDone(ReplySink* sink);
  void CopyBulk(const char* p, size_t n);
  size_t ReadDirect(int fd, bool* failed);
  bool Fail(std::string why);

  std::vector<char> buf_;
  size_t rpos_ = 0, wpos_ = 0;
  St st_ = St::kLine;
  bool in_array_ = false;
  int64_t arr_left_ = 0;
  // The bulk being received.
  int64_t bulk_len_ = 0, bulk_left_ = 0;
  std::span<const Buffer> dst_;
  size_t seg_ = 0, seg_off_ = 0;
  std::string error_;
};

}  // namespace kvpool::client
