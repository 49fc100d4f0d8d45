#!/usr/bin/env bash
# Builds and tests the course as other learners' CPUs build it, on this
# machine, before you push:
#
#   bash scripts/check-machines.sh            # all of the below
#   bash scripts/check-machines.sh avx2       # only the named trees
#
#   release    this CPU (-march=native), build/
#   avx2       an AMD laptop's AVX2 + FMA (-march=haswell -mtune=znver3), build-avx2/;
#              runs on any x86-64 CPU with AVX2, Intel's AVX-512 servers included
#   portable   x86-64-v2 (SSE4.2, no FMA: a package built for any PC), build-portable/
#
# Each tree is configured from its CMake preset, built, and runs every ctest
# test. Then, where both release and avx2 were built, the same short training
# runs in each must give the same weights bit for bit
# (scripts/compare-builds.sh). Run scripts/setup.sh once first.
set -euo pipefail
cd "$(dirname "$0")/.."

trees=("$@")
[ ${#trees[@]} -eq 0 ] && trees=(release avx2 portable)
for t in "${trees[@]}"; do
  case "$t" in
    release|avx2|portable) ;;
    --help|-h) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "check-machines: unknown tree '$t' (release, avx2, portable)" >&2; exit 2 ;;
  esac
done
if [ "$(uname -m)" != x86_64 ]; then
  echo "check-machines: these trees are x86-64 builds; this machine is $(uname -m)" >&2
  exit 2
fi

if [[ " ${trees[*]} " == *" avx2 "* ]] && ! grep -qw avx2 /proc/cpuinfo; then
  echo "check-machines: this CPU has no AVX2: the avx2 tree's programs would not run here (name the others)" >&2
  exit 2
fi

summary=()
for t in "${trees[@]}"; do
  echo "== $t: configure, build, ctest"
  start=$SECONDS
  cmake --preset "$t" >/dev/null && cmake --build --preset "$t" && ctest --preset "$t" || {
    echo "check-machines: the $t tree failed (above)" >&2
    exit 1
  }
  summary+=("$(printf '%-9s build + ctest passed in %4d s' "$t" $((SECONDS - start)))")
done

if [[ " ${trees[*]} " == *" release "* && " ${trees[*]} " == *" avx2 "* ]]; then
  echo "== release against avx2: the same weights, bit for bit"
  bash scripts/compare-builds.sh build build-avx2 || exit 1
  summary+=("release and avx2 trained the same bits")
fi
echo "check-machines: passed"
printf '  %s\n' "${summary[@]}"
