#!/usr/bin/env bash
# no_rdma_needed.sh SERVER PLUGIN
# kvpool-server must not need libibverbs or librdmacm (a TCP-only node starts
# on a machine without them); the RDMA plugin it dlopens for `transport rdma`
# must need both (which also proves this check can see them). Looks at the
# direct needs (readelf -d NEEDED) and at everything the loader would map
# (ldd), so a dependency pulled in through another library fails too.
set -euo pipefail
server=$1
plugin=$2
fail=0
for tool in readelf ldd; do
  if ! command -v "$tool" >/dev/null; then
    echo "FAIL: $tool is not installed (binutils / libc-bin)"
    exit 1
  fi
done
needed() { readelf -d "$1" | awk '/\(NEEDED\)/ {print $NF}' | tr -d '[]'; }

server_needed=$(needed "$server")
if [ -z "$server_needed" ]; then
  echo "FAIL: readelf found no NEEDED entries in $server"
  exit 1
fi
if grep -E 'libibverbs|librdmacm' <<<"$server_needed"; then
  echo "FAIL: $server lists the RDMA libraries above as NEEDED"
  fail=1
fi
server_ldd=$(ldd "$server")
if grep -E 'libibverbs|librdmacm' <<<"$server_ldd"; then
  echo "FAIL: $server loads the RDMA libraries above (ldd)"
  fail=1
fi

plugin_needed=$(needed "$plugin")
for lib in libibverbs librdmacm; do
  if ! grep -q "$lib" <<<"$plugin_needed"; then
    echo "FAIL: $plugin does not list $lib as NEEDED:"
    echo "$plugin_needed"
    fail=1
  fi
done
if [ "$fail" = 0 ]; then
  echo "ok: $(basename "$server") needs: $(echo $server_needed)"
  echo "ok: $(basename "$plugin") needs libibverbs and librdmacm"
fi
exit "$fail"
