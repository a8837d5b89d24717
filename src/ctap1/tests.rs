//! U2F behaviour, driven through `App::handle` with raw APDUs.

use std::vec;
use std::vec::Vec;

use crate::authenticator::testkit::*;
use crate::authenticator::Config;
use crate::ctap1::sw;
use crate::platform::StorageError;
use crate::test_platform::PresenceScript;

const APP: [u8; 32] = [0xA1; 32];
const CHALLENGE: [u8; 32] = [0xC4; 32];

fn short(ins: u8, p1: u8, data: &[u8]) -> Vec<u8> {
    let mut apdu = vec![0x00, ins, p1, 0x00, data.len() as u8];
    apdu.extend_from_slice(data);
    apdu.push(0x00);
    apdu
}

fn extended(ins: u8, p1: u8, data: &[u8]) -> Vec<u8> {
    let mut apdu = vec![
        0x00,
        ins,
        p1,
        0x00,
        0x00,
        (data.len() >> 8) as u8,
        data.len() as u8,
    ];
    apdu.extend_from_slice(data);
    apdu.extend_from_slice(&[0x00, 0x00]);
    apdu
}

fn register_data(app: &[u8; 32]) -> Vec<u8> {
    [&CHALLENGE[..], &app[..]].concat()
}

fn auth_data(app: &[u8; 32], kh: &[u8]) -> Vec<u8> {
    let mut d = [&CHALLENGE[..], &app[..]].concat();
    d.push(kh.len() as u8);
    d.extend_from_slice(kh);
    d
}

/// DER length of the certificate at the start of `data`.
fn der_len(data: &[u8]) -> usize {
    assert_eq!(data[0], 0x30);
    match data[1] {
        l if l < 0x80 => 2 + l as usize,
        0x81 => 3 + data[2] as usize,
        0x82 => 4 + ((data[2] as usize) << 8 | data[3] as usize),
        _ => panic!("bad DER length"),
    }
}

struct Registration {
    key: p256::ecdsa::VerifyingKey,
    key_handle: Vec<u8>,
    cert: Vec<u8>,
    signature: Vec<u8>,
    public: Vec<u8>,
}

fn parse_registration(data: &[u8]) -> Registration {
    assert_eq!(data[0], 0x05);
    let public = data[1..66].to_vec();
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&public).unwrap();
    let kh_len = data[66] as usize;
    let key_handle = data[67..67 + kh_len].to_vec();
    let rest = &data[67 + kh_len..];
    let cert_len = der_len(rest);
    Registration {
        key,
        key_handle,
        cert: rest[..cert_len].to_vec(),
        signature: rest[cert_len..].to_vec(),
        public,
    }
}

fn register(h: &mut Harness, app: &[u8; 32]) -> Registration {
    let (data, status) = h.u2f(&short(0x01, 0x03, &register_data(app)));
    assert_eq!(status, sw::NO_ERROR);
    parse_registration(&data)
}

fn signed_registration(r: &Registration, app: &[u8; 32]) -> Vec<u8> {
    [&[0u8][..], app, &CHALLENGE, &r.key_handle, &r.public].concat()
}

#[test]
fn version() {
    let mut h = Harness::new();
    for apdu in [
        &[0u8, 3, 0, 0][..],
        &[0, 3, 0, 0, 0],
        &[0, 3, 0, 0, 0, 0, 0],
        &[0, 3, 0, 0, 0, 0, 0, 0, 0],
    ] {
        assert_eq!(h.u2f(apdu), (b"U2F_V2".to_vec(), sw::NO_ERROR), "{apdu:?}");
    }
    assert_eq!(h.u2f(&short(0x03, 0, b"x")).1, sw::WRONG_LENGTH);
}

#[test]
fn register_with_self_attestation() {
    let mut h = Harness::new();
    let r = register(&mut h, &APP);
    assert_eq!(r.key_handle.len(), crate::credential::CREDENTIAL_ID_LEN);
    // The self-signed certificate carries the credential key, which signs.
    assert!(r.cert.windows(65).any(|w| w == r.public.as_slice()));
    verify(&r.key, &[&signed_registration(&r, &APP)], &r.signature);
}

#[test]
fn register_with_batch_attestation_and_extended_length() {
    let (attestation, batch) = batch_attestation();
    let cert = attestation.certificate.to_vec();
    let mut h = Harness::with_config(Config {
        attestation: Some(attestation),
        ..Config::default()
    });
    let (data, status) = h.u2f(&extended(0x01, 0x00, &register_data(&APP)));
    assert_eq!(status, sw::NO_ERROR);
    let r = parse_registration(&data);
    assert_eq!(r.cert, cert);
    verify(&batch, &[&signed_registration(&r, &APP)], &r.signature);
}

#[test]
fn authenticate_enforce_and_dont_enforce() {
    let mut h = Harness::new();
    let r = register(&mut h, &APP);
    let mut last = 0;
    for (control, up) in [(0x03u8, 1u8), (0x08, 0), (0x03, 1)] {
        let (data, status) = h.u2f(&short(0x02, control, &auth_data(&APP, &r.key_handle)));
        assert_eq!(status, sw::NO_ERROR);
        assert_eq!(data[0], up);
        let counter = u32::from_be_bytes(data[1..5].try_into().unwrap());
        assert_eq!(counter, last + 1);
        last = counter;
        verify(&r.key, &[&APP, &data[..5], &CHALLENGE], &data[5..]);
    }
    // Durable across a crash (from its reservation: possibly a jump).
    let mut h = h.crash();
    let (data, status) = h.u2f(&extended(0x02, 0x03, &auth_data(&APP, &r.key_handle)));
    assert_eq!(status, sw::NO_ERROR);
    let counter = u32::from_be_bytes(data[1..5].try_into().unwrap());
    assert!(counter > last && counter <= last + crate::authenticator::COUNTER_BLOCK);
}

#[test]
fn check_only() {
    let mut h = Harness::new();
    let r = register(&mut h, &APP);
    let presence = h.presence.requests();
    assert_eq!(
        h.u2f(&short(0x02, 0x07, &auth_data(&APP, &r.key_handle))),
        (vec![], sw::CONDITIONS_NOT_SATISFIED)
    );
    assert_eq!(
        h.u2f(&short(0x02, 0x07, &auth_data(&[0xB2; 32], &r.key_handle))),
        (vec![], sw::WRONG_DATA)
    );
    let mut forged = r.key_handle.clone();
    forged[40] ^= 1;
    assert_eq!(
        h.u2f(&short(0x02, 0x07, &auth_data(&APP, &forged))).1,
        sw::WRONG_DATA
    );
    assert_eq!(
        h.u2f(&short(0x02, 0x03, &auth_data(&APP, &forged))).1,
        sw::WRONG_DATA
    );
    assert_eq!(
        h.u2f(&short(0x02, 0x07, &auth_data(&APP, &[1; 64]))).1,
        sw::WRONG_DATA
    );
    assert_eq!(
        h.presence.requests(),
        presence,
        "check-only never asks for presence"
    );
}

#[test]
fn presence_pending_gives_6985_then_retry_succeeds() {
    let mut h = Harness::new();
    h.presence.set_script(PresenceScript::Pending);
    let apdu = short(0x01, 0x03, &register_data(&APP));
    assert_eq!(h.u2f(&apdu), (vec![], sw::CONDITIONS_NOT_SATISFIED));
    assert_eq!(h.u2f(&apdu), (vec![], sw::CONDITIONS_NOT_SATISFIED));
    assert_eq!(h.presence.requests(), 1, "the request stays outstanding");
    h.presence.set_script(PresenceScript::Approve);
    let (data, status) = h.u2f(&apdu);
    assert_eq!(status, sw::NO_ERROR);
    let r = parse_registration(&data);

    h.presence.set_script(PresenceScript::Pending);
    let apdu = short(0x02, 0x03, &auth_data(&APP, &r.key_handle));
    assert_eq!(h.u2f(&apdu).1, sw::CONDITIONS_NOT_SATISFIED);
    h.presence.set_script(PresenceScript::Approve);
    let (data, status) = h.u2f(&apdu);
    assert_eq!(status, sw::NO_ERROR);
    assert_eq!(data[0], 1);
    // Denied: 6985, and the next attempt asks again.
    h.presence.set_script(PresenceScript::Deny);
    let requests = h.presence.requests();
    assert_eq!(h.u2f(&apdu).1, sw::CONDITIONS_NOT_SATISFIED);
    assert_eq!(h.u2f(&apdu).1, sw::CONDITIONS_NOT_SATISFIED);
    assert_eq!(h.presence.requests(), requests + 2);
}

// ---- The touch belongs to its request (issue 10 §1 defect 9) ------------------

/// A key with a registration at `APP` and at `OTHER`, and presence that only
/// a touch approves (as the prompt and touch modes do).
fn touch_rig() -> (Harness, Registration, Registration) {
    let mut h = Harness::new();
    let ours = register(&mut h, &APP);
    let theirs = register(&mut h, &OTHER);
    h.presence.set_script(PresenceScript::Pending);
    (h, ours, theirs)
}

const OTHER: [u8; 32] = [0xB2; 32];

fn authenticate(app: &[u8; 32], kh: &[u8]) -> Vec<u8> {
    short(0x02, 0x03, &auth_data(app, kh))
}

/// Sends `apdu` until it is refused, the user touches, and the next retry
/// succeeds.
fn touch_and_retry(h: &mut Harness, apdu: &[u8]) -> Vec<u8> {
    assert_eq!(h.u2f(apdu).1, sw::CONDITIONS_NOT_SATISFIED);
    h.presence.touch();
    let (data, status) = h.u2f(apdu);
    assert_eq!(status, sw::NO_ERROR);
    data
}

#[test]
fn a_touch_for_register_cannot_be_spent_by_authenticate_elsewhere() {
    let (mut h, _, theirs) = touch_rig();
    let register_apdu = short(0x01, 0x03, &register_data(&APP));
    assert_eq!(h.u2f(&register_apdu).1, sw::CONDITIONS_NOT_SATISFIED);
    h.presence.touch();
    // Another application, another channel: the touch is not theirs.
    h.channel = 8;
    let steal = authenticate(&OTHER, &theirs.key_handle);
    assert_eq!(h.u2f(&steal).1, sw::CONDITIONS_NOT_SATISFIED);
    // Nor on the same channel.
    h.channel = 7;
    assert_eq!(h.u2f(&steal).1, sw::CONDITIONS_NOT_SATISFIED);
    // The touch was withdrawn with the request it answered: registering
    // needs a new one, which then works.
    assert_eq!(h.u2f(&register_apdu).1, sw::CONDITIONS_NOT_SATISFIED);
    h.presence.touch();
    assert_eq!(h.u2f(&register_apdu).1, sw::NO_ERROR);
}

#[test]
fn a_touch_is_bound_to_the_channel_and_the_key_handle() {
    let (mut h, ours, _) = touch_rig();
    let second = {
        h.presence.set_script(PresenceScript::Approve);
        let r = register(&mut h, &APP);
        h.presence.set_script(PresenceScript::Pending);
        r
    };
    let apdu = authenticate(&APP, &ours.key_handle);
    assert_eq!(h.u2f(&apdu).1, sw::CONDITIONS_NOT_SATISFIED);
    h.presence.touch();
    // The same APDU on another channel.
    h.channel = 9;
    assert_eq!(h.u2f(&apdu).1, sw::CONDITIONS_NOT_SATISFIED);
    h.presence.touch();
    // Another key handle of the same application, same channel.
    assert_eq!(
        h.u2f(&authenticate(&APP, &second.key_handle)).1,
        sw::CONDITIONS_NOT_SATISFIED
    );
    // The right request signs, with the user-presence bit.
    let data = touch_and_retry(&mut h, &apdu);
    assert_eq!(data[0], 1);
    verify(&ours.key, &[&APP, &data[..5], &CHALLENGE], &data[5..]);
}

#[test]
fn a_touch_expires_when_the_host_stops_asking() {
    let (mut h, ours, _) = touch_rig();
    let apdu = authenticate(&APP, &ours.key_handle);
    assert_eq!(h.u2f(&apdu).1, sw::CONDITIONS_NOT_SATISFIED);
    // The user answers (a prompt, a presence file) after the host gave up;
    // the same request long after does not find that touch.
    h.presence.touch();
    h.now_ms += crate::ctap1::presence::U2F_PRESENCE_TTL_MS + 1;
    assert_eq!(h.u2f(&apdu).1, sw::CONDITIONS_NOT_SATISFIED);
    // Within the limit of the host's last retry, it does.
    h.presence.touch();
    h.now_ms += crate::ctap1::presence::U2F_PRESENCE_TTL_MS;
    assert_eq!(h.u2f(&apdu).1, sw::NO_ERROR);
}

#[test]
fn ctap2_requests_and_transport_resets_withdraw_a_u2f_touch() {
    let (mut h, ours, _) = touch_rig();
    let apdu = authenticate(&APP, &ours.key_handle);
    assert_eq!(h.u2f(&apdu).1, sw::CONDITIONS_NOT_SATISFIED);
    let cancels = h.presence.cancels();
    h.presence.touch();
    let (status, _, _) = h.ctap2(0x04, None);
    assert_eq!(status, 0);
    assert_eq!(h.presence.cancels(), cancels + 1);
    assert_eq!(h.u2f(&apdu).1, sw::CONDITIONS_NOT_SATISFIED);

    h.presence.touch();
    crate::app::App::transport_reset(&mut h.auth);
    assert_eq!(h.presence.cancels(), cancels + 2);
    assert!(!h.presence.outstanding());
    assert_eq!(h.u2f(&apdu).1, sw::CONDITIONS_NOT_SATISFIED);
    h.presence.touch();
    assert_eq!(h.u2f(&apdu).1, sw::NO_ERROR);
}

#[test]
fn malformed_apdus() {
    let mut h = Harness::new();
    let r = register(&mut h, &APP);
    let good_auth = auth_data(&APP, &r.key_handle);
    let mut bad_lc = short(0x02, 0x03, &good_auth);
    bad_lc[4] += 1;
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (vec![0x00, 0x01], sw::WRONG_LENGTH, "too short"),
        (short(0x01, 0, &[0; 63]), sw::WRONG_LENGTH, "short register"),
        (short(0x01, 0, &[0; 65]), sw::WRONG_LENGTH, "long register"),
        (
            short(0x02, 0x03, &good_auth[..70]),
            sw::WRONG_LENGTH,
            "key handle length mismatch",
        ),
        (
            short(0x02, 0x03, &[0; 10]),
            sw::WRONG_LENGTH,
            "short authenticate",
        ),
        (bad_lc, sw::WRONG_LENGTH, "Lc beyond data"),
        (
            vec![0x00, 0x01, 0x00, 0x00, 0x00, 0x00],
            sw::WRONG_LENGTH,
            "truncated extended header",
        ),
        (short(0x04, 0, &[]), sw::INS_NOT_SUPPORTED, "unknown INS"),
        (short(0xC0, 0, &[]), sw::INS_NOT_SUPPORTED, "GET RESPONSE"),
        (vec![0x80, 0x03, 0x00, 0x00], sw::CLA_NOT_SUPPORTED, "CLA"),
        (
            short(0x02, 0x05, &good_auth),
            sw::WRONG_DATA,
            "bad control byte",
        ),
    ];
    for (apdu, expected, what) in cases {
        assert_eq!(h.u2f(&apdu), (vec![], expected), "{what}");
    }
    assert_eq!(h.u2f(&short(0x02, 0x03, &good_auth)).1, sw::NO_ERROR);
}

#[test]
fn storage_failure_gives_no_signature() {
    let mut h = Harness::new();
    let r = register(&mut h, &APP);
    let block = crate::authenticator::COUNTER_BLOCK;
    h.storage.set_fail_writes(Some(StorageError::Io));
    // Counter values inside the reservation need no write.
    for expected in 1..block {
        let (data, status) = h.u2f(&short(0x02, 0x03, &auth_data(&APP, &r.key_handle)));
        assert_eq!(status, sw::NO_ERROR);
        assert_eq!(u32::from_be_bytes(data[1..5].try_into().unwrap()), expected);
    }
    // The next one needs a new reservation, which fails: no signature.
    assert_eq!(
        h.u2f(&short(0x02, 0x03, &auth_data(&APP, &r.key_handle))),
        (vec![], sw::UNKNOWN)
    );
    h.storage.set_fail_writes(None);
    let (data, _) = h.u2f(&short(0x02, 0x03, &auth_data(&APP, &r.key_handle)));
    assert_eq!(u32::from_be_bytes(data[1..5].try_into().unwrap()), block);
}

#[test]
fn u2f_and_ctap2_credentials_interoperate_with_their_own_counters() {
    let mut h = Harness::new();
    let rp = "example.com";
    let app = sha256(rp.as_bytes());
    // A U2F registration is usable through CTAP2 getAssertion (same rpIdHash).
    let r = register(&mut h, &app);
    let cdh = client_data_hash("interop");
    let (status, value, _) = h.get_assertion(ga(rp, &cdh, &[&r.key_handle], None));
    assert_eq!(status, 0);
    let a = check_assertion(&value.unwrap(), &cdh, |_| r.key);
    assert_eq!(a.auth_data.sign_count, 1);
    // A CTAP2 credential is usable through U2F, on its own counter.
    let cred = h.make_credential(Mc::new(rp, b"u").build());
    let (data, status) = h.u2f(&short(0x02, 0x03, &auth_data(&app, &cred.id)));
    assert_eq!(status, sw::NO_ERROR);
    assert_eq!(u32::from_be_bytes(data[1..5].try_into().unwrap()), 1);
    verify(
        &cred.public_key,
        &[&app, &data[..5], &CHALLENGE],
        &data[5..],
    );
    // Resident credentials use their own counter in U2F too.
    let resident = h.make_credential(Mc::new(rp, b"r").rk().build());
    let (data, _) = h.u2f(&short(0x02, 0x08, &auth_data(&app, &resident.id)));
    assert_eq!(u32::from_be_bytes(data[1..5].try_into().unwrap()), 1);
}

/// Case 3S (Lc and data, no Le) is a well-formed short APDU; one byte more or
/// less than Lc says is WRONG_LENGTH. (Kills the `!=` → `==` mutant of
/// `parse_apdu`'s short-length check, which survived the baseline.)
#[test]
fn short_apdus_without_le_are_accepted_and_wrong_lengths_refused() {
    let mut h = Harness::new();
    let data = register_data(&APP);
    let mut apdu = vec![0x00, 0x01, 0x03, 0x00, data.len() as u8];
    apdu.extend_from_slice(&data);
    let (response, status) = h.u2f(&apdu);
    assert_eq!(status, sw::NO_ERROR);
    let registration = parse_registration(&response);
    assert!(!registration.key_handle.is_empty());
    assert_eq!(h.u2f(&apdu[..apdu.len() - 1]).1, sw::WRONG_LENGTH);
    let mut long = apdu.clone();
    long.extend_from_slice(&[0, 0]);
    assert_eq!(h.u2f(&long).1, sw::WRONG_LENGTH);
}

/// Case 3E (extended Lc and data, no Le) is well formed too; with Le it is
/// case 4E; any other length after the data is WRONG_LENGTH.
#[test]
fn extended_apdus_with_and_without_le_are_accepted_and_wrong_lengths_refused() {
    let mut h = Harness::new();
    let with_le = extended(0x01, 0x03, &register_data(&APP));
    let without_le = &with_le[..with_le.len() - 2];
    for apdu in [&with_le[..], without_le] {
        let (response, status) = h.u2f(apdu);
        assert_eq!(status, sw::NO_ERROR, "{} bytes", apdu.len());
        assert!(!parse_registration(&response).key_handle.is_empty());
    }
    for extra in [&[0u8][..], &[0, 0, 0]] {
        let mut apdu = without_le.to_vec();
        apdu.extend_from_slice(extra);
        assert_eq!(
            h.u2f(&apdu).1,
            sw::WRONG_LENGTH,
            "{} bytes after",
            extra.len()
        );
    }
}
