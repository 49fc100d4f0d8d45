#!/usr/bin/env bash
# Trains the same short runs with two build trees and checks that they give
# the same weights, bit for bit, and the same printed results:
#
#   bash scripts/compare-builds.sh build build-avx2
#
# The course promises that the instruction set (AVX2 or AVX-512) and the
# compiler's tuning for one CPU or another change only the speed: for a given
# seed and thread count every x86-64 CPU with FMA trains the same weights. The
# runs cover the paths a training step can take: the seed model with each
# optimizer, batches of 1, 32 and 128, one and two threads, and chapter 12's
# convnet (two convolutions, Dropout) and its augmented run.
#
# Exit status 0 when every run matches; 1 naming each difference; 2 on bad use.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -ne 2 ] || [ "$1" = --help ] || [ "$1" = -h ]; then
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
  [ $# -eq 1 ] && { [ "$1" = --help ] || [ "$1" = -h ]; } && exit 0
  exit 2
fi
for tree in "$1" "$2"; do
  for program in ch10-fit ch12-beyond; do
    [ -x "$tree/bin/$program" ] || { echo "compare-builds: $tree/bin/$program is missing (build that tree first)" >&2; exit 2; }
  done
done

work=$(mktemp -d "${TMPDIR:-/tmp}/compare-builds.XXXXXX")
trap 'rm -rf "$work"' EXIT

# name | program | arguments (each run also gets --seed 1 and its own --save and --plots)
runs=(
  "sgd|ch10-fit|--epochs 1 --max-steps 300 --threads 2"
  "sgd-1-thread|ch10-fit|--epochs 1 --max-steps 100 --threads 1"
  "sgd-batch-1|ch10-fit|--epochs 1 --max-steps 300 --batch-size 1 --threads 2"
  "sgd-batch-128|ch10-fit|--epochs 1 --max-steps 60 --batch-size 128 --threads 2"
  "momentum|ch10-fit|--epochs 1 --max-steps 150 --momentum 0.9 --threads 2"
  "adam|ch10-fit|--epochs 1 --max-steps 150 --optimizer adam --threads 2"
  "rmsprop|ch10-fit|--epochs 1 --max-steps 150 --optimizer rmsprop --threads 2"
  "convnet|ch12-beyond|--step convnet --epochs 1 --max-steps 40 --threads 2"
  "augment|ch12-beyond|--step augment --epochs 1 --max-steps 40 --threads 2"
)

# The lines that must agree: losses and accuracies, with the timings cut out.
results() {
  grep -E 'loss|accuracy|batches trained' "$1" | grep -vE 'training time|RSS|Wrote|Weights in' |
    sed -E 's/ - [0-9.]+m?s [0-9.]+[mu]?s\/step//; s/ train_seconds=[0-9.]+//' || true
}

passed=0 failed=0
for run in "${runs[@]}"; do
  IFS='|' read -r name program args <<<"$run"
  for side in a b; do
    tree=$1; [ "$side" = b ] && tree=$2
    # shellcheck disable=SC2086  # $args is a list of options
    if ! "$tree/bin/$program" --seed 1 $args --save "$work/$name.$side" --plots "$work/plots.$side" \
        >"$work/$name.$side.out" 2>&1; then
      echo "compare-builds: $name: $tree/bin/$program failed:" >&2
      tail -5 "$work/$name.$side.out" >&2
      exit 1
    fi
  done
  problems=()
  for f in "$work/$name.a"/*.npy; do
    g="$work/$name.b/$(basename "$f")"
    if [ ! -f "$g" ]; then problems+=("$(basename "$f") missing from $2"); continue; fi
    cmp -s "$f" "$g" || problems+=("$(basename "$f") differs")
  done
  if ! diff <(results "$work/$name.a.out") <(results "$work/$name.b.out") >"$work/$name.diff"; then
    problems+=("printed results differ:" "$(cat "$work/$name.diff")")
  fi
  weights=$(find "$work/$name.a" -name '*.npy' | wc -l)
  if [ "$weights" -eq 0 ]; then problems+=("no weights saved"); fi
  if [ ${#problems[@]} -eq 0 ]; then
    echo "  same bits: $name ($program $args; $weights weight files; $(results "$work/$name.a.out" | tail -1))"
    passed=$((passed + 1))
  else
    echo "  DIFFERENT: $name ($program $args):"
    printf '    %s\n' "${problems[@]}"
    failed=$((failed + 1))
  fi
done
echo "compare-builds: $1 ($(head -1 "$work/sgd.a.out")) against $2 ($(head -1 "$work/sgd.b.out"))"
echo "compare-builds: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
