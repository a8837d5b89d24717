"""The key as a test instrument, from the relying party's side (browser stage).

A small client of ferrokey's control API (stdlib http.client): seed a resident
P-256 credential from a private key generated here (the public key stays here,
for the relying party to verify signatures with), set CDP's response overrides,
read the key's credentials with their counters, and follow the key's event
stream (Server-Sent Events) in a thread, so a test can wait for the
credentialAsserted event of a sign-in.

Used by rp_server.py (its /api/instrument/* endpoints) in the guest; the
control API is the host's (`ferrokey serve --control`, reached at 10.0.2.2) or
that of a ferrokey running in the guest (--transport uhid|attach).
"""
import base64
import http.client
import json
import secrets
import threading
import time
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fido2 import cbor
from fido2.cose import ES256


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class ControlError(Exception):
    """The control API answered an error (WebDriver shape)."""


class Control:
    """One authenticator of a control API at `url` (http://HOST:PORT/)."""

    def __init__(self, url: str, busid: str = None, authenticator: str = None):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.busid = busid
        self._id = authenticator
        self.events = []               # every event line, as JSON
        self.cond = threading.Condition()
        self._watching = False

    def call(self, method, path, body=None, timeout=30):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            answer = json.loads(resp.read() or b"null")
        finally:
            conn.close()
        if resp.status != 200:
            raise ControlError(f"{method} {path}: {resp.status} {answer}")
        return answer["value"]

    @property
    def authenticator(self) -> str:
        """The key's authenticator id: given, or found by its busid."""
        if self._id is None:
            for a in self.call("GET", "/webauthn/authenticators"):
                if a["busid"] == self.busid:
                    self._id = a["authenticatorId"]
                    break
            else:
                raise ControlError(f"no authenticator with busid {self.busid}")
        return self._id

    def path(self, suffix=""):
        return f"/webauthn/authenticator/{self.authenticator}{suffix}"

    # ------------------------------------------------------------ commands
    def seed_resident(self, rp_id, user_id: bytes, user_name, sign_count=0):
        """Seeds a resident P-256 credential with a key pair made here; returns
        (credential id, COSE public key bytes). Every other credential of the
        key is deleted first, so the seeded one is the only one a discoverable
        sign-in can pick."""
        self.call("DELETE", self.path("/credentials"))
        private = ec.generate_private_key(ec.SECP256R1())
        pkcs8 = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
        cred_id = b"seeded-" + secrets.token_bytes(16)
        self.call("POST", self.path("/credential"), {
            "credentialId": b64u(cred_id), "isResidentCredential": True, "rpId": rp_id,
            "privateKey": b64u(pkcs8), "userHandle": b64u(user_id), "signCount": sign_count,
            "userName": user_name, "userDisplayName": user_name,
        })
        cose = cbor.encode(dict(ES256.from_cryptography_key(private.public_key())))
        return cred_id, cose

    # ------------------------------------------------------------ more keys
    def other(self, authenticator: str) -> "Control":
        """Another authenticator of the same control API."""
        return Control(f"http://{self.host}:{self.port}/", authenticator=authenticator)

    def add_key(self, config: dict) -> "Control":
        """Add Virtual Authenticator (`config`: WebDriver's and ferrokey's options,
        e.g. `ferrokey:profile`); the new key."""
        return self.other(self.call("POST", "/webauthn/authenticator", config))

    def describe(self) -> dict:
        """`GET .../authenticator/{id}`: busid, profile, hidraw, power, ..."""
        return self.call("GET", self.path())

    def clone(self) -> "Control":
        """`POST .../clone`: an attacker's copy (same credentials and counters)."""
        return self.other(self.call("POST", self.path("/clone"))["authenticatorId"])

    def export_cxf(self) -> dict:
        """`GET .../export`: the resident credentials as a CXF document."""
        return self.call("GET", self.path("/export"))

    def import_cxf(self, document: dict) -> dict:
        """`POST .../import`: {"imported": [credential ids], "ignored": n}."""
        return self.call("POST", self.path("/import"), document)

    def power(self, on: bool):
        return self.call("POST", self.path("/power"), {"on": on})

    def remove(self):
        """Remove Virtual Authenticator: unplugged, its state deleted."""
        self.call("DELETE", self.path())

    def credentials(self) -> list:
        """Get Credentials, without the private keys."""
        return [{k: v for k, v in c.items() if k != "privateKey"}
                for c in self.call("GET", self.path("/credentials"))]

    def set_overrides(self, **bits):
        return self.call("POST", self.path("/response-override"), bits)

    def credential(self, cred_id: bytes):
        """The key's listing of one credential (Get Credentials), or None."""
        for c in self.call("GET", self.path("/credentials")):
            if c["credentialId"] == b64u(cred_id):
                return c
        return None

    # ------------------------------------------------------------ events
    def watch(self):
        """Follows the key's event stream in a daemon thread (once); returns
        when the stream is open."""
        if self._watching:
            return
        self._watching = True
        opened = threading.Event()
        path = self.path("/events")

        def follow():
            conn = http.client.HTTPConnection(self.host, self.port, timeout=3600)
            try:
                conn.request("GET", path, headers={"Accept": "text/event-stream"})
                resp = conn.getresponse()
                opened.set()
                for raw in resp:
                    line = raw.decode(errors="replace").rstrip("\r\n")
                    if line.startswith("data:"):
                        with self.cond:
                            self.events.append(json.loads(line[5:].strip()))
                            self.cond.notify_all()
            except (OSError, http.client.HTTPException, ValueError):
                pass
            finally:
                self._watching = False
                opened.set()
                conn.close()

        threading.Thread(target=follow, daemon=True, name="control-events").start()
        opened.wait(10)

    def wait_event(self, matches, timeout=15):
        """The first event line (seen so far or within `timeout`) for which
        `matches` holds, or None."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for e in self.events:
                    if matches(e):
                        return e
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
