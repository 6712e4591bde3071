#!/bin/bash
# run_in_vm.sh REPO-ROOT CMD [ARG...]
#
# Runs CMD inside a Soft-RoCE (rdma_rxe) guest with cwd = REPO-ROOT, which
# the guest mounts read-write at the same path, so binaries built on the host
# (e.g. build/storage/transport/rdma_transport_test) run there unchanged and
# what they write is visible here afterwards. Exits with CMD's status (124 if
# the guest timed out, 125 if it gave no status).
#
# Uses the project's copy of the rdma-vm harness (tests/rdma/vm, see its
# README). The first run on a host installs qemu and friends from Debian
# packages and downloads a Debian kernel package (tests/rdma/vm/setup.sh,
# needs root); later runs boot in a few seconds plus the job.
#
# Inside the guest: RXE_DEV=rxe0, RXE_IP=10.77.0.1 (bind/connect here),
# RXE_GID_IDX=1, root, ulimit -l unlimited. Without KVM the guest runs under
# TCG: RDMA works but is slow (~150 us per round trip, 50-60 MB/s).
#
# Env: RXE_TIMEOUT bounds the whole guest run in seconds (default here 900);
# RXE_MEM, RXE_SMP, RXE_MTU, RXE_VERBOSE as in tests/rdma/vm/README.md.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 2 ]; then
  echo "usage: $0 REPO-ROOT CMD [ARG...]" >&2
  exit 2
fi
root=$(realpath -e "$1") || exit 2
shift
export RXE_TIMEOUT=${RXE_TIMEOUT:-900}
exec "$here/vm/run.sh" "$root" "$@"
