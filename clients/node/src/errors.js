// Errors: the control API's WebDriver errors as exceptions, and the client's own.

/** Anything this package throws on purpose. */
export class FerrokeyError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * The control API refused a request: `error` is the WebDriver error code
 * ("invalid argument", "no such authenticator", ...), `status` the HTTP status.
 */
export class ApiError extends FerrokeyError {
  constructor(error, message, status, method = '', path = '') {
    super(`${method ? `${method} ${path}: ` : ''}${error} (HTTP ${status}): ${message}`);
    this.error = error;
    this.apiMessage = message;
    this.status = status;
    this.method = method;
    this.path = path;
  }
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

const BY_CODE = {
  'invalid argument': InvalidArgument,
  'no such authenticator': NoSuchAuthenticator,
  'no such credential': NoSuchCredential,
  'unsupported operation': UnsupportedOperation,
  'unknown command': UnknownCommand,
  'unknown method': UnknownMethod,
  unauthorized: Unauthorized,
  forbidden: Forbidden,
  timeout: RequestTimeout,
  'unknown error': UnknownError,
};

/** The exception for an error answer (`{"value": {"error", "message"}}`). */
export function apiError(status, body, method = '', path = '') {
  const value = body && typeof body === 'object' ? body.value : undefined;
  let code;
  let message;
  if (value && typeof value === 'object' && typeof value.error === 'string') {
    code = value.error;
    message = String(value.message ?? '');
  } else {
    code = 'unknown error';
    message = `not a WebDriver error answer: ${String(typeof body === 'string' ? body : JSON.stringify(body)).slice(0, 300)}`;
  }
  const Cls = BY_CODE[code] ?? ApiError;
  return new Cls(code, message, status, method, path);
}

/** The control API could not be reached. */
export class ConnectionFailed extends FerrokeyError {}
/** start() could not start a usable key (the message has the log's tail). */
export class StartError extends FerrokeyError {}
/** The key's hidraw node did not appear. */
export class HidrawNotFound extends FerrokeyError {}
/** No matching event came in time. */
export class EventTimeout extends FerrokeyError {}
