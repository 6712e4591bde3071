#!/usr/bin/env bash
# Builds kvpool (Release) and starts one node on 127.0.0.1:6379 in the
# foreground. Extra arguments go to kvpool-server (e.g. --port 7000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DKVPOOL_TESTS=OFF >/dev/null
ninja -C build-release kvpool-server
exec build-release/server/kvpool-server conf/kvpool.conf "$@"
