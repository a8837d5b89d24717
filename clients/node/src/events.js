// Live events of the keys: an async iterator over the SSE stream, and a
// recorder that keeps a key's transcript (what the Playwright fixture attaches
// to a failed test's report).
import { EventTimeout, apiError } from './errors.js';
import { SseParser } from './sse.js';

const describe = (match) => (typeof match === 'string' ? JSON.stringify(match) : match.name || 'matching event');

/**
 * The events of one stream, as they happen. Subscribed once open() resolves:
 * nothing after that is missed. close() ends it.
 */
export class EventStream {
  #res;
  #reader;
  #parser = new SseParser();
  #decoder = new TextDecoder();
  #pending = [];
  #read = null; // a read in flight (kept across timeouts)
  #closed = false;

  constructor(res) {
    this.#res = res;
    this.#reader = res.body[Symbol.asyncIterator]();
  }

  /** Opens `path` of the control API as an event stream. */
  static async open(http, path) {
    const res = await http.open('GET', path, undefined, { timeoutMs: 0 });
    if (res.status >= 400) {
      let text = '';
      for await (const chunk of res.body) text += Buffer.from(chunk).toString();
      res.close();
      let body;
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
      throw apiError(res.status, body, 'GET', path);
    }
    return new EventStream(res);
  }

  /** The next event; null when the stream ended. With timeoutMs, rejects with EventTimeout. */
  async next(timeoutMs) {
    const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    while (this.#pending.length === 0) {
      if (this.#closed) return null;
      this.#read ??= this.#reader.next().then(
        (r) => r,
        () => ({ done: true }),
      );
      let result;
      if (deadline === undefined) {
        result = await this.#read;
      } else {
        let timer;
        const left = Math.max(0, deadline - Date.now());
        const timeout = new Promise((resolve) => {
          timer = setTimeout(() => resolve(null), left);
        });
        result = await Promise.race([this.#read, timeout]);
        clearTimeout(timer);
        if (result === null) throw new EventTimeout(`no event within ${timeoutMs} ms`);
      }
      this.#read = null;
      if (result.done) {
        this.close();
        return null;
      }
      this.#pending.push(...this.#parser.feed(this.#decoder.decode(result.value, { stream: true })));
    }
    return this.#pending.shift();
  }

  /** The first event named `match` (or for which match(event) is true). */
  async waitFor(match, { timeoutMs = 30000 } = {}) {
    const deadline = Date.now() + timeoutMs;
    const seen = [];
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      let event;
      try {
        event = await this.next(left);
      } catch (e) {
        if (e instanceof EventTimeout) break;
        throw e;
      }
      if (event === null) throw new EventTimeout(`the event stream ended before ${describe(match)}; saw ${JSON.stringify(seen)}`);
      if (typeof match === 'string' ? event.event === match : match(event)) return event;
      seen.push(event.event);
    }
    throw new EventTimeout(`no ${describe(match)} within ${timeoutMs} ms; saw ${JSON.stringify(seen)}`);
  }

  async *[Symbol.asyncIterator]() {
    for (;;) {
      const event = await this.next();
      if (event === null) return;
      yield event;
    }
  }

  /** Ends the stream. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#res.close();
  }

  [Symbol.dispose]() {
    this.close();
  }
}

/** Records every event of a stream in the background: events, transcript(), stop(). */
export class EventRecorder {
  #events = [];
  #dropped = 0;
  #stream;
  #loop;

  constructor(stream, { limit = 10000 } = {}) {
    this.#stream = stream;
    this.#loop = (async () => {
      try {
        for await (const event of stream) {
          if (this.#events.length >= limit) {
            this.#events.shift();
            this.#dropped += 1;
          }
          this.#events.push(event);
        }
      } catch {
        // the stream broke: what was recorded stays
      }
    })();
  }

  /** The events so far. */
  get events() {
    return [...this.#events];
  }

  /** The events so far, one JSON line each (as `ferrokey events` prints them). */
  transcript() {
    const lines = this.#events.map((e) => JSON.stringify(e.raw));
    if (this.#dropped) lines.unshift(`(${this.#dropped} earlier events dropped)`);
    return lines.join('\n');
  }

  /** Stops recording, after settleMs for events still on their way. */
  async stop({ settleMs = 0 } = {}) {
    if (settleMs) await new Promise((r) => setTimeout(r, settleMs));
    this.#stream.close();
    await this.#loop;
  }
}
