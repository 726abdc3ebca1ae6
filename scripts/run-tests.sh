#!/bin/sh
# run-tests.sh — run each Criterion test binary, print a summary, fail if any failed.
set -u
failed=""
for t in "$@"; do
  printf '== %s\n' "$(basename "$t")"
  if ! "$t" --jobs=2 --short-filename; then failed="$failed $(basename "$t")"; fi
done
if [ -n "$failed" ]; then
  echo "run-tests.sh: error: failing test binaries:$failed" >&2
  exit 1
fi
echo "run-tests.sh: all $# test binaries passed"
