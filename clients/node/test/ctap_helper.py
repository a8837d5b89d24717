"""CTAP for the Node tests, which have no CTAP client of their own: one
getAssertion on a key served over USB/IP (python-fido2 through
tests/attestation/usbip_hid.py, no kernel), printed as JSON.

  python ctap_helper.py PORT BUSID RP_ID CLIENT_DATA_HASH_HEX [ALLOW_ID_B64URL]
  python ctap_helper.py PORT BUSID --pin-retries     clientPIN getPINRetries: {retries} or {error}
"""
import base64
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "attestation"))
from fido2.ctap import CtapError  # noqa: E402
from fido2.ctap2 import Ctap2  # noqa: E402
from usbip_hid import open_device  # noqa: E402


def b64u(data):
    return base64.urlsafe_b64encode(bytes(data)).rstrip(b"=").decode()


def pin_retries(device):
    from fido2.ctap2.pin import ClientPin
    try:
        print(json.dumps({"retries": ClientPin(Ctap2(device)).get_pin_retries()[0]}))
    except CtapError as e:
        print(json.dumps({"error": e.code.name}))


def main(port, busid, rp_id, cdh_hex=None, allow=None):
    device = open_device(int(port), busid)
    try:
        if rp_id == "--pin-retries":
            return pin_retries(device)
        allow_list = [{"type": "public-key", "id": base64.urlsafe_b64decode(allow + "=" * (-len(allow) % 4))}] if allow else None
        try:
            a = Ctap2(device).get_assertion(rp_id, bytes.fromhex(cdh_hex), allow_list=allow_list)
        except CtapError as e:
            print(json.dumps({"error": e.code.name}))
            return
        print(json.dumps({"credentialId": b64u(a.credential["id"]), "authData": b64u(a.auth_data),
                          "signature": b64u(a.signature), "counter": a.auth_data.counter,
                          "userPresent": a.auth_data.is_user_present(),
                          "userHandle": b64u(a.user["id"]) if a.user else None}))
    finally:
        device.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
