// A minimal WebSocket client (RFC 6455, text frames, client masking) for
// Chrome's UI DevTools: Node 20 has no WebSocket of its own, and this package
// has no runtime dependencies.
import { randomBytes } from 'node:crypto';
import net from 'node:net';

const MAX_FRAME = 64 << 20;

export class WebSocketClient {
  #sock;
  #buf = Buffer.alloc(0);
  #waiting = null;
  #error = null;
  #message = [];
  #messages = [];

  /** Connects to ws://127.0.0.1:port/path. */
  static connect(port, path = '/0', { timeoutMs = 30000 } = {}) {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: '127.0.0.1', port });
      const timer = setTimeout(() => sock.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      let head = Buffer.alloc(0);
      const onData = (chunk) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) {
          if (head.length > 65536) sock.destroy(new Error('no end of the HTTP head'));
          return;
        }
        clearTimeout(timer);
        sock.off('data', onData);
        sock.off('error', onError);
        const status = head.subarray(0, head.indexOf('\r\n')).toString();
        if (!/ 101 /.test(`${status} `)) {
          sock.destroy();
          reject(new Error(`the server refused the WebSocket: ${status}`));
          return;
        }
        resolve(new WebSocketClient(sock, head.subarray(end + 4)));
      };
      const onError = (e) => {
        clearTimeout(timer);
        reject(e);
      };
      sock.on('data', onData);
      sock.once('error', onError);
      sock.once('connect', () => {
        const key = randomBytes(16).toString('base64');
        sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
          + `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      });
    });
  }

  constructor(sock, rest) {
    this.#sock = sock;
    this.#buf = Buffer.from(rest);
    sock.on('data', (chunk) => {
      this.#buf = Buffer.concat([this.#buf, chunk]);
      this.#pump();
    });
    const fail = (e) => {
      this.#error ??= e ?? new Error('the WebSocket closed');
      this.#waiting?.();
    };
    sock.on('error', fail);
    sock.on('close', () => fail(null));
    this.#pump();
  }

  #pump() {
    for (;;) {
      if (this.#buf.length < 2) break;
      const b0 = this.#buf[0];
      let n = this.#buf[1] & 0x7f;
      let off = 2;
      if (n === 126) {
        if (this.#buf.length < 4) break;
        n = this.#buf.readUInt16BE(2);
        off = 4;
      } else if (n === 127) {
        if (this.#buf.length < 10) break;
        n = Number(this.#buf.readBigUInt64BE(2));
        off = 10;
      }
      if (n > MAX_FRAME) {
        this.#error = new Error(`a WebSocket frame of ${n} bytes`);
        this.#sock.destroy();
        break;
      }
      if (this.#buf.length < off + n) break;
      const payload = this.#buf.subarray(off, off + n);
      this.#buf = this.#buf.subarray(off + n);
      const opcode = b0 & 0x0f;
      if (opcode === 8) {
        this.#error = new Error('the server closed the WebSocket');
        this.#sock.destroy();
        break;
      }
      if (opcode === 9 || opcode === 10) continue;
      this.#message.push(payload);
      if (b0 & 0x80) {
        this.#messages.push(Buffer.concat(this.#message).toString('utf8'));
        this.#message = [];
      }
    }
    this.#waiting?.();
  }

  /** Sends a text message. */
  send(text) {
    const data = Buffer.from(text, 'utf8');
    const mask = randomBytes(4);
    let head;
    if (data.length < 126) head = Buffer.from([0x81, 0x80 | data.length]);
    else if (data.length < 65536) {
      head = Buffer.from([0x81, 0x80 | 126, 0, 0]);
      head.writeUInt16BE(data.length, 2);
    } else {
      head = Buffer.alloc(10);
      head[0] = 0x81;
      head[1] = 0x80 | 127;
      head.writeBigUInt64BE(BigInt(data.length), 2);
    }
    for (let i = 0; i < data.length; i += 1) data[i] ^= mask[i % 4];
    this.#sock.write(Buffer.concat([head, mask, data]));
  }

  /** The next text message (rejects when the connection ends, or after timeoutMs). */
  async receive(timeoutMs) {
    const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    while (this.#messages.length === 0) {
      if (this.#error) throw this.#error;
      const left = deadline === undefined ? undefined : deadline - Date.now();
      if (left !== undefined && left <= 0) throw new Error(`no message within ${timeoutMs} ms`);
      await new Promise((resolve) => {
        const timer = left === undefined ? undefined : setTimeout(() => {
          this.#waiting = null;
          resolve();
        }, left);
        this.#waiting = () => {
          clearTimeout(timer);
          this.#waiting = null;
          resolve();
        };
      });
    }
    return this.#messages.shift();
  }

  close() {
    this.#sock.destroy();
  }
}
