"""Press a button of Chromium's WebAuthn sheet, as a user would, in a headless run.

Chromium's browser UI (its views) can be inspected and driven through UI
DevTools: start it with `--enable-ui-devtools=PORT` (also in --headless=new) and
it serves one WebSocket client at ws://127.0.0.1:PORT/0 speaking a DevTools-like
protocol (components/ui_devtools): DOM.getDocument returns the tree of widgets
and views, CSS.getMatchedStylesForNode a view's properties (a button's Text,
Width, Height), and DOM.dispatchMouseEvent delivers a mouse event to one view
(ViewElement::DispatchMouseEvent -> View::OnMouseEvent).

DOM.dispatchMouseEvent only works with the feature
UIDebugToolsEnableSyntheticEvents (`--enable-features=ui-debug-tools-enable-synthetic-events`),
see UI_DEVTOOLS_FLAGS.  The dialog (AuthenticatorRequestDialogView) is the
contents view of its own widget; its buttons ("Cancel", "Close", ...) are not
inside it but in the sibling DialogClientView::ButtonRowContainer, so buttons
are looked for in the whole widget.

Used by guest_browsers.py for the sheets that wait for a user:
- "you already registered this security key" (kKeyAlreadyRegistered) blocks the
  request until the user closes it; closing it runs OnCancelFromUI, which
  rejects the page's create() with the error the key caused
  (CREDENTIAL_EXCLUDED -> InvalidStateError);
- the account chooser (kSelectAccount) after a get() with an empty allowList,
  shown by Chromium 156 even for a single account: the user picks the account
  (a WebAuthnHoverButton row, "dora / USB security key"), which completes the get().
Nothing here changes what the browser or the key does.

FERROKEY_UI_DUMP=1 (passed on by run-browser-e2e.sh) logs the dialog's views
(class, text, state) whenever they change while a button is looked for; they
are logged once anyway when no button matched in time.

Python 3 stdlib only.
"""
import base64
import json
import os
import socket
import struct
import time

DIALOG_CLASS = "AuthenticatorRequestDialogView"
# Chromium flags for a run driven through this module (PORT: a free TCP port).
UI_DEVTOOLS_FLAGS = ["--enable-ui-devtools={port}",
                     "--enable-features=ui-debug-tools-enable-synthetic-events"]


class UiDevTools:
    """A minimal WebSocket client for one UI DevTools connection."""

    def __init__(self, port, timeout=30.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /0 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._recv_some()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(f"UI DevTools refused the WebSocket: {head[:200]!r}")
        self.next_id = 0

    def _recv_some(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("UI DevTools closed the connection")
        return data

    def _read(self, n):
        while len(self.buf) < n:
            self.buf += self._recv_some()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send(self, text):
        data, mask = text.encode(), os.urandom(4)
        n = len(data)
        if n < 126:
            head = struct.pack(">BB", 0x81, 0x80 | n)
        elif n < 65536:
            head = struct.pack(">BBH", 0x81, 0x80 | 126, n)
        else:
            head = struct.pack(">BBQ", 0x81, 0x80 | 127, n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _message(self):
        msg = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(n)
            opcode = b0 & 0x0F
            if opcode == 8:
                raise ConnectionError("UI DevTools closed the WebSocket")
            if opcode in (9, 10):  # ping/pong
                continue
            msg += payload
            if b0 & 0x80:
                return json.loads(msg)

    def call(self, method, **params):
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            m = self._message()
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})

    def props(self, node_id):
        """A view's properties (all classes of its hierarchy), name -> value."""
        out = {}
        rules = self.call("CSS.getMatchedStylesForNode", nodeId=node_id).get("matchedCSSRules", [])
        for rule in rules:
            for p in rule["rule"]["style"]["cssProperties"]:
                out.setdefault(p["name"], p["value"])
        return out

    def close(self):
        self.sock.close()


def _attrs(node):
    a = node.get("attributes") or []
    return dict(zip(a[::2], a[1::2]))


def _walk(node):
    yield node
    for child in node.get("children") or []:
        yield from _walk(child)


def find_dialog(ui):
    """The widget node that holds the WebAuthn dialog (its sheet, button row and
    frame), or None."""
    def search(node, widget):
        if node.get("nodeName") == "Widget":
            widget = node
        if _attrs(node).get("class") == DIALOG_CLASS:
            return widget or node
        for child in node.get("children") or []:
            found = search(child, widget)
            if found:
                return found
        return None
    return search(ui.call("DOM.getDocument")["root"], None)


def _texts(ui, node):
    """The texts of the Labels under a view (a HoverButton's title and subtitle)."""
    out = []
    for n in _walk(node):
        if _attrs(n).get("class", "").endswith("Label") and n is not node:
            t = ui.props(n["nodeId"]).get("Text", "")
            if t:
                out.append(t)
    return out


def buttons(ui, dialog):
    """The visible, enabled views::Buttons in the dialog's widget, as dicts: id (node
    id), cls, text (the button's Text, else its labels' texts joined by " / "),
    props, and in_sheet (inside the AuthenticatorRequestDialogView, e.g. an
    account row, rather than in the button row or the frame)."""
    out = []

    def visit(node, in_sheet):
        cls = _attrs(node).get("class", "")
        in_sheet = in_sheet or cls == DIALOG_CLASS
        # Each property read is a round trip to the browser's UI thread (slow
        # under TCG): only views whose class is some kind of Button are read.
        if node.get("nodeName") == "View" and cls.endswith("Button"):
            p = ui.props(node["nodeId"])
            if ("TriggerableEventFlags" in p  # a views::Button
                    and all(p.get(k) == "true" for k in ("Visible", "IsDrawn", "Enabled"))):
                out.append({"id": node["nodeId"], "cls": cls,
                            "text": p.get("Text") or " / ".join(_texts(ui, node)),
                            "props": p, "in_sheet": in_sheet})
        for child in node.get("children") or []:
            visit(child, in_sheet)
    visit(dialog, False)
    return out


def dump(ui, node, depth=0):
    """The views under node, one line each: class, text, and state if not visible/enabled."""
    a = _attrs(node)
    line = "  " * depth + (a.get("class") or f"{node.get('nodeName')} {a.get('name', '')}")
    if node.get("nodeName") == "View":
        p = ui.props(node["nodeId"])
        if p.get("Text"):
            line += f" {p['Text']!r}"
        flags = [k for k in ("Visible", "IsDrawn", "Enabled") if p.get(k) == "false"]
        if "TriggerableEventFlags" in p:
            flags.insert(0, "button")
        if flags:
            line += f" [{' '.join(flags)}]"
    lines = [line]
    for child in node.get("children") or []:
        lines += dump(ui, child, depth + 1)
    return lines


def click(ui, node_id, props):
    """Left click in the middle of a view (press + release, as View::OnMouseEvent sees them)."""
    x, y = int(props.get("Width", "2")) // 2, int(props.get("Height", "2")) // 2
    for kind in ("mousePressed", "mouseReleased"):
        ui.call("DOM.dispatchMouseEvent", nodeId=node_id,
                event={"type": kind, "x": x, "y": y, "button": "left", "wheelDirection": "none"})


def by_label(*labels):
    """A chooser for press_sheet_button: the first button whose text is one of
    labels, in that order of preference."""
    def choose(found):
        for label in labels:
            for b in found:
                if b["text"] == label:
                    return b
        return None
    choose.wants = " or ".join(map(repr, labels))
    return choose


def only_account(found):
    """A chooser for press_sheet_button on the account chooser: the one account row
    in the sheet, as a user with one account there would pick; None if the sheet
    offers no account or several (then nobody can tell which one the page wants)."""
    rows = [b for b in found if b["in_sheet"]]
    return rows[0] if len(rows) == 1 else None


only_account.wants = "(exactly one account row)"


def press_sheet_button(port, choose, timeout=30.0, settle=1.0, log=print):
    """Wait for the WebAuthn dialog and click, once, the button that choose(buttons)
    returns.  Returns a description of what was clicked; raises RuntimeError if
    there was no such dialog or button in time (after logging the dialog's views).
    Clicks once only: the page that made the request judges what the click did."""
    end = time.monotonic() + timeout
    last, tree = "no UI DevTools connection", None
    verbose = bool(os.environ.get("FERROKEY_UI_DUMP"))
    while time.monotonic() < end:
        try:
            ui = UiDevTools(port, timeout=max(1.0, end - time.monotonic()))
        except OSError as e:
            last = f"UI DevTools on port {port}: {e}"
            time.sleep(0.5)
            continue
        try:
            dialog = find_dialog(ui)
            if dialog is None:
                last = f"no {DIALOG_CLASS} in the browser's views"
            else:
                found = buttons(ui, dialog)
                if verbose:
                    seen, tree = tree, dump(ui, dialog)
                    if tree != seen:
                        log("dialog views:\n" + "\n".join(tree))
                hit = choose(found)
                if hit is not None:
                    # The dialog ignores clicks that come too soon after it is
                    # shown (views::InputEventActivationProtector): let it settle.
                    time.sleep(settle)
                    click(ui, hit["id"], hit["props"])
                    return f"clicked {hit['cls']} {hit['text']!r}"
                last = (f"no button {getattr(choose, 'wants', '')} in the dialog; buttons: " +
                        (", ".join(f"{b['cls']} {b['text']!r}" for b in found) or "none"))
        except (OSError, ValueError, RuntimeError) as e:
            last = f"UI DevTools: {e}"
        finally:
            ui.close()
        time.sleep(0.5)
    if not verbose:  # what the dialog looked like, to see what to click instead
        try:
            ui = UiDevTools(port, timeout=10)
            try:
                dialog = find_dialog(ui)
                if dialog is not None:
                    log("dialog views, at the end:\n" + "\n".join(dump(ui, dialog)))
            finally:
                ui.close()
        except (OSError, ValueError, RuntimeError):
            pass
    raise RuntimeError(last)
