"""ferrokey for tests: a client for the control API of a ferrokey software FIDO2
security key (WebDriver/CDP virtual-authenticator names), ``start()`` to run one,
a pytest plugin (fixtures ``ferrokey_server`` and ``security_key``), and a helper
for Chrome's native WebAuthn sheets (:mod:`ferrokey.chrome`)."""
from .client import DEFAULT_OPTIONS, Authenticator, Client, b64url, unb64url
from .errors import (ApiError, ConnectionFailed, FerrokeyError, Forbidden, HidrawNotFound,
                     InvalidArgument, NoSuchAuthenticator, NoSuchCredential, RequestTimeout,
                     StartError, Unauthorized, UnknownCommand, UnknownError, UnknownMethod,
                     UnsupportedOperation)
from .events import EventRecorder, EventStream, EventTimeout
from .server import Server, find_binary, start
from .sse import KeyEvent

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_OPTIONS", "Authenticator", "Client", "b64url", "unb64url", "ApiError",
    "ConnectionFailed", "FerrokeyError", "Forbidden", "HidrawNotFound", "InvalidArgument",
    "NoSuchAuthenticator", "NoSuchCredential", "RequestTimeout", "StartError", "Unauthorized",
    "UnknownCommand", "UnknownError", "UnknownMethod", "UnsupportedOperation", "EventRecorder",
    "EventStream", "EventTimeout", "Server", "find_binary", "start", "KeyEvent",
]
