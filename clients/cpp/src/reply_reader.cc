#include "reply_reader.h"

#include <errno.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace kvpool::client {

namespace {

bool ParseInt(std::string_view s, int64_t* v) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

ReplyReader::ReplyReader() : buf_(kBufferSize) {}

bool ReplyReader::Fail(std::string why) {
  error_ = std::move(why);
  return false;
}

void ReplyReader::ElementDone(ReplySink* sink) {
  if (in_array_ && --arr_left_ > 0) return;
  in_array_ = false;
  sink->OnReplyEnd();
}

bool ReplyReader::Line(std::string_view line, ReplySink* sink) {
  if (line.empty()) return Fail("protocol error: empty line");
  char type = line[0];
  std::string_view rest = line.substr(1);
  int64_t n = 0;
  switch (type) {
    case '+':
      sink->OnStatus(rest);
      ElementDone(sink);
      return true;
    case '-':
      sink->OnError(rest);
      ElementDone(sink);
      return true;
    case ':':
      if (!ParseInt(rest, &n)) return Fail("protocol error: bad integer");
      sink->OnInteger(n);
      ElementDone(sink);
      return true;
    case '$':
      if (!ParseInt(rest, &n) || n < -1 || n > kMaxBulk) return Fail("protocol error: bad bulk length");
      if (n == -1) {
        sink->OnBulkEnd(-1, false);
        ElementDone(sink);
        return true;
      }
      bulk_len_ = bulk_left_ = n;
      dst_ = sink->OnBulkStart(n);
      {
        size_t cap = 0;
        for (const Buffer& b : dst_) cap += b.size;
        if (cap < static_cast<uint64_t>(n)) dst_ = {};
      }
      seg_ = seg_off_ = 0;
      st_ = St::kBulk;
      return true;
    case '*':
      if (in_array_) return Fail("protocol error: nested array");
      if (!ParseInt(rest, &n) || n < -1 || n > kMaxArray) return Fail("protocol error: bad array length");
      sink->OnArray(n);
      if (n <= 0) {
        sink->OnReplyEnd();
      } else {
        in_array_ = true;
        arr_left_ = n;
      }
      return true;
    default:
      return Fail("protocol error: unknown reply type");
  }
}

void ReplyReader::CopyBulk(const char* p, size_t n) {
  bulk_left_ -= static_cast<int64_t>(n);
  if (dst_.empty()) return;
  while (n > 0) {
    const Buffer& b = dst_[seg_];
    size_t k = std::min(n, b.size - seg_off_);
    memcpy(static_cast<char*>(b.ptr) + seg_off_, p, k);
    p += k;
    n -= k;
    seg_off_ += k;
    if (seg_off_ == b.size) {
      ++seg_;
      seg_off_ = 0;
    }
  }
}

bool ReplyReader::Parse(ReplySink* sink) {
  for (;;) {
    size_t avail = wpos_ - rpos_;
    if (st_ == St::kBulk) {
      size_t n = std::min<size_t>(avail, static_cast<size_t>(bulk_left_));
      CopyBulk(buf_.data() + rpos_, n);
      rpos_ += n;
      if (bulk_left_ > 0) return true;
      st_ = St::kBulkEnd;
      continue;
    }
    if (st_ == St::kBulkEnd) {
      if (avail < 2) return true;
      if (buf_[rpos_] != '\r' || buf_[rpos_ + 1] != '\n') return Fail("protocol error: bulk not ended by CRLF");
      rpos_ += 2;
      st_ = St::kLine;
      sink->OnBulkEnd(bulk_len_, !dst_.empty());
      dst_ = {};
      ElementDone(sink);
      continue;
    }
    const char* start = buf_.data() + rpos_;
    const char* cr = static_cast<const char*>(memchr(start, '\r', avail));
    if (cr == nullptr || cr + 1 >= buf_.data() + wpos_) {
      if (avail >= kMaxLine) return Fail("protocol error: line too long");
      return true;
    }
    if (cr[1] != '\n') return Fail("protocol error: CR without LF");
    std::string_view line(start, static_cast<size_t>(cr - start));
    rpos_ += line.size() + 2;
    if (!Line(line, sink)) return false;
  }
}

// Receives the rest of the current bulk straight into its buffers.
size_t ReplyReader::ReadDirect(int fd, bool* failed) {
  iovec iov[16];
  int cnt = 0;
  size_t want = static_cast<size_t>(bulk_left_);
  for (size_t s = seg_, off = seg_off_; s < dst_.size() && cnt < 16 && want > 0; ++s, off = 0) {
    size_t k = std::min(want, dst_[s].size - off);
    if (k == 0) continue;
    iov[cnt++] = iovec{static_cast<char*>(dst_[s].ptr) + off, k};
    want -= k;
  }
  ssize_t r = readv(fd, iov, cnt);
  if (r < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      *failed = true;
      error_ = std::string("read: ") + strerror(errno);
    }
    return 0;
  }
  if (r == 0) {
    *failed = true;
    error_ = "connection closed";
    return 0;
  }
  size_t n = static_cast<size_t>(r);
  bulk_left_ -= static_cast<int64_t>(n);
  while (n > 0) {
    size_t k = std::min(n, dst_[seg_].size - seg_off_);
    n -= k;
    seg_off_ += k;
    if (seg_off_ == dst_[seg_].size) {
      ++seg_;
      seg_off_ = 0;
    }
  }
  return static_cast<size_t>(r);
}

int ReplyReader::Feed(std::string_view bytes, ReplySink* sink) {
  if (!error_.empty()) return -1;  // a stream that failed stays failed
  while (!bytes.empty()) {
    if (rpos_ == wpos_) rpos_ = wpos_ = 0;
    if (wpos_ == buf_.size()) {
      std::memmove(buf_.data(), buf_.data() + rpos_, wpos_ - rpos_);
      wpos_ -= rpos_;
      rpos_ = 0;
    }
    size_t n = std::min(bytes.size(), buf_.size() - wpos_);
    memcpy(buf_.data() + wpos_, bytes.data(), n);
    wpos_ += n;
    bytes.remove_prefix(n);
    if (!Parse(sink)) return -1;
  }
  return 1;
}

int ReplyReader::Pump(int fd, ReplySink* sink) {
  if (!error_.empty()) return -1;  // a stream that failed stays failed
  if (!Parse(sink)) return -1;
  int progress = 0;
  for (;;) {
    if (rpos_ == wpos_) rpos_ = wpos_ = 0;
    bool failed = false;
    if (st_ == St::kBulk && rpos_ == wpos_ && !dst_.empty() &&
        static_cast<size_t>(bulk_left_) >= kDirectMin) {
      size_t n = ReadDirect(fd, &failed);
      if (failed) return -1;
      if (n == 0) return progress;
      progress = 1;
      if (bulk_left_ == 0) st_ = St::kBulkEnd;
      if (!Parse(sink)) return -1;
      continue;
    }
    if (wpos_ == buf_.size()) {
      // A partial line at the end: move it to the front.
      std::memmove(buf_.data(), buf_.data() + rpos_, wpos_ - rpos_);
      wpos_ -= rpos_;
      rpos_ = 0;
    }
    ssize_t r = read(fd, buf_.data() + wpos_, buf_.size() - wpos_);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return progress;
      if (errno == EINTR) continue;
      error_ = std::string("read: ") + strerror(errno);
      return -1;
    }
    if (r == 0) {
      error_ = "connection closed";
      return -1;
    }
    wpos_ += static_cast<size_t>(r);
    progress = 1;
    if (!Parse(sink)) return -1;
  }
}

}  // namespace kvpool::client
