#!/bin/sh
# check-initializers.sh — struct literals with more than two fields name their fields
# (`(Conv2dArgs){.stride = 1, .pad = 1, .groups = 1}`), so adding or reordering a field can never
# shift values silently (a positional literal once reset the gradient checker's `skipped`).
# Flags compound literals and initialised declarations of a CamelCase type whose first element is
# positional; types of one or two fields are listed below and may stay positional, and arrays of
# enum constants (`DdqPhase p[3] = {DDQ_PHASE_WARMUP, …}`) are not structs.
set -u
cd "$(dirname "$0")/.." || exit 2
small='MaxSaved|ShortcutSaved|TapeOp|LayerFactory|GradLink|DdqSaved|BaseSaved|ConvSaved|QHooks|Toggled|ConvCtx|ModelCtx|CeCtx|DropCtx|NetCtx|Bits|PoolCtx'
files=$(ls core/*.[ch] nn/*.[ch] quant/*.[ch] data/*.[ch] train/*.[ch] experiments/*.[ch] tests/*.[ch] tests/fuzz/*.[ch] bench/*.c 2>/dev/null)
hits=$(grep -nE '\(([A-Z][A-Za-z0-9_]*)\)\{[^.}]|^[[:space:]]*(static )?(const )?[A-Z][A-Za-z0-9_]* [A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])* = \{\{?[[:space:]]*[^.{}/[:space:]]' $files |
  grep -vE '\)\{0\}|= \{0\}|= \{\{0\}\}|= \{[a-z_]+\(|\] = \{[A-Z][A-Z0-9_]*[,}]' | grep -vE "\(($small)\)\{|^[^:]*:[0-9]+:[[:space:]]*(static )?(const )?($small) ")
if [ -n "$hits" ]; then
  echo "$hits" | sed 's/^/check-initializers: error: positional struct literal: /' >&2
  exit 1
fi
