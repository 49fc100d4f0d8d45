#!/usr/bin/env bash
# Chapter 10's experiments, each a run of ch10-fit: two on generalisation,
#
#   1. a learning-rate sweep: plain SGD at 0.001 ... 1, one epoch each, a
#      fresh model per rate, validated on the last 10% of the training set
#      -> docs/figures/10-lr-sweep.png (and .csv)
#   2. overfitting: the first 1,000 training images for 50 epochs, validated
#      on the next 1,000 -> docs/figures/10-overfitting.png (and .csv), the
#      history figure of that run under its own name
#
# and two on why the Keras program is set up as it is:
#
#   3. cross-entropy or mean squared error: one epoch of plain SGD with each
#      loss -> docs/figures/10-loss-compare.png (and .csv)
#   4. glorot_uniform at scales 0.1, 1 and 10: the spread of every layer's
#      output and gradient at initialization -> docs/figures/10-init-spread.png (and .csv)
#
#   chapters/10-fit/experiments.sh            # all four (about 2, 1, 1 minutes and 1 s on the course's 2 cores)
#   chapters/10-fit/experiments.sh sweep      # only the first
#   chapters/10-fit/experiments.sh overfit    # only the second
#   chapters/10-fit/experiments.sh loss       # only the third
#   chapters/10-fit/experiments.sh init       # only the fourth
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${BUILD:-build}/bin
figures=${OUT:-docs/figures}
what=${1:-all}

if [ "$what" = all ] || [ "$what" = sweep ]; then
  "$bin/ch10-fit" --seed 1 --epochs 1 --validation-split 0.1 \
    --lr-sweep 0.001,0.003,0.01,0.03,0.1,0.3,1 --plots "$figures"
fi
if [ "$what" = all ] || [ "$what" = overfit ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$bin/ch10-fit" --seed 1 --train-limit 2000 --validation-split 0.5 --epochs 50 --momentum 0.9 \
    --no-save --plots "$tmp"
  cp "$tmp/10-history.png" "$figures/10-overfitting.png"
  cp "$tmp/10-history.csv" "$figures/10-overfitting.csv"
  echo "Wrote $figures/10-overfitting.png and $figures/10-overfitting.csv"
fi
if [ "$what" = all ] || [ "$what" = loss ]; then
  "$bin/ch10-fit" --seed 1 --epochs 1 --compare-losses --plots "$figures"
fi
if [ "$what" = all ] || [ "$what" = init ]; then
  "$bin/ch10-fit" --seed 1 --init-spread 0.1,1,10 --plots "$figures"
fi
