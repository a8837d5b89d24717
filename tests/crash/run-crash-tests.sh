#!/usr/bin/env bash
# Stage crash-consistency (issue 10 §3): the crash-point enumeration
# (tests/tests/crash_points.rs: every write boundary of a scripted session,
# restarted from its disk copy and checked) and the kill -9 rounds against the
# real ferrokey process (tests/tests/crash_kill.rs), FERROKEY_KILL_ROUNDS
# rounds (default here 300). Prints the figures and `N passed, N failed, N skipped`.
#
# Environment: FERROKEY_BIN (the ferrokey binary; built when unset),
# FERROKEY_KILL_ROUNDS, FERROKEY_KILL_SEED.
set -uo pipefail
cd "$(dirname "$0")/../.."
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export FERROKEY_KILL_ROUNDS="${FERROKEY_KILL_ROUNDS:-300}"

if [ -z "${FERROKEY_BIN:-}" ]; then
  target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  cargo build -p firmware-sim --bin ferrokey || { echo "0 passed, 1 failed, 0 skipped"; exit 1; }
  export FERROKEY_BIN="$target_dir/debug/ferrokey"
fi

passed=0 failed=0
for test in crash_points crash_kill; do
  log=$(mktemp /tmp/ferrokey-crash.XXXXXX)
  echo "== $test"
  cargo test -p ferrokey-tests --test "$test" -- --nocapture 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  if [ "$status" = 0 ] && grep -q '^test result: ok. 1 passed' "$log"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); echo "FAIL $test (exit $status)"
  fi
  grep -E '^(crash points enumerated|kill -9 rounds|operations:|a rolled-back)' "$log"
  rm -f "$log"
done
echo "$passed passed, $failed failed, 0 skipped"
[ "$failed" = 0 ]
