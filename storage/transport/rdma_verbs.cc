#include "storage/transport/rdma_verbs.h"

#include <netdb.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace kvpool::transport::rdma {

void LogDestroyFailure(const char* what, int rc, int err) {
  // ibv_* return an errno value; rdma_* return -1 and set errno.
  const int e = rc > 0 ? rc : err;
  spdlog::error("rdma: {} failed: rc={} ({})", what, rc, e ? std::strerror(e) : "no errno");
}

Mapping::~Mapping() {
  if (p_ && munmap(p_, len_) != 0)
    spdlog::error("rdma: munmap of {} bytes failed: {}", len_, std::strerror(errno));
}

Status Mapping::Allocate(size_t len) {
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return Status::IOError("mmap of " + std::to_string(len) + " bytes: " + std::strerror(errno));
  // Fewer page-table entries for the HCA to walk when the buffers are large.
  if (len >= (2u << 20)) madvise(p, len, MADV_HUGEPAGE);
  p_ = static_cast<char*>(p);
  len_ = len;
  return Status::OK();
}

StatusOr<Mr> Register(ibv_pd* pd, void* p, size_t len, int access, const std::string& what) {
  ibv_mr* mr = ibv_reg_mr(pd, p, len, access);
  if (mr) return Mr(mr);
  const int err = errno;
  std::string msg = "ibv_reg_mr of " + what + " (" + std::to_string(len) +
                    " bytes) failed: " + std::strerror(err);
  if (err == ENOMEM || err == EPERM) {
    rlimit rl{};
    getrlimit(RLIMIT_MEMLOCK, &rl);
    msg += rl.rlim_cur == RLIM_INFINITY
               ? std::string(" (locked-memory limit is unlimited)")
               : " (locked-memory limit is " + std::to_string(rl.rlim_cur) +
                     " bytes: raise ulimit -l / LimitMEMLOCK)";
  }
  return Status::Unavailable(msg);
}

const char* WcStatusName(ibv_wc_status s) { return ibv_wc_status_str(s); }

namespace {

// The device holding `host`'s address, as rdma_cm sees it: *ctx stays null
// for a wildcard address. kUnavailable if the address is on no RDMA device.
Status AddressDevice(const std::string& host, ibv_context** ctx, int* port) {
  *ctx = nullptr;
  *port = 0;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string h = host.empty() ? "127.0.0.1" : host;
  int rc = getaddrinfo(h.c_str(), nullptr, &hints, &res);
  if (rc != 0 || !res)
    return Status::InvalidArgument("cannot resolve " + h + ": " + gai_strerror(rc));
  sockaddr_storage ss{};
  std::memcpy(&ss, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  if (ss.ss_family == AF_INET &&
      reinterpret_cast<sockaddr_in*>(&ss)->sin_addr.s_addr == htonl(INADDR_ANY))
    return Status::OK();
  if (ss.ss_family == AF_INET6 &&
      IN6_IS_ADDR_UNSPECIFIED(&reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr))
    return Status::OK();

  EventChannel ch(rdma_create_event_channel());
  if (!ch)
    return Status::Unavailable(std::string("rdma_create_event_channel: ") + std::strerror(errno) +
                               " (is rdma_ucm loaded?)");
  rdma_cm_id* raw = nullptr;
  if (rdma_create_id(ch.get(), &raw, nullptr, RDMA_PS_TCP) != 0)
    return Status::Unavailable(std::string("rdma_create_id: ") + std::strerror(errno));
  CmId id(raw);
  if (rdma_bind_addr(id.get(), reinterpret_cast<sockaddr*>(&ss)) != 0)
    return Status::Unavailable("bind address " + h + " is not on an RDMA device (rdma_bind_addr: " +
                               std::strerror(errno) + ")");
  if (!id->verbs) return Status::Unavailable("bind address " + h + " is not on an RDMA device");
  *ctx = id->verbs;
  *port = id->port_num;
  return Status::OK();
}

const char* PortState(ibv_port_state s) { return ibv_port_state_str(s); }

}  // namespace

StatusOr<std::unique_ptr<Device>> OpenDevice(const TransportOptions& o) {
  auto d = std::make_unique<Device>();
  int n = 0;
  errno = 0;
  ibv_context** list = rdma_get_devices(&n);
  if (!list || n == 0) {
    const int err = errno;
    if (list) rdma_free_devices(list);
    return Status::Unavailable(
        std::string("no RDMA device found") +
        (err ? std::string(" (") + std::strerror(err) + ")" : "") +
        ": no RDMA NIC, or its driver (or rdma_rxe) and rdma_ucm are not loaded");
  }
  d->list = DeviceList(list);

  ibv_context* addr_ctx = nullptr;
  int addr_port = 0;
  Status st = AddressDevice(o.bind_host, &addr_ctx, &addr_port);
  if (!st.ok()) return st;

  std::string names;
  for (int i = 0; i < n; ++i) {
    if (i) names += ", ";
    names += ibv_get_device_name(list[i]->device);
  }
  if (!o.rdma_device.empty()) {
    for (int i = 0; i < n && !d->ctx; ++i)
      if (o.rdma_device == ibv_get_device_name(list[i]->device)) d->ctx = list[i];
    if (!d->ctx)
      return Status::Unavailable("RDMA device '" + o.rdma_device +
                                 "' not found (devices: " + names + ")");
    if (addr_ctx && addr_ctx != d->ctx)
      return Status::Unavailable("bind address " + o.bind_host + " is on RDMA device " +
                                 ibv_get_device_name(addr_ctx->device) + ", not on rdma-device " +
                                 o.rdma_device);
  } else if (addr_ctx) {
    d->ctx = addr_ctx;
  } else {
    for (int i = 0; i < n && !d->ctx; ++i) {
      ibv_port_attr pa{};
      if (ibv_query_port(list[i], static_cast<uint8_t>(o.rdma_port), &pa) == 0 &&
          pa.state == IBV_PORT_ACTIVE)
        d->ctx = list[i];
    }
    if (!d->ctx)
      return Status::Unavailable("no RDMA device with an active port " +
                                 std::to_string(o.rdma_port) + " (devices: " + names + ")");
  }
  d->name = ibv_get_device_name(d->ctx->device);
  d->port = o.rdma_port;
  if (addr_ctx && addr_port != 0 && addr_port != o.rdma_port)
    return Status::Unavailable("bind address " + o.bind_host + " is on port " +
                               std::to_string(addr_port) + " of " + d->name +
                               ", not on rdma-port " + std::to_string(o.rdma_port));
  if (ibv_query_device(d->ctx, &d->attr) != 0)
    return Status::Unavailable("ibv_query_device(" + d->name + "): " + std::strerror(errno));
  if (d->port < 1 || d->port > d->attr.phys_port_cnt)
    return Status::Unavailable("RDMA device " + d->name + " has no port " +
                               std::to_string(d->port));
  if (ibv_query_port(d->ctx, static_cast<uint8_t>(d->port), &d->port_attr) != 0)
    return Status::Unavailable("ibv_query_port(" + d->name + "): " + std::strerror(errno));
  if (d->port_attr.state != IBV_PORT_ACTIVE)
    return Status::Unavailable("RDMA device " + d->name + " port " + std::to_string(d->port) +
                               " is not active (" + PortState(d->port_attr.state) + ")");
  d->gid_index = o.rdma_gid_index;
  if (d->gid_index >= 0) {
    ibv_gid gid{};
    static const ibv_gid kZero{};
    if (d->gid_index >= d->port_attr.gid_tbl_len ||
        ibv_query_gid(d->ctx, static_cast<uint8_t>(d->port), d->gid_index, &gid) != 0 ||
        std::memcmp(&gid, &kZero, sizeof(gid)) == 0)
      return Status::Unavailable("GID index " + std::to_string(d->gid_index) + " of " + d->name +
                                 " port " + std::to_string(d->port) + " is empty");
  }
  ibv_pd* pd = ibv_alloc_pd(d->ctx);
  if (!pd) return Status::Unavailable("ibv_alloc_pd(" + d->name + "): " + std::strerror(errno));
  d->pd = Pd(pd);

  d->rd_atomic = static_cast<uint8_t>(
      std::clamp(std::min(d->attr.max_qp_rd_atom, d->attr.max_qp_init_rd_atom), 1, 16));
  d->max_wr_len = static_cast<uint32_t>(std::min<uint64_t>(d->port_attr.max_msg_sz, 1u << 30));
  // Send and receive queues of rdma_queue_depth each; the CQ holds both.
  d->queue_depth = std::min({o.rdma_queue_depth, d->attr.max_qp_wr, (d->attr.max_cqe - 16) / 2});
  if (d->queue_depth < 8)
    return Status::Unavailable("RDMA device " + d->name + " cannot hold queues of depth 8");
  return d;
}

}  // namespace kvpool::transport::rdma
