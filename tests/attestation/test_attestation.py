"""Attestation and metadata of a real `ferrokey serve`, checked on the host with
python-fido2's strict verifiers (no guest needed: python-fido2 speaks to the key
over USB/IP through usbip_hid.py).

  FERROKEY_BIN=target/debug/ferrokey .venv/bin/python -m pytest tests/attestation

For each --attestation mode (none, self, batch, chain): a CTAP2 registration
through Fido2Client, verified with PackedAttestation / NoneAttestation and
verify_x509_chain up to the `ferrokey ca` root, and by py_webauthn; a U2F
registration through python-fido2's Ctap1, verified with FidoU2FAttestation.
Then `ferrokey mds`: parse_blob against the MDS root, MdsAttestationVerifier
accepting a fresh registration and refusing one whose AAGUID is not in the
BLOB, or whose attestation chains to another root; per profile and option
(ctap2.0, strict, --bio, --enterprise, --uv auto): the statement's getInfo is
what the key served that way answers, and the same accept/refuse; a u2f key's
U2F registration found by its certificate's key identifier; a synced-passkey
key refused by `ferrokey mds` (all-zero AAGUID, attestation none). And the defect this guards:
the batch certificate of the previous version is refused by python-fido2.
"""
import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from attestation_checks import (pem_to_der, verify_registration, verify_u2f_registration,  # noqa: E402
                                verify_with_metadata)
from e2e_common import Key, ferrokey_binary  # noqa: E402
from fido2.attestation import UntrustedAttestation  # noqa: E402
from fido2.client import DefaultClientDataCollector, Fido2Client  # noqa: E402
from fido2.ctap1 import Ctap1  # noqa: E402
from fido2.webauthn import (AttestationConveyancePreference, AuthenticatorSelectionCriteria,  # noqa: E402
                            PublicKeyCredentialCreationOptions, PublicKeyCredentialParameters,
                            PublicKeyCredentialRpEntity, PublicKeyCredentialType,
                            PublicKeyCredentialUserEntity, UserVerificationRequirement)
from usbip_hid import open_device  # noqa: E402

RP_ID = "example.com"
ORIGIN = "https://example.com"
OLD_CA = REPO / "firmware-sim" / "src" / "attestation" / "testdata" / "ca-before-strict-der"


@pytest.fixture(scope="module")
def binary():
    return ferrokey_binary()  # a missing binary is an error of every test


class Served:
    """`ferrokey serve` on a free port with its own state dir."""

    def __init__(self, binary, state_dir: Path, mode: str, extra=()):
        self.state_dir = state_dir
        logs = state_dir.parent / "logs"
        logs.mkdir(exist_ok=True)
        self.key = Key(binary, f"{state_dir.name}-{mode}", state_dir, logs, "auto",
                       extra_args=["--attestation", mode, *extra])
        self.key.start()
        self.binary = binary

    def device(self):
        return open_device(self.key.port, self.key.busid)

    def root_der(self) -> bytes:
        out = subprocess.run([self.binary, "ca", "--state-dir", str(self.state_dir)],
                             capture_output=True, check=True)
        return pem_to_der(out.stdout)

    def stop(self):
        self.key.stop()


@pytest.fixture
def serve(binary, tmp_path):
    started = []

    def start(mode, name="state", extra=()):
        state = tmp_path / name
        state.mkdir(mode=0o700, exist_ok=True)
        s = Served(binary, state, mode, extra)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def register(device, uv=UserVerificationRequirement.DISCOURAGED):
    """Fido2Client.make_credential with attestation "direct"; (response, challenge)."""
    client = Fido2Client(device, DefaultClientDataCollector(ORIGIN))
    challenge = os.urandom(32)
    options = PublicKeyCredentialCreationOptions(
        rp=PublicKeyCredentialRpEntity(id=RP_ID, name="ferrokey attestation test"),
        user=PublicKeyCredentialUserEntity(id=os.urandom(16), name="alice", display_name="Alice"),
        challenge=challenge,
        pub_key_cred_params=[PublicKeyCredentialParameters(type=PublicKeyCredentialType.PUBLIC_KEY,
                                                           alg=-7)],
        attestation=AttestationConveyancePreference.DIRECT,
        authenticator_selection=AuthenticatorSelectionCriteria(user_verification=uv),
        timeout=30000,
    )
    return client.make_credential(options), challenge


def client_data_hash(reg) -> bytes:
    return hashlib.sha256(bytes(reg.response.client_data)).digest()


def py_webauthn_verify(reg, challenge, root_pem):
    from webauthn import verify_registration_response
    from webauthn.helpers.structs import AttestationFormat
    return verify_registration_response(
        credential=dict(reg), expected_challenge=challenge, expected_origin=ORIGIN,
        expected_rp_id=RP_ID, require_user_verification=False,
        pem_root_certs_bytes_by_fmt={AttestationFormat.PACKED: [root_pem]})


def u2f_register(device):
    """python-fido2's CTAP1 REGISTER; (app_param, client_param, RegistrationData)."""
    app_param = hashlib.sha256(RP_ID.encode()).digest()
    client_param = os.urandom(32)
    return app_param, client_param, Ctap1(device).register(client_param, app_param)


@pytest.mark.parametrize("mode", ["none", "self", "batch", "chain"])
def test_each_mode_passes_python_fido2_and_py_webauthn(serve, mode):
    key = serve(mode)
    root_der = key.root_der()
    device = key.device()
    reg, challenge = register(device)
    att = reg.response.attestation_object
    verify_registration(att, client_data_hash(reg), root_der, mode)
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    root_pem = x509.load_der_x509_certificate(root_der).public_bytes(Encoding.PEM)
    verified = py_webauthn_verify(reg, challenge, root_pem)
    assert getattr(verified.fmt, "value", verified.fmt) == ("none" if mode == "none" else "packed")

    app_param, client_param, u2f = u2f_register(device)
    intermediate = att.att_stmt["x5c"][1] if mode == "chain" else None
    verify_u2f_registration(app_param, client_param, u2f, root_der, mode, intermediate)
    if mode in ("batch", "chain"):
        # U2F carries x5c[0] of the packed statement: the same batch certificate.
        assert u2f.certificate == att.att_stmt["x5c"][0]
    device.close()


def test_a_damaged_or_misdirected_u2f_registration_is_refused(serve):
    from fido2.attestation import InvalidData, InvalidSignature
    from fido2.ctap1 import RegistrationData
    key = serve("batch")
    device = key.device()
    app_param, client_param, u2f = u2f_register(device)
    verify_u2f_registration(app_param, client_param, u2f, key.root_der(), "batch")
    tampered = RegistrationData(bytes(u2f)[:-8] + bytes(8))  # signature damaged
    with pytest.raises((InvalidSignature, InvalidData)):
        verify_u2f_registration(app_param, client_param, tampered, key.root_der(), "batch")
    with pytest.raises(InvalidSignature):  # signed for another client parameter
        verify_u2f_registration(app_param, os.urandom(32), u2f, key.root_der(), "batch")
    device.close()


def test_the_previous_batch_certificate_is_refused_and_the_new_one_accepted(serve):
    """Issue 10 §1.1 on python-fido2's side: the old certificate's
    basicConstraints (cA FALSE encoded) makes cryptography raise EncodedDefault."""
    from cryptography import x509
    from fido2.attestation.packed import _validate_packed_cert
    old = x509.load_pem_x509_certificate((OLD_CA / "batch-cert.pem").read_bytes())
    aaguid = bytes.fromhex("bb6ca1c23d44402aafdd2955c41b88e9")
    with pytest.raises(ValueError, match="EncodedDefault"):
        _validate_packed_cert(old, aaguid)
    key = serve("batch")
    reg, _ = register(key.device())
    new = x509.load_der_x509_certificate(reg.response.attestation_object.att_stmt["x5c"][0])
    _validate_packed_cert(new, reg.response.attestation_object.auth_data.credential_data.aaguid)


def mds(binary, state_dir: Path, out: Path, *extra):
    subprocess.run([binary, "mds", "--state-dir", str(state_dir), "--out", str(out), *extra],
                   check=True, capture_output=True)
    return (out / "blob.jwt").read_bytes(), pem_to_der((out / "mds-root.pem").read_bytes())


@pytest.mark.parametrize("mode", ["batch", "chain"])
def test_mds_blob_verifies_and_vouches_for_a_fresh_registration(serve, binary, tmp_path, mode):
    key = serve(mode)
    blob, mds_root = mds(binary, key.state_dir, tmp_path / "mds", "--attestation", mode,
                         "--jws-signature", "der")
    reg, _ = register(key.device())
    att = reg.response.attestation_object
    entry = verify_with_metadata(blob, mds_root, att, client_data_hash(reg))
    assert entry is not None
    assert entry.aaguid == att.auth_data.credential_data.aaguid
    assert entry.metadata_statement.attestation_types == ["basic_full"]
    assert entry.metadata_statement.authenticator_get_info["versions"] == ["U2F_V2", "FIDO_2_0",
                                                                           "FIDO_2_1"]
    statement = json.loads((tmp_path / "mds" / "metadata-statement.json").read_text())
    assert base64.b64decode(statement["attestationRootCertificates"][0]) == key.root_der()


def test_mds_refuses_what_it_does_not_vouch_for(serve, binary, tmp_path):
    from cryptography.exceptions import InvalidSignature
    from fido2.attestation import InvalidSignature as ChainInvalidSignature
    from fido2.mds3 import parse_blob
    key = serve("batch")
    reg, _ = register(key.device())
    att, cdh = reg.response.attestation_object, client_data_hash(reg)

    # A BLOB for another AAGUID does not cover the key.
    blob, mds_root = mds(binary, key.state_dir, tmp_path / "other", "--jws-signature", "der",
                         "--aaguid", "00112233-4455-6677-8899-aabbccddeeff")
    with pytest.raises(UntrustedAttestation):
        verify_with_metadata(blob, mds_root, att, cdh)

    # A key with ferrokey's AAGUID whose attestation chains to another root.
    stranger = serve("batch", name="stranger")
    reg2, _ = register(stranger.device())
    blob, mds_root = mds(binary, key.state_dir, tmp_path / "mine", "--jws-signature", "der")
    verify_with_metadata(blob, mds_root, att, cdh)
    with pytest.raises(UntrustedAttestation):
        verify_with_metadata(blob, mds_root, reg2.response.attestation_object,
                             client_data_hash(reg2))

    # The BLOB verified against another MDS root fails; so does a modified BLOB.
    _, other_mds_root = mds(binary, stranger.state_dir, tmp_path / "theirs", "--jws-signature", "der")
    with pytest.raises(ChainInvalidSignature):  # the x5c does not chain to that root
        parse_blob(blob, other_mds_root)
    head, payload, sig = blob.split(b".")
    body = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
    body["no"] += 1
    forged = head + b"." + base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=") + b"." + sig
    with pytest.raises(InvalidSignature):
        parse_blob(forged, mds_root)


def test_the_default_blob_is_a_standard_es256_jws(serve, binary, tmp_path):
    """--jws-signature raw (the default): R || S as RFC 7518 §3.4 says, verified
    here with cryptography; python-fido2's parse_blob expects DER there and
    refuses it (why --jws-signature der exists)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
    from fido2.attestation import verify_x509_chain
    from fido2.mds3 import parse_blob
    key = serve("batch")
    blob, mds_root = mds(binary, key.state_dir, tmp_path / "raw")
    head, payload, sig = blob.split(b".")
    pad = lambda b: b + b"=" * (-len(b) % 4)  # noqa: E731
    header = json.loads(base64.urlsafe_b64decode(pad(head)))
    raw = base64.urlsafe_b64decode(pad(sig))
    assert header["alg"] == "ES256" and len(raw) == 64
    signer = base64.b64decode(header["x5c"][0])
    verify_x509_chain([signer, mds_root])
    public_key = x509.load_der_x509_certificate(signer).public_key()
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public_key.verify(der, head + b"." + payload, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        parse_blob(blob, mds_root)


def test_self_attestation_is_not_vouched_for_by_metadata(serve, binary, tmp_path):
    """MdsAttestationVerifier trusts certificate chains only: a self-attested
    registration is refused even with the key's own statement (python-fido2
    2.2.1 refuses it with an IndexError on the empty trust path rather than
    UntrustedAttestation: a relying party must treat any exception as refusal)."""
    key = serve("self")
    blob, mds_root = mds(binary, key.state_dir, tmp_path / "self", "--attestation", "self",
                         "--jws-signature", "der")
    reg, _ = register(key.device())
    with pytest.raises((UntrustedAttestation, IndexError)):
        verify_with_metadata(blob, mds_root, reg.response.attestation_object, client_data_hash(reg))


# getInfo members a statement carries, by CBOR key (CTAP 2.1 §6.4), compared
# with what the served key answers.
GET_INFO_STATIC = {1: "versions", 2: "extensions", 4: "options", 5: "maxMsgSize",
                   6: "pinUvAuthProtocols", 7: "maxCredentialCountInList",
                   8: "maxCredentialIdLength", 10: "algorithms"}
OTHER_AAGUID = "00112233-4455-6677-8899-aabbccddeeff"


@pytest.mark.parametrize("flags", [["--profile", "ctap2.0"], ["--profile", "strict"], ["--bio"],
                                   ["--enterprise"], ["--uv", "auto"]],
                         ids=["ctap2.0", "strict", "bio", "enterprise", "uv-auto"])
def test_mds_describes_the_key_as_it_is_served(serve, binary, tmp_path, flags):
    from fido2.ctap2 import Ctap2
    key = serve("batch", extra=flags)
    device = key.device()
    info = Ctap2(device).send_cbor(0x04)
    blob, mds_root = mds(binary, key.state_dir, tmp_path / "mds", *flags, "--jws-signature", "der")
    statement = json.loads((tmp_path / "mds" / "metadata-statement.json").read_text())
    described = statement["authenticatorGetInfo"]
    for cbor_key, name in GET_INFO_STATIC.items():
        assert described.get(name) == info.get(cbor_key), f"{name}: statement vs key"
    assert described["aaguid"] == info[3].hex() == statement["aaguid"].replace("-", "")
    methods = [way[0]["userVerificationMethod"] for way in statement["userVerificationDetails"]]
    assert ("fingerprint_internal" in methods) == ("--bio" in flags or "auto" in flags)
    assert ("ep" in described["options"]) == ("--enterprise" in flags)
    assert statement["upv"] == ([{"major": 1, "minor": 0}] if "ctap2.0" in flags
                                else [{"major": 1, "minor": 0}, {"major": 1, "minor": 1}])

    reg, _ = register(device)
    att, cdh = reg.response.attestation_object, client_data_hash(reg)
    entry = verify_with_metadata(blob, mds_root, att, cdh)
    assert entry is not None and entry.aaguid == att.auth_data.credential_data.aaguid
    assert entry.metadata_statement.authenticator_get_info["versions"] == info[1]
    # The same statement for another AAGUID does not cover the key.
    other, other_root = mds(binary, key.state_dir, tmp_path / "other", *flags, "--aaguid", OTHER_AAGUID,
                            "--jws-signature", "der")
    with pytest.raises(UntrustedAttestation):
        verify_with_metadata(other, other_root, att, cdh)
    device.close()


def test_mds_vouches_for_a_u2f_key_by_its_certificate_key_identifier(serve, binary, tmp_path):
    from cryptography import x509
    from fido2.webauthn import AttestationObject
    key = serve("batch", extra=["--profile", "u2f"])
    device = key.device()
    blob, mds_root = mds(binary, key.state_dir, tmp_path / "u2f", "--profile", "u2f",
                         "--jws-signature", "der")
    statement = json.loads((tmp_path / "u2f" / "metadata-statement.json").read_text())
    assert statement["protocolFamily"] == "u2f" and "aaguid" not in statement
    assert "authenticatorGetInfo" not in statement
    app_param, client_param, u2f = u2f_register(device)
    att = AttestationObject.from_ctap1(app_param, u2f)
    ski = x509.SubjectKeyIdentifier.from_public_key(
        x509.load_der_x509_certificate(u2f.certificate).public_key()).digest
    assert statement["attestationCertificateKeyIdentifiers"] == [ski.hex()]
    entry = verify_with_metadata(blob, mds_root, att, client_param)
    assert entry is not None and entry.attestation_certificate_key_identifiers == [ski]
    # A FIDO2 statement (found by AAGUID) does not vouch for a U2F registration.
    fido2_blob, fido2_root = mds(binary, key.state_dir, tmp_path / "fido2", "--jws-signature", "der")
    with pytest.raises(UntrustedAttestation):
        verify_with_metadata(fido2_blob, fido2_root, att, client_param)
    device.close()
    # U2F with self-signed certificates (one per registration) has no statement.
    refused = subprocess.run([binary, "mds", "--state-dir", str(key.state_dir), "--out",
                              str(tmp_path / "self"), "--profile", "u2f", "--attestation", "self"],
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "self-signed" in refused.stderr


def test_a_passkey_provider_is_in_metadata_only_when_it_names_itself(serve, binary, tmp_path):
    """synced-passkey reports the all-zero AAGUID with attestation none: mds
    refuses it. A provider with its own AAGUID (a profile file) gets a
    statement a relying party can look up by AAGUID (attestationTypes none),
    but MdsAttestationVerifier has nothing to verify and does not vouch for
    it (python-fido2 2.2.1: UnsupportedType for fmt none, which its
    documentation leaves to the caller to allow)."""
    from fido2.attestation import UnsupportedType
    from fido2.mds3 import MdsAttestationVerifier, parse_blob
    refused = subprocess.run([binary, "mds", "--state-dir", str(tmp_path / "s"), "--out",
                              str(tmp_path / "synced"), "--profile", "synced-passkey"],
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "all-zero AAGUID" in refused.stderr
    assert not (tmp_path / "synced" / "blob.jwt").exists()

    profile = tmp_path / "provider.toml"
    profile.write_text(f'base = "synced-passkey"\naaguid = "{OTHER_AAGUID}"\n')
    key = serve("batch", extra=["--profile-file", str(profile)])
    blob, mds_root = mds(binary, key.state_dir, tmp_path / "provider", "--profile-file", str(profile),
                         "--jws-signature", "der")
    # A passkey provider's credentials are discoverable: it verifies the user.
    reg, _ = register(key.device(), UserVerificationRequirement.REQUIRED)
    att = reg.response.attestation_object
    assert att.fmt == "none" and str(att.auth_data.credential_data.aaguid) == OTHER_AAGUID
    verifier = MdsAttestationVerifier(parse_blob(blob, mds_root))
    entry = verifier.find_entry_by_aaguid(att.auth_data.credential_data.aaguid)
    assert entry is not None and entry.metadata_statement.attestation_types == ["none"]
    with pytest.raises(UnsupportedType):
        verifier.verify_attestation(att, client_data_hash(reg))
