#!/usr/bin/env bash
# Hostile file names against every executable that plots or saves.
#
#   bash tests/hostile_paths_test.sh BIN_DIR WEIGHTS_DIR
#
# Each executable gets a --plots folder (and chapter 10 a --save folder, and
# chapter 11 an --image) whose name holds a back-quoted command, a $(...)
# command, both quotes, spaces and a newline. gnuplot runs `...` in a
# double-quoted string as a shell command, so a plot command built carelessly
# would create the PWNED files. Each run must plot to exactly that folder or
# refuse it with a clear error; no command may run, and no temporary file may
# be left beside the plots.
set -uo pipefail
bin=$(realpath "$1")
weights=$(realpath -m "$2")
seven=$(realpath "$(dirname "$0")/../chapters/11-predict/my-seven.pgm")
scripts=$(realpath "$(dirname "$0")/../scripts")
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
cd "$root" || exit 1  # a relative `touch PWNED` would land here

evil='p `touch PWNED-backquote` $(touch PWNED-dollar) "double" '\''single'\'' and'$'\n''newline'
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# Runs one executable with --plots "$root/<name>/$evil" and checks the result.
check_plots() {
  local name=$1; shift
  local dir="$root/$name/$evil"
  local out
  out=$("$bin/$name" --plots "$dir" "$@" 2>&1)
  local rc=$?
  if [ $rc -ne 0 ]; then
    fail "$name exited $rc: $(tail -n 2 <<<"$out")"
    return
  fi
  local pngs=0 f
  for f in "$dir"/*; do
    [ -e "$f" ] || continue
    case $f in
      *.png)
        if [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '211PNG' ]; then pngs=$((pngs + 1))
        else fail "$name: $f is not a PNG"; fi ;;
      *.csv | */weights) ;;  # chapter 10's history and weights
      *) fail "$name: unexpected file in the plots folder: $f" ;;
    esac
  done
  # Temporaries are dot files.
  for f in "$dir"/.*; do
    case $f in */. | */..) ;; *) [ -e "$f" ] && fail "$name left $f" ;; esac
  done
  [ $pngs -gt 0 ] || fail "$name wrote no PNG into the folder named by --plots"
  echo "ok: $name plotted $pngs PNGs into the hostile folder"
}

check_plots ch00-how-a-network-learns
check_plots ch01-idx-loading
check_plots ch02-normalization
check_plots ch03-one-hot-encoding
check_plots ch04-convolution --seed 1 --batch 2
check_plots ch05-pooling --seed 1
check_plots ch06-flatten --seed 1
check_plots ch07-dense --seed 1
check_plots ch08-softmax --seed 1
check_plots ch09-sgd --seed 1
check_plots ch10-fit --seed 1 --epochs 1 --max-steps 5 --save "$root/ch10-fit/$evil/weights"
[ -f "$root/ch10-fit/$evil/weights/manifest.txt" ] || fail "ch10-fit did not save into the hostile folder"
check_plots ch11-predict --seed 1 --load "$weights"
# Chapter 12 plots the ladder from a file of result lines: a hostile name too.
mkdir -p "$root/ladder/$evil"
printf 'result step=%s seed=%s train_seconds=%s test_accuracy=%s\n' \
  sgd 1 20.5 0.975 sgd 2 21.0 0.976 convnet 1 60.2 0.991 convnet 2 61.0 0.992 >"$root/ladder/$evil/results.txt"
check_plots ch12-beyond --ladder "$root/ladder/$evil/results.txt"

# Chapter 11 puts the image's file name in the plot's title: a name with
# quotes and commands is drawn as it is; one with a newline is refused.
image_name='x `touch PWNED-image` $(touch PWNED-image2) "d" '\''s'\'' .pgm'
cp "$seven" "$root/$image_name"
if out=$("$bin/ch11-predict" --load "$weights" --image "$root/$image_name" --plots "$root/image" 2>&1); then
  echo "ok: ch11-predict --image with quotes and commands in its name"
else
  fail "ch11-predict --image '$image_name': $(tail -n 2 <<<"$out")"
fi
cp "$seven" "$root/a"$'\n'"b.pgm"
if out=$("$bin/ch11-predict" --load "$weights" --image "$root/a"$'\n'"b.pgm" --plots "$root/image" 2>&1); then
  fail "ch11-predict --image with a newline in its name: not refused"
elif grep -q "error: .*control character" <<<"$out"; then
  echo "ok: ch11-predict refuses an image name with a newline: $(tail -n 1 <<<"$out")"
else
  fail "ch11-predict --image with a newline: an unclear message: $out"
fi

# The scripts that draw the committed figures from benchmark JSON: a hostile
# $OUT, and a JSON whose number holds a gnuplot command.
mkdir -p "$root/figures/$evil"
json() {  # name=value pairs as Google Benchmark's JSON writes them, one key per line
  echo '{ "benchmarks": ['
  while [ $# -gt 0 ]; do printf '    {\n      "name": "%s",\n      "%s": %s,\n    },\n' "$1" "$2" "$3"; shift 3; done
  echo '] }'
}
json conv2d_forward/naive/32 GFLOP/s 1.5 conv2d_backward/naive/32 GFLOP/s 1.2 peak_fma/all_threads GFLOP/s 200 \
  >"$root/bench-04.json"
json forward/conv2d/real_time real_time 120 update/sgd/real_time real_time 30 train_step/total/real_time real_time 900 \
  >"$root/bench-10.json"
json conv2d_forward/naive/32 GFLOP/s 1.5 peak_fma/all_threads GFLOP/s '200; system("touch PWNED-json")' \
  >"$root/poisoned.json"
for script in plot-bench-04 plot-fit-breakdown; do
  number=${script#plot-}
  [ "$script" = plot-fit-breakdown ] && number=10 || number=04
  if out=$(OUT="$root/figures/$evil/$script.png" bash "$scripts/$script.sh" "$root/bench-$number.json" 2>&1) &&
     [ "$(head -c 4 "$root/figures/$evil/$script.png" | od -An -c | tr -d ' ')" = '211PNG' ]; then
    echo "ok: $script drew into the hostile path"
  else
    fail "$script with a hostile OUT: $out"
  fi
done
# A chart script given a poisoned JSON must refuse it with its own message
# and draw nothing. $1 = script, $2 = JSON, $3 = the message, $4 = what is poisoned.
refuses() {
  local out
  if out=$(OUT="$root/figures/poisoned.png" bash "$scripts/$1.sh" "$2" 2>&1); then
    fail "$1 drew from a JSON whose $4"
  elif grep -q "$3" <<<"$out"; then
    echo "ok: $1 refuses a JSON whose $4"
  else
    fail "$1 with a JSON whose $4: $out"
  fi
}
refuses plot-bench-04 "$root/poisoned.json" "the peak is not a number" "peak is a command"
{ printf '{\n  "context": {\n    "kernels": "AVX2 %s",\n  },\n' '`touch PWNED-kernels`); system(\"touch PWNED-kernels2\"); print(\"'
  json forward/conv2d/real_time real_time 120 train_step/total/real_time real_time 900 | sed 1d | sed '1s/^/  "benchmarks": [\n/'
} >"$root/poisoned-10.json"
refuses plot-fit-breakdown "$root/poisoned-10.json" "unexpected kernels line" "kernels line holds gnuplot commands"
leftovers=$(find "$root/figures" -name '*.tmp')
[ -z "$leftovers" ] || fail "temporaries left: $leftovers"

if found=$(find "$root" -name 'PWNED*' | grep .); then
  fail "a command ran: $found"
fi
[ $failures -eq 0 ] || { echo "$failures failures"; exit 1; }
echo "hostile paths: every executable plotted to exactly the named folder, and no command ran"
