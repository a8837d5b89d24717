//! PIN/UV auth wired into authenticatorClientPIN, makeCredential and
//! getAssertion, driven through `App::handle` with real CBOR and the platform
//! side of PIN/UV auth protocols 1 and 2.

use std::vec;
use std::vec::Vec;

use ciborium::Value;

use super::platform::*;
use crate::app::{App, Outcome};
use crate::authenticator::testkit::*;
use crate::pin::token::INITIAL_USAGE_TIME_LIMIT_MS;

const RP: &str = "example.com";
const OTHER_RP: &str = "other.example";

/// A harness with the test PIN set over `protocol`.
fn with_pin(protocol: u8) -> (Harness, Platform) {
    let mut h = Harness::new();
    let mut p = Platform::new(protocol);
    assert_eq!(p.set_pin(&mut h, PIN), 0);
    (h, p)
}

fn info_option(h: &mut Harness, name: &str) -> Option<Value> {
    let (_, info, _) = h.ctap2(0x04, None);
    map_text(map_int(&info.unwrap(), 4).unwrap(), name).cloned()
}

#[test]
fn set_pin_is_reported_and_tokens_give_uv_with_both_protocols() {
    for protocol in [1, 2] {
        let mut h = Harness::new();
        let mut p = Platform::new(protocol);
        assert_eq!(info_option(&mut h, "clientPin"), Some(Value::Bool(false)));
        assert_eq!(p.retries(&mut h), Err(0x35), "no PIN: PIN_NOT_SET");
        assert_eq!(p.set_pin(&mut h, PIN), 0);
        assert_eq!(info_option(&mut h, "clientPin"), Some(Value::Bool(true)));
        assert_eq!(p.retries(&mut h), Ok((8, false)));
        assert_eq!(p.set_pin(&mut h, "5678"), 0x33, "a PIN is already set");

        // makeCredential with a token: UP | UV | AT, self attestation verifies.
        let token = p.must_token(&mut h, perm::MC | perm::GA, None);
        let mc = Mc::new(RP, b"user").rk();
        let cred = h.make_credential(mc_with(&mc, &token));
        assert_eq!(cred.auth_data.flags, 0x45, "protocol {protocol}");

        // getAssertion with a fresh token: UP | UV, and the user's names.
        let token = p.must_token(&mut h, perm::GA, Some(RP));
        let cdh = client_data_hash("ga");
        let (status, value, needed) = h.get_assertion(ga_with(RP, &cdh, &[], None, &token));
        assert_eq!((status, needed), (0, true));
        let a = check_assertion(&value.unwrap(), &cdh, |_| cred.public_key);
        assert_eq!(a.auth_data.flags, 0x05);
        assert_eq!(
            user_fields(a.user.as_ref().unwrap()),
            (
                b"user".to_vec(),
                Some("alice".into()),
                Some("alice display".into())
            )
        );
    }
}

#[test]
fn legacy_get_pin_token_grants_mc_and_ga() {
    let (mut h, mut p) = with_pin(1);
    let token = p.token(&mut h, PIN, None, None).unwrap();
    let mc = Mc::new(RP, b"u");
    assert_eq!(
        h.make_credential(mc_with(&mc, &token)).auth_data.flags,
        0x45
    );
}

#[test]
fn without_a_token_a_pin_requires_one_for_discoverable_credentials_only() {
    let (mut h, _) = with_pin(2);
    assert_eq!(
        info_option(&mut h, "makeCredUvNotRqd"),
        Some(Value::Bool(true))
    );
    // rk=true: PUAT_REQUIRED at once, before any presence.
    let (outcome, status, _) = h.ctap2_once(0x01, Some(Mc::new(RP, b"u").rk().build()));
    assert_eq!((outcome, status), (Outcome::Response, 0x36));
    assert_eq!(h.auth.remaining_discoverable_credentials(), 100);
    // rk=false: made without UV.
    let cred = h.make_credential(Mc::new(RP, b"u").build());
    assert_eq!(cred.auth_data.flags, 0x41);
    // getAssertion without a token: UP only.
    let cdh = client_data_hash("x");
    let (status, value, needed) = h.get_assertion(ga(RP, &cdh, &[&cred.id], None));
    assert_eq!((status, needed), (0, true));
    let a = check_assertion(&value.unwrap(), &cdh, |_| cred.public_key);
    assert_eq!(a.auth_data.flags, 0x01);
}

#[test]
fn user_identity_needs_uv() {
    let (mut h, mut p) = with_pin(2);
    let mut creds = vec![];
    for user in [&b"user-a"[..], b"user-b"] {
        let token = p.must_token(&mut h, perm::MC, None);
        creds.push(h.make_credential(mc_with(&Mc::new(RP, user).rk(), &token)));
    }
    let key_for = |id: &[u8]| creds.iter().find(|c| c.id == id).unwrap().public_key;
    let cdh = client_data_hash("who");

    // Without UV: only the user handle, for the first and the next assertion.
    let (status, value, _) = h.get_assertion(ga(RP, &cdh, &[], None));
    assert_eq!(status, 0);
    let a = check_assertion(&value.unwrap(), &cdh, key_for);
    assert_eq!(a.number_of_credentials, Some(2));
    assert_eq!(
        user_fields(a.user.as_ref().unwrap()),
        (b"user-b".to_vec(), None, None)
    );
    let (status, value, _) = h.ctap2(0x08, None);
    assert_eq!(status, 0);
    let a = check_assertion(&value.unwrap(), &cdh, key_for);
    assert_eq!(
        user_fields(a.user.as_ref().unwrap()),
        (b"user-a".to_vec(), None, None)
    );

    // With UV: names too, also from getNextAssertion, which keeps the UV flag.
    let token = p.must_token(&mut h, perm::GA, None);
    let (status, value, _) = h.get_assertion(ga_with(RP, &cdh, &[], None, &token));
    assert_eq!(status, 0);
    let a = check_assertion(&value.unwrap(), &cdh, key_for);
    assert_eq!(a.auth_data.flags, 0x05);
    assert_eq!(
        user_fields(a.user.as_ref().unwrap()).1.as_deref(),
        Some("alice")
    );
    let (status, value, _) = h.ctap2(0x08, None);
    assert_eq!(status, 0);
    let a = check_assertion(&value.unwrap(), &cdh, key_for);
    assert_eq!(a.auth_data.flags, 0x05);
    assert_eq!(
        user_fields(a.user.as_ref().unwrap()),
        (
            b"user-a".to_vec(),
            Some("alice".into()),
            Some("alice display".into())
        )
    );
}

#[test]
fn tokens_need_the_right_permission() {
    let (mut h, mut p) = with_pin(2);
    let cred = h.make_credential(Mc::new(RP, b"u").build());
    let cdh = client_data_hash("perm");
    let mc = Mc::new(RP, b"u2");
    for permissions in [perm::GA, perm::CM, perm::ACFG, perm::LBW] {
        let token = p.must_token(&mut h, permissions, None);
        let (outcome, status, _) = h.ctap2_once(0x01, Some(mc_with(&mc, &token)));
        assert_eq!(
            (outcome, status),
            (Outcome::Response, 0x33),
            "mc with {permissions:#x}"
        );
    }
    for permissions in [perm::MC, perm::CM] {
        let token = p.must_token(&mut h, permissions, None);
        let request = ga_with(RP, &cdh, &[&cred.id], None, &token);
        let (outcome, status, _) = h.ctap2_once(0x02, Some(request));
        assert_eq!(
            (outcome, status),
            (Outcome::Response, 0x33),
            "ga with {permissions:#x}"
        );
    }
    // No built-in UV, so no bio enrollment permission.
    assert_eq!(p.token(&mut h, PIN, Some(perm::BE), None).err(), Some(0x40));
}

#[test]
fn tokens_are_bound_to_one_rp() {
    let (mut h, mut p) = with_pin(1);
    let ours = h.make_credential(Mc::new(RP, b"u").build());
    let theirs = h.make_credential(Mc::new(OTHER_RP, b"u").build());
    let cdh = client_data_hash("bind");

    // A token asked for one RP does not work for another.
    let token = p.must_token(&mut h, perm::GA, Some(RP));
    let request = ga_with(OTHER_RP, &cdh, &[&theirs.id], Some(false), &token);
    assert_eq!(h.get_assertion(request).0, 0x33);

    // An unbound token becomes bound to the first RP it is used for. A silent
    // (up=false) assertion does not use up the token.
    let token = p.must_token(&mut h, perm::GA, None);
    let request = ga_with(RP, &cdh, &[&ours.id], Some(false), &token);
    let (status, value, needed) = h.get_assertion(request);
    assert_eq!((status, needed), (0, false));
    assert_eq!(
        check_assertion(&value.unwrap(), &cdh, |_| ours.public_key)
            .auth_data
            .flags,
        0x04,
        "UV without UP"
    );
    let request = ga_with(OTHER_RP, &cdh, &[&theirs.id], Some(false), &token);
    assert_eq!(h.get_assertion(request).0, 0x33);
    let request = ga_with(RP, &cdh, &[&ours.id], None, &token);
    assert_eq!(h.get_assertion(request).0, 0);
}

#[test]
fn user_presence_uses_up_the_token() {
    let (mut h, mut p) = with_pin(2);
    let token = p.must_token(&mut h, perm::MC | perm::GA, None);
    let mc = Mc::new(RP, b"u");
    let cred = h.make_credential(mc_with(&mc, &token));
    let (outcome, status, _) = h.ctap2_once(0x01, Some(mc_with(&mc, &token)));
    assert_eq!((outcome, status), (Outcome::Response, 0x33));
    let cdh = client_data_hash("again");
    let request = ga_with(RP, &cdh, &[&cred.id], None, &token);
    assert_eq!(h.get_assertion(request).0, 0x33);
}

#[test]
fn a_request_without_a_token_leaves_another_applications_token_alone() {
    // Issue 10 §1 defect 7: only a request whose pinUvAuthParam used the
    // token uses it up (CTAP 2.1 §6.1.2 step 14.4, §6.2.2 step 9).
    let (mut h, mut p) = with_pin(2);
    let token = p.must_token(&mut h, perm::MC | perm::GA, None);
    // Another application: a non-discoverable credential and an assertion,
    // neither with a pinUvAuthParam, both with user presence.
    let theirs = h.make_credential(Mc::new(OTHER_RP, b"them").build());
    assert_eq!(theirs.auth_data.flags & 0x04, 0, "no UV without a token");
    let cdh = client_data_hash("theirs");
    let (status, _, needed) = h.get_assertion(ga(OTHER_RP, &cdh, &[&theirs.id], None));
    assert_eq!((status, needed), (0, true));
    // The first application's token still works, once.
    let mc = Mc::new(RP, b"us");
    let ours = h.make_credential(mc_with(&mc, &token));
    assert_eq!(ours.auth_data.flags, 0x45, "UP | UV | AT");
    assert_eq!(h.ctap2_once(0x01, Some(mc_with(&mc, &token))).1, 0x33);

    // The same for getAssertion: a fresh token survives a tokenless
    // assertion and is used up by its own.
    let token = p.must_token(&mut h, perm::GA, Some(RP));
    let (status, _, _) = h.get_assertion(ga(OTHER_RP, &cdh, &[&theirs.id], None));
    assert_eq!(status, 0);
    let cdh = client_data_hash("ours");
    let (status, value, _) = h.get_assertion(ga_with(RP, &cdh, &[&ours.id], None, &token));
    assert_eq!(status, 0);
    let a = check_assertion(&value.unwrap(), &cdh, |_| ours.public_key);
    assert_eq!(a.auth_data.flags, 0x05, "UP | UV");
    let request = ga_with(RP, &cdh, &[&ours.id], None, &token);
    assert_eq!(
        h.get_assertion(request).0,
        0x33,
        "used up by its own request"
    );
}

#[test]
fn an_unused_token_expires_by_the_clock() {
    let (mut h, mut p) = with_pin(2);
    let token = p.must_token(&mut h, perm::MC, None);
    h.now_ms += INITIAL_USAGE_TIME_LIMIT_MS;
    let mc = Mc::new(RP, b"u");
    let (outcome, status, _) = h.ctap2_once(0x01, Some(mc_with(&mc, &token)));
    assert_eq!((outcome, status), (Outcome::Response, 0x33));
    // Just in time works.
    let token = p.must_token(&mut h, perm::MC, None);
    h.now_ms += INITIAL_USAGE_TIME_LIMIT_MS - 1;
    assert_eq!(
        h.make_credential(mc_with(&mc, &token)).auth_data.flags,
        0x45
    );
}

#[test]
fn malformed_pin_uv_auth_params() {
    let (mut h, mut p) = with_pin(2);
    let token = p.must_token(&mut h, perm::MC, None);
    let mc = Mc::new(RP, b"u");
    let good = token.mac(&[&mc.cdh]);
    let mut bad = good.clone();
    bad[0] ^= 1;
    let cases: Vec<(Value, u8)> = vec![
        (mc.build().clone_with(8, bytes(&good)), 0x14),
        (
            mc.build().clone_with(8, bytes(&good)).clone_with(9, int(3)),
            0x02,
        ),
        (
            mc.build().clone_with(8, bytes(&bad)).clone_with(9, int(2)),
            0x33,
        ),
        (
            mc.build()
                .clone_with(8, bytes(&good[..16]))
                .clone_with(9, int(2)),
            0x33,
        ),
        (
            mc.build().clone_with(8, bytes(&good)).clone_with(9, int(1)),
            0x33,
        ),
    ];
    for (i, (request, expected)) in cases.into_iter().enumerate() {
        let (outcome, status, _) = h.ctap2_once(0x01, Some(request));
        assert_eq!((outcome, status), (Outcome::Response, expected), "case {i}");
    }
    // The token survived the failures.
    assert_eq!(
        h.make_credential(mc_with(&mc, &token)).auth_data.flags,
        0x45
    );
}

#[test]
fn zero_length_pin_uv_auth_param_with_a_pin_is_pin_invalid() {
    let (mut h, _) = with_pin(1);
    let mc = Mc::new(RP, b"u").with(8, bytes(&[])).with(9, int(1));
    let (status, _, needed) = h.ctap2(0x01, Some(mc.build()));
    assert_eq!((status, needed), (0x31, true));
    let request = ga(RP, &[1; 32], &[], None)
        .clone_with(6, bytes(&[]))
        .clone_with(7, int(2));
    let (status, _, needed) = h.ctap2(0x02, Some(request));
    assert_eq!((status, needed), (0x31, true));
}

#[test]
fn uv_option_is_refused_without_a_token_and_ignored_with_one() {
    let (mut h, mut p) = with_pin(2);
    let (_, status, _) = h.ctap2_once(0x01, Some(Mc::new(RP, b"u").option("uv", true).build()));
    assert_eq!(status, 0x2C);
    let token = p.must_token(&mut h, perm::MC, None);
    let mc = Mc::new(RP, b"u").option("uv", true);
    assert_eq!(
        h.make_credential(mc_with(&mc, &token)).auth_data.flags,
        0x45
    );
}

#[test]
fn silent_preflight_answers_at_once_with_a_pin() {
    let (mut h, _) = with_pin(2);
    let cred = h.make_credential(Mc::new(RP, b"u").build());
    let requests = h.presence.requests();
    let cdh = sha256(b"");
    let (outcome, status, value) = h.ctap2_once(0x02, Some(ga(RP, &cdh, &[&cred.id], Some(false))));
    assert_eq!((outcome, status), (Outcome::Response, 0));
    let a = check_assertion(&value.unwrap(), &cdh, |_| cred.public_key);
    assert_eq!(a.auth_data.flags, 0, "neither UP nor UV");
    assert_eq!(h.presence.requests(), requests);
}

#[test]
fn retries_survive_a_restart() {
    let (mut h, mut p) = with_pin(2);
    assert_eq!(p.token(&mut h, "0000", None, None).err(), Some(0x31));
    assert_eq!(
        p.token(&mut h, "0000", Some(perm::GA), None).err(),
        Some(0x31)
    );
    assert_eq!(p.retries(&mut h), Ok((6, false)));
    let mut h = h.reopen();
    assert_eq!(p.retries(&mut h), Ok((6, false)));
    assert_eq!(info_option(&mut h, "clientPin"), Some(Value::Bool(true)));
    // A correct PIN restores them.
    p.must_token(&mut h, perm::GA, None);
    assert_eq!(p.retries(&mut h), Ok((8, false)));
}

#[test]
fn three_wrong_pins_block_until_a_power_cycle_not_a_bus_reset() {
    // Issue 10 §1 defect 6: a USB bus reset keeps the key powered.
    let (mut h, mut p) = with_pin(1);
    let early = p.must_token(&mut h, perm::MC, None);
    for expected in [0x31, 0x31, 0x34] {
        assert_eq!(p.token(&mut h, "0000", None, None).err(), Some(expected));
    }
    assert_eq!(p.retries(&mut h), Ok((5, true)));
    // Blocked: even the right PIN spends nothing and fails.
    assert_eq!(p.token(&mut h, PIN, Some(perm::MC), None).err(), Some(0x34));
    assert_eq!(p.change_pin(&mut h, PIN, "9999"), 0x34);
    assert_eq!(p.retries(&mut h), Ok((5, true)));

    // A bus reset: still blocked, no attempt spent, and (the key kept its
    // RAM) the token issued before still works.
    h.auth.transport_reset();
    assert_eq!(p.retries(&mut h), Ok((5, true)));
    assert_eq!(p.token(&mut h, PIN, Some(perm::MC), None).err(), Some(0x34));
    assert_eq!(p.retries(&mut h), Ok((5, true)));
    let mc = Mc::new(RP, b"u");
    assert_eq!(
        h.make_credential(mc_with(&mc, &early)).auth_data.flags,
        0x45
    );

    // A power cycle (the shell builds the authenticator again from storage):
    // unblocked, and old tokens are gone.
    let mut h = h.reopen();
    assert_eq!(p.retries(&mut h), Ok((5, false)));
    let early = p.must_token(&mut h, perm::MC, None);
    let mut h = h.reopen();
    let (_, status, _) = h.ctap2_once(0x01, Some(mc_with(&mc, &early)));
    assert_eq!(status, 0x33, "tokens do not survive a power cycle");
    assert_eq!(p.token(&mut h, "0000", None, None).err(), Some(0x31));
    let token = p.must_token(&mut h, perm::MC, None);
    assert_eq!(p.retries(&mut h), Ok((8, false)));
    assert_eq!(
        h.make_credential(mc_with(&mc, &token)).auth_data.flags,
        0x45
    );
}

#[test]
fn change_pin_replaces_the_pin_and_invalidates_tokens() {
    let (mut h, mut p) = with_pin(2);
    let token = p.must_token(&mut h, perm::MC, None);
    assert_eq!(p.change_pin(&mut h, "0000", "5678"), 0x31);
    assert_eq!(p.change_pin(&mut h, PIN, "5678"), 0);
    let mc = Mc::new(RP, b"u");
    assert_eq!(h.ctap2_once(0x01, Some(mc_with(&mc, &token))).1, 0x33);
    assert_eq!(p.token(&mut h, PIN, None, None).err(), Some(0x31));
    assert!(p.token(&mut h, "5678", None, None).is_ok());
}

#[test]
fn reset_clears_the_pin() {
    let (mut h, mut p) = with_pin(2);
    let (status, _, needed) = h.ctap2(0x07, None);
    assert_eq!((status, needed), (0, true));
    assert_eq!(info_option(&mut h, "clientPin"), Some(Value::Bool(false)));
    assert_eq!(p.retries(&mut h), Err(0x35));
    // Discoverable credentials need no token again.
    h.make_credential(Mc::new(RP, b"u").rk().build());
    let mut h = h.reopen();
    assert_eq!(info_option(&mut h, "clientPin"), Some(Value::Bool(false)));
    assert_eq!(p.set_pin(&mut h, "4321"), 0);
}

/// `Value` builder shorthand for adding a map entry.
trait CloneWith {
    fn clone_with(self, key: i64, value: Value) -> Value;
}

impl CloneWith for Value {
    fn clone_with(mut self, key: i64, value: Value) -> Value {
        if let Value::Map(m) = &mut self {
            m.push((int(key), value));
        }
        self
    }
}

#[test]
fn a_transport_reset_through_the_app_trait_keeps_pin_state() {
    // `transport_reset` as the transport reaches it (`Device::reset`).
    let (mut h, mut p) = with_pin(2);
    for _ in 0..3 {
        let _ = p.token(&mut h, "0000", None, None);
    }
    let app: &mut dyn App = &mut h.auth;
    app.transport_reset();
    assert_eq!(p.retries(&mut h), Ok((5, true)));
}

/// Issue 10 §1 defect 10, through the whole key: a state holding the PIN
/// record of release 96f7afd (the bytes of its frozen fixture) starts, the
/// record is stretched and rewritten, and over CTAP that PIN gives tokens that
/// work (a discoverable registration with the mc token, UV flagged); the
/// key's minPINLength and the retries count as the record said.
#[test]
fn a_key_with_a_pin_record_of_release_96f7afd_takes_that_pin() {
    use crate::authenticator::Config;
    use crate::pin::state::fixtures;
    use crate::platform::RecordKey;
    use crate::test_platform::MemoryStorage;

    for old in [&fixtures::V1[..], &fixtures::V2[..]] {
        let storage = MemoryStorage::new();
        storage.put_raw(RecordKey::Pin, old);
        let mut h = Harness::on_storage(
            storage,
            Config {
                aaguid: AAGUID,
                builtin_uv: true,
                ..Config::default()
            },
            21,
        );
        assert_eq!(h.storage.get(RecordKey::Pin).unwrap()[0], 3, "migrated");
        let mut p = Platform::new(2);
        assert_eq!(p.retries(&mut h), Ok((6, false)));
        let (_, info, _) = h.ctap2(0x04, None);
        assert_eq!(map_int(&info.unwrap(), 0x0D), Some(&int(6)), "minPINLength");
        assert_eq!(
            p.token(&mut h, "fixture-pin-0000", None, None).err(),
            Some(0x31)
        );
        let token = p
            .token(&mut h, fixtures::PIN, Some(perm::MC), Some(RP))
            .unwrap();
        let mc = Mc::new(RP, b"after-migration").rk();
        let made = h.make_credential(mc_with(&mc, &token));
        assert_eq!(made.auth_data.flags & 0x05, 0x05, "UP and UV");
        assert_eq!(p.retries(&mut h), Ok((8, false)));
        // A restart reads the migrated record: the same PIN still works.
        let mut h = h.reopen();
        p.token(&mut h, fixtures::PIN, None, None).unwrap();
    }
}
