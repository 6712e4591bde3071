#!/usr/bin/env bash
# Builds kvpool and runs every test: unit tests (gtest), the same under
# ASan+UBSan, integration tests with real clients against real server
# processes (pytest + redis-py, redis-cli, redis-benchmark, hiredis), and the
# protocol fuzzer. Installs what is missing first. Exit status 0 = all passed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
START=$(date +%s)
step() { echo; echo "=== [$(( $(date +%s) - START ))s] $*"; }

step "dependencies"
scripts/install-deps.sh --test

step "build (RelWithDebInfo)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build

step "unit tests"
ctest --test-dir build --output-on-failure -j2

step "build with ASan + UBSan"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKVPOOL_SANITIZE=ON >/dev/null
ninja -C build-asan

step "unit tests under ASan + UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j2

export KVPOOL_HIREDIS_CLIENT=$ROOT/build/tests/clients/hiredis_client
step "integration tests: one node (pytest, real clients, real processes)"
KVPOOL_SERVER=$ROOT/build/server/kvpool-server /usr/bin/python3 -m pytest -q tests/integration

step "integration tests: the same suite against a three-node pool"
KVPOOL_SERVER=$ROOT/build/server/kvpool-server KVPOOL_POOL_NODES=3 \
  /usr/bin/python3 -m pytest -q tests/integration

step "protocol fuzzer (${FUZZ_SECONDS:-60}s)"
tests/fuzz/build_and_run.sh "$ROOT/build-fuzz"

step "all tests passed"
