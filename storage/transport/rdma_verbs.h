// One RAII owner per verbs / rdma_cm object, and the device this transport
// runs on. Internal to the RDMA transport.
//
// Teardown order (the only place it is written down; members are declared
// so that C++ destroys them in this order, and Close paths call reset() in
// the same order):
//
//   per connection   QP → CQ → cm_id
//                    (QP first: a CQ or PD cannot go while a QP uses it, and
//                    a destroyed QP is the proof that no WR of it can still
//                    touch memory; the cm_id last, after rdma_disconnect)
//   per lane         connections → completion channel (no CQ left on it) →
//                    MRs (staging, bounce, message blocks) → listener cm_id
//                    (lane 0) → cm event channel (no cm_id left on it)
//   per transport    lanes → region MRs → PD → device list (the rdma_cm
//                    contexts; nothing of this device may remain)
//
// That is QPs → CQs → completion channels → MRs → PD, with each cm_id
// destroyed right after the QP it carried (connections come and go while
// the PD stays), and every event channel after the last of its cm_ids.
// A destroy call that fails is logged (spdlog, with errno) and otherwise
// ignored: there is nothing else to do with it at that point.
#pragma once

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "storage/transport/transport.h"
#include "storage/util/status.h"

namespace kvpool::transport::rdma {

void LogDestroyFailure(const char* what, int rc, int err);

template <class Traits>
class Owned {
 public:
  using T = typename Traits::Type;
  Owned() = default;
  explicit Owned(T* p) : p_(p) {}
  ~Owned() { reset(); }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  Owned(Owned&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  Owned& operator=(Owned&& o) noexcept {
    if (this != &o) {
      reset();
      p_ = std::exchange(o.p_, nullptr);
    }
    return *this;
  }
  void reset() {
    T* old = std::exchange(p_, nullptr);
    if (!old) return;
    errno = 0;
    const int rc = Traits::Destroy(old);
    if (rc != 0) LogDestroyFailure(Traits::kWhat, rc, errno);
  }
  T* get() const { return p_; }
  T* operator->() const { return p_; }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  T* p_ = nullptr;
};

struct QpTraits {
  using Type = ibv_qp;
  static constexpr const char* kWhat = "ibv_destroy_qp";
  static int Destroy(ibv_qp* p) { return ibv_destroy_qp(p); }
};
struct CqTraits {
  using Type = ibv_cq;
  static constexpr const char* kWhat = "ibv_destroy_cq";
  static int Destroy(ibv_cq* p) { return ibv_destroy_cq(p); }
};
struct CompChannelTraits {
  using Type = ibv_comp_channel;
  static constexpr const char* kWhat = "ibv_destroy_comp_channel";
  static int Destroy(ibv_comp_channel* p) { return ibv_destroy_comp_channel(p); }
};
struct MrTraits {
  using Type = ibv_mr;
  static constexpr const char* kWhat = "ibv_dereg_mr";
  static int Destroy(ibv_mr* p) { return ibv_dereg_mr(p); }
};
struct PdTraits {
  using Type = ibv_pd;
  static constexpr const char* kWhat = "ibv_dealloc_pd";
  static int Destroy(ibv_pd* p) { return ibv_dealloc_pd(p); }
};
struct CmIdTraits {
  using Type = rdma_cm_id;
  static constexpr const char* kWhat = "rdma_destroy_id";
  static int Destroy(rdma_cm_id* p) { return rdma_destroy_id(p); }
};
struct EventChannelTraits {
  using Type = rdma_event_channel;
  static constexpr const char* kWhat = "rdma_destroy_event_channel";
  static int Destroy(rdma_event_channel* p) {
    rdma_destroy_event_channel(p);
    return 0;
  }
};
struct DeviceListTraits {
  using Type = ibv_context*;  // the array rdma_get_devices returns
  static constexpr const char* kWhat = "rdma_free_devices";
  static int Destroy(ibv_context** p) {
    rdma_free_devices(p);
    return 0;
  }
};

using Qp = Owned<QpTraits>;
using Cq = Owned<CqTraits>;
using CompChannel = Owned<CompChannelTraits>;
using Mr = Owned<MrTraits>;
using Pd = Owned<PdTraits>;
using CmId = Owned<CmIdTraits>;
using EventChannel = Owned<EventChannelTraits>;
using DeviceList = Owned<DeviceListTraits>;

// Page-aligned anonymous memory for registered buffers; unmapped on
// destruction (after the MRs covering it: declare it before them).
class Mapping {
 public:
  Mapping() = default;
  ~Mapping();
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  Mapping(Mapping&& o) noexcept
      : p_(std::exchange(o.p_, nullptr)), len_(std::exchange(o.len_, 0)) {}
  // kIOError if mmap fails.
  Status Allocate(size_t len);
  char* data() const { return p_; }
  size_t size() const { return len_; }

 private:
  char* p_ = nullptr;
  size_t len_ = 0;
};

// Registers [p, p+len) on pd. The message names `what` and, on ENOMEM or
// EPERM, the locked-memory limit (the usual cause).
StatusOr<Mr> Register(ibv_pd* pd, void* p, size_t len, int access, const std::string& what);

// The RDMA device (and port) this transport uses, and its protection domain.
struct Device {
  DeviceList list;  // keeps librdmacm's contexts referenced; freed last
  Pd pd;            // before list (declared after it)
  ibv_context* ctx = nullptr;
  std::string name;
  int port = 1;
  int gid_index = -1;  // -1: the one rdma_cm picks
  ibv_device_attr attr{};
  ibv_port_attr port_attr{};
  uint8_t rd_atomic = 1;    // outstanding READs per QP we ask for / grant
  uint32_t max_wr_len = 0;  // largest single READ/WRITE
  int queue_depth = 0;      // per QP, after clamping to the device
};

// Finds the device and port: the one named by o.rdma_device, else the one
// holding o.bind_host's address, else the first with an active port.
// kUnavailable (naming what is missing) if there is none usable;
// kInvalidArgument for inconsistent options.
StatusOr<std::unique_ptr<Device>> OpenDevice(const TransportOptions& o);

const char* WcStatusName(ibv_wc_status s);

}  // namespace kvpool::transport::rdma
