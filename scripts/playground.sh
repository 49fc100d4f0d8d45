#!/usr/bin/env bash
# Builds the playground (the course's library compiled to WebAssembly, and the
# page in docs/playground), puts it together in build-wasm/site, and serves it
# on http://localhost:8000/ until you press Ctrl-C.
#
#   bash scripts/setup.sh --playground     # once: Emscripten, Chromium, curl, python3
#   bash scripts/playground.sh             # build, assemble, serve
#
# options:
#   --weights DIR   the weights the page loads: a folder ch10-fit saved
#                   (default: build/weights when ch10-fit has saved there,
#                   else the committed set docs/playground/weights, seed 1)
#   --port N        serve on this port (default 8000)
#   --no-serve      build and assemble only
#   --site DIR      assemble into DIR (default build-wasm/site)
#   --make-samples  rewrite docs/playground/samples from data/mnist (the first
#                   100 test images and labels), then stop
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

weights="" port=8000 serve=1 site="$root/build-wasm/site" make_samples=0
usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --weights) [ $# -ge 2 ] || { echo "playground: --weights needs a folder" >&2; exit 2; }; weights=$2; shift 2 ;;
    --port) [[ "${2:-}" =~ ^[0-9]+$ ]] || { echo "playground: --port needs a number" >&2; exit 2; }; port=$2; shift 2 ;;
    --site) [ $# -ge 2 ] || { echo "playground: --site needs a folder" >&2; exit 2; }; site=$2; shift 2 ;;
    --no-serve) serve=0; shift ;;
    --make-samples) make_samples=1; shift ;;
    --help|-h) usage; exit 0 ;;
    *) echo "playground: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
done

if [ "$make_samples" = 1 ]; then
  # IDX files (chapter 01): the header with the count set to 100, then the
  # first 100 images (784 bytes each) or labels (1 byte each).
  mnist=${MNIST_DIR:-$root/data/mnist}
  out=docs/playground/samples
  mkdir -p "$out"
  for kind in images:3:784 labels:1:1; do
    IFS=: read -r name dims each <<<"$kind"
    src="$mnist/t10k-$name-idx$dims-ubyte"
    [ -f "$src" ] || { echo "playground: $src is missing (bash scripts/setup.sh --data fetches it)" >&2; exit 1; }
    header=$((4 + 4 * dims))
    dest="$out/t10k-first-100-$name-idx$dims-ubyte"
    { head -c 4 "$src"; printf '\x00\x00\x00\x64'; head -c "$header" "$src" | tail -c +9; \
      head -c $((header + 100 * each)) "$src" | tail -c +$((header + 1)); } > "$dest.tmp"
    mv "$dest.tmp" "$dest"
    echo "playground: wrote $dest"
  done
  exit 0
fi

for tool in emcc cmake; do
  command -v "$tool" >/dev/null || { echo "playground: $tool is missing: run bash scripts/setup.sh --playground" >&2; exit 1; }
done

if [ -z "$weights" ]; then
  if [ -f build/weights/manifest.txt ]; then weights=build/weights; else weights=docs/playground/weights; fi
fi
[ -f "$weights/manifest.txt" ] || { echo "playground: $weights holds no weights saved by ch10-fit (no manifest.txt)" >&2; exit 1; }

# (the first configure also fetches zlib's source: wasm/dependencies.cmake)
[ -f build-wasm/CMakeCache.txt ] || cmake --preset wasm
cmake --build --preset wasm

# The site: the page, the module, the samples and the weights, in a fresh
# folder moved into place at the end (never half-assembled).
tmp="$site.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/weights"
trap 'rm -rf "$tmp"' EXIT
cp docs/playground/index.html docs/playground/page.js build-wasm/bin/nn_playground.js build-wasm/bin/nn_playground.wasm "$tmp/"
cp -r docs/playground/samples "$tmp/"
while read -r key file _; do
  [ "$key" = file ] && cp "$weights/$file" "$tmp/weights/"
done < "$weights/manifest.txt"
cp "$weights/manifest.txt" "$tmp/weights/"
rm -rf "$site"
mv "$tmp" "$site"
trap - EXIT
echo "playground: $site (weights from $weights; nn_playground.wasm $(stat -c %s "$site/nn_playground.wasm") bytes)"

if [ "$serve" = 1 ]; then
  command -v python3 >/dev/null || { echo "playground: python3 is missing: run bash scripts/setup.sh --playground" >&2; exit 1; }
  echo "playground: open http://localhost:$port/ (Ctrl-C stops the server)"
  exec python3 -m http.server --bind 127.0.0.1 --directory "$site" "$port"
fi
