#!/usr/bin/env bash
# Chapter 04's chart: GFLOP/s of every Conv2D variant, forward and backward,
# at batch 1, 32 and 256, from the benchmark's JSON output.
#
#   scripts/plot-bench-04.sh                    # runs build/bin/04_convolution_bench first, keeping
#                                               # its JSON in build/04_convolution_bench.json
#   scripts/plot-bench-04.sh results.json       # draws an existing JSON file
#   BUILD=build-ch04 scripts/plot-bench-04.sh   # another build folder
#   scripts/plot-bench-04.sh "" --benchmark_repetitions=5   # the medians of 5 runs each
#
# Writes docs/figures/04-conv2d-gflops.png (or $OUT). Needs gnuplot and awk.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
out=${OUT:-docs/figures/04-conv2d-gflops.png}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

json=${1:-}
if [ -z "$json" ]; then
  json=$build/04_convolution_bench.json   # kept, for the numbers
  "$build/bin/04_convolution_bench" \
    --benchmark_out="$json" --benchmark_out_format=json "${@:2}"
fi

# The JSON has one key per line: pick "name" and "GFLOP/s" of each run, and
# write one table per direction: variant, GFLOP/s at batch 1, 32, 256. From a
# run with --benchmark_repetitions, the median ("..._median") wins over the
# single repetitions; the other aggregates are left out. The onednn rung, when
# the benchmark has it, comes last, as "oneDNN".
for dir in forward backward; do
  awk -v dir="$dir" '
    /"name":/ { name = $0; sub(/.*"name": "/, "", name); sub(/".*/, "", name) }
    /"GFLOP\/s":/ {
      v = $0; sub(/.*: /, "", v); sub(/,.*/, "", v)
      median = sub(/_median$/, "", name)
      if (name ~ /_(mean|stddev|cv)$/) next
      split(name, part, "/")
      if (part[2] == "onednn") part[2] = "oneDNN"
      if (part[1] == "conv2d_" dir && !((part[2], part[3]) in from_median)) {
        if (!(part[2] in seen)) { seen[part[2]] = 1; order[++n] = part[2] }
        g[part[2], part[3]] = v
        if (median) from_median[part[2], part[3]] = 1
      }
      if (part[1] == "peak_fma" && part[2] == "all_threads" && !peak_from_median) { peak = v; peak_from_median = median }
    }
    END {
      for (i = 1; i <= n; ++i) print order[i], g[order[i], 1], g[order[i], 32], g[order[i], 256]
      if (peak != "") print peak > "'"$tmp"'/peak"
    }
  ' "$json" > "$tmp/$dir.dat"
done
[ -s "$tmp/forward.dat" ] || { echo "plot-bench-04: no conv2d_ results in $json" >&2; exit 1; }
peak=$(cat "$tmp/peak" 2>/dev/null || echo "")

# No file name and no text from the JSON reaches gnuplot's commands: it runs
# in $tmp and reads its data files by their fixed names, the numbers it is
# given are checked to be numbers, and it writes the PNG to its standard
# output, into a fresh temporary beside $out that one rename puts in place.
number() { [[ $2 =~ ^[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?$ ]] || { echo "plot-bench-04: $1 is not a number: $2" >&2; exit 1; }; }
[ -z "$peak" ] || number "the peak" "$peak"
mkdir -p "$(dirname "$out")"
out=$(realpath -m "$out")
part=$(mktemp "$(dirname "$out")/.$(basename "$out").XXXXXX.tmp")
chmod "$(printf %o $((0666 & ~0$(umask))))" "$part"  # mktemp's 0600 would stay on the PNG
trap 'rm -rf "$tmp"; rm -f "$part"' EXIT
cd "$tmp"
gnuplot >"$part" <<GP
set terminal pngcairo size 1200,520 font ",11"
set multiplot layout 1,2 title "Conv2D(32, (3,3)) on (N, 28, 28, 1): GFLOP/s per variant (higher is better, log scale)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set logscale y
set yrange [0.5:$( [ -n "$peak" ] && echo "$peak * 2" || echo "*")]
set grid ytics
set ylabel "GFLOP/s"
set key below horizontal
$( [ -n "$peak" ] && echo "set arrow from graph 0, first $peak to graph 1, first $peak nohead dt 2 lw 2 lc rgb 'black'
set label 'peak of all cores ($(printf %.0f "$peak") GFLOP/s)' at graph 0.98, first $peak right offset 0,0.7" )
set title "forward"
plot "forward.dat" using 2:xtic(1) title "batch 1", '' using 3 title "batch 32", '' using 4 title "batch 256"
set title "backward (dkernel + dx)"
plot "backward.dat" using 2:xtic(1) title "batch 1", '' using 3 title "batch 32", '' using 4 title "batch 256"
unset multiplot
GP
cd - >/dev/null
mv -f "$part" "$out"
echo "wrote $out"
