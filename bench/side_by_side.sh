# What bench/hotkey_cpu.sh and bench/replica_cost.sh share (sourced, not run):
# their common options, the median of a list, and the CPU time of processes.
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
