#!/bin/sh
# run-tests.sh — run each Criterion test binary, print a summary, fail if any failed.
# Under SAN=1 a leak report fails the binary too (Criterion does not see a child's leak exit).
set -u
failed=""
log=$(mktemp)
for t in "$@"; do
  printf '== %s\n' "$(basename "$t")"
  "$t" --jobs=2 --short-filename >"$log" 2>&1
  status=$?
  cat "$log"
  if [ $status -ne 0 ] || grep -q "ERROR: LeakSanitizer" "$log"; then failed="$failed $(basename "$t")"; fi
done
rm -f "$log"
if [ -n "$failed" ]; then
  echo "run-tests.sh: error: failing test binaries:$failed" >&2
  exit 1
fi
echo "run-tests.sh: all $# test binaries passed"
