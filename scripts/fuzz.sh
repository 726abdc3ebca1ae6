#!/bin/sh
# fuzz.sh — what `make fuzz` runs after building: the seed corpora (tests/fuzz/make_corpus.c),
# then every target for FUZZ_RUNS executions under ASan+UBSan, one after the other, with a
# working corpus kept in build/ between runs. A crash, a sanitizer report, a leak, a timeout
# (10 s per input), a process over 2 GiB or a single allocation over 256 MiB stops a target and
# saves the input under FUZZ_BUILD/findings/<target>/; the script then fails. Inputs of past
# findings, tests/fuzz/regressions/<target>/, are part of every run's corpus.
#   FUZZ_RUNS=1000000 scripts/fuzz.sh        FUZZ_TARGETS="gzip idx" scripts/fuzz.sh
# Prints a Markdown table: target, executions, seconds, executions/s, corpus, findings.
set -u
cd "$(dirname "$0")/.." || exit 2
b=${FUZZ_BUILD:-build/fuzz-clang/fuzz}
runs=${FUZZ_RUNS:-100000}
targets=${FUZZ_TARGETS:-"gzip inflate idx cifar checkpoint intmodel options"}
"$b/make_corpus" "$b/seeds" >/dev/null || { echo "fuzz.sh: error: make_corpus failed" >&2; exit 1; }
status=0
printf '| target | executions | seconds | exec/s | corpus files | findings |\n|---|---|---|---|---|---|\n'
for t in $targets; do
  mkdir -p "$b/corpus/$t" "$b/findings/$t"
  log="$b/$t.log"
  start=$(date +%s)
  regress=""; [ -d "tests/fuzz/regressions/$t" ] && regress="tests/fuzz/regressions/$t"  # past findings
  "$b/fuzz_$t" -runs="$runs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$b/findings/$t/" "$b/corpus/$t" "$b/seeds/$t" $regress >"$log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  found=$(find "$b/findings/$t" -type f | wc -l)
  files=$(find "$b/corpus/$t" -type f | wc -l)
  printf '| %s | %s | %s | %s | %s | %s |\n' "$t" "${execs:-?}" "$secs" "${rate:-?}" "$files" "$found"
  if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then
    echo "fuzz.sh: error: fuzz_$t failed (exit $rc); the log is $log, inputs in $b/findings/$t/" >&2
    grep -m 5 -E "ERROR|SUMMARY|runtime error|Test unit written" "$log" >&2
    status=1
  fi
done
exit $status
