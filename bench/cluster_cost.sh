#!/usr/bin/env bash
# What a cluster client saves (issue 14: at least 1.5x less server CPU per
# command): single-key SET and GET on a three-node pool sent by a cluster
# client straight to each key's node (`redis-benchmark --cluster`, which
# reads CLUSTER NODES) against the same load sent through one node, which
# forwards the keys other nodes own. Side by side on one pool.
#
#   bench/cluster_cost.sh [--rounds N] [--requests N] [--server PATH]
#                         [--replicas N] [-- REDIS-BENCHMARK-ARGS...]
#
# Default load: `redis-benchmark -P 16 -c 20 -r 100000 -t set,get`
# (--replicas 1: pool-replicas of the pool). Each round runs the two sides
# in turn (the order rotates each round) and reads the CPU time of the three
# nodes (utime + stime, /proc/PID/stat) before and after. Prints each run,
# then per test the medians: requests per second, server CPU per request
# (all nodes together), and the ratios through-one-node / cluster.
# Stops whatever it started on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=3
REQUESTS=1000000
SERVER=$ROOT/build/server/kvpool-server
LOAD=(-P 16 -c 20 -r 100000)
TESTS=(set get)
REPLICAS=1

# shellcheck source=bench/side_by_side.sh
. "$ROOT/bench/side_by_side.sh"
sbs_extra_option() {
  [ "$1" = --replicas ] || return 1
  REPLICAS=$2
}
sbs_parse "$@"
[[ $REPLICAS =~ ^[1-3]$ ]] || die "--replicas must be 1, 2 or 3"

sbs_setup cluster_cost

start_pool pool "$REPLICAS"
SIDES=(cluster one-node)

echo "load: redis-benchmark -n $REQUESTS ${LOAD[*]} -t <test> [--cluster]; pool-replicas $REPLICAS;" \
  "rounds: $ROUNDS; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
  for i in 0 1; do
    s=${SIDES[$(( (i + r - 1) % 2 ))]}
    mode=()
    [ "$s" = cluster ] && mode=(--cluster)
    for t in "${TESTS[@]}"; do
      sbs_run "$r" "$s" "$t" "${PIDS[pool]}" -- "${mode[@]}" -h 127.0.0.1 -p "${PORT[pool]}"
    done
  done
done

echo
echo "| test | cluster req/s | one node req/s | cluster / one node | cluster cpu us/req | one node cpu us/req | one node / cluster cpu |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for t in "${TESTS[@]}"; do
  rc=$(echo "${RPS[cluster,$t]}" | median)
  ro=$(echo "${RPS[one-node,$t]}" | median)
  cc=$(echo "${CPU[cluster,$t]}" | median)
  co=$(echo "${CPU[one-node,$t]}" | median)
  awk -v t="$t" -v rc="$rc" -v ro="$ro" -v cc="$cc" -v co="$co" \
    'BEGIN {printf "| %s | %.0f | %.0f | %.2f | %.1f | %.1f | %.2f |\n", toupper(t), rc, ro, rc / ro, cc, co, (cc > 0 ? co / cc : 0)}'
done
echo "logs: $LOGS"
