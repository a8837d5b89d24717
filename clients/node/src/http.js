// HTTP to the control API: fetch for http://HOST:PORT, node:http for a Unix
// socket (unix:/path, `ferrokey serve --control unix:PATH`); JSON in and out,
// an optional bearer token, and streamed bodies for Server-Sent Events.
import http from 'node:http';
import { ConnectionFailed, apiError } from './errors.js';

/** `text` as one path segment. */
export const segment = (text) => encodeURIComponent(String(text));

export class Http {
  constructor(url, { token, timeoutMs = 60000 } = {}) {
    this.url = String(url).replace(/\/+$/, '');
    this.token = token;
    this.timeoutMs = timeoutMs;
    if (this.url.startsWith('unix:')) {
      this.socketPath = this.url.slice('unix:'.length);
    } else {
      const parsed = new URL(this.url);
      if (parsed.protocol !== 'http:') {
        throw new TypeError(`control API URL must be http://HOST:PORT or unix:PATH, not ${url}`);
      }
    }
  }

  #headers(hasBody) {
    const headers = { accept: 'application/json' };
    if (hasBody) headers['content-type'] = 'application/json';
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    return headers;
  }

  /**
   * Sends a request; resolves to {status, body: AsyncIterable<Uint8Array>, close()}.
   * `signal` aborts it (and ends a stream).
   */
  async open(method, path, payload, { signal, timeoutMs } = {}) {
    const body = payload === undefined ? undefined : JSON.stringify(payload);
    const headers = this.#headers(body !== undefined);
    const where = `${method} ${this.url}${path}`;
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const limit = timeoutMs ?? this.timeoutMs;
    const timer = limit ? setTimeout(() => controller.abort(), limit) : undefined;
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    if (this.socketPath !== undefined) {
      return new Promise((resolve, reject) => {
        const req = http.request(
          { socketPath: this.socketPath, method, path, headers: { ...headers, host: 'localhost' }, signal: controller.signal },
          (res) => {
            resolve({
              status: res.statusCode ?? 0,
              body: res,
              close: () => {
                done();
                res.destroy();
              },
              keepTimer: () => clearTimeout(timer),
            });
          },
        );
        req.on('error', (e) => {
          done();
          reject(new ConnectionFailed(`${where}: ${e.message}`, { cause: e }));
        });
        req.end(body);
      });
    }
    let response;
    try {
      response = await fetch(this.url + path, { method, headers, body, signal: controller.signal });
    } catch (e) {
      done();
      throw new ConnectionFailed(`${where}: ${e.cause?.message ?? e.message}`, { cause: e });
    }
    return {
      status: response.status,
      body: response.body ?? (async function* empty() {})(),
      close: () => {
        done();
        controller.abort();
      },
      keepTimer: () => clearTimeout(timer),
    };
  }

  /** One JSON request; resolves to the answer's `value`; throws the matching ApiError. */
  async call(method, path, payload) {
    const res = await this.open(method, path, payload);
    let text = '';
    try {
      const decoder = new TextDecoder();
      for await (const chunk of res.body) text += decoder.decode(chunk, { stream: true });
    } catch (e) {
      throw new ConnectionFailed(`${method} ${this.url}${path}: ${e.message}`, { cause: e });
    } finally {
      res.close();
    }
    let answer;
    try {
      answer = text ? JSON.parse(text) : null;
    } catch {
      answer = text;
    }
    if (res.status >= 400 || !answer || typeof answer !== 'object' || !('value' in answer)) {
      throw apiError(res.status, answer, method, path);
    }
    return answer.value;
  }
}
