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
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

# Scenario names, in the order they run; kernel_e2e.py counts any that did not
# report as failed.
SCENARIOS = [
    "libfido2-list",
    "libfido2-info",
    "libfido2-cred-nonresident",
    "libfido2-cred-resident",
    "libfido2-assert-counter",
    "python-fido2-webauthn",
    "reattach-assert",
    "kill9-restart-keeps-state",
    "pin-lockout-needs-reattach",
    "attach-local-helper",
    "reset-forgets-credentials",
    "presence-deny",
    "uhid-transport",
    "attach-transport-no-port",
    "doctor-missing-module",
]

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

    def scenario(self, name, fn):
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

    def s_cred_nonresident(self):
        cred_id, pem, fmt, count = self.make_cred(self.dev)
        self.state["nr"] = {"cred_id": cred_id, "pem": str(pem), "count": count}
        return f"fmt={fmt} cred_id_len={len(base64.b64decode(cred_id))} count={count}"

    def s_cred_resident(self):
        rp = "rk.example.com"
        cred_id, pem, fmt, count = self.make_cred(self.dev, rp=rp, resident=True)
        # The resident credential must be discoverable: an assertion without allowList.
        n = self.assertion(self.dev, pem, None, rp=rp)
        self.state["rk"] = {"cred_id": cred_id, "pem": str(pem), "rp": rp}
        return f"fmt={fmt} discoverable assertion count={n}"

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
        return f"fmt={fmt}, sign count {count1} -> {count2} (py_webauthn checks on the host)"

    def s_reattach(self):
        nr = self.state.get("nr") or self._fresh_cred()
        self.timed("detach", self.detach, self.vport, self.dev)
        self.dev, self.vport = self.timed("attach", self.attach, self.key_a)
        n = self.assertion(self.dev, nr["pem"], nr["cred_id"])
        if not n > nr["count"]:
            raise Fail(f"counter did not increase across re-attach: {nr['count']} -> {n}")
        nr["count"] = n
        return f"re-attached as {self.dev} (vhci port {self.vport}); counter -> {n}"

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

    def s_reset(self):
        nr = self.state.get("nr") or self._fresh_cred()
        # A reset must come soon after power-up: re-plug first (detach + attach).
        self.timed("detach", self.detach, self.vport, self.dev)
        self.dev, self.vport = self.timed("attach", self.attach, self.key_a)
        self.timed("fido2-token -R", run, ["fido2-token", "-R", self.dev])
        lines = [b64(os.urandom(32)), RP_ID, nr["cred_id"]]
        p = self.timed("fido2-assert -G (after reset)", run, ["fido2-assert", "-G", self.dev],
                       stdin="\n".join(lines) + "\n", check=False)
        if p.returncode == 0:
            raise Fail("assertion with a pre-reset credential succeeded")
        err = p.stderr.strip().splitlines()[-1:] or [""]
        return f"old credential refused: {err[0]}"

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
            accepted = ("FIDO_ERR_OPERATION_DENIED", "FIDO_ERR_USER_ACTION_TIMEOUT",
                        "FIDO_ERR_ACTION_TIMEOUT", "FIDO_ERR_NOT_ALLOWED")
            found = [a for a in accepted if a in p.stderr]
            if not found:
                raise Fail(f"unexpected error: {p.stderr.strip()[-300:]}")
            return f"{dev_b}: fido2-cred -M failed with {found[0]}"
        finally:
            try:
                self.detach(vport_b, dev_b)
            except Exception:
                pass

    # ------------------------------------------------------------ transports in the guest
    def serve_in_guest(self, transport, keys=1, env=None):
        """Starts the host's ferrokey INSIDE the guest (--transport uhid|attach);
        returns (process, hidraw nodes, seconds until the last node was announced)."""
        binary = self.cfg.get("ferrokey")
        if not binary:
            raise Fail("e2e.json names no ferrokey binary")
        # tmpfs: the work share (9p) has no flock for the state's lock.
        state = Path(tempfile.mkdtemp(prefix=f"ferrokey-{transport}-", dir="/tmp"))
        log_path = self.tmp / f"serve-{transport}.log"
        full_env = dict(os.environ, RUST_LOG="info", **(env or {}))
        t0 = time.monotonic()
        with open(log_path, "w") as log_file:
            proc = subprocess.Popen(
                [binary, "serve", "--transport", transport, "--keys", str(keys),
                 "--state-dir", str(state)],
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
        return f"{len(nodes)} keys {nodes}, start to hidraw {took:.2f}s, fmt={fmt}, python-fido2 verified"

    def s_attach(self):
        """--transport attach with no usbip on PATH: no TCP port open, libfido2
        works, and kill -9 leaves no vhci port behind."""
        if any(os.path.exists(os.path.join(d, "usbip")) for d in ["/var/empty"]):
            raise Fail("usbip found in the test PATH")
        before = vhci_ports_in_use()
        proc, nodes, took = self.serve_in_guest("attach", env={"PATH": "/var/empty"})
        try:
            listening = run(["ss", "-Hltnp"]).stdout
            if f"pid={proc.pid}," in listening:
                raise Fail(f"ferrokey listens on a TCP port: {listening!r}")
            if len(vhci_ports_in_use()) != len(before) + 1:
                raise Fail(f"vhci ports in use: {vhci_ports_in_use()} (before: {before})")
            fmt = self.ceremonies(nodes[0])
            self.timed("python-fido2", self.python_fido2_verified, nodes[0])
        except BaseException:
            proc.kill()
            raise
        proc.kill()  # SIGKILL: no chance to detach
        proc.wait()
        self.wait_gone(nodes[0])
        end = time.monotonic() + 15
        while vhci_ports_in_use() != before:
            if time.monotonic() > end:
                raise Fail(f"vhci ports still in use after kill -9: {vhci_ports_in_use()}")
            time.sleep(0.1)
        return (f"start to hidraw {took:.2f}s, no TCP listener, fmt={fmt}, python-fido2 verified; "
                f"kill -9 freed the vhci port")

    def s_doctor(self):
        """With uhid unloaded, `ferrokey doctor --transport uhid` fails and prints the fix."""
        binary = self.cfg.get("ferrokey")
        ok_run = run([binary, "doctor", "--transport", "uhid"], check=False)
        if ok_run.returncode != 0:
            raise Fail(f"doctor with uhid loaded exited {ok_run.returncode}: {ok_run.stdout[-400:]!r}")
        run(["rmmod", "uhid"])
        out = run([binary, "doctor", "--transport", "uhid"], check=False)
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
        steps = dict(zip(SCENARIOS, [
            self.s_list, self.s_info, self.s_cred_nonresident, self.s_cred_resident,
            self.s_assert_counter, self.s_python_fido2, self.s_reattach, self.s_kill9,
            self.s_pin_lockout, self.s_attach_local, self.s_reset, self.s_deny,
            self.s_uhid, self.s_attach, self.s_doctor]))
        only = os.environ.get("E2E_ONLY", "")
        for name in SCENARIOS:
            if only and name not in only.split(","):
                continue
            self.scenario(name, steps[name])
        return 0


if __name__ == "__main__":
    sys.exit(Guest(sys.argv[1]).main())
