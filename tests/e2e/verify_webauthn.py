#!/usr/bin/env python3
"""Relying-party check of the guest's python-fido2 ceremony with py_webauthn 3.0.1.

  .venv/bin/python tests/e2e/verify_webauthn.py WORK/webauthn.json WORK/ca.pem

webauthn.json is written in the guest by guest_steps.py (dict() of python-fido2's
RegistrationResponse / AuthenticationResponse, plus the challenges); ca.pem is
`ferrokey ca`'s attestation root.  Verifies the registration (packed attestation
whose x5c must chain to that root) and then the authentication with the
registered public key, and that the sign count went up.  Prints one line;
exits 0 on success, 1 otherwise.
"""
import base64
import json
import sys
from pathlib import Path

from webauthn import verify_authentication_response, verify_registration_response
from webauthn.helpers.structs import AttestationFormat


def main():
    data = json.loads(Path(sys.argv[1]).read_text())
    root_pem = Path(sys.argv[2]).read_bytes()
    if b"BEGIN CERTIFICATE" not in root_pem:
        print("`ferrokey ca` gave no PEM certificate")
        return 1
    reg = verify_registration_response(
        credential=data["registration"],
        expected_challenge=base64.b64decode(data["registration_challenge"]),
        expected_origin=data["origin"], expected_rp_id=data["rp_id"],
        require_user_verification=False,
        pem_root_certs_bytes_by_fmt={AttestationFormat.PACKED: [root_pem]},
    )
    if reg.fmt != AttestationFormat.PACKED:
        print(f"attestation format {reg.fmt}, expected packed")
        return 1
    auth = verify_authentication_response(
        credential=data["authentication"],
        expected_challenge=base64.b64decode(data["authentication_challenge"]),
        expected_origin=data["origin"], expected_rp_id=data["rp_id"],
        credential_public_key=reg.credential_public_key,
        credential_current_sign_count=reg.sign_count,
        require_user_verification=False,
    )
    print(f"registration (packed, x5c chains to the `ferrokey ca` root, aaguid {reg.aaguid}) "
          f"and authentication verified; sign count {reg.sign_count} -> {auth.new_sign_count}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # py_webauthn raises InvalidRegistrationResponse etc.
        print(f"{type(e).__name__}: {e}")
        sys.exit(1)
