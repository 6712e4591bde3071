#!/usr/bin/env bash
# Builds kvpool and starts a three-node pool on 127.0.0.1:7001-7003 (pool
# ports 17001-17003) in the background; `scripts/start-pool.sh stop` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${KVPOOL_RUN_DIR:-/tmp/kvpool-pool3}
if [ "${1:-}" = "stop" ]; then
  for i in 1 2 3; do
    [ -f "$RUN/node$i.pid" ] && kill "$(cat "$RUN/node$i.pid")" 2>/dev/null || true
  done
  exit 0
fi
scripts/install-deps.sh
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DKVPOOL_TESTS=OFF >/dev/null
ninja -C build-release kvpool-server
mkdir -p "$RUN"
for i in 1 2 3; do
  build-release/server/kvpool-server conf/pool3/node$i.conf --logfile "$RUN/node$i.log" \
    --pidfile "$RUN/node$i.pid" "$@" &
done
sleep 1
echo "pool up: redis-cli -p 7001 pool nodes   (logs in $RUN; stop: $0 stop)"
