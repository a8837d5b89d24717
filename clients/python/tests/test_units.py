"""Unit tests without a server: SSE parsing, option and parameter shaping,
errors, hidraw matching, COSE keys, and start()'s refusals."""
import json
from pathlib import Path

import pytest

import ferrokey
from ferrokey.client import authenticator_options, b64url, camel, credential_parameters, unb64url
from ferrokey.credentials import cose_es256, generate
from ferrokey.errors import api_error
from ferrokey.hidraw import find, matches
from ferrokey.sse import KeyEvent, SseParser, parse_lines


def line(name, data, key="2"):
    return json.dumps({"time": "t", "authenticatorId": key, "event": name, "data": data})


def test_sse_events_split_anywhere_are_parsed_once():
    text = (": keep-alive\r\n\r\n"
            f"event: ctap\ndata: {line('ctap', {'command': 'getInfo'})}\n\n"
            f"event: powerOff\r\ndata: {line('powerOff', {})}\r\n\r\n")
    for cut in range(len(text) + 1):
        parser = SseParser()
        events = parser.feed(text[:cut]) + parser.feed(text[cut:])
        assert [e.event for e in events] == ["ctap", "powerOff"], cut
        assert events[0].data == {"command": "getInfo"}
        assert events[0].authenticator_id == "2"


def test_sse_multi_line_data_and_non_json():
    events = list(parse_lines([b"event: x\n", b"data: {\"event\": \"a\",\n", b"data: \"data\": {}}\n",
                               b"\n", b"data: not json\n", b"\n", b"\n"]))
    assert [e.event for e in events] == ["a", "message"]
    assert events[1].data == {"text": "not json"}
    assert KeyEvent.from_json("n", "[1]").data == {"text": "[1]"}
    assert json.loads(events[0].line()) == {"event": "a", "data": {}}


def test_names_and_binary_fields():
    assert camel("has_resident_key") == "hasResidentKey"
    assert camel("isBadUV") == "isBadUV" and camel("ferrokey:presence") == "ferrokey:presence"
    assert b64url(b"\xfb\xff") == "-_8" and unb64url("-_8") == b"\xfb\xff" and unb64url("+/8") == b"\xfb\xff"
    body = authenticator_options({"extensions": ["prf"]}, {"attestation": "none", "ferrokey:uv": "deny"},
                                 is_user_verified=False, ctap2Version="ctap2_1")
    assert body == {"protocol": "ctap2_1", "transport": "usb", "hasResidentKey": True,
                    "hasUserVerification": True, "isUserVerified": False, "extensions": ["prf"],
                    "ctap2Version": "ctap2_1", "ferrokey:attestation": "none", "ferrokey:uv": "deny"}
    params = credential_parameters({"rpId": "x", "credentialId": "already"}, private_key=b"\x01\x02",
                                   user_handle=bytearray(b"u"), sign_count=0, large_blob=None)
    assert params == {"rpId": "x", "credentialId": "already", "privateKey": "AQI",
                      "userHandle": "dQ", "signCount": 0}


@pytest.mark.parametrize("code, cls", [
    ("invalid argument", ferrokey.InvalidArgument), ("no such authenticator", ferrokey.NoSuchAuthenticator),
    ("no such credential", ferrokey.NoSuchCredential), ("unsupported operation", ferrokey.UnsupportedOperation),
    ("unknown command", ferrokey.UnknownCommand), ("forbidden", ferrokey.Forbidden),
    ("unauthorized", ferrokey.Unauthorized), ("unknown error", ferrokey.UnknownError),
    ("some future code", ferrokey.ApiError)])
def test_errors_carry_the_webdriver_code(code, cls):
    err = api_error(404, {"value": {"error": code, "message": "why"}}, "GET", "/x")
    assert type(err) is cls and err.error == code and err.status == 404 and err.message == "why"
    assert str(err) == f"GET /x: {code} (HTTP 404): why"


def test_a_body_that_is_not_a_webdriver_error_is_an_unknown_error():
    err = api_error(502, "<html>bad gateway</html>")
    assert isinstance(err, ferrokey.UnknownError) and "bad gateway" in err.message


def test_hidraw_nodes_are_matched_by_ids_and_serial(tmp_path):
    uevent = "DRIVER=hid-generic\nHID_ID=0003:00001209:0000000A\nHID_NAME=x\nHID_UNIQ=ABC123\n"
    assert matches(uevent, 0x1209, 0x000A, "ABC123")
    assert not matches(uevent, 0x1209, 0x000A, "ABC12")
    assert not matches(uevent, 0x1050, 0x000A, "ABC123")
    assert not matches("HID_ID=garbage\nHID_UNIQ=ABC123", 0x1209, 0x000A, "ABC123")
    for name, text in (("hidraw0", uevent.replace("ABC123", "OTHER")), ("hidraw3", uevent), ("other", uevent)):
        (tmp_path / name / "device").mkdir(parents=True)
        (tmp_path / name / "device" / "uevent").write_text(text)
    assert find(0x1209, 0x000A, "ABC123", tmp_path) == "/dev/hidraw3"
    assert find(0x1209, 0x000A, "NOPE", tmp_path) is None
    assert find(0x1209, 0x000A, "ABC123", tmp_path / "missing") is None
    with pytest.raises(ferrokey.HidrawNotFound, match="serial NOPE"):
        ferrokey.hidraw.wait_for(0x1209, 0x000A, "NOPE", timeout=0.1, root=tmp_path)


def test_generated_credentials_are_cose_and_pkcs8_that_others_read():
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from fido2 import cbor
    from fido2.cose import CoseKey
    cred = generate("example.com", user_handle=b"alice", user_name="alice", sign_count=7)
    assert cred.params["rpId"] == "example.com" and cred.params["userHandle"] == "YWxpY2U"
    assert cred.params["signCount"] == 7 and cred.params["isResidentCredential"] is True
    assert unb64url(cred.params["credentialId"]) == cred.credential_id and len(cred.credential_id) == 16
    private = serialization.load_der_private_key(unb64url(cred.params["privateKey"]), None)
    signature = private.sign(b"data", ec.ECDSA(hashes.SHA256()))
    assert cred.verify(signature, b"data") and not cred.verify(signature, b"other")
    decoded = cbor.decode(cred.public_key_cose)
    assert decoded[1] == 2 and decoded[3] == -7 and decoded[-1] == 1
    CoseKey.parse(decoded).verify(b"data", signature)  # python-fido2 reads it: no exception
    spki = serialization.load_der_public_key(cred.public_key_spki)
    assert spki.public_numbers() == private.public_key().public_numbers()
    assert "userHandle" not in generate("x", resident=False).params
    with pytest.raises(ValueError):
        cose_es256(b"1", b"2")


def test_start_refuses_what_cannot_work(tmp_path, monkeypatch):
    monkeypatch.delenv("FERROKEY_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ferrokey.StartError, match="no ferrokey binary"):
        ferrokey.find_binary()
    script = tmp_path / "ferrokey"
    script.write_text("#!/bin/sh\necho 'error: not a real ferrokey' >&2\nexit 3\n")
    with pytest.raises(ferrokey.StartError, match="is not an executable"):
        ferrokey.find_binary(str(script))
    script.chmod(0o755)
    with pytest.raises(ferrokey.StartError, match=r"exited \(3\)[\s\S]*not a real ferrokey"):
        ferrokey.start(str(script), timeout=10)
    with pytest.raises(ValueError, match="transport"):
        ferrokey.start(str(script), transport="bluetooth")


def test_the_package_is_typed():
    assert (Path(ferrokey.__file__).parent / "py.typed").exists()


def test_the_package_type_checks_strictly():
    import subprocess
    import sys
    # -p: the package as installed (a path inside site-packages would shadow it)
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "-p", "ferrokey"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout
