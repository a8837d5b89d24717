"""Profile scenarios of the kernel stage (issue 13), run in the guest by
guest_steps.py: one `ferrokey serve --profile NAME` per profile on the host
(kernel_e2e.py starts them; e2e.json's "profiles" names their ports), each
attached in turn through vhci_hcd, checked by libfido2's `fido2-token -I` and
python-fido2's getInfo, then used: a ctap2.0 key through libfido2, a u2f key
through python-fido2's CTAP1 fallback (Fido2Client without CBOR), a
synced-passkey registration that py_webauthn sees as backed up (multi-device),
and the strict key's displayName quirk.

register(Guest, scenario, helpers) adds the scenarios as Guest methods, after
guest_steps.py's own.
"""
import os

ORIGIN = "https://profiles.example.com"
RP_ID = "profiles.example.com"

# What each profile's getInfo must say (python-fido2's Info field names).
EXPECTED_INFO = {
    "ctap2.0": {
        "versions": ["U2F_V2", "FIDO_2_0"], "extensions": ["hmac-secret"], "max_msg_size": 1200,
        "pin_uv_protocols": [1], "absent_options": ["credMgmt", "largeBlobs", "authnrCfg",
                                                    "pinUvAuthToken", "alwaysUv"],
    },
    "synced-passkey": {
        "versions": ["FIDO_2_0", "FIDO_2_1"], "max_msg_size": 7609, "pin_uv_protocols": [2, 1],
        "options": {"uv": True, "rk": True}, "aaguid": "00" * 16,
    },
    "strict": {
        "versions": ["U2F_V2", "FIDO_2_0", "FIDO_2_1"], "max_msg_size": 1200,
        "max_creds_in_list": 1, "max_cred_id_length": 128, "pin_uv_protocols": [2, 1],
    },
}

# `fido2-token -I` lines each profile must show (key: exact value).
EXPECTED_TOKEN_INFO = {
    "ctap2.0": {"version strings": "U2F_V2, FIDO_2_0", "maxmsgsiz": "1200", "pin protocols": "1"},
    "synced-passkey": {"version strings": "FIDO_2_0, FIDO_2_1", "aaguid": "0" * 32},
    "strict": {"maxmsgsiz": "1200", "maxcredcntlst": "1", "maxcredlen": "128"},
}


def register(guest_class, scenario, helpers):
    """Adds the profile scenarios to `guest_class` (in this order)."""
    Fail, run = helpers["Fail"], helpers["run"]

    def with_key(self, name, fn):
        """Attaches the `name` profile's key, runs fn(dev), detaches."""
        key = self.cfg["profiles"][name]
        dev, vport = self.timed(f"attach {name}", self.attach, key)
        try:
            return fn(dev)
        finally:
            self.detach(vport, dev)

    def token_info(dev):
        p = run(["fido2-token", "-I", dev], check=False)
        fields = {}
        for line in p.stdout.splitlines():
            k, _, v = line.partition(":")
            fields[k.strip()] = v.strip()
        return p, fields

    def s_libfido2_info(self):
        """fido2-token -I on every profile's key: the fields each profile sets."""
        seen = []
        for name, want in EXPECTED_TOKEN_INFO.items():
            def check(dev, name=name, want=want):
                p, fields = token_info(dev)
                if p.returncode != 0:
                    raise Fail(f"{name}: fido2-token -I exited {p.returncode}: {p.stderr.strip()[-200:]}")
                for k, v in want.items():
                    if fields.get(k) != v:
                        raise Fail(f"{name}: fido2-token -I {k}: {fields.get(k)!r}, expected {v!r}")
                return fields
            fields = with_key(self, name, check)
            seen.append(f"{name}: {fields.get('version strings')}")
            if name == "ctap2.0":
                options = fields.get("options", "")
                for absent in ("credMgmt", "largeBlobs", "authnrCfg"):
                    if absent in options:
                        raise Fail(f"ctap2.0 shows option {absent}: {options}")

        # The u2f key: no CBOR capability, so libfido2 sees no FIDO2 device.
        def u2f(dev):
            p, fields = token_info(dev)
            if "FIDO_2" in p.stdout:
                raise Fail(f"u2f: fido2-token -I shows FIDO2 versions: {p.stdout[-300:]}")
            return fields
        fields = with_key(self, "u2f", u2f)
        seen.append(f"u2f: no FIDO2 info ({len(fields)} fields)")
        return "; ".join(seen)

    def s_python_fido2_info(self):
        """python-fido2's getInfo (Ctap2.info) per profile; the u2f key lacks
        the CBOR capability in CTAPHID INIT and Ctap2 refuses it."""
        from fido2.ctap2 import Ctap2
        from fido2.hid import CAPABILITY, open_device
        seen = []
        for name, want in EXPECTED_INFO.items():
            def check(dev, name=name, want=want):
                device = open_device(dev)
                try:
                    info = Ctap2(device).info
                finally:
                    device.close()
                for field in ("versions", "extensions", "max_msg_size", "pin_uv_protocols",
                              "max_creds_in_list", "max_cred_id_length"):
                    if field in want and getattr(info, field) != want[field]:
                        raise Fail(f"{name}: {field} {getattr(info, field)!r}, expected {want[field]!r}")
                for option, value in want.get("options", {}).items():
                    if info.options.get(option) != value:
                        raise Fail(f"{name}: option {option} {info.options.get(option)!r}")
                for option in want.get("absent_options", []):
                    if option in info.options:
                        raise Fail(f"{name}: option {option} present: {info.options}")
                if "aaguid" in want and bytes(info.aaguid).hex() != want["aaguid"]:
                    raise Fail(f"{name}: aaguid {bytes(info.aaguid).hex()}")
                return info
            info = with_key(self, name, check)
            seen.append(f"{name}: {info.versions}")

        def u2f(dev):
            device = open_device(dev)
            try:
                if device.capabilities & CAPABILITY.CBOR:
                    raise Fail(f"u2f: INIT capabilities {device.capabilities:#x} include CBOR")
                try:
                    Ctap2(device)
                except ValueError:
                    return device.capabilities
                raise Fail("u2f: python-fido2's Ctap2 accepted the device")
            finally:
                device.close()
        caps = with_key(self, "u2f", u2f)
        seen.append(f"u2f: capabilities {caps:#x}, Ctap2 refused")
        return "; ".join(seen)

    def register_and_sign(dev, user_verification, resident_key, display_name="Carol"):
        """Fido2Client registration and one authentication; returns
        (registration, authentication, challenges)."""
        from fido2.client import DefaultClientDataCollector, Fido2Client
        from fido2.hid import open_device
        from fido2.webauthn import (AuthenticatorSelectionCriteria,
                                    PublicKeyCredentialCreationOptions,
                                    PublicKeyCredentialDescriptor, PublicKeyCredentialParameters,
                                    PublicKeyCredentialRequestOptions, PublicKeyCredentialRpEntity,
                                    PublicKeyCredentialType, PublicKeyCredentialUserEntity)
        device = open_device(dev)
        try:
            client = Fido2Client(device, DefaultClientDataCollector(ORIGIN))
            challenge = os.urandom(32)
            reg = client.make_credential(PublicKeyCredentialCreationOptions(
                rp=PublicKeyCredentialRpEntity(id=RP_ID, name="profiles"),
                user=PublicKeyCredentialUserEntity(id=os.urandom(16), name="carol",
                                                   display_name=display_name),
                challenge=challenge,
                pub_key_cred_params=[PublicKeyCredentialParameters(
                    type=PublicKeyCredentialType.PUBLIC_KEY, alg=-7)],
                authenticator_selection=AuthenticatorSelectionCriteria(
                    user_verification=user_verification, resident_key=resident_key),
                timeout=30000))
            challenge2 = os.urandom(32)
            auth = client.get_assertion(PublicKeyCredentialRequestOptions(
                challenge=challenge2, rp_id=RP_ID, timeout=30000, user_verification=user_verification,
                allow_credentials=[PublicKeyCredentialDescriptor(
                    type=PublicKeyCredentialType.PUBLIC_KEY, id=reg.raw_id)])).get_response(0)
            return reg, auth, challenge, challenge2
        finally:
            device.close()

    def py_webauthn(reg, auth, challenge, challenge2, require_uv):
        from webauthn import verify_authentication_response, verify_registration_response
        verified = verify_registration_response(
            credential=dict(reg), expected_challenge=challenge, expected_origin=ORIGIN,
            expected_rp_id=RP_ID, require_user_verification=require_uv)
        signed = verify_authentication_response(
            credential=dict(auth), expected_challenge=challenge2, expected_origin=ORIGIN,
            expected_rp_id=RP_ID, credential_public_key=verified.credential_public_key,
            credential_current_sign_count=verified.sign_count, require_user_verification=require_uv)
        return verified, signed

    def s_u2f_fallback(self):
        """A u2f key: python-fido2's Fido2Client falls back to CTAP1 (U2F);
        the fido-u2f registration and the assertion verify with py_webauthn."""
        from fido2.webauthn import UserVerificationRequirement
        reg, auth, c1, c2 = with_key(self, "u2f", lambda dev: self.timed(
            "u2f register+sign", register_and_sign, dev, UserVerificationRequirement.DISCOURAGED,
            "discouraged"))
        fmt = reg.response.attestation_object.fmt
        if fmt != "fido-u2f":
            raise Fail(f"registration format {fmt!r}, expected fido-u2f (the CTAP1 fallback)")
        verified, signed = self.timed("py_webauthn", py_webauthn, reg, auth, c1, c2, False)
        if not signed.new_sign_count > verified.sign_count:
            raise Fail(f"U2F counter {verified.sign_count} -> {signed.new_sign_count}")
        return (f"fmt {fmt}: py_webauthn verified registration and assertion, "
                f"counter {verified.sign_count} -> {signed.new_sign_count}")

    def s_synced_passkey(self):
        """A synced-passkey key: a UV-required discoverable registration that
        py_webauthn sees as backed up (credential_backed_up, multi-device),
        attestation none, signCount 0 in both ceremonies."""
        from fido2.webauthn import UserVerificationRequirement
        reg, auth, c1, c2 = with_key(self, "synced-passkey", lambda dev: self.timed(
            "synced register+sign", register_and_sign, dev, UserVerificationRequirement.REQUIRED,
            "required"))
        verified, signed = self.timed("py_webauthn", py_webauthn, reg, auth, c1, c2, True)
        device_type = getattr(verified.credential_device_type, "value", verified.credential_device_type)
        fmt = getattr(verified.fmt, "value", verified.fmt)
        if not verified.credential_backed_up or device_type != "multi_device":
            raise Fail(f"backed_up={verified.credential_backed_up} device_type={device_type}")
        if fmt != "none":
            raise Fail(f"attestation {fmt}, expected none")
        if verified.sign_count != 0 or signed.new_sign_count != 0:
            raise Fail(f"sign counts {verified.sign_count}, {signed.new_sign_count}: expected 0")
        if not verified.user_verified:
            raise Fail("UV flag not set")
        return (f"py_webauthn: credential_backed_up={verified.credential_backed_up}, "
                f"device type {device_type}, fmt {fmt}, sign counts 0 and 0, UV")

    def s_ctap20_libfido2(self):
        """A ctap2.0 key through libfido2: fido2-cred (packed, x5c to the ferrokey
        root) and two fido2-assert, verified, counter up."""
        def use(dev):
            cred_id, pem, fmt, count = self.make_cred(dev, rp=RP_ID)
            first = self.assertion(dev, pem, cred_id, rp=RP_ID)
            second = self.assertion(dev, pem, cred_id, rp=RP_ID)
            if not second > first:
                raise Fail(f"counter {first} -> {second}")
            return f"fmt {fmt}, assertions verified, counter {first} -> {second}"
        return with_key(self, "ctap2.0", use)

    def s_strict_quirks(self):
        """The strict key: a registration without displayName is refused with
        exactly MISSING_PARAMETER, one with it is accepted (py_webauthn
        verifies it); python-fido2's Fido2Client pre-flights an allowList with
        a silent (up=false) getAssertion, which the strict key refuses with
        exactly UNSUPPORTED_OPTION (the quirk relying parties trip over); a
        plain getAssertion verifies."""
        from fido2.client import ClientError
        from fido2.ctap import CtapError
        from fido2.ctap2 import Ctap2
        from fido2.hid import open_device
        from fido2.webauthn import UserVerificationRequirement
        from webauthn import verify_registration_response

        def cause_code(e):
            cause = getattr(e, "cause", None)
            return cause.code if isinstance(cause, CtapError) else repr(e)

        def use(dev):
            discouraged = UserVerificationRequirement.DISCOURAGED
            try:
                register_and_sign(dev, discouraged, "discouraged", display_name=None)
                raise Fail("a registration without displayName was accepted")
            except ClientError as e:
                if cause_code(e) != CtapError.ERR.MISSING_PARAMETER:
                    raise Fail(f"no displayName refused with {e!r}, expected MISSING_PARAMETER")
            try:
                register_and_sign(dev, discouraged, "discouraged")
                raise Fail("python-fido2's silent pre-flight was answered")
            except ClientError as e:
                if cause_code(e) != CtapError.ERR.UNSUPPORTED_OPTION:
                    raise Fail(f"assertion refused with {e!r}, expected UNSUPPORTED_OPTION")
            # Registration with displayName, and a plain (up=true) assertion.
            from fido2.client import DefaultClientDataCollector, Fido2Client
            from fido2.webauthn import (AuthenticatorSelectionCriteria,
                                        PublicKeyCredentialCreationOptions,
                                        PublicKeyCredentialParameters, PublicKeyCredentialRpEntity,
                                        PublicKeyCredentialType, PublicKeyCredentialUserEntity)
            device = open_device(dev)
            try:
                challenge = os.urandom(32)
                reg = Fido2Client(device, DefaultClientDataCollector(ORIGIN)).make_credential(
                    PublicKeyCredentialCreationOptions(
                        rp=PublicKeyCredentialRpEntity(id=RP_ID, name="profiles"),
                        user=PublicKeyCredentialUserEntity(id=os.urandom(16), name="dan",
                                                           display_name="Dan"),
                        challenge=challenge,
                        pub_key_cred_params=[PublicKeyCredentialParameters(
                            type=PublicKeyCredentialType.PUBLIC_KEY, alg=-7)],
                        authenticator_selection=AuthenticatorSelectionCriteria(
                            user_verification=discouraged),
                        timeout=30000))
                verified = verify_registration_response(
                    credential=dict(reg), expected_challenge=challenge, expected_origin=ORIGIN,
                    expected_rp_id=RP_ID, require_user_verification=False)
                cdh = os.urandom(32)
                assertion = Ctap2(device).get_assertion(
                    RP_ID, cdh, [{"type": "public-key", "id": reg.raw_id}])
                cred_data = reg.response.attestation_object.auth_data.credential_data
                assertion.verify(cdh, cred_data.public_key)
            finally:
                device.close()
            return (f"no displayName: MISSING_PARAMETER; python-fido2's silent pre-flight: "
                    f"UNSUPPORTED_OPTION; registration verified by py_webauthn (aaguid "
                    f"{verified.aaguid}), plain assertion verified (count {assertion.auth_data.counter})")
        return with_key(self, "strict", use)

    for name, fn in [
        ("profile-libfido2-info", s_libfido2_info),
        ("profile-python-fido2-info", s_python_fido2_info),
        ("profile-ctap2.0-libfido2", s_ctap20_libfido2),
        ("profile-u2f-ctap1-fallback", s_u2f_fallback),
        ("profile-synced-passkey-backed-up", s_synced_passkey),
        ("profile-strict-quirks", s_strict_quirks),
    ]:
        setattr(guest_class, fn.__name__, fn)
        scenario(name)(fn)
