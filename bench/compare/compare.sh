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
#   bench/compare/compare.sh --inference   # the inference rows only (below)
#   BUILD=build-avx2 PEER_ISA=avx2 bench/compare/compare.sh
#       # the AVX2 build against PyTorch kept to AVX2 too (a learner's laptop, on an AVX-512 machine)
#
# For the course model the training table is followed by inference rows, at 1
# and 2 threads: model.evaluate over the 10,000 test images at Keras's default
# batch (32), and the latency of model.predict on one image, cold (the first
# call in a fresh process after the weights are loaded) and warm (the median
# of 1,000 more calls). The course's side is ch11-predict --time-inference;
# both sides load the same weights, which ch10-fit trains for one epoch first
# (not timed), so both must print the same test accuracy. PyTorch runs with
# model.eval() and torch.inference_mode(); probes choose its memory format,
# oneDNN on or off, TorchScript (frozen and optimized for inference) or not,
# BLAS threads and core type: one choice each for evaluate, warm predict and
# cold predict, printed with the table.
#
# Before the timed runs, PyTorch gets its best configuration on this machine:
# short probes (PROBE_STEPS batches, default 300, or 9,600 images' worth at
# larger batches; 40 for the convnet) try OpenBLAS's own core detection and
# each of CORETYPES (default Haswell SkylakeX Cooperlake Zen), with 1 or all
# BLAS threads, and the fastest is kept and printed, with the BLAS library the
# PyTorch process loaded. A first round of probes, for both models, tries the
# NCHW and channels_last memory formats with oneDNN (torch.backends.mkldnn) on
# and off, and keeps the fastest with the convolution operator it ran.
# Against Debian's reference BLAS no ratio is printed. On a machine without them, the script installs python3-torch and
# OpenBLAS (libopenblas0-pthread) as root, or through sudo when it needs no
# password, and says which BLAS Debian's alternatives then select.
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
model=course all=0 inference_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --all) all=1 ;;
    --model) model=${2:-}; shift ;;
    --inference) inference_only=1 ;;
    *) echo "usage: bench/compare/compare.sh [--all] [--model course|convnet] [--inference]" >&2; exit 2 ;;
  esac
  shift
done
[ $inference_only -eq 1 ] && [ "$model" != course ] && { echo "compare: --inference times the course model only" >&2; exit 2; }
repeat=${REPEAT:-3}
case "$model" in
  course)   # chapter 10's model, SGD, all 60,000 training images
    course_bin=$build/bin/ch10-fit; course_args=(); train_images=60000; probe_steps=${PROBE_STEPS:-}
    configs="32:2"; [ $all -eq 1 ] && configs="1:1 1:2 32:1 32:2 256:1 256:2"; [ $inference_only -eq 1 ] && configs="" ;;
  convnet)  # keras.io's convnet, Adam, validation_split 0.1: 54,000 training images
    course_bin=$build/bin/ch12-beyond; course_args=(--step convnet); train_images=54000; probe_steps=${PROBE_STEPS:-40}
    configs="128:2"; [ $all -eq 1 ] && configs="128:1 128:2" ;;
  *) echo "compare: --model course or --model convnet, not '$model'" >&2; exit 2 ;;
esac
for bin in "$course_bin" $( [ "$model" = course ] && echo "$build/bin/ch11-predict" ); do
  [ -x "$bin" ] || { echo "compare: build first: cmake --preset release && cmake --build --preset release (no $bin)" >&2; exit 1; }
done

# PyTorch: Debian's python3-torch, for Debian's own python3, with an optimized
# BLAS. python3-torch alone pulls Debian's reference BLAS (libblas3), so
# OpenBLAS is installed whenever it is missing, even beside an installed
# torch; Debian's alternatives then select it for libblas.so.3 (priority 100
# against the reference's 10) unless someone pinned another by hand.
python=/usr/bin/python3
missing=()
"$python" -c "import torch" 2>/dev/null || missing+=(python3-torch)
dpkg-query -W -f='${Status}' libopenblas0-pthread 2>/dev/null | grep -q "install ok installed" || missing+=(libopenblas0-pthread)
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo -n"   # sudo only when it asks no password
  if [ -z "$sudo" ] || sudo -n true 2>/dev/null; then
    echo "compare: installing ${missing[*]} (Debian) for the PyTorch side"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 ||
      { $sudo apt-get update -q >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; } ||
      echo "compare: could not install ${missing[*]}" >&2
  else
    echo "compare: missing ${missing[*]}; install with: sudo apt-get install ${missing[*]}" >&2
  fi
fi
if command -v update-alternatives >/dev/null; then
  libblas=$(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | sed -n 's/^Value: //p')
  [ -n "$libblas" ] && echo "compare: libblas.so.3 is $libblas (update-alternatives --display libblas.so.3-x86_64-linux-gnu)"
  case "$libblas" in
    */blas/libblas*) echo "compare: that is the reference BLAS; select OpenBLAS: sudo update-alternatives --config libblas.so.3-x86_64-linux-gnu" >&2 ;;
  esac
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
# reference BLAS no ratio is printed. The convolutions may not use the BLAS
# at all: PyTorch runs them through oneDNN (mkldnn) when it may, in either
# memory format, or else as im2col + BLAS products (slow_conv2d, whose
# products may gain from BLAS threads). So, for both models, a first round
# tries the four layout x oneDNN settings with 1 or all BLAS threads and
# OpenBLAS's own core type, keeps the fastest, and the core-type round runs
# with its layout and oneDNN setting (8 + 8 probes rather than all 40
# combinations).
# PEER_ISA=avx2: PyTorch too is kept to AVX2, as on a learner's AVX2 laptop,
# for comparing the course's AVX2 build (BUILD=build-avx2) on an AVX-512
# machine: ATen's kernels (ATEN_CPU_CAPABILITY), oneDNN's (DNNL_MAX_CPU_ISA)
# and OpenBLAS's core types (Haswell and Zen) all stop at AVX2.
peer_env=""
case "${PEER_ISA:-}" in
  "") ;;
  avx2) peer_env="ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2"; CORETYPES=${CORETYPES:-Haswell Zen} ;;
  *) echo "compare: PEER_ISA may be avx2 (or unset), not '$PEER_ISA'" >&2; exit 2 ;;
esac
[ -n "$peer_env" ] && [ $have_torch -eq 1 ] && echo "compare: PyTorch is kept to AVX2: $peer_env, OpenBLAS core types ${CORETYPES}"
coretypes="${CORETYPES:-Haswell SkylakeX Cooperlake Zen}"   # OpenBLAS's own choice is probed in round 1
torch_env=""    # set per configuration by best_torch_env
torch_args=""   # likewise: --memory-format and --mkldnn

probe() {  # $1 = batch, $2 = threads, $3 = environment, $4 = mnist_torch.py options: prints seconds and the conv operator
  local res
  res=$(env $peer_env $3 OMP_NUM_THREADS="$2" "$python" bench/compare/mnist_torch.py --data "$data" --model "$model" \
        --batch-size "$1" --threads "$2" --max-steps "$steps_now" $4 2>/dev/null) || return 1
  echo "$(echo "$res" | sed -n 's/.*seconds=\([0-9.]*\).*/\1/p') $(echo "$res" | sed -n 's/.* conv=\([^ ]*\).*/\1/p')"
}

best_torch_env() {  # $1 = batch, $2 = threads: sets torch_env and torch_args to the fastest settings
  local best_s="" ct bt env args res sec mf mk
  torch_env="OPENBLAS_NUM_THREADS=1" torch_args=""
  # The course model at a large batch: 9,600 images' worth (37 batches of 256), not 300 batches.
  steps_now=${probe_steps:-$(( 9600 / $1 < 300 ? 9600 / $1 : 300 ))}
  # Round 1: the memory format and oneDNN, with 1 or all BLAS threads.
  for mf in nchw channels_last; do
    for mk in on off; do
      for bt in 1 "$2"; do
        env="OPENBLAS_NUM_THREADS=$bt" args="--memory-format $mf --mkldnn $mk"
        res=$(probe "$1" "$2" "$env" "$args") || continue
        sec=${res% *}
        printf "  probe batch %s threads %s: %-68s %s s for %s batches (%s)\n" "$1" "$2" "$env $args" "$sec" "$steps_now" "${res#* }"
        if [ -z "$best_s" ] || awk -v a="$sec" -v b="$best_s" 'BEGIN { exit !(a < b) }'; then best_s=$sec; torch_env=$env; torch_args=$args; fi
        [ "$bt" = "$2" ] && break
      done
    done
  done
  # Round 2: the core types (OpenBLAS's own choice was probed in round 1).
  for ct in $coretypes; do
    for bt in 1 "$2"; do
      env="OPENBLAS_NUM_THREADS=$bt${ct:+ OPENBLAS_CORETYPE=$ct}"
      res=$(probe "$1" "$2" "$env" "$torch_args") || continue
      sec=${res% *}
      printf "  probe batch %s threads %s: %-50s %s s for %s batches\n" "$1" "$2" "$env" "$sec" "$steps_now"
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
[ -z "$configs" ] || "$build/bin/04_convolution_bench" --benchmark_filter=peak_fma --benchmark_repetitions=5 \
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
      res=$(env $peer_env $torch_env OMP_NUM_THREADS="$t" "$python" bench/compare/mnist_torch.py --data "$data" --model "$model" \
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
if [ -n "$configs" ]; then
  echo
  echo "s/epoch and ms/batch: the training loop only, the fastest of $repeat runs per side. GFLOP/s: $flop_per_image FLOP per image over that time."
  printf "%%peak: of the FMA peak measured in this run (%.0f GFLOP/s on 1 thread, %.0f on 2). RSS: the process's peak.\n" "$(peak 1)" "$(peak 2)"
fi
[ "$model" = course ] || exit 0

# ---- Inference: model.evaluate and one-image model.predict ----------------
#
# Both sides load the weights of one epoch of ch10-fit (seed 1; not timed), so
# both must print the same test accuracy: the check that both compute the
# real thing. Keras 3's model.evaluate batches by 32 when no batch_size is
# given ("If unspecified, `batch_size` will default to 32",
# keras/src/trainers/trainer.py, Trainer.evaluate), and so do both sides here.
eval_batch=32
weights=$tmp/weights
"$build/bin/ch10-fit" --data "$data" --epochs 1 --batch-size 32 --seed 1 --save "$weights" --plots "$tmp" >/dev/null

# The four numbers of one inference run, from either side's output:
# evaluate seconds, predict cold us, predict warm us, test accuracy.
course_inference() {  # $1 = threads
  local out
  out=$("$build/bin/ch11-predict" --data "$data" --load "$weights" --time-inference --threads "$1" --batch-size $eval_batch)
  echo "$(echo "$out" | sed -n 's/^evaluate .*: \([0-9.]*\) s, .*/\1/p')" \
       "$(echo "$out" | sed -n 's/^predict 1 image, cold.*: \([0-9.]*\) us/\1/p')" \
       "$(echo "$out" | sed -n 's/^predict 1 image, warm.*: \([0-9.]*\) us/\1/p')" \
       "$(echo "$out" | sed -n 's/^Test loss: .* - test accuracy: \([0-9.]*\)/\1/p')"
}
torch_res="" torch_nums=""   # the last PyTorch inference run: its whole line, and its four numbers
torch_inference() {  # $1 = threads, $2 = environment, $3 = mnist_torch.py options: sets torch_res and torch_nums
  torch_res=$(env $peer_env $2 OMP_NUM_THREADS="$1" "$python" bench/compare/mnist_torch.py --data "$data" --model course \
              --inference "$weights" --threads "$1" --batch-size $eval_batch $3 2>/dev/null) || return 1
  local get; get() { echo "$torch_res" | sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }
  torch_nums="$(get evaluate_s) $(get predict_cold_us) $(get predict_warm_us) $(get accuracy)"
}
faster() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(b == "" || a < b) }'; }   # is $1 below $2 (or $2 unset)?

# PyTorch's probes: round 1 the memory format x oneDNN x TorchScript with 1 or
# all BLAS threads, round 2 the core types with the best settings of round 1;
# a short evaluate (2,000 images, once) and 100 warm predicts each. Evaluate,
# warm predict and cold predict each keep their own fastest settings ("env|options").
best_torch_inference() {  # $1 = threads: sets eval_cfg, warm_cfg and cold_cfg
  local quick="--evaluate-images 2000 --evaluate-runs 1 --warm-calls 100" best_e="" best_w="" best_c="" mf mk jit bt ct
  eval_cfg="OPENBLAS_NUM_THREADS=1|" warm_cfg=$eval_cfg cold_cfg=$eval_cfg
  try() {  # $1 = threads, $2 = environment, $3 = options
    torch_inference "$1" "$2" "$3 $quick" || return 0
    set -- "$1" "$2" "$3" $torch_nums
    printf "  probe threads %s: %-88s evaluate %s s, predict cold %s us, warm %s us\n" "$1" "$2 $3" "$4" "$5" "$6"
    if faster "$4" "$best_e"; then best_e=$4; eval_cfg="$2|$3"; fi
    if faster "$5" "$best_c"; then best_c=$5; cold_cfg="$2|$3"; fi
    if faster "$6" "$best_w"; then best_w=$6; warm_cfg="$2|$3"; fi
  }
  for mf in nchw channels_last; do
    for mk in on off; do
      for jit in off freeze; do
        for bt in 1 "$1"; do
          try "$1" "OPENBLAS_NUM_THREADS=$bt" "--memory-format $mf --mkldnn $mk --jit $jit"
          [ "$bt" = "$1" ] && break
        done
      done
    done
  done
  local opts
  for opts in $(printf "%s\n" "${eval_cfg#*|}" "${warm_cfg#*|}" "${cold_cfg#*|}" | sort -u | tr ' ' '~'); do
    for ct in $coretypes; do
      for bt in 1 "$1"; do
        try "$1" "OPENBLAS_NUM_THREADS=$bt OPENBLAS_CORETYPE=$ct" "${opts//\~/ }"
        [ "$bt" = "$1" ] && break
      done
    done
  done
  echo "  kept for PyTorch's evaluate:     ${eval_cfg/|/ }"
  echo "  kept for PyTorch's predict warm: ${warm_cfg/|/ }"
  echo "  kept for PyTorch's predict cold: ${cold_cfg/|/ }"
}

inference_row() {  # side threads evaluate_s cold_us warm_us accuracy
  awk -v side="$1" -v t="$2" -v s="$3" -v cold="$4" -v warm="$5" -v acc="$6" 'BEGIN {
    printf "%-8s %7d %10.4f %9.0f %12.0f %12.1f %8.4f\n", side, t, s, 10000 / s, cold, warm, acc }'
}

echo
echo "Inference: the course model with the weights of one epoch (ch10-fit --seed 1), evaluate at batch $eval_batch"
for t in 1 2; do
  echo
  eval_cfg="" warm_cfg="" cold_cfg=""
  [ $have_torch -eq 1 ] && best_torch_inference "$t"
  printf "\n%-8s %7s %10s %9s %12s %12s %8s\n" side threads "evaluate s" "images/s" "predict cold" "predict warm" "test acc"
  c_e="" c_cold="" c_warm="" c_acc="" p_e="" p_cold="" p_warm="" p_acc="" blas="" conv=""
  for r in $(seq "$repeat"); do
    set -- $(course_inference "$t")
    faster "$1" "$c_e" && c_e=$1; faster "$2" "$c_cold" && c_cold=$2; faster "$3" "$c_warm" && c_warm=$3; c_acc=$4
    [ $have_torch -eq 1 ] || continue
    # One PyTorch process per distinct setting; each number from the setting kept for it.
    while IFS= read -r cfg; do
      torch_inference "$t" "${cfg%%|*}" "${cfg#*|}" || continue
      set -- $torch_nums
      if [ "$cfg" = "$eval_cfg" ]; then
        faster "$1" "$p_e" && p_e=$1; p_acc=$4
        blas=$(echo "$torch_res" | sed -n 's/.*blas=\([^ ]*\).*/\1/p')
        conv=$(echo "$torch_res" | sed -n 's/.* conv=\([^ ]*\).*/\1/p')
      fi
      [ "$cfg" = "$cold_cfg" ] && faster "$2" "$p_cold" && p_cold=$2
      [ "$cfg" = "$warm_cfg" ] && faster "$3" "$p_warm" && p_warm=$3
    done < <(printf "%s\n" "$eval_cfg" "$warm_cfg" "$cold_cfg" | sort -u)
  done
  inference_row course "$t" "$c_e" "$c_cold" "$c_warm" "$c_acc"
  if [ $have_torch -eq 1 ] && [ -n "$p_e" ]; then
    inference_row pytorch "$t" "$p_e" "$p_cold" "$p_warm" "$p_acc"
    echo "         PyTorch's evaluate ran with ${eval_cfg/|/ }"
    echo "         its warm predict with ${warm_cfg/|/ }"
    echo "         its cold predict with ${cold_cfg/|/ }"
    echo "         BLAS loaded: $blas; convolution (evaluate): $conv"
    [ "$c_acc" = "$p_acc" ] || echo "         WARNING: the test accuracies differ ($c_acc, $p_acc): the two sides do not compute the same model"
    case "$blas" in
      */blas/libblas*)
        echo "         no ratio: PyTorch's BLAS is the reference BLAS (sudo update-alternatives --config libblas.so.3-x86_64-linux-gnu)" ;;
      *openblas*|*mkl*|*blis*)
        awk -v ce="$c_e" -v pe="$p_e" -v cc="$c_cold" -v pc="$p_cold" -v cw="$c_warm" -v pw="$p_warm" 'BEGIN {
          printf "         the course is %.2f times as fast as PyTorch in evaluate, %.2f times in predict (warm), %.2f times (cold)\n", pe / ce, pw / cw, pc / cc }' ;;
      *) echo "         no ratio: PyTorch did not load an optimized BLAS (install libopenblas0-pthread)" ;;
    esac
  fi
done
echo
echo "evaluate: $eval_batch images per batch over the 10,000 test images, loss and accuracy included, the fastest of 3 runs"
echo "per process and of $repeat processes per side. predict: one image, the probabilities, in microseconds: cold is the"
echo "first call after the weights are loaded, warm the median of 1,000 more calls; each the lowest of $repeat processes."
