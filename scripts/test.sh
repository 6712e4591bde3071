#!/usr/bin/env bash
# Builds kvpool and runs every test:
#   1. unit tests (gtest), the .deb (built, installed, run, purged: needs
#      root) and the integration suite (pytest with redis-py,
#      redis-cli, redis-benchmark, the hiredis client and the Node.js cluster
#      clients ioredis and node-redis against real kvpool-server processes),
#      on one node and on a three-node pool;
#   2. the unit tests and the integration suite again with ASan + UBSan;
#   3. the integration suite with the server under TSan and io-threads 2;
#   4. the fuzzers: RESP parser (FUZZ_SECONDS, 60), peer frames, the
#      pool owner side and the native client's reply reader
#      (FUZZ_PEER_SECONDS, 30 each);
#   5. the RDMA tests against real verbs (Soft-RoCE guest, or the machine's
#      own RDMA device).
# Installs what is missing first. Exit status 0 = everything passed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
START=$(date +%s)
step() { echo; echo "=== [$(( $(date +%s) - START ))s] $*"; }
PYTEST=(/usr/bin/python3 -m pytest -q tests/integration)
# The integration suite in two passes: everything but the tests marked serial
# (they bound CPU time, loop turns or latency) spread over pytest-xdist
# workers, a test file per worker at a time (its module-scoped servers
# shared); most tests wait on servers, timeouts and failover, not on the CPU.
# Then the serial tests alone. Arguments go to both passes. Not for the
# three-node pool pass: each worker would start its own default pool, and
# that pass is short and busy (75 s in one process, 84 s split).
# Four workers on two cores (the heaviest files, their pools' faults and
# failovers, mostly wait): the one-node pass took 93 s, against 151 s with
# three.
IT_WORKERS=${IT_WORKERS:-4}
integration() {
  "${PYTEST[@]}" -n "$IT_WORKERS" --dist loadfile -m "not serial" "$@"
  bg_signal STOP  # the serial tests measure CPU and latency: nothing beside them
  "${PYTEST[@]}" -m serial "$@"
  bg_signal CONT
}

# The next sanitizer build runs in the background, at nice 19, while an
# integration suite (mostly waiting on servers and timeouts) runs: it takes
# only the CPU the tests leave, and is stopped (SIGSTOP to its process
# group) during their serial pass. bg_wait waits for it and prints its log.
BG_PID=""
BG_LOG=""
bg_start() {
  BG_LOG=$(mktemp /tmp/kvpool-bg.XXXXXX)
  # Not a job-control shell: the child is no group leader, so setsid makes
  # it one in place (its pid is the group's id).
  setsid nice -n 19 bash -c "$1" >"$BG_LOG" 2>&1 &
  BG_PID=$!
}
bg_signal() {
  if [ -n "$BG_PID" ]; then kill -"$1" -- "-$BG_PID" 2>/dev/null || true; fi
}
bg_wait() {
  [ -n "$BG_PID" ] || return 0
  bg_signal CONT
  local rc=0
  wait "$BG_PID" || rc=$?
  cat "$BG_LOG"
  rm -f "$BG_LOG"
  BG_PID=""
  return "$rc"
}
# A failed stage ends the run: the background build goes with it.
trap 'bg_signal CONT; bg_signal TERM' EXIT

# A sanitizer's reports go to files under $1; any file there fails the run.
check_reports() {
  if compgen -G "$1/*" >/dev/null; then
    echo "sanitizer reports in $1:" >&2
    head -c 20000 "$1"/* >&2
    exit 1
  fi
}

step "dependencies"
scripts/install-deps.sh --test
# ioredis and node-redis for test_cluster_node_clients.py, when node_modules
# is missing or older than the lock file.
NODE_CLIENTS=tests/clients/node
if [ ! "$NODE_CLIENTS/node_modules/.package-lock.json" -nt "$NODE_CLIENTS/package.json" ] ||
   [ "$NODE_CLIENTS/package-lock.json" -nt "$NODE_CLIENTS/node_modules/.package-lock.json" ]; then
  if [ -f "$NODE_CLIENTS/package-lock.json" ]; then
    (cd "$NODE_CLIENTS" && npm ci --no-audit --no-fund)
  else
    (cd "$NODE_CLIENTS" && npm install --no-audit --no-fund)
  fi
fi

step "build (RelWithDebInfo)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build

# Four at a time on two cores: the pool tests mostly wait on heartbeats and
# timeouts (pool_replica_test: 57 s of wall time for 1 s of CPU, in four
# shards), so the unit stage takes 23 s instead of 57.
UNIT_JOBS=${UNIT_JOBS:-4}
step "unit tests"
ctest --test-dir build --output-on-failure -j"$UNIT_JOBS"

step "package: the .deb from build/ (cpack), installed with dpkg, run from its config, purged"
# Once, as root (dpkg -i): not part of the pool or sanitizer passes.
KVPOOL_SERVER=$ROOT/build/server/kvpool-server /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/package

step "pip install clients/python (the native client) into a venv"
venv=$(mktemp -d /tmp/kvpool-venv.XXXXXX)
/usr/bin/python3 -m venv --system-site-packages "$venv"
"$venv/bin/pip" install -q --no-build-isolation --no-index clients/python
(cd / && "$venv/bin/python" -c "import kvpool, kvpool._native; print('installed', kvpool.DistributedStore)")
rm -rf "$venv" clients/python/build clients/python/kvpool.egg-info

# Every integration run imports the plain build's kvpool._native (a
# sanitizer build has none), whichever server it tests.
export KVPOOL_NATIVE_DIR=$ROOT/build/clients/python

export KVPOOL_HIREDIS_CLIENT=$ROOT/build/tests/clients/hiredis_client
step "build with ASan + UBSan, in the background (nice 19) from here"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKVPOOL_SANITIZE=ON -DKVPOOL_BENCH=OFF \
  -DKVPOOL_RDMA_TESTS=OFF >/dev/null
bg_start "ninja -C build-asan"

step "integration: one node"
KVPOOL_SERVER=$ROOT/build/server/kvpool-server integration

step "benchmark tools: loadgen --verify and bench_report against real servers"
# These two run whole (serial tests included): the background build waits.
bg_signal STOP
KVPOOL_SERVER=$ROOT/build/server/kvpool-server KVPOOL_LOADGEN=$ROOT/build/bench/loadgen \
  /usr/bin/python3 -m pytest -q -p no:cacheprovider bench/test_bench.py

step "integration: the same suite against a three-node pool"
KVPOOL_SERVER=$ROOT/build/server/kvpool-server KVPOOL_POOL_NODES=3 "${PYTEST[@]}"
bg_signal CONT

step "build with ASan + UBSan: the rest, in the foreground"
bg_wait

step "unit tests under ASan + UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j"$UNIT_JOBS"

step "build the server with TSan, in the background (nice 19) from here"
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKVPOOL_TSAN=ON \
  -DKVPOOL_TESTS=OFF >/dev/null
bg_start "ninja -C build-tsan kvpool-server"

step "integration: one node, server under ASan + UBSan"
reports=$(mktemp -d /tmp/kvpool-asan.XXXXXX)
ASAN_OPTIONS=detect_leaks=1:log_path=$reports/asan \
UBSAN_OPTIONS=print_stacktrace=1:log_path=$reports/ubsan \
KVPOOL_SERVER=$ROOT/build-asan/server/kvpool-server integration
check_reports "$reports"

step "build the server with TSan: the rest, in the foreground"
bg_wait

step "build the fuzz targets, in the background (nice 19) from here"
bg_start "FUZZ_BUILD_ONLY=1 tests/fuzz/build_and_run.sh '$ROOT/build-fuzz'"

step "integration: one node and pools, server under TSan with io-threads 2"
# Three workers, not four: TSan servers take the most CPU, and with four
# test_a_read_no_copy_answered_is_an_error_not_a_local_miss once got a
# quick answer where it waits for an error (one run in three; see the
# stop's note). 64 MiB transfers are left to the runs above: under TSan they outlast the
# pool timeouts those tests use, and they add nothing to race detection.
reports=$(mktemp -d /tmp/kvpool-tsan.XXXXXX)
TSAN_OPTIONS=halt_on_error=0:log_path=$reports/tsan KVPOOL_SERVER_ARGS="--io-threads 2" \
KVPOOL_SERVER=$ROOT/build-tsan/server/kvpool-server IT_WORKERS=${TSAN_IT_WORKERS:-3} integration -k "not 64mib"
check_reports "$reports"

step "build the fuzz targets: the rest, in the foreground"
bg_wait

step "fuzzers: RESP parser ${FUZZ_SECONDS:-60}s; peer frames, pool owner, client reply reader ${FUZZ_PEER_SECONDS:-30}s each"
# The RESP parser's run beside the other three: libFuzzer runs on one core,
# there are two, and each target keeps its seconds. Its output follows theirs.
fuzz_log=$(mktemp /tmp/kvpool-fuzz.XXXXXX)
FUZZ_PREBUILT=1 FUZZ_SECONDS=${FUZZ_SECONDS:-60} FUZZ_TARGETS=resp_parser_fuzz tests/fuzz/build_and_run.sh "$ROOT/build-fuzz" \
  >"$fuzz_log" 2>&1 &
fuzz_pid=$!
peer_rc=0
FUZZ_PREBUILT=1 FUZZ_SECONDS=${FUZZ_PEER_SECONDS:-30} FUZZ_TARGETS="peer_frame_fuzz peer_owner_fuzz reply_reader_fuzz" \
  tests/fuzz/build_and_run.sh "$ROOT/build-fuzz" || peer_rc=$?
resp_rc=0
wait "$fuzz_pid" || resp_rc=$?
cat "$fuzz_log"
rm -f "$fuzz_log"
if [ "$peer_rc" -ne 0 ] || [ "$resp_rc" -ne 0 ]; then
  echo "fuzzers failed: resp_parser_fuzz exit $resp_rc, the peer targets exit $peer_rc" >&2
  exit 1
fi

step "RDMA: transport and pool against real verbs"
tests/rdma/run.sh "$ROOT/build"

step "all tests passed"
