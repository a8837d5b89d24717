#!/usr/bin/env bash
# The client packages' own tests, without a browser (clients/python with pytest,
# clients/node with node's test runner), against real `ferrokey serve` processes
# on this host over USB/IP (CTAP through python-fido2 over USB/IP). Ends with
# `N passed, N failed, N skipped` (tests/clients/junit_stage.py).
#
# Usage: tests/clients/run-clients-tests.sh
# Environment: FERROKEY_BIN (use this binary; else cargo builds one).
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh
. tests/clients/lib.sh
export PYTHONDONTWRITEBYTECODE=1

clients_debs nodejs npm
clients_node
clients_python
if ! FERROKEY_BIN=$(e2e_ferrokey_bin); then
  echo "clients-unit: cargo build failed"
  echo "clients-unit: 0 passed, 1 failed, 0 skipped"
  exit 1
fi
export FERROKEY_BIN

out=$(mktemp -d /tmp/ferrokey-clients-unit.XXXXXX)
trap 'rm -rf "$out"' EXIT
stage "clients/python: pytest ($FERROKEY_BIN)"
.venv/bin/python -m pytest clients/python/tests -q -rfEs -p no:cacheprovider \
  --junitxml="$out/python.xml" || true
stage "clients/node: node --test"
(cd clients/node && FERROKEY_TEST_PYTHON="$PWD/../../.venv/bin/python" node --test \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=junit --test-reporter-destination="$out/node.xml" test/) || true
stage "clients-unit: results"
exec python3 tests/clients/junit_stage.py clients-unit --expect 60 "$out/python.xml" "$out/node.xml"
