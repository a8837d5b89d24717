"""Live events of the keys: an iterator over the SSE stream, and a recorder that
keeps a key's transcript in the background (what the pytest plugin attaches to
a failed test's report)."""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from typing import Callable, Iterator, List, Optional, Union

from .errors import ApiError, ConnectionFailed, FerrokeyError, api_error
from .http import Http
from .sse import KeyEvent, SseParser

Match = Union[str, Callable[[KeyEvent], bool]]


class EventTimeout(FerrokeyError):
    """No matching event came in time."""


class EventStream:
    """The events of ``GET path`` as they happen; iterate it, or wait for one with
    :meth:`wait_for`. Subscribed as soon as it is made: nothing that happens after
    the constructor returns is missed. Close it (or use ``with``) to end it; it is
    safe to close from another thread."""

    def __init__(self, http: Http, path: str):
        self._conn, self._response = http.open("GET", path, timeout=None)
        if self._response.status >= 400:
            body = self._response.read()
            self._conn.close()
            try:
                answer = json.loads(body)
            except ValueError:
                answer = body.decode(errors="replace")
            raise api_error(self._response.status, answer, "GET", path)
        self._parser = SseParser()
        self._pending: List[KeyEvent] = []
        self._closed = False
        self._reading = False
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[KeyEvent]:
        while True:
            event = self.next_event()
            if event is None:
                return
            yield event

    def next_event(self, timeout: Optional[float] = None) -> Optional[KeyEvent]:
        """The next event; None when the stream ended (closed, server stopped).
        With a timeout, raises :class:`EventTimeout` if none came in time, and
        the stream is closed (a read cut short cannot be resumed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._pending:
            if self._closed:
                return None
            sock = self._conn.sock
            if sock is not None:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                sock.settimeout(left)
            with self._lock:
                if self._closed:
                    return None
                self._reading = True
            try:
                line = self._response.readline()
            except socket.timeout:
                # A read cut by a timeout leaves http.client mid-chunk: the
                # stream ends here (open a new one to go on listening).
                self.close()
                raise EventTimeout(f"no event within {timeout} s; the stream is closed") from None
            except (OSError, ValueError, AttributeError, http.client.HTTPException):
                line = b""  # closed under us (AttributeError: http.client's fp gone)
            finally:
                with self._lock:
                    self._reading = False
                    closing = self._closed
            if not line or closing:  # the stream ended, or close() was called meanwhile
                self.close()
                self._conn.close()
                return None
            event = self._parser.line(line.decode("utf-8", errors="replace").rstrip("\r\n"))
            if event is not None:
                self._pending.append(event)
        return self._pending.pop(0)

    def wait_for(self, match: Match, timeout: float = 30.0) -> KeyEvent:
        """The first event named ``match`` (or for which ``match(event)`` is true);
        raises :class:`EventTimeout` with the names seen if none came in time
        (the stream is then closed)."""
        deadline = time.monotonic() + timeout
        seen: List[str] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                event = self.next_event(timeout=left)
            except EventTimeout:
                break
            if event is None:
                raise EventTimeout(f"the event stream ended before {_describe(match)}; saw {seen}")
            if (event.event == match) if isinstance(match, str) else match(event):
                return event
            seen.append(event.event)
        raise EventTimeout(f"no {_describe(match)} within {timeout} s; saw {seen}")

    def close(self) -> None:
        """Ends the stream (unblocks a reader in another thread, which then
        closes the connection itself)."""
        with self._lock:
            already, self._closed = self._closed, True
            reading = self._reading
        if already:
            return
        sock = self._conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if not reading:
            self._conn.close()

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describe(match: Match) -> str:
    return repr(match) if isinstance(match, str) else getattr(match, "__name__", "matching event")


class EventRecorder:
    """Records every event of a stream in a background thread: ``events`` (a
    copy), ``transcript()`` (one JSON line each, as ``ferrokey events`` prints).
    :meth:`stop` ends it."""

    def __init__(self, stream: EventStream, limit: int = 10000):
        self._stream = stream
        self._events: List[KeyEvent] = []
        self._limit = limit
        self._dropped = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="ferrokey-events", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self._stream:
                with self._lock:
                    if len(self._events) >= self._limit:
                        self._events.pop(0)
                        self._dropped += 1
                    self._events.append(event)
        except (FerrokeyError, OSError):
            pass

    @property
    def events(self) -> List[KeyEvent]:
        """The events so far."""
        with self._lock:
            return list(self._events)

    def transcript(self) -> str:
        """The events so far, one JSON line each (the oldest dropped beyond the limit)."""
        with self._lock:
            lines = [e.line() for e in self._events]
            dropped = self._dropped
        head = [f"({dropped} earlier events dropped)"] if dropped else []
        return "\n".join(head + lines)

    def stop(self, settle: float = 0.0) -> None:
        """Stops recording, after ``settle`` seconds for events still on their way."""
        if settle:
            time.sleep(settle)
        self._stream.close()
        self._thread.join(5)


__all__ = ["EventStream", "EventRecorder", "EventTimeout", "KeyEvent", "ApiError",
           "ConnectionFailed"]
