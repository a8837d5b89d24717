"""A client for ferrokey's control API, with the names of the WebDriver
virtual-authenticator commands (WebAuthn Level 3, section 11) and of Chrome
DevTools' ``WebAuthn`` domain, in snake_case::

    client = Client("http://127.0.0.1:8765")
    key = client.add_virtual_authenticator(has_resident_key=True,
                                           has_user_verification=True, is_user_verified=True)
    key.add_credential(credential_id=b"id", is_resident_credential=True, rp_id="localhost",
                       private_key=pkcs8_der, user_handle=b"alice")
    key.get_credentials()[0]["signCount"]
    key.remove()

Binary parameters take ``bytes`` (sent base64url) or base64url text. Errors are
:class:`~ferrokey.errors.ApiError` subclasses carrying the WebDriver error code.
"""
from __future__ import annotations

import base64
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from .events import EventRecorder, EventStream
from .hidraw import find as find_hidraw
from .hidraw import wait_for as wait_for_hidraw
from .http import Http, segment

Binary = Union[bytes, bytearray, memoryview, str]
Json = Dict[str, Any]

#: Options of a fresh key unless told otherwise: a CTAP 2.1 USB key with
#: discoverable credentials and built-in user verification that always matches,
#: which is what browsers need for passkeys without a PIN dialog.
DEFAULT_OPTIONS: Json = {
    "protocol": "ctap2_1",
    "transport": "usb",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
}

_CAMEL = re.compile(r"_([a-z0-9])")


def camel(name: str) -> str:
    """``has_resident_key`` -> ``hasResidentKey``; names with ``:`` or capitals stay."""
    if ":" in name or any(c.isupper() for c in name):
        return name
    return _CAMEL.sub(lambda m: m.group(1).upper(), name)


def b64url(data: Binary) -> str:
    """bytes -> unpadded base64url; text is taken to be base64url already."""
    if isinstance(data, str):
        return data
    return base64.urlsafe_b64encode(bytes(data)).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    """Unpadded base64url (or base64) -> bytes."""
    text = text.replace("+", "-").replace("/", "_")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def authenticator_options(options: Optional[Mapping[str, Any]] = None,
                          vendor: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> Json:
    """The Add Virtual Authenticator body: :data:`DEFAULT_OPTIONS`, then ``options``
    (WebDriver/CDP names as they are), then keyword arguments (snake_case becomes
    camelCase), then ``vendor`` (ferrokey's own options, ``ferrokey:`` added)."""
    body: Json = dict(DEFAULT_OPTIONS)
    body.update(options or {})
    body.update({camel(k): v for k, v in kwargs.items()})
    body.update({(k if k.startswith("ferrokey:") else f"ferrokey:{camel(k)}"): v
                 for k, v in (vendor or {}).items()})
    return body


_BINARY_FIELDS = ("credentialId", "privateKey", "userHandle", "largeBlob")


def credential_parameters(params: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> Json:
    """WebDriver's Credential Parameters from a dict and/or keyword arguments;
    bytes fields become base64url."""
    body: Json = dict(params or {})
    body.update({camel(k): v for k, v in kwargs.items() if v is not None})
    for name in _BINARY_FIELDS:
        if name in body and not isinstance(body[name], str):
            body[name] = b64url(body[name])
    return body


class Authenticator:
    """One key of the server (``authenticator_id`` as the API names it)."""

    def __init__(self, client: "Client", authenticator_id: str):
        self.client = client
        self.authenticator_id = str(authenticator_id)
        self._info: Optional[Json] = None
        self.chrome: Any = None  # set by the pytest plugin: a ferrokey.chrome.Chrome

    # -- what the key is
    @property
    def path(self) -> str:
        """The key's API path, ``/webauthn/authenticator/{id}``."""
        return f"/webauthn/authenticator/{segment(self.authenticator_id)}"

    def info(self) -> Json:
        """``GET .../authenticator/{id}``: busid, serial, AAGUID, options, power, status."""
        self._info = self.client.http.call("GET", self.path)
        return self._info

    def _cached(self) -> Json:
        return self._info if self._info is not None else self.info()

    @property
    def busid(self) -> str:
        """The USB/IP busid (``usbip attach -b BUSID``)."""
        return str(self._cached()["busid"])

    @property
    def serial(self) -> str:
        """The USB serial number (the hidraw node's ``HID_UNIQ``)."""
        return str(self._cached()["serial"])

    @property
    def aaguid(self) -> str:
        """The AAGUID (UUID text)."""
        return str(self._cached()["aaguid"])

    def _usb_ids(self) -> Tuple[int, int]:
        options = self._cached().get("options") or {}
        return int(options.get("vendorId", 0x1209)), int(options.get("productId", 0x000A))

    def hidraw(self) -> Optional[str]:
        """The key's ``/dev/hidrawN`` on this machine now, or None (a usbip key
        before ``usbip attach``)."""
        vendor, product = self._usb_ids()
        return find_hidraw(vendor, product, self.serial)

    def wait_for_hidraw(self, timeout: float = 20.0) -> str:
        """Waits until this machine's kernel shows the key; returns its hidraw node."""
        vendor, product = self._usb_ids()
        return wait_for_hidraw(vendor, product, self.serial, timeout)

    def remove(self) -> None:
        """Remove Virtual Authenticator: the host sees an unplug; its state is deleted."""
        self.client.remove_virtual_authenticator(self.authenticator_id)

    # -- WebDriver: credentials
    def add_credential(self, params: Optional[Mapping[str, Any]] = None, *,
                       credential_id: Optional[Binary] = None,
                       is_resident_credential: Optional[bool] = None,
                       rp_id: Optional[str] = None, private_key: Optional[Binary] = None,
                       user_handle: Optional[Binary] = None, sign_count: Optional[int] = None,
                       large_blob: Optional[Binary] = None,
                       backup_eligibility: Optional[bool] = None,
                       backup_state: Optional[bool] = None, user_name: Optional[str] = None,
                       user_display_name: Optional[str] = None) -> None:
        """Add Credential: the key then uses it for real (``private_key``: PKCS#8
        DER, P-256 or Ed25519). ``params`` may be a whole WebDriver Credential
        Parameters dict (or a :class:`ferrokey.credentials.Generated`'s ``params``)."""
        body = credential_parameters(
            params, credential_id=credential_id, is_resident_credential=is_resident_credential,
            rp_id=rp_id, private_key=private_key, user_handle=user_handle, sign_count=sign_count,
            large_blob=large_blob, backup_eligibility=backup_eligibility,
            backup_state=backup_state, user_name=user_name, user_display_name=user_display_name)
        self.client.http.call("POST", f"{self.path}/credential", body)

    def get_credentials(self) -> List[Json]:
        """Get Credentials: every credential the key holds, with its current
        ``signCount`` (and ``privateKey`` unless the key is not exportable)."""
        return list(self.client.http.call("GET", f"{self.path}/credentials"))

    def get_credential(self, credential_id: Binary) -> Json:
        """The credential with this id, from Get Credentials (KeyError if none)."""
        wanted = b64url(credential_id)
        for cred in self.get_credentials():
            if cred.get("credentialId") == wanted:
                return cred
        raise KeyError(f"the key holds no credential {wanted}")

    def remove_credential(self, credential_id: Binary) -> None:
        """Remove Credential."""
        self.client.http.call("DELETE", f"{self.path}/credentials/{segment(b64url(credential_id))}")

    def remove_all_credentials(self) -> None:
        """Remove All Credentials."""
        self.client.http.call("DELETE", f"{self.path}/credentials")

    def set_credential_properties(self, credential_id: Binary, *,
                                  backup_eligibility: Optional[bool] = None,
                                  backup_state: Optional[bool] = None,
                                  sign_count: Optional[int] = None) -> None:
        """Set Credential Properties (and CDP's ``signCount``)."""
        body = {k: v for k, v in (("backupEligibility", backup_eligibility),
                                  ("backupState", backup_state),
                                  ("signCount", sign_count)) if v is not None}
        self.client.http.call(
            "POST", f"{self.path}/credentials/{segment(b64url(credential_id))}/props", body)

    # -- WebDriver / CDP: user verification and presence
    def set_user_verified(self, is_user_verified: bool) -> None:
        """Set User Verified: the next verifications match (True) or fail (False)."""
        self.client.http.call("POST", f"{self.path}/uv", {"isUserVerified": bool(is_user_verified)})

    def set_automatic_presence_simulation(self, enabled: bool) -> None:
        """CDP setAutomaticPresenceSimulation: False makes presence wait for
        :meth:`touch` (the button)."""
        self.client.http.call("POST", f"{self.path}/presence",
                              {"automaticPresenceSimulation": bool(enabled)})

    def presence(self, mode: str) -> None:
        """Presence mode: ``"approve"``, ``"deny"``, ``"touch"`` (wait for the
        button) or ``"default"`` (the key's own)."""
        self.client.http.call("POST", f"{self.path}/presence", {"mode": mode})

    def set_response_override_bits(self, *, is_bogus_signature: Optional[bool] = None,
                                   is_bad_uv: Optional[bool] = None,
                                   is_bad_up: Optional[bool] = None) -> Json:
        """CDP setResponseOverrideBits; returns the overrides now in force."""
        body = {k: v for k, v in (("isBogusSignature", is_bogus_signature), ("isBadUV", is_bad_uv),
                                  ("isBadUP", is_bad_up)) if v is not None}
        return dict(self.client.http.call("POST", f"{self.path}/response-override", body))

    # -- what a real key adds
    def power(self, on: bool) -> Json:
        """Plug (True) or unplug (False): an unplug is a power cycle for the key."""
        return dict(self.client.http.call("POST", f"{self.path}/power", {"on": bool(on)}))

    def touch(self, on: bool = True) -> Json:
        """Hold (True) or release (False) the button."""
        return dict(self.client.http.call("POST", f"{self.path}/touch", {"on": bool(on)}))

    # -- PIN/UV state (what a real key adds; CTAP clients see exactly this state)
    def pin_state(self) -> Json:
        """The PIN/UV state: ``isSet``, ``state`` (``unset``, ``set``,
        ``blocked``, ``forcePinChange``, ``uvBlocked``), ``retries``,
        ``uvRetries`` (None without built-in UV), ``forcePinChange``,
        ``powerCycleRequired``, ``minPinLength``, ``builtinUv``."""
        return dict(self.client.http.call("GET", f"{self.path}/pin"))

    def set_pin(self, pin: str) -> Json:
        """Sets or replaces the PIN (full retries, forcePinChange off); returns
        the new state. The PIN is never answered back or logged."""
        if not isinstance(pin, str):
            raise TypeError("pin must be a str (use clear_pin() to remove it)")
        return dict(self.client.http.call("POST", f"{self.path}/pin", {"pin": pin}))

    def clear_pin(self) -> Json:
        """Removes the PIN; returns the new state."""
        return dict(self.client.http.call("POST", f"{self.path}/pin", {"pin": None}))

    def set_pin_retries(self, retries: Optional[int] = None, *,
                        uv_retries: Optional[int] = None) -> Json:
        """Sets pinRetries and/or uvRetries (0 to 8; 0 blocks); returns the new state."""
        body = {k: v for k, v in (("retries", retries), ("uvRetries", uv_retries)) if v is not None}
        if not body:
            raise ValueError("give retries and/or uv_retries")
        return dict(self.client.http.call("POST", f"{self.path}/pin/retries", body))

    def set_pin_state(self, state: str, pin: Optional[str] = None) -> Json:
        """Puts the key in ``state`` (``unset``, ``set``, ``blocked``,
        ``forcePinChange``, ``uvBlocked``), setting ``pin`` first when given;
        returns the new state."""
        body: Json = {"state": state}
        if pin is not None:
            body["pin"] = pin
        return dict(self.client.http.call("POST", f"{self.path}/pin/state", body))

    # -- events
    def events(self) -> EventStream:
        """This key's live events (an iterator; ``wait_for(name)``; close it when done)."""
        return EventStream(self.client.http, f"{self.path}/events")

    def record_events(self) -> EventRecorder:
        """Records this key's events in the background (``transcript()``, ``stop()``)."""
        return EventRecorder(self.events())

    def __repr__(self) -> str:
        return f"<ferrokey.Authenticator {self.authenticator_id} of {self.client.url}>"


class Client:
    """The control API at ``url`` (``http://HOST:PORT`` or ``unix:/path``);
    ``token``: the bearer token of ``--control-token-file``."""

    def __init__(self, url: str, token: Optional[str] = None, timeout: float = 60.0):
        self.http = Http(url, token, timeout)
        self.url = self.http.url

    def add_virtual_authenticator(self, options: Optional[Mapping[str, Any]] = None, *,
                                  vendor: Optional[Mapping[str, Any]] = None,
                                  **kwargs: Any) -> Authenticator:
        """Add Virtual Authenticator: a new USB key (a new busid; a new uhid device
        with ``--transport uhid``). Options as :func:`authenticator_options`."""
        body = authenticator_options(options, vendor, **kwargs)
        return Authenticator(self, self.http.call("POST", "/webauthn/authenticator", body))

    def remove_virtual_authenticator(self, authenticator_id: str) -> None:
        """Remove Virtual Authenticator."""
        self.http.call("DELETE", f"/webauthn/authenticator/{segment(authenticator_id)}")

    def authenticators(self) -> List[Authenticator]:
        """Every key the server runs (the ``--keys N`` ones too)."""
        out = []
        for info in self.http.call("GET", "/webauthn/authenticators"):
            key = Authenticator(self, info["authenticatorId"])
            key._info = info
            out.append(key)
        return out

    def authenticator(self, authenticator_id: str) -> Authenticator:
        """The key with this id (checked: NoSuchAuthenticator if there is none)."""
        key = Authenticator(self, authenticator_id)
        key.info()
        return key

    def status(self) -> Json:
        """``GET /``: the server's version and every key's status."""
        return dict(self.http.call("GET", "/"))

    def events(self) -> EventStream:
        """Every key's live events."""
        return EventStream(self.http, "/events")

    def openapi(self) -> Json:
        """The server's OpenAPI document."""
        conn, response = self.http.open("GET", "/openapi.json")
        try:
            import json
            return dict(json.loads(response.read()))
        finally:
            conn.close()

    def __repr__(self) -> str:
        return f"<ferrokey.Client {self.url}>"
