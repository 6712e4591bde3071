#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer + ASan + UBSan (clang-14) and runs
# each on a scratch copy of its seed corpus, so the committed corpora only
# change when someone adds to them on purpose. Targets:
#   resp_parser_fuzz  protocol::RequestParser (client requests)
#   peer_frame_fuzz   node-to-node frame header, handshake (auth.h) and RDMA
#                     wire decoders
#   peer_owner_fuzz   the pool's owner side: arbitrary calls from a peer run
#                     against a real Pool + Store over the in-memory transport
#   reply_reader_fuzz the native client's reply reader (clients/cpp): what a
#                     node, or anything posing as one, answers
#
# Usage, from the repo root:   tests/fuzz/build_and_run.sh <build-dir>
#   FUZZ_SECONDS  run time in seconds, per target (default 60)
#   FUZZ_JOBS     parallel fuzzing jobs (default 1)
#   FUZZ_TARGETS  which targets, space separated (default: all four)
#   FUZZ_BUILD_ONLY=1  build the targets, run nothing
#   FUZZ_PREBUILT=1    run the targets as built (by FUZZ_BUILD_ONLY=1) before
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
targets="${FUZZ_TARGETS:-resp_parser_fuzz peer_frame_fuzz peer_owner_fuzz reply_reader_fuzz}"
artifacts="${build_dir}/artifacts"
mkdir -p "${artifacts}"

# -fno-sanitize-recover makes UBSan findings fatal, like ASan's.
cxxflags=(-std=c++20 -O1 -g -fno-sanitize-recover=undefined -fno-omit-frame-pointer
          -I"${repo_root}")
# spdlog/fmt as the CMake build uses them (shared, external fmt).
spdlog_defs=(-DFMT_SHARED -DSPDLOG_COMPILED_LIB -DSPDLOG_FMT_EXTERNAL -DSPDLOG_SHARED_LIB)

build_resp_parser_fuzz() {
  clang++-14 "${cxxflags[@]}" -fsanitize=fuzzer,address,undefined \
    "${repo_root}/protocol/resp_parser.cc" \
    "${repo_root}/tests/fuzz/resp_parser_fuzz.cc" \
    -o "${build_dir}/resp_parser_fuzz"
}

build_peer_frame_fuzz() {
  clang++-14 "${cxxflags[@]}" -fsanitize=fuzzer,address,undefined \
    "${repo_root}/storage/transport/wire.cc" \
    "${repo_root}/storage/transport/auth.cc" \
    "${repo_root}/storage/transport/rdma_wire.cc" \
    "${repo_root}/storage/util/crypto.cc" \
    "${repo_root}/tests/fuzz/peer_frame_fuzz.cc" \
    -lcrypto -o "${build_dir}/peer_frame_fuzz"
}

build_reply_reader_fuzz() {
  clang++-14 "${cxxflags[@]}" -fsanitize=fuzzer,address,undefined \
    -I"${repo_root}/clients/cpp/include" -I"${repo_root}/clients/cpp/src" \
    "${repo_root}/clients/cpp/src/reply_reader.cc" \
    "${repo_root}/tests/fuzz/reply_reader_fuzz.cc" \
    -o "${build_dir}/reply_reader_fuzz"
}

# Store + Pool + fake transport: ~20 files, compiled in parallel to objects.
build_peer_owner_fuzz() {
  local objdir="${build_dir}/peer_owner_obj"
  rm -rf "${objdir}"
  mkdir -p "${objdir}"
  local srcs=()
  local f
  for f in "${repo_root}"/storage/segment/*.cc "${repo_root}"/storage/pool/*.cc; do
    case "${f}" in *_test.cc|*_bench.cc) continue ;; esac
    srcs+=("${f}")
  done
  srcs+=("${repo_root}/storage/transport/fake_transport.cc"
         "${repo_root}/storage/transport/bulk_out.cc"
         "${repo_root}/storage/transport/transport_common.cc"
         "${repo_root}/storage/util/digest.cc"
         "${repo_root}/tests/fuzz/peer_owner_fuzz.cc")
  # The target's own file gets the fuzzer's entry points; the library code
  # only its coverage instrumentation.
  printf '%s\n' "${srcs[@]}" | xargs -P "$(nproc)" -I{} sh -c '
    src="$1"; shift; out="$1"; shift
    case "${src}" in */tests/fuzz/*) san=fuzzer ;; *) san=fuzzer-no-link ;; esac
    clang++-14 "$@" -fsanitize=${san},address,undefined -c "${src}" \
      -o "${out}/$(echo "${src}" | tr / _).o"' _ {} "${objdir}" "${cxxflags[@]}" "${spdlog_defs[@]}"
  clang++-14 -fsanitize=fuzzer,address,undefined "${objdir}"/*.o \
    -levent_core -levent_pthreads -lspdlog -lfmt -lpthread \
    -o "${build_dir}/peer_owner_fuzz"
}

# Corpus directory and dictionary (if any) of each target.
corpus_of() {
  case "$1" in
    resp_parser_fuzz) echo resp_parser ;;
    peer_frame_fuzz) echo peer_frame ;;
    peer_owner_fuzz) echo peer_owner ;;
    reply_reader_fuzz) echo reply_reader ;;
  esac
}
dict_of() {
  case "$1" in
    resp_parser_fuzz) echo "${repo_root}/tests/fuzz/resp.dict" ;;
    *) echo "" ;;
  esac
}

failed=()
for target in ${targets}; do
  case "${target}" in
    resp_parser_fuzz|peer_frame_fuzz|peer_owner_fuzz|reply_reader_fuzz) ;;
    *) echo "unknown fuzz target '${target}'" >&2; exit 2 ;;
  esac
  fuzzer="${build_dir}/${target}"
  if [[ "${FUZZ_PREBUILT:-0}" != 1 || ! -x "${fuzzer}" ]]; then
    echo "== building ${fuzzer}"
    "build_${target}"
  fi
  if [[ "${FUZZ_BUILD_ONLY:-0}" == 1 ]]; then
    continue
  fi

  corpus="${build_dir}/corpus/$(corpus_of "${target}")"
  rm -rf "${corpus}"
  mkdir -p "${corpus}"
  cp "${repo_root}/tests/fuzz/corpus/$(corpus_of "${target}")/"* "${corpus}/"

  echo "== fuzzing ${target} for ${seconds}s (jobs=${jobs})"
  args=(
    -max_total_time="${seconds}"
    -timeout=10
    -rss_limit_mb=2048
    -error_exitcode=1
    -timeout_exitcode=1
    -print_final_stats=1
    -artifact_prefix="${artifacts}/${target}-"
  )
  dict="$(dict_of "${target}")"
  if [[ -n "${dict}" ]]; then
    args+=(-dict="${dict}")
  fi
  if [[ "${jobs}" -gt 1 ]]; then
    args+=(-fork="${jobs}" -ignore_crashes=0 -ignore_timeouts=0 -ignore_ooms=0)
  fi
  # libFuzzer exits 0 only if the time ran out with nothing found.
  status=0
  "${fuzzer}" "${args[@]}" "${corpus}" || status=$?
  if [[ ${status} -ne 0 ]]; then
    echo "== ${target} FAILED (exit ${status}); reproducers in ${artifacts}:" >&2
    ls -l "${artifacts}" >&2 || true
    failed+=("${target}")
  else
    echo "== ${target} OK: no crash, leak, hang or invariant violation in ${seconds}s"
  fi
done

if [[ ${#failed[@]} -ne 0 ]]; then
  echo "== FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "== OK: ${targets}"
