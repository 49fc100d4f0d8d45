#!/usr/bin/env bash
# Trains one epoch of the course's model with the course's code and with
# PyTorch, one after the other on this machine, and prints a table for each:
# seconds per epoch, ms per batch, GFLOP/s and % of the measured FMA peak,
# peak RSS, and test accuracy after the epoch.
#
#   bench/compare/compare.sh            # batch 32, 2 threads: the headline
#   bench/compare/compare.sh --all      # batch 1, 32 and 256 at 1 and 2 threads
#   REPEAT=5 bench/compare/compare.sh   # each side's best of 5 runs (default 3)
#   bench/compare/compare.sh --model convnet [--all]
#       # keras.io's Simple MNIST convnet (chapter 12: ch12-beyond --step convnet,
#       # Adam, 54,000 training images): batch 128 at 2 threads (--all: 1 and 2)
#
# Before the timed runs, PyTorch gets its best configuration on this machine:
# short probes (PROBE_STEPS batches, default 300; 40 for the convnet) try
# OpenBLAS's own core detection and each of CORETYPES (default Haswell
# SkylakeX Cooperlake Zen), with 1 or all BLAS threads, and the fastest is
# kept and printed, with the BLAS library the PyTorch process loaded. For the
# convnet, a first round of probes also tries the NCHW and channels_last
# memory formats with oneDNN (torch.backends.mkldnn) on and off, and keeps the
# fastest with the convolution operator it ran. Against Debian's reference BLAS
# no ratio is printed.
#
# The machine may be shared and noisy: each side runs REPEAT times, the two
# sides taking turns, and the table shows each side's fastest run. PyTorch's
# OpenMP threads suffer most from a busy neighbour (on a shared 2-core machine
# the same 40-batch convnet probe took 1.5 s and then 12.8 s), so trust only
# runs on a quiet machine.
#
# Needs a release build (cmake --preset release && cmake --build --preset release)
# and the data (scripts/setup.sh). PyTorch is optional: without it only the
# course's side runs, and the script says how to install it.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD:-build}
data=${MNIST_DIR:-data/mnist}
model=course all=0
while [ $# -gt 0 ]; do
  case "$1" in
    --all) all=1 ;;
    --model) model=${2:-}; shift ;;
    *) echo "usage: bench/compare/compare.sh [--all] [--model course|convnet]" >&2; exit 2 ;;
  esac
  shift
done
repeat=${REPEAT:-3}
case "$model" in
  course)   # chapter 10's model, SGD, all 60,000 training images
    course_bin=$build/bin/ch10-fit; course_args=(); train_images=60000; probe_steps=${PROBE_STEPS:-300}
    configs="32:2"; [ $all -eq 1 ] && configs="1:1 1:2 32:1 32:2 256:1 256:2" ;;
  convnet)  # keras.io's convnet, Adam, validation_split 0.1: 54,000 training images
    course_bin=$build/bin/ch12-beyond; course_args=(--step convnet); train_images=54000; probe_steps=${PROBE_STEPS:-40}
    configs="128:2"; [ $all -eq 1 ] && configs="128:1 128:2" ;;
  *) echo "compare: --model course or --model convnet, not '$model'" >&2; exit 2 ;;
esac
[ -x "$course_bin" ] || { echo "compare: build first: cmake --preset release && cmake --build --preset release (no $course_bin)" >&2; exit 1; }

# PyTorch: Debian's python3-torch, for Debian's own python3.
python=/usr/bin/python3
if ! "$python" -c "import torch" 2>/dev/null; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "compare: installing python3-torch and OpenBLAS (Debian) for the PyTorch side"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-torch libopenblas0-pthread >/dev/null || true
  fi
fi
have_torch=0
"$python" -c "import torch" 2>/dev/null && have_torch=1
[ $have_torch -eq 1 ] || echo "compare: PyTorch not found; install it with 'sudo apt-get install python3-torch' to compare. Running the course's side only."

# The peer gets its best configuration on this machine. PyTorch runs its
# Dense products through the system BLAS: Debian's libblas.so.3 is either the
# optimized OpenBLAS or the slow reference BLAS, whichever the alternatives
# system picked, and OpenBLAS 0.3.21 may not recognise a recent CPU and fall
# back to generic kernels unless OPENBLAS_CORETYPE names one it knows. So,
# per configuration, short probes try every plausible core type and BLAS
# thread count, and the timed runs use the fastest; the table says which, and
# which BLAS library the PyTorch process actually loaded. Against the
# reference BLAS no ratio is printed. The convnet's convolutions may not use
# the BLAS at all: PyTorch runs them through oneDNN (mkldnn) when it may, in
# either memory format, or else as im2col + BLAS products (slow_conv2d, whose
# products may gain from BLAS threads). So for the convnet a first round tries
# the four layout x oneDNN settings with 1 or all BLAS threads and OpenBLAS's
# own core type, keeps the fastest, and the core-type round runs with its
# layout and oneDNN setting (8 + 8 probes rather than all 40 combinations).
coretypes="${CORETYPES:- Haswell SkylakeX Cooperlake Zen}"   # the first, empty, is OpenBLAS's own choice
torch_env=""    # set per configuration by best_torch_env
torch_args=""   # likewise: --memory-format and --mkldnn for the convnet

probe() {  # $1 = batch, $2 = threads, $3 = environment, $4 = mnist_torch.py options: prints seconds and the conv operator
  local res
  res=$(env $3 OMP_NUM_THREADS="$2" "$python" bench/compare/mnist_torch.py --data "$data" --model "$model" \
        --batch-size "$1" --threads "$2" --max-steps "$probe_steps" $4 2>/dev/null) || return 1
  echo "$(echo "$res" | sed -n 's/.*seconds=\([0-9.]*\).*/\1/p') $(echo "$res" | sed -n 's/.* conv=\([^ ]*\).*/\1/p')"
}

best_torch_env() {  # $1 = batch, $2 = threads: sets torch_env and torch_args to the fastest settings
  local best_s="" ct bt env args res sec mf mk
  local cts=("" $coretypes)   # "": OpenBLAS's own choice
  torch_env="OPENBLAS_NUM_THREADS=1" torch_args=""
  if [ "$model" = convnet ]; then
    for mf in nchw channels_last; do
      for mk in on off; do
        for bt in 1 "$2"; do
          env="OPENBLAS_NUM_THREADS=$bt" args="--memory-format $mf --mkldnn $mk"
          res=$(probe "$1" "$2" "$env" "$args") || continue
          sec=${res% *}
          printf "  probe batch %s threads %s: %-68s %s s for %s batches (%s)\n" "$1" "$2" "$env $args" "$sec" "$probe_steps" "${res#* }"
          if [ -z "$best_s" ] || awk -v a="$sec" -v b="$best_s" 'BEGIN { exit !(a < b) }'; then best_s=$sec; torch_env=$env; torch_args=$args; fi
          [ "$bt" = "$2" ] && break
        done
      done
    done
    cts=($coretypes)   # OpenBLAS's own choice was probed in this round
  fi
  for ct in "${cts[@]}"; do
    for bt in 1 "$2"; do
      env="OPENBLAS_NUM_THREADS=$bt${ct:+ OPENBLAS_CORETYPE=$ct}"
      res=$(probe "$1" "$2" "$env" "$torch_args") || continue
      sec=${res% *}
      printf "  probe batch %s threads %s: %-50s %s s for %s batches\n" "$1" "$2" "$env" "$sec" "$probe_steps"
      if [ -z "$best_s" ] || awk -v a="$sec" -v b="$best_s" 'BEGIN { exit !(a < b) }'; then best_s=$sec; torch_env=$env; fi
      [ "$bt" = "$2" ] && break  # threads 1 and $2 are the same setting when $2 is 1
    done
  done
  echo "  kept for PyTorch: $torch_env${torch_args:+ $torch_args}"
}

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
# The convnet: Conv2D(32) 2*26*26*(3*3*1)*32 forward and kernel gradient;
# Conv2D(64) 2*11*11*(3*3*32)*64 three times (forward, dW, dx); Dense(10)
# 2*1600*10 three times (1600 = 5*5*64). Pooling, ReLU, dropout and Adam's
# elementwise work are not counted. 14,256,384 FLOP per image, 1.82 GFLOP per
# batch of 128.
[ "$model" = convnet ] && flop_per_image=$(( 2*26*26*9*1*32*2 + 2*11*11*288*64*3 + 2*1600*10*3 ))

row() {  # side batch threads seconds steps accuracy rss_mb
  awk -v side="$1" -v b="$2" -v t="$3" -v s="$4" -v n="$5" -v acc="$6" -v rss="$7" -v f="$flop_per_image" -v pk="$8" -v train="$train_images" 'BEGIN {
    epoch_batches = int((train + b - 1) / b); ms = 1000 * s / n; epoch = ms * epoch_batches / 1000
    gflops = f * b * n / s / 1e9
    printf "%-8s %5d %7d %9.2f %9.3f %8.1f %6.1f%% %7.0f %8.4f%s\n", side, b, t, epoch, ms, gflops, 100 * gflops / pk, rss, acc, (n < epoch_batches ? "  (" n " batches)" : "")
  }'
}

for cfg in $configs; do
  b=${cfg%%:*}; t=${cfg##*:}
  steps=0; [ "$b" -eq 1 ] && steps=6000   # batch 1: a tenth of an epoch, scaled up
  pk=$(peak "$t")
  best_course="" best_torch="" blas="" conv=""
  echo
  [ $have_torch -eq 1 ] && best_torch_env "$b" "$t"
  printf "\n%-8s %5s %7s %9s %9s %8s %7s %7s %8s\n" side batch threads "s/epoch" "ms/batch" "GFLOP/s" "%peak" "RSS MB" "test acc"
  for r in $(seq "$repeat"); do
    out=$("$course_bin" "${course_args[@]}" --data "$data" --epochs 1 --batch-size "$b" --threads "$t" --seed 1 --no-save \
          --plots "$tmp" $( [ $steps -gt 0 ] && echo --max-steps $steps ))
    s=$(echo "$out" | sed -n 's/^training time: \([0-9.]*\) s for \([0-9]*\) batches.*/\1 \2/p')
    acc=$(echo "$out" | sed -n 's/^Test loss: .* - test accuracy: \([0-9.]*\)/\1/p')
    rss=$(echo "$out" | sed -n 's/^peak memory (RSS): \([0-9]*\) MB/\1/p')
    line="${s% *} ${s#* } $acc $rss"
    if [ -z "$best_course" ] || awk -v a="${s% *}" -v b="${best_course%% *}" 'BEGIN { exit !(a < b) }'; then best_course=$line; fi
    if [ $have_torch -eq 1 ]; then
      res=$(env $torch_env OMP_NUM_THREADS="$t" "$python" bench/compare/mnist_torch.py --data "$data" --model "$model" \
            --batch-size "$b" --threads "$t" --max-steps $steps $torch_args)
      blas=$(echo "$res" | sed -n 's/.*blas=\([^ ]*\).*/\1/p')
      conv=$(echo "$res" | sed -n 's/.* conv=\([^ ]*\).*/\1/p')
      get() { echo "$res" | sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
      line="$(get seconds) $(get steps) $(get accuracy) $(get rss_mb)"
      if [ -z "$best_torch" ] || awk -v a="$(get seconds)" -v b="${best_torch%% *}" 'BEGIN { exit !(a < b) }'; then best_torch=$line; fi
    fi
  done
  row course "$b" "$t" $best_course "$pk"
  if [ $have_torch -eq 1 ]; then
    row pytorch "$b" "$t" $best_torch "$pk"
    echo "         PyTorch ran with $torch_env${torch_args:+ $torch_args}; BLAS loaded: $blas; convolution: $conv"
    case "$blas" in
      */blas/libblas*)  # Debian's reference BLAS (netlib): even when OpenBLAS's LAPACK is mapped too
        echo "         no ratio: PyTorch's BLAS is the reference BLAS (sudo update-alternatives --config libblas.so.3-x86_64-linux-gnu)" ;;
      *openblas*|*mkl*|*blis*)
        awk -v c="${best_course%% *}" -v p="${best_torch%% *}" 'BEGIN { printf "         the course is %.2f times as fast as PyTorch here\n", p / c }' ;;
      *) echo "         no ratio: PyTorch did not load an optimized BLAS (install libopenblas0-pthread)" ;;
    esac
  fi
done
echo
echo "s/epoch and ms/batch: the training loop only, the fastest of $repeat runs per side. GFLOP/s: $flop_per_image FLOP per image over that time."
printf "%%peak: of the FMA peak measured in this run (%.0f GFLOP/s on 1 thread, %.0f on 2). RSS: the process's peak.\n" "$(peak 1)" "$(peak 2)"
