#!/usr/bin/env bash
# Puts zlib's source in build-wasm/deps/zlib, for the WebAssembly build
# (wasm/dependencies.cmake): Debian ships no zlib for wasm32, and Emscripten's
# own port (-sUSE_ZLIB) downloads from GitHub at build time.
#
# The source is Debian 12's own (the one its libz.so is built from), fetched
# from Debian's archive and checked by SHA-256 before it is unpacked. No root.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/build-wasm/deps/zlib"
url=http://deb.debian.org/debian/pool/main/z/zlib/zlib_1.2.13.dfsg.orig.tar.bz2
sha256=71feb7947e3c00ef125f83b79a4e529bde31171e5babe48b391f06758d1ab0a1

[[ -f "$dest/inflate.c" ]] && { echo "zlib source already in $dest"; exit 0; }
command -v curl >/dev/null || { echo "get-zlib-source: curl is missing (bash scripts/setup.sh --playground installs it)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -sSfL --retry 3 -o "$work/zlib.tar.bz2" "$url" || { echo "get-zlib-source: cannot download $url" >&2; exit 1; }
got=$(sha256sum "$work/zlib.tar.bz2" | cut -d' ' -f1)
if [[ "$got" != "$sha256" ]]; then
  echo "get-zlib-source: $url has SHA-256 $got, not $sha256: not unpacked" >&2
  exit 1
fi
tar --no-same-owner -C "$work" -xjf "$work/zlib.tar.bz2"
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$work"/zlib-*/ "$dest"
echo "zlib source in $dest (Debian's 1.2.13.dfsg, SHA-256 checked)"
