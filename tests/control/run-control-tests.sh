#!/usr/bin/env bash
# Tests the control API of a running `ferrokey serve --control` from the
# outside (tests/control/test_control_api.py): curl, python requests, urllib
# as python-fido2's rig calls it, a Unix socket, a bearer token; the refusal
# of browser requests on another site's behalf, with a real headless Chromium
# on a hostile page; every answer against openapi.json's JSON Schemas; and
# schemathesis fuzzing the whole API (no 5xx, no schema violation).
#
# Usage: tests/control/run-control-tests.sh [PYTEST_ARGS...]
# Environment: FERROKEY_BIN (use this binary), FERROKEY_SCHEMATHESIS_EXAMPLES
# (examples per operation, default 50).
# Installs what it needs when missing: Debian's chromium, and schemathesis,
# requests and pytest into .venv/.
set -euo pipefail
cd "$(dirname "$0")/../.."

stage() { printf '\n== %s\n' "$*"; }

if [ ! -x /usr/lib/chromium/chromium ] || ! command -v curl >/dev/null; then
  stage "Debian packages: chromium curl"
  sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo -n)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get -q -o DPkg::Lock::Timeout=300 update
  "${sudo[@]}" apt-get -q -o DPkg::Lock::Timeout=300 install -y --no-install-recommends chromium curl
fi

stage "python venv (.venv: schemathesis 4, requests, pytest)"
if ! .venv/bin/python - 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
import jsonschema_rs, requests, pytest  # noqa: F401
sys.exit(0 if version("schemathesis").startswith("4.") and version("pytest").startswith("9.") else 1)
PY
then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "schemathesis>=4,<5" requests "pytest>=9,<10"
fi

if [ -z "${FERROKEY_BIN:-}" ]; then
  stage "ferrokey binary (cargo build -p firmware-sim)"
  target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  cargo build -p firmware-sim --bin ferrokey
  export FERROKEY_BIN="$target_dir/debug/ferrokey"
fi

stage "control API from the outside ($FERROKEY_BIN)"
exec .venv/bin/python tests/lib/pytest_stage.py control -- tests/control -v -rfEs "$@"
