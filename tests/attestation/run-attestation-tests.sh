#!/usr/bin/env bash
# Attestation as a strict relying party sees it, on the host (no guest):
# python-fido2's PackedAttestation / FidoU2FAttestation / verify_x509_chain and
# MDS3 (parse_blob, MdsAttestationVerifier), and py_webauthn, against keys served
# over USB/IP in every attestation mode (tests/attestation/test_attestation.py).
# Ends with `N passed, N failed, N skipped` (tests/lib/pytest_stage.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

host_pytest_stage attestation tests/attestation "attestation with python-fido2's verifiers" "$@"
