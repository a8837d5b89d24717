"""A Server-Sent Events reader for ferrokey's event streams (``GET /events``).

Each SSE event carries one JSON line ``{"time", "authenticatorId", "event",
"data"}`` (see the README's "Events"); :class:`KeyEvent` is one of them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Optional


@dataclass(frozen=True)
class KeyEvent:
    """One event of a key: ``event`` is its name (``ctap``, ``credentialAsserted``,
    ``plugged``, ``powerOff``, ``lagged`` ...), ``data`` its payload."""

    event: str
    authenticator_id: Optional[str]
    time: str
    data: Dict[str, Any] = field(default_factory=dict)
    #: The whole JSON line as the server sent it.
    raw: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, name: str, text: str) -> "KeyEvent":
        """From an SSE event's name and data; data that is not a JSON object is
        kept as ``{"text": ...}``."""
        try:
            line = json.loads(text)
        except ValueError:
            line = None
        if not isinstance(line, dict):
            return cls(name, None, "", {"text": text}, {"event": name, "data": text})
        data = line.get("data")
        return cls(str(line.get("event") or name), line.get("authenticatorId"),
                   str(line.get("time", "")), data if isinstance(data, dict) else {"value": data},
                   line)

    def line(self) -> str:
        """The event as one JSON line (what ``ferrokey events`` prints)."""
        return json.dumps(self.raw, sort_keys=True)


class SseParser:
    """Incremental SSE parsing (the WHATWG rules ferrokey's server needs: ``event``,
    ``data`` over several lines, comments, CR/LF/CRLF line ends)."""

    def __init__(self) -> None:
        self._name = ""
        self._data: List[str] = []
        self._rest = ""

    def feed(self, text: str) -> List[KeyEvent]:
        """Parse more text; returns the events it completed."""
        out: List[KeyEvent] = []
        buf = self._rest + text
        lines = buf.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self._rest = lines.pop()
        for line in lines:
            event = self.line(line)
            if event is not None:
                out.append(event)
        return out

    def line(self, line: str) -> Optional[KeyEvent]:
        """Parse one line (without its end); returns an event at a blank line."""
        if line == "":
            if not self._data:
                self._name = ""
                return None
            event = KeyEvent.from_json(self._name or "message", "\n".join(self._data))
            self._name, self._data = "", []
            return event
        if line.startswith(":"):
            return None  # a comment (the server's keep-alive)
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._name = value
        elif name == "data":
            self._data.append(value)
        return None  # id and retry mean nothing here


def parse_lines(lines: Iterable[bytes]) -> Iterator[KeyEvent]:
    """Events from an iterable of raw lines (with or without line ends)."""
    parser = SseParser()
    for raw in lines:
        event = parser.line(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        if event is not None:
            yield event
