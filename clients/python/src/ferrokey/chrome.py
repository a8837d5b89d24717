"""Chrome's native WebAuthn sheets, answered as a user would, in headless runs.

Some security-key ceremonies stop on a sheet of Chrome's own UI that neither
Playwright nor Selenium can reach: the account chooser after a username-less
sign-in (Chromium 156 shows it even for one account) and "you've already
registered this security key" after an excluded credential. Chrome's UI
DevTools (``--enable-ui-devtools=PORT``) serve the browser's views over a
WebSocket; with the feature ``ui-debug-tools-enable-synthetic-events`` a mouse
event can be sent to one view. This module finds the WebAuthn dialog
(``AuthenticatorRequestDialogView``), its buttons and account rows, and clicks
one::

    chrome = Chrome(port)                  # launch Chrome with chrome_flags(port)
    chrome.select_account("alice")         # the row whose text contains "alice"
    chrome.close_sheet()                   # "Close" on a notice ("already registered")

Tested with Debian's Chromium 156.0.8078.114 (headless=new, also under
Playwright and chromedriver). What it cannot do: enter a PIN or answer any
sheet with a text field, touch a platform authenticator, choose between
Chrome's own mechanisms (phone, Windows Hello) beyond a labelled button, or
work in a browser that was not started with :func:`chrome_flags`. Python 3
stdlib only.
"""
from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from typing import Any, Callable, Dict, Iterator, List, Optional

from .errors import FerrokeyError

DIALOG_CLASS = "AuthenticatorRequestDialogView"
#: The Chromium versions this module was tested with.
TESTED_VERSIONS = ("156.0.8078.114",)
#: Labels of the button that closes a notice or error sheet ("already registered",
#: ...), in order of preference. Not "Cancel": that is on the sheets of a ceremony
#: still in progress ("use your security key"), and pressing it aborts the ceremony.
CLOSE_LABELS = ("Close", "OK", "Got it")


def chrome_flags(port: int) -> List[str]:
    """The Chrome command-line flags the helper needs (UI DevTools on ``port``)."""
    return [f"--enable-ui-devtools={port}",
            "--enable-features=ui-debug-tools-enable-synthetic-events"]


def free_port() -> int:
    """A free loopback TCP port (for ``--enable-ui-devtools``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SheetError(FerrokeyError):
    """A sheet could not be answered."""


class SheetNotShown(SheetError):
    """Chrome showed no WebAuthn sheet in time (or its UI DevTools are not on:
    the message says which)."""


class NoSuchButton(SheetError):
    """The sheet is there but has no button or account matching the request;
    ``buttons`` lists what it has."""

    def __init__(self, message: str, buttons: List[str]):
        super().__init__(message)
        self.buttons = buttons


class UiDevTools:
    """One WebSocket connection to Chrome's UI DevTools (``ws://127.0.0.1:PORT/0``)."""

    def __init__(self, port: int, timeout: float = 30.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /0 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._recv_some()
            if len(self.buf) > 65536:
                raise ConnectionError("UI DevTools: no end of the HTTP head")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0] + b" ":
            raise ConnectionError(f"UI DevTools refused the WebSocket: {head[:200]!r}")
        self.next_id = 0

    def _recv_some(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("UI DevTools closed the connection")
        return data

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            self.buf += self._recv_some()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send(self, text: str) -> None:
        data, mask = text.encode(), os.urandom(4)
        n = len(data)
        if n < 126:
            head = struct.pack(">BB", 0x81, 0x80 | n)
        elif n < 65536:
            head = struct.pack(">BBH", 0x81, 0x80 | 126, n)
        else:
            head = struct.pack(">BBQ", 0x81, 0x80 | 127, n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _message(self) -> Dict[str, Any]:
        msg = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            if n > 64 << 20:
                raise ConnectionError(f"UI DevTools frame of {n} bytes")
            payload = self._read(n)
            opcode = b0 & 0x0F
            if opcode == 8:
                raise ConnectionError("UI DevTools closed the WebSocket")
            if opcode in (9, 10):  # ping, pong
                continue
            msg += payload
            if b0 & 0x80:
                out = json.loads(msg)
                return out if isinstance(out, dict) else {}

    def call(self, method: str, timeout: Optional[float] = None, **params: Any) -> Dict[str, Any]:
        """One command; its result (RuntimeError on a protocol error; socket.timeout
        after ``timeout`` seconds, or the connection's timeout, without an answer)."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            m = self._message()
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                result = m.get("result", {})
                return result if isinstance(result, dict) else {}

    def props(self, node_id: int) -> Dict[str, str]:
        """A view's properties (every class of its hierarchy): name -> value."""
        out: Dict[str, str] = {}
        rules = self.call("CSS.getMatchedStylesForNode", nodeId=node_id).get("matchedCSSRules", [])
        for rule in rules:
            for p in rule["rule"]["style"]["cssProperties"]:
                out.setdefault(p["name"], p["value"])
        return out

    def close(self) -> None:
        self.sock.close()


def _attrs(node: Dict[str, Any]) -> Dict[str, str]:
    a = node.get("attributes") or []
    return dict(zip(a[::2], a[1::2]))


def _walk(node: Dict[str, Any], depth: int = 0) -> Iterator[Dict[str, Any]]:
    if depth > 200:  # views nest a few dozen deep; never recurse without bound
        return
    yield node
    for child in node.get("children") or []:
        yield from _walk(child, depth + 1)


def find_dialog(ui: UiDevTools) -> Optional[Dict[str, Any]]:
    """The widget node holding the WebAuthn dialog (sheet, button row, frame) while
    the dialog is drawn, or None (a closing dialog can stay in the tree a moment)."""
    widget = None
    stack = [(ui.call("DOM.getDocument")["root"], None, 0)]
    while stack:
        node, widget, depth = stack.pop()
        if node.get("nodeName") == "Widget":
            widget = node
        if _attrs(node).get("class") == DIALOG_CLASS:
            props = ui.props(node["nodeId"])
            if props.get("Visible", "true") == "true" and props.get("IsDrawn", "true") == "true":
                found: Dict[str, Any] = widget or node
                return found
            continue
        if depth < 200:
            stack.extend((c, widget, depth + 1) for c in reversed(node.get("children") or []))
    return None


def _texts(ui: UiDevTools, node: Dict[str, Any]) -> List[str]:
    out = []
    for n in _walk(node):
        if n is not node and _attrs(n).get("class", "").endswith("Label"):
            text = ui.props(n["nodeId"]).get("Text", "")
            if text:
                out.append(text)
    return out


def buttons(ui: UiDevTools, dialog: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The visible, enabled buttons of the dialog's widget: ``id``, ``cls``,
    ``text`` (its Text, else its labels joined by " / "), ``props``, and
    ``in_sheet`` (inside the sheet, like an account row, rather than in the
    button row)."""
    out: List[Dict[str, Any]] = []

    def visit(node: Dict[str, Any], in_sheet: bool, depth: int) -> None:
        cls = _attrs(node).get("class", "")
        in_sheet = in_sheet or cls == DIALOG_CLASS
        if node.get("nodeName") == "View" and cls.endswith("Button"):
            p = ui.props(node["nodeId"])
            if "TriggerableEventFlags" in p and all(
                    p.get(k) == "true" for k in ("Visible", "IsDrawn", "Enabled")):
                out.append({"id": node["nodeId"], "cls": cls,
                            "text": p.get("Text") or " / ".join(_texts(ui, node)),
                            "props": p, "in_sheet": in_sheet})
        if depth < 200:
            for child in node.get("children") or []:
                visit(child, in_sheet, depth + 1)

    visit(dialog, False, 0)
    return out


#: How long to wait for the answer to the release of a click (seconds).
RELEASE_ANSWER_S = 3.0


def click(ui: UiDevTools, node_id: int, props: Dict[str, str]) -> None:
    """A left click in the middle of a view (press and release). A button that
    closes the sheet is destroyed while it handles the release, and Chrome then
    never answers that command: no answer within RELEASE_ANSWER_S counts as done."""
    x, y = int(props.get("Width", "2")) // 2, int(props.get("Height", "2")) // 2

    def event(kind: str) -> Dict[str, Any]:
        return {"type": kind, "x": x, "y": y, "button": "left", "wheelDirection": "none"}
    ui.call("DOM.dispatchMouseEvent", nodeId=node_id, event=event("mousePressed"))
    try:
        ui.call("DOM.dispatchMouseEvent", timeout=RELEASE_ANSWER_S, nodeId=node_id,
                event=event("mouseReleased"))
    except socket.timeout:
        pass


Chooser = Callable[[List[Dict[str, Any]]], Optional[Dict[str, Any]]]


class Chrome:
    """Chrome's WebAuthn sheets, through the UI DevTools on ``port`` (Chrome
    started with :func:`chrome_flags`)."""

    def __init__(self, port: int, settle: float = 1.0):
        self.port = port
        self.settle = settle
        self.flags = chrome_flags(port)

    def _answer(self, choose: Chooser, wants: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        reached, dialog_seen, last_buttons = False, False, []
        last_error = ""
        while True:
            try:
                ui = UiDevTools(self.port, timeout=max(1.0, deadline - time.monotonic()))
            except OSError as e:
                last_error = str(e)
            else:
                reached = True
                try:
                    dialog = find_dialog(ui)
                    if dialog is not None:
                        dialog_seen = True
                        found = buttons(ui, dialog)
                        last_buttons = [b["text"] for b in found]
                        hit = choose(found)
                        if hit is not None:
                            # The sheet ignores clicks that come too soon after it
                            # is shown (views::InputEventActivationProtector).
                            time.sleep(self.settle)
                            click(ui, hit["id"], hit["props"])
                            return str(hit["text"])
                except (OSError, ValueError, KeyError, RuntimeError) as e:
                    last_error = str(e)
                finally:
                    ui.close()
            if time.monotonic() >= deadline:
                break
            time.sleep(0.3)
        if not reached:
            raise SheetNotShown(
                f"cannot reach Chrome's UI DevTools on 127.0.0.1:{self.port} ({last_error}): was "
                f"the browser started with {' '.join(self.flags)}?")
        if not dialog_seen:
            raise SheetNotShown(f"Chrome showed no WebAuthn sheet within {timeout:g} s "
                                f"(wanted {wants})")
        raise NoSuchButton(f"Chrome's WebAuthn sheet has no {wants} within {timeout:g} s; it "
                           f"offers: {', '.join(map(repr, last_buttons)) or 'nothing clickable'}",
                           last_buttons)

    def select_account(self, name: str, timeout: float = 30.0) -> str:
        """Picks the account whose row mentions ``name`` on the account chooser
        (after a username-less sign-in); returns the row's text."""
        def choose(found: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
            rows = [b for b in found if b["in_sheet"] and name in b["text"]]
            return rows[0] if rows else None
        return self._answer(choose, f"account {name!r}", timeout)

    def press(self, *labels: str, timeout: float = 30.0) -> str:
        """Clicks the first button whose text is one of ``labels`` (in that order)."""
        def choose(found: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
            for label in labels:
                for b in found:
                    if b["text"] == label:
                        return b
            return None
        return self._answer(choose, " or ".join(map(repr, labels)), timeout)

    def close_sheet(self, timeout: float = 30.0) -> str:
        """Closes a notice or error sheet (its "Close", "OK" or "Got it"; waits
        for one while the ceremony is still in progress): after "already
        registered" the page's create() then rejects with InvalidStateError. To
        abort a ceremony in progress, ``press("Cancel")``."""
        return self.press(*CLOSE_LABELS, timeout=timeout)

    def sheet(self) -> Optional[List[str]]:
        """The texts of the WebAuthn sheet's buttons now, or None if no sheet shows."""
        ui = UiDevTools(self.port)
        try:
            dialog = find_dialog(ui)
            return None if dialog is None else [b["text"] for b in buttons(ui, dialog)]
        finally:
            ui.close()
