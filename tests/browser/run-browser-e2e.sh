#!/usr/bin/env bash
# Browser passkey tests: headless Chromium and headless Firefox ESR register and
# sign in on a real relying-party page with ferrokey attached over USB/IP.
#
# Usage: tests/browser/run-browser-e2e.sh [--browsers chromium,firefox] [--only SCENARIO,...]
#                                         [--known-failures FILE] [--keep] [--timeout S]
#
# Boots one throwaway QEMU guest (tools/vm/run: Debian kernel, -accel tcg, 2 GiB,
# 2 vCPUs) in which each browser, in turn, gets its own freshly started ferrokey
# key (vhci_hcd -> usbhid -> /dev/hidrawN) and opens a self-driving page served
# by tests/browser/rp_server.py on the guest's http://localhost; py_webauthn
# 3.0.1 verifies every ceremony server-side, trusting the `ferrokey ca` root.
# Scenarios per browser: nonresident-register-signin, discoverable-register-signin,
# exclude-credentials (InvalidStateError), attestation-direct (packed, chain to
# the root), counter-and-flags (counter increases, BE/BS false), and the key as a
# test instrument through its control API (driven by the RP): instrument-seeded-signin
# (a seeded resident P-256 credential signs in, the RP verifies with its own public
# key, credentialAsserted arrives, Get Credentials shows the counter),
# instrument-bogus-signature and instrument-bad-up (CDP response overrides);
# other keys, which the RP adds through the control API and the harness plugs
# (udevd runs, so Chromium sees them): profile-synced-passkey (backed up,
# multi-device), profile-u2f (the browser's U2F fallback, fido-u2f
# attestation), lifecycle-clone (the RP refuses the copy that is behind) and
# lifecycle-migration (CXF export into a synced-passkey key signs in).
# Prints PASS/FAIL per scenario per browser, a timing table per browser, and
# last `N passed, N failed, N skipped` (tests/lib/accounting.py); exit status 0
# only if nothing failed. Known failures: tests/browser/known-failures.txt
# (XFAIL while they fail; the run fails when one passes again).  Browser
# profiles are warmed once on the host and cached (FERROKEY_BROWSER_CACHE,
# default next to FERROKEY_VM_CACHE or tools/.cache/browser).
#
# Installs what it needs when missing: Debian packages chromium and firefox-esr,
# the guest (tools/vm/build), a venv in .venv/ with fido2 2.2.1 and webauthn
# 3.0.1, and the ferrokey binary (cargo build -p firmware-sim; honours
# CARGO_TARGET_DIR).  Environment:
#   FERROKEY_BIN        use this ferrokey binary instead of building one
#   FERROKEY_VM_CACHE   guest cache dir (default tools/.cache/vm)
set -euo pipefail
cd "$(dirname "$0")/../.."

case "${1:-}" in
  -h|--help) sed -n '2,37p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac

# shellcheck source=tests/e2e/lib.sh
. tests/e2e/lib.sh  # stage, e2e_prepare
export PYTHONDONTWRITEBYTECODE=1

# Debian packages the browsers come from (binary -> package).
need=()
[ -x /usr/lib/chromium/chromium ] || need+=(chromium)
[ -x /usr/lib/firefox-esr/firefox-esr ] || need+=(firefox-esr)
if [ ${#need[@]} -gt 0 ]; then
  stage "Debian packages: ${need[*]}"
  sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo -n)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get -q -o DPkg::Lock::Timeout=300 update
  "${sudo[@]}" apt-get -q -o DPkg::Lock::Timeout=300 install -y --no-install-recommends \
    "${need[@]}" fonts-liberation
fi

e2e_prepare run-browser-e2e

stage "browsers in a real-kernel guest (ferrokey: ${E2E_BIN:-none})"
exec python3 tests/browser/browser_e2e.py --ferrokey "$E2E_BIN" "$@"
