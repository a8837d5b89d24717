// Types of the ferrokey package (ESM, no runtime dependencies).
import type { ChildProcess } from 'node:child_process';
import type { KeyObject } from 'node:crypto';

export type Binary = Uint8Array | string;
export type Json = { [key: string]: any };

/** WebDriver's Authenticator Configuration, CDP's spellings, and ferrokey's own (`ferrokey:` prefix). */
export interface AuthenticatorOptions {
  protocol?: 'ctap2' | 'ctap2_1' | 'ctap1/u2f';
  transport?: 'usb';
  hasResidentKey?: boolean;
  hasUserVerification?: boolean;
  isUserConsenting?: boolean;
  isUserVerified?: boolean;
  extensions?: string[];
  defaultBackupEligibility?: boolean;
  defaultBackupState?: boolean;
  ctap2Version?: 'ctap2_0' | 'ctap2_1';
  hasLargeBlob?: boolean;
  hasCredBlob?: boolean;
  hasMinPinLength?: boolean;
  hasPrf?: boolean;
  automaticPresenceSimulation?: boolean;
  [vendorOption: `ferrokey:${string}`]: unknown;
}

/** ferrokey's own key options (sent with the `ferrokey:` prefix). */
export interface VendorOptions {
  exportable?: boolean;
  presence?: 'auto' | 'deny' | 'prompt' | 'touch';
  uv?: 'off' | 'auto' | 'deny';
  attestation?: 'none' | 'self' | 'batch' | 'chain';
  aaguid?: string;
  vendorId?: number;
  productId?: number;
  manufacturer?: string;
  product?: string;
  /** security-key (default), ctap2.0, u2f, synced-passkey, strict (README: Profiles). */
  profile?: 'security-key' | 'ctap2.0' | 'u2f' | 'synced-passkey' | 'strict' | string;
  /** A profile written out (the --profile-file format, inline). */
  profileSpec?: Json;
  counterMode?: 'per-credential' | 'global' | 'zero' | 'random';
  quirks?: string[];
  pin?: string;
  pinState?: PinStateName;
  [option: string]: unknown;
}

/** WebDriver's Credential Parameters (binary fields as bytes or base64url). */
export interface CredentialParameters {
  credentialId: Binary;
  isResidentCredential: boolean;
  rpId: string;
  privateKey: Binary;
  userHandle?: Binary;
  signCount?: number;
  largeBlob?: Binary;
  backupEligibility?: boolean;
  backupState?: boolean;
  userName?: string;
  userDisplayName?: string;
}

/** A credential as Get Credentials returns it (binary fields base64url). */
export interface Credential {
  credentialId: string;
  isResidentCredential: boolean;
  rpId: string;
  privateKey?: string;
  algorithm?: number;
  userHandle?: string;
  signCount: number;
  largeBlob?: string;
  backupEligibility: boolean;
  backupState: boolean;
  userName?: string;
  userDisplayName?: string;
}

export interface KeyStatus {
  port: number;
  busid: string;
  power: 'on' | 'off';
  attached: boolean;
  touch: 'on' | 'off';
  presence: string;
  uv: string;
  authenticatorId: string;
}

export interface AuthenticatorInfo {
  authenticatorId: string;
  number: number;
  busid: string;
  serial: string;
  aaguid: string;
  transport: 'usb';
  hostTransport: string;
  powered: boolean;
  attached: boolean;
  stateDir: string;
  options: Json;
  status: KeyStatus;
}

/** A key's PIN/UV states. */
export type PinStateName = 'unset' | 'set' | 'blocked' | 'forcePinChange' | 'uvBlocked';

/** GET .../pin: the key's PIN/UV state as CTAP clients see it. */
export interface PinStatus {
  isSet: boolean;
  state: PinStateName;
  retries: number;
  uvRetries: number | null;
  forcePinChange: boolean;
  powerCycleRequired: boolean;
  minPinLength: number;
  builtinUv: boolean;
}

export interface ResponseOverrides {
  isBogusSignature?: boolean;
  isBadUV?: boolean;
  isBadUP?: boolean;
}

/** One event: `event` is its name (ctap, credentialAsserted, plugged, powerOff, lagged, ...). */
export interface KeyEvent {
  event: string;
  authenticatorId: string | null;
  time: string;
  data: Json;
  raw: Json;
}

export type EventMatch = string | ((event: KeyEvent) => boolean);

export class EventStream implements AsyncIterable<KeyEvent> {
  static open(http: Http, path: string): Promise<EventStream>;
  next(timeoutMs?: number): Promise<KeyEvent | null>;
  waitFor(match: EventMatch, options?: { timeoutMs?: number }): Promise<KeyEvent>;
  close(): void;
  [Symbol.asyncIterator](): AsyncIterator<KeyEvent>;
  [Symbol.dispose](): void;
}

export class EventRecorder {
  constructor(stream: EventStream, options?: { limit?: number });
  readonly events: KeyEvent[];
  transcript(): string;
  stop(options?: { settleMs?: number }): Promise<void>;
}

export class SseParser {
  feed(text: string): KeyEvent[];
  line(line: string): KeyEvent | null;
}
export function keyEvent(name: string, text: string): KeyEvent;

export class Http {
  constructor(url: string, options?: { token?: string; timeoutMs?: number });
  readonly url: string;
  call(method: string, path: string, payload?: unknown): Promise<any>;
}

export const DEFAULT_OPTIONS: Readonly<AuthenticatorOptions>;
export function b64url(data: Binary): string;
export function unb64url(text: string): Buffer;
export function authenticatorOptions(options?: AuthenticatorOptions, vendor?: VendorOptions): Json;
export function credentialParameters(params: Partial<CredentialParameters> & Json): Json;

export class Authenticator {
  constructor(client: Client, authenticatorId: string, info?: AuthenticatorInfo | null);
  readonly client: Client;
  readonly authenticatorId: string;
  readonly path: string;
  /** Chrome's WebAuthn sheets for this key's browser (set by the Playwright fixture). */
  chrome: Chrome | null;
  info(): Promise<AuthenticatorInfo>;
  busid(): Promise<string>;
  serial(): Promise<string>;
  hidraw(): Promise<string | null>;
  waitForHidraw(options?: { timeoutMs?: number }): Promise<string>;
  remove(): Promise<void>;
  addCredential(params: CredentialParameters): Promise<void>;
  getCredentials(): Promise<Credential[]>;
  getCredential(credentialId: Binary): Promise<Credential>;
  removeCredential(credentialId: Binary): Promise<void>;
  removeAllCredentials(): Promise<void>;
  setCredentialProperties(credentialId: Binary, props: { backupEligibility?: boolean; backupState?: boolean; signCount?: number }): Promise<void>;
  setUserVerified(isUserVerified: boolean): Promise<void>;
  setAutomaticPresenceSimulation(enabled: boolean): Promise<void>;
  presence(mode: 'approve' | 'deny' | 'touch' | 'default'): Promise<void>;
  setResponseOverrideBits(bits: ResponseOverrides): Promise<Required<ResponseOverrides>>;
  pinState(): Promise<PinStatus>;
  setPin(pin: string): Promise<PinStatus>;
  clearPin(): Promise<PinStatus>;
  setPinRetries(retries: { retries?: number; uvRetries?: number }): Promise<PinStatus>;
  setPinState(state: PinStateName, pin?: string): Promise<PinStatus>;
  power(on: boolean): Promise<KeyStatus>;
  touch(on?: boolean): Promise<KeyStatus>;
  events(): Promise<EventStream>;
  recordEvents(): Promise<EventRecorder>;
}

export class Client {
  constructor(url: string, options?: { token?: string; timeoutMs?: number });
  readonly url: string;
  readonly http: Http;
  addVirtualAuthenticator(options?: AuthenticatorOptions, more?: { vendor?: VendorOptions }): Promise<Authenticator>;
  removeVirtualAuthenticator(authenticatorId: string): Promise<void>;
  authenticators(): Promise<Authenticator[]>;
  authenticator(authenticatorId: string): Promise<Authenticator>;
  status(): Promise<{ ferrokey: string; keys: KeyStatus[] }>;
  events(): Promise<EventStream>;
}

export class FerrokeyError extends Error {}
export class ApiError extends FerrokeyError {
  /** The WebDriver error code ("invalid argument", "no such authenticator", ...). */
  readonly error: string;
  readonly apiMessage: string;
  readonly status: number;
  readonly method: string;
  readonly path: string;
}
export class InvalidArgument extends ApiError {}
export class NoSuchAuthenticator extends ApiError {}
export class NoSuchCredential extends ApiError {}
export class UnsupportedOperation extends ApiError {}
export class UnknownCommand extends ApiError {}
export class UnknownMethod extends ApiError {}
export class Unauthorized extends ApiError {}
export class Forbidden extends ApiError {}
export class RequestTimeout extends ApiError {}
export class UnknownError extends ApiError {}
export function apiError(status: number, body: unknown, method?: string, path?: string): ApiError;
export class ConnectionFailed extends FerrokeyError {}
export class StartError extends FerrokeyError {}
export class HidrawNotFound extends FerrokeyError {}
export class EventTimeout extends FerrokeyError {}

export type Transport = 'auto' | 'uhid' | 'attach' | 'usbip';
export const TRANSPORTS: Transport[];

export interface StartOptions {
  binary?: string;
  transport?: Transport;
  keys?: number;
  stateDir?: string;
  control?: string;
  listen?: string;
  uv?: 'off' | 'auto' | 'deny' | null;
  presence?: 'auto' | 'deny' | 'prompt' | 'touch';
  tokenFile?: string;
  args?: string[];
  timeoutMs?: number;
  logPath?: string;
  env?: NodeJS.ProcessEnv;
}

export class Server {
  readonly process: ChildProcess;
  readonly url: string;
  readonly transport: string;
  readonly usbipPort: number | null;
  readonly busids: Map<number, string>;
  readonly hidraws: Map<number, string>;
  readonly client: Client;
  readonly logPath: string;
  readonly stateDir: string;
  readonly busid: string;
  readonly hidraw: string | null;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  keys(): Promise<Authenticator[]>;
  /** Transport usbip: `usbip attach` the key here (root, vhci-hcd); resolves to its hidraw node. */
  attach(key: Authenticator, options?: { timeoutMs?: number }): Promise<string>;
  logTail(n?: number): string;
  stop(options?: { timeoutMs?: number }): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  [Symbol.asyncDispose](): Promise<void>;
}
export function findBinary(binary?: string): string;
export function start(options?: StartOptions): Promise<Server>;

export function matchesUevent(uevent: string, vendor: number, product: number, serial: string): boolean;
export function findHidraw(vendor: number, product: number, serial: string, root?: string): string | null;
export function waitForHidraw(vendor: number, product: number, serial: string, options?: { timeoutMs?: number; root?: string }): Promise<string>;

export interface GeneratedCredential {
  credentialId: Buffer;
  rpId: string;
  params: CredentialParameters;
  privateKey: KeyObject;
  privateKeyPkcs8: Buffer;
  publicKeySpki: Buffer;
  publicKeyCose: Buffer;
  verify(signature: Uint8Array, signed: Uint8Array): boolean;
}
export function generateCredential(rpId: string, options?: {
  userHandle?: Binary; resident?: boolean; credentialId?: Binary; signCount?: number; userName?: string;
  userDisplayName?: string; backupEligibility?: boolean; backupState?: boolean;
}): GeneratedCredential;
export function coseEs256(x: Uint8Array, y: Uint8Array): Buffer;

export const TESTED_VERSIONS: string[];
export const CLOSE_LABELS: string[];
export function chromeFlags(port: number): string[];
export function freePort(): Promise<number>;
export class SheetError extends FerrokeyError {}
export class SheetNotShown extends SheetError {}
export class NoSuchButton extends SheetError {
  readonly buttons: string[];
}
/** Chrome's WebAuthn sheets through its UI DevTools (Chrome started with chromeFlags(port)). */
export class Chrome {
  constructor(port: number, options?: { settleMs?: number });
  readonly port: number;
  readonly flags: string[];
  selectAccount(name: string, options?: { timeoutMs?: number }): Promise<string>;
  press(labels: string | string[], options?: { timeoutMs?: number }): Promise<string>;
  closeSheet(options?: { timeoutMs?: number }): Promise<string>;
  sheet(): Promise<string[] | null>;
}
