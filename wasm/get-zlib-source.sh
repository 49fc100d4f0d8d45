#!/usr/bin/env bash
# Puts Debian's zlib source (the one libz.so on this machine is built from)
# in build-wasm/deps/zlib, for the WebAssembly build (wasm/dependencies.cmake).
# Debian ships no zlib for wasm32 and Emscripten's port downloads from GitHub;
# `apt-get source` needs a deb-src entry, added here for one update and removed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/build-wasm/deps/zlib"
[[ -f "$dest/inflate.c" ]] && { echo "zlib source already in $dest"; exit 0; }
work=$(mktemp -d)
list=/etc/apt/sources.list.d/line-by-line-deb-src.sources
cleanup() { rm -f "$list"; rm -rf "$work"; }
trap cleanup EXIT
. /etc/os-release
printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
  "$VERSION_CODENAME" > "$list"
apt-get update -qq
(cd "$work" && apt-get source --download-only zlib >/dev/null 2>&1 && tar xf zlib_*.orig.tar.*)
rm -f "$list"
apt-get update -qq
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$work"/zlib-*/ "$dest"
echo "zlib source in $dest"
