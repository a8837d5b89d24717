# Shell helpers shared by the end-to-end entry scripts (tests/e2e/run-kernel-e2e.sh,
# tests/browser/run-browser-e2e.sh).  Source it from the repository root:
#   . tests/e2e/lib.sh
# Functions:
#   stage TEXT          print a stage heading
#   e2e_venv            make sure .venv/ has fido2 2.2.1 and webauthn 3.0.1
#   e2e_ferrokey_bin    print the ferrokey binary to use: $FERROKEY_BIN, else
#                       build it (cargo build -p firmware-sim); prints nothing
#                       (and returns 1) if the build fails
#   e2e_prepare NAME    the stages every runner starts with: the guest
#                       (tools/vm/build), the venv, the ferrokey binary; sets
#                       E2E_BIN (empty if the build failed: NAME says so)

stage() { printf '\n== %s\n' "$*"; }

E2E_WANT_FIDO2=2.2.1
E2E_WANT_WEBAUTHN=3.0.1

e2e_venv() {
  if ! .venv/bin/python - "$E2E_WANT_FIDO2" "$E2E_WANT_WEBAUTHN" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
sys.exit(0 if (version("fido2"), version("webauthn")) == tuple(sys.argv[1:3]) else 1)
PY
  then
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check \
      "fido2==$E2E_WANT_FIDO2" "webauthn==$E2E_WANT_WEBAUTHN"
  fi
}

e2e_ferrokey_bin() {
  if [ -n "${FERROKEY_BIN:-}" ]; then
    echo "$FERROKEY_BIN"
    return 0
  fi
  local target_dir
  target_dir=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  if cargo build -p firmware-sim --bin ferrokey >&2; then
    echo "$target_dir/debug/ferrokey"
  else
    return 1
  fi
}

e2e_prepare() {
  stage "guest (Debian packages, kernel, initramfs; cached)"
  tools/vm/build >/dev/null

  stage "python venv (.venv: fido2 $E2E_WANT_FIDO2, webauthn $E2E_WANT_WEBAUTHN)"
  e2e_venv

  [ -n "${FERROKEY_BIN:-}" ] || stage "ferrokey binary (cargo build -p firmware-sim)"
  if ! E2E_BIN=$(e2e_ferrokey_bin); then
    echo "$1: cargo build failed; every scenario will fail" >&2
    E2E_BIN=""
  fi
}

# A pytest stage on the host (no guest) against the ferrokey binary:
#   host_pytest_stage NAME DIR TITLE [PYTEST ARGS...]
# Prepares the venv (with pytest), builds the binary unless FERROKEY_BIN is
# set, then runs DIR's tests and ends with `N passed, N failed, N skipped`
# (tests/lib/pytest_stage.py). Replaces the shell.
host_pytest_stage() {
  local name=$1 dir=$2 title=$3
  shift 3
  stage "python venv (.venv: fido2, webauthn, pytest)"
  e2e_venv
  .venv/bin/python -c 'import pytest' 2>/dev/null ||
    .venv/bin/pip install -q --disable-pip-version-check "pytest>=9,<10"

  if ! FERROKEY_BIN=$(e2e_ferrokey_bin); then
    echo "$name: cargo build failed"
    echo "0 passed, 1 failed, 0 skipped"
    exit 1
  fi
  export FERROKEY_BIN

  stage "$title ($FERROKEY_BIN)"
  exec .venv/bin/python tests/lib/pytest_stage.py "$name" -- "$dir" -q -rfEs "$@"
}
