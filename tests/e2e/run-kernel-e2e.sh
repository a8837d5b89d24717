#!/usr/bin/env bash
# End-to-end tests of ferrokey on a real Linux kernel.
#
# Usage: tests/e2e/run-kernel-e2e.sh [--keep] [--only SCENARIO,...] [--timeout S]
#
# Boots one throwaway QEMU guest (tools/vm/run: Debian kernel, -accel tcg),
# attaches a freshly started `ferrokey serve` over USB/IP (vhci_hcd -> usbhid ->
# /dev/hidrawN), and runs in it: the libfido2 CLI (fido2-token/-cred/-assert),
# python-fido2 2.2.1's Fido2Client and CTAP1 (U2F) checked by py_webauthn 3.0.1
# and python-fido2's attestation verifiers against the `ferrokey ca` root and
# `ferrokey mds` metadata, detach/re-attach, kill -9 + restart on the same state dir,
# U2F register/authenticate (fido2-cred -u, python-fido2's Ctap1), hmac-secret
# (libfido2 and python-fido2 agree on the output), credProtect, PIN lockout
# (3 wrong PINs) lifted by a re-attach, a PIN-protected ceremony (UV flags
# verified), tools/attach-local (attach, hidraw owner and mode, detach), factory
# reset (exactly NO_CREDENTIALS after), a key started with --presence deny
# (exactly OPERATION_DENIED) and a CANCEL while a touch-mode key waits (exactly
# KEEPALIVE_CANCEL), and the profiles (tests/e2e/guest_profiles.py: one key per
# `--profile`, getInfo through fido2-token -I and python-fido2, a u2f key through
# python-fido2's CTAP1 fallback, a synced-passkey registration py_webauthn sees
# as backed up). Adding a scenario: tests/e2e/README.md.
# Prints PASS/FAIL per scenario, timings, and last `N passed, N failed, N
# skipped` (tests/lib/accounting.py; known failures: tests/e2e/known-failures.txt).
#
# Installs what it needs when missing: Debian packages + the guest (tools/vm/build),
# a venv in .venv/ with fido2==2.2.1 and webauthn==3.0.1, and the ferrokey binary
# (cargo build -p firmware-sim).  Environment:
#   FERROKEY_BIN        use this ferrokey binary instead of building one
#   FERROKEY_VM_CACHE   guest cache dir (default tools/.cache/vm)
#   E2E_PRODUCT_MATCH   text the USB product name must contain (default: ferrokey)
#   E2E_AAGUID          expected AAGUID (hex), if set
set -euo pipefail
cd "$(dirname "$0")/../.."

case "${1:-}" in
  -h|--help) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac

# shellcheck source=tests/e2e/lib.sh
. tests/e2e/lib.sh  # stage, e2e_prepare

e2e_prepare run-kernel-e2e

stage "end-to-end on a real kernel (ferrokey: ${E2E_BIN:-none})"
exec python3 tests/e2e/kernel_e2e.py --ferrokey "$E2E_BIN" "$@"
