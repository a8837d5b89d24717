"""Attestation checks with python-fido2's own verifiers, the strict ones relying
parties use (its certificate parsing is Python `cryptography`'s strict DER):

- packed: `fido2.attestation.PackedAttestation().verify()` (WebAuthn §8.2.1
  certificate rules, signature), then `verify_x509_chain(x5c + [root])` up to
  the `ferrokey ca` root;
- fido-u2f: `FidoU2FAttestation().verify()` on the attestation object a U2F
  REGISTER makes (`AttestationObject.from_ctap1`), then the chain;
- none: `NoneAttestation().verify()`;
- metadata: `fido2.mds3.parse_blob` against the MDS root, then
  `MdsAttestationVerifier`.

Used by the kernel stage (guest_steps.py in the guest, verify_webauthn.py on
the host), the browser stage's relying party and tests/attestation. Each
function raises on failure and returns a short description of what it checked.
"""
from fido2.attestation import (AttestationType, FidoU2FAttestation, NoneAttestation,
                               PackedAttestation, verify_x509_chain)
from fido2.mds3 import MdsAttestationVerifier, parse_blob
from fido2.webauthn import AttestationObject

MODES = ("none", "self", "batch", "chain")


class AttestationCheckError(Exception):
    pass


def _expect(condition, message):
    if not condition:
        raise AttestationCheckError(message)


def pem_to_der(pem: bytes) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def verify_registration(attestation_object: AttestationObject, client_data_hash: bytes,
                        root_der: bytes, mode: str) -> str:
    """A CTAP2 registration of a key served with `--attestation mode`."""
    fmt = attestation_object.fmt
    stmt = attestation_object.att_stmt
    auth_data = attestation_object.auth_data
    if mode == "none":
        _expect(fmt == "none", f"fmt {fmt!r}, expected 'none'")
        result = NoneAttestation().verify(stmt, auth_data, client_data_hash)
        _expect(result.attestation_type == AttestationType.NONE, f"type {result.attestation_type}")
        return "fmt none: NoneAttestation().verify() passed"
    _expect(fmt == "packed", f"fmt {fmt!r}, expected 'packed'")
    result = PackedAttestation().verify(stmt, auth_data, client_data_hash)
    if mode == "self":
        _expect(result.attestation_type == AttestationType.SELF,
                f"attestation type {result.attestation_type.name}, expected SELF")
        _expect("x5c" not in stmt, "self attestation with an x5c")
        return "packed self attestation: PackedAttestation().verify() passed (signed by the credential key)"
    _expect(result.attestation_type == AttestationType.BASIC,
            f"attestation type {result.attestation_type.name}, expected BASIC")
    want = {"batch": 1, "chain": 2}[mode]
    _expect(len(result.trust_path) == want, f"x5c has {len(result.trust_path)} certificates, expected {want}")
    verify_x509_chain(result.trust_path + [root_der])
    # A foreign root must not verify: the chain check has teeth.
    try:
        verify_x509_chain(result.trust_path + [_foreign_root_der()])
    except Exception:
        pass
    else:
        raise AttestationCheckError("the chain verified against an unrelated root")
    return (f"packed, x5c of {want}: PackedAttestation().verify() passed (WebAuthn 8.2.1 checks, "
            f"strict DER), verify_x509_chain up to the `ferrokey ca` root passed, a foreign root refused")


def mode_of(attestation_object: AttestationObject) -> str:
    """The --attestation mode a registration's statement shows: none, self
    (packed without x5c), batch (one certificate) or chain (two); for a
    fido-u2f statement (one certificate), self when it is self-signed, else batch."""
    if attestation_object.fmt == "fido-u2f":
        from cryptography import x509
        x5c = attestation_object.att_stmt.get("x5c") or [b""]
        try:
            cert = x509.load_der_x509_certificate(x5c[0])
        except ValueError:
            return "unknown"
        return "self" if cert.issuer == cert.subject else "batch"
    if attestation_object.fmt != "packed":
        return "none"
    x5c = attestation_object.att_stmt.get("x5c")
    return {None: "self", 1: "batch", 2: "chain"}.get(len(x5c) if x5c else None, "unknown")


def verify_registration_any(attestation_object: AttestationObject, client_data_hash: bytes,
                            root_der: bytes) -> str:
    """verify_registration (or verify_u2f_attestation for fido-u2f) for whichever
    mode the statement shows (what a relying party that accepts any of them does)."""
    mode = mode_of(attestation_object)
    _expect(mode in MODES, f"attestation statement of no known form (fmt {attestation_object.fmt!r})")
    if attestation_object.fmt == "fido-u2f":
        return verify_u2f_attestation(attestation_object, client_data_hash, root_der, mode)
    return verify_registration(attestation_object, client_data_hash, root_der, mode)


def verify_u2f_attestation(attestation_object: AttestationObject, client_data_hash: bytes,
                           root_der: bytes, mode: str, intermediate_der: bytes = None) -> str:
    """A fido-u2f attestation object (a U2F REGISTER, `AttestationObject.from_ctap1`,
    or what a browser makes of one) of a key served with `--attestation mode`."""
    _expect(attestation_object.fmt == "fido-u2f", f"fmt {attestation_object.fmt!r}, expected 'fido-u2f'")
    result = FidoU2FAttestation().verify(attestation_object.att_stmt, attestation_object.auth_data,
                                         client_data_hash)
    cert = result.trust_path[0]
    if mode in ("none", "self"):
        # Self-signed certificate of the new credential key.
        from cryptography import x509
        numbers = x509.load_der_x509_certificate(cert).public_key().public_numbers()
        cose = attestation_object.auth_data.credential_data.public_key
        _expect((numbers.x, numbers.y) == (int.from_bytes(cose[-2], "big"), int.from_bytes(cose[-3], "big")),
                "the self-signed certificate is not for the new key")
        verify_x509_chain([cert, cert])
        return "fido-u2f: FidoU2FAttestation().verify() passed; certificate self-signed by the new key"
    chain = [cert] + ([intermediate_der] if mode == "chain" else []) + [root_der]
    _expect(mode != "chain" or intermediate_der, "chain mode needs the intermediate")
    verify_x509_chain(chain)
    return (f"fido-u2f: FidoU2FAttestation().verify() passed, verify_x509_chain of {len(chain)} "
            f"up to the `ferrokey ca` root passed")


def verify_u2f_registration(app_param: bytes, client_param: bytes, registration, root_der: bytes,
                            mode: str, intermediate_der: bytes = None) -> str:
    """A U2F REGISTER (fido2.ctap1.RegistrationData) of a key served with `--attestation mode`."""
    return verify_u2f_attestation(AttestationObject.from_ctap1(app_param, registration), client_param,
                                  root_der, mode, intermediate_der)


def verify_with_metadata(blob: bytes, mds_root_der: bytes, attestation_object: AttestationObject,
                         client_data_hash: bytes):
    """parse_blob against the MDS root, then MdsAttestationVerifier; returns the entry."""
    payload = parse_blob(blob, mds_root_der)
    verifier = MdsAttestationVerifier(payload)
    verifier.verify_attestation(attestation_object, client_data_hash)
    return verifier.find_entry(attestation_object, client_data_hash)


_FOREIGN = []


def _foreign_root_der() -> bytes:
    """A self-signed CA that never signed anything (made once)."""
    if not _FOREIGN:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import Encoding
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
        _FOREIGN.append(cert.public_bytes(Encoding.DER))
    return _FOREIGN[0]
