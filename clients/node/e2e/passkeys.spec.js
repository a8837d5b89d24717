// Passkeys in Chromium with a real (software) USB security key per test; the
// relying party (tests/clients/rp_app.py) verifies every ceremony.
import { generateCredential } from 'ferrokey';
import { test, expect } from 'ferrokey/playwright';

test('registers a passkey and signs in with it, username-less too', async ({ page, securityKey }) => {
  await page.goto('/?browser=pw-register');
  const reg = await page.evaluate(() => fk.register({ user: 'alice', residentKey: 'required' }));
  expect(reg).toMatchObject({ ok: true, residentKey: 'required', credProps: { rk: true } });
  const signIn = await page.evaluate((id) => fk.signIn({ allow: [id] }), reg.id);
  expect(signIn).toMatchObject({ ok: true, id: reg.id });
  const usernameless = page.evaluate(() => fk.signIn({ allow: [] }));
  await securityKey.chrome.selectAccount('alice'); // Chrome's account chooser
  const last = await usernameless;
  expect(last).toMatchObject({ ok: true, id: reg.id, userHandleMatches: true });
  expect(last.signCount).toBeGreaterThan(signIn.signCount);
  const [cred] = await securityKey.getCredentials(); // the key's own view
  expect(cred).toMatchObject({ credentialId: reg.id, rpId: 'localhost', isResidentCredential: true, signCount: last.signCount });
});

test('an excluded credential: Chrome says "already registered", the helper closes it', async ({ page, securityKey }) => {
  await page.goto('/?browser=pw-exclude');
  const reg = await page.evaluate(() => fk.register({ user: 'bob' }));
  expect(reg.ok).toBe(true);
  const again = page.evaluate((id) => fk.register({ user: 'bob', exclude: [id] }), reg.id);
  await securityKey.chrome.closeSheet();
  expect(await again).toMatchObject({ ok: false, name: 'InvalidStateError' });
  expect(await securityKey.getCredentials()).toHaveLength(1);
});

test('signs in with a credential the test seeded through the fixture', async ({ page, securityKey }) => {
  const cred = generateCredential('localhost', { userHandle: 'dora', userName: 'dora', userDisplayName: 'Dora', signCount: 41 });
  await securityKey.addCredential(cred.params);
  await page.goto('/?browser=pw-seeded');
  const id = cred.params.credentialId;
  const account = { user: 'dora', userHandle: cred.params.userHandle, id, publicKeyCose: cred.publicKeyCose.toString('base64url') };
  expect(await page.evaluate((a) => fk.addAccount(a), account)).toEqual({ ok: true });
  const first = await page.evaluate((i) => fk.signIn({ allow: [i] }), id);
  expect(first).toMatchObject({ ok: true, id });
  expect(first.signCount).toBeGreaterThan(41);
  const usernameless = page.evaluate(() => fk.signIn({ allow: [] }));
  await securityKey.chrome.selectAccount('dora');
  const second = await usernameless;
  expect(second).toMatchObject({ ok: true, id, userHandleMatches: true });
  expect(second.signCount).toBeGreaterThan(first.signCount);
  expect((await securityKey.getCredential(cred.credentialId)).signCount).toBe(second.signCount);
});
