#!/bin/sh
# check-slots.sh — every thread-pool scratch slot (core/threads.h) has one owner: it is used in
# exactly one source file, the one its comment names, and THREADS_SLOT_TEST only in tests/.
# (Slots once were borrowed across units: a convolution's buffer in the GEMM's slot.)
set -u
cd "$(dirname "$0")/.." || exit 2
status=0
slots=$(sed -n 's/^ *THREADS_SLOT_\([A-Z0-9_]*\),.*/\1/p' core/threads.h)
[ -n "$slots" ] || { echo "check-slots: error: no THREADS_SLOT_ entries found in core/threads.h" >&2; exit 1; }
for s in $slots; do
  files=$(grep -lw "THREADS_SLOT_$s" core/*.c nn/*.c quant/*.c data/*.c train/*.c experiments/*.c bench/*.c 2>/dev/null | grep -v '^core/threads.c$')
  if [ "$s" = TEST ]; then
    [ -z "$files" ] || { echo "check-slots: error: THREADS_SLOT_TEST used outside tests/: $files" >&2; status=1; }
    continue
  fi
  owner=$(sed -n "s|^ *THREADS_SLOT_$s, *// *\([a-z0-9_/]*\.c\):.*|\1|p" core/threads.h)
  n=$(echo "$files" | grep -c .)
  if [ "$n" -ne 1 ]; then
    echo "check-slots: error: THREADS_SLOT_$s is used in $n files ($(echo $files)); give each user its own slot" >&2
    status=1
  elif [ "$(basename "$files")" != "$(basename "$owner")" ]; then
    echo "check-slots: error: THREADS_SLOT_$s is used in $files but core/threads.h names '$owner' as its owner" >&2
    status=1
  fi
done
exit $status
