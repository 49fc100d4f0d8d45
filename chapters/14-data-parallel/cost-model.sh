#!/usr/bin/env bash
# Chapter 14's measurements and its cost-model figure, on this machine:
#   1 process  x 1 thread    ch14-data-parallel --threads 1
#   1 process  x 2 threads   ch14-data-parallel --threads 2
#   2 processes x 1 thread   mpirun -np 2 ch14-data-parallel --threads 1
# each for STEPS batches (default 600) of the seed model, then
# ch14-data-parallel --cost-model with their timing lines, which measures the
# gradient of a shard of 32, 16, ... 1 rows on one core and draws the
# modelled step time and speed-up for N processes on 1, 10 and 100 Gb/s links.
#
#   chapters/14-data-parallel/cost-model.sh                # the figure into build/plots
#   OUT=docs/figures chapters/14-data-parallel/cost-model.sh
#
# Run it on a quiet machine: every number is a time.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
OUT=${OUT:-$BUILD/plots}
STEPS=${STEPS:-600}
bin=$BUILD/bin/ch14-data-parallel
[ -x "$bin" ] || { echo "cost-model: $bin not found: build the course first (cmake --build --preset release)" >&2; exit 1; }
mpirun_flags=(--oversubscribe)
[ "$(id -u)" -ne 0 ] || mpirun_flags+=(--allow-run-as-root)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() {  # run LABEL COMMAND...: the command's timing line into the measurements
  echo "cost-model: $1" >&2
  "${@:2}" --seed 1 --max-steps "$STEPS" --plots "$work/plots" > "$work/out.txt" 2>&1 || { cat "$work/out.txt" >&2; exit 1; }
  grep -E '^(per step|timing,)' "$work/out.txt" >&2
  grep '^timing,' "$work/out.txt" >> "$work/measured.csv"
}
run "1 process x 1 thread" "$bin" --threads 1
run "1 process x 2 threads" "$bin" --threads 2
run "2 processes x 1 thread" mpirun "${mpirun_flags[@]}" -np 2 "$bin" --threads 1
"$bin" --cost-model "$work/measured.csv" --plots "$OUT"
