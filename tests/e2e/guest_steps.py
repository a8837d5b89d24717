#!/usr/bin/env python3
"""Guest side of the real-kernel end-to-end tests (see run-kernel-e2e.sh).

Runs INSIDE the QEMU guest, in a chroot of the host's root (tools/vm/run
--chroot), with the repo's .venv python, against the real /dev/hidrawN that
vhci_hcd + usbhid made for the ferrokey under test.  One guest boot runs every
scenario in order; each prints one `PASS name ...` or `FAIL name: why` line
and appends a JSON line to results.jsonl in the work dir.

Scenarios that need the host (kill -9 the key and restart it) ask through files
in the work dir: rpc/<n>-<action>.req, answered by rpc/<n>.done (JSON).

  python guest_steps.py e2e.json      (written by kernel_e2e.py)
"""
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

# Scenario names, in the order they run (the order of the @scenario methods of
# Guest below); kernel_e2e.py counts any that did not report as failed.
SCENARIOS = []
_METHODS = {}


def scenario(name):
    """Registers a Guest method as the scenario `name` (see tests/e2e/README.md)."""
    def register(method):
        SCENARIOS.append(name)
        _METHODS[name] = method.__name__
        return method
    return register


sys.path.insert(0, str(Path(__file__).resolve().parent))  # attestation_checks
sys.dont_write_bytecode = True

RP_ID = "example.com"
ORIGIN = "https://example.com"
CMD_TIMEOUT = 60


class Fail(Exception):
    pass


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def run(cmd, stdin=None, check=True):
    """Run a command; returns CompletedProcess (text).  Raises Fail if check and rc != 0."""
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=CMD_TIMEOUT)
    if check and p.returncode != 0:
        raise Fail(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-400:]}")
    return p


def run_with_pin(cmd, params, pin, check=True):
    """Runs a libfido2 tool with its parameters in a file (-i) and the PIN on
    stdin: in a new session, without a controlling tty, the tools read the PIN
    from stdin (fido2-cred(1), fido2-assert(1))."""
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".param", delete=False) as f:
        f.write("\n".join(params) + "\n")
    try:
        p = subprocess.run(cmd[:2] + ["-i", f.name] + cmd[2:], input=pin + "\n", capture_output=True,
                           text=True, timeout=CMD_TIMEOUT, start_new_session=True)
    finally:
        os.unlink(f.name)
    if check and p.returncode != 0:
        raise Fail(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-400:]}")
    return p


def fido_error(p, want):
    """Checks that a failed libfido2 tool run reported exactly `want` (e.g.
    FIDO_ERR_NO_CREDENTIALS); returns that error line."""
    if p.returncode == 0:
        raise Fail(f"succeeded; expected {want}")
    errors = re.findall(r"FIDO_ERR_[A-Z_]+", p.stderr)
    if errors != [want]:
        raise Fail(f"expected exactly {want}, got {errors or p.stderr.strip()[-300:]!r}")
    return p.stderr.strip().splitlines()[-1]


def ctap_error(fn, *args, **kwargs):
    """The CtapError code of a python-fido2 call that must fail."""
    from fido2.ctap import CtapError
    try:
        fn(*args, **kwargs)
    except CtapError as e:
        return e.code
    raise Fail(f"{getattr(fn, '__name__', fn)} succeeded")


def flags_of(authdata_b64: str) -> int:
    """The flags byte of libfido2's authdata output."""
    raw = base64.b64decode(authdata_b64)
    skip = {0x58: 2, 0x59: 3}.get(raw[0], 1 if 0x40 <= raw[0] <= 0x57 else 0)
    return raw[skip + 32]


def sign_count(authdata_b64: str) -> int:
    """signCount from libfido2's authdata output (a CBOR byte string around authData)."""
    raw = base64.b64decode(authdata_b64)
    head = raw[0]
    if 0x40 <= head <= 0x57:
        data = raw[1:]
    elif head == 0x58:
        data = raw[2:]
    elif head == 0x59:
        data = raw[3:]
    else:
        data = raw  # already raw authData
    if len(data) < 37:
        raise Fail(f"authData too short ({len(data)} bytes)")
    return int.from_bytes(data[33:37], "big")


def report(results_path, name, ok, detail, seconds, timings=None):
    """Print `PASS|FAIL name (secs): detail` and append it to results.jsonl (read by the host)."""
    line = f"{'PASS' if ok else 'FAIL'} {name} ({seconds:.2f}s)" + (f": {detail}" if detail else "")
    print(line, flush=True)
    with open(results_path, "a") as f:
        f.write(json.dumps({"name": name, "ok": ok, "detail": detail,
                            "seconds": round(seconds, 3), "timings": timings or {}}) + "\n")


def attach(port, busid, host="10.0.2.2"):
    """vm-attach (tools/vm/guest/vm-attach): returns (hidraw, vhci port)."""
    out = run(["vm-attach", host, str(port), busid]).stdout.split()
    if not out:
        raise Fail("vm-attach printed no hidraw node")
    env = dict(line.split("=", 1) for line in Path("/run/vm-attach.env").read_text().split())
    return out[-1], env.get("FERROKEY_VHCI_PORT", "")


def detach(vport, dev):
    """usbip detach, then wait until the hidraw node is gone."""
    run(["usbip", "detach", "-p", str(vport)])
    wait_gone(dev)


def unix_json(path, method, url, body=None):
    """One JSON request to the control API on a Unix socket; the decoded answer."""
    import http.client
    import socket

    class UnixConnection(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(30)
            self.sock.connect(str(path))

    conn = UnixConnection("localhost")
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, url, body=data, headers={"Content-Type": "application/json"})
        answer = conn.getresponse()
        text = answer.read().decode()
        if answer.status != 200:
            raise Fail(f"{method} {url}: HTTP {answer.status} {text[:300]!r}")
        return json.loads(text)
    finally:
        conn.close()


def wait_gone(dev, timeout=15):
    end = time.monotonic() + timeout
    while os.path.exists(dev):
        if time.monotonic() > end:
            raise Fail(f"{dev} still present after {timeout}s")
        time.sleep(0.05)


def vhci_ports_in_use():
    """vhci ports whose state is not VDEV_ST_NULL (004), from sysfs."""
    used = []
    for status in Path("/sys/devices/platform/vhci_hcd.0").glob("status*"):
        for line in status.read_text().splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 3 and parts[2] != "004":
                used.append(parts[1])
    return sorted(used)


class Guest:
    def __init__(self, cfg_path):
        self.cfg = json.loads(Path(cfg_path).read_text())
        self.work = Path(cfg_path).resolve().parent
        self.results = self.work / "results.jsonl"
        self.tmp = self.work / "guest-tmp"
        self.tmp.mkdir(exist_ok=True)
        self.dev = os.environ.get("FERROKEY_HIDRAW", "")
        self.vport = os.environ.get("FERROKEY_VHCI_PORT", "")
        self.key_a = dict(self.cfg["key_a"])
        self.rpc_n = 0
        self.state = {}  # what scenarios hand to later ones (credential ids, counters)

    # ------------------------------------------------------------ plumbing
    def report(self, name, ok, detail, seconds, timings=None):
        report(self.results, name, ok, detail, seconds, timings)

    def run_scenario(self, name, fn):
        t0 = time.monotonic()
        self.timings = {}
        try:
            detail = fn() or ""
            self.report(name, True, detail, time.monotonic() - t0, self.timings)
        except Exception as e:  # any error fails this scenario only
            msg = str(e) if isinstance(e, Fail) else f"{type(e).__name__}: {e}"
            if not isinstance(e, Fail):
                traceback.print_exc(file=sys.stderr)
            self.report(name, False, msg, time.monotonic() - t0, self.timings)

    def timed(self, label, fn, *args, **kw):
        t0 = time.monotonic()
        try:
            return fn(*args, **kw)
        finally:
            self.timings[label] = round(self.timings.get(label, 0) + time.monotonic() - t0, 3)

    def rpc(self, action, timeout=60):
        """Ask the host runner to do something (kill or restart a key); returns its answer."""
        self.rpc_n += 1
        d = self.work / "rpc"
        d.mkdir(exist_ok=True)
        (d / f"{self.rpc_n}-{action}.req").write_text("")
        done = d / f"{self.rpc_n}.done"
        end = time.monotonic() + timeout
        while not done.exists():
            if time.monotonic() > end:
                raise Fail(f"host did not answer rpc {action}")
            time.sleep(0.1)
        answer = json.loads(done.read_text())
        if not answer.get("ok"):
            raise Fail(f"host rpc {action} failed: {answer.get('error')}")
        return answer

    def attach(self, key):
        """vm-attach (tools/vm/guest/vm-attach): returns (hidraw, vhci port)."""
        return attach(key["port"], key["busid"])

    def detach(self, vport, dev):
        detach(vport, dev)

    def wait_gone(self, dev, timeout=15):
        wait_gone(dev, timeout)

    # ------------------------------------------------------------ libfido2 CLI helpers
    def make_cred(self, dev, rp=RP_ID, resident=False):
        """fido2-cred -M then -V; returns (cred_id_b64, pubkey_path, fmt, count)."""
        user_id = os.urandom(32)
        param = "\n".join([b64(os.urandom(32)), rp, "alice", b64(user_id)]) + "\n"
        cmd = ["fido2-cred", "-M"] + (["-r"] if resident else []) + [dev, "es256"]
        made = self.timed("fido2-cred -M", run, cmd, stdin=param).stdout
        lines = made.splitlines()
        if len(lines) < 6:
            raise Fail(f"fido2-cred -M printed {len(lines)} lines")
        fmt, authdata, cred_id = lines[2], lines[3], lines[4]
        if fmt != "packed":
            raise Fail(f"attestation format {fmt!r}, expected 'packed'")
        if len(lines) < 7 or not lines[6]:
            raise Fail("no attestation certificate (x5c) in packed attestation")
        self.timed("python-fido2 attestation check", self.check_libfido2_attestation, lines)
        tag = f"{rp}-{'rk' if resident else 'nr'}-{cred_id[:8].replace('/', '_')}"
        pub = self.tmp / f"{tag}.pub"
        self.timed("fido2-cred -V", run, ["fido2-cred", "-V", "-o", str(pub), "es256"], stdin=made)
        vid = pub.read_text().splitlines()[0]
        if vid != cred_id:
            raise Fail("fido2-cred -V returned a different credential id")
        # fido2-cred -V writes "credential id\nPEM"; fido2-assert -V wants the PEM only.
        pem = self.tmp / f"{tag}.pem"
        pem.write_text("\n".join(pub.read_text().splitlines()[1:]) + "\n")
        return cred_id, pem, fmt, sign_count(authdata)

    def root_der(self):
        """The `ferrokey ca` root the host exported (DER)."""
        from attestation_checks import pem_to_der
        return pem_to_der(Path(self.cfg["ca_pem"]).read_bytes())

    def check_libfido2_attestation(self, lines):
        """fido2-cred -M's packed statement (authdata, sig, x5c) through
        python-fido2's PackedAttestation().verify() and verify_x509_chain up to
        the `ferrokey ca` root."""
        from attestation_checks import verify_registration
        from fido2 import cbor
        from fido2.webauthn import AttestationObject, AuthenticatorData
        cdh = base64.b64decode(lines[0])
        raw = base64.b64decode(lines[3])
        # libfido2 prints authData as a CBOR byte string (see sign_count()).
        auth_data = AuthenticatorData(cbor.decode(raw) if 0x40 <= raw[0] <= 0x5B else raw)
        statement = {"alg": -7, "sig": base64.b64decode(lines[5]), "x5c": [base64.b64decode(lines[6])]}
        att = AttestationObject.create("packed", auth_data, statement)
        try:
            return verify_registration(att, cdh, self.root_der(), "batch")
        except Exception as e:
            raise Fail(f"python-fido2 refused libfido2's packed registration: {type(e).__name__}: {e}")

    def assertion(self, dev, pem, cred_id=None, rp=RP_ID):
        """fido2-assert -G then -V; returns the signCount (raises Fail on any error)."""
        lines = [b64(os.urandom(32)), rp] + ([cred_id] if cred_id else [])
        cmd = ["fido2-assert", "-G"] + ([] if cred_id else ["-r"]) + [dev]
        got = self.timed("fido2-assert -G", run, cmd, stdin="\n".join(lines) + "\n").stdout
        out = got.splitlines()
        if len(out) < 4:
            raise Fail(f"fido2-assert -G printed {len(out)} lines")
        verify_in = "\n".join(out[:4]) + "\n"
        self.timed("fido2-assert -V", run, ["fido2-assert", "-V", str(pem), "es256"], stdin=verify_in)
        return sign_count(out[2])

    # ------------------------------------------------------------ scenarios
    @scenario("libfido2-list")
    def s_list(self):
        out = self.timed("fido2-token -L", run, ["fido2-token", "-L"]).stdout
        line = next((x for x in out.splitlines() if x.startswith(self.dev + ":")), None)
        if not line:
            raise Fail(f"{self.dev} not in fido2-token -L output: {out.strip()!r}")
        want = self.cfg.get("product_match", "ferrokey")
        m = re.search(r"\((.*)\)\s*$", line)
        if not m or want.lower() not in m.group(1).lower():
            raise Fail(f"product name does not contain {want!r}: {line!r}")
        return line

    @scenario("libfido2-info")
    def s_info(self):
        out = self.timed("fido2-token -I", run, ["fido2-token", "-I", self.dev]).stdout
        fields = {}
        for x in out.splitlines():
            k, _, v = x.partition(":")
            fields[k.strip()] = v.strip()
        versions = [v.strip() for v in fields.get("version strings", "").split(",")]
        missing = [v for v in ("FIDO_2_0", "FIDO_2_1", "U2F_V2") if v not in versions]
        if missing:
            raise Fail(f"versions {versions} lack {missing}")
        aaguid = fields.get("aaguid", "")
        if not re.fullmatch(r"[0-9a-f]{32}", aaguid) or aaguid == "0" * 32:
            raise Fail(f"bad aaguid {aaguid!r}")
        want = self.cfg.get("aaguid")
        if want and aaguid != want.replace("-", "").lower():
            raise Fail(f"aaguid {aaguid} != expected {want}")
        options = [o.strip() for o in fields.get("options", "").split(",")]
        for opt in ("rk", "up"):
            if opt not in options:
                raise Fail(f"option {opt} not true in {options}")
        self.state["aaguid"] = aaguid
        return f"versions={','.join(versions)} aaguid={aaguid} options={','.join(options)}"

    @scenario("libfido2-cred-nonresident")
    def s_cred_nonresident(self):
        cred_id, pem, fmt, count = self.make_cred(self.dev)
        self.state["nr"] = {"cred_id": cred_id, "pem": str(pem), "count": count}
        return f"fmt={fmt} cred_id_len={len(base64.b64decode(cred_id))} count={count}"

    @scenario("libfido2-cred-resident")
    def s_cred_resident(self):
        rp = "rk.example.com"
        cred_id, pem, fmt, count = self.make_cred(self.dev, rp=rp, resident=True)
        # The resident credential must be discoverable: an assertion without allowList.
        n = self.assertion(self.dev, pem, None, rp=rp)
        self.state["rk"] = {"cred_id": cred_id, "pem": str(pem), "rp": rp}
        return f"fmt={fmt} discoverable assertion count={n}"

    @scenario("libfido2-assert-counter")
    def s_assert_counter(self):
        nr = self.state.get("nr") or self._fresh_cred()
        first = self.assertion(self.dev, nr["pem"], nr["cred_id"])
        second = self.assertion(self.dev, nr["pem"], nr["cred_id"])
        if not second > first:
            raise Fail(f"counter did not increase: {first} -> {second}")
        nr["count"] = second
        return f"counter {first} -> {second}"

    def _fresh_cred(self):
        cred_id, pem, _, count = self.make_cred(self.dev)
        self.state["nr"] = {"cred_id": cred_id, "pem": str(pem), "count": count}
        return self.state["nr"]

    @scenario("python-fido2-webauthn")
    def s_python_fido2(self):
        """python-fido2's Fido2Client on the real hidraw: register, then authenticate.

        The responses (WebAuthn JSON, via dict()) and challenges go to webauthn.json;
        the host runner checks them with py_webauthn as an independent relying party
        (verify_webauthn.py), at native speed instead of under TCG."""
        t0 = time.monotonic()
        from fido2.client import DefaultClientDataCollector, Fido2Client
        from fido2.hid import open_device
        from fido2.webauthn import (AttestationConveyancePreference, AuthenticatorSelectionCriteria,
                                    PublicKeyCredentialCreationOptions,
                                    PublicKeyCredentialDescriptor, PublicKeyCredentialParameters,
                                    PublicKeyCredentialRequestOptions, PublicKeyCredentialRpEntity,
                                    PublicKeyCredentialType, PublicKeyCredentialUserEntity,
                                    UserVerificationRequirement)
        # No PIN is set on this key; python-fido2 turns WebAuthn's default
        # "preferred" into an error when the key supports a PIN but has none,
        # so ask for UP only (PIN/UV flows are covered by the fido2 suite).
        no_uv = UserVerificationRequirement.DISCOURAGED
        self.timings["python imports"] = round(time.monotonic() - t0, 3)

        device = open_device(self.dev)
        client = Fido2Client(device, DefaultClientDataCollector(ORIGIN))
        challenge = os.urandom(32)
        create = PublicKeyCredentialCreationOptions(
            rp=PublicKeyCredentialRpEntity(id=RP_ID, name="ferrokey e2e"),
            user=PublicKeyCredentialUserEntity(id=os.urandom(16), name="bob", display_name="Bob"),
            challenge=challenge,
            pub_key_cred_params=[PublicKeyCredentialParameters(type=PublicKeyCredentialType.PUBLIC_KEY,
                                                               alg=-7)],
            attestation=AttestationConveyancePreference.DIRECT,
            authenticator_selection=AuthenticatorSelectionCriteria(user_verification=no_uv),
            timeout=30000,
        )
        reg = self.timed("make_credential", client.make_credential, create)
        cred_id = reg.raw_id
        fmt = reg.response.attestation_object.fmt
        count1 = reg.response.attestation_object.auth_data.counter

        challenge2 = os.urandom(32)
        request = PublicKeyCredentialRequestOptions(
            challenge=challenge2, rp_id=RP_ID, timeout=30000, user_verification=no_uv,
            allow_credentials=[PublicKeyCredentialDescriptor(type=PublicKeyCredentialType.PUBLIC_KEY,
                                                             id=cred_id)])
        sel = self.timed("get_assertion", client.get_assertion, request)
        auth = sel.get_response(0)
        count2 = auth.response.authenticator_data.counter
        device.close()
        (self.work / "webauthn.json").write_text(json.dumps({
            "origin": ORIGIN, "rp_id": RP_ID,
            "registration": dict(reg), "registration_challenge": b64(challenge),
            "authentication": dict(auth), "authentication_challenge": b64(challenge2),
        }, indent=2))
        if fmt != "packed":
            raise Fail(f"attestation format {fmt!r}, expected 'packed'")
        if not count2 > count1:
            raise Fail(f"sign count did not increase: {count1} -> {count2}")
        from attestation_checks import verify_registration
        import hashlib
        checked = self.timed("python-fido2 attestation check", verify_registration,
                             reg.response.attestation_object,
                             hashlib.sha256(bytes(reg.response.client_data)).digest(), self.root_der(), "batch")
        return (f"fmt={fmt}, sign count {count1} -> {count2}; {checked} "
                f"(py_webauthn and python-fido2 check again on the host)")

    @scenario("python-fido2-u2f-attestation")
    def s_u2f(self):
        """U2F REGISTER through python-fido2's Ctap1 on the real hidraw, checked
        with FidoU2FAttestation().verify() and verify_x509_chain up to the
        `ferrokey ca` root; then AUTHENTICATE with the new key handle, its
        signature verified. The registration goes to webauthn.json for the host."""
        import hashlib
        from attestation_checks import verify_u2f_registration
        from fido2.cose import ES256
        from fido2.ctap1 import Ctap1
        from fido2.hid import open_device
        device = open_device(self.dev)
        ctap1 = Ctap1(device)
        app_param = hashlib.sha256(b"https://u2f.example.com").digest()
        client_param = os.urandom(32)
        reg = self.timed("CTAP1 register", ctap1.register, client_param, app_param)
        checked = self.timed("FidoU2FAttestation", verify_u2f_registration, app_param, client_param,
                             reg, self.root_der(), "batch")
        challenge = os.urandom(32)
        auth = self.timed("CTAP1 authenticate", ctap1.authenticate, challenge, app_param, reg.key_handle)
        device.close()
        signed = app_param + bytes([auth.user_presence]) + auth.counter.to_bytes(4, "big") + challenge
        ES256.from_ctap1(reg.public_key).verify(signed, auth.signature)
        (self.work / "u2f.json").write_text(json.dumps({
            "app_param": b64(app_param), "client_param": b64(client_param), "registration": b64(bytes(reg)),
        }))
        return f"{checked}; AUTHENTICATE counter {auth.counter}, signature verified"

    @scenario("u2f-libfido2")
    def s_u2f_libfido2(self):
        """libfido2 over CTAP1/U2F (-u): register (fido-u2f attestation, verified by
        fido2-cred -V), then two authentications verified by fido2-assert -V with
        the registered key, the counter going up."""
        app = "u2f.example.com"
        param = "\n".join([b64(os.urandom(32)), app, "u2f-user", b64(os.urandom(32))]) + "\n"
        made = self.timed("fido2-cred -M -u", run, ["fido2-cred", "-M", "-u", self.dev, "es256"],
                          stdin=param).stdout
        lines = made.splitlines()
        if len(lines) < 7 or lines[2] != "fido-u2f":
            raise Fail(f"U2F registration: format {lines[2] if len(lines) > 2 else None!r}, "
                       f"{len(lines)} lines")
        pub = self.tmp / "u2f.pub"
        self.timed("fido2-cred -V", run, ["fido2-cred", "-V", "-o", str(pub), "es256"], stdin=made)
        pem = self.tmp / "u2f.pem"
        pem.write_text("\n".join(pub.read_text().splitlines()[1:]) + "\n")
        counts = []
        for _ in range(2):
            got = self.timed("fido2-assert -G -u", run, ["fido2-assert", "-G", "-u", self.dev],
                             stdin="\n".join([b64(os.urandom(32)), app, lines[4]]) + "\n").stdout
            out = got.splitlines()
            self.timed("fido2-assert -V", run, ["fido2-assert", "-V", "-p", str(pem), "es256"],
                       stdin="\n".join(out[:4]) + "\n")
            counts.append(sign_count(out[2]))
        if not counts[1] > counts[0]:
            raise Fail(f"U2F counter did not increase: {counts}")
        return f"fido-u2f registration verified, authentications verified, counter {counts[0]} -> {counts[1]}"

    @scenario("u2f-python-fido2")
    def s_u2f_python_fido2(self):
        """python-fido2's Ctap1 on the real hidraw: REGISTER and AUTHENTICATE with
        the library's own signature checks; check-only answers 0x6985 for our
        key handle and 0x6A80 for a foreign one (exact status words)."""
        from fido2.ctap1 import ApduError, Ctap1
        from fido2.hid import open_device
        import hashlib
        dev = open_device(self.dev)
        try:
            ctap1 = Ctap1(dev)
            if ctap1.get_version() != "U2F_V2":
                raise Fail("U2F version is not U2F_V2")
            app = hashlib.sha256(b"https://u2f.python.example").digest()

            def retry(fn, *args):
                for _ in range(50):
                    try:
                        return fn(*args)
                    except ApduError as e:
                        if e.code != 0x6985:
                            raise
                        time.sleep(0.1)
                raise Fail("user presence never came")
            chal = os.urandom(32)
            reg = self.timed("Ctap1.register", retry, ctap1.register, chal, app)
            reg.verify(app, chal)
            counts = []
            for _ in range(2):
                chal = os.urandom(32)
                sig = self.timed("Ctap1.authenticate", retry, ctap1.authenticate, chal, app, reg.key_handle)
                sig.verify(app, chal, reg.public_key)
                counts.append(sig.counter)
            if not counts[1] > counts[0]:
                raise Fail(f"counter did not increase: {counts}")
            codes = []
            for kh in (reg.key_handle, os.urandom(len(reg.key_handle))):
                try:
                    ctap1.authenticate(os.urandom(32), app, kh, check_only=True)
                    raise Fail("check-only authenticate succeeded")
                except ApduError as e:
                    codes.append(e.code)
            if codes != [0x6985, 0x6A80]:
                raise Fail(f"check-only gave {[hex(c) for c in codes]}, expected 0x6985 (ours), "
                           "0x6a80 (foreign)")
        finally:
            dev.close()
        return f"registration and authentications verified by python-fido2; counter {counts}"

    @scenario("hmac-secret")
    def s_hmac_secret(self):
        """hmac-secret through both clients: libfido2 makes a credential with
        -h; its hmac output for a salt is stable and salt-dependent; python-fido2
        (hmacGetSecret, same salt, no UV either) gets the very same 32 bytes."""
        rp = "hmac.example.com"
        param = "\n".join([b64(os.urandom(32)), rp, "hmac-user", b64(os.urandom(32))]) + "\n"
        made = self.timed("fido2-cred -M -h", run, ["fido2-cred", "-M", "-h", self.dev, "es256"],
                          stdin=param).stdout
        self.timed("fido2-cred -V -h", run, ["fido2-cred", "-V", "-h", "es256"], stdin=made)
        cred_id = made.splitlines()[4]
        salt, other = os.urandom(32), os.urandom(32)

        def secret(s):
            got = self.timed("fido2-assert -G -h", run, ["fido2-assert", "-G", "-h", self.dev],
                             stdin="\n".join([b64(os.urandom(32)), rp, cred_id, b64(s)]) + "\n")
            out = got.stdout.splitlines()
            if len(out) < 5:
                raise Fail(f"fido2-assert -h printed {len(out)} lines")
            return base64.b64decode(out[4])
        first, again, third = secret(salt), secret(salt), secret(other)
        if len(first) != 32 or first != again or first == third:
            raise Fail(f"hmac outputs: {len(first)} bytes, stable {first == again}, "
                       f"salt-dependent {first != third}")
        from fido2.client import DefaultClientDataCollector, Fido2Client
        from fido2.ctap2.extensions import HmacSecretExtension
        from fido2.hid import open_device
        from fido2.webauthn import (PublicKeyCredentialDescriptor, PublicKeyCredentialRequestOptions,
                                    PublicKeyCredentialType, UserVerificationRequirement)
        dev = open_device(self.dev)
        try:
            client = Fido2Client(dev, DefaultClientDataCollector(f"https://{rp}"),
                                 extensions=[HmacSecretExtension(allow_hmac_secret=True)])
            sel = self.timed("python-fido2 get_assertion", client.get_assertion,
                             PublicKeyCredentialRequestOptions(
                                 challenge=os.urandom(32), rp_id=rp,
                                 user_verification=UserVerificationRequirement.DISCOURAGED,
                                 allow_credentials=[PublicKeyCredentialDescriptor(
                                     type=PublicKeyCredentialType.PUBLIC_KEY,
                                     id=base64.b64decode(cred_id))],
                                 extensions={"hmacGetSecret": {"salt1": salt}}))
            results = sel.get_response(0).client_extension_results
        finally:
            dev.close()
        out1 = results.get("hmacGetSecret", {}).get("output1")
        if isinstance(out1, str):
            out1 = base64.urlsafe_b64decode(out1 + "=" * (-len(out1) % 4))
        if out1 != first:
            raise Fail(f"python-fido2's hmac-secret output differs from libfido2's ({results})")
        return "libfido2 outputs stable and salt-dependent; python-fido2 got the same output"

    @scenario("credprotect")
    def s_credprotect(self):
        """credProtect through both clients: a level-3 credential (UV required)
        is refused without UV with exactly NO_CREDENTIALS (libfido2 and
        python-fido2); a level-2 credential signs with its ID but is not
        discoverable without UV."""
        from fido2.ctap import CtapError
        from fido2.ctap2 import Ctap2
        from fido2.hid import open_device
        rp = "credprotect.example.com"
        ids = {}
        for level in (2, 3):
            param = "\n".join([b64(os.urandom(32)), rp, f"cp{level}", b64(os.urandom(32))]) + "\n"
            made = self.timed(f"fido2-cred -M -r -c {level}", run,
                              ["fido2-cred", "-M", "-r", "-c", str(level), self.dev, "es256"],
                              stdin=param).stdout
            self.timed("fido2-cred -V -c", run, ["fido2-cred", "-V", "-c", str(level), "es256"], stdin=made)
            ids[level] = made.splitlines()[4]
        p = self.timed("fido2-assert -G (cp3, no UV)", run, ["fido2-assert", "-G", self.dev],
                       stdin="\n".join([b64(os.urandom(32)), rp, ids[3]]) + "\n", check=False)
        cp3 = fido_error(p, "FIDO_ERR_NO_CREDENTIALS")
        self.timed("fido2-assert -G (cp2 by id)", run, ["fido2-assert", "-G", self.dev],
                   stdin="\n".join([b64(os.urandom(32)), rp, ids[2]]) + "\n")
        p = self.timed("fido2-assert -G -r (no UV)", run, ["fido2-assert", "-G", "-r", self.dev],
                       stdin="\n".join([b64(os.urandom(32)), rp]) + "\n", check=False)
        fido_error(p, "FIDO_ERR_NO_CREDENTIALS")
        dev = open_device(self.dev)
        try:
            ctap = Ctap2(dev)
            if "credProtect" not in ctap.info.extensions:
                raise Fail(f"getInfo extensions {ctap.info.extensions} lack credProtect")
            code = ctap_error(ctap.get_assertion, rp, os.urandom(32),
                              [{"type": "public-key", "id": base64.b64decode(ids[3])}])
        finally:
            dev.close()
        if code != CtapError.ERR.NO_CREDENTIALS:
            raise Fail(f"python-fido2: cp3 without UV gave {code!r}, expected NO_CREDENTIALS")
        return f"cp3 refused without UV ({cp3}; python-fido2 NO_CREDENTIALS), cp2 by ID only"

    @scenario("reattach-assert")
    def s_reattach(self):
        nr = self.state.get("nr") or self._fresh_cred()
        self.timed("detach", self.detach, self.vport, self.dev)
        self.dev, self.vport = self.timed("attach", self.attach, self.key_a)
        n = self.assertion(self.dev, nr["pem"], nr["cred_id"])
        if not n > nr["count"]:
            raise Fail(f"counter did not increase across re-attach: {nr['count']} -> {n}")
        nr["count"] = n
        return f"re-attached as {self.dev} (vhci port {self.vport}); counter -> {n}"

    @scenario("kill9-restart-keeps-state")
    def s_kill9(self):
        nr = self.state.get("nr") or self._fresh_cred()
        before = nr["count"]
        self.timed("host kill -9", self.rpc, "kill-a")
        # The kernel notices the dead TCP connection and unplugs the device.
        self.timed("device gone", self.wait_gone, self.dev)
        answer = self.timed("host restart", self.rpc, "restart-a")
        self.key_a.update(port=answer["port"], busid=answer["busid"])
        self.dev, self.vport = self.timed("attach", self.attach, self.key_a)
        n = self.assertion(self.dev, nr["pem"], nr["cred_id"])
        if not n > before:
            raise Fail(f"counter after restart {n} is not above {before}")
        nr["count"] = n
        rk = self.state.get("rk")
        if rk:  # the resident credential survived too
            self.assertion(self.dev, rk["pem"], None, rp=rk["rp"])
        return f"restarted key kept its credentials; counter {before} -> {n}"

    @scenario("pin-lockout-needs-reattach")
    def s_pin_lockout(self):
        """python-fido2's ClientPin: set a PIN, 3 wrong PINs in a row block PIN
        entry until a power cycle (even the right PIN is refused); a re-attach is
        an unplug and replug, after which the right PIN works and the retries,
        persisted, count the 3 misses.  (The next scenario's reset clears the PIN.)"""
        from fido2.ctap import CtapError
        from fido2.ctap2 import Ctap2
        from fido2.ctap2.pin import ClientPin
        from fido2.hid import open_device
        pin, wrong = "e2e-4321", "e2e-0000"

        def client():
            return ClientPin(Ctap2(open_device(self.dev)))

        def error_of(fn, *args):
            try:
                fn(*args)
            except CtapError as e:
                return e.code
            raise Fail(f"{fn.__name__} succeeded")

        cp = client()
        self.timed("set PIN", cp.set_pin, pin)
        self.state["pin"] = pin
        got = [self.timed(f"wrong PIN {i + 1}", error_of, cp.get_pin_token, wrong) for i in range(3)]
        want = [CtapError.ERR.PIN_INVALID, CtapError.ERR.PIN_INVALID, CtapError.ERR.PIN_AUTH_BLOCKED]
        if got != want:
            raise Fail(f"wrong PINs gave {[e.name for e in got]}, expected {[e.name for e in want]}")
        blocked = self.timed("right PIN (blocked)", error_of, cp.get_pin_token, pin)
        if blocked != CtapError.ERR.PIN_AUTH_BLOCKED:
            raise Fail(f"the right PIN before a power cycle gave {blocked.name}, expected PIN_AUTH_BLOCKED")
        cp.ctap.device.close()
        self.timed("detach", self.detach, self.vport, self.dev)
        self.dev, self.vport = self.timed("attach", self.attach, self.key_a)
        cp = client()
        retries, _ = cp.get_pin_retries()
        if retries != 5:
            raise Fail(f"{retries} PIN retries after 3 misses, expected 5")
        token = self.timed("right PIN", cp.get_pin_token, pin)
        retries, _ = cp.get_pin_retries()
        cp.ctap.device.close()
        if not token or retries != 8:
            raise Fail(f"after the right PIN: token {bool(token)}, retries {retries} (expected 8)")
        return ("3 wrong PINs -> PIN_AUTH_BLOCKED (right PIN refused too); after re-attach "
                "5 retries left, right PIN accepted, retries back to 8")

    @scenario("pin-protected-ceremony")
    def s_pin_ceremony(self):
        """With the PIN of the lockout scenario set: libfido2 (-v, PIN on stdin)
        makes and uses a credential with user verification, its UV flags
        verified by fido2-cred -V -v / fido2-assert -V -v; python-fido2's
        Fido2Client does the same with user_verification=required; a wrong PIN
        is exactly PIN_INVALID and costs one retry."""
        from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
        from fido2.ctap import CtapError
        from fido2.ctap2 import Ctap2
        from fido2.ctap2.pin import ClientPin
        from fido2.hid import open_device
        from fido2.webauthn import (PublicKeyCredentialCreationOptions, PublicKeyCredentialDescriptor,
                                    PublicKeyCredentialParameters,
                                    PublicKeyCredentialRequestOptions, PublicKeyCredentialRpEntity,
                                    PublicKeyCredentialType, PublicKeyCredentialUserEntity,
                                    UserVerificationRequirement, AuthenticatorSelectionCriteria)
        pin, rp = self.state.get("pin", "e2e-4321"), "pin.example.com"
        made = self.timed("fido2-cred -M -v", run_with_pin,
                          ["fido2-cred", "-M", "-v", self.dev, "es256"],
                          [b64(os.urandom(32)), rp, "pin-user", b64(os.urandom(32))], pin).stdout
        lines = made.splitlines()
        if not flags_of(lines[3]) & 0x04:
            raise Fail("makeCredential with the PIN: UV flag not set")
        pub = self.tmp / "pin.pub"
        self.timed("fido2-cred -V -v", run, ["fido2-cred", "-V", "-v", "-o", str(pub), "es256"], stdin=made)
        pem = self.tmp / "pin.pem"
        pem.write_text("\n".join(pub.read_text().splitlines()[1:]) + "\n")
        got = self.timed("fido2-assert -G -v", run_with_pin, ["fido2-assert", "-G", "-v", self.dev],
                         [b64(os.urandom(32)), rp, lines[4]], pin).stdout.splitlines()
        self.timed("fido2-assert -V -v", run, ["fido2-assert", "-V", "-v", str(pem), "es256"],
                   stdin="\n".join(got[:4]) + "\n")

        class Pin(UserInteraction):
            def request_pin(self, permissions, rp_id):
                return pin
        dev = open_device(self.dev)
        try:
            client = Fido2Client(dev, DefaultClientDataCollector(f"https://{rp}"), user_interaction=Pin())
            required = UserVerificationRequirement.REQUIRED
            reg = self.timed("python-fido2 make_credential", client.make_credential,
                             PublicKeyCredentialCreationOptions(
                                 rp=PublicKeyCredentialRpEntity(id=rp, name="pin"),
                                 user=PublicKeyCredentialUserEntity(id=os.urandom(16), name="p"),
                                 challenge=os.urandom(32),
                                 pub_key_cred_params=[PublicKeyCredentialParameters(
                                     type=PublicKeyCredentialType.PUBLIC_KEY, alg=-7)],
                                 authenticator_selection=AuthenticatorSelectionCriteria(
                                     user_verification=required)))
            auth_data = reg.response.attestation_object.auth_data
            if not auth_data.is_user_verified():
                raise Fail("python-fido2 registration without UV")
            public_key = auth_data.credential_data.public_key
            sel = self.timed("python-fido2 get_assertion", client.get_assertion,
                             PublicKeyCredentialRequestOptions(
                                 challenge=os.urandom(32), rp_id=rp, user_verification=required,
                                 allow_credentials=[PublicKeyCredentialDescriptor(
                                     type=PublicKeyCredentialType.PUBLIC_KEY, id=reg.raw_id)]))
            a = sel.get_response(0)
            ad = a.response.authenticator_data
            if not ad.is_user_verified():
                raise Fail("python-fido2 assertion without UV")
            import hashlib
            public_key.verify(bytes(ad) + hashlib.sha256(bytes(a.response.client_data)).digest(),
                              a.response.signature)
            cp = ClientPin(Ctap2(dev))
            code = ctap_error(cp.get_pin_token, "wrong-pin-000")
            retries = cp.get_pin_retries()[0]
            cp.get_pin_token(pin)
            restored = cp.get_pin_retries()[0]
        finally:
            dev.close()
        if code != CtapError.ERR.PIN_INVALID or (retries, restored) != (7, 8):
            raise Fail(f"wrong PIN gave {code!r}, retries {retries} then {restored}")
        return "libfido2 and python-fido2 ceremonies with UV verified; wrong PIN -> PIN_INVALID (7 left)"

    @scenario("attach-local-helper")
    def s_attach_local(self):
        """tools/attach-local, the attach helper for hosts that have vhci-hcd, on this
        real kernel: attach (it prints the new hidraw node and sets its owner and
        mode), use the key through that node, detach (the node goes)."""
        helper = str(Path(__file__).resolve().parents[2] / "tools" / "attach-local")
        where = ["--host", "10.0.2.2", "--port", str(self.key_a["port"]),
                 "--busid", self.key_a["busid"]]
        self.timed("detach (harness)", self.detach, self.vport, self.dev)
        p = self.timed("attach-local", run, [helper, *where, "--owner", "nobody", "--mode", "0640"])
        dev = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
        if not re.fullmatch(r"/dev/hidraw\d+", dev):
            raise Fail(f"attach-local printed {p.stdout!r}, not a hidraw node")
        st = os.stat(dev)
        if st.st_uid != 65534 or (st.st_mode & 0o777) != 0o640:
            raise Fail(f"{dev}: uid {st.st_uid}, mode {st.st_mode & 0o777:o}; wanted nobody (65534), 640")
        info = self.timed("fido2-token -I", run, ["fido2-token", "-I", dev]).stdout
        if "FIDO_2_1" not in info:
            raise Fail(f"fido2-token -I on {dev}: {info[:200]!r}")
        self.timed("attach-local --detach", run, [helper, "--detach", *where])
        if os.path.exists(dev):
            raise Fail(f"{dev} still present after attach-local --detach")
        self.dev, self.vport = self.timed("attach (harness)", self.attach, self.key_a)
        return f"attached as {dev} (owner nobody, mode 640), getInfo read through it, detached"

    @scenario("reset-forgets-credentials")
    def s_reset(self):
        """fido2-token -R, then the old credential is refused with exactly
        NO_CREDENTIALS by libfido2 and python-fido2 (not just any error: a
        crash, a timeout or "PIN required" would not show the reset worked),
        and the PIN is gone."""
        from fido2.ctap import CtapError
        from fido2.ctap2 import Ctap2
        from fido2.hid import open_device
        nr = self.state.get("nr") or self._fresh_cred()
        # A reset must come soon after power-up: re-plug first (detach + attach).
        self.timed("detach", self.detach, self.vport, self.dev)
        self.dev, self.vport = self.timed("attach", self.attach, self.key_a)
        self.timed("fido2-token -R", run, ["fido2-token", "-R", self.dev])
        lines = [b64(os.urandom(32)), RP_ID, nr["cred_id"]]
        p = self.timed("fido2-assert -G (after reset)", run, ["fido2-assert", "-G", self.dev],
                       stdin="\n".join(lines) + "\n", check=False)
        err = fido_error(p, "FIDO_ERR_NO_CREDENTIALS")
        dev = open_device(self.dev)
        try:
            ctap = Ctap2(dev)
            code = ctap_error(ctap.get_assertion, RP_ID, os.urandom(32),
                              [{"type": "public-key", "id": base64.b64decode(nr["cred_id"])}])
            pin_set = ctap.info.options.get("clientPin")
        finally:
            dev.close()
        if code != CtapError.ERR.NO_CREDENTIALS:
            raise Fail(f"python-fido2 after reset: {code!r}, expected NO_CREDENTIALS")
        if pin_set is not False:
            raise Fail(f"getInfo clientPin after reset is {pin_set!r}, expected False (no PIN)")
        return f"old credential refused ({err}; python-fido2 NO_CREDENTIALS); PIN cleared"

    @scenario("presence-deny")
    def s_deny(self):
        key_b = self.cfg["key_b"]
        dev_b, vport_b = self.timed("attach", self.attach, key_b)
        try:
            self.timed("fido2-token -I", run, ["fido2-token", "-I", dev_b])
            param = "\n".join([b64(os.urandom(32)), RP_ID, "carol", b64(os.urandom(32))]) + "\n"
            p = self.timed("fido2-cred -M (denied)", run, ["fido2-cred", "-M", dev_b, "es256"],
                           stdin=param, check=False)
            if p.returncode == 0:
                raise Fail("makeCredential succeeded on a key that denies presence")
            err = fido_error(p, "FIDO_ERR_OPERATION_DENIED")
            from fido2.ctap import CtapError
            from fido2.ctap2 import Ctap2
            from fido2.hid import open_device
            dev = open_device(dev_b)
            try:
                t0 = time.monotonic()
                code = ctap_error(Ctap2(dev).make_credential, os.urandom(32),
                                  {"id": RP_ID, "name": "d"}, {"id": b"d", "name": "d"},
                                  [{"type": "public-key", "alg": -7}])
                waited = time.monotonic() - t0
            finally:
                dev.close()
            if code != CtapError.ERR.OPERATION_DENIED:
                raise Fail(f"python-fido2: {code!r}, expected OPERATION_DENIED")
            return f"{dev_b}: libfido2 {err}; python-fido2 OPERATION_DENIED after {waited:.2f}s"
        finally:
            try:
                self.detach(vport_b, dev_b)
            except Exception:
                pass

    @scenario("cancel-during-presence")
    def s_cancel(self):
        """Key C waits for a touch (--presence touch): python-fido2 sends a
        makeCredential, sees KEEPALIVE UPNEEDED, sets its cancel event (a
        CTAPHID_CANCEL), and the key answers exactly KEEPALIVE_CANCEL; with the
        button then held (control API, through the host) the key works."""
        import threading
        from fido2.ctap import CtapError
        from fido2.ctap2 import Ctap2
        from fido2.hid import open_device
        key_c = self.cfg["key_c"]
        dev_c, vport_c = self.timed("attach", self.attach, key_c)
        try:
            dev = open_device(dev_c)
            ctap = Ctap2(dev)
            cancel, seen = threading.Event(), []

            def on_keepalive(status):
                seen.append(status)
                if status == 2:  # STATUS_UPNEEDED
                    cancel.set()
            args = (os.urandom(32), {"id": RP_ID, "name": "c"}, {"id": b"c", "name": "c"},
                    [{"type": "public-key", "alg": -7}])
            code = self.timed("make_credential (cancelled)", ctap_error, ctap.make_credential, *args,
                              event=cancel, on_keepalive=on_keepalive)
            if code != CtapError.ERR.KEEPALIVE_CANCEL:
                raise Fail(f"cancelled makeCredential gave {code!r}, expected KEEPALIVE_CANCEL")
            if 2 not in seen:
                raise Fail(f"no KEEPALIVE UPNEEDED before the cancel: {seen}")
            self.timed("host touch on", self.rpc, "touch-c")
            att = self.timed("make_credential (touched)", ctap.make_credential, *args)
            dev.close()
        finally:
            try:
                self.detach(vport_c, dev_c)
            except Exception:
                pass
        return (f"KEEPALIVE statuses {sorted(set(seen))}, cancel -> KEEPALIVE_CANCEL; "
                f"after a touch: fmt {att.fmt}")

    # ------------------------------------------------------------ transports in the guest
    def serve_in_guest(self, transport, keys=1, env=None, extra=()):
        """Starts the host's ferrokey INSIDE the guest (--transport uhid|attach);
        returns (process, hidraw nodes, seconds until the last node was announced)."""
        binary = self.cfg.get("ferrokey")
        if not binary:
            raise Fail("e2e.json names no ferrokey binary")
        # tmpfs: the work share (9p) has no flock for the state's lock.
        state = Path(tempfile.mkdtemp(prefix=f"ferrokey-{transport}-", dir="/tmp"))
        # Key A's CA, so that its packed attestation chains to the `ferrokey ca`
        # root every registration is checked against (make_cred).
        shutil.copytree(self.cfg["ca_dir"], state / "ca")
        log_path = self.tmp / f"serve-{transport}.log"
        full_env = dict(os.environ, RUST_LOG="info", **(env or {}))
        t0 = time.monotonic()
        with open(log_path, "w") as log_file:
            proc = subprocess.Popen(
                [binary, "serve", "--transport", transport, "--keys", str(keys),
                 "--state-dir", str(state), *extra],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file, env=full_env)
        pattern = re.compile(r"key-(\d+) (?:is a uhid device|attached on vhci port \d+): (/dev/hidraw\d+)")
        end = time.monotonic() + 90
        while True:
            found = dict(pattern.findall(log_path.read_text()))
            if len(found) == keys and all(os.path.exists(n) for n in found.values()):
                break
            if proc.poll() is not None or time.monotonic() > end:
                proc.kill()
                raise Fail(f"ferrokey --transport {transport} announced {found}: "
                           f"{log_path.read_text()[-600:]!r}")
            time.sleep(0.05)
        took = time.monotonic() - t0
        self.timings[f"{transport}: start to hidraw"] = round(took, 3)
        return proc, [found[str(n)] for n in range(1, keys + 1)], took

    def ceremonies(self, dev):
        """libfido2 getInfo, a credential made and verified, an assertion verified."""
        out = self.timed("fido2-token -I", run, ["fido2-token", "-I", dev]).stdout
        if "FIDO_2_1" not in out:
            raise Fail(f"fido2-token -I {dev}: no FIDO_2_1 in {out[:200]!r}")
        cred_id, pem, fmt, count = self.make_cred(dev)
        first = self.assertion(dev, pem, cred_id)
        second = self.assertion(dev, pem, cred_id)
        if not second > first:
            raise Fail(f"counter did not increase: {first} -> {second}")
        return fmt

    def python_fido2_verified(self, dev):
        """python-fido2's client registers and authenticates; its Fido2Server verifies both."""
        from fido2.client import DefaultClientDataCollector, Fido2Client
        from fido2.hid import open_device
        from fido2.server import Fido2Server
        from fido2.webauthn import PublicKeyCredentialRpEntity, UserVerificationRequirement
        server = Fido2Server(PublicKeyCredentialRpEntity(id=RP_ID, name="ferrokey e2e"))
        client = Fido2Client(open_device(dev), DefaultClientDataCollector(ORIGIN))
        user = {"id": os.urandom(16), "name": "transport", "displayName": "transport"}
        options, state = server.register_begin(
            user, user_verification=UserVerificationRequirement.DISCOURAGED)
        made = client.make_credential(options.public_key)
        auth = server.register_complete(state, made)
        options, state = server.authenticate_begin(
            [auth.credential_data], user_verification=UserVerificationRequirement.DISCOURAGED)
        got = client.get_assertion(options.public_key).get_response(0)
        server.authenticate_complete(state, [auth.credential_data], got)

    def keepalive_and_cancel(self, dev):
        """A request waiting for a touch gets KEEPALIVE(UPNEEDED) reports, and
        CTAPHID_CANCEL ends it with KEEPALIVE_CANCEL (python-fido2's Ctap2)."""
        import threading
        from fido2.ctap import CtapError
        from fido2.ctap2 import Ctap2
        from fido2.hid import open_device
        ctap2 = Ctap2(open_device(dev))
        statuses = []
        cancel = threading.Event()
        timer = threading.Timer(1.5, cancel.set)
        timer.start()
        try:
            ctap2.make_credential(
                os.urandom(32), {"id": RP_ID, "name": RP_ID}, {"id": b"cancel", "name": "cancel"},
                [{"type": "public-key", "alg": -7}], event=cancel, on_keepalive=statuses.append)
        except CtapError as e:
            if e.code != CtapError.ERR.KEEPALIVE_CANCEL:
                raise Fail(f"cancelled makeCredential ended with {e.code!r}")
        else:
            raise Fail("makeCredential completed without a touch")
        finally:
            timer.cancel()
        if 2 not in statuses:  # STATUS_UPNEEDED
            raise Fail(f"no KEEPALIVE(UPNEEDED) while waiting: {statuses}")
        return statuses

    def stop_serving(self, proc, nodes):
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise Fail("ferrokey did not stop on SIGTERM")
        if proc.returncode != 0:
            raise Fail(f"ferrokey exited {proc.returncode} on SIGTERM")
        for node in nodes:
            self.wait_gone(node)

    @scenario("uhid-transport")
    def s_uhid(self):
        """Two keys as uhid devices in the guest: libfido2 and python-fido2 on
        each; stopping ferrokey removes the nodes."""
        proc, nodes, took = self.serve_in_guest("uhid", keys=2)
        try:
            listed = run(["fido2-token", "-L"]).stdout
            for node in nodes:
                if node + ":" not in listed:
                    raise Fail(f"{node} not in fido2-token -L: {listed!r}")
            fmt = self.ceremonies(nodes[0])
            self.ceremonies(nodes[1])
            self.timed("python-fido2", self.python_fido2_verified, nodes[1])
        except BaseException:
            proc.kill()
            raise
        self.stop_serving(proc, nodes)
        # A key that waits for a touch: keepalives, then CANCEL.
        proc, touch, _ = self.serve_in_guest("uhid", extra=("--presence", "touch"))
        try:
            statuses = self.timed("keepalive and cancel", self.keepalive_and_cancel, touch[0])
        except BaseException:
            proc.kill()
            raise
        self.stop_serving(proc, touch)
        return (f"{len(nodes)} keys {nodes}, start to hidraw {took:.2f}s, fmt={fmt}, "
                f"python-fido2 verified; keepalive statuses {statuses}, CANCEL answered")

    @scenario("attach-transport-no-port")
    def s_attach(self):
        """--transport attach with no usbip on PATH: no TCP port open, libfido2
        works, and kill -9 leaves no vhci port behind."""
        if any(os.path.exists(os.path.join(d, "usbip")) for d in ["/var/empty"]):
            raise Fail("usbip found in the test PATH")
        before = vhci_ports_in_use()
        control = Path(tempfile.mkdtemp(prefix="ferrokey-control-", dir="/tmp")) / "api.sock"
        proc, nodes, took = self.serve_in_guest("attach", env={"PATH": "/var/empty"},
                                                extra=("--control", f"unix:{control}"))
        try:
            listening = run(["ss", "-Hltnp"]).stdout
            if f"pid={proc.pid}," in listening:
                raise Fail(f"ferrokey listens on a TCP port: {listening!r}")
            if len(vhci_ports_in_use()) != len(before) + 1:
                raise Fail(f"vhci ports in use: {vhci_ports_in_use()} (before: {before})")
            fmt = self.ceremonies(nodes[0])
            self.timed("python-fido2", self.python_fido2_verified, nodes[0])
            added = self.timed("key added through the API: hidraw", self.attach_added_key,
                               control, before)
            nodes.append(added)
        except BaseException:
            proc.kill()
            raise
        proc.kill()  # SIGKILL: no chance to detach
        proc.wait()
        for node in nodes:
            self.wait_gone(node)
        end = time.monotonic() + 15
        while vhci_ports_in_use() != before:
            if time.monotonic() > end:
                raise Fail(f"vhci ports still in use after kill -9: {vhci_ports_in_use()}")
            time.sleep(0.1)
        return (f"start to hidraw {took:.2f}s, no TCP listener, fmt={fmt}, python-fido2 verified; "
                f"a key added through the control API attached too ({nodes[1]}); "
                f"kill -9 freed the vhci ports")

    def attach_added_key(self, control, before):
        """Adds a key through the control API (a Unix socket: still no TCP
        port); with --transport attach it is attached too. Returns its node,
        after libfido2's getInfo on it."""
        key_id = unix_json(control, "POST", "/webauthn/authenticator",
                           {"protocol": "ctap2_1", "transport": "usb"})["value"]
        described = unix_json(control, "GET", f"/webauthn/authenticator/{key_id}")
        serial = described["value"]["serial"]
        end = time.monotonic() + 30
        while True:
            node = next((f"/dev/{n}" for n in sorted(os.listdir("/dev")) if n.startswith("hidraw")
                         and serial in Path(f"/sys/class/hidraw/{n}/device/uevent").read_text()),
                        None)
            if node and len(vhci_ports_in_use()) == len(before) + 2:
                break
            if time.monotonic() > end:
                raise Fail(f"key {key_id} (serial {serial}) added through the API never got a "
                           f"hidraw node; vhci ports in use {vhci_ports_in_use()}")
            time.sleep(0.1)
        info = run(["fido2-token", "-I", node]).stdout
        if "FIDO_2_1" not in info:
            raise Fail(f"fido2-token -I {node}: {info[:200]!r}")
        return node

    @scenario("udev-rule")
    def s_udev_rule(self):
        """The rule `ferrokey install-udev` writes, loaded by a real udevd
        (from /run/udev/rules.d: the chroot's /etc is read-only, and udevadm
        control/trigger/settle refuse to run in a chroot, so udevd is started
        after the rule is written and the event is triggered through sysfs): a
        key's hidraw node is 0600 without the rule and 0660 (its MODE) with it."""
        udevd = "/lib/systemd/systemd-udevd"
        if not os.path.exists(udevd):
            raise Fail(f"{udevd} missing on the host (Debian package udev)")
        rules = Path("/run/udev/rules.d")
        rules.mkdir(parents=True, exist_ok=True)
        for stale in rules.glob("70-ferrokey.rules"):
            stale.unlink()
        proc, nodes, _ = self.serve_in_guest("uhid")
        daemon = None
        try:
            without = os.stat(nodes[0]).st_mode & 0o777
            if without != 0o600:
                raise Fail(f"{nodes[0]} is {without:o} before the rule (expected 600)")
            binary = self.cfg.get("ferrokey")
            out = run([binary, "install-udev", "--rules-dir", str(rules), "--no-reload"]).stdout
            daemon = subprocess.Popen([udevd], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            uevent = Path("/sys/class/hidraw") / Path(nodes[0]).name / "uevent"
            end = time.monotonic() + 15
            while (os.stat(nodes[0]).st_mode & 0o777) != 0o660:
                if time.monotonic() > end:
                    raise Fail(f"{nodes[0]} is {os.stat(nodes[0]).st_mode & 0o777:o} with the rule "
                               f"(expected 660); install-udev said {out!r}")
                uevent.write_text("change")
                time.sleep(0.5)
            self.stop_serving(proc, nodes)
            proc = None
        finally:
            if proc is not None:
                proc.kill()
            if daemon is not None:
                daemon.terminate()
                daemon.wait(timeout=10)
            for rule in rules.glob("70-ferrokey.rules"):
                rule.unlink()
        return f"{nodes[0]}: 600 without the rule, 660 once udevd applied it"

    @scenario("doctor-missing-module")
    def s_doctor(self):
        """With uhid unloaded, `ferrokey doctor --transport uhid` fails and prints the fix."""
        binary = self.cfg.get("ferrokey")
        ok_run = run([binary, "doctor", "--transport", "uhid"], check=False)
        if ok_run.returncode != 0:
            raise Fail(f"doctor with uhid loaded exited {ok_run.returncode}: {ok_run.stdout[-400:]!r}")
        run(["rmmod", "uhid"])
        try:
            out = run([binary, "doctor", "--transport", "uhid"], check=False)
        finally:
            # Best effort (the chroot may not reach the guest's modules): the
            # scenarios that serve uhid keys run before this one.
            run(["modprobe", "uhid"], check=False)
        if out.returncode == 0:
            raise Fail(f"doctor said uhid works without the module: {out.stdout!r}")
        lines = [line.strip() for line in out.stdout.splitlines()]
        at = next((i for i, line in enumerate(lines) if "kernel module uhid" in line), None)
        fix = lines[at + 1] if at is not None and at + 1 < len(lines) else ""
        if not fix.startswith("fix:"):
            raise Fail(f"doctor output names no fix for uhid: {out.stdout!r}")
        return f"exit {out.returncode}; {fix}"

    def main(self):
        if not self.dev:
            for name in SCENARIOS:
                self.report(name, False, "no hidraw device attached", 0)
            return 1
        only = os.environ.get("E2E_ONLY", "")
        for name in SCENARIOS:
            if only and name not in only.split(","):
                continue
            self.run_scenario(name, getattr(self, _METHODS[name]))
        return 0



# The profile scenarios (issue 13), after the ones above.
import guest_profiles  # noqa: E402
guest_profiles.register(Guest, scenario, {"Fail": Fail, "run": run})


if __name__ == "__main__":
    sys.exit(Guest(sys.argv[1]).main())
