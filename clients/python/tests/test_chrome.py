"""The Chrome-sheet helper against a fake UI DevTools server that speaks the
protocol as Chromium 156 does (WebSocket at /0, DOM.getDocument,
CSS.getMatchedStylesForNode, DOM.dispatchMouseEvent): which view is clicked,
and the errors when there is no browser, no sheet, or no such button."""
import json
import socket
import struct
import threading
import time

import pytest

from ferrokey.chrome import Chrome, NoSuchButton, SheetNotShown, chrome_flags, free_port


def view(node_id, cls, children=(), **props):
    return {"nodeId": node_id, "nodeName": "View", "attributes": ["class", cls],
            "children": list(children), "props": props}


def button(node_id, cls, text="", labels=(), visible=True):
    state = "true" if visible else "false"
    kids = [view(node_id * 100 + i, "Label", Text=t) for i, t in enumerate(labels)]
    return view(node_id, cls, kids, Text=text, TriggerableEventFlags="1", Visible=state,
                IsDrawn=state, Enabled="true", Width="200", Height="40")


def account_chooser():
    sheet = view(2, "AuthenticatorRequestDialogView", [
        view(3, "Label", Text="Choose a passkey"),
        button(4, "WebAuthnHoverButton", labels=("bob", "USB security key")),
        button(5, "WebAuthnHoverButton", labels=("alice", "USB security key")),
        button(6, "WebAuthnHoverButton", labels=("hidden",), visible=False)])
    row = view(7, "DialogClientView::ButtonRowContainer", [button(8, "MdTextButton", "Cancel")])
    widget = {"nodeId": 1, "nodeName": "Widget", "attributes": ["name", "dialog"], "children": [sheet, row]}
    return {"nodeId": 0, "nodeName": "root", "children": [
        {"nodeId": 9, "nodeName": "Widget", "children": [button(10, "MdTextButton", "Cancel")]}, widget]}


class FakeUiDevTools:
    """A UI DevTools WebSocket server; records the clicks it gets."""

    def __init__(self, tree, silent_release=()):
        self.tree = tree
        self.silent_release = set(silent_release)  # views destroyed by their click
        self.clicks = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.nodes = {}
        self._index(tree)
        threading.Thread(target=self._serve, daemon=True).start()

    def _index(self, node):
        self.nodes[node["nodeId"]] = node
        for child in node.get("children", []):
            self._index(child)

    def _serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn):
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(4096)
            assert head.startswith(b"GET /0 HTTP/1.1")
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n")
            buf = b""
            while True:
                while len(buf) < 2:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                n, off = buf[1] & 0x7F, 2
                if n == 126:
                    n, off = struct.unpack(">H", buf[2:4])[0], 4
                while len(buf) < off + 4 + n:
                    buf += conn.recv(65536)
                mask, payload = buf[off:off + 4], buf[off + 4:off + 4 + n]
                buf = buf[off + 4 + n:]
                msg = json.loads(bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
                result = self.answer(msg)
                if msg["method"] == "DOM.dispatchMouseEvent" and msg["params"]["event"]["type"] == \
                        "mouseReleased" and msg["params"]["nodeId"] in self.silent_release:
                    continue  # Chrome does not answer: the view is gone
                reply = json.dumps({"id": msg["id"], "result": result}).encode()
                head = struct.pack(">BB", 0x81, len(reply)) if len(reply) < 126 else \
                    struct.pack(">BBH", 0x81, 126, len(reply)) if len(reply) < 65536 else \
                    struct.pack(">BBQ", 0x81, 127, len(reply))
                conn.sendall(b"\x89\x00" + head + reply)  # a ping first: must be skipped

    def answer(self, msg):
        params = msg["params"]
        if msg["method"] == "DOM.getDocument":
            return {"root": self.tree}
        if msg["method"] == "CSS.getMatchedStylesForNode":
            props = self.nodes[params["nodeId"]].get("props", {})
            return {"matchedCSSRules": [{"rule": {"style": {"cssProperties": [
                {"name": k, "value": v} for k, v in props.items()]}}}]}
        if msg["method"] == "DOM.dispatchMouseEvent":
            self.clicks.append((params["nodeId"], params["event"]["type"], params["event"]["x"]))
            return {}
        raise AssertionError(msg)

    def close(self):
        self.listener.close()


def already_registered():
    sheet = view(2, "AuthenticatorRequestDialogView", [view(3, "Label", Text="already registered")])
    row = view(7, "DialogClientView::ButtonRowContainer", [button(8, "MdTextButton", "Close")])
    return {"nodeId": 0, "nodeName": "root", "children": [
        {"nodeId": 1, "nodeName": "Widget", "children": [sheet, row]}]}


@pytest.fixture
def chooser():
    server = FakeUiDevTools(account_chooser())
    yield server
    server.close()


def test_flags_name_the_port():
    port = free_port()
    assert chrome_flags(port) == [f"--enable-ui-devtools={port}",
                                  "--enable-features=ui-debug-tools-enable-synthetic-events"]


def test_select_account_clicks_the_named_row_once(chooser):
    chrome = Chrome(chooser.port, settle=0)
    assert chrome.select_account("alice") == "alice / USB security key"
    assert chooser.clicks == [(5, "mousePressed", 100), (5, "mouseReleased", 100)]
    assert chrome.sheet() == ["bob / USB security key", "alice / USB security key", "Cancel"]


def test_close_sheet_presses_close_and_never_cancel(chooser):
    notice = FakeUiDevTools(already_registered())
    try:
        assert Chrome(notice.port, settle=0).close_sheet() == "Close"
        assert [c[0] for c in notice.clicks] == [8, 8]
    finally:
        notice.close()
    # a ceremony in progress offers only Cancel: closing waits, and does not abort it
    with pytest.raises(NoSuchButton, match="'Cancel'"):
        Chrome(chooser.port, settle=0).close_sheet(timeout=0.5)
    assert chooser.clicks == []
    assert Chrome(chooser.port, settle=0).press("Cancel") == "Cancel"
    assert [c[0] for c in chooser.clicks] == [8, 8]  # not node 10, another widget's Cancel


def test_a_click_that_closes_the_sheet_gets_no_answer_and_is_done():
    server = FakeUiDevTools(already_registered(), silent_release={8})
    try:
        started = time.monotonic()
        assert Chrome(server.port, settle=0).close_sheet(timeout=20) == "Close"
        assert time.monotonic() - started < 10
        assert [c[:2] for c in server.clicks] == [(8, "mousePressed"), (8, "mouseReleased")]
    finally:
        server.close()


def test_an_account_that_is_not_offered_is_a_clear_error(chooser):
    with pytest.raises(NoSuchButton) as err:
        Chrome(chooser.port, settle=0).select_account("carol", timeout=0.5)
    assert "account 'carol'" in str(err.value) and "alice / USB security key" in str(err.value)
    assert "hidden" not in err.value.buttons and chooser.clicks == []


def test_no_sheet_and_no_browser_are_told_apart():
    no_dialog = FakeUiDevTools({"nodeId": 0, "nodeName": "root", "children": [
        {"nodeId": 1, "nodeName": "Widget", "children": [button(2, "MdTextButton", "Close")]}]})
    try:
        with pytest.raises(SheetNotShown, match="showed no WebAuthn sheet"):
            Chrome(no_dialog.port, settle=0).close_sheet(timeout=0.5)
        assert Chrome(no_dialog.port).sheet() is None and no_dialog.clicks == []
    finally:
        no_dialog.close()
    closing = account_chooser()
    closing["children"][1]["children"][0]["props"] = {"Visible": "true", "IsDrawn": "false"}
    closing_server = FakeUiDevTools(closing)
    try:
        with pytest.raises(SheetNotShown, match="showed no WebAuthn sheet"):
            Chrome(closing_server.port, settle=0).press("Cancel", timeout=0.5)
    finally:
        closing_server.close()
    with pytest.raises(SheetNotShown, match="enable-ui-devtools"):
        Chrome(free_port()).select_account("alice", timeout=0.5)
