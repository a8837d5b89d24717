// The Chrome-sheet helper against a fake UI DevTools server that speaks the
// protocol as Chromium 156 does: which view is clicked, and the errors when
// there is no browser, no sheet, or no such button.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';
import { Chrome, NoSuchButton, SheetNotShown, chromeFlags, freePort } from 'ferrokey';

const view = (nodeId, cls, children = [], props = {}) => ({ nodeId, nodeName: 'View', attributes: ['class', cls], children, props });
const button = (nodeId, cls, text = '', labels = [], visible = true) => view(nodeId, cls,
  labels.map((t, i) => view(nodeId * 100 + i, 'Label', [], { Text: t })),
  { Text: text, TriggerableEventFlags: '1', Visible: String(visible), IsDrawn: String(visible), Enabled: 'true', Width: '200', Height: '40' });

const accountChooser = () => ({
  nodeId: 0, nodeName: 'root', children: [
    { nodeId: 9, nodeName: 'Widget', children: [button(10, 'MdTextButton', 'Cancel')] },
    { nodeId: 1, nodeName: 'Widget', children: [
      view(2, 'AuthenticatorRequestDialogView', [
        view(3, 'Label', [], { Text: 'Choose a passkey' }),
        button(4, 'WebAuthnHoverButton', '', ['bob', 'USB security key']),
        button(5, 'WebAuthnHoverButton', '', ['alice', 'USB security key']),
        button(6, 'WebAuthnHoverButton', '', ['hidden'], false)]),
      view(7, 'DialogClientView::ButtonRowContainer', [button(8, 'MdTextButton', 'Cancel')])] }],
});

const alreadyRegistered = () => ({
  nodeId: 0, nodeName: 'root', children: [{ nodeId: 1, nodeName: 'Widget', children: [
    view(2, 'AuthenticatorRequestDialogView', [view(3, 'Label', [], { Text: 'already registered' })]),
    view(7, 'DialogClientView::ButtonRowContainer', [button(8, 'MdTextButton', 'Close')])] }],
});

/** A UI DevTools WebSocket server; records the clicks it gets. */
async function fakeUiDevTools(tree, { silentRelease = [] } = {}) {
  const nodes = new Map();
  const index = (n) => {
    nodes.set(n.nodeId, n);
    for (const c of n.children ?? []) index(c);
  };
  index(tree);
  const clicks = [];
  const answer = (msg) => {
    if (msg.method === 'DOM.getDocument') return { root: tree };
    if (msg.method === 'CSS.getMatchedStylesForNode') {
      const props = nodes.get(msg.params.nodeId).props ?? {};
      return { matchedCSSRules: [{ rule: { style: { cssProperties: Object.entries(props).map(([name, value]) => ({ name, value })) } } }] };
    }
    if (msg.method === 'DOM.dispatchMouseEvent') {
      clicks.push([msg.params.nodeId, msg.params.event.type, msg.params.event.x]);
      return {};
    }
    throw new Error(`unexpected ${msg.method}`);
  };
  const server = net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    let open = false;
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (!open) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        assert.ok(buf.subarray(0, end).toString().startsWith('GET /0 HTTP/1.1'));
        buf = buf.subarray(end + 4);
        open = true;
        sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n');
      }
      while (buf.length >= 2) {
        let n = buf[1] & 0x7f;
        let off = 2;
        if (n === 126) {
          n = buf.readUInt16BE(2);
          off = 4;
        }
        if (buf.length < off + 4 + n) return;
        const mask = buf.subarray(off, off + 4);
        const payload = Buffer.from(buf.subarray(off + 4, off + 4 + n)).map((b, i) => b ^ mask[i % 4]);
        buf = buf.subarray(off + 4 + n);
        const msg = JSON.parse(payload.toString());
        const result = answer(msg);
        // Chrome does not answer the release of a click that destroyed its view.
        if (msg.method === 'DOM.dispatchMouseEvent' && msg.params.event.type === 'mouseReleased'
          && silentRelease.includes(msg.params.nodeId)) continue;
        const reply = Buffer.from(JSON.stringify({ id: msg.id, result }));
        let head;
        if (reply.length < 126) head = Buffer.from([0x81, reply.length]);
        else {
          head = Buffer.from([0x81, 126, 0, 0]);
          head.writeUInt16BE(reply.length, 2);
        }
        sock.write(Buffer.concat([Buffer.from([0x89, 0x00]), head, reply])); // a ping first: skipped
      }
    });
    sock.on('error', () => {});
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { port: server.address().port, clicks, close: () => server.close() };
}

const servers = [];
after(() => servers.forEach((s) => s.close()));
const chooser = async () => {
  const s = await fakeUiDevTools(accountChooser());
  servers.push(s);
  return s;
};

test('the flags name the port', async () => {
  const port = await freePort();
  assert.deepEqual(chromeFlags(port), [`--enable-ui-devtools=${port}`, '--enable-features=ui-debug-tools-enable-synthetic-events']);
});

test('selectAccount clicks the named row once', async () => {
  const fake = await chooser();
  const chrome = new Chrome(fake.port, { settleMs: 0 });
  assert.equal(await chrome.selectAccount('alice'), 'alice / USB security key');
  assert.deepEqual(fake.clicks, [[5, 'mousePressed', 100], [5, 'mouseReleased', 100]]);
  assert.deepEqual(await chrome.sheet(), ['bob / USB security key', 'alice / USB security key', 'Cancel']);
});

test('closeSheet presses Close and never Cancel', async () => {
  const notice = await fakeUiDevTools(alreadyRegistered());
  servers.push(notice);
  assert.equal(await new Chrome(notice.port, { settleMs: 0 }).closeSheet(), 'Close');
  assert.deepEqual(notice.clicks.map((c) => c[0]), [8, 8]);
  // a ceremony in progress offers only Cancel: closing waits, and does not abort it
  const fake = await chooser();
  await assert.rejects(new Chrome(fake.port, { settleMs: 0 }).closeSheet({ timeoutMs: 500 }), (e) => e instanceof NoSuchButton && e.buttons.includes('Cancel'));
  assert.deepEqual(fake.clicks, []);
  assert.equal(await new Chrome(fake.port, { settleMs: 0 }).press('Cancel'), 'Cancel');
  assert.deepEqual(fake.clicks.map((c) => c[0]), [8, 8]); // not node 10, another widget's Cancel
});

test('a click that closes the sheet gets no answer and is done', async () => {
  const fake = await fakeUiDevTools(alreadyRegistered(), { silentRelease: [8] });
  servers.push(fake);
  const started = Date.now();
  assert.equal(await new Chrome(fake.port, { settleMs: 0 }).closeSheet({ timeoutMs: 20000 }), 'Close');
  assert.ok(Date.now() - started < 10000);
  assert.deepEqual(fake.clicks.map((c) => c.slice(0, 2)), [[8, 'mousePressed'], [8, 'mouseReleased']]);
});

test('an account that is not offered is a clear error', async () => {
  const fake = await chooser();
  await assert.rejects(new Chrome(fake.port, { settleMs: 0 }).selectAccount('carol', { timeoutMs: 500 }), (e) => e instanceof NoSuchButton
    && /account "carol"/.test(e.message) && /alice \/ USB security key/.test(e.message) && !e.buttons.includes('hidden'));
  assert.deepEqual(fake.clicks, []);
});

test('no sheet and no browser are told apart', async () => {
  const noDialog = await fakeUiDevTools({ nodeId: 0, nodeName: 'root', children: [{ nodeId: 1, nodeName: 'Widget', children: [button(2, 'MdTextButton', 'Close')] }] });
  servers.push(noDialog);
  await assert.rejects(new Chrome(noDialog.port, { settleMs: 0 }).closeSheet({ timeoutMs: 500 }), (e) => e instanceof SheetNotShown && /showed no WebAuthn sheet/.test(e.message));
  assert.equal(await new Chrome(noDialog.port).sheet(), null);
  assert.deepEqual(noDialog.clicks, []);
  const closingTree = accountChooser();
  closingTree.children[1].children[0].props = { Visible: 'true', IsDrawn: 'false' };
  const closing = await fakeUiDevTools(closingTree);
  servers.push(closing);
  await assert.rejects(new Chrome(closing.port, { settleMs: 0 }).press('Cancel', { timeoutMs: 500 }), SheetNotShown);
  await assert.rejects(new Chrome(await freePort()).selectAccount('alice', { timeoutMs: 500 }), (e) => e instanceof SheetNotShown && /enable-ui-devtools/.test(e.message));
});
