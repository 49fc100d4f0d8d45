#!/usr/bin/env bash
# Installs the system packages the course needs (where missing) and fetches
# the MNIST data (where missing or unverified). Safe to run again: it reuses
# what is already there.
#
#   bash scripts/setup.sh               # packages + data
#   bash scripts/setup.sh --data        # data only
#   bash scripts/setup.sh --playground  # packages + data, and what the browser
#                                       # playground needs (about 1.8 GB more):
#                                       # Emscripten, Chromium, chromedriver
set -euo pipefail
cd "$(dirname "$0")/.."

data_only=0 playground=0
for arg in "$@"; do
  case "$arg" in
    --data) data_only=1 ;;
    --playground) playground=1 ;;
    --help|-h) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup: unknown option '$arg' (--data, --playground)" >&2; exit 2 ;;
  esac
done

packages=(
  g++ cmake make
  libgtest-dev libgmock-dev libbenchmark-dev libfmt-dev zlib1g-dev
  libgnuplot-iostream-dev libboost-iostreams-dev libboost-system-dev libboost-filesystem-dev
  gnuplot-nox fonts-dejavu-core  # gnuplot draws the PNG plots; the font is for their text
  dataset-fashion-mnist
  libdnnl-dev  # oneDNN: the industrial rung of chapter 04's benchmark (optional for the build)
  openmpi-bin libopenmpi-dev  # Open MPI: chapter 14's processes (mpirun) and their all-reduce
  libonnx-dev libprotobuf-dev  # ONNX's protobuf classes and checker: chapter 11 exports the model as ONNX
)
# The playground (docs/playground): the library compiled to WebAssembly, served
# by python3, tested in headless Chromium; curl and bzip2 fetch and unpack
# zlib's source for the WebAssembly build (wasm/get-zlib-source.sh).
playground_packages=(emscripten chromium chromium-driver python3 curl bzip2)
if [ "$playground" = 1 ]; then packages+=("${playground_packages[@]}"); fi

install_packages() {
  local missing=()
  # NN_SETUP_EXTRA_PACKAGES adds names to check; only the test of the
  # missing-sudo message sets it (to a package that does not exist).
  # shellcheck disable=SC2206
  local wanted=("${packages[@]}" ${NN_SETUP_EXTRA_PACKAGES:-})
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # npm fetches the data. Any npm will do: Node.js from elsewhere (NodeSource,
  # nvm) brings its own, and Debian's npm package would conflict with it.
  command -v npm >/dev/null || missing+=(npm)
  if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: system packages already installed"
    return
  fi
  # Installing needs root: as root we run apt-get directly, else through sudo.
  # A minimal Debian has no sudo; say what to do rather than fail on "sudo:
  # command not found". (NN_SETUP_SUDO is only for the test of this message.)
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo=${NN_SETUP_SUDO:-sudo}
    if ! command -v "$sudo" >/dev/null; then
      echo "setup: missing packages: ${missing[*]}" >&2
      echo "setup: installing them needs root, and sudo is not installed. Run this script once as root" >&2
      echo "setup: (su -c 'bash scripts/setup.sh'), or install sudo, then run it again as yourself." >&2
      echo "setup: Fetching the data alone needs no root: bash scripts/setup.sh --data" >&2
      exit 1
    fi
  fi
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

if [ "$data_only" = 0 ]; then
  install_packages
fi
bash scripts/fetch-mnist.sh
