#!/usr/bin/env bash
# Installs the Debian 12 packages kvpool builds and tests with. Runs apt only
# when something is missing, so a second run costs nothing.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config git
  dpkg-dev
  libevent-dev libspdlog-dev libfmt-dev libhiredis-dev libsystemd-dev libssl-dev openssl
  libibverbs-dev librdmacm-dev rdma-core ibverbs-providers ibverbs-utils
  googletest libgtest-dev libgmock-dev
  python3 python3-redis python3-hiredis python3-pytest
  redis-tools redis-server
  clang-14 libclang-rt-14-dev
  iperf3 procps iproute2
  pybind11-dev python3-pybind11 python3-dev python3-venv python3-pip python3-numpy
)
if [ "${1:-}" = "--test" ]; then
  # The Soft-RoCE guest used by the RDMA tests (../shared/rdma-vm/setup.sh
  # installs the rest of what it needs itself).
  PKGS+=(qemu-system-x86 busybox-static kmod rdmacm-utils perftest)
  # The Node.js cluster clients (tests/clients/node). NodeSource's nodejs
  # carries npm itself and conflicts with Debian's npm package.
  PKGS+=(nodejs)
  # torch tensors stand in for an engine's host KV pool in the LLM tests.
  PKGS+=(python3-torch)
  # /metrics parsed as Prometheus parses it (test_metrics.py).
  PKGS+=(python3-prometheus-client)
  # ChaCha20-Poly1305 for the raw peer frames of test_pool_security.py (pool_util.FrameSealer).
  PKGS+=(python3-cryptography)
  # tests/package: the .deb's postinst (adduser), systemd-analyze verify on
  # its unit (systemd; nothing needs it running), setpriv (util-linux), its
  # logrotate file run (logrotate; pkill in postrotate: procps).
  PKGS+=(adduser systemd util-linux logrotate)
  # pytest-xdist: scripts/test.sh spreads the integration suite over workers.
  PKGS+=(python3-pytest-xdist)
  command -v npm >/dev/null || PKGS+=(npm)
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
