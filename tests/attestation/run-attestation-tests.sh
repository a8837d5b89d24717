#!/usr/bin/env bash
# Attestation as a strict relying party sees it, on the host (no guest):
# python-fido2's PackedAttestation / FidoU2FAttestation / verify_x509_chain and
# MDS3 (parse_blob, MdsAttestationVerifier), and py_webauthn, against keys served
# over USB/IP in every attestation mode (tests/attestation/test_attestation.py).
# Ends with `N passed, N failed, N skipped` (tests/lib/pytest_stage.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

stage "python venv (.venv: fido2, webauthn, pytest)"
e2e_venv
.venv/bin/python -c 'import pytest' 2>/dev/null ||
  .venv/bin/pip install -q --disable-pip-version-check "pytest>=9,<10"

if ! FERROKEY_BIN=$(e2e_ferrokey_bin); then
  echo "attestation: cargo build failed"
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi
export FERROKEY_BIN

stage "attestation with python-fido2's verifiers ($FERROKEY_BIN)"
exec .venv/bin/python tests/lib/pytest_stage.py attestation -- tests/attestation -q -rfEs "$@"
