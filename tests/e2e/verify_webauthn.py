#!/usr/bin/env python3
"""Relying-party check of the guest's ceremonies, on the host: py_webauthn 3.0.1
and python-fido2's own (strict) attestation verifiers.

  .venv/bin/python tests/e2e/verify_webauthn.py WORK/webauthn.json WORK/ca.pem \
      [--u2f WORK/u2f.json] [--mds WORK/mds]

webauthn.json is written in the guest by guest_steps.py (dict() of python-fido2's
RegistrationResponse / AuthenticationResponse, plus the challenges); ca.pem is
`ferrokey ca`'s attestation root.  Verifies the registration with py_webauthn
(packed attestation whose x5c must chain to that root) and with python-fido2
(PackedAttestation().verify(), verify_x509_chain up to the root), then the
authentication with the registered public key, and that the sign count went up.
With --u2f: the guest's U2F REGISTER (u2f.json) through FidoU2FAttestation and
the chain.  With --mds (the output of `ferrokey mds --jws-signature der`):
fido2.mds3.parse_blob against the MDS root, and MdsAttestationVerifier accepting
the registration.  Prints one line; exits 0 on success, 1 otherwise.
"""
import argparse
import base64
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.dont_write_bytecode = True
from attestation_checks import (pem_to_der, verify_registration, verify_u2f_registration,  # noqa: E402
                                verify_with_metadata)

from webauthn import verify_authentication_response, verify_registration_response
from webauthn.helpers.structs import AttestationFormat


def python_fido2_checks(data, root_der, u2f_path, mds_dir):
    """python-fido2's verifiers on the same registration (and U2F, MDS)."""
    from fido2.ctap1 import RegistrationData
    from fido2.webauthn import RegistrationResponse
    reg = RegistrationResponse.from_dict(data["registration"])
    att = reg.response.attestation_object
    cdh = hashlib.sha256(bytes(reg.response.client_data)).digest()
    done = ["python-fido2: " + verify_registration(att, cdh, root_der, "batch")]
    if u2f_path:
        u2f = json.loads(Path(u2f_path).read_text())
        done.append(verify_u2f_registration(
            base64.b64decode(u2f["app_param"]), base64.b64decode(u2f["client_param"]),
            RegistrationData(base64.b64decode(u2f["registration"])), root_der, "batch"))
    if mds_dir:
        blob = (Path(mds_dir) / "blob.jwt").read_bytes()
        mds_root = pem_to_der((Path(mds_dir) / "mds-root.pem").read_bytes())
        entry = verify_with_metadata(blob, mds_root, att, cdh)
        if entry is None:
            raise ValueError("MdsAttestationVerifier found no entry")
        done.append(f"MDS3 BLOB verified (parse_blob) and MdsAttestationVerifier accepted it "
                    f"(entry {entry.aaguid})")
    return "; ".join(done)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("webauthn_json")
    ap.add_argument("ca_pem")
    ap.add_argument("--u2f", help="u2f.json from the guest")
    ap.add_argument("--mds", help="`ferrokey mds --jws-signature der` output directory")
    args = ap.parse_args()
    data = json.loads(Path(args.webauthn_json).read_text())
    root_pem = Path(args.ca_pem).read_bytes()
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
    fido2_checks = python_fido2_checks(data, pem_to_der(root_pem), args.u2f, args.mds)
    print(f"py_webauthn: registration (packed, x5c chains to the `ferrokey ca` root, aaguid {reg.aaguid}) "
          f"and authentication verified; sign count {reg.sign_count} -> {auth.new_sign_count}; "
          f"{fido2_checks}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # py_webauthn raises InvalidRegistrationResponse etc.
        print(f"{type(e).__name__}: {e}")
        sys.exit(1)
