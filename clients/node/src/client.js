// A client for ferrokey's control API, with the names of the WebDriver
// virtual-authenticator commands (WebAuthn Level 3, section 11) and Chrome
// DevTools' WebAuthn domain. Binary parameters take Uint8Array/Buffer (sent
// base64url) or base64url text. Errors are ApiError subclasses carrying the
// WebDriver error code.
import { EventRecorder, EventStream } from './events.js';
import { findHidraw, waitForHidraw } from './hidraw.js';
import { Http, segment } from './http.js';

/**
 * Options of a fresh key unless told otherwise: a CTAP 2.1 USB key with
 * discoverable credentials and built-in user verification that always
 * matches (what browsers want for passkeys without a PIN dialog).
 */
export const DEFAULT_OPTIONS = Object.freeze({
  protocol: 'ctap2_1',
  transport: 'usb',
  hasResidentKey: true,
  hasUserVerification: true,
  isUserVerified: true,
});

/** bytes -> unpadded base64url; a string is taken to be base64url already. */
export function b64url(data) {
  if (typeof data === 'string') return data;
  return Buffer.from(data.buffer ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : data).toString('base64url');
}

/** base64url (or base64) -> Buffer. */
export const unb64url = (text) => Buffer.from(text.replace(/\+/g, '-').replace(/\//g, '_'), 'base64url');

/**
 * The Add Virtual Authenticator body: DEFAULT_OPTIONS, then `options`
 * (WebDriver/CDP names), then `vendor` (ferrokey's own, `ferrokey:` added).
 */
export function authenticatorOptions(options = {}, vendor = {}) {
  const body = { ...DEFAULT_OPTIONS, ...options };
  for (const [k, v] of Object.entries(vendor ?? {})) body[k.startsWith('ferrokey:') ? k : `ferrokey:${k}`] = v;
  return body;
}

const BINARY_FIELDS = ['credentialId', 'privateKey', 'userHandle', 'largeBlob'];

/** WebDriver's Credential Parameters; binary fields become base64url. */
export function credentialParameters(params) {
  const body = {};
  for (const [k, v] of Object.entries(params ?? {})) {
    if (v === undefined || v === null) continue;
    body[k] = BINARY_FIELDS.includes(k) ? b64url(v) : v;
  }
  return body;
}

/** One key of the server. */
export class Authenticator {
  /** Chrome's sheets for this key's browser (set by the Playwright fixture). */
  chrome = null;

  constructor(client, authenticatorId, info = null) {
    this.client = client;
    this.authenticatorId = String(authenticatorId);
    this.cached = info;
  }

  /** The key's API path. */
  get path() {
    return `/webauthn/authenticator/${segment(this.authenticatorId)}`;
  }

  /** GET .../authenticator/{id}: busid, serial, AAGUID, options, power, status. */
  async info() {
    this.cached = await this.client.http.call('GET', this.path);
    return this.cached;
  }

  async #known() {
    return this.cached ?? this.info();
  }

  /** The USB/IP busid. */
  async busid() {
    return (await this.#known()).busid;
  }

  /** The USB serial number (the hidraw node's HID_UNIQ). */
  async serial() {
    return (await this.#known()).serial;
  }

  async #ids() {
    const info = await this.#known();
    return { vendor: info.options?.vendorId ?? 0x1209, product: info.options?.productId ?? 0x000a, serial: info.serial };
  }

  /** The key's /dev/hidrawN on this machine now, or null. */
  async hidraw() {
    const { vendor, product, serial } = await this.#ids();
    return findHidraw(vendor, product, serial);
  }

  /** Waits until this machine's kernel shows the key; resolves to its hidraw node. */
  async waitForHidraw({ timeoutMs = 20000 } = {}) {
    const { vendor, product, serial } = await this.#ids();
    return waitForHidraw(vendor, product, serial, { timeoutMs });
  }

  /** Remove Virtual Authenticator: the host sees an unplug; its state is deleted. */
  async remove() {
    await this.client.removeVirtualAuthenticator(this.authenticatorId);
  }

  /** Add Credential (privateKey: PKCS#8 DER, P-256 or Ed25519). */
  async addCredential(params) {
    await this.client.http.call('POST', `${this.path}/credential`, credentialParameters(params));
  }

  /** Get Credentials, with each one's current signCount. */
  async getCredentials() {
    return this.client.http.call('GET', `${this.path}/credentials`);
  }

  /** The credential with this id (throws if the key has none). */
  async getCredential(credentialId) {
    const wanted = b64url(credentialId);
    const found = (await this.getCredentials()).find((c) => c.credentialId === wanted);
    if (!found) throw new Error(`the key holds no credential ${wanted}`);
    return found;
  }

  /** Remove Credential. */
  async removeCredential(credentialId) {
    await this.client.http.call('DELETE', `${this.path}/credentials/${segment(b64url(credentialId))}`);
  }

  /** Remove All Credentials. */
  async removeAllCredentials() {
    await this.client.http.call('DELETE', `${this.path}/credentials`);
  }

  /** Set Credential Properties ({backupEligibility, backupState, signCount}). */
  async setCredentialProperties(credentialId, props) {
    await this.client.http.call('POST', `${this.path}/credentials/${segment(b64url(credentialId))}/props`, props);
  }

  /** Set User Verified. */
  async setUserVerified(isUserVerified) {
    await this.client.http.call('POST', `${this.path}/uv`, { isUserVerified: Boolean(isUserVerified) });
  }

  /** CDP setAutomaticPresenceSimulation (false: presence waits for touch()). */
  async setAutomaticPresenceSimulation(enabled) {
    await this.client.http.call('POST', `${this.path}/presence`, { automaticPresenceSimulation: Boolean(enabled) });
  }

  /** Presence mode: 'approve', 'deny', 'touch' or 'default'. */
  async presence(mode) {
    await this.client.http.call('POST', `${this.path}/presence`, { mode });
  }

  /** CDP setResponseOverrideBits; resolves to the overrides in force. */
  async setResponseOverrideBits(bits) {
    return this.client.http.call('POST', `${this.path}/response-override`, bits);
  }

  /** Plug (true) or unplug (false): an unplug is a power cycle. */
  async power(on) {
    return this.client.http.call('POST', `${this.path}/power`, { on: Boolean(on) });
  }

  /** Hold (true) or release (false) the button. */
  async touch(on = true) {
    return this.client.http.call('POST', `${this.path}/touch`, { on: Boolean(on) });
  }

  /**
   * The PIN/UV state: isSet, state ('unset', 'set', 'blocked', 'forcePinChange',
   * 'uvBlocked'), retries, uvRetries (null without built-in UV), forcePinChange,
   * powerCycleRequired, minPinLength, builtinUv.
   */
  async pinState() {
    return this.client.http.call('GET', `${this.path}/pin`);
  }

  /** Sets or replaces the PIN (full retries); resolves to the new state. */
  async setPin(pin) {
    if (typeof pin !== 'string') throw new TypeError('pin must be a string (clearPin() removes it)');
    return this.client.http.call('POST', `${this.path}/pin`, { pin });
  }

  /** Removes the PIN; resolves to the new state. */
  async clearPin() {
    return this.client.http.call('POST', `${this.path}/pin`, { pin: null });
  }

  /** Sets pinRetries and/or uvRetries (0 to 8; 0 blocks); resolves to the new state. */
  async setPinRetries({ retries, uvRetries } = {}) {
    const body = {};
    if (retries !== undefined) body.retries = retries;
    if (uvRetries !== undefined) body.uvRetries = uvRetries;
    if (!Object.keys(body).length) throw new TypeError('give retries and/or uvRetries');
    return this.client.http.call('POST', `${this.path}/pin/retries`, body);
  }

  /** Puts the key in `state`, setting `pin` first when given; resolves to the new state. */
  async setPinState(state, pin) {
    const body = { state };
    if (pin !== undefined) body.pin = pin;
    return this.client.http.call('POST', `${this.path}/pin/state`, body);
  }

  /** This key's live events. */
  async events() {
    return EventStream.open(this.client.http, `${this.path}/events`);
  }

  /** Records this key's events in the background. */
  async recordEvents() {
    return new EventRecorder(await this.events());
  }
}

/** The control API at `url` (http://HOST:PORT or unix:/path). */
export class Client {
  constructor(url, { token, timeoutMs } = {}) {
    this.http = new Http(url, { token, timeoutMs });
    this.url = this.http.url;
  }

  /** Add Virtual Authenticator: a new USB key. */
  async addVirtualAuthenticator(options = {}, { vendor } = {}) {
    const id = await this.http.call('POST', '/webauthn/authenticator', authenticatorOptions(options, vendor));
    return new Authenticator(this, id);
  }

  /** Remove Virtual Authenticator. */
  async removeVirtualAuthenticator(authenticatorId) {
    await this.http.call('DELETE', `/webauthn/authenticator/${segment(authenticatorId)}`);
  }

  /** Every key the server runs. */
  async authenticators() {
    const list = await this.http.call('GET', '/webauthn/authenticators');
    return list.map((info) => new Authenticator(this, info.authenticatorId, info));
  }

  /** The key with this id (NoSuchAuthenticator if none). */
  async authenticator(authenticatorId) {
    const key = new Authenticator(this, authenticatorId);
    await key.info();
    return key;
  }

  /** GET /: the server's version and every key's status. */
  async status() {
    return this.http.call('GET', '/');
  }

  /** Every key's live events. */
  async events() {
    return EventStream.open(this.http, '/events');
  }
}
