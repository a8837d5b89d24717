"""The client against a real `ferrokey serve --transport usbip --control`: every
command, checked through CTAP (python-fido2 over USB/IP) and the event stream."""
import hashlib
import os
import threading
import time

import pytest
from fido2.ctap import CtapError

import ferrokey
from ferrokey.client import b64url, unb64url
from ferrokey.credentials import generate
from usbip_hid import UsbipError  # noqa: F401  (tests/attestation; on sys.path via conftest)

CDH = hashlib.sha256(b"client data").digest()


def signs(cred, assertion):
    return cred.verify(assertion.signature, bytes(assertion.auth_data) + CDH)


def test_start_gives_a_usable_handle(usbip_server):
    assert usbip_server.transport == "usbip" and usbip_server.busid == "1-1"
    assert usbip_server.url.startswith("http://127.0.0.1:") and usbip_server.usbip_port
    assert usbip_server.hidraw is None  # usbip: nothing attached on this host
    keys = usbip_server.keys
    assert keys[0].busid == "1-1" and keys[0].info()["hostTransport"] == "usbip"
    assert usbip_server.client.status()["keys"][0]["busid"] == "1-1"
    assert usbip_server.client.openapi()["openapi"].startswith("3.")


def test_a_new_key_is_a_new_usb_device(usbip_server, fresh_key, ctap):
    info = fresh_key.info()
    assert fresh_key.busid != "1-1" and info["options"]["uv"] == "auto" and info["powered"]
    assert any(k.authenticator_id == fresh_key.authenticator_id for k in usbip_server.keys)
    get_info = ctap(fresh_key).get_info()
    assert get_info.options["uv"] is True and get_info.options["rk"] is True
    assert str(get_info.aaguid) == fresh_key.aaguid


def test_errors_are_webdriver_errors(usbip_server, fresh_key):
    client = usbip_server.client
    with pytest.raises(ferrokey.InvalidArgument, match="transport") as bad:
        client.add_virtual_authenticator(transport="nfc")
    assert bad.value.error == "invalid argument" and bad.value.status == 400
    with pytest.raises(ferrokey.NoSuchAuthenticator) as missing:
        client.authenticator("9999")
    assert missing.value.status == 404
    with pytest.raises(ferrokey.NoSuchCredential):
        fresh_key.remove_credential(b"never made")
    with pytest.raises(ferrokey.InvalidArgument, match="privateKey|PKCS"):
        fresh_key.add_credential(credential_id=b"x", is_resident_credential=True, rp_id="localhost",
                                 private_key=b"not a key")
    no_uv = client.add_virtual_authenticator(has_user_verification=False)
    try:
        with pytest.raises(ferrokey.UnsupportedOperation) as conflict:
            no_uv.set_user_verified(True)
        assert conflict.value.status == 409
    finally:
        no_uv.remove()
    with pytest.raises(ferrokey.NoSuchAuthenticator):
        no_uv.info()
    with pytest.raises(ferrokey.ConnectionFailed):
        ferrokey.Client("http://127.0.0.1:9").status()


def test_a_seeded_credential_signs_and_its_counter_and_events_show_it(fresh_key, ctap):
    cred = generate("localhost", user_handle=b"alice", user_name="alice", sign_count=10)
    with fresh_key.events() as events:
        fresh_key.add_credential(cred.params)
        added = events.wait_for("credentialAdded", timeout=10)
        assert added.data["credential"]["credentialId"] == b64url(cred.credential_id)
        assertion = ctap(fresh_key).get_assertion("localhost", CDH)  # empty allowList: resident
        assert assertion.credential["id"] == cred.credential_id and assertion.user["id"] == b"alice"
        assert signs(cred, assertion)
        counter = assertion.auth_data.counter
        assert counter > 10
        asserted = events.wait_for("credentialAsserted", timeout=10)
        assert asserted.authenticator_id == fresh_key.authenticator_id
        assert asserted.data["credential"]["signCount"] == counter
        assert "privateKey" not in asserted.raw["data"]["credential"]
    stored = fresh_key.get_credential(cred.credential_id)
    assert stored["signCount"] == counter and stored["rpId"] == "localhost"
    assert unb64url(stored["privateKey"]) == cred.private_key_pkcs8
    assert stored["isResidentCredential"] is True and stored["userName"] == "alice"


def test_non_resident_credentials_are_found_by_id_only(fresh_key, ctap):
    cred = generate("example.org", resident=False)
    fresh_key.add_credential(cred.params)
    ctap2 = ctap(fresh_key)
    with pytest.raises(CtapError) as none:
        ctap2.get_assertion("example.org", CDH)
    assert none.value.code == CtapError.ERR.NO_CREDENTIALS
    assertion = ctap2.get_assertion("example.org", CDH,
                                    allow_list=[{"type": "public-key", "id": cred.credential_id}])
    assert signs(cred, assertion)


def test_credentials_are_removed_and_their_properties_set(fresh_key, ctap):
    a, b = generate("localhost", user_handle=b"a"), generate("localhost", user_handle=b"b")
    fresh_key.add_credential(a.params)
    fresh_key.add_credential(b.params)
    fresh_key.set_credential_properties(a.credential_id, sign_count=500, backup_eligibility=True,
                                        backup_state=True)
    stored = fresh_key.get_credential(a.credential_id)
    assert (stored["signCount"], stored["backupEligibility"], stored["backupState"]) == (500, True, True)
    assertion = ctap(fresh_key).get_assertion("localhost", CDH)
    assert assertion.number_of_credentials == 2
    fresh_key.remove_credential(a.credential_id)
    with pytest.raises(KeyError):
        fresh_key.get_credential(a.credential_id)
    assert [c["credentialId"] for c in fresh_key.get_credentials()] == [b64url(b.credential_id)]
    fresh_key.remove_all_credentials()
    assert fresh_key.get_credentials() == []


def test_response_overrides_break_what_they_say(fresh_key, ctap):
    cred = generate("localhost", user_handle=b"u")
    fresh_key.add_credential(cred.params)
    ctap2 = ctap(fresh_key)
    assert fresh_key.set_response_override_bits(is_bogus_signature=True) == {
        "isBogusSignature": True, "isBadUV": False, "isBadUP": False}
    assert not signs(cred, ctap2.get_assertion("localhost", CDH))
    fresh_key.set_response_override_bits(is_bogus_signature=False, is_bad_up=True)
    bad_up = ctap2.get_assertion("localhost", CDH)
    assert signs(cred, bad_up) and not bad_up.auth_data.is_user_present()
    fresh_key.set_response_override_bits(is_bad_up=False)
    assert ctap2.get_assertion("localhost", CDH).auth_data.is_user_present()


def test_exportable_false_keeps_private_keys_in(usbip_server):
    key = usbip_server.client.add_virtual_authenticator(vendor={"exportable": False})
    try:
        key.add_credential(generate("localhost").params)
        assert [("privateKey" in c) for c in key.get_credentials()] == [False]
    finally:
        key.remove()


def test_presence_waits_for_the_button(fresh_key, ctap):
    cred = generate("localhost", user_handle=b"u")
    fresh_key.add_credential(cred.params)
    fresh_key.set_automatic_presence_simulation(False)
    ctap2 = ctap(fresh_key)
    result = {}

    def sign():
        result["assertion"] = ctap2.get_assertion("localhost", CDH)
        result["at"] = time.monotonic()
    thread = threading.Thread(target=sign)
    thread.start()
    time.sleep(1.0)
    assert thread.is_alive(), "the key answered without its button"
    pressed = time.monotonic()
    assert fresh_key.touch(True)["touch"] == "on"
    thread.join(15)
    fresh_key.touch(False)
    assert result["at"] >= pressed and signs(cred, result["assertion"])
    fresh_key.presence("deny")
    with pytest.raises(CtapError) as denied:
        ctap2.get_assertion("localhost", CDH)
    assert denied.value.code == CtapError.ERR.OPERATION_DENIED
    fresh_key.presence("default")


def test_user_verification_follows_set_user_verified(fresh_key, ctap):
    from fido2.ctap2.pin import ClientPin
    ctap2 = ctap(fresh_key)
    fresh_key.set_user_verified(False)
    with pytest.raises(CtapError) as failed:
        ClientPin(ctap2).get_uv_token(ClientPin.PERMISSION.GET_ASSERTION, "localhost")
    assert failed.value.code == CtapError.ERR.UV_INVALID
    fresh_key.set_user_verified(True)
    assert ClientPin(ctap2).get_uv_token(ClientPin.PERMISSION.GET_ASSERTION, "localhost")


def test_power_unplugs_and_every_key_event_streams(usbip_server, fresh_key):
    with usbip_server.client.events() as everything, fresh_key.events() as mine:
        assert fresh_key.power(False)["power"] == "off"
        assert not fresh_key.info()["powered"]
        off = mine.wait_for("powerOff", timeout=10)
        assert off.authenticator_id == fresh_key.authenticator_id
        everything.wait_for(lambda e: e.event == "powerOff"
                            and e.authenticator_id == fresh_key.authenticator_id, timeout=10)
        fresh_key.power(True)
        mine.wait_for("powerOn", timeout=10)
        with pytest.raises(ferrokey.EventTimeout, match="no 'nothing-like-this'"):
            mine.wait_for("nothing-like-this", timeout=0.5)
        assert mine.next_event() is None  # a timed-out stream is closed


def test_a_recorder_keeps_a_transcript_until_stopped(fresh_key):
    recorder = fresh_key.record_events()
    fresh_key.power(False)
    fresh_key.power(True)
    deadline = time.monotonic() + 10
    while "powerOn" not in recorder.transcript() and time.monotonic() < deadline:
        time.sleep(0.05)
    recorder.stop()
    names = [e.event for e in recorder.events]
    assert names.index("powerOff") < names.index("powerOn")
    fresh_key.power(False)
    time.sleep(0.3)
    assert [e.event for e in recorder.events] == names  # stopped: nothing more


def test_attach_needs_usbip_and_vhci_and_says_so(usbip_server, fresh_key, ferrokey_bin):
    # this host has no vhci-hcd (the guest stage attaches for real)
    with pytest.raises(ferrokey.StartError, match=r"usbip --tcp-port \d+ attach -r 127.0.0.1 -b 1-"):
        usbip_server.attach(fresh_key, timeout=20)
    with ferrokey.start(ferrokey_bin, transport="usbip", control="127.0.0.1:0") as other:
        other.usbip_port = None  # as with uhid or attach: no USB/IP port
        with pytest.raises(ferrokey.StartError, match="no USB/IP port"):
            other.attach(other.keys[0])


def test_a_unix_socket_and_a_token(ferrokey_bin, tmp_path):
    token = tmp_path / "token"
    token.write_text("a-token-long-enough-1234\n")
    os.chmod(token, 0o600)
    socket_path = tmp_path / "control.sock"
    with ferrokey.start(ferrokey_bin, transport="usbip", control=f"unix:{socket_path}",
                        token_file=str(token)) as server:
        assert server.client.status()["keys"][0]["busid"] == "1-1"
        with pytest.raises(ferrokey.Unauthorized):
            ferrokey.Client(f"unix:{socket_path}").status()
        client = ferrokey.Client(f"unix:{socket_path}", token="a-token-long-enough-1234")
        key = client.add_virtual_authenticator()
        assert key.info()["powered"] and len(client.authenticators()) == 2
        key.remove()
        assert server.log_path.exists() and server.state_dir.exists()
    assert not server.log_path.exists() and not server.state_dir.exists()  # start() made them


def test_pin_state_through_the_api_is_what_ctap_reports(usbip_server, fresh_key, ctap):
    from fido2.ctap2.pin import ClientPin
    client_pin = ClientPin(ctap(fresh_key))
    events = fresh_key.events()
    try:
        assert fresh_key.pin_state()["state"] == "unset"
        state = fresh_key.set_pin("py-client-2468")
        assert state["isSet"] and state["retries"] == 8 and "py-client-2468" not in repr(state)
        assert events.wait_for("pinSet", timeout=10).data["source"] == "api"
        assert client_pin.get_pin_retries()[0] == 8
        assert fresh_key.set_pin_retries(2)["retries"] == 2
        assert client_pin.get_pin_retries()[0] == 2
        blocked = fresh_key.set_pin_state("blocked")
        assert blocked["state"] == "blocked" and blocked["retries"] == 0
        with pytest.raises(CtapError) as refused:
            client_pin.get_pin_token("py-client-2468")
        assert refused.value.code == CtapError.ERR.PIN_BLOCKED
        assert fresh_key.set_pin_state("uvBlocked")["uvRetries"] == 0
        assert client_pin.get_uv_retries() == 0
        assert fresh_key.set_pin_retries(uv_retries=8)["state"] == "set"
        assert client_pin.get_pin_token("py-client-2468")
        assert fresh_key.clear_pin()["isSet"] is False
        assert events.wait_for("pinCleared", timeout=10).data["source"] == "api"
        with pytest.raises(CtapError) as no_pin:
            client_pin.get_pin_retries()
        assert no_pin.value.code == CtapError.ERR.PIN_NOT_SET
        with pytest.raises(ferrokey.InvalidArgument):
            fresh_key.set_pin("12")
        with pytest.raises(ferrokey.UnsupportedOperation):
            fresh_key.set_pin_state("forcePinChange")
        with pytest.raises(ValueError):
            fresh_key.set_pin_retries()
    finally:
        events.close()


def test_a_key_is_added_in_a_pin_state(usbip_server, ctap):
    from fido2.ctap2.pin import ClientPin
    key = usbip_server.client.add_virtual_authenticator(
        vendor={"pin": "py-client-1357", "pinState": "forcePinChange"})
    try:
        assert key.pin_state()["state"] == "forcePinChange"
        ctap2 = ctap(key)
        assert ctap2.get_info().force_pin_change is True
        assert ClientPin(ctap2).get_pin_retries()[0] == 8
    finally:
        key.remove()
