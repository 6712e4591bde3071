#include "batch.h"

#include <string>

namespace kvpool::client {

namespace {

// Keys per MGET / MEXISTS: several commands per node keep the node's
// replies flowing while it still reads the next ones.
constexpr uint32_t kChunk = 64;
const char kCrlf[] = "\r\n";

}  // namespace

int64_t CodeOfError(std::string_view err) {
  if (err.starts_with("MOVED ") || err.starts_with("ASK ") || err.starts_with("TRYAGAIN"))
    return kRetry;
  if (err.starts_with("OOM")) return kNoMemory;
  if (err.find("unavailable") != std::string_view::npos || err.find("no reply") != std::string_view::npos ||
      err.find("is down") != std::string_view::npos || err.starts_with("CLUSTERDOWN") ||
      err.starts_with("LOADING"))
    return kRpcFail;
  if (err.starts_with("WRONGTYPE")) return kInvalidParams;
  return kInternal;
}

void Work::Chunked(std::string_view cmd, Kind kind) {
  std::vector<std::string_view> argv;
  for (uint32_t first = 0; first < pos_.size(); first += kChunk) {
    uint32_t count = std::min<uint32_t>(kChunk, static_cast<uint32_t>(pos_.size()) - first);
    argv.assign(1, cmd);
    for (uint32_t k = first; k < first + count; ++k) argv.push_back(args_->Key(pos_[k]));
    conn_->AppendCommand(argv);
    expects_.push_back(Expect{kind, first, count});
  }
}

void Work::PerKey(std::string_view cmd, Kind kind) {
  for (uint32_t k = 0; k < pos_.size(); ++k) {
    conn_->AppendCommand({cmd, args_->Key(pos_[k])});
    expects_.push_back(Expect{kind, k, 1});
  }
}

void Work::Build() {
  switch (args_->op) {
    case Op::kGet:
      Chunked("MGET", Kind::kMGet);
      break;
    case Op::kExists:
      Chunked("MEXISTS", Kind::kMExists);
      break;
    case Op::kRemove:
      PerKey("DEL", Kind::kDel);
      break;
    case Op::kSize:
      for (uint32_t k = 0; k < pos_.size(); ++k) {
        std::string_view key = args_->Key(pos_[k]);
        conn_->AppendCommand({"EXISTS", key});
        conn_->AppendCommand({"STRLEN", key});
        expects_.push_back(Expect{Kind::kExists, k, 1});
        expects_.push_back(Expect{Kind::kStrlen, k, 1});
      }
      break;
    case Op::kPut:
      // SET per key, the value sent from the caller's buffers by reference:
      // a result per key, and no copy of the value.
      for (uint32_t k = 0; k < pos_.size(); ++k) {
        const KeyIo& io = args_->io[pos_[k]];
        size_t len = 0;
        for (size_t b = 0; b < io.nbufs; ++b) len += io.bufs[b].size;
        std::string head = "*3\r\n$3\r\nSET\r\n$" + std::to_string(io.key.size()) + "\r\n";
        head.append(io.key);
        head += "\r\n$" + std::to_string(len) + "\r\n";
        conn_->Append(std::move(head));
        for (size_t b = 0; b < io.nbufs; ++b) conn_->AppendRef(io.bufs[b].ptr, io.bufs[b].size);
        conn_->AppendRef(kCrlf, 2);
        expects_.push_back(Expect{Kind::kSet, k, 1});
      }
      break;
  }
}

void Work::Fail(int64_t code, bool broken) {
  broken_ = broken;
  for (; cur_ < expects_.size(); ++cur_) {
    const Expect& e = expects_[cur_];
    // Keys already answered keep their results (their bytes have landed).
    for (uint32_t k = e.first; k < e.first + e.count; ++k)
      if (Out(k) == kPending) Out(k) = code;
  }
}

void Work::OnArray(int64_t n) {
  const Expect& e = expects_[cur_];
  if (n != e.count) {
    for (uint32_t k = e.first; k < e.first + e.count; ++k) Out(k) = kInternal;
  }
}

std::span<const Buffer> Work::OnBulkStart(int64_t) {
  const Expect& e = expects_[cur_];
  if (e.kind != Kind::kMGet || elem_ >= e.count) return {};
  const KeyIo& io = args_->io[pos_[e.first + elem_]];
  return {io.bufs, io.nbufs};
}

void Work::OnBulkEnd(int64_t len, bool stored) {
  const Expect& e = expects_[cur_];
  if (e.kind == Kind::kMGet && elem_ < e.count) {
    int64_t& o = Out(e.first + elem_);
    if (o == kPending) o = len < 0 ? int64_t{kNotFound} : stored ? len : int64_t{kBufferOverflow};
  }
  ++elem_;
}

void Work::OnInteger(int64_t v) {
  const Expect& e = expects_[cur_];
  if (elem_ < e.count) {
    int64_t& o = Out(e.first + elem_);
    switch (e.kind) {
      case Kind::kMExists:
        if (o == kPending) o = v != 0 ? 1 : 0;
        break;
      case Kind::kDel:
        o = v > 0 ? kOk : kNotFound;
        break;
      case Kind::kExists:
        o = v > 0 ? kPending : int64_t{kNotFound};
        break;
      case Kind::kStrlen:
        if (o == kPending) o = v;
        break;
      default:
        o = kInternal;
    }
  }
  ++elem_;
}

void Work::OnStatus(std::string_view s) {
  const Expect& e = expects_[cur_];
  if (elem_ < e.count) Out(e.first + elem_) = e.kind == Kind::kSet && s == "OK" ? kOk : kInternal;
  ++elem_;
}

void Work::OnError(std::string_view s) {
  const Expect& e = expects_[cur_];
  int64_t code = CodeOfError(s);
  if (elem_ == 0 && e.count > 1) {
    // The whole command was refused.
    for (uint32_t k = e.first; k < e.first + e.count; ++k) Out(k) = code;
  } else if (elem_ < e.count) {
    int64_t& o = Out(e.first + elem_);
    if (o == kPending || e.kind != Kind::kStrlen) o = code;
  }
  ++elem_;
}

void Work::OnReplyEnd() {
  // A reply shorter than expected leaves keys unanswered.
  const Expect& e = expects_[cur_];
  for (uint32_t k = e.first + elem_; k < e.first + e.count; ++k)
    if (Out(k) == kPending && e.kind != Kind::kExists) Out(k) = kInternal;
  ++cur_;
  elem_ = 0;
}

}  // namespace kvpool::client
