#!/usr/bin/env bash
# Runs Yubico python-fido2 2.2.1's device test suite (tests/device) against
# ferrokey, on a real Linux kernel in a QEMU guest.
#
# Usage: tests/conformance/run-fido2-suite.sh [--keep] [--timeout S] [-- PYTEST_ARGS...]
#
# The suite is destructive (it sets PIN a1b2c3d4, factory-resets) and unplugs
# and replugs the key (a power cycle). It drives "the hardware test rig" over
# HTTP (--controller URL --pico-port N), which here is ferrokey's control API
# (`ferrokey serve --control`). Steps:
#   1. guest (tools/vm/build), .venv with fido2==2.2.1 and pytest, the suite's
#      sdist (pip download, sha256-checked, unpacked into tools/.cache/fido2-suite);
#   2. the ferrokey binary (cargo build -p firmware-sim, or $FERROKEY_BIN);
#   3. `ferrokey serve` on free ports with a fresh state dir, --presence auto,
#      --control, and the optional features the suite tests: --bio (a
#      fingerprint sensor with no finger enrolled, so the key counts as freshly
#      reset) and --enterprise --enterprise-rp $EP_RP_ID (enterprise
#      attestation; the suite gets --ep-rp-id for its vendor-facilitated test);
#   4. the guest attaches key 1-1, keeps it attached across power cycles
#      (tests/conformance/guest-reattach-loop.sh in the background), and runs
#      pytest <suite>/tests/device --controller http://10.0.2.2:CTRL --pico-port 1
#      with the host's python (hostrun).
# Prints pytest's own output, then the accounting of tests/lib/accounting.py
# against tests/conformance/expectations.txt (a pass floor and the allowed
# skips, each with its reason; tests/conformance/summarize.py): every failure,
# every skip that is not allowed, every allowed skip that passed, timings, and
# last `N passed, N failed, N skipped`. Exit status 0 only if nothing failed.
#
#   --keep         keep the run directory (logs, state, junit.xml) even on success
#   --timeout S    kill the guest after S seconds (default 900)
#   -- ARGS        extra pytest arguments, e.g. -- -k test_clientpin
# Environment: FERROKEY_BIN (use this binary), FERROKEY_SUITE_CACHE (default
# tools/.cache/fido2-suite), FERROKEY_VM_CACHE (see tools/vm/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)

FIDO2_VERSION=2.2.1
FIDO2_SDIST_SHA256=85787428a94c3f8eaf72f0ff30afba983b559a1b1b795c93318c81b4ad4062c4
PYTEST_SPEC='pytest>=9,<10'   # the suite's own dev requirement
# The RP ID of vendor-facilitated enterprise attestation (test_ep_vendor).
EP_RP_ID=enterprise.example

keep=0 timeout=900 extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=1 ;;
    --timeout) timeout=$2; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run-fido2-suite: unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

stage() { printf '\n== %s\n' "$*"; }
now() { date +%s.%N; }
t_start=$(now)

stage "guest (tools/vm/build; cached)"
tools/vm/build >/dev/null

stage "python venv (.venv: fido2 $FIDO2_VERSION, pytest)"
if ! .venv/bin/python - "$FIDO2_VERSION" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
import pytest  # noqa: F401
sys.exit(0 if version("fido2") == sys.argv[1] and version("pytest").startswith("9.") else 1)
PY
then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "fido2==$FIDO2_VERSION" "$PYTEST_SPEC"
fi

stage "python-fido2 $FIDO2_VERSION device tests (sdist, cached)"
cache=${FERROKEY_SUITE_CACHE:-tools/.cache/fido2-suite}
suite="$repo/$cache/fido2-$FIDO2_VERSION"
case "$cache" in /*) suite="$cache/fido2-$FIDO2_VERSION" ;; esac
if [ ! -f "$suite/tests/device/conftest.py" ]; then
  mkdir -p "$(dirname "$suite")"
  dl=$(mktemp -d)
  .venv/bin/pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
    "fido2==$FIDO2_VERSION" -d "$dl"
  sdist="$dl/fido2-$FIDO2_VERSION.tar.gz"
  echo "$FIDO2_SDIST_SHA256  $sdist" | sha256sum -c --quiet - \
    || { echo "run-fido2-suite: $sdist does not have the expected sha256" >&2; exit 1; }
  rm -rf "$suite"
  tar -xzf "$sdist" -C "$(dirname "$suite")"
  rm -rf "$dl"
fi
# The guest sees the host read-only: compile the bytecode here, once.
.venv/bin/python -m compileall -q "$suite/tests" >/dev/null || true
echo "$suite"

bin=${FERROKEY_BIN:-}
if [ -z "$bin" ]; then
  stage "ferrokey binary (cargo build -p firmware-sim)"
  target_dir=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  cargo build -p firmware-sim --bin ferrokey
  bin="$target_dir/debug/ferrokey"
fi

run=$(mktemp -d /tmp/ferrokey-fido2-suite.XXXXXX)
stage "ferrokey serve (state and logs in $run)"
# The guest reaches the host's loopback as 10.0.2.2: the control API refuses
# other Host names than loopback ones unless allowed (DNS-rebinding guard).
"$bin" serve --listen 127.0.0.1:0 --control 127.0.0.1:0 --control-allow-host 10.0.2.2 \
  --state-dir "$run/state" --presence auto \
  --bio --enterprise --enterprise-rp "$EP_RP_ID" 2>"$run/ferrokey.log" &
ferrokey_pid=$!
cleanup() {
  kill "$ferrokey_pid" 2>/dev/null && wait "$ferrokey_pid" 2>/dev/null || true
}
trap cleanup EXIT

usbip_port='' ctrl_port=''
for _ in $(seq 300); do
  usbip_port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$run/ferrokey.log" | head -n1)
  ctrl_port=$(sed -n 's|.*control API on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$run/ferrokey.log" | head -n1)
  [ -n "$usbip_port" ] && [ -n "$ctrl_port" ] && break
  kill -0 "$ferrokey_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$usbip_port" ] || [ -z "$ctrl_port" ]; then
  echo "run-fido2-suite: ferrokey did not start:" >&2
  cat "$run/ferrokey.log" >&2
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi
echo "USB/IP on 127.0.0.1:$usbip_port, control API on 127.0.0.1:$ctrl_port"

stage "python-fido2 tests/device in the guest"
q() { printf '%q ' "$@"; }
pytest_cmd=$(q env PYTHONDONTWRITEBYTECODE=1 "$repo/.venv/bin/python" -m pytest \
  "$suite/tests/device" --controller "http://10.0.2.2:$ctrl_port" --pico-port 1 \
  -v -rfEs -p no:cacheprovider --junitxml="$run/junit.xml" --ep-rp-id "$EP_RP_ID" "${extra[@]}")
guest_script="loop=\"\$FERROKEY_REPO/tests/conformance/guest-reattach-loop.sh\"
sh \"\$loop\" 10.0.2.2 $usbip_port 1-1 >/work/reattach.log 2>&1 &
hostrun $pytest_cmd
status=\$?
kill \$! 2>/dev/null
exit \$status"
t_guest=$(now)
set +e
tools/vm/run --port "$usbip_port" --busid 1-1 --workdir "$run" --timeout "$timeout" \
  -- sh -c "$guest_script" 2>&1 | tee "$run/pytest.log"
status=${PIPESTATUS[0]}
set -e
t_end=$(now)
cleanup

stage "summary"
set +e
python3 tests/conformance/summarize.py "$run" "$status" "$t_start" "$t_guest" "$t_end" \
  $([ "$keep" = 1 ] && echo --keep)
result=$?
set -e
if [ "$result" = 0 ] && [ "$keep" = 0 ]; then
  rm -rf "$run"
fi
exit "$result"
