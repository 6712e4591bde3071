# What bench/hotkey_cpu.sh, replica_cost.sh and cluster_cost.sh share (sourced, not run):
# their common options, the median of a list, the CPU time of processes, and
# starting a pool of three nodes.
#
# The script sets ROUNDS, REQUESTS, SERVER and LOAD (its defaults) and may
# define sbs_extra_option OPT VALUE (return 0 if it took the option and its
# value) before it calls sbs_parse "$@".

die() { echo "$(basename "$0"): $*" >&2; exit 2; }

# --rounds N, --requests N, --server PATH, -- REDIS-BENCHMARK-ARGS..., --help;
# then checks them and the redis tools the scripts run.
sbs_parse() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --rounds) ROUNDS=${2:?}; shift 2 ;;
      --requests) REQUESTS=${2:?}; shift 2 ;;
      --server) SERVER=${2:?}; shift 2 ;;
      --) shift; LOAD=("$@"); break ;;
      -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
      *)
        if [ $# -ge 2 ] && declare -F sbs_extra_option >/dev/null && sbs_extra_option "$1" "$2"; then
          shift 2
        else
          die "unknown option $1 (try --help)"
        fi ;;
    esac
  done
  [[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer"
  [[ $REQUESTS =~ ^[1-9][0-9]*$ ]] || die "--requests must be a positive integer"
  [ -x "$SERVER" ] || die "$SERVER is not built (ninja -C build kvpool-server)"
  local t
  for t in redis-server redis-benchmark redis-cli; do command -v $t >/dev/null || die "no $t"; done
}

# Numbers, one per word or line on stdin -> their median.
median() {
  tr ' ' '\n' | grep . | sort -g |
    awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

# PIDS... -> CPU ticks (user + system, all threads) they used so far, summed.
cpu_ticks() {
  local t=0 p
  for p in "$@"; do t=$((t + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12 + $13}'))); done
  echo "$t"
}
HZ=$(getconf CLK_TCK)

# Client ports from 20000, pool ports (+10000) from 30000: both below the
# ephemeral range (32768 up), where a client's socket may hold a port a
# moment after a probe found it free.
next_port=$(( 20000 + RANDOM % 2000 ))
free_port() {  # -> $next_port: one nothing answers on, nor on its +10000 (the pool port)
  while :; do
    next_port=$((next_port + 1))
    redis-cli -p "$next_port" ping >/dev/null 2>&1 && continue
    redis-cli -p "$((next_port + 10000))" ping >/dev/null 2>&1 && continue
    return 0
  done
}
wait_pong() {  # PORT PID: 0 once it answers, 1 if it exited or never did
  for _ in $(seq 100); do
    [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ] && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# SIDE REPLICAS [SERVER-ARGS...]: three nodes forming one pool; new ports and
# again if one fails to start. Sets PIDS[SIDE] (space separated), PORT[SIDE]
# (node 1's client port) and PORTS[SIDE] (every node's); needs LOGS, ALL,
# SERVER and the arrays declared by the caller.
start_pool() {
  local side=$1 replicas=$2 attempt i ok
  shift 2
  for attempt in 1 2 3; do
    local ports=() pids=() spec=""
    for i in 1 2 3; do
      free_port
      ports+=("$next_port")
      spec+="127.0.0.1:$next_port "
    done
    for i in 0 1 2; do
      "$SERVER" --bind 127.0.0.1 --port "${ports[$i]}" --pool-nodes "${spec% }" \
        --pool-secret "side-by-side-$$" --pool-replicas "$replicas" "$@" \
        >"$LOGS/$side-$((i + 1)).log" 2>&1 &
      ALL+=($!)
      pids+=($!)
    done
    ok=1
    for i in 0 1 2; do wait_pong "${ports[$i]}" "${pids[$i]}" || ok=0; done
    if [ $ok = 0 ]; then
      kill "${pids[@]}" 2>/dev/null || true
      echo "$(basename "$0"): pool $side, attempt $attempt: a node did not start (see $LOGS)" >&2
      continue
    fi
    PIDS[$side]="${pids[*]}"
    PORT[$side]=${ports[0]}
    PORTS[$side]="${ports[*]}"
    # Every node up (and, with replicas, in sync) before the load.
    for _ in $(seq 300); do
      local info
      info=$(redis-cli -p "${ports[0]}" info pool | tr -d '\r')
      if grep -qx 'pool_nodes_up:3' <<<"$info" &&
         { [ "$replicas" = 1 ] || grep -qx 'pool_sync_state:in_sync' <<<"$info"; }; then
        return 0
      fi
      sleep 0.1
    done
    die "pool $side did not come up (see $LOGS)"
  done
  die "pool $side: its nodes did not start in 3 attempts (see $LOGS)"
}

# ROUND SIDE TEST PIDS -- REDIS-BENCHMARK-ARGS...: runs redis-benchmark
# (-n $REQUESTS, $LOAD, -t TEST, --csv) with the given arguments, measures
# the CPU the processes PIDS (space separated) spent meanwhile, appends the
# requests per second and server CPU per request to RPS[SIDE,TEST] and
# CPU[SIDE,TEST] (arrays the caller declares) and prints the run.
sbs_run() {
  local r=$1 s=$2 t=$3 pids=$4 t0 t1 rps us
  shift 5
  # shellcheck disable=SC2086
  t0=$(cpu_ticks $pids)
  rps=$(redis-benchmark "$@" -n "$REQUESTS" "${LOAD[@]}" -t "$t" --csv |
        awk -F'"' -v t="${t^^}" '$2 == t || index($2, t " (") == 1 {print $4}')
  # shellcheck disable=SC2086
  t1=$(cpu_ticks $pids)
  [ -n "$rps" ] || die "redis-benchmark $s $t gave no result (see $LOGS)"
  us=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="$REQUESTS" 'BEGIN {printf "%.2f", d / hz * 1e6 / n}')
  RPS[$s,$t]="${RPS[$s,$t]:-} $rps"
  CPU[$s,$t]="${CPU[$s,$t]:-} $us"
  printf "round %d  %-8s %-5s %10s req/s  server cpu %7s us/req\n" "$r" "$s" "$t" "$rps" "$us"
}

# NAME: a log directory /tmp/NAME.XXXXXX in LOGS, the arrays the functions
# here fill (PIDS, PORT, PORTS per side: its pids, the port the load goes
# to, every node's port; RPS, CPU per side,test: each round's values), and
# every process started (ALL) stopped on exit.
sbs_setup() {
  LOGS=$(mktemp -d "/tmp/$1.XXXXXX")
  declare -gA PIDS PORT PORTS RPS CPU
  ALL=()
  trap 'for p in "${ALL[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
}
