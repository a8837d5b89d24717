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

host_pytest_stage lifecycle tests/lifecycle "lifecycle scenarios" "$@"
