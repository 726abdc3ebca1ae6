#!/bin/sh
# ensure-deps.sh — install what a make target needs, or say in one line how to.
#   scripts/ensure-deps.sh criterion   Criterion headers and library (libcriterion-dev)
#   scripts/ensure-deps.sh dataset     Fashion-MNIST (dataset-fashion-mnist)
#   scripts/ensure-deps.sh clang       clang with its sanitizer and libFuzzer runtimes (make fuzz, CI)
#   scripts/ensure-deps.sh onnxruntime Node.js (nodejs, npm) and ONNX Runtime from npm into
#                                      scripts/node_modules (tests/test_onnx.c, scripts/onnx_check.js)
# Installs with apt-get as root, or with sudo when it needs no password; otherwise prints the
# command to run and exits 1. Never prompts: CI runs with no standard input.
set -u

want=${1:?usage: scripts/ensure-deps.sh criterion|dataset}
case "$want" in
  criterion) pkg=libcriterion-dev; present() { [ -f /usr/include/criterion/criterion.h ]; } ;;
  dataset)   pkg=dataset-fashion-mnist
             present() { [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; } ;;
  clang)     pkg="clang libclang-rt-14-dev"  # the compiler and its sanitizer/libFuzzer runtimes
             present() { command -v clang >/dev/null 2>&1 && echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' |
                         clang -x c -fsanitize=fuzzer,address,undefined -o /dev/null - >/dev/null 2>&1; } ;;
  onnxruntime)
             pkg="nodejs npm"
             present() { command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; }
             ort() { (cd "$(dirname "$0")/.." && node -e "require('./scripts/node_modules/onnxruntime-node')") >/dev/null 2>&1; } ;;
  *) echo "ensure-deps.sh: error: unknown dependency '$want'" >&2; exit 2 ;;
esac
if [ "$want" = onnxruntime ] && present; then  # the npm package: no root needed, only the network
  ort && exit 0
  echo "ensure-deps.sh: installing onnxruntime-node with npm (scripts/package.json) ..." >&2
  (cd "$(dirname "$0")" && npm install --prefix . --ignore-scripts --no-audit --no-fund </dev/null >&2) && ort && exit 0
  echo "ensure-deps.sh: error: installing onnxruntime-node failed; run: npm install --prefix scripts --ignore-scripts" >&2
  exit 1
fi
present && exit 0

if [ "$(id -u)" = 0 ]; then
  run=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null </dev/null; then
  run="sudo -n"
else
  echo "ensure-deps.sh: error: $pkg is not installed; run: sudo apt-get install -y $pkg" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-deps.sh: error: $pkg is not installed and apt-get is not available; install $pkg by hand" >&2
  exit 1
fi

echo "ensure-deps.sh: installing $pkg with apt-get ..." >&2
export DEBIAN_FRONTEND=noninteractive
$run apt-get install -y -q $pkg </dev/null >/dev/null 2>&1 ||
  { $run apt-get update -q </dev/null >/dev/null 2>&1 && $run apt-get install -y -q $pkg </dev/null >&2; }
if ! present; then
  echo "ensure-deps.sh: error: installing $pkg failed; run: sudo apt-get update && sudo apt-get install -y $pkg" >&2
  exit 1
fi
echo "ensure-deps.sh: $pkg installed" >&2
if [ "$want" = onnxruntime ]; then exec "$0" onnxruntime; fi  # then the npm package
exit 0  # (a last `[ … ] && …` would exit 1 after every other install: make stopped there)
