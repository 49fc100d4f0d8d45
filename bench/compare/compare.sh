#!/usr/bin/env bash
# Trains one epoch of the course's model with the course's code and with
# PyTorch, one after the other on this machine, and prints a table for each:
# seconds per epoch, ms per batch, GFLOP/s and % of the measured FMA peak,
# peak RSS, and test accuracy after the epoch.
#
#   bench/compare/compare.sh            # batch 32, 2 threads: the headline
#   bench/compare/compare.sh --all      # batch 1, 32 and 256 at 1 and 2 threads
#   REPEAT=5 bench/compare/compare.sh   # each side's best of 5 runs (default 3)
#
# The machine may be shared and noisy: each side runs REPEAT times, the two
# sides taking turns, and the table shows each side's fastest run.
#
# Needs a release build (cmake --preset release && cmake --build --preset release)
# and the data (scripts/setup.sh). PyTorch is optional: without it only the
# course's side runs, and the script says how to install it.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD:-build}
data=${MNIST_DIR:-data/mnist}
configs="32:2"
[ "${1:-}" = "--all" ] && configs="1:1 1:2 32:1 32:2 256:1 256:2"
repeat=${REPEAT:-3}
[ -x "$build/bin/ch10-fit" ] || { echo "compare: build first: cmake --preset release && cmake --build --preset release" >&2; exit 1; }

# PyTorch: Debian's python3-torch, for Debian's own python3.
python=/usr/bin/python3
if ! "$python" -c "import torch" 2>/dev/null; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "compare: installing python3-torch (Debian) for the PyTorch side"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-torch >/dev/null || true
  fi
fi
have_torch=0
"$python" -c "import torch" 2>/dev/null && have_torch=1
[ $have_torch -eq 1 ] || echo "compare: PyTorch not found; install it with 'sudo apt-get install python3-torch' to compare. Running the course's side only."

# Debian's OpenBLAS 0.3.21 does not recognise recent CPUs and falls back to
# slow generic kernels; where the CPU has AVX-512 BF16, name the closest core
# it knows. Its own threads would also compete with PyTorch's, so it gets one.
export OPENBLAS_NUM_THREADS=1
if grep -q avx512_bf16 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Cooperlake; fi
echo "PyTorch side runs with OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)}:"
echo "  Debian's OpenBLAS 0.3.21 falls back to slow generic kernels on CPUs it does not know, and its own"
echo "  threads would compete with PyTorch's (here, without them, 300 batches took 2.9 s instead of 1.5 s)."

# The measured peak: a tight loop of independent FMAs (chapter 04's benchmark).
peak_json=$(mktemp)
trap 'rm -f "$peak_json"; rm -rf "$tmp"' EXIT
tmp=$(mktemp -d)
# Five repetitions, keeping the highest: a busy neighbour can only slow it down.
"$build/bin/04_convolution_bench" --benchmark_filter=peak_fma --benchmark_repetitions=5 \
  --benchmark_format=json >"$peak_json" 2>/dev/null
peak() {  # $1 = threads
  local name=peak_fma/1_thread; [ "$1" -gt 1 ] && name=peak_fma/all_threads
  awk -v want="$name" '/"name":/ { n = $0; sub(/.*"name": "/, "", n); sub(/".*/, "", n) }
                       /"GFLOP\/s":/ && n == want { v = $0; sub(/.*: /, "", v); sub(/,.*/, "", v); if (v + 0 > best) best = v + 0 }
                       END { print best }' "$peak_json"
}

# Floating-point work per training image (forward + backward, no input gradient
# for the first layer): Conv2D 2*26*26*9*32 forward and the same for the kernel
# gradient; Dense(100) 2*5408*100 three times (forward, dW, dx); Dense(10)
# 2*100*10 three times. 4,029,552 FLOP per image, 129 MFLOP per batch of 32.
flop_per_image=$(( 2*26*26*9*32*2 + 2*5408*100*3 + 2*100*10*3 ))

row() {  # side batch threads seconds steps accuracy rss_mb
  awk -v side="$1" -v b="$2" -v t="$3" -v s="$4" -v n="$5" -v acc="$6" -v rss="$7" -v f="$flop_per_image" -v pk="$8" 'BEGIN {
    epoch_batches = int((60000 + b - 1) / b); ms = 1000 * s / n; epoch = ms * epoch_batches / 1000
    gflops = f * b * n / s / 1e9
    printf "%-8s %5d %7d %9.2f %9.3f %8.1f %6.1f%% %7.0f %8.4f%s\n", side, b, t, epoch, ms, gflops, 100 * gflops / pk, rss, acc, (n < epoch_batches ? "  (" n " batches)" : "")
  }'
}

printf "\n%-8s %5s %7s %9s %9s %8s %7s %7s %8s\n" side batch threads "s/epoch" "ms/batch" "GFLOP/s" "%peak" "RSS MB" "test acc"
for cfg in $configs; do
  b=${cfg%%:*}; t=${cfg##*:}
  steps=0; [ "$b" -eq 1 ] && steps=6000   # batch 1: a tenth of an epoch, scaled up
  pk=$(peak "$t")
  best_course="" best_torch=""
  for r in $(seq "$repeat"); do
    out=$("$build/bin/ch10-fit" --data "$data" --epochs 1 --batch-size "$b" --threads "$t" --seed 1 --no-save \
          --plots "$tmp" $( [ $steps -gt 0 ] && echo --max-steps $steps ))
    s=$(echo "$out" | sed -n 's/^training time: \([0-9.]*\) s for \([0-9]*\) batches.*/\1 \2/p')
    acc=$(echo "$out" | sed -n 's/^Test loss: .* - test accuracy: \([0-9.]*\)/\1/p')
    rss=$(echo "$out" | sed -n 's/^peak memory (RSS): \([0-9]*\) MB/\1/p')
    line="${s% *} ${s#* } $acc $rss"
    if [ -z "$best_course" ] || awk -v a="${s% *}" -v b="${best_course%% *}" 'BEGIN { exit !(a < b) }'; then best_course=$line; fi
    if [ $have_torch -eq 1 ]; then
      res=$(OMP_NUM_THREADS=$t "$python" bench/compare/mnist_torch.py --data "$data" --batch-size "$b" --threads "$t" --max-steps $steps)
      get() { echo "$res" | sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
      line="$(get seconds) $(get steps) $(get accuracy) $(get rss_mb)"
      if [ -z "$best_torch" ] || awk -v a="$(get seconds)" -v b="${best_torch%% *}" 'BEGIN { exit !(a < b) }'; then best_torch=$line; fi
    fi
  done
  row course "$b" "$t" $best_course "$pk"
  if [ $have_torch -eq 1 ]; then row pytorch "$b" "$t" $best_torch "$pk"; fi
done
echo
echo "s/epoch and ms/batch: the training loop only, the fastest of $repeat runs per side. GFLOP/s: $flop_per_image FLOP per image over that time."
printf "%%peak: of the FMA peak measured in this run (%.0f GFLOP/s on 1 thread, %.0f on 2). RSS: the process's peak.\n" "$(peak 1)" "$(peak 2)"
