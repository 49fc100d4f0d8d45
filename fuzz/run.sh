#!/usr/bin/env bash
# Runs every libFuzzer target for SECONDS each (default 600), as many at once
# as the machine has cores, and prints each target's number of runs.
#
#   bash fuzz/run.sh            # 10 minutes each
#   bash fuzz/run.sh 60         # 1 minute each
#   bash fuzz/run.sh 600 npy    # only the named targets (idx, npy, pgm)
#   JOBS=1 bash fuzz/run.sh     # one target at a time
#
# Builds the `fuzz` preset (clang; apt-get install clang). Inputs up to 1 MB;
# each target starts from its committed seed corpus (real MNIST files, raw and
# gzip-compressed, the seed model's real .npy tensors, real PGM digits, and
# what earlier runs found) and from its dictionary, fuzz/<target>.dict. New
# inputs go to build-fuzz/corpus-<target>, never into the repository; a crash
# is written to build-fuzz/runs/<target>-crash-*, and the script then exits 1.
# To keep a finding as a test, copy it into the committed corpus: the normal
# build replays every corpus file (ctest -R _fuzz.corpus).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(idx npy pgm)
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "fuzz/run.sh: SECONDS must be a whole number > 0, not '$seconds'" >&2; exit 1; }
jobs=${JOBS:-$(nproc)}
command -v clang++ >/dev/null || { echo "fuzz/run.sh: clang++ is not installed (apt-get install clang)" >&2; exit 1; }

declare -A corpus=([idx]=fuzz/corpus [npy]=fuzz/corpus-npy [pgm]=fuzz/corpus-pgm)
for target in "${targets[@]}"; do
  [ -n "${corpus[$target]:-}" ] || { echo "fuzz/run.sh: no target '$target' (idx, npy, pgm)" >&2; exit 1; }
done

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target "${targets[@]/%/_fuzz}"

runs=build-fuzz/runs
mkdir -p "$runs"
failed=0
# Waits for the running targets and prints each one's count of runs.
finish() {
  local entry target status count
  for entry in "${pids[@]}"; do
    target=${entry%%:*}
    if wait "${entry#*:}"; then status=ok; else status="FAILED (see $runs/$target.log)"; failed=1; fi
    count=$(sed -n 's/^stat::number_of_executed_units: *//p' "$runs/$target.log" | tail -n 1)
    printf 'fuzz/run.sh: %-4s %12s runs in %s s: %s\n' "$target" "${count:-?}" "$seconds" "$status"
  done
  pids=()
}
pids=()
for target in "${targets[@]}"; do
  [ "${#pids[@]}" -lt "$jobs" ] || finish
  mkdir -p "build-fuzz/corpus-$target"
  dict=()
  [ -f "fuzz/$target.dict" ] && dict=("-dict=fuzz/$target.dict")
  echo "fuzz/run.sh: $target for $seconds s (log: $runs/$target.log)"
  # -rss_limit_mb: an input that makes the reader allocate more than 2 GB (or
  # one malloc larger than that) is a finding, as a crash is.
  "build-fuzz/bin/${target}_fuzz" "build-fuzz/corpus-$target" "${corpus[$target]}" "${dict[@]}" \
    -max_len=1048576 -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$runs/$target-" >"$runs/$target.log" 2>&1 &
  pids+=("$target:$!")
done
finish
exit $failed
