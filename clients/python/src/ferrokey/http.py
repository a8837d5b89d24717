"""HTTP to the control API (stdlib ``http.client``): TCP (``http://127.0.0.1:PORT``)
or a Unix socket (``unix:/path/to/socket``), JSON in and out, an optional bearer
token, and streamed responses for Server-Sent Events."""
from __future__ import annotations

import http.client
import json
import socket
from typing import Any, Dict, Optional, Tuple
from urllib.parse import quote, urlsplit

from .errors import ConnectionFailed, api_error


class _UnixConnection(http.client.HTTPConnection):
    """An HTTP connection over a Unix socket (``ferrokey serve --control unix:PATH``)."""

    def __init__(self, path: str, timeout: Optional[float]):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def segment(text: str) -> str:
    """``text`` as one path segment (ids are base64url, but never trust them)."""
    return quote(str(text), safe="")


class Http:
    """Requests to one control API base URL."""

    def __init__(self, url: str, token: Optional[str] = None, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        if self.url.startswith("unix:"):
            self._unix: Optional[str] = self.url[len("unix:"):]
            self._host, self._port, self._prefix = "localhost", 0, ""
        else:
            parts = urlsplit(self.url)
            if parts.scheme != "http" or not parts.hostname:
                raise ValueError(f"control API URL must be http://HOST:PORT or unix:PATH, not {url!r}")
            self._unix = None
            self._host, self._port = parts.hostname, parts.port or 80
            self._prefix = parts.path.rstrip("/")

    def _connection(self, timeout: Optional[float]) -> http.client.HTTPConnection:
        if self._unix is not None:
            return _UnixConnection(self._unix, timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _headers(self, body: Optional[bytes]) -> Dict[str, str]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def open(self, method: str, path: str, payload: Any = None,
             timeout: Optional[float] = None) -> Tuple[http.client.HTTPConnection,
                                                       http.client.HTTPResponse]:
        """Sends a request; returns the connection and the response, unread."""
        body = None if payload is None else json.dumps(payload).encode()
        conn = self._connection(self.timeout if timeout is None else timeout)
        try:
            conn.request(method, self._prefix + path, body=body, headers=self._headers(body))
            return conn, conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise ConnectionFailed(f"{method} {self.url}{path}: {e}") from e

    def call(self, method: str, path: str, payload: Any = None) -> Any:
        """One JSON request; returns the answer's ``value``; raises the matching
        :class:`~ferrokey.errors.ApiError` on a WebDriver error."""
        conn, response = self.open(method, path, payload)
        try:
            raw = response.read()
        except (OSError, http.client.HTTPException) as e:
            raise ConnectionFailed(f"{method} {self.url}{path}: {e}") from e
        finally:
            conn.close()
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            answer = raw.decode(errors="replace")
        if response.status >= 400:
            raise api_error(response.status, answer, method, path)
        if not isinstance(answer, dict) or "value" not in answer:
            raise api_error(response.status, answer, method, path)
        return answer["value"]
