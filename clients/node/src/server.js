// Starting and stopping a `ferrokey serve` process:
//   const server = await start({ transport: 'uhid' });   // waits until usable
//   server.hidraw, server.busid, server.url, server.client
//   await server.stop();
import { execFile, spawn } from 'node:child_process';
import { accessSync, constants, createWriteStream, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { Client } from './client.js';
import { StartError } from './errors.js';

export const TRANSPORTS = ['auto', 'uhid', 'attach', 'usbip'];

const ANSI = /\x1b\[[0-9;]*m/g;
const CONTROL = /control API on (\S+?)\/? \(description/;
const LISTEN = /listening on (\S+):(\d+)\s*$/;
const TRANSPORT = /\btransport transport="?(\w+)"?/;
const READY = /key-(\d+) ready: busid (\S+), serial (\S+)/;
const NODE = /key-(\d+) (?:is a uhid device|attached on vhci port \d+): (\/dev\/hidraw\d+)/;

const isExecutable = (path) => {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
};

// The ready lines are logged at info: keep RUST_LOG at info or more verbose.
const logLevel = (env) => (/debug|trace/.test(env.RUST_LOG ?? '') ? env.RUST_LOG : 'info');

/** The ferrokey program: `binary`, else $FERROKEY_BIN, else PATH. */
export function findBinary(binary) {
  let candidate = binary || process.env.FERROKEY_BIN;
  if (!candidate) {
    candidate = (process.env.PATH ?? '').split(delimiter).map((d) => join(d, 'ferrokey')).find(isExecutable);
  }
  if (!candidate) {
    throw new StartError('no ferrokey binary: give {binary}, set FERROKEY_BIN, or put ferrokey on PATH (cargo install --path firmware-sim)');
  }
  if (!isExecutable(candidate)) throw new StartError(`ferrokey binary ${candidate} is not an executable file`);
  return candidate;
}

/** A running `ferrokey serve`. */
export class Server {
  url = '';
  transport = '';
  usbipPort = null;
  busids = new Map();
  hidraws = new Map();
  client = null;
  #lines = [];
  #waiters = new Set();
  #exited = null;

  constructor(child, { logPath, stateDir, ownsState, ownsLog = false }) {
    this.process = child;
    this.ownsLog = ownsLog;
    this.logPath = logPath;
    this.stateDir = stateDir;
    this.ownsState = ownsState;
    const log = createWriteStream(logPath, { flags: 'a' });
    let rest = '';
    child.stderr.on('data', (chunk) => {
      log.write(chunk);
      const lines = (rest + chunk.toString('utf8')).split('\n');
      rest = lines.pop();
      for (const raw of lines) this.#parse(raw.replace(ANSI, ''));
    });
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.#exited = { code, signal };
        log.end();
        this.#wake();
        resolve(this.#exited);
      });
    });
  }

  #parse(line) {
    this.#lines.push(line);
    if (this.#lines.length > 500) this.#lines.shift();
    let m;
    if ((m = CONTROL.exec(line))) this.url = m[1];
    if ((m = LISTEN.exec(line))) this.usbipPort = Number(m[2]);
    if ((m = TRANSPORT.exec(line)) && !this.transport) [, this.transport] = m;
    if ((m = READY.exec(line))) this.busids.set(Number(m[1]), m[2]);
    if ((m = NODE.exec(line))) this.hidraws.set(Number(m[1]), m[2]);
    this.#wake();
  }

  #wake() {
    for (const w of this.#waiters) w();
  }

  /** The last lines ferrokey logged. */
  logTail(n = 20) {
    return this.#lines.slice(-n).join('\n');
  }

  /** Resolves once ready() is true; rejects with the log's tail on exit or timeout. */
  async waitUntil(ready, timeoutMs, what) {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      if (this.#exited) {
        throw new StartError(`ferrokey exited (${this.#exited.code ?? this.#exited.signal}) before ${what}:\n${this.logTail()}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new StartError(`ferrokey: no ${what} within ${timeoutMs} ms:\n${this.logTail()}`);
      await new Promise((resolve) => {
        const wake = () => {
          this.#waiters.delete(wake);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(wake, Math.min(left, 500));
        this.#waiters.add(wake);
      });
    }
  }

  /** Key 1's USB/IP busid. */
  get busid() {
    return this.busids.get(1) ?? '1-1';
  }

  /** Key 1's hidraw node (transports uhid and attach), else null. */
  get hidraw() {
    return this.hidraws.get(1) ?? null;
  }

  /**
   * Transport usbip: attaches `key` to this machine's vhci-hcd with `usbip attach`
   * (root, the vhci-hcd module and the usbip tool needed) and resolves to its
   * hidraw node. Removing the key later unplugs it (the kernel frees the port).
   */
  async attach(key, { timeoutMs = 30000 } = {}) {
    if (this.usbipPort === null) throw new StartError(`attach: the server has no USB/IP port (transport ${this.transport})`);
    const busid = await key.busid();
    const args = ['--tcp-port', String(this.usbipPort), 'attach', '-r', '127.0.0.1', '-b', busid];
    const result = await new Promise((resolve) => {
      execFile('usbip', args, { timeout: timeoutMs }, (error, stdout, stderr) => resolve({ error, stderr }));
    });
    if (result.error) throw new StartError(`usbip ${args.join(' ')}: ${result.error.message} ${result.stderr}`.trim());
    return key.waitForHidraw({ timeoutMs });
  }

  /** The keys the server runs, through the control API. */
  keys() {
    return this.client.authenticators();
  }

  /** SIGTERM (the keys unplug cleanly), SIGKILL after timeoutMs; removes the state dir and log start() made. */
  async stop({ timeoutMs = 15000 } = {}) {
    if (!this.#exited) {
      this.process.kill('SIGTERM');
      const timer = setTimeout(() => this.process.kill('SIGKILL'), timeoutMs);
      await this.exited;
      clearTimeout(timer);
    }
    if (this.ownsState) rmSync(this.stateDir, { recursive: true, force: true });
    if (this.ownsLog) rmSync(this.logPath, { force: true });
    return this.#exited;
  }

  async [Symbol.asyncDispose]() {
    await this.stop();
  }
}

/**
 * Starts `ferrokey serve` and waits until it is usable: the control API
 * answers, every key is ready, and (uhid, attach) has its hidraw node.
 */
export async function start({
  binary, transport = 'auto', keys = 1, stateDir, control = '127.0.0.1:0', listen, uv = 'auto', presence,
  tokenFile, args = [], timeoutMs = 60000, logPath, env,
} = {}) {
  if (!TRANSPORTS.includes(transport)) throw new TypeError(`transport must be one of ${TRANSPORTS.join(', ')}, not ${transport}`);
  const program = findBinary(binary);
  const ownsState = !stateDir;
  const state = stateDir ?? mkdtempSync(join(tmpdir(), 'ferrokey-state-'));
  const cmd = ['serve', '--transport', transport, '--keys', String(keys), '--state-dir', state, '--control', control];
  if (transport === 'usbip' || listen) cmd.push('--listen', listen ?? '127.0.0.1:0');
  if (uv) cmd.push('--uv', uv);
  if (presence) cmd.push('--presence', presence);
  let token;
  if (tokenFile) {
    cmd.push('--control-token-file', tokenFile);
    try {
      token = readFileSync(tokenFile, 'utf8').trim();
    } catch (e) {
      throw new StartError(`cannot read the token file ${tokenFile}: ${e.message}`);
    }
  }
  cmd.push(...args);
  const child = spawn(program, cmd, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...(env ?? process.env), RUST_LOG: logLevel(env ?? process.env), NO_COLOR: '1' },
  });
  const spawned = await new Promise((resolve) => {
    child.once('spawn', () => resolve(null));
    child.once('error', (e) => resolve(e));
  });
  if (spawned) throw new StartError(`cannot run ${program}: ${spawned.message}`);
  const server = new Server(child, { logPath: logPath ?? `${state}.log`, stateDir: state, ownsState, ownsLog: ownsState && !logPath });
  try {
    await server.waitUntil(() => server.url && server.busids.size >= keys, timeoutMs, `control API and ${keys} ready key(s)`);
    if (server.transport === 'uhid' || server.transport === 'attach') {
      await server.waitUntil(() => server.hidraws.size >= keys, timeoutMs, `hidraw node(s) of the ${server.transport} key(s)`);
    }
    if (control.startsWith('unix:')) server.url = control;
    server.client = new Client(server.url, { token });
    await server.client.status();
  } catch (e) {
    await server.stop();
    throw e;
  }
  return server;
}
