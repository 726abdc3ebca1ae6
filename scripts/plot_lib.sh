# plot_lib.sh — shared helpers of the plot scripts that take LABEL=FILE arguments (sourced).
#   plot_check PROG KIND HEADER_RE ARG...   each ARG must be LABEL=FILE, FILE readable, its first
#                                           line matching HEADER_RE; else a one-line error, exit
#   plot_runs ARG...                        every FILE's rows after its header, each file preceded
#                                           by a line "#run LABEL" (what the awk programs read)

plot_check() {
  prog=$1; kind=$2; header=$3; shift 3
  for arg in "$@"; do
    case "$arg" in *=*) ;; *) echo "$prog: error: '$arg' is not LABEL=$kind" >&2; exit 2 ;; esac
    f=${arg#*=}
    [ -r "$f" ] || { echo "$f: error: cannot read the file" >&2; exit 1; }
    head -1 "$f" | grep -q "$header" || { echo "$f: error: not a $kind (header differs)" >&2; exit 1; }
  done
}

plot_runs() {
  for arg in "$@"; do
    printf '#run %s\n' "${arg%%=*}"
    tail -n +2 "${arg#*=}"
  done
}
