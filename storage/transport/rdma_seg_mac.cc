#include "storage/transport/rdma_seg_mac.h"

#include <cstring>
#include <string>

namespace kvpool::transport::rdma {

namespace {
std::atomic<SegTamperFn> g_tamper{nullptr};
}  // namespace

void SetSegTamperForTest(SegTamperFn fn) { g_tamper.store(fn, std::memory_order_release); }
SegTamperFn SegTamperForTest() { return g_tamper.load(std::memory_order_acquire); }

Status SegSealer::Enable(const FrameKey& key) {
  auto mac = std::make_unique<FrameMac>();
  Status st = mac->Init(key);
  if (!st.ok()) return st;
  mac_ = std::move(mac);
  return Status::OK();
}

Status SegSealer::Seal(char* seg, size_t len) {
  if (!mac_) return Status::Internal("segment MAC: not keyed");
  if (len < kSegSize || len + kSegTagSize > kMsgBytes)
    return Status::Internal("segment MAC: segment of " + std::to_string(len) +
                            " bytes leaves no room for its tag");
  FrameTag tag;
  Status st = mac_->Begin();
  if (st.ok()) st = mac_->Update(seg, len);
  if (st.ok()) st = mac_->Finish(&tag);
  if (!st.ok()) return st;
  std::memcpy(seg + len, tag.data(), tag.size());
  return Status::OK();
}

Status SegOpener::Key(const FrameKey& key, Mode mode) {
  auto mac = std::make_unique<FrameMac>();
  Status st = mac->Init(key);
  if (!st.ok()) return st;
  mac_ = std::move(mac);
  mode_ = mode;
  accepted_ = 0;
  return Status::OK();
}

Status SegOpener::Arm(const FrameKey& key) { return Key(key, Mode::kArmed); }
Status SegOpener::Require(const FrameKey& key) { return Key(key, Mode::kOn); }

Status SegOpener::Open(const char* seg, size_t len, bool tagged, size_t* data_len) {
  if (!tagged) {
    if (mode_ == Mode::kOn) return Status::PermissionDenied("segment without its tag");
    *data_len = len;
    return Status::OK();
  }
  if (mode_ == Mode::kOff) return Status::PermissionDenied("tagged segment before any key");
  if (len < kSegSize + kSegTagSize) return Status::InvalidArgument("tagged segment too short");
  const size_t n = len - kSegTagSize;
  Status st = mac_->Begin();
  if (st.ok()) st = mac_->Update(seg, n);
  if (st.ok()) st = mac_->Check(reinterpret_cast<const uint8_t*>(seg + n));
  if (!st.ok()) return st;
  mode_ = Mode::kOn;
  ++accepted_;
  *data_len = n;
  return Status::OK();
}

}  // namespace kvpool::transport::rdma
