//! authenticatorBioEnrollment through `App::handle`: every subcommand, the
//! errors, the `be` permission, samples, user verification by an enrolled
//! finger, persistence and reset.

use std::vec;
use std::vec::Vec;

use ciborium::Value;

use crate::authenticator::testkit::*;
use crate::authenticator::Config;
use crate::bio::{MAX_TEMPLATES, MAX_TEMPLATE_FRIENDLY_NAME, SAMPLES_REQUIRED};
use crate::ctap2::pin_uv::platform::*;
use crate::platform::{RecordKey, Storage};

const PUAT_REQUIRED: u8 = 0x36;
const PIN_AUTH_INVALID: u8 = 0x33;
const INVALID_PARAMETER: u8 = 0x02;
const MISSING_PARAMETER: u8 = 0x14;
const INVALID_SUBCOMMAND: u8 = 0x3E;
const INVALID_OPTION: u8 = 0x2C;
const FP_DATABASE_FULL: u8 = 0x17;
const UV_INVALID: u8 = 0x3F;
const NOT_ALLOWED: u8 = 0x30;
const INVALID_COMMAND: u8 = 0x01;
const UNAUTHORIZED_PERMISSION: u8 = 0x40;

fn bio_config() -> Config {
    Config {
        aaguid: AAGUID,
        bio: true,
        ..Config::default()
    }
}

/// A bio key with the test PIN set, and a platform of protocol 2.
fn bio_key() -> (Harness, Platform) {
    let mut h = Harness::with_config(bio_config());
    let mut p = Platform::new(2);
    assert_eq!(p.set_pin(&mut h, PIN), 0);
    (h, p)
}

/// A bioEnrollment request; the pinUvAuthParam (with `token`) is over
/// `modality ‖ subCommand ‖ CBOR(params)`.
fn request(sub: u8, params: Option<Value>, token: Option<&Token>) -> Value {
    let mut raw = vec![];
    if let Some(p) = &params {
        ciborium::into_writer(p, &mut raw).unwrap();
    }
    let mut m = vec![(int(1), int(1)), (int(2), int(sub.into()))];
    if let Some(p) = params {
        m.push((int(3), p));
    }
    if let Some(t) = token {
        m.push((int(4), int(t.protocol.into())));
        m.push((int(5), bytes(&t.mac(&[&[1, sub], &raw]))));
    }
    Value::Map(m)
}

fn bio(h: &mut Harness, request: Value) -> (u8, Option<Value>, bool) {
    h.ctap2(0x09, Some(request))
}

fn info(h: &mut Harness) -> Value {
    let (status, info, _) = h.ctap2(0x04, None);
    assert_eq!(status, 0);
    info.unwrap()
}

fn option(info: &Value, name: &str) -> Option<bool> {
    map_text(map_int(info, 4).unwrap(), name).map(|v| v.as_bool().unwrap())
}

fn uint(v: &Value, key: i64) -> u64 {
    u64::try_from(map_int(v, key).unwrap().as_integer().unwrap()).unwrap()
}

fn template_param(id: &[u8]) -> Value {
    Value::Map(vec![(int(1), bytes(id))])
}

/// Enrolls one finger (the sensor reads `finger`) with `token`; returns its templateId.
fn enroll(h: &mut Harness, token: &Token, finger: u8) -> Vec<u8> {
    h.presence.set_finger(Some(finger));
    let (status, value, needed) = bio(h, request(1, None, Some(token)));
    assert_eq!(status, 0, "enrollBegin");
    assert!(needed, "each sample waits for a touch");
    let value = value.unwrap();
    let id = map_bytes(&value, 4).to_vec();
    assert_eq!(uint(&value, 5), 0, "FP_GOOD");
    assert_eq!(uint(&value, 6), u64::from(SAMPLES_REQUIRED - 1));
    for left in (0..SAMPLES_REQUIRED - 1).rev() {
        let (status, value, needed) = bio(h, request(2, Some(template_param(&id)), Some(token)));
        assert_eq!(status, 0, "enrollCaptureNextSample");
        assert!(needed);
        let value = value.unwrap();
        assert!(
            map_int(&value, 4).is_none(),
            "no templateId after the first sample"
        );
        assert_eq!(uint(&value, 5), 0);
        assert_eq!(uint(&value, 6), u64::from(left));
    }
    id
}

/// enumerateEnrollments: (templateId, name) pairs, or the error status.
fn enumerate(h: &mut Harness, token: &Token) -> Result<Vec<(Vec<u8>, String)>, u8> {
    match bio(h, request(4, None, Some(token))) {
        (0, Some(v), false) => Ok(map_int(&v, 7)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    map_bytes(t, 1).to_vec(),
                    map_int(t, 2).unwrap().as_text().unwrap().into(),
                )
            })
            .collect()),
        (status, _, _) => Err(status),
    }
}

use std::string::String;

#[test]
fn get_info_shows_bio_only_on_a_bio_key_and_uv_false_until_a_finger_is_enrolled() {
    let mut plain = Harness::new();
    let i = info(&mut plain);
    assert_eq!(option(&i, "bioEnroll"), None);
    assert_eq!(option(&i, "uvBioEnroll"), None);
    assert_eq!(option(&i, "uv"), None);
    assert!(
        map_int(&i, 0x11).is_none(),
        "no preferredPlatformUvAttempts"
    );

    let (mut h, mut p) = bio_key();
    let i = info(&mut h);
    assert_eq!(option(&i, "bioEnroll"), Some(false));
    assert_eq!(option(&i, "uvBioEnroll"), Some(true));
    assert_eq!(option(&i, "uv"), Some(false), "capable, not configured");
    assert_eq!(uint(&i, 0x11), 3, "preferredPlatformUvAttempts");
    assert_eq!(uint(&i, 0x12), 2, "uvModality fingerprint");

    let token = p.must_token(&mut h, perm::BE, None);
    enroll(&mut h, &token, 0);
    let i = info(&mut h);
    assert_eq!(option(&i, "bioEnroll"), Some(true));
    assert_eq!(option(&i, "uv"), Some(true));
}

#[test]
fn modality_and_sensor_info_need_no_authentication() {
    let mut h = Harness::with_config(bio_config());
    let (status, value, needed) = bio(&mut h, Value::Map(vec![(int(6), Value::Bool(true))]));
    assert_eq!((status, needed), (0, false));
    assert_eq!(value.unwrap(), Value::Map(vec![(int(1), int(1))]));
    let (status, value, _) = bio(&mut h, request(7, None, None));
    assert_eq!(status, 0);
    let value = value.unwrap();
    assert_eq!(uint(&value, 1), 1, "modality fingerprint");
    assert_eq!(uint(&value, 2), 1, "touch sensor");
    assert_eq!(uint(&value, 3), u64::from(SAMPLES_REQUIRED));
    assert_eq!(uint(&value, 8), MAX_TEMPLATE_FRIENDLY_NAME as u64);
    // The prototype command code answers the same.
    let (status, again, _) = h.ctap2(0x40, Some(request(7, None, None)));
    assert_eq!((status, again), (0, Some(value)));
}

#[test]
fn requests_are_checked_in_order() {
    let (mut h, mut p) = bio_key();
    // No modality, an unknown modality, no subCommand, an unknown one.
    let no_modality = Value::Map(vec![(int(2), int(7))]);
    assert_eq!(bio(&mut h, no_modality).0, MISSING_PARAMETER);
    let other = Value::Map(vec![(int(1), int(2)), (int(2), int(7))]);
    assert_eq!(bio(&mut h, other).0, INVALID_PARAMETER);
    let no_sub = Value::Map(vec![(int(1), int(1))]);
    assert_eq!(bio(&mut h, no_sub).0, MISSING_PARAMETER);
    assert_eq!(bio(&mut h, request(0x20, None, None)).0, INVALID_SUBCOMMAND);
    assert_eq!(h.ctap2(0x09, None).0, MISSING_PARAMETER);
    // Authenticated subcommands: no pinUvAuthParam, a token without `be`,
    // a wrong MAC.
    for sub in [1u8, 2, 4, 5, 6] {
        assert_eq!(
            bio(&mut h, request(sub, None, None)).0,
            PUAT_REQUIRED,
            "{sub}"
        );
    }
    let cm = p.must_token(&mut h, perm::CM, None);
    assert_eq!(bio(&mut h, request(4, None, Some(&cm))).0, PIN_AUTH_INVALID);
    let be = p.must_token(&mut h, perm::BE, None);
    let mut forged = request(4, None, Some(&be));
    if let Value::Map(m) = &mut forged {
        m[3].1 = bytes(&[0u8; 32]);
    }
    assert_eq!(bio(&mut h, forged).0, PIN_AUTH_INVALID);
    // No enrollment yet.
    assert_eq!(enumerate(&mut h, &be), Err(INVALID_OPTION));
    assert_eq!(
        bio(&mut h, request(2, Some(template_param(&[1])), Some(&be))).0,
        INVALID_PARAMETER,
        "no enrollment in progress"
    );
    assert_eq!(
        bio(&mut h, request(2, Some(Value::Map(vec![])), Some(&be))).0,
        MISSING_PARAMETER
    );
    assert_eq!(
        bio(&mut h, request(6, Some(template_param(&[9])), Some(&be))).0,
        INVALID_PARAMETER
    );
    let rename = Value::Map(vec![(int(1), bytes(&[9])), (int(2), text("x"))]);
    assert_eq!(
        bio(&mut h, request(5, Some(rename), Some(&be))).0,
        INVALID_PARAMETER
    );
}

#[test]
fn enroll_name_enumerate_remove_and_cancel() {
    let (mut h, mut p) = bio_key();
    let token = p.must_token(&mut h, perm::BE, None);
    let first = enroll(&mut h, &token, 0);
    let second = enroll(&mut h, &token, 4);
    assert_ne!(first, second);
    assert_eq!(
        enumerate(&mut h, &token).unwrap(),
        vec![
            (first.clone(), String::new()),
            (second.clone(), String::new())
        ]
    );
    let longest = "n".repeat(MAX_TEMPLATE_FRIENDLY_NAME);
    let rename =
        |id: &[u8], name: &str| Value::Map(vec![(int(1), bytes(id)), (int(2), text(name))]);
    assert_eq!(
        bio(
            &mut h,
            request(5, Some(rename(&second, &longest)), Some(&token))
        )
        .0,
        0
    );
    let too_long = "n".repeat(MAX_TEMPLATE_FRIENDLY_NAME + 1);
    assert_eq!(
        bio(
            &mut h,
            request(5, Some(rename(&second, &too_long)), Some(&token))
        )
        .0,
        INVALID_PARAMETER
    );
    assert_eq!(
        enumerate(&mut h, &token).unwrap()[1],
        (second.clone(), longest.clone())
    );
    // Cancel: the enrollment in progress ends, nothing is stored.
    h.presence.set_finger(Some(6));
    let (status, value, _) = bio(&mut h, request(1, None, Some(&token)));
    assert_eq!(status, 0);
    let pending = map_bytes(&value.unwrap(), 4).to_vec();
    assert_eq!(bio(&mut h, request(3, None, None)).0, 0);
    assert_eq!(
        bio(
            &mut h,
            request(2, Some(template_param(&pending)), Some(&token))
        )
        .0,
        INVALID_PARAMETER
    );
    assert_eq!(enumerate(&mut h, &token).unwrap().len(), 2);
    // Remove both: no enrollments, UV is gone.
    assert_eq!(
        bio(
            &mut h,
            request(6, Some(template_param(&first)), Some(&token))
        )
        .0,
        0
    );
    assert_eq!(
        enumerate(&mut h, &token).unwrap(),
        vec![(second.clone(), longest)]
    );
    assert_eq!(
        bio(
            &mut h,
            request(6, Some(template_param(&second)), Some(&token))
        )
        .0,
        0
    );
    assert_eq!(enumerate(&mut h, &token), Err(INVALID_OPTION));
    assert_eq!(option(&info(&mut h), "uv"), Some(false));
    assert_eq!(
        p.uv_token(&mut h, perm::MC, Some("example.com")).err(),
        Some(NOT_ALLOWED)
    );
}

#[test]
fn bad_samples_say_why_and_do_not_count() {
    let (mut h, mut p) = bio_key();
    let token = p.must_token(&mut h, perm::BE, None);
    enroll(&mut h, &token, 2);
    // A finger already enrolled.
    h.presence.set_finger(Some(2));
    let (status, value, _) = bio(&mut h, request(1, None, Some(&token)));
    assert_eq!(status, 0);
    let value = value.unwrap();
    let id = map_bytes(&value, 4).to_vec();
    assert_eq!(
        (uint(&value, 5), uint(&value, 6)),
        (0x0B, u64::from(SAMPLES_REQUIRED))
    );
    // Nothing read.
    h.presence.set_finger(None);
    let (_, value, _) = bio(&mut h, request(2, Some(template_param(&id)), Some(&token)));
    let value = value.unwrap();
    assert_eq!(
        (uint(&value, 5), uint(&value, 6)),
        (0x0D, u64::from(SAMPLES_REQUIRED))
    );
    // A good sample, then another finger: a merge failure.
    h.presence.set_finger(Some(3));
    let (_, value, _) = bio(&mut h, request(2, Some(template_param(&id)), Some(&token)));
    assert_eq!(uint(&value.unwrap(), 6), u64::from(SAMPLES_REQUIRED - 1));
    h.presence.set_finger(Some(5));
    let (_, value, _) = bio(&mut h, request(2, Some(template_param(&id)), Some(&token)));
    let value = value.unwrap();
    assert_eq!(
        (uint(&value, 5), uint(&value, 6)),
        (0x0A, u64::from(SAMPLES_REQUIRED - 1))
    );
    assert_eq!(
        enumerate(&mut h, &token).unwrap().len(),
        1,
        "not stored yet"
    );
}

#[test]
fn the_sensor_fills_up() {
    let (mut h, mut p) = bio_key();
    let token = p.must_token(&mut h, perm::BE, None);
    for finger in 0..MAX_TEMPLATES as u8 {
        enroll(&mut h, &token, finger);
    }
    let (status, _, needed) = bio(&mut h, request(1, None, Some(&token)));
    assert_eq!((status, needed), (FP_DATABASE_FULL, false));
}

#[test]
fn an_enrolled_finger_verifies_the_user_and_others_do_not() {
    let (mut h, mut p) = bio_key();
    let token = p.must_token(&mut h, perm::BE, None);
    enroll(&mut h, &token, 1);
    assert_eq!(p.uv_retries(&mut h), Ok(8));
    // The enrolled finger: a token through built-in UV, then makeCredential
    // with uv gets the UV flag.
    h.presence.set_finger(Some(1));
    let uv = p.uv_token(&mut h, perm::MC, Some("example.com")).unwrap();
    for request in [
        mc_with(&Mc::new("example.com", b"u"), &uv),
        Mc::new("example.com", b"v").option("uv", true).build(),
    ] {
        // The sensor touch is the user presence too.
        let (status, value, _) = h.ctap2(0x01, Some(request));
        assert_eq!(status, 0);
        let made = MadeCredential::parse(&value.unwrap(), &client_data_hash("make-credential"));
        assert_eq!(made.auth_data.flags & 0x05, 0x05, "UP and UV");
    }
    // Another finger: UV_INVALID, one attempt spent.
    h.presence.set_finger(Some(7));
    assert_eq!(p.uv_token(&mut h, perm::MC, None).err(), Some(UV_INVALID));
    assert_eq!(p.uv_retries(&mut h), Ok(7));
    // The right finger but a forced failure: it fails once.
    h.presence.set_finger(Some(1));
    assert!(h.auth.bio_fail_next_match());
    assert!(h.auth.bio_next_match_fails());
    assert_eq!(p.uv_token(&mut h, perm::MC, None).err(), Some(UV_INVALID));
    assert!(!h.auth.bio_next_match_fails());
    assert_eq!(p.uv_retries(&mut h), Ok(6));
    assert!(p.uv_token(&mut h, perm::MC, None).is_ok());
    assert_eq!(p.uv_retries(&mut h), Ok(8), "a match restores uvRetries");
    // A `be` token through built-in UV (uvBioEnroll).
    let be = p.uv_token(&mut h, perm::BE, None).unwrap();
    assert_eq!(enumerate(&mut h, &be).unwrap().len(), 1);
}

#[test]
fn a_reading_past_the_sensors_16_fingers_matches_nothing() {
    let (mut h, mut p) = bio_key();
    let token = p.must_token(&mut h, perm::BE, None);
    enroll(&mut h, &token, 0);
    for finger in [16, 32, u8::MAX] {
        h.presence.set_finger(Some(finger));
        assert_eq!(
            p.uv_token(&mut h, perm::MC, None).err(),
            Some(UV_INVALID),
            "finger {finger}"
        );
    }
    h.presence.set_finger(Some(0));
    assert!(p.uv_token(&mut h, perm::MC, None).is_ok());
}

#[test]
fn templates_survive_a_power_cycle_and_a_crash_and_reset_wipes_them() {
    let (mut h, mut p) = bio_key();
    let token = p.must_token(&mut h, perm::BE, None);
    let id = enroll(&mut h, &token, 3);
    let name = Value::Map(vec![(int(1), bytes(&id)), (int(2), text("thumb"))]);
    assert_eq!(bio(&mut h, request(5, Some(name), Some(&token))).0, 0);
    let mut h = h.reopen();
    assert_eq!(option(&info(&mut h), "uv"), Some(true));
    let token = p.must_token(&mut h, perm::BE, None);
    assert_eq!(
        enumerate(&mut h, &token).unwrap(),
        vec![(id.clone(), "thumb".into())]
    );
    let mut h = h.crash();
    assert_eq!(
        h.auth
            .bio_enrollments()
            .unwrap()
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>(),
        vec!["thumb"]
    );
    h.presence.set_finger(Some(3));
    assert!(p.uv_token(&mut h, perm::GA, None).is_ok());

    // authenticatorReset: no PIN, no templates, no record, uv false.
    assert_eq!(h.ctap2(0x07, None).0, 0);
    let mut buf = [0u8; 512];
    assert_eq!(
        h.storage.clone().read(RecordKey::Bio, &mut buf).unwrap(),
        None
    );
    assert!(h.auth.bio_enrollments().unwrap().is_empty());
    let i = info(&mut h);
    assert_eq!(option(&i, "uv"), Some(false));
    assert_eq!(option(&i, "bioEnroll"), Some(false));
    assert_eq!(option(&i, "clientPin"), Some(false));
    let h = h.reopen();
    assert!(!h.auth.pin.has_builtin_uv());
}

#[test]
fn a_failed_template_write_stores_nothing() {
    let (mut h, mut p) = bio_key();
    let token = p.must_token(&mut h, perm::BE, None);
    h.presence.set_finger(Some(0));
    let (_, value, _) = bio(&mut h, request(1, None, Some(&token)));
    let id = map_bytes(&value.unwrap(), 4).to_vec();
    for _ in 0..SAMPLES_REQUIRED - 2 {
        assert_eq!(
            bio(&mut h, request(2, Some(template_param(&id)), Some(&token))).0,
            0
        );
    }
    h.storage
        .set_fail_writes(Some(crate::platform::StorageError::Io));
    let (status, _, _) = bio(&mut h, request(2, Some(template_param(&id)), Some(&token)));
    assert_ne!(status, 0, "the last sample's write failed");
    h.storage.set_fail_writes(None);
    assert_eq!(enumerate(&mut h, &token), Err(INVALID_OPTION));
    assert_eq!(option(&info(&mut h), "uv"), Some(false));
}

#[test]
fn a_key_without_biometrics_has_no_bio_enrollment() {
    let mut h = Harness::new();
    let mut p = Platform::new(2);
    assert_eq!(p.set_pin(&mut h, PIN), 0);
    assert_eq!(
        h.ctap2(0x09, Some(request(7, None, None))).0,
        INVALID_COMMAND
    );
    assert_eq!(
        h.ctap2(0x40, Some(request(7, None, None))).0,
        INVALID_COMMAND
    );
    assert_eq!(
        p.token(&mut h, PIN, Some(perm::BE), None).err(),
        Some(UNAUTHORIZED_PERMISSION)
    );
    assert!(!h.auth.bio_fail_next_match());
    assert!(h.auth.bio_enrollments().is_none());
}
