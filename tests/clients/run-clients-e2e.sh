#!/usr/bin/env bash
# The client packages against a real browser: in one throwaway QEMU guest
# (tools/vm/run, real Debian kernel, 2 GiB, 2 vCPUs), Debian's Chromium runs
#   - the Playwright suite clients/node/e2e (playwright-core from npm, the
#     system Chromium; the `securityKey` fixture of ferrokey/playwright), and
#   - the pytest suite tests/clients/test_selenium_passkeys.py (Selenium from
#     PyPI, Debian's chromium-driver; the `security_key` fixture of the
#     ferrokey pytest plugin),
# each starting `ferrokey serve --transport uhid` inside the guest through its
# fixture (a fresh key per test; the seeded-credential Playwright test runs once
# more with --transport usbip and `usbip attach` in the guest, and once with
# --transport attach) and answering Chrome's WebAuthn sheets with the
# packages' UI DevTools helper; tests/clients/rp_app.py verifies every
# ceremony. Ends with `N passed, N failed, N skipped`.
#
# Usage: tests/clients/run-clients-e2e.sh [--only playwright|pytest] [--keep] [--timeout S]
# Environment: FERROKEY_BIN, FERROKEY_VM_CACHE.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh
. tests/clients/lib.sh
export PYTHONDONTWRITEBYTECODE=1

only="" keep=0 timeout=1500
while [ $# -gt 0 ]; do
  case "$1" in
    --only) only=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --timeout) timeout=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run-clients-e2e: unknown argument $1" >&2; exit 2 ;;
  esac
done

clients_debs nodejs npm chromium chromium-driver fonts-liberation udev
e2e_prepare run-clients-e2e   # guest, .venv (fido2, webauthn), E2E_BIN
clients_node
clients_python
if [ -z "$E2E_BIN" ]; then
  echo "clients-browser: 0 passed, 1 failed, 0 skipped"
  exit 1
fi

work=$(mktemp -d /tmp/ferrokey-clients-e2e.XXXXXX)
run_pw=1 run_py=1 expect=7
case "$only" in
  playwright) run_py=0 expect=4 ;;
  pytest) run_pw=0 expect=3 ;;
  "") ;;
  *) echo "run-clients-e2e: --only playwright|pytest" >&2; exit 2 ;;
esac
stage "Playwright and Selenium in a real-kernel guest (ferrokey: $E2E_BIN)"
t0=$(date +%s)
status=0
tools/vm/run --workdir "$work" --timeout "$timeout" --memory 2048 --smp 2 --chroot \
  --env "FERROKEY_BIN=$E2E_BIN" --env "RUN_PLAYWRIGHT=$run_pw" --env "RUN_PYTEST=$run_py" \
  -- "$PWD/tests/clients/guest_clients.sh" || status=$?
echo "guest finished with exit status $status in $(( $(date +%s) - t0 ))s"
if [ -f "$work/out/timing" ]; then
  awk '{t[$1]=$2} END {
         if (t["playwright_end"]) printf "  playwright suite (browser start included) %7.1f s\n", t["playwright_end"]-t["playwright_start"];
         if (t["playwright_usbip_end"]) printf "  playwright, usbip + usbip attach (seeded test) %7.1f s\n", t["playwright_usbip_end"]-t["playwright_usbip_start"];
         if (t["playwright_attach_end"]) printf "  playwright, --attach (seeded test) %7.1f s\n", t["playwright_attach_end"]-t["playwright_attach_start"];
         if (t["pytest_end"]) printf "  pytest+selenium suite (browser start included) %7.1f s\n", t["pytest_end"]-t["pytest_start"] }' "$work/out/timing"
fi
files=()
[ "$run_pw" = 1 ] && files+=("$work/out/playwright/junit.xml" "$work/out/playwright-usbip/junit.xml" "$work/out/playwright-attach/junit.xml")
[ "$run_py" = 1 ] && files+=("$work/out/pytest.xml")
stage "clients-browser: results"
result=0
python3 tests/clients/junit_stage.py clients-browser --expect "$expect" "${files[@]}" || result=$?
if [ "$result" != 0 ] || [ "$keep" = 1 ]; then
  echo "work dir kept: $work (out/: junit, playwright-browser.log, rp.log; .vm/console.log)"
else
  rm -rf "$work"
fi
exit "$result"
