// libFuzzer target for the native client's reply reader
// (clients/cpp/src/reply_reader.h): what a node, or anything posing as one,
// sends back. Build and run with tests/fuzz/build_and_run.sh.
//
// Each input is a reply stream, fed whole and then in chunks whose sizes
// derive from the data. Bulks land in exact-size heap buffers whose
// capacities the sink picks from the bulk's length (sometimes one byte too
// small, sometimes split in two), so ASan catches any write past a
// destination. Checked:
//   - the events (and the bytes stored) do not depend on how the stream was
//     split, and neither does the error;
//   - a bulk is stored only when its buffers can hold it;
//   - after an error the reader reports the error again and emits nothing.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "reply_reader.h"

namespace {

using kvpool::client::Buffer;
using kvpool::client::ReplyReader;
using kvpool::client::ReplySink;

void Check(bool ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "invariant violated: %s\n", what);
    abort();
  }
}

class Sink : public ReplySink {
 public:
  void OnArray(int64_t n) override { log += "*" + std::to_string(n); }
  std::span<const Buffer> OnBulkStart(int64_t len) override {
    log += "$" + std::to_string(len);
    bufs_.clear();
    store_.clear();
    cap_ = 0;
    auto n = static_cast<size_t>(len);
    if (n > (1u << 20)) return {};  // a huge bulk is dropped, never stored
    int mode = static_cast<int>(len % 3);
    if (mode == 0 && n > 0) n -= 1;  // one byte too small: must be dropped
    if (mode == 2 && n >= 2) {
      Add(n / 2);
      Add(n - n / 2);
    } else {
      Add(n);
    }
    return bufs_;
  }
  void OnBulkEnd(int64_t len, bool stored) override {
    if (stored) {
      Check(len >= 0 && static_cast<size_t>(len) <= cap_, "stored a bulk larger than its buffers");
      for (auto& s : store_) log.append(s->data(), s->size());
    }
    log += stored ? "S" : "D";
  }
  void OnInteger(int64_t v) override { log += ":" + std::to_string(v); }
  void OnStatus(std::string_view s) override { log += "+" + std::string(s); }
  void OnError(std::string_view s) override { log += "-" + std::string(s); }
  void OnReplyEnd() override { log += "|"; }

  std::string log;

 private:
  void Add(size_t n) {
    store_.push_back(std::make_unique<std::string>(n, '\0'));
    bufs_.push_back(Buffer{store_.back()->data(), n});
    cap_ += n;
  }
  std::vector<std::unique_ptr<std::string>> store_;
  std::vector<Buffer> bufs_;
  size_t cap_ = 0;
};

struct Outcome {
  std::string log;
  bool failed = false;
  std::string error;
};

Outcome Run(std::string_view in, size_t seed) {
  ReplyReader r;
  Sink sink;
  Outcome o;
  size_t pos = 0;
  while (pos < in.size()) {
    size_t n = seed == 0 ? in.size() - pos : 1 + (seed + pos * 31) % 97;
    n = std::min(n, in.size() - pos);
    if (r.Feed(in.substr(pos, n), &sink) < 0) {
      o.failed = true;
      o.error = r.error();
      std::string before = sink.log;
      Check(r.Feed("+OK\r\n", &sink) < 0, "the reader went on after an error");
      Check(sink.log == before, "events after an error");
      break;
    }
    pos += n;
  }
  o.log = sink.log;
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  Outcome whole = Run(in, 0);
  size_t seed = size > 0 ? data[0] : 1;
  Outcome split = Run(in, seed + 1);
  Check(whole.failed == split.failed, "the error depends on the split");
  Check(whole.log == split.log, "the events depend on the split");
  return 0;
}
