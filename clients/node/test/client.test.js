// The client against a real `ferrokey serve --transport usbip --control`:
// every command, checked through the event stream and, for signatures and
// counters, through CTAP (python-fido2 over USB/IP: ctap_helper.py).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import * as fk from 'ferrokey';

const HERE = dirname(fileURLToPath(import.meta.url));
const PYTHON = process.env.FERROKEY_TEST_PYTHON ?? resolve(HERE, '../../../.venv/bin/python');
const CDH = createHash('sha256').update('client data').digest();

let server;
before(async () => {
  server = await fk.start({ transport: 'usbip' });
});
after(async () => {
  await server?.stop();
});

async function freshKey(options, more) {
  return server.client.addVirtualAuthenticator(options, more);
}

/** One getAssertion over USB/IP; {credentialId, authData, signature, counter, userPresent} or {error}. */
async function getAssertion(key, rpId, allow) {
  const args = [join(HERE, 'ctap_helper.py'), String(server.usbipPort), await key.busid(), rpId, CDH.toString('hex')];
  if (allow) args.push(fk.b64url(allow));
  const { stdout } = await promisify(execFile)(PYTHON, args, { timeout: 60000 });
  return JSON.parse(stdout);
}
const signs = (cred, a) => cred.verify(fk.unb64url(a.signature), Buffer.concat([fk.unb64url(a.authData), CDH]));

test('start() gives a usable handle', async () => {
  assert.equal(server.transport, 'usbip');
  assert.equal(server.busid, '1-1');
  assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.ok(server.usbipPort > 0);
  assert.equal(server.hidraw, null);
  const [first] = await server.keys();
  assert.equal(await first.busid(), '1-1');
  assert.equal((await server.client.status()).keys[0].busid, '1-1');
});

test('errors are WebDriver errors', async () => {
  await assert.rejects(freshKey({ transport: 'nfc' }), (e) => e instanceof fk.InvalidArgument && e.error === 'invalid argument' && e.status === 400 && /transport/.test(e.message));
  await assert.rejects(server.client.authenticator('9999'), (e) => e instanceof fk.NoSuchAuthenticator && e.status === 404);
  const key = await freshKey();
  try {
    await assert.rejects(key.removeCredential(Buffer.from('never made')), fk.NoSuchCredential);
    await assert.rejects(key.addCredential({ credentialId: 'eA', isResidentCredential: true, rpId: 'localhost', privateKey: Buffer.from('not a key') }), fk.InvalidArgument);
  } finally {
    await key.remove();
  }
  const noUv = await freshKey({ hasUserVerification: false });
  await assert.rejects(noUv.setUserVerified(true), (e) => e instanceof fk.UnsupportedOperation && e.status === 409);
  await noUv.remove();
  await assert.rejects(noUv.info(), fk.NoSuchAuthenticator);
  await assert.rejects(new fk.Client('http://127.0.0.1:9').status(), fk.ConnectionFailed);
});

test('a seeded credential signs; its counter and events show it', async () => {
  const key = await freshKey();
  try {
    assert.notEqual(await key.busid(), '1-1');
    const cred = fk.generateCredential('localhost', { userHandle: 'alice', userName: 'alice', signCount: 10 });
    const events = await key.events();
    await key.addCredential(cred.params);
    const added = await events.waitFor('credentialAdded', { timeoutMs: 10000 });
    assert.equal(added.data.credential.credentialId, fk.b64url(cred.credentialId));
    const a = await getAssertion(key, 'localhost');
    assert.equal(a.credentialId, fk.b64url(cred.credentialId));
    assert.equal(a.userHandle, fk.b64url(Buffer.from('alice')));
    assert.ok(signs(cred, a), 'the signature verifies with the key the test made');
    assert.ok(a.counter > 10);
    const asserted = await events.waitFor('credentialAsserted', { timeoutMs: 10000 });
    assert.equal(asserted.authenticatorId, key.authenticatorId);
    assert.equal(asserted.data.credential.signCount, a.counter);
    assert.equal(asserted.raw.data.credential.privateKey, undefined);
    events.close();
    const stored = await key.getCredential(cred.credentialId);
    assert.equal(stored.signCount, a.counter);
    assert.deepEqual(fk.unb64url(stored.privateKey), cred.privateKeyPkcs8);
  } finally {
    await key.remove();
  }
});

test('non-resident credentials are found by id only; overrides break what they say', async () => {
  const key = await freshKey();
  try {
    const cred = fk.generateCredential('example.org', { resident: false });
    await key.addCredential(cred.params);
    assert.deepEqual(await getAssertion(key, 'example.org'), { error: 'NO_CREDENTIALS' });
    assert.ok(signs(cred, await getAssertion(key, 'example.org', cred.credentialId)));
    assert.deepEqual(await key.setResponseOverrideBits({ isBogusSignature: true }), { isBogusSignature: true, isBadUV: false, isBadUP: false });
    assert.ok(!signs(cred, await getAssertion(key, 'example.org', cred.credentialId)));
    await key.setResponseOverrideBits({ isBogusSignature: false, isBadUP: true });
    const badUp = await getAssertion(key, 'example.org', cred.credentialId);
    assert.ok(signs(cred, badUp) && !badUp.userPresent);
  } finally {
    await key.remove();
  }
});

/** clientPIN getPINRetries over USB/IP: {retries} or {error}. */
async function pinRetries(key) {
  const args = [join(HERE, 'ctap_helper.py'), String(server.usbipPort), await key.busid(), '--pin-retries'];
  const { stdout } = await promisify(execFile)(PYTHON, args, { timeout: 60000 });
  return JSON.parse(stdout);
}

test('PIN state through the API is what CTAP reports', async () => {
  const key = await freshKey();
  const events = await key.events();
  try {
    assert.equal((await key.pinState()).state, 'unset');
    assert.deepEqual(await pinRetries(key), { error: 'PIN_NOT_SET' });
    const set = await key.setPin('node-client-2468');
    assert.ok(set.isSet && set.retries === 8 && !JSON.stringify(set).includes('node-client-2468'));
    const pinSet = await events.waitFor('pinSet', { timeoutMs: 10000 });
    assert.equal(pinSet.data.source, 'api');
    assert.equal((await key.setPinRetries({ retries: 3 })).retries, 3);
    assert.deepEqual(await pinRetries(key), { retries: 3 });
    assert.equal((await key.setPinState('blocked')).state, 'blocked');
    assert.deepEqual(await pinRetries(key), { retries: 0 });
    assert.equal((await key.setPinState('uvBlocked')).uvRetries, 0);
    assert.equal((await key.setPinRetries({ uvRetries: 8 })).state, 'set');
    assert.equal((await key.clearPin()).isSet, false);
    assert.equal((await events.waitFor('pinCleared', { timeoutMs: 10000 })).data.source, 'api');
    await assert.rejects(key.setPin('12'), (e) => e instanceof fk.InvalidArgument);
    await assert.rejects(key.setPinState('forcePinChange'), (e) => e instanceof fk.UnsupportedOperation && e.status === 409);
    await assert.rejects(key.setPinRetries({}), TypeError);
  } finally {
    events.close();
    await key.remove();
  }
});

test('a key is added in a PIN state', async () => {
  const key = await freshKey({}, { vendor: { pin: 'node-client-1357', pinState: 'forcePinChange' } });
  try {
    const state = await key.pinState();
    assert.equal(state.state, 'forcePinChange');
    assert.equal(state.forcePinChange, true);
    assert.deepEqual(await pinRetries(key), { retries: 8 });
  } finally {
    await key.remove();
  }
});

test('credentials are removed and their properties set', async () => {
  const key = await freshKey();
  try {
    const a = fk.generateCredential('localhost', { userHandle: 'a' });
    const b = fk.generateCredential('localhost', { userHandle: 'b' });
    await key.addCredential(a.params);
    await key.addCredential(b.params);
    await key.setCredentialProperties(a.credentialId, { signCount: 500, backupEligibility: true, backupState: true });
    const stored = await key.getCredential(a.credentialId);
    assert.deepEqual([stored.signCount, stored.backupEligibility, stored.backupState], [500, true, true]);
    await key.removeCredential(a.credentialId);
    assert.deepEqual((await key.getCredentials()).map((c) => c.credentialId), [fk.b64url(b.credentialId)]);
    await key.removeAllCredentials();
    assert.deepEqual(await key.getCredentials(), []);
  } finally {
    await key.remove();
  }
});

test('presence, the button and power', async () => {
  const key = await freshKey({}, { vendor: { exportable: false } });
  try {
    await key.addCredential(fk.generateCredential('localhost').params);
    assert.equal((await key.getCredentials())[0].privateKey, undefined);
    await key.presence('deny');
    assert.deepEqual(await getAssertion(key, 'localhost'), { error: 'OPERATION_DENIED' });
    await key.setAutomaticPresenceSimulation(true);
    assert.equal((await getAssertion(key, 'localhost')).userPresent, true);
    assert.equal((await key.touch(true)).touch, 'on');
    assert.equal((await key.touch(false)).touch, 'off');
    const all = await server.client.events();
    const recorder = await key.recordEvents();
    assert.equal((await key.power(false)).power, 'off');
    assert.equal((await key.info()).powered, false);
    await all.waitFor((e) => e.event === 'powerOff' && e.authenticatorId === key.authenticatorId, { timeoutMs: 10000 });
    await key.power(true);
    await all.waitFor('powerOn', { timeoutMs: 10000 });
    await assert.rejects(all.waitFor('nothing-like-this', { timeoutMs: 300 }), (e) => e instanceof fk.EventTimeout && /nothing-like-this/.test(e.message));
    all.close();
    // the recorder reads its own stream: wait until it has seen the powerOn too
    for (const end = Date.now() + 10000; !recorder.events.some((e) => e.event === 'powerOn') && Date.now() < end;) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await recorder.stop();
    const names = recorder.events.map((e) => e.event);
    assert.ok(names.indexOf('powerOff') >= 0 && names.indexOf('powerOff') < names.indexOf('powerOn'), names.join(','));
    assert.match(recorder.transcript(), /"event":"powerOff"/);
    await key.power(false);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(recorder.events.map((e) => e.event), names, 'stopped: nothing more');
  } finally {
    await key.remove();
  }
});

test('attach needs usbip and vhci, and says so', async () => {
  const key = await freshKey();
  try {
    // this host has no vhci-hcd (the guest stage attaches for real)
    await assert.rejects(server.attach(key, { timeoutMs: 20000 }), (e) => e instanceof fk.StartError
      && /usbip --tcp-port \d+ attach -r 127\.0\.0\.1 -b 1-/.test(e.message));
  } finally {
    await key.remove();
  }
});

test('a Unix socket and a token', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fk-unix-'));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 'a-token-long-enough-1234\n');
  chmodSync(tokenFile, 0o600);
  const socket = join(dir, 'control.sock');
  const other = await fk.start({ transport: 'usbip', control: `unix:${socket}`, tokenFile });
  try {
    assert.equal((await other.client.status()).keys[0].busid, '1-1');
    await assert.rejects(new fk.Client(`unix:${socket}`).status(), fk.Unauthorized);
    const key = await other.client.addVirtualAuthenticator();
    assert.equal((await other.client.authenticators()).length, 2);
    await key.remove();
    assert.ok(existsSync(other.logPath) && existsSync(other.stateDir));
  } finally {
    await other.stop();
  }
  assert.ok(!existsSync(other.logPath) && !existsSync(other.stateDir), 'start() made them: removed at stop');
});
