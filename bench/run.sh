#!/usr/bin/env bash
# kvpool against redis-server, side by side, on this machine (issue 5).
#
#   bench/run.sh [--rounds N] [--quick] [--io-threads "1 2"] [--workloads "1 2 ..."]
#                [--duration S] [--maxmemory 2gb] [--out DIR] [--no-build]
#                [--kvpool-env VAR=VALUE]...   (experiments: environment of kvpool only,
#                                              e.g. GLIBC_TUNABLES=... or LD_PRELOAD=...)
#
# Builds Release (build-release/), starts redis-server and kvpool-server on
# free loopback ports with the same memory settings, runs each workload
# against each in turn for N rounds (sides alternate within a round), and
# prints a table of medians: throughput of each, ratio kvpool/baseline, p50
# and p99, resident memory (VmRSS) of each process. Every process it starts
# is stopped on exit (trap), however it exits.
#
# Workloads (see bench/README.md): 1 GET/SET -P 16 -c 50, 2 the same without
# pipelining, 3 MSET of 10 keys (redis-benchmark); 4 MGET 100 x 4 KiB,
# 5 MEXISTS of 100 keys (half present) vs redis's EXISTS, 6 MSET 100 x 4 KiB,
# 7 memory of 1,000,000 keys x 100 B (loadgen); 8 a three-node pool vs one
# node (workload 4); 9 MGET of 1 MiB values held by the other node of a
# two-node pool vs iperf3 on loopback.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/build-release
ROUNDS=3
QUICK=0
IO_THREADS="1 2"
WORKLOADS="1 2 3 4 5 6 7 8 9"
DURATION=""
MAXMEMORY=2gb
POLICY=allkeys-lru
OUT=""
BUILD_FIRST=1
KV_ENV=()

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() { echo "run.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) [ $# -ge 2 ] || die "--rounds needs a value"; ROUNDS=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --io-threads) [ $# -ge 2 ] || die "--io-threads needs a value"; IO_THREADS=$2; shift 2 ;;
    --workloads) [ $# -ge 2 ] || die "--workloads needs a value"; WORKLOADS=$2; shift 2 ;;
    --duration) [ $# -ge 2 ] || die "--duration needs a value"; DURATION=$2; shift 2 ;;
    --maxmemory) [ $# -ge 2 ] || die "--maxmemory needs a value"; MAXMEMORY=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || die "--out needs a value"; OUT=$2; shift 2 ;;
    --no-build) BUILD_FIRST=0; shift ;;
    --kvpool-env)
      [ $# -ge 2 ] || die "--kvpool-env needs VAR=VALUE"
      [[ $2 =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--kvpool-env: '$2' is not VAR=VALUE"
      KV_ENV+=("$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
  esac
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer"
[[ -z $DURATION || $DURATION =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--duration must be seconds"
for v in $IO_THREADS; do [[ $v =~ ^[1-9][0-9]*$ ]] || die "--io-threads: '$v' is not a count"; done
[ -n "$IO_THREADS" ] || die "--io-threads is empty"
for w in $WORKLOADS; do [[ $w =~ ^[1-9]$ ]] || die "--workloads: '$w' is not 1..9"; done

# Sizes of the runs: default keeps a full run near 12 minutes on 2 cores.
if [ "$QUICK" = 1 ]; then
  [ -n "$DURATION" ] || DURATION=2
  N_P16=300000; N_P1=60000; N_MSET=100000; MEM_KEYS=200000; IPERF_SECONDS=2
  [ "$ROUNDS" = 3 ] && ROUNDS=1
  IO_THREADS=${IO_THREADS%% *}
else
  [ -n "$DURATION" ] || DURATION=5
  N_P16=1000000; N_P1=150000; N_MSET=300000; MEM_KEYS=1000000; IPERF_SECONDS=5
fi

for tool in redis-server redis-benchmark redis-cli iperf3 ss; do
  command -v "$tool" >/dev/null || die "$tool is not installed (scripts/install-deps.sh --test)"
done

# ------------------------------------------------------------------ build
if [ "$BUILD_FIRST" = 1 ]; then
  echo "== building Release in $BUILD" >&2
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKVPOOL_TESTS=OFF >/dev/null
  ninja -C "$BUILD" kvpool-server loadgen bench_report >&2
fi
KVPOOL=$BUILD/server/kvpool-server
LOADGEN=$BUILD/bench/loadgen
REPORT=$BUILD/bench/bench_report
for b in "$KVPOOL" "$LOADGEN" "$REPORT"; do [ -x "$b" ] || die "$b is missing (drop --no-build)"; done

[ -n "$OUT" ] || OUT=$BUILD/bench-results/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT/logs"
RESULTS=$OUT/results.tsv
: >"$RESULTS"
FAILED=0

# -------------------------------------------------------------- processes
declare -A PORT PID
STARTED=()   # pids we started, stopped by cleanup

cleanup() {
  local p
  for p in "${STARTED[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${STARTED[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  STARTED=()
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted" >&2; exit 130' INT TERM

port_free() { [ -z "$(ss -Htan "( sport = :$1 )" 2>/dev/null)" ]; }

# N consecutive free ports P..P+N-1 with P+10000.. free too (kvpool's node ports).
free_ports() {
  local n=$1 base i ok
  for _ in $(seq 200); do
    base=$(( 20000 + RANDOM % 24000 ))
    ok=1
    for ((i = 0; i < n; i++)); do
      port_free $((base + i)) && port_free $((base + i + 10000)) || { ok=0; break; }
    done
    if [ $ok = 1 ]; then echo $(seq "$base" $((base + n - 1))); return 0; fi
  done
  die "no free ports"
}

wait_ping() {  # name
  local port=${PORT[$1]} pid=${PID[$1]}
  for _ in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || return 1
    [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.1
  done
  return 1
}

# start NAME PORT KIND ARGS...: KIND redis|kvpool.
start() {
  local name=$1 port=$2 kind=$3; shift 3
  local log=$OUT/logs/$name.log
  local mem=(--maxmemory "$MAXMEMORY" --maxmemory-policy "$POLICY")
  if [ "$kind" = redis ]; then
    redis-server --port "$port" --bind 127.0.0.1 "${mem[@]}" --save "" --appendonly no \
      --dir "$OUT/logs" --dbfilename "$name.rdb" "$@" >>"$log" 2>&1 &
  else
    env "${KV_ENV[@]}" "$KVPOOL" --port "$port" --bind 127.0.0.1 "${mem[@]}" --save "" \
      --appendonly no "$@" >>"$log" 2>&1 &
  fi
  PID[$name]=$!
  PORT[$name]=$port
  STARTED+=("${PID[$name]}")
}

forget() {  # PID: no longer ours to stop
  local q rest=()
  for q in "${STARTED[@]}"; do [ "$q" = "$1" ] || rest+=("$q"); done
  STARTED=("${rest[@]}")
}

stop() {  # names...
  local name p
  for name in "$@"; do
    p=${PID[$name]:-}
    [ -n "$p" ] || continue
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    forget "$p"
    unset "PID[$name]"
  done
}

# start_single NAME KIND ARGS...: one server on a free port, retried on a port race.
start_single() {
  local name=$1; shift
  for _ in 1 2 3; do
    start "$name" "$(free_ports 1)" "$@"
    wait_ping "$name" && return 0
    stop "$name"
  done
  echo "run.sh: $name did not start; see $OUT/logs/$name.log" >&2
  return 1
}

# start_pool PREFIX N IO: N kvpool nodes PREFIX1..PREFIXN forming one pool.
start_pool() {
  local prefix=$1 n=$2 io=$3 ports spec i up
  for _ in 1 2 3; do
    ports=($(free_ports "$n"))
    spec=""
    for p in "${ports[@]}"; do spec+="127.0.0.1:$p "; done
    spec=${spec% }
    local ok=1
    for ((i = 1; i <= n; i++)); do
      start "$prefix$i" "${ports[$((i - 1))]}" kvpool --io-threads "$io" --pool-nodes "$spec" \
        --pool-secret "kvpool-bench-$$"
    done
    for ((i = 1; i <= n; i++)); do wait_ping "$prefix$i" || ok=0; done
    if [ $ok = 1 ]; then
      for _ in $(seq 100); do
        up=$(redis-cli -p "${PORT[${prefix}1]}" info pool 2>/dev/null | tr -d '\r' |
             sed -n 's/^pool_nodes_up://p')
        [ "$up" = "$n" ] && return 0
        sleep 0.1
      done
    fi
    for ((i = 1; i <= n; i++)); do stop "$prefix$i"; done
  done
  echo "run.sh: pool $prefix did not come up; see $OUT/logs/${prefix}1.log" >&2
  return 1
}

CLK_TCK=$(getconf CLK_TCK)
cpu_s() {  # names... -> CPU seconds (user + system, all threads) used so far, summed
  local name ticks=0 t
  for name in "$@"; do
    t=$(sed 's/^.*) //' "/proc/${PID[$name]}/stat" 2>/dev/null | awk '{print $12 + $13}')
    ticks=$((ticks + ${t:-0}))
  done
  awk -v t="$ticks" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", t / hz }'
}

# timed OUT-FILE CMD...: runs CMD; its CPU seconds (user + system) go to OUT-FILE.
if [ -x /usr/bin/time ]; then
  timed() { local f=$1; shift; /usr/bin/time -f "%U %S" -o "$f" "$@"; }
else
  timed() { local f=$1; shift; echo "- -" >"$f"; "$@"; }
fi
client_s() { awk '{ if ($1 == "-") print "-"; else printf "%.3f", $1 + $2 }' "$1"; }
delta() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

rss_kb() {  # names... -> sum of VmRSS in kB
  local total=0 name v
  for name in "$@"; do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/${PID[$name]}/status" 2>/dev/null || echo 0)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# ------------------------------------------------------------------ records
meta_workload() { printf '#workload\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }
meta_row() { printf '#row\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }

fail() { echo "run.sh: FAILED: $*" >&2; FAILED=$((FAILED + 1)); }

# run_rb SIDE ROUND NAMES REQUESTS TEST=WORKLOAD -- REDIS-BENCHMARK-ARGS...
# One redis-benchmark test (so CPU time per command is that test's). NAMES:
# the servers (comma separated) whose VmRSS and CPU are recorded; the first
# is asked.
run_rb() {
  local side=$1 round=$2 names=$3 requests=$4 map=$5
  shift 5
  [ "$1" = "--" ] && shift
  local first=${names%%,*} servers=${names//,/ }
  local out=$OUT/logs/rb-$side-$round-${map##*=}.csv
  local c0 c1
  c0=$(cpu_s $servers)
  if ! timed "$out.cpu" redis-benchmark -h 127.0.0.1 -p "${PORT[$first]}" -n "$requests" "$@" \
      --csv >"$out" 2>&1; then
    fail "redis-benchmark $* against $side (see $out)"; return 0
  fi
  c1=$(cpu_s $servers)
  "$REPORT" rb "$side" "$round" "$(rss_kb $servers)" "$map" \
    --cpu "$(delta "$c0" "$c1")" "$(client_s "$out.cpu")" --requests "$requests" \
    <"$out" >>"$RESULTS" || fail "redis-benchmark output against $side (see $out)"
  summary "${map##*=} $side r$round"
}

# run_lg WORKLOAD SIDE ROUND METRIC NAMES LOADGEN-ARGS...
run_lg() {
  local w=$1 side=$2 round=$3 metric=$4 names=$5; shift 5
  local first=${names%%,*} servers=${names//,/ }
  local out=$OUT/logs/lg-$w-$side-$round.json
  local c0 c1
  c0=$(cpu_s $servers)
  if ! timed "$out.cpu" "$LOADGEN" --port "${PORT[$first]}" --quiet "$@" >"$out" 2>"$out.err"; then
    fail "loadgen $* against $side: $(head -c 300 "$out.err") $(head -c 300 "$out")"; return 0
  fi
  c1=$(cpu_s $servers)
  "$REPORT" loadgen "$w" "$side" "$round" "$(rss_kb $servers)" "$metric" \
    --cpu "$(delta "$c0" "$c1")" "$(client_s "$out.cpu")" <"$out" >>"$RESULTS" ||
    fail "loadgen result of $w against $side (see $out)"
  summary "$w $side r$round"
}

summary() {  # WHAT: the last record, briefly
  tail -n 1 "$RESULTS" | awk -F'\t' -v what="$1" \
    '{printf "   %-28s %12.2f %-7s p50 %-7s p99 %-7s rss %6.0f MiB  cpu us/op server %s client %s\n",
      what, $4, $5, $7, $8, $9 / 1024, $10, $11}' >&2
}

kv_sides=()
for v in $IO_THREADS; do kv_sides+=("kvpool-io$v"); done

# Starts redis + one kvpool per io-threads variant as "redis", "kvpool-ioN".
start_sides() {
  start_single redis redis || return 1
  local v
  for v in $IO_THREADS; do start_single "kvpool-io$v" kvpool --io-threads "$v" || return 1; done
}
stop_sides() { stop redis "${kv_sides[@]}"; }

# ---------------------------------------------------------------- workloads
LG_BATCH=(--clients 16 --threads 2 --pipeline 1 --key-count 10000 --value-size 4096 --seed 1)

w1() {
  meta_workload 1-get "GET, 50 clients, pipeline 16, 3 B values (redis-benchmark)" ">=" 1.3 yes
  meta_workload 1-set "SET, 50 clients, pipeline 16, 3 B values (redis-benchmark)" ">=" 1.3 yes
  for s in "${kv_sides[@]}"; do meta_row 1-get "$s" redis; meta_row 1-set "$s" redis; done
  start_sides || { fail "workload 1: servers"; stop_sides; return; }
  for r in $(seq "$ROUNDS"); do
    for s in redis "${kv_sides[@]}"; do
      run_rb "$s" "$r" "$s" "$N_P16" SET=1-set -- -t set -P 16 -c 50 -r 100000
      run_rb "$s" "$r" "$s" "$N_P16" GET=1-get -- -t get -P 16 -c 50 -r 100000
    done
  done
  stop_sides
}

w2() {
  meta_workload 2-get "GET, 50 clients, no pipelining (redis-benchmark)" ">=" 1.0 yes
  meta_workload 2-set "SET, 50 clients, no pipelining (redis-benchmark)" ">=" 1.0 yes
  for s in "${kv_sides[@]}"; do meta_row 2-get "$s" redis; meta_row 2-set "$s" redis; done
  start_sides || { fail "workload 2: servers"; stop_sides; return; }
  for r in $(seq "$ROUNDS"); do
    for s in redis "${kv_sides[@]}"; do
      run_rb "$s" "$r" "$s" "$N_P1" SET=2-set -- -t set -c 50 -r 100000
      run_rb "$s" "$r" "$s" "$N_P1" GET=2-get -- -t get -c 50 -r 100000
    done
  done
  stop_sides
}

w3() {
  meta_workload 3 "MSET of 10 keys, 50 clients, pipeline 16 (redis-benchmark)" ">=" 1.3 yes
  for s in "${kv_sides[@]}"; do meta_row 3 "$s" redis; done
  start_sides || { fail "workload 3: servers"; stop_sides; return; }
  for r in $(seq "$ROUNDS"); do
    for s in redis "${kv_sides[@]}"; do
      run_rb "$s" "$r" "$s" "$N_MSET" "MSET (10 keys)=3" -- -t mset -P 16 -c 50 -r 100000
    done
  done
  stop_sides
}

# 4, 5 and 6 share servers and one loaded keyspace (10,000 keys x 4 KiB).
w456() {
  local want=" $* " s do4=0 do5=0 do6=0
  [[ $want == *" 4 "* ]] && do4=1
  [[ $want == *" 5 "* ]] && do5=1
  [[ $want == *" 6 "* ]] && do6=1
  if [ $do4 = 1 ]; then
    meta_workload 4 "MGET of 100 keys x 4 KiB, all present, 16 clients (loadgen)" ">=" 2.0 no
    for s in "${kv_sides[@]}"; do meta_row 4 "$s" redis; done
  fi
  if [ $do5 = 1 ]; then
    meta_workload 5 "MEXISTS of 100 keys, half present, vs redis EXISTS of the same (loadgen)" \
      ">=" 1.0 no
    meta_workload 5-exists "(info) EXISTS of 100 keys, half present, on both (loadgen)" "-" 0 no
    for s in "${kv_sides[@]}"; do meta_row 5 "$s" redis; meta_row 5-exists "$s" redis; done
  fi
  if [ $do6 = 1 ]; then
    meta_workload 6 "MSET of 100 keys x 4 KiB, 16 clients (loadgen)" ">=" 2.0 no
    for s in "${kv_sides[@]}"; do meta_row 6 "$s" redis; done
  fi
  start_sides || { fail "workloads 4-6: servers"; stop_sides; return; }
  for s in redis "${kv_sides[@]}"; do
    "$LOADGEN" --port "${PORT[$s]}" --quiet --load --duration 0 --command mset \
      "${LG_BATCH[@]}" >"$OUT/logs/load-456-$s.json" || fail "loading keys into $s"
  done
  for r in $(seq "$ROUNDS"); do
    for s in redis "${kv_sides[@]}"; do
      if [ $do4 = 1 ]; then
        run_lg 4 "$s" "$r" ops "$s" --command mget --keys-per-batch 100 \
          --duration "$DURATION" "${LG_BATCH[@]}"
      fi
      if [ $do5 = 1 ]; then
        local cmd=mexists
        [ "$s" = redis ] && cmd=exists
        run_lg 5 "$s" "$r" ops "$s" --command "$cmd" --keys-per-batch 100 --hit-ratio 0.5 \
          --duration "$DURATION" "${LG_BATCH[@]}"
        run_lg 5-exists "$s" "$r" ops "$s" --command exists --keys-per-batch 100 \
          --hit-ratio 0.5 --duration "$DURATION" "${LG_BATCH[@]}"
      fi
      if [ $do6 = 1 ]; then
        run_lg 6 "$s" "$r" ops "$s" --command mset --keys-per-batch 100 \
          --duration "$DURATION" "${LG_BATCH[@]}"
      fi
    done
  done
  stop_sides
}

w7() {
  meta_workload 7 "memory: $MEM_KEYS keys x 100 B, VmRSS after loading (MiB; lower is better)" \
    "<=" 1.0 no
  meta_workload 7-empty "(info) VmRSS of the same servers before loading (MiB)" "-" 0 no
  meta_workload 7-load "(info) loading those keys: pipelined MSET of 2,560 keys, 8 clients" \
    "-" 0 no
  for s in "${kv_sides[@]}"; do
    meta_row 7 "$s" redis; meta_row 7-empty "$s" redis; meta_row 7-load "$s" redis
  done
  local r s out rss
  for r in $(seq "$ROUNDS"); do
    start_sides || { fail "workload 7: servers"; stop_sides; return; }
    for s in redis "${kv_sides[@]}"; do
      rss=$(rss_kb "$s")
      "$REPORT" value 7-empty "$s" "$r" "$(awk -v k="$rss" 'BEGIN{printf "%.1f", k/1024}')" MiB \
        "$rss" >>"$RESULTS"
      out=$OUT/logs/load-7-$s-$r.json
      if "$LOADGEN" --port "${PORT[$s]}" --quiet --load --duration 0 --command mset \
          --key-count "$MEM_KEYS" --value-size 100 --clients 8 --threads 2 --seed 7 >"$out"; then
        sleep 1
        rss=$(rss_kb "$s")
        "$REPORT" value 7 "$s" "$r" "$(awk -v k="$rss" 'BEGIN{printf "%.1f", k/1024}')" MiB \
          "$rss" >>"$RESULTS"
        summary "7 $s r$r"
        local keys_s
        keys_s=$(sed -n 's/.*"load_keys":\([0-9]*\).*"load_seconds":\([0-9.]*\).*/\1 \2/p' "$out" |
                 awk '{ if ($2 > 0) printf "%.0f", $1 / $2; else print "-" }')
        "$REPORT" value 7-load "$s" "$r" "$keys_s" keys/s "$rss" >>"$RESULTS"
      else
        fail "loading $MEM_KEYS keys into $s"
      fi
    done
    stop_sides
  done
}

w8() {
  meta_workload 8 "pool of 3 nodes vs 1 node: workload 4 sent to one node, keys on all three" \
    ">=" 0.5 no
  local v r
  for v in $IO_THREADS; do meta_row 8 "pool3-io$v" "single-io$v"; done
  for v in $IO_THREADS; do
    start_single "single-io$v" kvpool --io-threads "$v" || { fail "workload 8: single"; continue; }
    if ! start_pool "p8-io$v-" 3 "$v"; then fail "workload 8: pool"; stop "single-io$v"; continue; fi
    "$LOADGEN" --port "${PORT[single-io$v]}" --quiet --load --duration 0 --command mset \
      "${LG_BATCH[@]}" >/dev/null || fail "loading single-io$v"
    "$LOADGEN" --port "${PORT[p8-io$v-1]}" --quiet --load --duration 0 --command mset \
      "${LG_BATCH[@]}" >/dev/null || fail "loading pool3-io$v"
    for r in $(seq "$ROUNDS"); do
      run_lg 8 "single-io$v" "$r" ops "single-io$v" --command mget --keys-per-batch 100 \
        --duration "$DURATION" "${LG_BATCH[@]}"
      run_lg 8 "pool3-io$v" "$r" ops "p8-io$v-1,p8-io$v-2,p8-io$v-3" --command mget \
        --keys-per-batch 100 --duration "$DURATION" "${LG_BATCH[@]}"
    done
    stop "single-io$v" "p8-io$v-1" "p8-io$v-2" "p8-io$v-3"
  done
}

w9() {
  meta_workload 9 "MGET 8 x 1 MiB, all held by node B, asked of node A (Gbit/s of values) vs iperf3" \
    ">=" 0.5 no
  meta_workload 9-local "(info) the same MGET of one node holding the values itself" "-" 0 no
  local v r
  for v in $IO_THREADS; do meta_row 9 "pool2-io$v" iperf3; meta_row 9-local "single-io$v" iperf3; done
  local LG9=(--command mget --keys-per-batch 8 --key-count 32 --value-size 1m --clients 4
             --threads 2 --pipeline 1 --seed 9)
  for v in $IO_THREADS; do
    start_pool "p9-io$v-" 2 "$v" || { fail "workload 9: pool"; continue; }
    start_single "single9-io$v" kvpool --io-threads "$v" || { fail "workload 9: single"; continue; }
  done
  for r in $(seq "$ROUNDS"); do
    local ip
    ip=$(free_ports 1)
    iperf3 -s -1 -p "$ip" -B 127.0.0.1 >"$OUT/logs/iperf3-server-$r.log" 2>&1 &
    local ipid=$!
    STARTED+=("$ipid")
    sleep 0.5
    if iperf3 -c 127.0.0.1 -p "$ip" -t "$IPERF_SECONDS" -J >"$OUT/logs/iperf3-$r.json" 2>&1; then
      "$REPORT" iperf 9 iperf3 "$r" <"$OUT/logs/iperf3-$r.json" >>"$RESULTS" || fail "iperf3 output"
      awk -F'\t' -v r="$r" '$2 == "iperf3" && $3 == r {OFS="\t"; $1 = "9-local"; print}' \
        "$RESULTS" | tail -n 1 >>"$RESULTS"
      summary "9 iperf3 r$r"
    else
      fail "iperf3 (see $OUT/logs/iperf3-$r.json)"
    fi
    kill -TERM "$ipid" 2>/dev/null || true
    wait "$ipid" 2>/dev/null || true
    forget "$ipid"
    for v in $IO_THREADS; do
      [ -n "${PID[p9-io$v-1]:-}" ] || continue
      if [ "$r" = 1 ]; then
        "$LOADGEN" --port "${PORT[p9-io$v-1]}" --quiet --load --duration 0 \
          --keys-owned-by "127.0.0.1:${PORT[p9-io$v-2]}" "${LG9[@]}" >/dev/null ||
          fail "loading pool2-io$v"
        "$LOADGEN" --port "${PORT[single9-io$v]}" --quiet --load --duration 0 "${LG9[@]}" \
          >/dev/null || fail "loading single-io$v"
      fi
      run_lg 9 "pool2-io$v" "$r" gbit "p9-io$v-1,p9-io$v-2" \
        --keys-owned-by "127.0.0.1:${PORT[p9-io$v-2]}" --duration "$DURATION" "${LG9[@]}"
      run_lg 9-local "single-io$v" "$r" gbit "single9-io$v" --duration "$DURATION" "${LG9[@]}"
    done
  done
  for v in $IO_THREADS; do
    stop "p9-io$v-1" "p9-io$v-2" "single9-io$v"
  done
}

# ------------------------------------------------------------------- main
START=$(date +%s)
{
  echo "# kvpool vs redis-server, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "# cores: $(nproc); cpu: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
  dirty=$(git -C "$ROOT" status --porcelain -- protocol server storage CMakeLists.txt 2>/dev/null |
          grep -c . || true)
  echo "# kernel: $(uname -r); $(redis-server --version | cut -d' ' -f1-3); kvpool tree $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$([ "${dirty:-0}" = 0 ] || echo " + $dirty uncommitted file(s) in protocol/ server/ storage/"); kvpool-server built $(date -u -r "$KVPOOL" '+%Y-%m-%d %H:%M UTC')"
  echo "# rounds: $ROUNDS; loadgen duration: ${DURATION}s; kvpool io-threads: $IO_THREADS; maxmemory $MAXMEMORY $POLICY"
  [ ${#KV_ENV[@]} -eq 0 ] || echo "# EXPERIMENT: kvpool ran with environment ${KV_ENV[*]}"
  echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/header.md"
cat "$OUT/header.md" >&2
cp "$OUT/header.md" "$RESULTS"

ran456=()
for w in $WORKLOADS; do
  case $w in
    4|5|6) ran456+=("$w"); continue ;;
  esac
done
for w in $WORKLOADS; do
  case $w in
    4|5|6)
      [ ${#ran456[@]} -gt 0 ] || continue
      echo "== workloads ${ran456[*]}  ($(( $(date +%s) - START ))s)" >&2
      w456 "${ran456[@]}"
      ran456=() ;;
    *)
      echo "== workload $w  ($(( $(date +%s) - START ))s)" >&2
      "w$w" ;;
  esac
done
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg); took $(( $(date +%s) - START ))s" \
  >>"$OUT/header.md"

"$REPORT" table "$RESULTS" >"$OUT/table.md"
{
  cat "$OUT/header.md"
  echo
  cat "$OUT/table.md"
} >"$OUT/summary.md"
echo
cat "$OUT/summary.md"
echo
echo "records: $RESULTS   logs: $OUT/logs" >&2
if [ "$FAILED" -gt 0 ]; then
  echo "run.sh: $FAILED step(s) failed; their rows are missing or short of rounds" >&2
  exit 1
fi
