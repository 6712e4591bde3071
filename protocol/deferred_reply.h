// A reply encoded now and sent later (a pool command answered once its
// remote parts are in). Bytes written are kept; values written by reference
// stay references, in order, so a large value reaches the socket without
// being copied into the reply. ReplayInto hands everything to the sink that
// sends it; references never replayed are released on destruction.
//
// Threading: not thread-safe; moved between threads only as a whole.
#pragma once

#include <string>
#include <vector>

#include "protocol/reply_builder.h"

namespace kvpool::protocol {

class DeferredReply : public ReplySink {
 public:
  DeferredReply() = default;
  ~DeferredReply() override;
  DeferredReply(DeferredReply&& o) noexcept;
  DeferredReply& operator=(DeferredReply&& o) noexcept;
  DeferredReply(const DeferredReply&) = delete;
  DeferredReply& operator=(const DeferredReply&) = delete;

  void Write(const char* data, size_t len) override { text_.append(data, len); }
  void WriteRef(const char* data, size_t len, void (*release)(void*), void* ctx) override;

  // Writes the reply into `out` in order, handing each reference over, and
  // leaves this reply empty.
  void ReplayInto(ReplySink& out);
  // The bytes written when no reference was (callers may adopt them).
  bool text_only() const { return refs_.empty(); }
  std::string& text() { return text_; }
  size_t size() const;

 private:
  struct Ref {
    size_t text_end;  // the reference follows text_[0, text_end)
    const char* data;
    size_t len;
    void (*release)(void*);
    void* ctx;
  };
  void ReleaseAll();

  std::string text_;
  std::vector<Ref> refs_;
};

// The release for a value held in a heap std::string: WriteRef(s->data(),
// s->size(), &DeleteString, s) gives the reply ownership of `s` (a large
// one is freed in the background: DeleteLater, lazy_free.h).
void DeleteString(void* s);

}  // namespace kvpool::protocol
