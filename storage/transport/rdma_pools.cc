// Registered buffer pools of a lane: staging and bounce buffers, message
// blocks. Everything here is registered at Start (message blocks: also when
// a lane holds more connections at once than provisioned), never per call.
#include <spdlog/spdlog.h>

#include "storage/transport/rdma_internal.h"

namespace kvpool::transport::rdma {

Status BufferPool::Init(ibv_pd* pd, int count, size_t size, int access, const std::string& what) {
  size_ = size;
  if (count <= 0) return Status::OK();
  Status st = mem_.Allocate(static_cast<size_t>(count) * size);
  if (!st.ok()) return st;
  mrs_.reserve(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    StatusOr<Mr> mr = Register(pd, data(i), size, access, what);
    if (!mr.ok()) return mr.status();
    mrs_.push_back(std::move(mr.value()));
  }
  // Handed out lowest index first (Take pops the back).
  for (int i = count - 1; i >= 0; --i) free_.push_back(i);
  return Status::OK();
}

int BufferPool::Take() {
  if (free_.empty()) return -1;
  int i = free_.back();
  free_.pop_back();
  return i;
}

void BufferPool::Give(int i) { free_.push_back(i); }

Status MsgBlockPool::Init(ibv_pd* pd, int slots, int prealloc) {
  pd_ = pd;
  slots_ = slots;
  for (int i = 0; i < prealloc; ++i) {
    StatusOr<std::unique_ptr<MsgBlock>> b = Make();
    if (!b.ok()) return b.status();
    free_.push_back(b.value().get());
    all_.push_back(std::move(b.value()));
  }
  return Status::OK();
}

StatusOr<std::unique_ptr<MsgBlock>> MsgBlockPool::Make() {
  auto b = std::make_unique<MsgBlock>();
  const size_t len = static_cast<size_t>(slots_) * kMsgBytes;
  Status st = b->mem.Allocate(len);
  if (!st.ok()) return st;
  StatusOr<Mr> mr = Register(pd_, b->mem.data(), len, IBV_ACCESS_LOCAL_WRITE, "message buffers");
  if (!mr.ok()) return mr.status();
  b->mr = std::move(mr.value());
  return b;
}

StatusOr<MsgBlock*> MsgBlockPool::Take(RdmaStats* stats) {
  if (free_.empty()) {
    StatusOr<std::unique_ptr<MsgBlock>> b = Make();
    if (!b.ok()) return b.status();
    if (stats) stats->extra_msg_blocks.fetch_add(1, std::memory_order_relaxed);
    spdlog::info("rdma: a lane holds {} connections; registered one more message block",
                 all_.size() + 1);
    all_.push_back(std::move(b.value()));
    return all_.back().get();
  }
  MsgBlock* b = free_.back();
  free_.pop_back();
  return b;
}

}  // namespace kvpool::transport::rdma
