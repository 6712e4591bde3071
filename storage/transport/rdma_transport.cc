// Placeholder until the RDMA transport lands (issue 4): reports that no RDMA
// transport is available, so `transport rdma` falls back to TCP or refuses
// to start as transport-fallback says. Replaced by the real implementation.
#include "storage/transport/transport.h"

namespace kvpool::transport {

StatusOr<std::unique_ptr<Transport>> CreateRdmaTransport(const TransportOptions&) {
  return Status::Unavailable("this build has no RDMA transport yet");
}

}  // namespace kvpool::transport
