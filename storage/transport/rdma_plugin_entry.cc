// The one symbol libkvpool-rdma.so exports (rdma_plugin.map): what the
// server's LoadRdmaPlugin (rdma_plugin.h) finds with dlsym.
#include "storage/transport/rdma_plugin.h"
#include "storage/transport/rdma_transport.h"

extern "C" __attribute__((visibility("default"))) const kvpool::transport::RdmaPlugin*
kvpool_rdma_plugin() {
  using namespace kvpool::transport;
  static const RdmaPlugin kPlugin{
      kRdmaPluginAbi, static_cast<uint32_t>(sizeof(TransportOptions)),
      static_cast<uint32_t>(sizeof(kvpool::Status)),
      [](const TransportOptions& o) { return CreateRdmaTransport(o, RdmaTuning{}); }};
  return &kPlugin;
}
