// Compiled by `tsc` (test/types.test.js): the README's uses type-check against
// the package's declarations, and misuses do not.
import { Client, generateCredential, start, NoSuchAuthenticator, type Credential, type PinStatus } from 'ferrokey';
import { test, expect } from 'ferrokey/playwright';

async function use(): Promise<number> {
  const server = await start({ transport: 'usbip' });
  const key = await server.client.addVirtualAuthenticator({ hasResidentKey: true }, { vendor: { exportable: false } });
  const cred = generateCredential('localhost', { userHandle: 'alice' });
  await key.addCredential(cred.params);
  const creds: Credential[] = await key.getCredentials();
  await key.setResponseOverrideBits({ isBadUP: true });
  const pin: PinStatus = await key.setPinState('forcePinChange', 'a-pin-1234');
  if (pin.uvRetries !== null && pin.state === 'uvBlocked') await key.setPinRetries({ uvRetries: 8 });
  await key.clearPin();
  const events = await key.events();
  const added = await events.waitFor('credentialAdded', { timeoutMs: 5000 });
  events.close();
  try {
    await new Client(server.url).authenticator('404');
  } catch (e) {
    if (e instanceof NoSuchAuthenticator) return e.status;
  }
  // @ts-expect-error: a transport ferrokey does not have
  await start({ transport: 'bluetooth' });
  // @ts-expect-error: presence modes are named
  await key.presence('maybe');
  // @ts-expect-error: PIN states are named
  await key.setPinState('locked');
  await server.stop();
  return creds.length + added.data.credential.signCount;
}

test.use({ ferrokeyKeyOptions: { isUserVerified: true, vendor: { attestation: 'none' } } });
test('typed', async ({ page, securityKey }) => {
  await securityKey.chrome.selectAccount('alice');
  expect(await securityKey.getCredentials()).toHaveLength(0);
  await page.goto('about:blank');
});
void use;
