// ferrokey for tests: a client for the control API of a ferrokey software FIDO2
// security key (WebDriver/CDP virtual-authenticator names), start() to run one,
// generated credentials, and a helper for Chrome's native WebAuthn sheets.
// The Playwright fixture is in 'ferrokey/playwright'.
export {
  Authenticator, Client, DEFAULT_OPTIONS, authenticatorOptions, b64url, credentialParameters, unb64url,
} from './client.js';
export {
  ApiError, ConnectionFailed, EventTimeout, FerrokeyError, Forbidden, HidrawNotFound, InvalidArgument,
  NoSuchAuthenticator, NoSuchCredential, RequestTimeout, StartError, Unauthorized, UnknownCommand, UnknownError,
  UnknownMethod, UnsupportedOperation, apiError,
} from './errors.js';
export { EventRecorder, EventStream } from './events.js';
export { SseParser, keyEvent } from './sse.js';
export { Server, TRANSPORTS, findBinary, start } from './server.js';
export { findHidraw, matchesUevent, waitForHidraw } from './hidraw.js';
export { coseEs256, generateCredential } from './credentials.js';
export {
  CLOSE_LABELS, Chrome, NoSuchButton, SheetError, SheetNotShown, TESTED_VERSIONS, chromeFlags, freePort,
} from './chrome.js';
