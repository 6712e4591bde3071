#!/usr/bin/env bash
# server/errors.h says every error text the server sends lives there. This
# check holds it to that: a string literal in a server source (tests and
# their helpers aside) that starts with a Redis error prefix ("ERR ",
# "-ERR", "EXECABORT", ...) fails the test, naming the file and line.
# Also: no reply shows a Status's code name, so nothing may pass
# ToString() of a Status into a reply (Error(... ToString() ...)).
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root"
prefixes='ERR |EXECABORT|NOAUTH|WRONGPASS|WRONGTYPE|NOPROTO|OOM |DENIED|BUSY|NOSCRIPT|LOADING|READONLY'
bad=$(grep -nE "\"-?($prefixes)" server/*.cc server/*.h server/util/*.cc server/util/*.h \
        | grep -vE '^server/errors\.h:' | grep -vE '_test(_util)?\.(cc|h):' | grep -vE ':[0-9]+:\s*//' || true)
bad2=$(grep -nE 'Error\([^;]*ToString\(\)' server/*.cc | grep -vE '_test\.cc:' || true)
if [ -n "$bad$bad2" ]; then
  echo "error texts outside server/errors.h (or a Status name shown to a client):" >&2
  printf '%s\n' "$bad" "$bad2" | sed '/^$/d' >&2
  exit 1
fi
echo "error texts: all in server/errors.h"
