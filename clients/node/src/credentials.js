// Credentials a test makes itself, to seed into a key with Add Credential and
// to give a relying party the public key (node:crypto, P-256):
//   const cred = generateCredential('localhost', { userHandle: 'alice', userName: 'alice' });
//   await key.addCredential(cred.params);
import { createPublicKey, generateKeyPairSync, randomBytes, verify } from 'node:crypto';
import { b64url } from './client.js';

const cborBytes = (data) => Buffer.concat([
  data.length < 24 ? Buffer.from([0x40 | data.length]) : Buffer.from([0x58, data.length]), data]);

/** The COSE_Key (CBOR) of a P-256 public key for ES256: {1: 2, 3: -7, -1: 1, -2: x, -3: y}. */
export function coseEs256(x, y) {
  if (x.length !== 32 || y.length !== 32) throw new RangeError('P-256 coordinates are 32 bytes each');
  return Buffer.concat([Buffer.from([0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21]), cborBytes(x), Buffer.from([0x22]), cborBytes(y)]);
}

const bytes = (v) => (typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v));

/** A fresh P-256 credential for rpId; `params` is Add Credential's body. */
export function generateCredential(rpId, {
  userHandle, resident = true, credentialId, signCount = 0, userName, userDisplayName, backupEligibility, backupState,
} = {}) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const id = credentialId ? bytes(credentialId) : randomBytes(16);
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'der' });
  const jwk = publicKey.export({ format: 'jwk' });
  const params = { credentialId: b64url(id), isResidentCredential: resident, rpId, privateKey: b64url(pkcs8), signCount };
  if (resident || userHandle !== undefined) params.userHandle = b64url(userHandle !== undefined ? bytes(userHandle) : randomBytes(16));
  for (const [k, v] of Object.entries({ userName, userDisplayName, backupEligibility, backupState })) {
    if (v !== undefined) params[k] = v;
  }
  return {
    credentialId: id,
    rpId,
    params,
    privateKey,
    privateKeyPkcs8: pkcs8,
    publicKeySpki: createPublicKey(privateKey).export({ type: 'spki', format: 'der' }),
    publicKeyCose: coseEs256(Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')),
    /** Whether `signature` (DER ECDSA) over `signed` is this key's. */
    verify: (signature, signed) => verify('sha256', signed, publicKey, signature),
  };
}
