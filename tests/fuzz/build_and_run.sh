#!/usr/bin/env bash
# Builds the RESP parser fuzzer with libFuzzer + ASan + UBSan (clang-14) and
# runs it on a scratch copy of the seed corpus, so the committed corpus only
# changes when someone adds to it on purpose.
#
# Usage, from the repo root:   tests/fuzz/build_and_run.sh <build-dir>
#   FUZZ_SECONDS  run time in seconds (default 60)
#   FUZZ_JOBS     parallel fuzzing jobs (default 1)
# Exits non-zero on a build failure or any crash, leak, hang, OOM or
# invariant violation; the reproducer is left in <build-dir>/artifacts/.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 <build-dir>" >&2
  exit 2
fi
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
mkdir -p "$1"
build_dir="$(cd "$1" && pwd)"
seconds="${FUZZ_SECONDS:-60}"
jobs="${FUZZ_JOBS:-1}"
fuzzer="${build_dir}/resp_parser_fuzz"

echo "== building ${fuzzer}"
# -fno-sanitize-recover makes UBSan findings fatal, like ASan's.
clang++-14 -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
  -I"${repo_root}" \
  "${repo_root}/protocol/resp_parser.cc" \
  "${repo_root}/tests/fuzz/resp_parser_fuzz.cc" \
  -o "${fuzzer}"

corpus="${build_dir}/corpus/resp_parser"
artifacts="${build_dir}/artifacts"
rm -rf "${corpus}"
mkdir -p "${corpus}" "${artifacts}"
cp "${repo_root}/tests/fuzz/corpus/resp_parser/"* "${corpus}/"

echo "== fuzzing for ${seconds}s (jobs=${jobs})"
args=(
  -max_total_time="${seconds}"
  -timeout=10
  -rss_limit_mb=2048
  -error_exitcode=1
  -timeout_exitcode=1
  -print_final_stats=1
  -dict="${repo_root}/tests/fuzz/resp.dict"
  -artifact_prefix="${artifacts}/"
)
if [[ "${jobs}" -gt 1 ]]; then
  args+=(-fork="${jobs}" -ignore_crashes=0 -ignore_timeouts=0 -ignore_ooms=0)
fi
# libFuzzer exits 0 only if the time ran out with nothing found.
status=0
"${fuzzer}" "${args[@]}" "${corpus}" || status=$?
if [[ ${status} -ne 0 ]]; then
  echo "== FAILED (exit ${status}); reproducers in ${artifacts}:" >&2
  ls -l "${artifacts}" >&2 || true
  exit 1
fi
echo "== OK: no crash, leak, hang or invariant violation in ${seconds}s"
