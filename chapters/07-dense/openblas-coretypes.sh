#!/usr/bin/env bash
# OpenBLAS in its best configuration for chapter 07's benchmark: runs the
# OpenBLAS rows of build/bin/07_dense_bench once per kernel set (OpenBLAS's
# own choice, then each of CORETYPES through OPENBLAS_CORETYPE), on 1 thread
# and on all threads, and reports the fastest kernel set for each.
#
#   chapters/07-dense/openblas-coretypes.sh
#   CORETYPES="Haswell Zen" chapters/07-dense/openblas-coretypes.sh
#
# Debian's OpenBLAS 0.3.21 chooses its kernels from the CPU it finds at load
# time and falls back to old generic ones (Prescott: SSE3) on a CPU it does
# not know; a core type it knows and this CPU can run is usually much faster.
# Needs a release build with OpenBLAS found (Debian libopenblas-dev).
set -euo pipefail
cd "$(dirname "$0")/../.."
bench=${BUILD:-build}/bin/07_dense_bench
coretypes="${CORETYPES:-Haswell SkylakeX Cooperlake Zen}"
[ -x "$bench" ] || { echo "openblas-coretypes: build first: cmake --preset release && cmake --build --preset release (no $bench)" >&2; exit 1; }
"$bench" --benchmark_list_tests | grep -q openblas ||
  { echo "openblas-coretypes: $bench was built without OpenBLAS (install libopenblas-dev, then configure again)" >&2; exit 1; }

printf "%-17s %-12s %-12s %10s %10s %10s %10s\n" OPENBLAS_CORETYPE "core used" threads "forward" "dW" "dx" "sum (us)"
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for ct in "" $coretypes; do   # "": OpenBLAS's own choice
  # A core type this CPU cannot run (or OpenBLAS does not know) is skipped.
  out=$(env ${ct:+OPENBLAS_CORETYPE=$ct} "$bench" --benchmark_filter=openblas --benchmark_min_time=0.2 2>&1) || continue
  core=$(echo "$out" | sed -n 's/^openblas_core: //p')
  for t in 1_thread all_threads; do
    echo "$out" | awk -v ct="${ct:-(default)}" -v core="$core" -v t="$t" '
      $1 ~ "^dense_.*/openblas/" t "/" { split($1, part, "/"); us[part[1]] = $2 }
      END { sum = us["dense_forward"] + us["dense_dkernel"] + us["dense_dx"]
            printf "%-17s %-12s %-12s %10.0f %10.0f %10.0f %10.0f\n", ct, core, t, us["dense_forward"], us["dense_dkernel"], us["dense_dx"], sum }'
  done | tee -a "$results"
done
echo
for t in 1_thread all_threads; do
  awk -v t="$t" '$3 == t && (best == "" || $7 < best) { best = $7; line = $1 " (" $2 ")" } END {
    printf "fastest on %s: OPENBLAS_CORETYPE=%s, %.0f us for the three products\n", t, line, best }' "$results"
done
