#!/usr/bin/env bash
# What ordered replicas cost writes (issue 13: at most 30%): a three-node pool
# with pool-replicas 2 against the same pool with pool-replicas 1, and
# redis-server for scale, side by side.
#
#   bench/replica_cost.sh [--rounds N] [--requests N] [--server PATH]
#                         [-- REDIS-BENCHMARK-ARGS...]
#
# Default load, through node 1 of each pool: `redis-benchmark -t set,mset
# -P 16 -c 20 -r 100000` (MSET: 10 random keys, so most MSETs touch all
# three nodes). Starts redis-server and two pools of three kvpool-servers on
# free loopback ports, runs the load against each side in turn for N rounds
# (the order rotates each round), and reads the CPU time of each side's
# processes (utime + stime, /proc/PID/stat) before and after. Prints each
# run, then per test the medians: requests per second, server CPU per
# request (all nodes of a pool together), and the ratios r2 / r1.
# Stops whatever it started on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=3
REQUESTS=200000
SERVER=$ROOT/build/server/kvpool-server
LOAD=(-P 16 -c 20 -r 100000)
TESTS=(set mset)

# shellcheck source=bench/side_by_side.sh
. "$ROOT/bench/side_by_side.sh"
sbs_parse "$@"

sbs_setup replica_cost

start_redis() {
  local port
  free_port
  port=$next_port
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no >"$LOGS/redis.log" 2>&1 &
  ALL+=($!)
  PIDS[redis]=$!
  PORT[redis]=$port
  wait_pong "$port" $! || die "redis-server did not start (see $LOGS/redis.log)"
}

start_redis
start_pool r1 1
start_pool r2 2
SIDES=(redis r1 r2)

echo "load: redis-benchmark -n $REQUESTS ${LOAD[*]} -t <test>; rounds: $ROUNDS; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
  for i in 0 1 2; do
    s=${SIDES[$(( (i + r - 1) % 3 ))]}
    for t in "${TESTS[@]}"; do
      sbs_run "$r" "$s" "$t" "${PIDS[$s]}" -- -p "${PORT[$s]}"
    done
  done
done

echo
echo "| test | redis req/s | r1 req/s | r2 req/s | r2 / r1 | r1 cpu us/req | r2 cpu us/req | r2 / r1 cpu |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for t in "${TESTS[@]}"; do
  rr=$(echo "${RPS[redis,$t]}" | median)
  r1=$(echo "${RPS[r1,$t]}" | median)
  r2=$(echo "${RPS[r2,$t]}" | median)
  c1=$(echo "${CPU[r1,$t]}" | median)
  c2=$(echo "${CPU[r2,$t]}" | median)
  awk -v t="$t" -v rr="$rr" -v r1="$r1" -v r2="$r2" -v c1="$c1" -v c2="$c2" \
    'BEGIN {printf "| %s | %.0f | %.0f | %.0f | %.2f | %.1f | %.1f | %.2f |\n", toupper(t), rr, r1, r2, r2 / r1, c1, c2, c2 / c1}'
done
echo "logs: $LOGS"
