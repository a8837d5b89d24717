//! CTAP2 behaviour, driven through `App::handle` with real CBOR.

use std::string::ToString;
use std::vec;
use std::vec::Vec;

use ciborium::Value;

use crate::app::{Outcome, Protocol};
use crate::authenticator::testkit::*;
use crate::authenticator::Config;
use crate::platform::{RecordKey, StorageError};
use crate::test_platform::PresenceScript;

const RP: &str = "example.com";

fn ok_assertion(h: &mut Harness, rp: &str, allow: &[&[u8]], cdh: &[u8; 32]) -> Value {
    let (status, value, needed) = h.get_assertion(ga(rp, cdh, allow, None));
    assert_eq!(status, 0, "getAssertion failed: {status:#x}");
    assert!(needed, "getAssertion with up must need presence");
    value.unwrap()
}

#[test]
fn get_info_reports_capabilities() {
    let mut h = Harness::new();
    let (status, value, needed) = h.ctap2(0x04, None);
    assert_eq!(status, 0);
    assert!(!needed);
    let info = value.unwrap();
    let versions: Vec<_> = map_int(&info, 1)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_text().unwrap().to_string())
        .collect();
    assert_eq!(versions, ["U2F_V2", "FIDO_2_0", "FIDO_2_1"]);
    let extensions: Vec<_> = map_int(&info, 2)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_text().unwrap().to_string())
        .collect();
    assert_eq!(
        extensions,
        [
            "credProtect",
            "hmac-secret",
            "hmac-secret-mc",
            "credBlob",
            "largeBlobKey",
            "minPinLength"
        ]
    );
    assert_eq!(
        map_int(&info, 0x0B),
        Some(&int(2048)),
        "maxSerializedLargeBlobArray"
    );
    assert_eq!(map_int(&info, 0x0F), Some(&int(32)), "maxCredBlobLength");
    assert_eq!(map_bytes(&info, 3), AAGUID);
    let options = map_int(&info, 4).unwrap();
    assert_eq!(map_text(options, "rk"), Some(&Value::Bool(true)));
    assert_eq!(map_text(options, "up"), Some(&Value::Bool(true)));
    assert_eq!(map_text(options, "plat"), Some(&Value::Bool(false)));
    assert_eq!(map_text(options, "clientPin"), Some(&Value::Bool(false)));
    assert!(map_text(options, "uv").is_none(), "no built-in UV");
    assert_eq!(map_int(&info, 5), Some(&int(7609)));
    assert_eq!(map_int(&info, 6), Some(&Value::Array(vec![int(2), int(1)])));
    assert_eq!(map_int(&info, 7), Some(&int(10)));
    assert_eq!(map_int(&info, 8), Some(&int(255)));
    assert_eq!(map_int(&info, 9), Some(&Value::Array(vec![text("usb")])));
    let algs = map_int(&info, 10).unwrap().as_array().unwrap();
    assert_eq!(algs.len(), 2);
    assert_eq!(map_text(&algs[0], "alg"), Some(&int(-7)));
    assert_eq!(map_text(&algs[0], "type"), Some(&text("public-key")));
    assert_eq!(map_text(&algs[1], "alg"), Some(&int(-8)));
    assert_eq!(map_text(options, "largeBlobs"), Some(&Value::Bool(true)));
    assert_eq!(map_int(&info, 0x0E), Some(&int(0x0102)));
    assert_eq!(map_int(&info, 0x14), Some(&int(100)));
}

#[test]
fn make_credential_self_attestation() {
    let mut h = Harness::new();
    let mc = Mc::new(RP, b"user-1");
    let cred = h.make_credential(mc.build());
    assert_eq!(cred.fmt, "packed");
    assert!(map_text(&cred.att_stmt, "x5c").is_none());
    let ad = &cred.auth_data;
    assert_eq!(ad.rp_id_hash, sha256(RP.as_bytes()));
    assert_eq!(ad.flags, 0x41, "UP|AT only: no UV, BE, BS or ED");
    assert_eq!(ad.sign_count, 0);
    assert_eq!(ad.aaguid, Some(AAGUID));
    assert_eq!(cred.id.len(), crate::credential::CREDENTIAL_ID_LEN);
    assert!(ad.rest.is_empty());
    // Non-resident: the device record and the credential's tracking record.
    assert_eq!(
        h.storage.keys(),
        [RecordKey::Device, RecordKey::Credential(0)]
    );
}

#[test]
fn make_credential_batch_attestation() {
    let (attestation, batch_vk) = batch_attestation();
    let cert = attestation.certificate.to_vec();
    let mut h = Harness::with_config(Config {
        aaguid: AAGUID,
        attestation: Some(attestation),
        ..Config::default()
    });
    let mc = Mc::new(RP, b"user-1");
    let cred = h.make_credential(mc.build());
    assert_eq!(cred.fmt, "packed");
    assert_eq!(map_text(&cred.att_stmt, "alg"), Some(&int(-7)));
    let x5c = map_text(&cred.att_stmt, "x5c").unwrap().as_array().unwrap();
    assert_eq!(x5c, &vec![bytes(&cert)]);
    let sig = map_text(&cred.att_stmt, "sig").unwrap().as_bytes().unwrap();
    verify(&batch_vk, &[&cred.raw_auth_data, &mc.cdh], sig);
}

#[test]
fn make_credential_none_attestation_on_request() {
    let mut h = Harness::new();
    let mc = Mc::new(RP, b"u").with(11, Value::Array(vec![text("none"), text("packed")]));
    let cred = h.make_credential(mc.build());
    assert_eq!(cred.fmt, "none");
    assert_eq!(cred.att_stmt, Value::Map(vec![]));
    // Unknown formats only: packed.
    let mc = Mc::new(RP, b"u").with(11, Value::Array(vec![text("tpm")]));
    assert_eq!(h.make_credential(mc.build()).fmt, "packed");
}

#[test]
fn make_credential_waits_for_presence_and_creates_nothing_before() {
    let mut h = Harness::new();
    let before = h.storage.keys();
    let (outcome, _, _) = h.ctap2_once(0x01, Some(Mc::new(RP, b"u").rk().build()));
    assert_eq!(outcome, Outcome::NeedsPresence);
    assert_eq!(h.storage.keys(), before);
    let (outcome, _, _) = h.ctap2_once(0x01, Some(Mc::new(RP, b"u").build()));
    assert_eq!(outcome, Outcome::NeedsPresence);
}

#[test]
fn make_credential_option_and_algorithm_errors() {
    let mut h = Harness::new();
    let cases: Vec<(Mc, u8)> = vec![
        (Mc::new(RP, b"u").option("up", false), 0x2C),
        (Mc::new(RP, b"u").option("uv", true), 0x2C),
        (
            Mc {
                algs: vec![-257, -35],
                ..Mc::new(RP, b"u")
            },
            0x26,
        ),
        (
            Mc {
                algs: vec![],
                ..Mc::new(RP, b"u")
            },
            0x26,
        ),
        (Mc::new(RP, b"u").with(10, int(1)), 0x02),
        (
            Mc {
                cdh: [0; 32],
                ..Mc::new(RP, b"u")
            }
            .with(8, bytes(&[1; 16])),
            0x14,
        ),
        (
            Mc::new(RP, b"u").with(8, bytes(&[1; 16])).with(9, int(1)),
            0x35,
        ),
        (
            Mc::new(RP, b"u").with(8, bytes(&[1; 16])).with(9, int(7)),
            0x02,
        ),
    ];
    for (i, (mc, expected)) in cases.into_iter().enumerate() {
        let (outcome, status, _) = h.ctap2_once(0x01, Some(mc.build()));
        assert_eq!(outcome, Outcome::Response, "case {i}");
        assert_eq!(status, expected, "case {i}");
    }
    // EdDSA alone is supported (see ctap2::extensions::tests for its key).
    let (status, _, _) = h.ctap2(
        0x01,
        Some(
            Mc {
                algs: vec![-8],
                ..Mc::new(RP, b"u")
            }
            .build(),
        ),
    );
    assert_eq!(status, 0);
    // Unknown options are ignored; an unsupported alg next to ES256 is fine.
    h.make_credential(
        Mc {
            algs: vec![-257, -7],
            ..Mc::new(RP, b"u")
        }
        .option("zz", true)
        .build(),
    );
}

#[test]
fn zero_length_pin_auth_is_a_touch_probe() {
    let mut h = Harness::new();
    for cmd in [0x01u8, 0x02] {
        let params = if cmd == 1 {
            Mc::new(RP, b"u")
                .with(8, bytes(&[]))
                .with(9, int(1))
                .build()
        } else {
            let mut m = ga(RP, &[1; 32], &[], None);
            if let Value::Map(m) = &mut m {
                m.push((int(6), bytes(&[])));
                m.push((int(7), int(1)));
            }
            m
        };
        let (status, _, needed) = h.ctap2(cmd, Some(params));
        assert!(needed, "cmd {cmd}");
        assert_eq!(status, 0x35, "cmd {cmd}");
    }
}

#[test]
fn firefox_style_make_credential_works() {
    let mut h = Harness::new();
    let mut mc = Mc::new(RP, b"u").option("rk", false);
    mc.user_name = None;
    let mc = mc.with(
        6,
        Value::Map(vec![(text("hmac-secret"), Value::Bool(false))]),
    );
    let cred = h.make_credential(mc.build());
    assert_eq!(cred.auth_data.flags & 0x80, 0, "no extension outputs");
}

#[test]
fn exclude_list() {
    let mut h = Harness::new();
    let ours = h.make_credential(Mc::new(RP, b"u").build());
    let other_rp = h.make_credential(Mc::new("other.example", b"u").build());
    let resident = h.make_credential(Mc::new(RP, b"r").rk().build());

    // A credential of ours for this RP: presence first, then excluded.
    for id in [&ours.id, &resident.id] {
        let mc = Mc::new(RP, b"u2").exclude(&[0xAB; 64]).exclude(id);
        let (outcome, _, _) = h.ctap2_once(0x01, Some(mc.build()));
        assert_eq!(outcome, Outcome::NeedsPresence);
        let (status, _, needed) = h.ctap2(0x01, Some(mc.build()));
        assert!(needed);
        assert_eq!(status, 0x19);
    }
    // Another RP's credential and foreign IDs do not exclude.
    let mc = Mc::new(RP, b"u2")
        .exclude(&other_rp.id)
        .exclude(&[0x01; 77]);
    h.make_credential(mc.build());
}

#[test]
fn assertion_with_allow_list_and_counter() {
    let mut h = Harness::new();
    let cred = h.make_credential(Mc::new(RP, b"u").build());
    let foreign = vec![0x5A; 77];
    let cdh = client_data_hash("get");
    let mut last = 0;
    for _ in 0..3 {
        let value = ok_assertion(&mut h, RP, &[&foreign, &cred.id], &cdh);
        let a = check_assertion(&value, &cdh, |_| cred.public_key);
        assert_eq!(a.credential_id, cred.id);
        assert_eq!(a.auth_data.rp_id_hash, sha256(RP.as_bytes()));
        assert_eq!(a.auth_data.flags, 0x01, "UP only");
        assert!(a.auth_data.sign_count > last, "strictly increasing");
        assert_eq!(a.auth_data.sign_count, last + 1);
        last = a.auth_data.sign_count;
        assert!(a.user.is_none(), "no user for a non-resident credential");
        assert!(a.number_of_credentials.is_none());
    }
    // The counter is durable: after a crash the key continues above it (from
    // its reservation, so possibly with a jump of up to one block).
    let mut h = h.crash();
    let value = ok_assertion(&mut h, RP, &[&cred.id], &cdh);
    let a = check_assertion(&value, &cdh, |_| cred.public_key);
    assert!(a.auth_data.sign_count > last);
    assert!(a.auth_data.sign_count <= last + crate::authenticator::COUNTER_BLOCK);
    // After a clean stop a restart jumps nothing.
    last = a.auth_data.sign_count;
    let mut h = h.reopen();
    let value = ok_assertion(&mut h, RP, &[&cred.id], &cdh);
    let a = check_assertion(&value, &cdh, |_| cred.public_key);
    assert_eq!(a.auth_data.sign_count, last + 1);
}

/// The run after presence reuses the lookup of the run before only for the
/// same RP and the same credential at the same place of the allow list: a
/// transport that paired a touch with another request gets a fresh lookup.
#[test]
fn the_presence_rerun_trusts_its_lookup_only_for_the_same_request() {
    let mut h = Harness::new();
    let cred = h.make_credential(Mc::new(RP, b"u").build());
    let cdh = client_data_hash("get");
    let other = vec![0x5A; 77];
    for (rp, allow) in [("other.example", &cred.id), (RP, &other)] {
        let first = encode(0x02, Some(ga(RP, &cdh, &[&cred.id], None)));
        assert_eq!(
            h.raw(Protocol::Cbor, &first, false).0,
            Outcome::NeedsPresence
        );
        let second = encode(0x02, Some(ga(rp, &cdh, &[allow], None)));
        let (outcome, response) = h.raw(Protocol::Cbor, &second, true);
        assert_eq!(outcome, Outcome::Response);
        assert_eq!(
            decode_response(&response).0,
            0x2E,
            "NO_CREDENTIALS for {rp} with another request's lookup"
        );
    }
}

#[test]
fn silent_assertion_needs_no_presence() {
    let mut h = Harness::new();
    let cred = h.make_credential(Mc::new(RP, b"u").build());
    let requests = h.presence.requests();
    // Firefox's pre-flight: up=false, clientDataHash = SHA-256("").
    let cdh = sha256(b"");
    let (outcome, status, value) = h.ctap2_once(0x02, Some(ga(RP, &cdh, &[&cred.id], Some(false))));
    assert_eq!(outcome, Outcome::Response);
    assert_eq!(status, 0);
    let a = check_assertion(&value.unwrap(), &cdh, |_| cred.public_key);
    assert_eq!(a.auth_data.flags & 0x01, 0, "UP clear");
    assert_eq!(h.presence.requests(), requests, "no presence requested");
    // Unknown credential: answered at once too.
    let (outcome, status, _) = h.ctap2_once(0x02, Some(ga(RP, &cdh, &[&[7; 77]], Some(false))));
    assert_eq!((outcome, status), (Outcome::Response, 0x2E));
}

#[test]
fn assertion_needs_presence_but_no_credentials_answers_at_once() {
    let mut h = Harness::new();
    let cred = h.make_credential(Mc::new(RP, b"u").build());
    let cdh = client_data_hash("x");
    let (outcome, _, _) = h.ctap2_once(0x02, Some(ga(RP, &cdh, &[&cred.id], None)));
    assert_eq!(outcome, Outcome::NeedsPresence);
    let (outcome, status, _) = h.ctap2_once(0x02, Some(ga(RP, &cdh, &[&[1; 40]], None)));
    assert_eq!((outcome, status), (Outcome::Response, 0x2E));
    // Discoverable flow with no resident credentials for the RP.
    let (outcome, status, _) = h.ctap2_once(0x02, Some(ga(RP, &cdh, &[], None)));
    assert_eq!((outcome, status), (Outcome::Response, 0x2E));
}

#[test]
fn wrapped_ids_are_bound_to_their_rp_and_tamper_proof() {
    let mut h = Harness::new();
    let cred = h.make_credential(Mc::new(RP, b"u").build());
    let cdh = client_data_hash("x");
    let (status, _, needed) = h.get_assertion(ga("evil.example", &cdh, &[&cred.id], None));
    assert_eq!(status, 0x2E);
    assert!(!needed);
    for i in [0, 1, 30, 60, 76] {
        let mut bad = cred.id.clone();
        bad[i] ^= 0x01;
        let (status, _, _) = h.get_assertion(ga(RP, &cdh, &[&bad], None));
        assert_eq!(status, 0x2E, "byte {i}");
    }
    let mut long = cred.id.clone();
    long.push(0);
    let (status, _, _) = h.get_assertion(ga(RP, &cdh, &[&long, &cred.id[..76]], None));
    assert_eq!(status, 0x2E);
}

fn users_of(
    h: &mut Harness,
    rp: &str,
    creds: &[MadeCredential],
    cdh: &[u8; 32],
) -> Vec<(Vec<u8>, Option<u64>, u32)> {
    let key_for = |id: &[u8]| creds.iter().find(|c| c.id == id).unwrap().public_key;
    let value = ok_assertion(h, rp, &[], cdh);
    let a = check_assertion(&value, cdh, key_for);
    let mut out = vec![(user_id(&a), a.number_of_credentials, a.auth_data.sign_count)];
    let n = a.number_of_credentials.unwrap_or(1);
    for _ in 1..n {
        let (status, value, needed) = h.ctap2(0x08, None);
        assert_eq!(status, 0);
        assert!(!needed);
        let a = check_assertion(&value.unwrap(), cdh, key_for);
        assert_eq!(a.auth_data.flags, 0x01);
        assert!(a.number_of_credentials.is_none());
        out.push((user_id(&a), None, a.auth_data.sign_count));
    }
    out
}

fn user_id(a: &Assertion) -> Vec<u8> {
    let user = a
        .user
        .as_ref()
        .expect("resident credentials return the user");
    assert_eq!(
        user.as_map().unwrap().len(),
        1,
        "only the user id without UV"
    );
    map_text(user, "id").unwrap().as_bytes().unwrap().clone()
}

#[test]
fn discoverable_credentials_and_get_next_assertion() {
    let mut h = Harness::new();
    let mut creds = vec![];
    for user in [b"user-a", b"user-b", b"user-c"] {
        creds.push(h.make_credential(Mc::new(RP, user).rk().build()));
    }
    creds.push(h.make_credential(Mc::new("other.example", b"user-z").rk().build()));
    creds.push(h.make_credential(Mc::new(RP, b"not-resident").build()));
    let cdh = client_data_hash("discover");
    let got = users_of(&mut h, RP, &creds, &cdh);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].0, b"user-c", "most recent first");
    assert_eq!(got[0].1, Some(3));
    assert_eq!(got[1].0, b"user-b");
    assert_eq!(got[2].0, b"user-a");
    assert!(
        got.iter().all(|g| g.2 == 1),
        "each resident credential has its own counter"
    );
    // Nothing pending any more.
    let (status, _, _) = h.ctap2(0x08, None);
    assert_eq!(status, 0x30);
    // Second round: counters went up per credential.
    let got = users_of(&mut h, RP, &creds, &cdh);
    assert!(got.iter().all(|g| g.2 == 2));
    // Single resident credential: user id, no count.
    let got = users_of(&mut h, "other.example", &creds, &cdh);
    assert_eq!(got, vec![(b"user-z".to_vec(), None, 1)]);
    // Resident credentials are found through the allowList too, with their user.
    let value = ok_assertion(&mut h, RP, &[&creds[1].id], &cdh);
    let a = check_assertion(&value, &cdh, |_| creds[1].public_key);
    assert_eq!(user_id(&a), b"user-b");
    assert_eq!(a.auth_data.sign_count, 3);
    // And their counters survive a restart (exactly, after persist_counters).
    h.auth.persist_counters().unwrap();
    let mut h = h.reopen();
    let got = users_of(&mut h, RP, &creds, &cdh);
    assert_eq!(got[1], (b"user-b".to_vec(), None, 4));
}

#[test]
fn get_next_assertion_state_rules() {
    let mut h = Harness::new();
    let mut creds = vec![];
    for user in [b"a", b"b", b"c"] {
        creds.push(h.make_credential(Mc::new(RP, user).rk().build()));
    }
    let cdh = client_data_hash("d");
    let (status, _, _) = h.ctap2(0x08, None);
    assert_eq!(status, 0x30, "nothing pending");

    // Another channel may not continue.
    ok_assertion(&mut h, RP, &[], &cdh);
    h.channel += 1;
    assert_eq!(h.ctap2(0x08, None).0, 0x30);
    h.channel -= 1;
    assert_eq!(
        h.ctap2(0x08, None).0,
        0x30,
        "the wrong-channel attempt ended it"
    );

    // Expires 30 s after the last response: exactly 30 s is still in time.
    ok_assertion(&mut h, RP, &[], &cdh);
    h.now_ms += 20_000;
    assert_eq!(h.ctap2(0x08, None).0, 0);
    h.now_ms += 30_000;
    assert_eq!(h.ctap2(0x08, None).0, 0, "at 30 s");
    ok_assertion(&mut h, RP, &[], &cdh);
    h.now_ms += 30_001;
    assert_eq!(h.ctap2(0x08, None).0, 0x30);

    // Any other command ends it.
    ok_assertion(&mut h, RP, &[], &cdh);
    assert_eq!(h.ctap2(0x04, None).0, 0);
    assert_eq!(h.ctap2(0x08, None).0, 0x30);
    ok_assertion(&mut h, RP, &[], &cdh);
    h.u2f(&[0, 3, 0, 0, 0]);
    assert_eq!(h.ctap2(0x08, None).0, 0x30);
}

#[test]
fn same_rp_and_user_overwrites() {
    let mut h = Harness::new();
    let old = h.make_credential(Mc::new(RP, b"same-user").rk().build());
    let other = h.make_credential(Mc::new(RP, b"other-user").rk().build());
    let new = h.make_credential(Mc::new(RP, b"same-user").rk().build());
    assert_ne!(old.id, new.id);
    let mut listed = vec![];
    h.auth
        .for_each_resident_credential(|c| {
            listed.push((
                c.user_id.to_vec(),
                c.credential_id.to_vec(),
                c.rp_id.to_string(),
                c.user_name.map(|s| s.to_string()),
                c.algorithm,
            ))
        })
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&(
        b"same-user".to_vec(),
        new.id.clone(),
        RP.to_string(),
        Some("alice".into()),
        -7
    )));
    assert!(listed.iter().all(|l| l.1 != old.id));
    // The overwritten credential is gone, also by ID.
    let cdh = client_data_hash("o");
    assert_eq!(h.get_assertion(ga(RP, &cdh, &[&old.id], None)).0, 0x2E);
    let creds = [new, other];
    let got = users_of(&mut h, RP, &creds, &cdh);
    assert_eq!(got[0].0, b"same-user", "the overwrite is the newest");
    assert_eq!(h.auth.remaining_discoverable_credentials(), 98);
}

#[test]
fn key_store_full() {
    let mut h = Harness::new();
    for i in 0..100u32 {
        let (status, _, _) = h.ctap2(0x01, Some(Mc::new(RP, &i.to_be_bytes()).rk().build()));
        assert_eq!(status, 0, "credential {i}");
    }
    let (_, info, _) = h.ctap2(0x04, None);
    assert_eq!(map_int(&info.unwrap(), 0x14), Some(&int(0)));
    let (outcome, status, _) = h.ctap2_once(0x01, Some(Mc::new(RP, b"one more").rk().build()));
    assert_eq!(
        (outcome, status),
        (Outcome::Response, 0x28),
        "full: no presence asked"
    );
    // Overwriting an existing user still works, and non-resident credentials too.
    let (status, _, _) = h.ctap2(0x01, Some(Mc::new(RP, &5u32.to_be_bytes()).rk().build()));
    assert_eq!(status, 0);
    h.make_credential(Mc::new(RP, b"one more").build());
}

#[test]
fn reset_wipes_credentials_after_presence() {
    let mut h = Harness::new();
    let wrapped = h.make_credential(Mc::new(RP, b"u").build());
    let resident = h.make_credential(Mc::new(RP, b"r").rk().build());
    let cdh = client_data_hash("r");
    let value = ok_assertion(&mut h, RP, &[&wrapped.id], &cdh);
    let before = check_assertion(&value, &cdh, |_| wrapped.public_key)
        .auth_data
        .sign_count;

    let (outcome, _, _) = h.ctap2_once(0x07, None);
    assert_eq!(outcome, Outcome::NeedsPresence);
    assert_eq!(
        h.auth.remaining_discoverable_credentials(),
        99,
        "nothing happened yet"
    );
    let (status, value, needed) = h.ctap2(0x07, None);
    assert_eq!((status, value, needed), (0, None, true));

    assert_eq!(h.get_assertion(ga(RP, &cdh, &[&wrapped.id], None)).0, 0x2E);
    assert_eq!(h.get_assertion(ga(RP, &cdh, &[&resident.id], None)).0, 0x2E);
    assert_eq!(h.get_assertion(ga(RP, &cdh, &[], None)).0, 0x2E);
    assert_eq!(h.storage.keys(), [RecordKey::Device]);
    assert_eq!(h.auth.remaining_discoverable_credentials(), 100);
    // The device-wide counter never goes backwards: in global mode a fresh
    // credential signs above everything signed before the reset.
    assert!(h.auth.state.counter_mark >= before);
    h.auth
        .set_counter_mode(crate::authenticator::CounterMode::Global);
    let fresh = h.make_credential(Mc::new(RP, b"u").build());
    let value = ok_assertion(&mut h, RP, &[&fresh.id], &cdh);
    assert!(
        check_assertion(&value, &cdh, |_| fresh.public_key)
            .auth_data
            .sign_count
            > before
    );
    // Still true after a power cycle.
    let mut h = h.reopen();
    assert_eq!(h.get_assertion(ga(RP, &cdh, &[&wrapped.id], None)).0, 0x2E);
    ok_assertion(&mut h, RP, &[&fresh.id], &cdh);
}

#[test]
fn reset_window_when_enforced() {
    let mut h = Harness::with_config(Config {
        reset_requires_fresh_power_up: true,
        ..Config::default()
    });
    h.now_ms = 9_000;
    assert_eq!(h.ctap2(0x07, None).0, 0);
    h.now_ms = 10_001;
    let (outcome, status, _) = h.ctap2_once(0x07, None);
    assert_eq!((outcome, status), (Outcome::Response, 0x30));
}

#[test]
fn selection_waits_for_presence() {
    let mut h = Harness::new();
    let (status, value, needed) = h.ctap2(0x0B, None);
    assert_eq!((status, value, needed), (0, None, true));
}

#[test]
fn storage_failure_gives_error_and_no_signature() {
    use crate::authenticator::COUNTER_BLOCK;
    let mut h = Harness::new();
    let wrapped = h.make_credential(Mc::new(RP, b"u").build());
    let resident = h.make_credential(Mc::new(RP, b"r").rk().build());
    let cdh = client_data_hash("s");
    for id in [&wrapped.id, &resident.id] {
        let key = if *id == wrapped.id {
            wrapped.public_key
        } else {
            resident.public_key
        };
        // Values inside the reservation need no write at all.
        h.storage.set_fail_writes(Some(StorageError::Io));
        for expected in 1..COUNTER_BLOCK {
            let value = ok_assertion(&mut h, RP, &[id], &cdh);
            let count = check_assertion(&value, &cdh, |_| key).auth_data.sign_count;
            assert_eq!(count, expected);
        }
        // The next value needs a new reservation: no signature without it.
        let (status, value, _) = h.get_assertion(ga(RP, &cdh, &[id], None));
        assert_eq!(status, 0x7F);
        assert!(value.is_none(), "no signature without a durable counter");
        h.storage.set_fail_writes(None);
        let value = ok_assertion(&mut h, RP, &[id], &cdh);
        assert_eq!(
            check_assertion(&value, &cdh, |_| key).auth_data.sign_count,
            COUNTER_BLOCK,
            "the failed attempt used no count"
        );
    }
    // Creating a resident credential on a failing store fails cleanly.
    h.storage.set_fail_writes(Some(StorageError::Io));
    assert_eq!(h.ctap2(0x01, Some(Mc::new(RP, b"x").rk().build())).0, 0x7F);
    h.storage.set_fail_writes(Some(StorageError::Full));
    assert_eq!(h.ctap2(0x01, Some(Mc::new(RP, b"x").rk().build())).0, 0x28);
    h.storage.set_fail_writes(None);
    assert_eq!(h.auth.remaining_discoverable_credentials(), 99);
}

#[test]
fn malformed_requests_get_the_right_errors() {
    let mut h = Harness::new();
    let cred = h.make_credential(Mc::new(RP, b"u").build());
    let valid_ga = encode(0x02, Some(ga(RP, &[3; 32], &[&cred.id], Some(false))));
    let mut eleven = vec![];
    for i in 0..11u8 {
        eleven.push(vec![i; 16]);
    }
    let eleven_refs: Vec<&[u8]> = eleven.iter().map(|v| v.as_slice()).collect();
    let wrong_rp_type = Value::Map(vec![
        (int(1), bytes(&[0; 32])),
        (int(2), text("example.com")),
        (int(3), Value::Map(vec![(text("id"), bytes(b"u"))])),
        (int(4), Value::Array(vec![])),
    ]);
    let user_id_as_text = Mc {
        user_id: vec![],
        ..Mc::new(RP, b"")
    }
    .build();
    let user_id_as_text = match user_id_as_text {
        Value::Map(mut m) => {
            m[2].1 = Value::Map(vec![(text("id"), text("not bytes"))]);
            Value::Map(m)
        }
        _ => unreachable!(),
    };
    let cases: Vec<(Vec<u8>, u8, &str)> = vec![
        (vec![], 0x03, "empty message"),
        (vec![0x55], 0x01, "unknown command"),
        (vec![0x06, 0xA0], 0x14, "clientPin without subCommand"),
        (
            vec![0x06, 0xA1, 0x02, 0x08],
            0x3E,
            "undefined clientPin subCommand",
        ),
        (
            vec![0x0A, 0xA1, 0x01, 0x08],
            0x3E,
            "undefined credMgmt subCommand",
        ),
        (
            vec![0x0D, 0xA1, 0x01, 0x18, 0xFF],
            0x3E,
            "config vendorPrototype",
        ),
        (
            vec![0x0D, 0xA1, 0x01, 0x01],
            0x02,
            "config enableEnterpriseAttestation",
        ),
        (
            vec![0x0D, 0xA1, 0x01, 0x02, 0x00],
            0x12,
            "config trailing bytes",
        ),
        (
            vec![0x0A, 0xA1, 0x01, 0x61, 0x61],
            0x11,
            "credMgmt subCommand as text",
        ),
        (vec![0x01], 0x12, "no CBOR"),
        (
            valid_ga[..valid_ga.len() - 5].to_vec(),
            0x12,
            "truncated CBOR",
        ),
        (vec![0x02, 0xFF, 0x00, 0x13], 0x12, "garbage"),
        (vec![0x02, 0x82, 0x01, 0x02], 0x11, "array instead of map"),
        (encode(0x01, Some(wrong_rp_type)), 0x11, "rp as text"),
        (encode(0x01, Some(user_id_as_text)), 0x11, "user.id as text"),
        (
            encode(0x02, Some(Value::Map(vec![(int(1), text(RP))]))),
            0x14,
            "missing clientDataHash",
        ),
        (
            encode(0x02, Some(Value::Map(vec![(int(2), bytes(&[0; 32]))]))),
            0x14,
            "missing rpId",
        ),
        (
            encode(0x01, Some(Value::Map(vec![(int(1), bytes(&[0; 32]))]))),
            0x14,
            "missing rp/user/params",
        ),
        (
            encode(0x02, Some(ga(RP, &[3; 32], &eleven_refs, None))),
            0x12,
            "11-entry allowList",
        ),
        (
            encode(
                0x02,
                Some(Value::Map(vec![
                    (int(1), text(RP)),
                    (int(2), bytes(&[3; 31])),
                ])),
            ),
            0x03,
            "short clientDataHash",
        ),
        (
            encode(
                0x02,
                Some(Value::Map(vec![
                    (int(1), text(RP)),
                    (int(2), bytes(&[0; 32])),
                    (int(5), Value::Map(vec![(text("rk"), Value::Bool(true))])),
                ])),
            ),
            0x2B,
            "rk option in getAssertion",
        ),
        (
            encode(
                0x02,
                Some(Value::Map(vec![
                    (int(1), text(RP)),
                    (int(2), bytes(&[0; 32])),
                    (int(5), Value::Map(vec![(text("uv"), Value::Bool(true))])),
                ])),
            ),
            0x2C,
            "uv option without built-in UV",
        ),
        (
            encode(
                0x02,
                Some(Value::Map(vec![
                    (int(1), text(RP)),
                    (int(2), bytes(&[0; 32])),
                    (int(5), Value::Map(vec![(text("up"), int(0))])),
                ])),
            ),
            0x11,
            "up not a bool",
        ),
    ];
    for (request, expected, what) in cases {
        let (outcome, response) = h.raw(Protocol::Cbor, &request, false);
        assert_eq!(outcome, Outcome::Response, "{what}");
        assert_eq!(response, vec![expected], "{what}");
        // The next valid request still works.
        let (outcome, response) = h.raw(Protocol::Cbor, &valid_ga, false);
        assert_eq!(outcome, Outcome::Response);
        assert_eq!(response[0], 0, "after {what}");
    }
}

#[test]
fn presence_denied_by_transport_leaves_no_credential() {
    // The transport answers denial itself; the app must simply not have acted.
    let mut h = Harness::new();
    h.presence.set_script(PresenceScript::Deny);
    let (outcome, _, _) = h.ctap2_once(0x01, Some(Mc::new(RP, b"u").rk().build()));
    assert_eq!(outcome, Outcome::NeedsPresence);
    assert_eq!(h.auth.remaining_discoverable_credentials(), 100);
}
