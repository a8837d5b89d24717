// The Playwright fixture: one ferrokey server per worker, a fresh security key
// per test (created and removed through the control API), Chrome started with
// the flags its WebAuthn sheets need, and the key's events attached to the
// report of a failed test.
//
//   import { test, expect } from 'ferrokey/playwright';
//   test('sign in', async ({ page, securityKey }) => { ... await securityKey.chrome.selectAccount('alice'); });
//
// Chrome's flags are added to the launchOptions of the configuration (`use` in
// playwright.config.js or a project): a test.use({ launchOptions }) in a spec
// file replaces this fixture, and the sheet helper then cannot reach Chrome.
// Options (test.use / config `use`): ferrokeyServerOptions (worker: start()'s
// options, or {url} for a running server; {transport: 'usbip', attach: true}
// attaches each key with `usbip attach`), ferrokeyKeyOptions (Add Virtual
// Authenticator options; {vendor: {...}} for ferrokey's own).
import { test as base } from '@playwright/test';
import { Chrome, chromeFlags, freePort } from './chrome.js';
import { Client } from './client.js';
import { start } from './server.js';

const NEEDS_HIDRAW = new Set(['uhid', 'attach']);

/** The fixtures, for `yourTest.extend(securityKeyFixtures)`. */
export const securityKeyFixtures = {
  ferrokeyServerOptions: [{}, { scope: 'worker', option: true }],
  ferrokeyKeyOptions: [{}, { option: true }],

  ferrokeyServer: [async ({ ferrokeyServerOptions }, use) => {
    if (ferrokeyServerOptions.url) {
      const client = new Client(ferrokeyServerOptions.url, { token: ferrokeyServerOptions.token });
      await client.status();
      await use({ url: client.url, client, transport: ferrokeyServerOptions.transport ?? '' });
      return;
    }
    const { attach, ...startOptions } = ferrokeyServerOptions;
    const server = await start({ transport: attach ? 'usbip' : 'auto', ...startOptions });
    // Only the tests' own keys may be seen by the browser: unplug the ones the
    // server started with (a browser would otherwise pick any of them).
    if (NEEDS_HIDRAW.has(server.transport) || ferrokeyServerOptions.attach) {
      for (const key of await server.keys()) await key.power(false);
    }
    try {
      await use(server);
    } finally {
      await server.stop();
    }
  }, { scope: 'worker' }],

  ferrokeyUiDevtoolsPort: [async ({}, use) => { // eslint-disable-line no-empty-pattern
    await use(await freePort());
  }, { scope: 'worker' }],

  launchOptions: [async ({ launchOptions, ferrokeyUiDevtoolsPort }, use) => {
    await use({ ...launchOptions, args: [...(launchOptions.args ?? []), ...chromeFlags(ferrokeyUiDevtoolsPort)] });
  }, { scope: 'worker' }],

  securityKey: async ({ ferrokeyServer, ferrokeyServerOptions, ferrokeyKeyOptions, ferrokeyUiDevtoolsPort }, use, testInfo) => {
    const { vendor, ...options } = ferrokeyKeyOptions ?? {};
    const key = await ferrokeyServer.client.addVirtualAuthenticator(options, { vendor });
    let recorder = null;
    try {
      recorder = await key.recordEvents();
      key.chrome = new Chrome(ferrokeyUiDevtoolsPort);
      if (NEEDS_HIDRAW.has(ferrokeyServer.transport)) await key.waitForHidraw();
      else if (ferrokeyServerOptions.attach) await ferrokeyServer.attach(key);
      await key.info();
      await use(key);
    } finally {
      if (recorder) {
        await recorder.stop({ settleMs: 200 });
        if (testInfo.status !== testInfo.expectedStatus) {
          await testInfo.attach(`ferrokey events (authenticator ${key.authenticatorId})`, {
            body: recorder.transcript() || '(no events)', contentType: 'text/plain',
          });
        }
      }
      await key.remove();
    }
  },
};

/** @playwright/test's `test` with the fixtures. */
export const test = base.extend(securityKeyFixtures);
export { expect } from '@playwright/test';
