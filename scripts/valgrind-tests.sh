#!/usr/bin/env bash
# Runs the test binaries of frugal-defer — the crate whose unsafe code does its own memory management
# (inline closure storage, pooled blocks) — under valgrind memcheck: zero errors and zero definite
# leaks, or a non-zero exit. (The other crates' unsafe code is thin syscall wrappers: getrusage,
# sched_setaffinity, a counting allocator over System.)
set -euo pipefail
cd "$(dirname "$0")/.."

CRATES=(frugal-defer)
# Every feature: the async scopes' tests, tokio integration included, run under memcheck too.
FEATURES=(--all-features)
# Property tests are slow under valgrind; fewer cases still cover both storage paths.
export PROPTEST_CASES="${PROPTEST_CASES:-24}"

status=0
for crate in "${CRATES[@]}"; do
  # Build first, with cargo's own diagnostics and exit status: a target that fails to compile
  # must fail this script, not silently drop out of the list below.
  cargo test -p "$crate" "${FEATURES[@]}" --tests --lib --no-run --locked
  messages=$(cargo test -p "$crate" "${FEATURES[@]}" --tests --lib --no-run --locked --message-format=json 2>/dev/null)
  mapfile -t bins < <(printf '%s\n' "$messages" | python3 -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["profile"]["test"]:
        print(msg["executable"])
')
  if ((${#bins[@]} == 0)); then
    echo "valgrind-tests: no test binaries found for $crate" >&2
    exit 1
  fi
  for bin in "${bins[@]}"; do
    echo "valgrind-tests: memcheck $(basename "$bin")" >&2
    if ! valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
      "$bin" --test-threads=1 -q; then
      echo "valgrind-tests: FAILED under memcheck: $bin" >&2
      status=1
    fi
  done
  echo "valgrind-tests: $crate: ${#bins[@]} test binaries clean under memcheck" >&2
done
exit $status
