#include "protocol/deferred_reply.h"

#include "protocol/lazy_free.h"

namespace kvpool::protocol {

DeferredReply::~DeferredReply() { ReleaseAll(); }

DeferredReply::DeferredReply(DeferredReply&& o) noexcept
    : text_(std::move(o.text_)), refs_(std::move(o.refs_)) {
  o.text_.clear();
  o.refs_.clear();
}

DeferredReply& DeferredReply::operator=(DeferredReply&& o) noexcept {
  if (this != &o) {
    ReleaseAll();
    text_ = std::move(o.text_);
    refs_ = std::move(o.refs_);
    o.text_.clear();
    o.refs_.clear();
  }
  return *this;
}

void DeferredReply::WriteRef(const char* data, size_t len, void (*release)(void*), void* ctx) {
  refs_.push_back(Ref{text_.size(), data, len, release, ctx});
}

void DeferredReply::ReplayInto(ReplySink& out) {
  size_t pos = 0;
  std::vector<Ref> refs;
  refs.swap(refs_);  // each reference is the sink's once handed over
  for (const Ref& r : refs) {
    if (r.text_end > pos) out.Write(text_.data() + pos, r.text_end - pos);
    pos = r.text_end;
    out.WriteRef(r.data, r.len, r.release, r.ctx);
  }
  if (text_.size() > pos) out.Write(text_.data() + pos, text_.size() - pos);
  text_.clear();
}

size_t DeferredReply::size() const {
  size_t n = text_.size();
  for (const Ref& r : refs_) n += r.len;
  return n;
}

void DeferredReply::ReleaseAll() {
  for (const Ref& r : refs_) r.release(r.ctx);
  refs_.clear();
}

void DeleteString(void* s) { DeleteLater(static_cast<std::string*>(s)); }

}  // namespace kvpool::protocol
