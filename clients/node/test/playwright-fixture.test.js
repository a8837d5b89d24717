// The Playwright fixtures' lifecycle without a browser: the fixture functions
// run as Playwright would run them (use() callbacks, a testInfo), against a
// real ferrokey.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as fk from 'ferrokey';
import { securityKeyFixtures, test as pwTest } from 'ferrokey/playwright';

const fixture = (name) => {
  const f = securityKeyFixtures[name];
  return Array.isArray(f) ? f[0] : f;
};

let server;
before(async () => {
  server = await fk.start({ transport: 'usbip' });
});
after(async () => {
  await server?.stop();
});

function testInfo(status) {
  const attachments = [];
  return { status, expectedStatus: 'passed', attachments, attach: async (name, opts) => attachments.push({ name, ...opts }) };
}

async function runSecurityKey(options, info, body, { serverOptions = {}, onServer = server } = {}) {
  let seen;
  await fixture('securityKey')({ ferrokeyServer: onServer, ferrokeyServerOptions: serverOptions, ferrokeyKeyOptions: options, ferrokeyUiDevtoolsPort: 4321 }, async (key) => {
    seen = key;
    await body(key);
  }, info);
  return seen;
}

test('a fresh key per test, removed after it, with the options asked for', async () => {
  const before = (await server.keys()).map((k) => k.authenticatorId);
  const info = testInfo('passed');
  const key = await runSecurityKey({ hasUserVerification: false, vendor: { exportable: false } }, info, async (k) => {
    const { options } = await k.info();
    assert.equal(options.uv, 'off');
    assert.equal(options.exportable, false);
    assert.ok(!before.includes(k.authenticatorId));
    assert.ok(k.chrome instanceof fk.Chrome);
    assert.equal(k.chrome.port, 4321);
  });
  await assert.rejects(key.info(), fk.NoSuchAuthenticator);
  assert.deepEqual((await server.keys()).map((k) => k.authenticatorId), before);
  assert.deepEqual(info.attachments, [], 'a passing test gets no transcript');
});

test("a failed test's report gets the key's events", async () => {
  const info = testInfo('failed');
  await runSecurityKey({}, info, async (key) => {
    await key.power(false);
    await key.power(true);
  });
  assert.equal(info.attachments.length, 1);
  const [attachment] = info.attachments;
  assert.match(attachment.name, /^ferrokey events \(authenticator \d+\)$/);
  assert.equal(attachment.contentType, 'text/plain');
  const events = attachment.body.split('\n').map((l) => JSON.parse(l).event);
  assert.ok(events.indexOf('powerOff') >= 0 && events.indexOf('powerOff') < events.indexOf('powerOn'), events.join(','));
});

test('the key is removed even when the test throws', async () => {
  let id;
  await assert.rejects(runSecurityKey({}, testInfo('failed'), async (key) => {
    id = key.authenticatorId;
    throw new Error('on purpose');
  }), /on purpose/);
  await assert.rejects(server.client.authenticator(id), fk.NoSuchAuthenticator);
});

test('with {attach: true} each key is attached before the test', async () => {
  const attached = [];
  const spy = Object.create(server, { attach: { value: async (k) => attached.push(k.authenticatorId) } });
  const key = await runSecurityKey({}, testInfo('passed'), async (k) => {
    assert.deepEqual(attached, [k.authenticatorId]);
  }, { serverOptions: { attach: true }, onServer: spy });
  assert.deepEqual(attached, [key.authenticatorId]);
});

test('launch options get the Chrome flags; a running server can be used by URL', async () => {
  let launch;
  await fixture('launchOptions')({ launchOptions: { args: ['--x'], executablePath: '/usr/bin/chromium' }, ferrokeyUiDevtoolsPort: 999 }, async (o) => {
    launch = o;
  });
  assert.deepEqual(launch, { executablePath: '/usr/bin/chromium', args: ['--x', ...fk.chromeFlags(999)] });
  let used;
  await fixture('ferrokeyServer')({ ferrokeyServerOptions: { url: server.url } }, async (s) => {
    used = s;
    assert.equal((await s.client.status()).keys[0].busid, '1-1');
  });
  assert.equal(used.url, server.url);
  await server.client.status(); // not stopped by the fixture
  let started;
  await fixture('ferrokeyServer')({ ferrokeyServerOptions: { transport: 'usbip' } }, async (s) => {
    started = s;
    assert.equal(s.transport, 'usbip');
    assert.notEqual(s.url, server.url);
  });
  await assert.rejects(started.client.status(), fk.ConnectionFailed);
  assert.equal(typeof pwTest.extend, 'function');
});
