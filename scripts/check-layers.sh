#!/bin/sh
# check-layers.sh — dependencies point down: core <- nn <- quant; core <- data; train uses
# core, nn, data. Prints each offending #include and exits 1 if there is one.
set -u
cd "$(dirname "$0")/.." || exit 2
status=0
check() {  # module, then the modules it must not include
  mod=$1; shift
  for bad in "$@"; do
    hits=$(grep -nE "#include *\"(\.\./)?$bad/" "$mod"/*.[ch] 2>/dev/null)
    if [ -n "$hits" ]; then
      echo "$hits" | sed "s|^|check-layers: error: $mod must not include $bad: |" >&2
      status=1
    fi
  done
}
check core nn quant data train experiments
check nn quant data train experiments
check data nn quant train experiments
check quant data train experiments
check train quant experiments
exit $status
