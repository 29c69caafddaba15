#!/usr/bin/env bash
# Installs the system packages that frugal's tests and experiments use, if missing.
# Idempotent and quiet when everything is already there. Needs root (or sudo) to install.
set -euo pipefail

# One package a line: what needs it.
PACKAGES=(
  valgrind        # memcheck over the defer crate's tests; cachegrind/callgrind for `frugal stat --sim`
  linux-perf      # `perf stat`, the reference our software counts are compared with
  python3         # scripts/valgrind-tests.sh reads cargo's JSON messages
  prometheus      # frugal-rightsize's integration test: /usr/bin/prometheus and /usr/bin/promtool
  linux-libc-dev  # bench locality: /usr/include/linux/mempolicy.h, the RECLAIM_* bits claim 3.2 is checked against
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "scripts/deps.sh: installing ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's prometheus package starts a system service on :9090 where systemd runs; the tests start
# their own server on a free loopback port, so stop the one we just installed.
if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null &&
  systemctl is-active --quiet prometheus 2>/dev/null; then
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
