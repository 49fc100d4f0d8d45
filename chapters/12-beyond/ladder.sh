#!/usr/bin/env bash
# Chapter 12's ladder: every step, three seeds each, one after the other on
# this machine; then the table and the figure from their result lines.
#
#   chapters/12-beyond/ladder.sh                  # every step, seeds 1 2 3
#   STEPS="convnet augment" SEEDS="1" chapters/12-beyond/ladder.sh
#
# Writes docs/figures/12-ladder.txt (the result lines: those of the steps it
# runs are dropped first, then appended run by run, so an interrupted ladder
# keeps what finished and the other steps' lines stay) and docs/figures/12-ladder.png,
# and prints the chapter's table. Each run's full output goes to
# build/ladder-logs/. Needs a release build and the data (the README's first
# command). The times are the training loop's, on however many cores the
# machine has (--threads 0): run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD:-build}
steps=${STEPS:-sgd momentum convnet augment schedule best batchnorm}
seeds=${SEEDS:-1 2 3}
results=${RESULTS:-docs/figures/12-ladder.txt}
logs="$build/ladder-logs"
[ -x "$build/bin/ch12-beyond" ] || { echo "ladder: build first: cmake --preset release && cmake --build --preset release" >&2; exit 1; }
mkdir -p "$logs" "$(dirname "$results")"
touch "$results"
for step in $steps; do sed -i "/^result step=$step /d" "$results"; done  # the steps run again start afresh
for step in $steps; do
  for seed in $seeds; do
    log="$logs/$step-seed$seed.log"
    echo "ladder: --step $step --seed $seed (log: $log)"
    "$build/bin/ch12-beyond" --step "$step" --seed "$seed" --no-save --plots "$build/plots" >"$log" 2>&1 ||
      { echo "ladder: --step $step --seed $seed failed; the end of its log:" >&2; tail -5 "$log" >&2; exit 1; }
    grep '^result ' "$log" | tee -a "$results"
  done
done
"$build/bin/ch12-beyond" --ladder "$results" --plots docs/figures
