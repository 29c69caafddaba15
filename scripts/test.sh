#!/usr/bin/env bash
# The test command (README): installs what the tests need, runs every test of the workspace,
# then the defer crate's tests under valgrind memcheck.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
cargo test --workspace --locked
scripts/valgrind-tests.sh
