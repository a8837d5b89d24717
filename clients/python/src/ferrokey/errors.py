"""Errors: the control API's WebDriver errors as exceptions, and the client's own."""
from __future__ import annotations

from typing import Any, Dict, Optional, Type


class FerrokeyError(Exception):
    """Anything this package raises on purpose."""


class ApiError(FerrokeyError):
    """The control API refused a request: ``error`` is the WebDriver error code
    (``"invalid argument"``, ``"no such authenticator"``, ...), ``status`` the HTTP
    status, ``message`` the server's explanation."""

    #: The WebDriver error code this class stands for (None: any).
    code: Optional[str] = None

    def __init__(self, error: str, message: str, status: int, method: str = "", path: str = ""):
        self.error = error
        self.message = message
        self.status = status
        self.method = method
        self.path = path
        where = f"{method} {path}: " if method else ""
        super().__init__(f"{where}{error} (HTTP {status}): {message}")


class InvalidArgument(ApiError):
    """WebDriver ``invalid argument``: a bad option, parameter or body."""
    code = "invalid argument"


class NoSuchAuthenticator(ApiError):
    """WebDriver ``no such authenticator``."""
    code = "no such authenticator"


class NoSuchCredential(ApiError):
    """WebDriver ``no such credential``."""
    code = "no such credential"


class UnsupportedOperation(ApiError):
    """WebDriver ``unsupported operation`` (e.g. UV on a key without UV)."""
    code = "unsupported operation"


class UnknownCommand(ApiError):
    """WebDriver ``unknown command``: the server has no such path (an older ferrokey?)."""
    code = "unknown command"


class UnknownMethod(ApiError):
    """WebDriver ``unknown method``."""
    code = "unknown method"


class Unauthorized(ApiError):
    """The server wants a bearer token (``--control-token-file``)."""
    code = "unauthorized"


class Forbidden(ApiError):
    """The server refused the request's Host or Origin."""
    code = "forbidden"


class RequestTimeout(ApiError):
    """WebDriver ``timeout``: the server gave up on the request."""
    code = "timeout"


class UnknownError(ApiError):
    """WebDriver ``unknown error``: the server failed (5xx)."""
    code = "unknown error"


_BY_CODE: Dict[str, Type[ApiError]] = {
    cls.code: cls for cls in (InvalidArgument, NoSuchAuthenticator, NoSuchCredential,
                              UnsupportedOperation, UnknownCommand, UnknownMethod, Unauthorized,
                              Forbidden, RequestTimeout, UnknownError) if cls.code
}


def api_error(status: int, body: Any, method: str = "", path: str = "") -> ApiError:
    """The exception for an error answer (``{"value": {"error", "message"}}``); a
    body that is not a WebDriver error becomes ``unknown error`` with the body shown."""
    value = body.get("value") if isinstance(body, dict) else None
    if isinstance(value, dict) and isinstance(value.get("error"), str):
        code, message = value["error"], str(value.get("message", ""))
    else:
        code, message = "unknown error", f"not a WebDriver error answer: {str(body)[:300]}"
    return _BY_CODE.get(code, ApiError)(code, message, status, method, path)


class ConnectionFailed(FerrokeyError):
    """The control API could not be reached (server not running, wrong URL)."""


class StartError(FerrokeyError):
    """``ferrokey.start()`` could not start a usable key (the log tail says why)."""


class HidrawNotFound(FerrokeyError):
    """The key's hidraw node did not appear (transport usbip without an attach,
    or no uhid/vhci on this host)."""
