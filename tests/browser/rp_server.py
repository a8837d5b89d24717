#!/usr/bin/env python3
"""A small WebAuthn relying party for the browser tests (py_webauthn 3.0.1, stdlib http.server).

Serves the self-driving test page (page/index.html + page/app.js) on
http://localhost:PORT (a secure context; RP ID `localhost`) and the JSON API
the page calls.  Every ceremony is verified here, server-side, with py_webauthn;
packed attestation must chain to ferrokey's root (`ferrokey ca`), given to
py_webauthn as pem_root_certs_bytes_by_fmt, and every registration also passes
python-fido2's own attestation verifiers (PackedAttestation / NoneAttestation,
verify_x509_chain up to that root: tests/e2e/attestation_checks.py), the strict
ones a relying party may use.

  .venv/bin/python tests/browser/rp_server.py --port 8765 --root-pem ca.pem [--results r.jsonl]

API (POST, JSON in and out; `browser` names the run, each has its own state):
  /api/register/options {browser, user, residentKey, attestation, exclude: [credId]}
      -> {token, publicKey}   (WebAuthn JSON: base64url byte fields)
  /api/register/verify  {browser, token, credential}   credential: the
      PublicKeyCredential as WebAuthn JSON (what toJSON() gives)
      -> {ok, id, fmt, aaguid, signCount, deviceType, backedUp, chainVerified, ...}
  /api/login/options    {browser, allow: [credId]}  ([] = discoverable) -> {token, publicKey}
  /api/login/verify     {browser, token, credential}
      -> {ok, id, signCount, prevSignCount, counterHistory, userHandleMatches, deviceType, backedUp}
      (a refusal also says the authenticator data's flags: {ok: false, error, up, uv})
  /api/instrument/seed  {browser, signCount}  seed a resident P-256 credential on the
      browser's key through ferrokey's control API, with a key pair made here -> {ok, id}
  /api/instrument/override {browser, isBogusSignature, isBadUV, isBadUP}  CDP's overrides
  /api/instrument/check {browser, id, signCount}  the credentialAsserted event came, and
      Get Credentials lists the credential with that counter
  /api/keys/add         {browser, name, profile, options, plug}  a new key (Add Virtual Authenticator
      with `ferrokey:profile`), plugged instead of the browser's current one unless plug is false
      -> {ok, authenticatorId, busid, profile, aaguid, plugSeconds}
  /api/keys/clone       {browser, of, name}   POST .../clone of key `of` (the `cloned` event came)
  /api/keys/use         {browser, name}       plug key `name` ("own": the browser's own key)
  /api/keys/credentials {browser, name}       Get Credentials of the key (no private keys)
  /api/keys/commands    {browser, name}       the CTAP commands it answered -> {commands: [{command, status}]}
  /api/keys/migrate     {browser, from, to}   CXF export of `from` imported into `to`
      -> {ok, exported: [credId], imported: [credId], ignored}
  /api/keys/release     {browser}   the own key plugged again, the added keys removed
  /api/result           {browser, scenario, ok, detail, timings}   a scenario's verdict
  /api/log              {browser, msg}                             progress lines
  /api/done             {browser, userAgent}                       the page finished
GET /api/state?browser=B  the RP's records for B (credentials, counters, results).
GET /api/ui?browser=B     what the browser itself logged about its WebAuthn UI and
                          CTAP errors (fed by guest_browsers.py from Chromium's FIDO
                          log): the page aborts a ceremony that is stuck on a sheet
                          only a user could answer, and names that sheet.

Verification failures are answered {ok: false, error}; the page fails the
scenario.  Every verdict, log line and event also goes to --results (JSONL) and
to the `events` list that an embedding program (guest_browsers.py) watches.
"""
import argparse
import base64
import datetime
import hashlib
import json
import secrets
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from webauthn import (generate_authentication_options, generate_registration_options, options_to_json,
                      verify_authentication_response, verify_registration_response)
from webauthn.helpers.exceptions import InvalidCertificateChain, InvalidRegistrationResponse
from webauthn.helpers.structs import (AttestationConveyancePreference, AttestationFormat,
                                      AuthenticatorSelectionCriteria,
                                      PublicKeyCredentialDescriptor, ResidentKeyRequirement,
                                      UserVerificationRequirement)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))  # attestation_checks
from attestation_checks import pem_to_der, verify_registration_any  # noqa: E402

PAGE_DIR = Path(__file__).resolve().parent / "page"
RP_ID = "localhost"
RP_NAME = "ferrokey browser test"
CEREMONY_TIMEOUT_MS = 20000  # browsers clamp below 10 s; a blocked UI fails within this


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def enum_str(value) -> str:
    """py_webauthn's result fields are enums or plain strings, depending on the field."""
    return getattr(value, "value", value)


def bogus_root_pem() -> bytes:
    """A self-signed CA that never signed anything: the negative control for the chain check."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not the ferrokey root")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


class RelyingParty:
    """The RP's state: pending challenges, registered credentials, results."""

    def __init__(self, root_pem: bytes, results_path=None):
        self.root_pem = root_pem
        self.root_der = pem_to_der(root_pem)
        self.bogus_pem = bogus_root_pem()
        self.results_path = Path(results_path) if results_path else None
        self.lock = threading.Lock()
        self.pending = {}       # token -> (browser, kind, challenge, extra)
        self.creds = {}         # browser -> {cred_id_b64u: record}
        self.results = {}       # browser -> [result]
        self.events = []        # (monotonic time, browser, kind, data): for an embedding program
        self.ui = {}            # browser -> [{"kind": "ui-step"|"ctap-error", "value": ...}]
        self.cond = threading.Condition(self.lock)
        self.instruments = {}   # browser -> instrument.Control of the browser's key
        self.keys = {}          # browser -> {name: instrument.Control}: keys added for it
        # plug(browser, control): make `control`'s key the only one the browser
        # sees (None: the browser's own key again). Set by guest_browsers.py.
        self.plug = None

    # ------------------------------------------------------------ bookkeeping
    def event(self, browser, kind, data=None):
        with self.cond:
            self.events.append((time.monotonic(), browser, kind, data or {}))
            self.cond.notify_all()
        if self.results_path:
            with self.lock, open(self.results_path, "a") as f:
                f.write(json.dumps({"t": time.time(), "browser": browser, "kind": kind,
                                    "data": data or {}}) + "\n")

    def origin(self, port):
        return f"http://localhost:{port}"

    def _take(self, token, browser, kind):
        with self.lock:
            entry = self.pending.pop(token, None)
        if not entry or entry[0] != browser or entry[1] != kind:
            raise ValueError(f"unknown or used {kind} token")
        return entry

    # ------------------------------------------------------------ registration
    def register_options(self, req):
        browser = req["browser"]
        user = req.get("user") or "user"
        user_id = secrets.token_bytes(16)
        rk = {"required": ResidentKeyRequirement.REQUIRED,
              "preferred": ResidentKeyRequirement.PREFERRED}.get(
                  req.get("residentKey"), ResidentKeyRequirement.DISCOURAGED)
        att = (AttestationConveyancePreference.DIRECT if req.get("attestation") == "direct"
               else AttestationConveyancePreference.NONE)
        exclude = [PublicKeyCredentialDescriptor(id=unb64u(c)) for c in req.get("exclude") or []]
        opts = generate_registration_options(
            rp_id=RP_ID, rp_name=RP_NAME, user_name=user, user_id=user_id,
            user_display_name=user.capitalize(), timeout=CEREMONY_TIMEOUT_MS, attestation=att,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=rk, user_verification=UserVerificationRequirement.DISCOURAGED),
            exclude_credentials=exclude or None)
        token = secrets.token_hex(8)
        with self.lock:
            self.pending[token] = (browser, "register", opts.challenge,
                                   {"user": user, "user_id": user_id, "attestation": enum_str(att),
                                    "resident_key": enum_str(rk)})
        public_key = json.loads(options_to_json(opts))
        # Ask for credProps so the page can tell whether the key made a resident credential.
        public_key["extensions"] = {"credProps": True}
        return {"token": token, "publicKey": public_key}

    @staticmethod
    def roots_by_fmt(pem: bytes):
        """py_webauthn's trust anchors: `pem` for the formats that carry ferrokey's certificates."""
        return {AttestationFormat.PACKED: [pem], AttestationFormat.FIDO_U2F: [pem]}

    def register_verify(self, req, port):
        browser = req["browser"]
        _, _, challenge, extra = self._take(req["token"], browser, "register")
        cred = req["credential"]
        verified = verify_registration_response(
            credential=cred, expected_challenge=challenge, expected_origin=self.origin(port),
            expected_rp_id=RP_ID, require_user_verification=False,
            pem_root_certs_bytes_by_fmt=self.roots_by_fmt(self.root_pem))
        out = {
            "ok": True, "id": b64u(verified.credential_id), "fmt": enum_str(verified.fmt),
            "aaguid": verified.aaguid, "signCount": verified.sign_count,
            "deviceType": enum_str(verified.credential_device_type),
            "backedUp": verified.credential_backed_up, "userVerified": verified.user_verified,
            "attestation": extra["attestation"], "residentKey": extra["resident_key"],
            "credProps": (cred.get("clientExtensionResults") or {}).get("credProps"),
            "transports": (cred.get("response") or {}).get("transports"),
        }
        # python-fido2's verifiers, strict DER, on the same attestation object.
        from fido2.webauthn import AttestationObject
        response = cred.get("response") or {}
        out["pythonFido2"] = verify_registration_any(
            AttestationObject(unb64u(response["attestationObject"])),
            hashlib.sha256(unb64u(response["clientDataJSON"])).digest(), self.root_der)
        if verified.fmt in (AttestationFormat.PACKED, AttestationFormat.FIDO_U2F):
            out["chainVerified"] = True  # py_webauthn checked the x5c chain to root_pem
            # Negative control: the same statement must NOT verify against another root.
            try:
                verify_registration_response(
                    credential=cred, expected_challenge=challenge, expected_origin=self.origin(port),
                    expected_rp_id=RP_ID, require_user_verification=False,
                    pem_root_certs_bytes_by_fmt=self.roots_by_fmt(self.bogus_pem))
                out["bogusRootRejected"] = False
            except (InvalidCertificateChain, InvalidRegistrationResponse) as e:
                out["bogusRootRejected"] = "chain" in str(e).lower() or isinstance(
                    e, InvalidCertificateChain)
        record = {
            "id": out["id"], "public_key": verified.credential_public_key,
            "sign_count": verified.sign_count, "history": [verified.sign_count],
            "user": extra["user"], "user_id": extra["user_id"],
            "device_type": verified.credential_device_type, "backed_up": verified.credential_backed_up,
            "fmt": enum_str(verified.fmt),
        }
        with self.lock:
            self.creds.setdefault(browser, {})[out["id"]] = record
        self.event(browser, "register", {k: v for k, v in out.items() if k != "ok"})
        return out

    # ------------------------------------------------------------ authentication
    def login_options(self, req):
        browser = req["browser"]
        allow = [PublicKeyCredentialDescriptor(id=unb64u(c)) for c in req.get("allow") or []]
        opts = generate_authentication_options(
            rp_id=RP_ID, timeout=CEREMONY_TIMEOUT_MS, allow_credentials=allow or None,
            user_verification=UserVerificationRequirement.DISCOURAGED)
        token = secrets.token_hex(8)
        with self.lock:
            self.pending[token] = (browser, "login", opts.challenge, {"allow": req.get("allow") or []})
        return {"token": token, "publicKey": json.loads(options_to_json(opts))}

    def login_verify(self, req, port):
        browser = req["browser"]
        _, _, challenge, extra = self._take(req["token"], browser, "login")
        cred = req["credential"]
        cred_id = cred.get("id", "")
        with self.lock:
            record = self.creds.get(browser, {}).get(cred_id)
        if record is None:
            return {"ok": False, "error": f"unknown credential {cred_id[:16]}..."}
        if extra["allow"] and cred_id not in extra["allow"]:
            return {"ok": False, "error": "the browser returned a credential not in allowCredentials"}
        prev = record["sign_count"]
        flags = auth_data_flags(cred)
        try:
            verified = verify_authentication_response(
                credential=cred, expected_challenge=challenge, expected_origin=self.origin(port),
                expected_rp_id=RP_ID, credential_public_key=record["public_key"],
                credential_current_sign_count=prev, require_user_verification=False)
        except Exception as e:  # the page wants the flags the RP saw, with the refusal
            out = {"ok": False, "error": f"{type(e).__name__}: {e}", "id": cred_id, **flags}
            self.event(browser, "login-refused", {k: v for k, v in out.items() if k != "ok"})
            return out
        user_handle = (cred.get("response") or {}).get("userHandle")
        with self.lock:
            record["sign_count"] = verified.new_sign_count
            record["history"].append(verified.new_sign_count)
            history = list(record["history"])
        out = {
            "ok": True, "id": cred_id, "signCount": verified.new_sign_count, "prevSignCount": prev,
            "counterHistory": history,
            "userHandleMatches": (unb64u(user_handle) == record["user_id"]) if user_handle else None,
            "deviceType": enum_str(verified.credential_device_type),
            "backedUp": verified.credential_backed_up, "userVerified": verified.user_verified,
            **flags,
        }
        self.event(browser, "login", {k: v for k, v in out.items() if k != "ok"})
        return out

    # ------------------------------------------------------------ the key as an instrument
    def instrument(self, browser):
        control = self.instruments.get(browser)
        if control is None:
            raise RuntimeError(f"no control API for {browser}'s key")
        return control

    def instrument_seed(self, req):
        """Seeds a resident P-256 credential for RP_ID on the browser's key
        (through the control API) with a key pair made here, and records it
        as registered: the RP verifies its signatures with the public key it
        holds. Starts following the key's events."""
        browser = req["browser"]
        control = self.instrument(browser)
        control.watch()
        user_id = secrets.token_bytes(16)
        start = int(req.get("signCount", 7))
        cred_id, cose = control.seed_resident(RP_ID, user_id, f"seeded-{browser}", start)
        record = {"user": f"seeded-{browser}", "user_id": user_id, "public_key": cose,
                  "sign_count": start, "history": [start], "device_type": "single_device",
                  "backed_up": False, "fmt": "seeded"}
        with self.lock:
            self.creds.setdefault(browser, {})[b64u(cred_id)] = record
        self.event(browser, "seeded", {"id": b64u(cred_id), "signCount": start})
        return {"ok": True, "id": b64u(cred_id), "signCount": start}

    def instrument_override(self, req):
        """CDP's response overrides on the browser's key."""
        bits = {k: bool(req.get(k)) for k in ("isBogusSignature", "isBadUV", "isBadUP")}
        return {"ok": True, "overrides": self.instrument(req["browser"]).set_overrides(**bits)}

    def instrument_check(self, req):
        """After a sign-in with credential `id` that the RP saw at `signCount`:
        the key's credentialAsserted event for it arrived with that counter,
        and Get Credentials lists it with that counter."""
        control = self.instrument(req["browser"])
        cred_id, count = req["id"], int(req["signCount"])
        t0 = time.monotonic()
        event = control.wait_event(lambda e: e.get("event") == "credentialAsserted"
                                   and e["data"]["credential"]["credentialId"] == cred_id
                                   and e["data"]["credential"]["signCount"] == count)
        waited = round(time.monotonic() - t0, 3)
        if event is None:
            seen = [e.get("event") for e in control.events][-12:]
            return {"ok": False, "error": f"no credentialAsserted event for {cred_id[:16]}... with "
                                          f"signCount {count} (last events: {seen})"}
        listed = control.credential(unb64u(cred_id))
        if listed is None:
            return {"ok": False, "error": "Get Credentials does not list the seeded credential"}
        if listed["signCount"] != count:
            return {"ok": False, "error": f"Get Credentials says signCount {listed['signCount']}, "
                                          f"the assertion {count}"}
        return {"ok": True, "eventWaitS": waited, "listedSignCount": listed["signCount"],
                "eventAuthenticatorId": event["data"].get("authenticatorId")}

    # ------------------------------------------------------------ more keys (profiles, lifecycle)
    # The page asks for keys by name; the RP adds them through the control API
    # (Add Virtual Authenticator with `ferrokey:profile`, clone, CXF export and
    # import) and has the harness plug the one the browser is to use next.
    def key(self, browser, name):
        if name == "own":
            return self.instrument(browser)
        control = self.keys.get(browser, {}).get(name)
        if control is None:
            raise ValueError(f"no key named {name!r} for {browser}")
        return control

    def use_key(self, browser, name):
        if self.plug is None:
            raise RuntimeError("this run cannot plug keys (no harness hook)")
        t0 = time.monotonic()
        self.plug(browser, None if name == "own" else self.key(browser, name))
        return round(time.monotonic() - t0, 2)

    def key_summary(self, control):
        d = control.describe()
        return {"authenticatorId": d["authenticatorId"], "busid": d["busid"], "profile": d["profile"],
                "aaguid": d["aaguid"], "serial": d["serial"]}

    def keys_add(self, req):
        """A new key of profile `profile` (Add Virtual Authenticator with
        `ferrokey:profile` and `options`), plugged for the browser."""
        browser, name = req["browser"], req["name"]
        config = {"protocol": "ctap2_1", "transport": "usb", "ferrokey:profile": req["profile"],
                  **(req.get("options") or {})}
        control = self.instrument(browser).add_key(config)
        self.keys.setdefault(browser, {})[name] = control
        control.watch()  # its ctap events, for keys_commands
        out = {"ok": True, "name": name, **self.key_summary(control)}
        if req.get("plug", True):
            out["plugSeconds"] = self.use_key(browser, name)
        self.event(browser, "key-added", out)
        return out

    def keys_clone(self, req):
        """A clone of key `of` (POST .../clone), named `name`; not plugged."""
        browser, name = req["browser"], req["name"]
        original = self.key(browser, req["of"])
        original.watch()
        copy = original.clone()
        self.keys.setdefault(browser, {})[name] = copy
        out = {"ok": True, "name": name, **self.key_summary(copy)}
        event = original.wait_event(lambda e: e.get("event") == "cloned"
                                    and e["data"].get("cloneId") == out["authenticatorId"])
        out["clonedEvent"] = event is not None
        self.event(browser, "key-cloned", out)
        return out

    def keys_use(self, req):
        return {"ok": True, "plugSeconds": self.use_key(req["browser"], req["name"])}

    def keys_credentials(self, req):
        """Get Credentials of key `name` (no private keys)."""
        return {"ok": True, "credentials": self.key(req["browser"], req["name"]).credentials()}

    def keys_commands(self, req):
        """The CTAP commands key `name` answered since it was added, from its
        event stream: [{command, status}]."""
        control = self.key(req["browser"], req["name"])
        with control.cond:
            seen = [{"command": e["data"]["command"], "status": e["data"]["status"]}
                    for e in control.events if e.get("event") == "ctap"]
        return {"ok": True, "commands": seen}

    def keys_migrate(self, req):
        """The resident credentials of key `from`, exported as CXF and imported
        into key `to` (both through the control API)."""
        browser = req["browser"]
        document = self.key(browser, req["from"]).export_cxf()
        passkeys = [c for a in document.get("accounts", []) for i in a.get("items", [])
                    for c in i.get("credentials", []) if c.get("type") == "passkey"]
        imported = self.key(browser, req["to"]).import_cxf(document)
        out = {"ok": True, "exported": [c.get("credentialId") for c in passkeys],
               "version": document.get("version"), "imported": imported.get("imported"),
               "ignored": imported.get("ignored")}
        self.event(browser, "keys-migrated", out)
        return out

    def keys_release(self, req):
        """The browser's own key plugged again; every key added for it removed."""
        browser = req["browser"]
        removed = []
        try:
            self.use_key(browser, "own")
        finally:  # the added keys go even when the own key cannot be plugged
            for name, control in self.keys.pop(browser, {}).items():
                control.remove()
                removed.append(name)
        return {"ok": True, "removed": removed}

    # ------------------------------------------------------------ page reports
    def result(self, req):
        browser = req["browser"]
        r = {"scenario": req["scenario"], "ok": bool(req.get("ok")), "detail": req.get("detail", ""),
             "timings": req.get("timings") or {}}
        with self.lock:
            self.results.setdefault(browser, []).append(r)
        self.event(browser, "result", r)
        return {"ok": True}

    def browser_ui(self, browser, kind, value):
        """Record something the browser logged (a WebAuthn UI step, a CTAP error)."""
        with self.lock:
            self.ui.setdefault(browser, []).append({"kind": kind, "value": value})
        self.event(browser, kind, {"value": value})

    def ui_log(self, browser):
        with self.lock:
            return {"entries": list(self.ui.get(browser, []))}

    def state(self, browser):
        with self.lock:
            creds = {
                cid: {"user": r["user"], "fmt": r["fmt"], "counterHistory": r["history"],
                      "deviceType": enum_str(r["device_type"]), "backedUp": r["backed_up"]}
                for cid, r in self.creds.get(browser, {}).items()}
            return {"credentials": creds, "results": list(self.results.get(browser, []))}


def auth_data_flags(cred):
    """The UP, UV, BE and BS flags of an assertion's authenticator data, as sent."""
    try:
        flags = unb64u(cred["response"]["authenticatorData"])[32]
    except (KeyError, IndexError, TypeError, ValueError):
        return {}
    return {"up": bool(flags & 0x01), "uv": bool(flags & 0x04), "be": bool(flags & 0x08),
            "bs": bool(flags & 0x10)}


def make_handler(rp: RelyingParty, verbose=False):
    class Handler(BaseHTTPRequestHandler):
        server_version = "ferrokey-rp/1"

        def log_message(self, fmt, *args):
            if verbose:
                sys.stderr.write("[rp] " + (fmt % args) + "\n")

        def send(self, code, body: bytes, ctype):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def send_json(self, obj, code=200):
            self.send(code, json.dumps(obj).encode(), "application/json")

        def do_GET(self):
            path, _, query = self.path.partition("?")
            if path in ("/", "/index.html"):
                params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
                rp.event(params.get("browser", "?"), "page-load", {"path": self.path})
                return self.send(200, (PAGE_DIR / "index.html").read_bytes(), "text/html; charset=utf-8")
            if path == "/app.js":
                return self.send(200, (PAGE_DIR / "app.js").read_bytes(),
                                 "text/javascript; charset=utf-8")
            if path == "/api/state":
                params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
                return self.send_json(rp.state(params.get("browser", "")))
            if path == "/api/ui":
                params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
                return self.send_json(rp.ui_log(params.get("browser", "")))
            if path == "/favicon.ico":
                return self.send(204, b"", "image/x-icon")
            return self.send(404, b"not found\n", "text/plain")

        def do_POST(self):
            port = self.server.server_address[1]
            try:
                length = int(self.headers.get("Content-Length", "0"))
                req = json.loads(self.rfile.read(length) or b"{}")
                req.setdefault("browser", "?")
                routes = {
                    "/api/register/options": lambda: rp.register_options(req),
                    "/api/register/verify": lambda: rp.register_verify(req, port),
                    "/api/login/options": lambda: rp.login_options(req),
                    "/api/login/verify": lambda: rp.login_verify(req, port),
                    "/api/instrument/seed": lambda: rp.instrument_seed(req),
                    "/api/instrument/override": lambda: rp.instrument_override(req),
                    "/api/instrument/check": lambda: rp.instrument_check(req),
                    "/api/keys/add": lambda: rp.keys_add(req),
                    "/api/keys/clone": lambda: rp.keys_clone(req),
                    "/api/keys/use": lambda: rp.keys_use(req),
                    "/api/keys/credentials": lambda: rp.keys_credentials(req),
                    "/api/keys/commands": lambda: rp.keys_commands(req),
                    "/api/keys/migrate": lambda: rp.keys_migrate(req),
                    "/api/keys/release": lambda: rp.keys_release(req),
                    "/api/result": lambda: rp.result(req),
                    "/api/log": lambda: (rp.event(req["browser"], "log", {"msg": req.get("msg", "")}),
                                         {"ok": True})[1],
                    "/api/done": lambda: (rp.event(req["browser"], "done", req), {"ok": True})[1],
                }
                route = routes.get(self.path)
                if route is None:
                    return self.send_json({"ok": False, "error": "no such endpoint"}, 404)
                return self.send_json(route())
            except Exception as e:  # verification errors go back to the page
                if verbose:
                    traceback.print_exc()
                err = f"{type(e).__name__}: {e}"
                rp.event(req.get("browser", "?") if isinstance(req, dict) else "?", "error",
                         {"path": self.path, "error": err})
                return self.send_json({"ok": False, "error": err})

    return Handler


def serve(port, root_pem: bytes, results_path=None, verbose=False):
    """Start the RP on localhost:port in a daemon thread; returns (server, rp)."""
    rp = RelyingParty(root_pem, results_path)
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(rp, verbose))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="rp-server").start()
    return server, rp


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--root-pem", required=True, help="ferrokey's attestation root (`ferrokey ca`)")
    ap.add_argument("--results", help="append events and verdicts here (JSONL)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    server, _ = serve(args.port, Path(args.root_pem).read_bytes(), args.results, args.verbose)
    print(f"relying party on http://localhost:{server.server_address[1]}/?browser=manual", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
