#!/bin/sh
# check-variants.sh — ./exp_<name> is always the build variant asked for last: after
# `make exp_lenet SAN=1` it carries AddressSanitizer, after a plain `make exp_lenet` it does not
# (once it silently stayed the sanitizer build). Also: a plain `make` compiles with gcc, not the
# `cc` that make presets. Run by .ci/run; needs both variants' libraries (it builds them if not).
set -eu
cd "$(dirname "$0")/.."
has_asan() { nm "$1" 2>/dev/null | grep -q __asan_init; }
make -s exp_lenet SAN=1 >/dev/null
has_asan exp_lenet || { echo "check-variants.sh: error: exp_lenet is not the SAN=1 build after make exp_lenet SAN=1" >&2; exit 1; }
make -s exp_lenet >/dev/null
if has_asan exp_lenet; then echo "check-variants.sh: error: exp_lenet is still the SAN=1 build after a plain make exp_lenet" >&2; exit 1; fi
cc=$(make -s -n -W core/tensor.c build/release/core/tensor.o V=1 | awk '/ -c core\/tensor.c/ {print $1; exit}')
[ "$cc" = gcc ] || { echo "check-variants.sh: error: the default compiler is '$cc', expected gcc" >&2; exit 1; }
echo "check-variants.sh: the root binary follows the variant; the default compiler is gcc"
