"""The lifecycle scenarios of issue 13, as a relying party meets them, on the
host: keys served by a real `ferrokey serve` over USB/IP (python-fido2 speaks
to them through tests/attestation/usbip_hid.py), driven through the control
API, and every sign-in checked by py_webauthn (which verifies the signature
with the public key registered originally and checks the counter).

  FERROKEY_BIN=target/debug/ferrokey .venv/bin/python -m pytest tests/lifecycle

- clone: both copies used -> the counters diverge and py_webauthn rejects the
  one that is behind; non-resident credential IDs work on the clone too;
- device-bound keys (ferrokey:exportable false, --no-export) refuse clone and
  export, and --no-export is not lifted by a restart without it;
- migration: a passkey exported (CXF) from a security-key key and imported into
  a backed-up key with UV keeps signing in; used passkeys are left out of an
  export as CXF says unless includeUsed asks;
- bad CXF is refused and nothing is imported (also when a later passkey clashes);
- the CLI export/import round trip on stopped keys;
- device loss and recovery: two keys on one account, one removed, the other
  signs in, the removed one is gone.
"""
import base64
import json
import os
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "attestation"))
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from e2e_common import Key, ferrokey_binary, free_port, usbip_devlist  # noqa: E402
from fido2.client import DefaultClientDataCollector, Fido2Client  # noqa: E402
from fido2.webauthn import (AttestationConveyancePreference, AuthenticatorSelectionCriteria,  # noqa: E402
                            PublicKeyCredentialCreationOptions, PublicKeyCredentialDescriptor,
                            PublicKeyCredentialParameters, PublicKeyCredentialRequestOptions,
                            PublicKeyCredentialRpEntity, PublicKeyCredentialType,
                            PublicKeyCredentialUserEntity, ResidentKeyRequirement,
                            UserVerificationRequirement)
from usbip_hid import UsbipError, open_device  # noqa: E402
from webauthn import verify_authentication_response, verify_registration_response  # noqa: E402
from webauthn.helpers.exceptions import InvalidAuthenticationResponse  # noqa: E402

RP_ID = "example.com"
ORIGIN = "https://example.com"
BASE = {"protocol": "ctap2_1", "transport": "usb"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def migration_target():
    """The Authenticator Configuration of the key passkeys migrate to: a
    passkey provider (profile synced-passkey: BE=1, BS=1, built-in UV,
    attestation none, signCount always 0)."""
    return {**BASE, "ferrokey:profile": "synced-passkey"}


@pytest.fixture(scope="module")
def binary():
    return ferrokey_binary()  # a missing binary is an error of every test


class Served:
    """`ferrokey serve` with the control API, on free ports, its own state dir."""

    def __init__(self, binary, state_dir: Path, *extra):
        logs = state_dir.parent / "logs"
        logs.mkdir(exist_ok=True)
        self.binary, self.state_dir = binary, state_dir
        self.control = free_port()
        self.key = Key(binary, state_dir.name, state_dir, logs, "auto",
                       extra_args=["--attestation", "none", "--control", f"127.0.0.1:{self.control}",
                                   *extra])
        self.key.start()

    def api(self, method, path, body=None):
        """(HTTP status, JSON answer) of a control API call."""
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(f"http://127.0.0.1:{self.control}{path}", data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def ok(self, method, path, body=None):
        status, answer = self.api(method, path, body)
        assert status == 200, f"{method} {path}: {status} {answer}"
        return answer["value"]

    def add(self, config):
        return self.ok("POST", "/webauthn/authenticator", config)

    def describe(self, key_id):
        return self.ok("GET", f"/webauthn/authenticator/{key_id}")

    def device(self, key_id):
        return open_device(self.key.port, self.describe(key_id)["busid"])

    def stop(self):
        self.key.stop()


@pytest.fixture
def serve(binary, tmp_path):
    started = []

    def start(*extra, name="state"):
        s = Served(binary, tmp_path / name, *extra)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


class RelyingParty:
    """A relying party's account records, every ceremony verified by py_webauthn."""

    def __init__(self):
        self.user_id = os.urandom(16)
        self.credentials = {}  # credential id -> {"public_key", "sign_count"}

    def register(self, device, resident=True, uv=UserVerificationRequirement.DISCOURAGED):
        client = Fido2Client(device, DefaultClientDataCollector(ORIGIN))
        challenge = os.urandom(32)
        options = PublicKeyCredentialCreationOptions(
            rp=PublicKeyCredentialRpEntity(id=RP_ID, name="ferrokey lifecycle test"),
            user=PublicKeyCredentialUserEntity(id=self.user_id, name="alice", display_name="Alice"),
            challenge=challenge,
            pub_key_cred_params=[PublicKeyCredentialParameters(type=PublicKeyCredentialType.PUBLIC_KEY,
                                                               alg=-7)],
            attestation=AttestationConveyancePreference.NONE,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED if resident else ResidentKeyRequirement.DISCOURAGED,
                user_verification=uv),
            timeout=30000,
        )
        reg = client.make_credential(options)
        verified = verify_registration_response(
            credential=dict(reg), expected_challenge=challenge, expected_origin=ORIGIN,
            expected_rp_id=RP_ID, require_user_verification=False)
        self.credentials[verified.credential_id] = {"public_key": verified.credential_public_key,
                                                    "sign_count": verified.sign_count}
        return verified.credential_id

    def sign_in(self, device, allow=None, uv=UserVerificationRequirement.DISCOURAGED):
        """Signs in (allowList `allow`, or discoverable with None); verified with the
        public key registered for the credential used and its stored counter. Returns
        (credential id, py_webauthn's VerifiedAuthentication, user handle)."""
        client = Fido2Client(device, DefaultClientDataCollector(ORIGIN))
        challenge = os.urandom(32)
        options = PublicKeyCredentialRequestOptions(
            challenge=challenge, rp_id=RP_ID, timeout=30000, user_verification=uv,
            allow_credentials=None if allow is None else [
                PublicKeyCredentialDescriptor(type=PublicKeyCredentialType.PUBLIC_KEY, id=c) for c in allow])
        response = client.get_assertion(options).get_response(0)
        credential_id = bytes(response.raw_id)
        record = self.credentials[credential_id]
        verified = verify_authentication_response(
            credential=dict(response), expected_challenge=challenge, expected_origin=ORIGIN,
            expected_rp_id=RP_ID, credential_public_key=record["public_key"],
            credential_current_sign_count=record["sign_count"], require_user_verification=False)
        record["sign_count"] = verified.new_sign_count
        return credential_id, verified, response.response.user_handle


class Events:
    """A key's Server-Sent Events stream (`GET .../authenticator/{id}/events`)."""

    def __init__(self, served, key_id):
        url = f"http://127.0.0.1:{served.control}/webauthn/authenticator/{key_id}/events"
        self.stream = urllib.request.urlopen(url, timeout=15)

    def next_named(self, name):
        """The data of the next event called `name` (other events are passed over)."""
        for _ in range(10000):
            line = self.stream.readline()
            assert line, f"the event stream ended before a {name} event"
            if line.startswith(b"data: "):
                event = json.loads(line[len(b"data: "):])
                if event.get("event") == name:
                    return event["data"]
        raise AssertionError(f"no {name} event")

    def close(self):
        self.stream.close()


def credentials_of(served, key_id):
    return served.ok("GET", f"/webauthn/authenticator/{key_id}/credentials")


# --- clone -----------------------------------------------------------------

def test_a_clone_signs_in_until_the_counters_diverge_and_the_rp_rejects_the_older_one(serve):
    s = serve()
    rp = RelyingParty()
    resident = rp.register(s.device("1"))
    other = rp.register(s.device("1"), resident=False)
    _, first, _ = rp.sign_in(s.device("1"), allow=[resident])
    assert first.new_sign_count > 0
    events = Events(s, "1")
    clone = s.ok("POST", "/webauthn/authenticator/1/clone")
    cloned = events.next_named("cloned")
    events.close()
    assert cloned["cloneId"] == clone["authenticatorId"] and cloned["busid"] == clone["busid"]
    original = s.describe("1")
    assert clone["authenticatorId"] != "1"
    assert clone["busid"] != original["busid"] and clone["serial"] != original["serial"]
    assert clone["stateDir"] != original["stateDir"] and clone["aaguid"] == original["aaguid"]
    assert clone["busid"] in [d[0] for d in usbip_devlist(s.key.port)]
    # The clone holds the same credentials and counters.
    held = {c["credentialId"]: c["signCount"] for c in credentials_of(s, clone["authenticatorId"])}
    assert held.get(b64(resident)) == first.new_sign_count, held
    assert b64(other) in held
    # The attacker uses the clone: accepted (same key, the counter moves on).
    used, on_clone, _ = rp.sign_in(s.device(clone["authenticatorId"]), allow=[resident])
    assert used == resident and on_clone.new_sign_count > first.new_sign_count
    # A non-resident credential ID works on the clone too (same device secret).
    used, _, _ = rp.sign_in(s.device(clone["authenticatorId"]), allow=[other])
    assert used == other
    # The owner's key is now behind: its next counter is not above the RP's
    # (python-fido2's silent pre-flight moves both keys' counters alike).
    with pytest.raises(InvalidAuthenticationResponse, match="(?i)sign count"):
        rp.sign_in(s.device("1"), allow=[resident])
    assert credentials_of(s, "1")[0]["signCount"] >= 1


def test_device_bound_keys_refuse_clone_and_export(serve):
    s = serve()
    bound = s.add({**BASE, "ferrokey:exportable": False})
    RelyingParty().register(s.device(bound))
    keys_before = len(s.ok("GET", "/webauthn/authenticators"))
    for method, path in [("POST", "clone"), ("GET", "export")]:
        status, answer = s.api(method, f"/webauthn/authenticator/{bound}/{path}")
        assert status == 403, (path, status, answer)
        assert answer["value"]["error"] == "unsupported operation"
        assert "device-bound" in answer["value"]["message"]
    assert len(s.ok("GET", "/webauthn/authenticators")) == keys_before
    assert [c.get("privateKey") for c in credentials_of(s, bound)] == [None]


def test_no_export_is_not_lifted_by_a_restart_without_it(serve, tmp_path):
    s = serve("--no-export", name="bound")
    RelyingParty().register(s.device("1"))
    assert s.api("GET", "/webauthn/authenticator/1/export")[0] == 403
    s.stop()
    again = serve(name="bound")
    status, answer = again.api("GET", "/webauthn/authenticator/1/export")
    assert status == 403 and "no-export" in answer["value"]["message"], answer
    assert again.api("POST", "/webauthn/authenticator/1/clone")[0] == 403
    again.stop()
    out = subprocess.run([again.binary, "export", "--cxf", "--state-dir", str(tmp_path / "bound")],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "device-bound" in out.stderr, out.stderr
    assert out.stdout == ""


# --- migration ---------------------------------------------------------------

def test_a_migrated_passkey_keeps_signing_in_with_the_public_key_registered_originally(serve):
    s = serve()
    rp = RelyingParty()
    passkey = rp.register(s.device("1"))
    document = s.ok("GET", "/webauthn/authenticator/1/export")
    exported = [c for a in document["accounts"] for i in a["items"] for c in i["credentials"]]
    assert [(c["type"], c["rpId"], unb64(c["credentialId"]), unb64(c["userHandle"])) for c in exported] == \
        [("passkey", RP_ID, passkey, rp.user_id)]
    assert document["version"]["major"] == 1
    target = s.add(migration_target())
    imported = s.ok("POST", f"/webauthn/authenticator/{target}/import", document)
    assert imported == {"imported": [b64(passkey)], "ignored": 0}
    # Sign-in on the new key: discoverable, with UV, verified against the original public key.
    used, verified, user_handle = rp.sign_in(s.device(target), uv=UserVerificationRequirement.REQUIRED)
    assert used == passkey and bytes(user_handle) == rp.user_id
    assert verified.user_verified
    assert verified.credential_backed_up and verified.credential_device_type == "multi_device"
    # The source key still signs in too (a copy, not a move).
    assert rp.sign_in(s.device("1"), allow=[passkey])[0] == passkey


def test_used_passkeys_are_left_out_of_an_export_unless_asked_for(serve):
    s = serve()
    rp = RelyingParty()
    passkey = rp.register(s.device("1"))
    _, used, _ = rp.sign_in(s.device("1"), allow=[passkey])
    events = Events(s, "1")
    document = s.ok("GET", "/webauthn/authenticator/1/export")
    assert [i for a in document["accounts"] for i in a["items"]] == []
    exported = events.next_named("exported")
    events.close()
    assert exported["exported"] == 0
    assert exported["skipped"] == [{"credentialId": b64(passkey), "rpId": RP_ID,
                                    "signCount": used.new_sign_count}]
    assert "privateKey" not in json.dumps(exported) and "key" not in exported
    document = s.ok("GET", "/webauthn/authenticator/1/export?includeUsed=true")
    ids = [c["credentialId"] for a in document["accounts"] for i in a["items"] for c in i["credentials"]]
    assert ids == [b64(passkey)]
    status, answer = s.api("GET", "/webauthn/authenticator/1/export?includeUsed=maybe")
    assert status == 400 and answer["value"]["error"] == "invalid argument"


def test_bad_cxf_is_refused_and_nothing_is_imported(serve):
    s = serve()
    RelyingParty().register(s.device("1"))
    RelyingParty().register(s.device("1"))
    good = s.ok("GET", "/webauthn/authenticator/1/export")
    assert len(good["accounts"][0]["items"]) == 2
    target = s.add(migration_target())

    def refused(body, *needles):
        status, answer = s.api("POST", f"/webauthn/authenticator/{target}/import", body)
        assert status == 400, (status, answer)
        assert answer["value"]["error"] == "invalid argument"
        for needle in needles:
            assert needle in answer["value"]["message"], answer
        assert credentials_of(s, target) == []

    refused(b"{not json", "not JSON")
    refused({"hello": 1}, "not a CXF document")
    broken = json.loads(json.dumps(good))
    broken["accounts"][0]["items"][1]["credentials"][0]["key"] = b64(b"not a key")
    refused(broken, "accounts[0].items[1].credentials[0]", "PKCS#8")
    newer = json.loads(json.dumps(good))
    newer["version"]["major"] = 2
    refused(newer, "version 2")
    # The first passkey is fine but the second is already on the key: all or nothing.
    first = json.loads(json.dumps(good))
    first["accounts"][0]["items"] = first["accounts"][0]["items"][:1]
    s.ok("POST", f"/webauthn/authenticator/{target}/import", first)
    assert len(credentials_of(s, target)) == 1
    status, answer = s.api("POST", f"/webauthn/authenticator/{target}/import",
                           {"value": {**good, "accounts": [{**good["accounts"][0],
                                                            "items": good["accounts"][0]["items"][::-1]}]}})
    assert status == 400 and "nothing was imported" in answer["value"]["message"], answer
    assert len(credentials_of(s, target)) == 1
    assert s.api("GET", "/webauthn/authenticator/1/export")[0] == 200  # the server is fine


def test_cli_export_and_import_round_trip_on_stopped_keys(serve, tmp_path):
    source = serve(name="source")
    rp = RelyingParty()
    # A key holds its state while it is powered (imported over USB/IP): keep
    # the import open, or the key powers off when the client lets go of it
    # (an unplug) and its state is free to read.
    device = source.device("1")
    passkey = rp.register(device)
    running = subprocess.run([source.binary, "export", "--cxf", "--state-dir", str(tmp_path / "source")],
                             capture_output=True, text=True)
    assert running.returncode != 0 and "in use" in running.stderr, running.stderr
    device.close()
    source.stop()
    target = serve(name="target")  # creates the target key's state
    target.stop()
    out = tmp_path / "passkeys.cxf.json"
    exported = subprocess.run([source.binary, "export", "--cxf", "--state-dir", str(tmp_path / "source"),
                               "--out", str(out)], capture_output=True, text=True)
    assert exported.returncode == 0, exported.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "exported 1 passkey" in exported.stderr
    assert out.read_text().count('"type": "passkey"') == 1
    imported = subprocess.run([source.binary, "import", "--cxf", str(out), "--state-dir",
                               str(tmp_path / "target"), "--backed-up"], capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr
    assert b64(passkey) in imported.stdout
    again = subprocess.run([source.binary, "import", "--cxf", str(out), "--state-dir",
                            str(tmp_path / "target")], capture_output=True, text=True)
    assert again.returncode != 0 and "nothing was imported" in again.stderr, again.stderr
    target = serve(name="target")
    used, verified, _ = rp.sign_in(target.device("1"))
    assert used == passkey and verified.credential_backed_up
    assert [c["credentialId"] for c in credentials_of(target, "1")] == [b64(passkey)]


# --- device loss -------------------------------------------------------------

def test_device_loss_two_keys_one_removed_the_other_signs_in(serve, tmp_path):
    s = serve()
    rp = RelyingParty()
    spare = s.add(BASE)
    primary_cred = rp.register(s.device("1"))
    spare_info = s.describe(spare)
    spare_cred = rp.register(s.device(spare))
    assert primary_cred != spare_cred
    # The spare key is lost: unplugged and its state deleted.
    s.ok("DELETE", f"/webauthn/authenticator/{spare}")
    status, answer = s.api("GET", f"/webauthn/authenticator/{spare}")
    assert status == 404 and answer["value"]["error"] == "no such authenticator"
    assert spare_info["busid"] not in [d[0] for d in usbip_devlist(s.key.port)]
    assert not Path(spare_info["stateDir"]).exists()
    # Sign-in with the remaining key, the account listing both credentials.
    used, verified, _ = rp.sign_in(s.device("1"), allow=[spare_cred, primary_cred])
    assert used == primary_cred and verified.new_sign_count > 0
    with pytest.raises((UsbipError, OSError)):
        open_device(s.key.port, spare_info["busid"]).close()
