// Chrome's native WebAuthn sheets, answered as a user would, in headless runs.
//
// Some security-key ceremonies stop on a sheet of Chrome's own UI that
// Playwright cannot reach: the account chooser after a username-less sign-in
// (Chromium 156 shows it even for one account) and "you've already registered
// this security key" after an excluded credential. Chrome's UI DevTools
// (--enable-ui-devtools=PORT) serve the browser's views over a WebSocket; with
// the feature ui-debug-tools-enable-synthetic-events a mouse event can be sent
// to one view. This finds the WebAuthn dialog (AuthenticatorRequestDialogView),
// its buttons and account rows, and clicks one. Tested with Debian's Chromium
// 156.0.8078.114 (headless, under Playwright). It cannot type a PIN or answer
// a sheet with a text field, and needs a browser started with chromeFlags().
import net from 'node:net';
import { FerrokeyError } from './errors.js';
import { WebSocketClient } from './websocket.js';

export const DIALOG_CLASS = 'AuthenticatorRequestDialogView';
/** The Chromium versions this helper was tested with. */
export const TESTED_VERSIONS = ['156.0.8078.114'];
/**
 * Labels of the button that closes a notice or error sheet ("already
 * registered", ...), in order of preference. Not "Cancel": that is on the sheets
 * of a ceremony still in progress, and pressing it aborts the ceremony.
 */
export const CLOSE_LABELS = ['Close', 'OK', 'Got it'];
const MAX_DEPTH = 200;

/** The Chrome flags the helper needs (UI DevTools on `port`). */
export const chromeFlags = (port) => [`--enable-ui-devtools=${port}`, '--enable-features=ui-debug-tools-enable-synthetic-events'];

/** A free loopback TCP port. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A sheet could not be answered. */
export class SheetError extends FerrokeyError {}
/** Chrome showed no WebAuthn sheet in time (or its UI DevTools are not on). */
export class SheetNotShown extends SheetError {}
/** The sheet has no button or account matching the request; `buttons` lists what it has. */
export class NoSuchButton extends SheetError {
  constructor(message, buttons) {
    super(message);
    this.buttons = buttons;
  }
}

/** One connection to Chrome's UI DevTools. */
export class UiDevTools {
  #ws;
  #nextId = 0;

  /** Connects; every later call fails after `timeoutMs` without an answer. */
  static async connect(port, { timeoutMs = 30000 } = {}) {
    const ui = new UiDevTools();
    ui.#ws = await WebSocketClient.connect(port, '/0', { timeoutMs });
    ui.#timeoutMs = timeoutMs;
    return ui;
  }

  #timeoutMs = 30000;

  /** One command; its result (rejects after timeoutMs without an answer). */
  async call(method, params = {}, { timeoutMs = this.#timeoutMs } = {}) {
    this.#nextId += 1;
    const id = this.#nextId;
    this.#ws.send(JSON.stringify({ id, method, params }));
    for (;;) {
      const message = JSON.parse(await this.#ws.receive(timeoutMs));
      if (message.id === id) {
        if (message.error) throw new Error(`${method}: ${JSON.stringify(message.error)}`);
        return message.result ?? {};
      }
    }
  }

  /** A view's properties (every class of its hierarchy): name -> value. */
  async props(nodeId) {
    const out = {};
    const { matchedCSSRules = [] } = await this.call('CSS.getMatchedStylesForNode', { nodeId });
    for (const rule of matchedCSSRules) {
      for (const p of rule.rule.style.cssProperties) if (!(p.name in out)) out[p.name] = p.value;
    }
    return out;
  }

  close() {
    this.#ws.close();
  }
}

const attrs = (node) => {
  const a = node.attributes ?? [];
  const out = {};
  for (let i = 0; i + 1 < a.length; i += 2) out[a[i]] = a[i + 1];
  return out;
};

/** The widget node holding the WebAuthn dialog while it is drawn, or null (a closing dialog can stay in the tree a moment). */
export async function findDialog(ui) {
  const { root } = await ui.call('DOM.getDocument');
  const stack = [[root, null, 0]];
  while (stack.length) {
    const [node, parentWidget, depth] = stack.pop();
    const widget = node.nodeName === 'Widget' ? node : parentWidget;
    if (attrs(node).class === DIALOG_CLASS) {
      const p = await ui.props(node.nodeId);
      if ((p.Visible ?? 'true') === 'true' && (p.IsDrawn ?? 'true') === 'true') return widget ?? node;
      continue;
    }
    if (depth < MAX_DEPTH) for (const c of [...(node.children ?? [])].reverse()) stack.push([c, widget, depth + 1]);
  }
  return null;
}

async function labelTexts(ui, node) {
  const out = [];
  const walk = async (n, depth) => {
    if (n !== node && (attrs(n).class ?? '').endsWith('Label')) {
      const text = (await ui.props(n.nodeId)).Text;
      if (text) out.push(text);
    }
    if (depth < MAX_DEPTH) for (const c of n.children ?? []) await walk(c, depth + 1);
  };
  await walk(node, 0);
  return out;
}

/** The visible, enabled buttons of the dialog's widget: {id, cls, text, props, inSheet}. */
export async function dialogButtons(ui, dialog) {
  const out = [];
  const visit = async (node, inSheet, depth) => {
    const cls = attrs(node).class ?? '';
    const sheet = inSheet || cls === DIALOG_CLASS;
    if (node.nodeName === 'View' && cls.endsWith('Button')) {
      const p = await ui.props(node.nodeId);
      if ('TriggerableEventFlags' in p && ['Visible', 'IsDrawn', 'Enabled'].every((k) => p[k] === 'true')) {
        out.push({ id: node.nodeId, cls, text: p.Text || (await labelTexts(ui, node)).join(' / '), props: p, inSheet: sheet });
      }
    }
    if (depth < MAX_DEPTH) for (const c of node.children ?? []) await visit(c, sheet, depth + 1);
  };
  await visit(dialog, false, 0);
  return out;
}

/** How long to wait for the answer to the release of a click. */
export const RELEASE_ANSWER_MS = 3000;

/**
 * A left click in the middle of a view. A button that closes the sheet is
 * destroyed while it handles the release, and Chrome then never answers that
 * command: no answer within RELEASE_ANSWER_MS counts as done.
 */
export async function click(ui, nodeId, props) {
  const x = Math.floor(Number(props.Width ?? 2) / 2);
  const y = Math.floor(Number(props.Height ?? 2) / 2);
  const event = (type) => ({ nodeId, event: { type, x, y, button: 'left', wheelDirection: 'none' } });
  await ui.call('DOM.dispatchMouseEvent', event('mousePressed'));
  try {
    await ui.call('DOM.dispatchMouseEvent', event('mouseReleased'), { timeoutMs: RELEASE_ANSWER_MS });
  } catch (e) {
    if (!/no message within/.test(e.message)) throw e;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Chrome's WebAuthn sheets through the UI DevTools on `port` (Chrome started with chromeFlags(port)). */
export class Chrome {
  constructor(port, { settleMs = 1000 } = {}) {
    this.port = port;
    this.settleMs = settleMs;
    this.flags = chromeFlags(port);
  }

  async #answer(choose, wants, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    let reached = false;
    let dialogSeen = false;
    let lastButtons = [];
    let lastError = '';
    for (;;) {
      let ui = null;
      try {
        ui = await UiDevTools.connect(this.port, { timeoutMs: Math.max(1000, deadline - Date.now()) });
        reached = true;
        const dialog = await findDialog(ui);
        if (dialog) {
          dialogSeen = true;
          const found = await dialogButtons(ui, dialog);
          lastButtons = found.map((b) => b.text);
          const hit = choose(found);
          if (hit) {
            // The sheet ignores clicks that come too soon after it is shown.
            await sleep(this.settleMs);
            await click(ui, hit.id, hit.props);
            return hit.text;
          }
        }
      } catch (e) {
        lastError = e.message;
      } finally {
        ui?.close();
      }
      if (Date.now() >= deadline) break;
      await sleep(300);
    }
    if (!reached) {
      throw new SheetNotShown(`cannot reach Chrome's UI DevTools on 127.0.0.1:${this.port} (${lastError}): `
        + `was the browser started with ${this.flags.join(' ')}? (ferrokey/playwright adds them to the `
        + "configuration's launchOptions; a test.use({ launchOptions }) in a spec file replaces them)");
    }
    if (!dialogSeen) throw new SheetNotShown(`Chrome showed no WebAuthn sheet within ${timeoutMs} ms (wanted ${wants})`);
    throw new NoSuchButton(`Chrome's WebAuthn sheet has no ${wants} within ${timeoutMs} ms; it offers: `
      + `${lastButtons.map((b) => JSON.stringify(b)).join(', ') || 'nothing clickable'}`, lastButtons);
  }

  /** Picks the account whose row mentions `name` on the account chooser; resolves to the row's text. */
  selectAccount(name, { timeoutMs = 30000 } = {}) {
    return this.#answer((found) => found.find((b) => b.inSheet && b.text.includes(name)) ?? null,
      `account ${JSON.stringify(name)}`, timeoutMs);
  }

  /** Clicks the first button whose text is one of `labels` (in that order). */
  press(labels, { timeoutMs = 30000 } = {}) {
    const wanted = Array.isArray(labels) ? labels : [labels];
    return this.#answer((found) => {
      for (const label of wanted) {
        const hit = found.find((b) => b.text === label);
        if (hit) return hit;
      }
      return null;
    }, wanted.map((l) => JSON.stringify(l)).join(' or '), timeoutMs);
  }

  /**
   * Closes a notice or error sheet (its "Close", "OK" or "Got it"; waits for one
   * while the ceremony is still in progress): after "already registered",
   * create() rejects with InvalidStateError. To abort a ceremony, press('Cancel').
   */
  closeSheet({ timeoutMs = 30000 } = {}) {
    return this.press(CLOSE_LABELS, { timeoutMs });
  }

  /** The texts of the sheet's buttons now, or null if no sheet shows. */
  async sheet() {
    const ui = await UiDevTools.connect(this.port);
    try {
      const dialog = await findDialog(ui);
      return dialog ? (await dialogButtons(ui, dialog)).map((b) => b.text) : null;
    } finally {
      ui.close();
    }
  }
}
