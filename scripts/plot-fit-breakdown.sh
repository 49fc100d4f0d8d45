#!/usr/bin/env bash
# Chapter 10's chart: where the time of one training step at batch 32 goes,
# from build/bin/10_fit_bench's JSON output (one bar per layer's forward and
# backward pass, the loss, and the optimizer update).
#
#   scripts/plot-fit-breakdown.sh               # runs the benchmark first, keeping its JSON in
#                                               # build/10_fit_bench.json
#   scripts/plot-fit-breakdown.sh results.json  # draws an existing JSON file
#
# Writes docs/figures/10-step-breakdown.png (or $OUT), its title naming the
# kernels the benchmark ran ("AVX-512+FMA, 2 threads"). Needs gnuplot and awk.
#
#   BUILD=build-avx2 OUT=docs/figures/10-step-breakdown-avx2.png scripts/plot-fit-breakdown.sh
#                                               # the same step in the AVX2 build
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
out=${OUT:-docs/figures/10-step-breakdown.png}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

json=${1:-}
if [ -z "$json" ]; then
  json=$build/10_fit_bench.json
  "$build/bin/10_fit_bench" --benchmark_out="$json" --benchmark_out_format=json
fi

# One line per part: its name and its real time in microseconds.
awk '
  /"name":/ { name = $0; sub(/.*"name": "/, "", name); sub(/".*/, "", name); sub(/\/real_time$/, "", name) }
  /"real_time":/ { t = $0; sub(/.*: /, "", t); sub(/,.*/, "", t); if (name != "train_step/total") print name, t; else print t > "'"$tmp"'/total" }
' "$json" > "$tmp/parts.dat"
[ -s "$tmp/parts.dat" ] || { echo "plot-fit-breakdown: no results in $json" >&2; exit 1; }
total=$(cat "$tmp/total")
# The kernels the benchmark ran ("AVX-512+FMA, 2 threads"), from its context.
kernels=$(sed -n 's/^ *"kernels": "\([^"]*\)".*/\1/p' "$json" | head -n 1)
[[ $kernels =~ ^[A-Za-z0-9+,.\ -]*$ ]] || { echo "plot-fit-breakdown: unexpected kernels line in $json" >&2; exit 1; }
label=${kernels:+ ($kernels)}
# fit runs the first two layers fused, and each Dense layer's backward pass
# with the update of its weights (backward+update); the parts it does not run
# (the two layers on their own, the Dense backward passes alone and the
# separate optimizer step) are drawn in grey for reference.
awk '{ ref = ($1 ~ /(conv2d|max_pooling2d)$/ || $1 ~ /^backward\/dense/ || $1 == "update/sgd"); print NR - 1, $1, $2, ref }' "$tmp/parts.dat" > "$tmp/rows.dat"
sum=$(awk '$4 == 0 { s += $3 } END { printf "%.0f", s }' "$tmp/rows.dat")
max=$(awk '$3 > m { m = $3 } END { printf "%.0f", m }' "$tmp/rows.dat")

# No file name and no free text from the JSON reaches gnuplot's commands: it
# runs in $tmp and reads its data files by their fixed names, the numbers it
# is given are checked to be numbers, the kernels line to hold only letters,
# digits, spaces and "+,.-", and it writes the PNG to its standard
# output, into a fresh temporary beside $out that one rename puts in place.
number() { [[ $2 =~ ^[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?$ ]] || { echo "plot-fit-breakdown: $1 is not a number: $2" >&2; exit 1; }; }
number "the total" "$total"; number "the sum" "$sum"; number "the largest part" "$max"
mkdir -p "$(dirname "$out")"
out=$(realpath -m "$out")
part=$(mktemp "$(dirname "$out")/.$(basename "$out").XXXXXX.tmp")
chmod "$(printf %o $((0666 & ~0$(umask))))" "$part"  # mktemp's 0600 would stay on the PNG
trap 'rm -rf "$tmp"; rm -f "$part"' EXIT
cd "$tmp"
gnuplot >"$part" <<GP
set terminal pngcairo size 1000,520 font ",11"
set title sprintf("One training step at batch 32$label: %.0f us\n(the parts fit runs, in blue, add up to $sum us)", $total) noenhanced
set style fill solid 0.85 border -1
set boxwidth 0.7
set yrange [-0.6:*] reverse
set ytics nomirror noenhanced
set xlabel "microseconds"
set xrange [0:$max * 1.6]
set grid xtics
unset key
plot "rows.dat" using (\$3*0.5):1:(\$3*0.5):(0.35):(\$4 > 0 ? 0xbbbbbb : 0x2166ac):yticlabels(2) with boxxyerror lc rgb variable, \
     '' using 3:1:(sprintf(" %.0f%s", \$3, \$4 > 0 ? "  (not run by fit)" : "")) with labels left
GP
cd - >/dev/null
mv -f "$part" "$out"
echo "wrote $out"
