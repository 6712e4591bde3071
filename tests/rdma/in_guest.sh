#!/usr/bin/env bash
# Runs inside the RDMA environment (see run.sh): RXE_IP is the address of
# the RDMA device, BUILD-DIR holds the host-built binaries.
set -euo pipefail
BUILD=$1
cd "$(dirname "$0")/../.."
echo "=== rdma_transport_test ($RXE_IP)"
"$BUILD/storage/transport/rdma_transport_test"
echo "=== transport benchmark over rdma (proves it runs; TCG numbers mean nothing)"
"$BUILD/storage/transport/rdma_transport_bench" --transport rdma --host "$RXE_IP" --seconds 1 \
  --sizes 4K,4M
echo "=== the pool suite over rdma"
# Small segments: each node registers (pins) all of its segment at start.
# Under TCG a 64 MiB value takes seconds to cross: a long pool timeout.
KVPOOL_SERVER="$BUILD/server/kvpool-server" KVPOOL_TEST_HOST="$RXE_IP" \
KVPOOL_POOL_TRANSPORT=rdma KVPOOL_SERVER_ARGS="--maxmemory 128mb --pool-timeout-ms 60000" \
KVPOOL_HIREDIS_CLIENT="$BUILD/tests/clients/hiredis_client" \
  /usr/bin/python3 -m pytest -q -p no:cacheprovider \
  tests/integration/test_pool_rdma.py tests/integration/test_pool.py \
  tests/integration/test_pool_failure.py
echo "=== the replica suite over rdma (kill and restart; the partition test needs network namespaces)"
# Under TCG a write can take seconds: a pool timeout well above that.
KVPOOL_SERVER="$BUILD/server/kvpool-server" KVPOOL_TEST_HOST="$RXE_IP" \
KVPOOL_POOL_TRANSPORT=rdma KVPOOL_SERVER_ARGS="--maxmemory 128mb --pool-timeout-ms 5000" \
KVPOOL_HIREDIS_CLIENT="$BUILD/tests/clients/hiredis_client" \
  /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration/test_replicas.py -k "not partition"
