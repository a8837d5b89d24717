// The Playwright proof of the fixture (run in the QEMU guest by
// tests/clients/run-clients-e2e.sh): Debian's Chromium (no browser download),
// ferrokey keys as uhid devices inside the guest, the relying party of
// tests/clients/rp_app.py at $FERROKEY_E2E_RP.
import { defineConfig } from '@playwright/test';

const out = process.env.FERROKEY_E2E_OUT ?? '/tmp/ferrokey-playwright';

export default defineConfig({
  testDir: '.',
  outputDir: `${out}/results`,
  timeout: 300_000,
  expect: { timeout: 30_000 },
  workers: 1,
  retries: 0,
  reporter: [['list'], ['junit', { outputFile: `${out}/junit.xml` }]],
  use: {
    baseURL: process.env.FERROKEY_E2E_RP,
    // uhid; or usbip, each test's key attached with `usbip attach` (FERROKEY_E2E_ATTACH=1)
    ferrokeyServerOptions: { transport: process.env.FERROKEY_E2E_TRANSPORT ?? 'uhid', attach: process.env.FERROKEY_E2E_ATTACH === '1' },
    launchOptions: {
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      timeout: 300_000,
      // Under TCG a child process can take >15 s to connect back (see
      // /work/shared README §5); the FIDO log tells what the sheets did.
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--ipc-connection-timeout=600',
        '--enable-logging=stderr', '--vmodule=device_event_log_impl=2'],
    },
    navigationTimeout: 120_000,
    actionTimeout: 60_000,
  },
});
