#!/usr/bin/env bash
# Runs the test binaries of the crates that contain unsafe code under valgrind memcheck:
# zero errors and zero definite leaks, or a non-zero exit.
set -euo pipefail
cd "$(dirname "$0")/.."

CRATES=(frugal-defer)
# Property tests are slow under valgrind; fewer cases still cover both storage paths.
export PROPTEST_CASES="${PROPTEST_CASES:-24}"
export FRUGAL_UNDER_VALGRIND=1

status=0
for crate in "${CRATES[@]}"; do
  mapfile -t bins < <(cargo test -p "$crate" --tests --lib --no-run --message-format=json 2>/dev/null |
    python3 -c '
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
done
exit $status
