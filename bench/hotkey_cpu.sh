#!/usr/bin/env bash
# Server CPU per request of kvpool (io-threads 1 and 2) against redis-server,
# side by side (issue 12: a hot key written from every I/O thread).
#
#   bench/hotkey_cpu.sh [--rounds N] [--requests N] [--server PATH] [--io-threads "1 2"]
#                       [-- REDIS-BENCHMARK-ARGS...]
#
# Default load: `redis-benchmark -t mset -c 50` without -r, so all 10 keys of
# every MSET are the same key. Anything after `--` replaces it (e.g.
# `-- -t mset -c 50 -r 100000` for distinct keys). Starts redis-server and one
# kvpool-server per io-threads value on free loopback ports, runs the load
# against each in turn for N rounds (the order rotates each round, so a noisy
# machine's drift hits every side), and reads each server's CPU time
# (utime + stime of all threads, /proc/PID/stat) before and after. Prints
# each run, then the medians in microseconds per request and their ratios.
# Stops whatever it started on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=3
REQUESTS=200000
SERVER=$ROOT/build/server/kvpool-server
IO_THREADS="1 2"
LOAD=(-t mset -c 50)

# shellcheck source=bench/side_by_side.sh
. "$ROOT/bench/side_by_side.sh"
sbs_extra_option() { [ "$1" = --io-threads ] && IO_THREADS=$2; }
sbs_parse "$@"

declare -A PORT PID
SIDES=()
trap 'for p in "${PID[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT

next_port=$(( 20000 + RANDOM % 20000 ))
launch() {  # NAME CMD...: starts CMD (with --port appended) on a free port, waits for PONG
  local name=$1; shift
  for _ in $(seq 20); do
    next_port=$((next_port + 1))
    redis-cli -p "$next_port" ping >/dev/null 2>&1 && continue
    "$@" --port "$next_port" >"/tmp/hotkey_cpu.$$.$name.log" 2>&1 &
    PID[$name]=$!
    PORT[$name]=$next_port
    for _ in $(seq 50); do
      [ "$(redis-cli -p "$next_port" ping 2>/dev/null)" = PONG ] && { SIDES+=("$name"); return 0; }
      kill -0 "${PID[$name]}" 2>/dev/null || break
      sleep 0.1
    done
    kill "${PID[$name]}" 2>/dev/null || true
  done
  die "$name did not start (see /tmp/hotkey_cpu.$$.$name.log)"
}

launch redis redis-server --bind 127.0.0.1 --save '' --appendonly no
for v in $IO_THREADS; do launch "kvpool-io$v" "$SERVER" --bind 127.0.0.1 --io-threads "$v"; done

declare -A RUNS  # side -> space separated us/request of each round

echo "load: redis-benchmark -n $REQUESTS ${LOAD[*]}; rounds: $ROUNDS; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
n=${#SIDES[@]}
for r in $(seq "$ROUNDS"); do
  for i in $(seq 0 $((n - 1))); do
    s=${SIDES[$(( (i + r - 1) % n ))]}
    t0=$(cpu_ticks "${PID[$s]}")
    rps=$(redis-benchmark -p "${PORT[$s]}" -n "$REQUESTS" "${LOAD[@]}" --csv |
          awk -F'"' 'NR == 2 {print $4}')
    t1=$(cpu_ticks "${PID[$s]}")
    us=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="$REQUESTS" 'BEGIN {printf "%.2f", d / hz * 1e6 / n}')
    RUNS[$s]="${RUNS[$s]:-} $us"
    printf "round %d  %-12s %10s req/s  server cpu %6s us/req\n" "$r" "$s" "$rps" "$us"
  done
done

declare -A MED
for s in "${SIDES[@]}"; do MED[$s]=$(echo "${RUNS[$s]}" | median); done
echo "medians (server cpu us/req):"
for s in "${SIDES[@]}"; do
  printf "  %-12s %6s   runs:%s" "$s" "${MED[$s]}" "${RUNS[$s]}"
  [ "$s" = redis ] && { echo; continue; }
  awk -v a="${MED[$s]}" -v b="${MED[redis]}" 'BEGIN {printf "   x redis %.2f\n", a / b}'
done
set -- $IO_THREADS
if [ $# -ge 2 ]; then
  awk -v a="${MED[kvpool-io$2]}" -v b="${MED[kvpool-io$1]}" -v x="$2" -v y="$1" \
    'BEGIN {printf "  io%s / io%s: %.2f\n", x, y, a / b}'
fi
