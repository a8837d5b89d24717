"""pytest plugin (entry point ``pytest11``): a ferrokey server per session and a
fresh security key per test.

Fixtures:
  ``ferrokey_server``  (session) a :class:`ferrokey.Server` started with
                       ``--ferrokey-transport`` (default auto), or the server at
                       ``--ferrokey-url`` (then not started nor stopped here).
                       With uhid or attach, the key it starts with is unplugged
                       so that a browser sees only the tests' own keys.
  ``security_key``     (function) a new key (Add Virtual Authenticator), removed
                       (unplugged, state deleted) after the test; its events are
                       recorded, and a failed test's report gets them as the
                       section "ferrokey events". With a uhid or attach server it
                       waits for the key's hidraw node. Options from the marker
                       ``@pytest.mark.security_key(profile=..., **options)``
                       (WebDriver/CDP names, snake_case or camelCase; ``vendor``
                       for ferrokey's own). ``security_key.chrome`` answers
                       Chrome's sheets (see ``ferrokey_chrome``).
  ``ferrokey_chrome``  (session) a :class:`ferrokey.chrome.Chrome` on a free port:
                       start Chrome with ``ferrokey_chrome.flags``.

Options: ``--ferrokey-bin``, ``--ferrokey-transport``, ``--ferrokey-url``,
``--ferrokey-attach`` (usbip: ``usbip attach`` each test's key here),
``--ferrokey-arg`` (more ``ferrokey serve`` arguments); ini ``ferrokey_bin``,
``ferrokey_transport``.
"""
from __future__ import annotations

from typing import Any, Dict, Generator, Iterator, Optional

import pytest

from .chrome import Chrome, free_port
from .client import Authenticator, Client
from .events import EventRecorder
from .server import TRANSPORTS, Server, start

_RECORDER = pytest.StashKey[EventRecorder]()
_KEY = pytest.StashKey[Authenticator]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ferrokey", "ferrokey security keys")
    group.addoption("--ferrokey-bin", default=None,
                    help="the ferrokey program (default: ini ferrokey_bin, $FERROKEY_BIN, PATH)")
    group.addoption("--ferrokey-transport", default=None, choices=TRANSPORTS,
                    help="how the keys reach this machine (default: ini ferrokey_transport, auto)")
    group.addoption("--ferrokey-url", default=None,
                    help="use the running control API at this URL instead of starting ferrokey")
    group.addoption("--ferrokey-attach", action="store_true", default=False,
                    help="transport usbip: attach each test's key here with `usbip attach` "
                         "(root, vhci-hcd)")
    group.addoption("--ferrokey-arg", action="append", default=[],
                    help="one more `ferrokey serve` argument (repeatable)")
    parser.addini("ferrokey_bin", "the ferrokey program", default="")
    parser.addini("ferrokey_transport", "auto, uhid, attach or usbip", default="auto")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "security_key(profile=None, vendor=None, **options): options of the test's "
        "security_key (WebDriver/CDP Add Virtual Authenticator options)")


class _Session:
    """What ``ferrokey_server`` yields when it uses a running server (--ferrokey-url)."""

    def __init__(self, url: str):
        self.url = url
        self.client = Client(url)
        self.transport = ""

    def stop(self) -> None:
        pass


@pytest.fixture(scope="session")
def ferrokey_server(pytestconfig: pytest.Config) -> Iterator[Any]:
    """The session's ferrokey server (started here unless --ferrokey-url)."""
    url = pytestconfig.getoption("ferrokey_url")
    if url:
        session = _Session(url)
        session.client.status()
        yield session
        return
    binary = pytestconfig.getoption("ferrokey_bin") or pytestconfig.getini("ferrokey_bin") or None
    attach = bool(pytestconfig.getoption("ferrokey_attach"))
    transport = (pytestconfig.getoption("ferrokey_transport")
                 or pytestconfig.getini("ferrokey_transport") or ("usbip" if attach else "auto"))
    server: Server = start(binary, transport=transport,
                           args=pytestconfig.getoption("ferrokey_arg"))
    try:
        if server.transport in ("uhid", "attach") or attach:
            # Only the tests' own keys may be seen by a browser: unplug the ones
            # the server started with (a browser would otherwise use any of them).
            for key in server.keys:
                key.power(False)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ferrokey_chrome() -> Chrome:
    """Chrome's WebAuthn sheets: launch Chrome with ``ferrokey_chrome.flags``."""
    return Chrome(free_port())


def _marker_options(node: pytest.Item) -> Dict[str, Any]:
    options: Dict[str, Any] = {}
    vendor: Dict[str, Any] = {}
    for mark in reversed(list(node.iter_markers("security_key"))):  # closest wins
        if mark.args:
            raise pytest.UsageError("@pytest.mark.security_key takes keyword arguments only")
        kwargs = dict(mark.kwargs)
        vendor.update(kwargs.pop("vendor", None) or {})
        profile = kwargs.pop("profile", None)
        if profile is not None:
            vendor["profile"] = profile
        options.update(kwargs)
    if vendor:
        options["vendor"] = vendor
    return options


@pytest.fixture
def security_key(request: pytest.FixtureRequest, ferrokey_server: Any,
                 ferrokey_chrome: Chrome) -> Iterator[Authenticator]:
    """A fresh key for this test, removed after it (options from the marker)."""
    options = _marker_options(request.node)
    key = ferrokey_server.client.add_virtual_authenticator(**options)
    recorder: Optional[EventRecorder] = None
    try:
        recorder = key.record_events()
        request.node.stash[_RECORDER] = recorder
        request.node.stash[_KEY] = key
        key.chrome = ferrokey_chrome
        if getattr(ferrokey_server, "transport", "") in ("uhid", "attach"):
            key.wait_for_hidraw()
        elif request.config.getoption("ferrokey_attach") and isinstance(ferrokey_server, Server):
            ferrokey_server.attach(key)
        key.info()
        yield key
    finally:
        if recorder is not None:
            recorder.stop(settle=0.2)
        key.remove()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: "pytest.CallInfo[None]") -> Generator[None, pytest.TestReport,
                                                                          pytest.TestReport]:
    report = yield
    if not report.failed:
        return report
    recorder = item.stash.get(_RECORDER, None)
    key = item.stash.get(_KEY, None)
    if recorder is None or key is None:
        return report
    transcript = recorder.transcript() or "(no events)"
    report.sections.append((f"ferrokey events (authenticator {key.authenticator_id})", transcript))
    return report
