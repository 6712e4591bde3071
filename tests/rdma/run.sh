#!/usr/bin/env bash
# RDMA tests against real verbs, with binaries from BUILD-DIR (default build):
#   - the transport's own suite (rdma_transport_test);
#   - the pool integration suite with `transport rdma` (three nodes, MSET
#     through one, MGET/MEXISTS through the others, kill -9 and restart), and
#     a check that values really moved one-sided (test_pool_rdma.py);
#   - the replica suite with `transport rdma` (kill and restart under load).
# On a machine with an active RDMA device and KVPOOL_RDMA_IP set to an
# address on it, they run directly. Otherwise they run inside the Soft-RoCE
# guest (tests/rdma/vm; first use installs qemu and a Debian kernel).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(realpath "${1:-$ROOT/build}")
cd "$ROOT"

if [ -n "${KVPOOL_RDMA_IP:-}" ] && ibv_devinfo 2>/dev/null | grep -q PORT_ACTIVE; then
  echo "rdma: using this machine's RDMA device at $KVPOOL_RDMA_IP"
  RXE_IP=$KVPOOL_RDMA_IP exec bash tests/rdma/in_guest.sh "$BUILD"
fi
echo "rdma: no usable RDMA device here; running in the Soft-RoCE guest"
# The guest pins every node's segment: give it room for three nodes.
RXE_MEM=${RXE_MEM:-4096} RXE_TIMEOUT=${RXE_TIMEOUT:-1500} \
  tests/rdma/run_in_vm.sh "$ROOT" bash tests/rdma/in_guest.sh "$BUILD"
