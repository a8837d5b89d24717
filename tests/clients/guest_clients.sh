#!/bin/sh
# Guest side of the client-package tests (entry point: run-clients-e2e.sh), run
# by tools/vm/run --chroot in the QEMU guest: udevd (so Chromium sees keys
# plugged after it started), the relying party, then the Playwright suite and
# the pytest+Selenium suite, each starting ferrokey inside the guest with
# --transport uhid through its own fixture (the seeded Playwright test also
# over usbip and --attach). Results: JUnit XML in $OUT.
set -u
cd "$FERROKEY_REPO"
OUT=${VM_WORK_HOSTPATH:?}/out
mkdir -p "$OUT"
export PYTHONDONTWRITEBYTECODE=1 DBUS_SESSION_BUS_ADDRESS=disabled: NO_AT_BRIDGE=1
mark() { echo "$1 $(cut -d' ' -f1 /proc/uptime)" >> "$OUT/timing"; }

# Chromium learns of new hidraw devices from udev's netlink events, which only
# udevd sends: without it a key plugged after the browser started is not seen.
/lib/systemd/systemd-udevd --daemon > "$OUT/udevd.log" 2>&1
sleep 0.5
if ! pgrep -x systemd-udevd > /dev/null && ! pgrep -f 'udevd' > /dev/null; then
  # Without it Chromium never sees the keys the fixtures plug in after it started.
  echo "guest-clients: FAIL udevd did not start (the host needs Debian's udev package): $(cat "$OUT/udevd.log")"
fi

.venv/bin/python tests/clients/rp_app.py --port 0 --url-file "$OUT/rp.url" > "$OUT/rp.log" 2>&1 &
i=0
while [ ! -s "$OUT/rp.url" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
FERROKEY_E2E_RP=$(cat "$OUT/rp.url")
export FERROKEY_E2E_RP
echo "guest-clients: relying party on $FERROKEY_E2E_RP"

if [ "${RUN_PLAYWRIGHT:-1}" = 1 ]; then
  mark playwright_start
  # The seeded test runs below over usbip and --attach (and pytest's over
  # uhid): run third in one Chromium session here, after the "already
  # registered" sheet, Chromium 156 aborted (SIGABRT) at its account chooser in
  # both CI runs of 2026-12-03; left out of this run until that is understood.
  (cd clients/node && FERROKEY_E2E_OUT="$OUT/playwright" DEBUG=pw:browser \
    node node_modules/@playwright/test/cli.js test -c e2e/playwright.config.js \
    --grep-invert 'seeded' 2> "$OUT/playwright-browser.log")
  echo "guest-clients: playwright exited $?"
  mark playwright_end
fi

if [ "${RUN_PLAYWRIGHT:-1}" = 1 ]; then
  # The same fixture over USB/IP: keys served on the guest's loopback and
  # attached with `usbip attach` (vhci-hcd) by ferrokeyServerOptions.attach.
  mark playwright_usbip_start
  (cd clients/node && FERROKEY_E2E_OUT="$OUT/playwright-usbip" FERROKEY_E2E_TRANSPORT=usbip \
    FERROKEY_E2E_ATTACH=1 node node_modules/@playwright/test/cli.js test -c e2e/playwright.config.js \
    -g 'seeded' 2> "$OUT/playwright-usbip-browser.log")
  echo "guest-clients: playwright (usbip) exited $?"
  mark playwright_usbip_end
fi

if [ "${RUN_PLAYWRIGHT:-1}" = 1 ]; then
  # And with --attach: the key attaches itself to vhci-hcd through sysfs (no
  # TCP port, no usbip program), so each transport has a browser ceremony.
  mark playwright_attach_start
  (cd clients/node && FERROKEY_E2E_OUT="$OUT/playwright-attach" FERROKEY_E2E_TRANSPORT=attach \
    node node_modules/@playwright/test/cli.js test -c e2e/playwright.config.js \
    -g 'seeded' 2> "$OUT/playwright-attach-browser.log")
  echo "guest-clients: playwright (attach) exited $?"
  mark playwright_attach_end
fi

if [ "${RUN_PYTEST:-1}" = 1 ]; then
  mark pytest_start
  .venv/bin/python -m pytest tests/clients/test_selenium_passkeys.py -v -rfEs -p no:cacheprovider \
    --ferrokey-transport uhid --junitxml="$OUT/pytest.xml" -o junit_family=xunit1
  echo "guest-clients: pytest exited $?"
  mark pytest_end
fi
exit 0
