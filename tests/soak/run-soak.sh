#!/usr/bin/env bash
# Stage soak (issue 10 §4): tests/tests/soak.rs (ignored by cargo test) for
# FERROKEY_SOAK_SECONDS (default 60): 16 keys in one ferrokey process, several
# clients per key doing random operations, detaches, control-API power cycles
# and kill -9 + restart; invariants, and RSS / fds / threads bounded.
# Prints the figures and `N passed, N failed, N skipped`.
#
# Environment: FERROKEY_BIN (built when unset), FERROKEY_SOAK_SECONDS,
# FERROKEY_SOAK_SEED, FERROKEY_SOAK_CLIENTS, FERROKEY_SOAK_KILLS.
set -uo pipefail
cd "$(dirname "$0")/../.."
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export FERROKEY_SOAK_SECONDS="${FERROKEY_SOAK_SECONDS:-60}"

if [ -z "${FERROKEY_BIN:-}" ]; then
  target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  cargo build -p firmware-sim --bin ferrokey || { echo "0 passed, 1 failed, 0 skipped"; exit 1; }
  export FERROKEY_BIN="$target_dir/debug/ferrokey"
fi

log=$(mktemp /tmp/ferrokey-soak.XXXXXX)
trap 'rm -f "$log"' EXIT
cargo test -p ferrokey-tests --test soak -- --ignored --nocapture 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "$status" = 0 ] && grep -q '^test result: ok. 1 passed' "$log"; then
  echo "1 passed, 0 failed, 0 skipped"
else
  echo "FAIL soak (exit $status)"
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi
