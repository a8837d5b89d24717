"""Starting and stopping a ``ferrokey serve`` process::

    with ferrokey.start(transport="uhid") as server:      # waits until the key is usable
        print(server.hidraw, server.busid, server.url)     # /dev/hidraw0 1-1 http://127.0.0.1:...
        key = server.client.add_virtual_authenticator()
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from .client import Authenticator, Client
from .errors import FerrokeyError, StartError

TRANSPORTS = ("auto", "uhid", "attach", "usbip")

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CONTROL = re.compile(r"control API on (\S+?)/? \(description")
_LISTEN = re.compile(r"listening on (\S+):(\d+)\s*$")
_TRANSPORT = re.compile(r'\btransport transport="?(\w+)"?')
_READY = re.compile(r"key-(\d+) ready: busid (\S+), serial (\S+)")
_NODE = re.compile(r"key-(\d+) (?:is a uhid device|attached on vhci port \d+): (/dev/hidraw\d+)")


def find_binary(binary: Optional[str] = None) -> str:
    """The ``ferrokey`` program: ``binary``, else ``$FERROKEY_BIN``, else PATH."""
    candidate = binary or os.environ.get("FERROKEY_BIN") or shutil.which("ferrokey")
    if not candidate:
        raise StartError("no ferrokey binary: give binary=..., set FERROKEY_BIN, or put ferrokey "
                         "on PATH (cargo install --path firmware-sim)")
    if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
        raise StartError(f"ferrokey binary {candidate!r} is not an executable file")
    return candidate


class Server:
    """A running ``ferrokey serve``: ``url`` and ``client`` (the control API),
    ``transport`` (the one it chose), ``busid``/``hidraw`` of key 1, ``keys``
    (the keys it started with), ``usbip_port`` (transport usbip), ``log_path``."""

    def __init__(self, process: "subprocess.Popen[bytes]", log_path: Path, state_dir: Path,
                 owns_state: bool, owns_log: bool = False):
        self.process = process
        self.log_path = log_path
        self.state_dir = state_dir
        self._owns_state = owns_state
        self._owns_log = owns_log
        self._lines: List[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self.url = ""
        self.transport = ""
        self.usbip_port: Optional[int] = None
        self.busids: Dict[int, str] = {}
        self.hidraws: Dict[int, str] = {}
        self.client: Client = None  # type: ignore[assignment]
        self._reader = threading.Thread(target=self._read_log, name="ferrokey-log", daemon=True)
        self._reader.start()

    # -- the log
    def _read_log(self) -> None:
        assert self.process.stderr is not None
        with open(self.log_path, "a", encoding="utf-8") as out:
            for raw in self.process.stderr:
                line = _ANSI.sub("", raw.decode("utf-8", errors="replace")).rstrip("\n")
                out.write(line + "\n")
                out.flush()
                with self._cond:
                    self._parse(line)
                    self._lines.append(line)
                    del self._lines[:-500]
                    self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _parse(self, line: str) -> None:
        if m := _CONTROL.search(line):
            self.url = m.group(1)
        if m := _LISTEN.search(line):
            self.usbip_port = int(m.group(2))
        if (m := _TRANSPORT.search(line)) and not self.transport:
            self.transport = m.group(1)
        if m := _READY.search(line):
            self.busids[int(m.group(1))] = m.group(2)
        if m := _NODE.search(line):
            self.hidraws[int(m.group(1))] = m.group(2)

    def log_tail(self, n: int = 20) -> str:
        """The last lines ferrokey logged."""
        with self._cond:
            return "\n".join(self._lines[-n:])

    def _wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not ready():
                if self._eof or self.process.poll() is not None:
                    self._cond.wait(0.2)  # the last lines
                    raise StartError(f"ferrokey exited ({self.process.poll()}) before {what}:\n"
                                     f"{self.log_tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StartError(f"ferrokey: no {what} within {timeout:g} s:\n{self.log_tail()}")
                self._cond.wait(min(left, 0.5))

    # -- key 1 and the others it started with
    @property
    def busid(self) -> str:
        """Key 1's USB/IP busid."""
        return self.busids.get(1, "1-1")

    @property
    def hidraw(self) -> Optional[str]:
        """Key 1's hidraw node (transports uhid and attach), else None."""
        return self.hidraws.get(1)

    def attach(self, key: Authenticator, timeout: float = 30.0) -> str:
        """Transport usbip: attaches ``key`` to this machine's vhci-hcd with ``usbip
        attach`` (root, the vhci-hcd module and the usbip tool needed); returns its
        hidraw node. Removing the key later unplugs it (the kernel frees the port)."""
        if self.usbip_port is None:
            raise StartError(f"attach: the server has no USB/IP port (transport {self.transport})")
        cmd = ["usbip", "--tcp-port", str(self.usbip_port), "attach", "-r", "127.0.0.1", "-b", key.busid]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise StartError(f"{' '.join(cmd)}: {e}") from e
        if done.returncode != 0:
            raise StartError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()}")
        return key.wait_for_hidraw(timeout)

    @property
    def keys(self) -> List[Authenticator]:
        """The keys the server runs, through the control API."""
        return self.client.authenticators()

    # -- stopping
    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM (the keys unplug cleanly), SIGKILL after ``timeout``; removes the
        state directory and its log if ``start()`` made them. Returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(5)
        if self._owns_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        if self._owns_log:
            self.log_path.unlink(missing_ok=True)
        return int(self.process.returncode)

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ferrokey.Server pid {self.process.pid} {self.transport} {self.url}>"


def start(binary: Optional[str] = None, *, transport: str = "auto", keys: int = 1,
          state_dir: Optional[str] = None, control: str = "127.0.0.1:0",
          listen: Optional[str] = None, uv: Optional[str] = "auto",
          presence: Optional[str] = None, token_file: Optional[str] = None,
          args: Sequence[str] = (),
          timeout: float = 60.0, log_path: Optional[str] = None,
          env: Optional[Dict[str, str]] = None) -> Server:
    """Starts ``ferrokey serve`` and waits until it is usable: the control API
    answers, every key is ready, and (transports uhid and attach) each key's
    hidraw node exists. ``transport``: auto, uhid, attach or usbip (usbip listens
    on ``listen``, default a free loopback port). ``uv="auto"`` gives the keys
    built-in user verification (what browsers want); ``uv=None`` keeps
    ferrokey's default (PIN only). The state directory is a fresh temporary one
    (removed at stop) unless given. ``token_file``: ``--control-token-file``,
    whose token the handle's client then sends. Raises :class:`StartError` with the log's
    tail if it cannot."""
    if transport not in TRANSPORTS:
        raise ValueError(f"transport must be one of {TRANSPORTS}, not {transport!r}")
    program = find_binary(binary)
    owns_state = state_dir is None
    state = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="ferrokey-state-"))
    log = Path(log_path) if log_path else state.with_name(state.name + ".log")
    cmd = [program, "serve", "--transport", transport, "--keys", str(keys),
           "--state-dir", str(state), "--control", control]
    if transport == "usbip" or listen:
        cmd += ["--listen", listen or "127.0.0.1:0"]
    if uv:
        cmd += ["--uv", uv]
    if presence:
        cmd += ["--presence", presence]
    token = None
    if token_file:
        cmd += ["--control-token-file", str(token_file)]
        try:
            token = Path(token_file).read_text().strip()
        except OSError as e:
            raise StartError(f"cannot read the token file {token_file}: {e}") from e
    cmd += list(args)
    environment = dict(os.environ if env is None else env)
    # The ready lines are logged at info: keep RUST_LOG at info or more verbose.
    if not re.search(r"debug|trace", environment.get("RUST_LOG", "")):
        environment["RUST_LOG"] = "info"
    environment["NO_COLOR"] = "1"
    try:
        process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, env=environment)
    except OSError as e:
        raise StartError(f"cannot run {program}: {e}") from e
    server = Server(process, log, state, owns_state, owns_log=owns_state and not log_path)
    try:
        server._wait(lambda: bool(server.url) and len(server.busids) >= keys, timeout,
                     f"control API and {keys} ready key(s)")
        if server.transport in ("uhid", "attach"):
            server._wait(lambda: len(server.hidraws) >= keys, timeout,
                         f"hidraw node(s) of the {server.transport} key(s)")
        if control.startswith("unix:"):
            server.url = control
        server.client = Client(server.url, token=token)
        server.client.status()  # answers?
    except (FerrokeyError, OSError):
        server.stop()
        raise
    return server
