//! Built-in user verification (`Config::builtin_uv`): getInfo, clientPIN
//! getPinUvAuthTokenUsingUvWithPermissions and getUVRetries, the `uv` option of
//! makeCredential / getAssertion, uvRetries, alwaysUv and makeCredUvNotRqd,
//! driven through `App::handle`.

use std::vec;

use ciborium::Value;

use super::platform::*;
use crate::authenticator::testkit::*;
use crate::authenticator::Config;
use crate::platform::{StorageError, UvStatus};

const RP: &str = "example.com";
const OTHER_RP: &str = "other.example";

const INVALID_OPTION: u8 = 0x2C;
const OPERATION_DENIED: u8 = 0x27;
const PIN_AUTH_INVALID: u8 = 0x33;
const PUAT_REQUIRED: u8 = 0x36;
const UV_BLOCKED: u8 = 0x3C;
const INVALID_SUBCOMMAND: u8 = 0x3E;
const UV_INVALID: u8 = 0x3F;
const OTHER: u8 = 0x7F;

/// A harness whose key has built-in UV (approving, as scripted by default).
fn with_uv() -> Harness {
    Harness::with_config(Config {
        aaguid: AAGUID,
        builtin_uv: true,
        ..Config::default()
    })
}

fn info(h: &mut Harness) -> Value {
    let (status, info, _) = h.ctap2(0x04, None);
    assert_eq!(status, 0);
    info.unwrap()
}

/// A makeCredential / getAssertion call: (status, response, needed presence).
fn mc_call(h: &mut Harness, mc: &Mc) -> (u8, Option<MadeCredential>, bool) {
    let (status, value, needed) = h.ctap2(0x01, Some(mc.build()));
    (
        status,
        value.map(|v| MadeCredential::parse(&v, &mc.cdh)),
        needed,
    )
}

/// A getAssertion request with `options`.
fn ga_options(rp: &str, cdh: &[u8; 32], allow: &[&[u8]], options: &[(&str, bool)]) -> Value {
    let Value::Map(mut m) = ga(rp, cdh, allow, None) else {
        unreachable!()
    };
    let options = options
        .iter()
        .map(|(k, v)| (text(k), Value::Bool(*v)))
        .collect();
    m.push((int(5), Value::Map(options)));
    Value::Map(m)
}

#[test]
fn get_info_advertises_uv_only_when_built_in() {
    let mut h = Harness::new();
    let off = info(&mut h);
    assert_eq!(map_text(map_int(&off, 4).unwrap(), "uv"), None);
    assert_eq!(map_int(&off, 0x11), None, "preferredPlatformUvAttempts");
    assert_eq!(map_int(&off, 0x12), None, "uvModality");

    let mut h = with_uv();
    let on = info(&mut h);
    let options = map_int(&on, 4).unwrap();
    assert_eq!(map_text(options, "uv"), Some(&Value::Bool(true)));
    assert_eq!(
        map_text(options, "pinUvAuthToken"),
        Some(&Value::Bool(true))
    );
    assert_eq!(map_text(options, "clientPin"), Some(&Value::Bool(false)));
    assert_eq!(map_int(&on, 0x11), Some(&int(3)));
    assert_eq!(map_int(&on, 0x12), Some(&int(2)), "fingerprint");
}

#[test]
fn uv_subcommands_and_option_are_refused_without_built_in_uv() {
    let mut h = Harness::new();
    let mut p = Platform::new(2);
    assert_eq!(
        p.uv_token(&mut h, perm::MC, None).err(),
        Some(INVALID_SUBCOMMAND)
    );
    assert_eq!(p.uv_retries(&mut h), Err(INVALID_SUBCOMMAND));
    let (status, _, _) = mc_call(&mut h, &Mc::new(RP, b"u").option("uv", true));
    assert_eq!(status, INVALID_OPTION);
    let cdh = client_data_hash("ga");
    let (status, _, _) = h.get_assertion(ga_options(RP, &cdh, &[b"x"], &[("uv", true)]));
    assert_eq!(status, INVALID_OPTION);
    assert_eq!(h.presence.uv_requests(), 0);
}

#[test]
fn uv_option_verifies_the_user_and_counts_as_presence() {
    let mut h = with_uv();
    let mc = Mc::new(RP, b"user").rk().option("uv", true);
    let (status, cred, needed) = mc_call(&mut h, &mc);
    assert_eq!((status, needed), (0, false), "no separate touch");
    let cred = cred.unwrap();
    assert_eq!(cred.auth_data.flags, 0x45, "UP | UV | AT");
    assert_eq!(h.presence.uv_requests(), 1);
    assert_eq!(h.presence.requests(), 0);

    // Discoverable getAssertion with uv: the user's names come back.
    let cdh = client_data_hash("ga");
    let (status, value, needed) = h.get_assertion(ga_options(RP, &cdh, &[], &[("uv", true)]));
    assert_eq!((status, needed), (0, false));
    let a = check_assertion(&value.unwrap(), &cdh, |_| cred.public_key);
    assert_eq!(a.auth_data.flags, 0x05, "UP | UV");
    assert_eq!(
        user_fields(a.user.as_ref().unwrap()).1,
        Some("alice".into())
    );
    // up=false with uv: UV only.
    let (status, value, needed) = h.get_assertion(ga_options(
        RP,
        &cdh,
        &[&cred.id],
        &[("uv", true), ("up", false)],
    ));
    assert_eq!((status, needed), (0, false));
    let a = check_assertion(&value.unwrap(), &cdh, |_| cred.public_key);
    assert_eq!(a.auth_data.flags, 0x04);
    assert_eq!(h.presence.uv_requests(), 3);
    assert_eq!(h.presence.requests(), 0);

    // Without uv the key still works with a touch, without UV.
    let (status, value, needed) = h.get_assertion(ga(RP, &cdh, &[&cred.id], None));
    assert_eq!((status, needed), (0, true));
    let a = check_assertion(&value.unwrap(), &cdh, |_| cred.public_key);
    assert_eq!(a.auth_data.flags, 0x01);
}

#[test]
fn a_key_with_a_built_in_method_and_a_sensor_asks_the_method_not_the_sensor() {
    // No finger is enrolled: only the built-in method can verify.
    let mut h = Harness::with_config(Config {
        aaguid: AAGUID,
        builtin_uv: true,
        bio: true,
        ..Config::default()
    });
    let mc = Mc::new(RP, b"user").rk().option("uv", true);
    let (status, cred, _) = mc_call(&mut h, &mc);
    assert_eq!(status, 0);
    assert_eq!(cred.unwrap().auth_data.flags & 0x04, 0x04, "UV");
    assert_eq!(
        (h.presence.uv_requests(), h.presence.finger_reads()),
        (1, 0)
    );
}

#[test]
fn tokens_from_uv_carry_the_permissions_asked_for() {
    for protocol in [1, 2] {
        let mut h = with_uv();
        let mut p = Platform::new(protocol);
        assert_eq!(
            p.uv_token(&mut h, 0, None).err(),
            Some(0x02),
            "no permissions"
        );
        assert_eq!(
            p.uv_token(&mut h, perm::BE, None).err(),
            Some(0x40),
            "be: UNAUTHORIZED_PERMISSION"
        );

        // mc: no touch needed (UV evidenced presence), UV flag set.
        let token = p.uv_token(&mut h, perm::MC, Some(RP)).unwrap();
        let mc = Mc::new(RP, b"user").rk();
        let (status, value, needed) = h.ctap2(0x01, Some(mc_with(&mc, &token)));
        assert_eq!((status, needed), (0, false), "protocol {protocol}");
        let cred = MadeCredential::parse(&value.unwrap(), &mc.cdh);
        assert_eq!(cred.auth_data.flags, 0x45);
        // The token's UP and mc permission are used up; a second mc needs a new one.
        let (status, _, _) = h.ctap2(0x01, Some(mc_with(&mc, &token)));
        assert_eq!(status, PIN_AUTH_INVALID);

        // Bound to its RP.
        let token = p.uv_token(&mut h, perm::MC, Some(RP)).unwrap();
        let other = Mc::new(OTHER_RP, b"user");
        let (status, _, _) = h.ctap2(0x01, Some(mc_with(&other, &token)));
        assert_eq!(status, PIN_AUTH_INVALID);

        // ga permission only: mc is refused, ga works.
        let token = p.uv_token(&mut h, perm::GA, None).unwrap();
        let (status, _, _) = h.ctap2(0x01, Some(mc_with(&mc, &token)));
        assert_eq!(status, PIN_AUTH_INVALID);
        let cdh = client_data_hash("ga");
        let (status, value, needed) = h.get_assertion(ga_with(RP, &cdh, &[], None, &token));
        assert_eq!((status, needed), (0, false));
        let a = check_assertion(&value.unwrap(), &cdh, |_| cred.public_key);
        assert_eq!(a.auth_data.flags, 0x05);

        // cm: getCredsMetadata with a cm token.
        let token = p.uv_token(&mut h, perm::CM, None).unwrap();
        let cm = Value::Map(vec![
            (int(1), int(1)),
            (int(3), int(protocol.into())),
            (int(4), bytes(&token.mac(&[&[1]]))),
        ]);
        let (status, value, needed) = h.ctap2(0x0A, Some(cm));
        assert_eq!((status, needed), (0, false));
        assert_eq!(map_int(&value.unwrap(), 1), Some(&int(1)), "one credential");
    }
}

#[test]
fn failed_uv_spends_retries_that_persist_and_success_restores_them() {
    let mut h = with_uv();
    let mut p = Platform::new(2);
    assert_eq!(p.uv_retries(&mut h), Ok(8));
    h.presence.set_uv(UvStatus::Failed);
    assert_eq!(p.uv_token(&mut h, perm::MC, None).err(), Some(UV_INVALID));
    let (status, _, _) = mc_call(&mut h, &Mc::new(RP, b"u").option("uv", true));
    assert_eq!(status, UV_INVALID);
    let cdh = client_data_hash("ga");
    let (status, _, _) = h.get_assertion(ga_options(RP, &cdh, &[b"x"], &[("uv", true)]));
    assert_eq!(status, UV_INVALID);
    assert_eq!(p.uv_retries(&mut h), Ok(5));

    let mut h = h.reopen();
    assert_eq!(p.uv_retries(&mut h), Ok(5), "uvRetries survive a restart");
    h.presence.set_uv(UvStatus::Verified);
    assert!(p.uv_token(&mut h, perm::MC, None).is_ok());
    assert_eq!(p.uv_retries(&mut h), Ok(8));
    let mut h = h.reopen();
    assert_eq!(p.uv_retries(&mut h), Ok(8));
}

#[test]
fn a_uv_attempt_is_spent_in_storage_before_the_sensor_is_asked() {
    // Issue 10 §1 defect 8: as for PIN attempts, the decremented uvRetries
    // is persisted first. A storage that refuses that write means no
    // attempt: the sensor is not asked and nothing changes.
    let mut h = with_uv();
    let mut p = Platform::new(2);
    h.presence.set_uv(UvStatus::Failed);
    h.storage.set_fail_writes(Some(StorageError::Io));
    let asked = h.presence.uv_requests();
    assert_eq!(p.uv_token(&mut h, perm::MC, None).err(), Some(OTHER));
    let (status, _, _) = mc_call(&mut h, &Mc::new(RP, b"u").option("uv", true));
    assert_eq!(status, OTHER);
    assert_eq!(h.presence.uv_requests(), asked, "the sensor was asked");
    h.storage.set_fail_writes(None);
    assert_eq!(p.uv_retries(&mut h), Ok(8));

    // A crash right after that write: the attempt stays spent even though
    // it would have succeeded (the restoring write never happened).
    h.presence.set_uv(UvStatus::Verified);
    h.storage.fail_writes_after(1);
    let asked = h.presence.uv_requests();
    assert_eq!(p.uv_token(&mut h, perm::MC, None).err(), Some(OTHER));
    assert_eq!(h.presence.uv_requests(), asked + 1);
    h.storage.set_fail_writes(None);
    let mut h = h.reopen();
    assert_eq!(p.uv_retries(&mut h), Ok(7), "the attempt is on record");
    // A failed attempt is on record after exactly one write.
    h.presence.set_uv(UvStatus::Failed);
    let writes = h.storage.write_count();
    assert_eq!(p.uv_token(&mut h, perm::MC, None).err(), Some(UV_INVALID));
    assert_eq!(h.storage.write_count(), writes + 1);
    let mut h = h.reopen();
    assert_eq!(p.uv_retries(&mut h), Ok(6));
}

#[test]
fn uv_blocks_after_the_last_retry_until_reset() {
    let mut h = with_uv();
    let mut p = Platform::new(1);
    h.presence.set_uv(UvStatus::Failed);
    for _ in 0..7 {
        assert_eq!(p.uv_token(&mut h, perm::GA, None).err(), Some(UV_INVALID));
    }
    assert_eq!(p.uv_token(&mut h, perm::GA, None).err(), Some(UV_BLOCKED));
    assert_eq!(p.uv_retries(&mut h), Ok(0));
    // Blocked: even a verifying user is not asked any more.
    h.presence.set_uv(UvStatus::Verified);
    let asked = h.presence.uv_requests();
    assert_eq!(p.uv_token(&mut h, perm::GA, None).err(), Some(UV_BLOCKED));
    let (status, _, _) = mc_call(&mut h, &Mc::new(RP, b"u").option("uv", true));
    assert_eq!(status, UV_BLOCKED);
    assert_eq!(h.presence.uv_requests(), asked);
    let mut h = h.reopen();
    assert_eq!(p.uv_retries(&mut h), Ok(0), "still blocked after a restart");

    // authenticatorReset restores uvRetries.
    let (status, _, _) = h.ctap2(0x07, None);
    assert_eq!(status, 0);
    assert_eq!(p.uv_retries(&mut h), Ok(8));
    assert!(p.uv_token(&mut h, perm::GA, None).is_ok());
}

#[test]
fn a_correct_pin_unblocks_built_in_uv() {
    let mut h = with_uv();
    let mut p = Platform::new(2);
    assert_eq!(p.set_pin(&mut h, PIN), 0);
    h.presence.set_uv(UvStatus::Failed);
    for _ in 0..8 {
        assert!(p.uv_token(&mut h, perm::GA, None).is_err());
    }
    assert_eq!(p.uv_retries(&mut h), Ok(0));
    p.must_token(&mut h, perm::GA, None);
    assert_eq!(p.uv_retries(&mut h), Ok(8));
}

#[test]
fn discoverable_credentials_need_uv_on_a_key_with_built_in_uv() {
    // makeCredUvNotRqd: a non-discoverable credential needs no UV.
    let mut h = with_uv();
    let (status, cred, needed) = mc_call(&mut h, &Mc::new(RP, b"u"));
    assert_eq!((status, needed), (0, true));
    assert_eq!(cred.unwrap().auth_data.flags, 0x41);
    // A discoverable one does: no PIN, so OPERATION_DENIED …
    let (status, _, _) = mc_call(&mut h, &Mc::new(RP, b"u").rk());
    assert_eq!(status, OPERATION_DENIED);
    // … and PUAT_REQUIRED once a PIN is set.
    let mut p = Platform::new(2);
    assert_eq!(p.set_pin(&mut h, PIN), 0);
    let (status, _, _) = mc_call(&mut h, &Mc::new(RP, b"u").rk());
    assert_eq!(status, PUAT_REQUIRED);
    let (status, _, _) = mc_call(&mut h, &Mc::new(RP, b"u").rk().option("uv", true));
    assert_eq!(status, 0);
}

#[test]
fn always_uv_performs_built_in_uv_without_being_asked() {
    let mut h = with_uv();
    let mut p = Platform::new(2);
    // authenticatorConfig toggleAlwaysUv needs an acfg token (the key is protected).
    let (status, _, _) = h.ctap2(0x0D, Some(Value::Map(vec![(int(1), int(2))])));
    assert_eq!(status, PUAT_REQUIRED);
    let token = p.uv_token(&mut h, perm::ACFG, None).unwrap();
    let param = token.mac(&[&[0xff; 32], &[0x0d, 0x02]]);
    let toggle = Value::Map(vec![
        (int(1), int(2)),
        (int(3), int(2)),
        (int(4), bytes(&param)),
    ]);
    let (status, _, _) = h.ctap2(0x0D, Some(toggle));
    assert_eq!(status, 0);
    assert_eq!(
        map_text(map_int(&info(&mut h), 4).unwrap(), "alwaysUv"),
        Some(&Value::Bool(true))
    );

    let asked = h.presence.uv_requests();
    let (status, cred, needed) = mc_call(&mut h, &Mc::new(RP, b"u"));
    assert_eq!((status, needed), (0, false));
    let cred = cred.unwrap();
    assert_eq!(cred.auth_data.flags, 0x45);
    let cdh = client_data_hash("ga");
    let (status, value, _) = h.get_assertion(ga(RP, &cdh, &[&cred.id], None));
    assert_eq!(status, 0);
    let a = check_assertion(&value.unwrap(), &cdh, |_| cred.public_key);
    assert_eq!(a.auth_data.flags, 0x05);
    assert_eq!(h.presence.uv_requests(), asked + 2);
    // A silent pre-flight stays silent.
    let (status, value, _) = h.get_assertion(ga(RP, &cdh, &[&cred.id], Some(false)));
    assert_eq!(status, 0);
    let a = check_assertion(&value.unwrap(), &cdh, |_| cred.public_key);
    assert_eq!(a.auth_data.flags, 0x00);
    assert_eq!(h.presence.uv_requests(), asked + 2);
}
