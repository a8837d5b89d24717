// Unit tests without a server: SSE parsing, options and parameters, errors,
// hidraw matching, generated credentials, and start()'s refusals.
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, sign } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as fk from 'ferrokey';

const line = (name, data) => JSON.stringify({ time: 't', authenticatorId: '2', event: name, data });

test('SSE events split anywhere are parsed once', () => {
  const text = `: keep-alive\r\n\r\nevent: ctap\ndata: ${line('ctap', { command: 'getInfo' })}\n\n`
    + `event: powerOff\r\ndata: ${line('powerOff', {})}\r\n\r\n`;
  for (let cut = 0; cut <= text.length; cut += 1) {
    const parser = new fk.SseParser();
    const events = [...parser.feed(text.slice(0, cut)), ...parser.feed(text.slice(cut))];
    assert.deepEqual(events.map((e) => e.event), ['ctap', 'powerOff'], `cut ${cut}`);
    assert.deepEqual(events[0].data, { command: 'getInfo' });
    assert.equal(events[0].authenticatorId, '2');
  }
});

test('SSE multi-line data and data that is not JSON', () => {
  const parser = new fk.SseParser();
  const events = parser.feed('event: x\ndata: {"event": "a",\ndata: "data": {}}\n\ndata: not json\n\n\n');
  assert.deepEqual(events.map((e) => e.event), ['a', 'message']);
  assert.deepEqual(events[1].data, { text: 'not json' });
  assert.deepEqual(fk.keyEvent('n', '[1]').data, { text: '[1]' });
});

test('options, parameters and base64url', () => {
  assert.equal(fk.b64url(Buffer.from([0xfb, 0xff])), '-_8');
  assert.equal(fk.b64url(new Uint8Array([0xfb, 0xff])), '-_8');
  assert.deepEqual([...fk.unb64url('+/8')], [0xfb, 0xff]);
  assert.deepEqual(fk.authenticatorOptions({ isUserVerified: false, extensions: ['prf'] }, { attestation: 'none', 'ferrokey:uv': 'deny' }), {
    protocol: 'ctap2_1', transport: 'usb', hasResidentKey: true, hasUserVerification: true, isUserVerified: false,
    extensions: ['prf'], 'ferrokey:attestation': 'none', 'ferrokey:uv': 'deny',
  });
  assert.deepEqual(fk.credentialParameters({ rpId: 'x', credentialId: 'already', privateKey: Buffer.from([1, 2]), userHandle: new Uint8Array([117]), largeBlob: undefined }),
    { rpId: 'x', credentialId: 'already', privateKey: 'AQI', userHandle: 'dQ' });
});

test('errors carry the WebDriver code', () => {
  const cases = [['invalid argument', fk.InvalidArgument], ['no such authenticator', fk.NoSuchAuthenticator],
    ['no such credential', fk.NoSuchCredential], ['unsupported operation', fk.UnsupportedOperation],
    ['forbidden', fk.Forbidden], ['unauthorized', fk.Unauthorized], ['unknown error', fk.UnknownError],
    ['some future code', fk.ApiError]];
  for (const [code, Cls] of cases) {
    const err = fk.apiError(404, { value: { error: code, message: 'why' } }, 'GET', '/x');
    assert.equal(err.constructor, Cls);
    assert.equal(err.error, code);
    assert.equal(err.status, 404);
    assert.equal(err.message, `GET /x: ${code} (HTTP 404): why`);
    assert.ok(err instanceof fk.FerrokeyError && err instanceof Error);
  }
  const html = fk.apiError(502, '<html>bad gateway</html>');
  assert.ok(html instanceof fk.UnknownError && html.apiMessage.includes('bad gateway'));
});

test('hidraw nodes are matched by ids and serial', async () => {
  const uevent = 'DRIVER=hid-generic\nHID_ID=0003:00001209:0000000A\nHID_UNIQ=ABC123\n';
  assert.ok(fk.matchesUevent(uevent, 0x1209, 0x000a, 'ABC123'));
  assert.ok(!fk.matchesUevent(uevent, 0x1209, 0x000a, 'ABC12'));
  assert.ok(!fk.matchesUevent(uevent, 0x1050, 0x000a, 'ABC123'));
  assert.ok(!fk.matchesUevent('HID_ID=garbage\nHID_UNIQ=ABC123', 0x1209, 0x000a, 'ABC123'));
  const root = mkdtempSync(join(tmpdir(), 'fk-sysfs-'));
  for (const [name, text] of [['hidraw0', uevent.replace('ABC123', 'OTHER')], ['hidraw3', uevent], ['other', uevent]]) {
    mkdirSync(join(root, name, 'device'), { recursive: true });
    writeFileSync(join(root, name, 'device', 'uevent'), text);
  }
  assert.equal(fk.findHidraw(0x1209, 0x000a, 'ABC123', root), '/dev/hidraw3');
  assert.equal(fk.findHidraw(0x1209, 0x000a, 'NOPE', root), null);
  assert.equal(fk.findHidraw(0x1209, 0x000a, 'ABC123', join(root, 'missing')), null);
  await assert.rejects(fk.waitForHidraw(0x1209, 0x000a, 'NOPE', { timeoutMs: 100, root }), fk.HidrawNotFound);
});

test('generated credentials are PKCS#8 and COSE that others read', () => {
  const cred = fk.generateCredential('example.com', { userHandle: 'alice', userName: 'alice', signCount: 7 });
  assert.equal(cred.params.rpId, 'example.com');
  assert.equal(cred.params.userHandle, 'YWxpY2U');
  assert.equal(cred.params.signCount, 7);
  assert.equal(cred.params.isResidentCredential, true);
  assert.equal(cred.credentialId.length, 16);
  assert.deepEqual(fk.unb64url(cred.params.credentialId), cred.credentialId);
  const priv = createPrivateKey({ key: fk.unb64url(cred.params.privateKey), format: 'der', type: 'pkcs8' });
  const signature = sign('sha256', Buffer.from('data'), priv);
  assert.ok(cred.verify(signature, Buffer.from('data')));
  assert.ok(!cred.verify(signature, Buffer.from('other')));
  // COSE_Key: a5 01 02 03 26 20 01 21 58 20 <x> 22 58 20 <y>, x/y as in the SPKI's JWK
  const cose = cred.publicKeyCose;
  assert.deepEqual([...cose.subarray(0, 10)], [0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20]);
  const jwk = createPublicKey({ key: cred.publicKeySpki, format: 'der', type: 'spki' }).export({ format: 'jwk' });
  assert.equal(cose.subarray(10, 42).toString('base64url'), jwk.x);
  assert.deepEqual([...cose.subarray(42, 45)], [0x22, 0x58, 0x20]);
  assert.equal(cose.subarray(45).toString('base64url'), jwk.y);
  assert.equal(fk.generateCredential('x', { resident: false }).params.userHandle, undefined);
  assert.throws(() => fk.coseEs256(Buffer.alloc(1), Buffer.alloc(32)), RangeError);
});

test('start() refuses what cannot work', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fk-bin-'));
  const saved = { bin: process.env.FERROKEY_BIN, path: process.env.PATH };
  try {
    delete process.env.FERROKEY_BIN;
    process.env.PATH = dir;
    assert.throws(() => fk.findBinary(), /no ferrokey binary/);
    const script = join(dir, 'ferrokey');
    writeFileSync(script, "#!/bin/sh\necho 'error: not a real ferrokey' >&2\nexit 3\n");
    assert.throws(() => fk.findBinary(script), /is not an executable/);
    chmodSync(script, 0o755);
    process.env.PATH = `${dir}:${saved.path}`;
    await assert.rejects(fk.start({ binary: script, timeoutMs: 10000 }), (e) => e instanceof fk.StartError
      && /exited \(3\)/.test(e.message) && /not a real ferrokey/.test(e.message));
    await assert.rejects(fk.start({ binary: script, transport: 'bluetooth' }), TypeError);
  } finally {
    if (saved.bin === undefined) delete process.env.FERROKEY_BIN; else process.env.FERROKEY_BIN = saved.bin;
    process.env.PATH = saved.path;
  }
});
