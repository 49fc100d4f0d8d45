#!/usr/bin/env bash
# Builds the playground's module, build-wasm/bin/nn_playground.{js,wasm}, as
# scripts/playground.sh does (cmake --preset wasm, cmake --build --preset wasm),
# so that the browser test never spends the first build's minutes inside
# ctest, which shows a test's output only once it has ended. Two callers:
#
#   the native build's target playground-wasm (where Emscripten, Chromium and
#   chromedriver were found when the build tree was configured): its progress
#   shows with the rest of the build. With --in-build a failure is reported
#   and the course's build goes on; the ctest run below fails on it;
#
#   ctest's Playground.wasm-module, run before Playground.browser (a fixture):
#   for a build tree configured before the tools were installed. ctest prints
#   its name when it starts; already built, it takes a second.
#
# Exit status 77 (ctest's "skipped") where emcc is missing: the browser test
# says so itself.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
in_build=0
[ "${1:-}" = --in-build ] && in_build=1
# A make calling a make: the inner build takes the preset's -j2 of its own.
unset MAKEFLAGS MFLAGS MAKELEVEL

if ! command -v emcc >/dev/null; then
  echo "SKIPPED: emcc not installed (bash scripts/setup.sh --playground installs it)"
  exit 77
fi
if [ ! -f build-wasm/bin/nn_playground.wasm ]; then
  echo "playground: building the library for WebAssembly in build-wasm, for the browser test"
  echo "playground: (the first time takes a few minutes: 2.5 to 3.5 with 2 cores; after that, only what changed)"
fi
if { [ -f build-wasm/CMakeCache.txt ] || cmake --preset wasm; } && cmake --build --preset wasm; then
  exit 0
fi
echo "playground: the WebAssembly build (build-wasm) failed; the output above says why"
if [ "$in_build" = 1 ]; then
  echo "playground: the course's build goes on without it; ctest's Playground.wasm-module will fail"
  exit 0
fi
exit 1
