#!/usr/bin/env bash
# The lifecycle scenarios (issue 13) as a relying party meets them, on the host
# (no guest): clone detection, device-bound keys, CXF migration, bad CXF, the
# CLI export/import round trip, device loss and recovery; keys served over
# USB/IP, driven through the control API, every sign-in verified by py_webauthn
# (tests/lifecycle/test_lifecycle.py).
# Ends with `N passed, N failed, N skipped` (tests/lib/pytest_stage.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

stage "python venv (.venv: fido2, webauthn, pytest)"
e2e_venv
.venv/bin/python -c 'import pytest' 2>/dev/null ||
  .venv/bin/pip install -q --disable-pip-version-check "pytest>=9,<10"

if ! FERROKEY_BIN=$(e2e_ferrokey_bin); then
  echo "lifecycle: cargo build failed"
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi
export FERROKEY_BIN

stage "lifecycle scenarios ($FERROKEY_BIN)"
exec .venv/bin/python tests/lib/pytest_stage.py lifecycle -- tests/lifecycle -q -rfEs "$@"
