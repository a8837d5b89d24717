"""Credentials a test makes itself, to seed into a key with Add Credential and
to give a relying party the public key (needs ``cryptography``:
``pip install 'ferrokey[crypto]'``)::

    cred = credentials.generate("localhost", user_handle=b"alice", user_name="alice")
    key.add_credential(cred.params)
    my_rp.add_account("alice", cred.credential_id, cred.public_key_cose)
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from .client import b64url
from .errors import FerrokeyError


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise FerrokeyError("ferrokey.credentials needs `cryptography`: "
                            "pip install 'ferrokey[crypto]'") from e
    return ec, serialization


def _cbor_bytes(data: bytes) -> bytes:
    if len(data) < 24:
        return bytes([0x40 | len(data)]) + data
    if len(data) < 256:
        return bytes([0x58, len(data)]) + data
    return b"\x59" + struct.pack(">H", len(data)) + data


def cose_es256(x: bytes, y: bytes) -> bytes:
    """The COSE_Key (CBOR, canonical order) of a P-256 public key for ES256:
    {1: 2, 3: -7, -1: 1, -2: x, -3: y}."""
    if len(x) != 32 or len(y) != 32:
        raise ValueError("P-256 coordinates are 32 bytes each")
    return b"\xa5\x01\x02\x03\x26\x20\x01\x21" + _cbor_bytes(x) + b"\x22" + _cbor_bytes(y)


@dataclass
class Generated:
    """A P-256 credential made by the test: ``params`` is Add Credential's body."""

    credential_id: bytes
    rp_id: str
    private_key: Any  # cryptography's EllipticCurvePrivateKey
    params: Dict[str, Any] = field(default_factory=dict)

    @property
    def private_key_pkcs8(self) -> bytes:
        """The private key, PKCS#8 DER (what WebDriver's ``privateKey`` is)."""
        _, serialization = _crypto()
        return bytes(self.private_key.private_bytes(serialization.Encoding.DER,
                                                    serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))

    @property
    def public_key_spki(self) -> bytes:
        """The public key, SubjectPublicKeyInfo DER."""
        _, serialization = _crypto()
        return bytes(self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))

    @property
    def public_key_cose(self) -> bytes:
        """The public key as a COSE_Key (what a relying party stores at registration)."""
        numbers = self.private_key.public_key().public_numbers()
        return cose_es256(numbers.x.to_bytes(32, "big"), numbers.y.to_bytes(32, "big"))

    def verify(self, signature: bytes, signed: bytes) -> bool:
        """Whether ``signature`` (DER ECDSA) over ``signed`` is this key's."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        ec, _ = _crypto()
        try:
            self.private_key.public_key().verify(signature, signed, ec.ECDSA(hashes.SHA256()))
            return True
        except InvalidSignature:
            return False


def generate(rp_id: str, *, user_handle: Optional[bytes] = None, resident: bool = True,
             credential_id: Optional[bytes] = None, sign_count: int = 0,
             user_name: Optional[str] = None, user_display_name: Optional[str] = None,
             backup_eligibility: Optional[bool] = None,
             backup_state: Optional[bool] = None) -> Generated:
    """A fresh P-256 credential for ``rp_id`` (id: 16 random bytes unless given;
    a resident one gets a random 16-byte user handle unless given)."""
    ec, _ = _crypto()
    cred = Generated(credential_id or os.urandom(16), rp_id, ec.generate_private_key(ec.SECP256R1()))
    params: Dict[str, Any] = {
        "credentialId": b64url(cred.credential_id),
        "isResidentCredential": resident,
        "rpId": rp_id,
        "privateKey": b64url(cred.private_key_pkcs8),
        "signCount": sign_count,
    }
    if resident or user_handle is not None:
        params["userHandle"] = b64url(user_handle if user_handle is not None else os.urandom(16))
    for name, value in (("userName", user_name), ("userDisplayName", user_display_name),
                        ("backupEligibility", backup_eligibility), ("backupState", backup_state)):
        if value is not None:
            params[name] = value
    cred.params = params
    return cred
