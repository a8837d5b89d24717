//! authenticatorConfig through `App::handle`: toggleAlwaysUv and
//! setMinPINLength, their effect on getInfo, makeCredential, getAssertion and
//! clientPIN, and their reset.

use std::string::String;
use std::vec;
use std::vec::Vec;

use ciborium::Value;

use crate::app::Outcome;
use crate::authenticator::testkit::*;
use crate::ctap2::pin_uv::platform::*;

const RP: &str = "example.com";

fn with_pin(protocol: u8) -> (Harness, Platform) {
    let mut h = Harness::new();
    let mut p = Platform::new(protocol);
    assert_eq!(p.set_pin(&mut h, PIN), 0);
    (h, p)
}

/// An authenticatorConfig request; the pinUvAuthParam is over
/// `32×0xff ‖ 0x0d ‖ subCommand ‖ CBOR(params)`.
fn request(sub: u8, params: Option<Value>, token: Option<&Token>) -> Value {
    let mut raw = vec![];
    if let Some(p) = &params {
        ciborium::into_writer(p, &mut raw).unwrap();
    }
    let mut m = vec![(int(1), int(sub.into()))];
    if let Some(p) = params {
        m.push((int(2), p));
    }
    if let Some(t) = token {
        m.push((int(3), int(t.protocol.into())));
        m.push((int(4), bytes(&t.mac(&[&[0xFF; 32], &[0x0D, sub], &raw]))));
    }
    Value::Map(m)
}

fn config(h: &mut Harness, request: Value) -> u8 {
    let (status, value, needed) = h.ctap2(0x0D, Some(request));
    assert!(!needed && value.is_none());
    status
}

fn info(h: &mut Harness) -> Value {
    let (status, info, _) = h.ctap2(0x04, None);
    assert_eq!(status, 0);
    info.unwrap()
}

fn option(info: &Value, name: &str) -> Option<bool> {
    map_text(map_int(info, 4).unwrap(), name).map(|v| v.as_bool().unwrap())
}

fn min_pin_length(h: &mut Harness) -> i64 {
    i64::try_from(map_int(&info(h), 0x0D).unwrap().as_integer().unwrap()).unwrap()
}

fn force_pin_change(h: &mut Harness) -> bool {
    map_int(&info(h), 0x0C).unwrap().as_bool().unwrap()
}

fn set_min(len: Option<i64>, rp_ids: Option<&[&str]>, force: Option<bool>) -> Value {
    let mut m = vec![];
    if let Some(len) = len {
        m.push((int(1), int(len)));
    }
    if let Some(ids) = rp_ids {
        m.push((int(2), Value::Array(ids.iter().map(|s| text(s)).collect())));
    }
    if let Some(force) = force {
        m.push((int(3), Value::Bool(force)));
    }
    Value::Map(m)
}

#[test]
fn get_info_advertises_the_pin_and_config_features() {
    let mut h = Harness::new();
    let info = info(&mut h);
    for (name, value) in [
        ("clientPin", false),
        ("pinUvAuthToken", true),
        ("credMgmt", true),
        ("authnrCfg", true),
        ("setMinPINLength", true),
        ("alwaysUv", false),
        ("makeCredUvNotRqd", true),
    ] {
        assert_eq!(option(&info, name), Some(value), "{name}");
    }
    assert_eq!(option(&info, "uv"), None);
    assert_eq!(option(&info, "bioEnroll"), None);
    assert_eq!(map_int(&info, 0x0C), Some(&Value::Bool(false)));
    assert_eq!(map_int(&info, 0x0D), Some(&int(4)));
    assert_eq!(
        map_int(&info, 0x10),
        Some(&int(4)),
        "maxRPIDsForSetMinPINLength"
    );
}

#[test]
fn toggle_always_uv_is_reported_enforced_and_persistent() {
    for protocol in [1, 2] {
        let (mut h, mut p) = with_pin(protocol);
        let cred = h.make_credential(Mc::new(RP, b"u").build());
        let token = p.must_token(&mut h, perm::ACFG, None);
        assert_eq!(config(&mut h, request(2, None, Some(&token))), 0);
        let i = info(&mut h);
        assert_eq!(option(&i, "alwaysUv"), Some(true));
        assert_eq!(option(&i, "makeCredUvNotRqd"), Some(false));

        // Without a token: makeCredential and getAssertion need one now...
        let (outcome, status, _) = h.ctap2_once(0x01, Some(Mc::new(RP, b"u").build()));
        assert_eq!((outcome, status), (Outcome::Response, 0x36));
        let cdh = client_data_hash("always");
        let (outcome, status, _) = h.ctap2_once(0x02, Some(ga(RP, &cdh, &[&cred.id], None)));
        assert_eq!((outcome, status), (Outcome::Response, 0x36));
        // ...except a silent pre-flight.
        let (outcome, status, _) = h.ctap2_once(0x02, Some(ga(RP, &cdh, &[&cred.id], Some(false))));
        assert_eq!((outcome, status), (Outcome::Response, 0));
        // With a token they work.
        let t = p.must_token(&mut h, perm::MC, None);
        let mc = Mc::new(RP, b"u2");
        assert_eq!(h.make_credential(mc_with(&mc, &t)).auth_data.flags, 0x45);

        // Survives a power cycle; toggling back needs a token too.
        let mut h = h.reopen();
        assert_eq!(option(&info(&mut h), "alwaysUv"), Some(true));
        assert_eq!(config(&mut h, request(2, None, None)), 0x36);
        let token = p.must_token(&mut h, perm::ACFG, None);
        assert_eq!(config(&mut h, request(2, None, Some(&token))), 0);
        assert_eq!(option(&info(&mut h), "alwaysUv"), Some(false));
        h.make_credential(Mc::new(RP, b"u").build());
    }
}

#[test]
fn always_uv_without_a_pin_asks_for_one() {
    let mut h = Harness::new();
    // Unprotected: configuration needs no token.
    assert_eq!(config(&mut h, request(2, None, None)), 0);
    assert_eq!(option(&info(&mut h), "alwaysUv"), Some(true));
    let (outcome, status, _) = h.ctap2_once(0x01, Some(Mc::new(RP, b"u").build()));
    assert_eq!((outcome, status), (Outcome::Response, 0x36));
    // Once alwaysUv is on, even an unprotected key needs a token to configure.
    assert_eq!(config(&mut h, request(2, None, None)), 0x36);
    let mut p = Platform::new(2);
    assert_eq!(p.set_pin(&mut h, PIN), 0);
    let token = p.must_token(&mut h, perm::ACFG, None);
    assert_eq!(config(&mut h, request(2, None, Some(&token))), 0);
    assert_eq!(option(&info(&mut h), "alwaysUv"), Some(false));
}

#[test]
fn config_needs_an_acfg_token_over_the_exact_message() {
    let (mut h, mut p) = with_pin(2);
    assert_eq!(config(&mut h, request(2, None, None)), 0x36);
    for permissions in [perm::MC | perm::GA, perm::CM, perm::LBW] {
        let token = p.must_token(&mut h, permissions, None);
        assert_eq!(config(&mut h, request(2, None, Some(&token))), 0x33);
    }
    let token = p.must_token(&mut h, perm::ACFG, None);
    // A MAC for another subcommand, or over other parameters, does not verify.
    let mut swapped = request(2, None, Some(&token));
    if let Value::Map(m) = &mut swapped {
        m[0].1 = int(3);
    }
    assert_eq!(config(&mut h, swapped), 0x33);
    let mut other_params = request(3, Some(set_min(Some(6), None, None)), Some(&token));
    if let Value::Map(m) = &mut other_params {
        m[1].1 = set_min(Some(7), None, None);
    }
    assert_eq!(config(&mut h, other_params), 0x33);
    assert_eq!(min_pin_length(&mut h), 4);
    assert_eq!(option(&info(&mut h), "alwaysUv"), Some(false));
    // The right one does.
    let ok = request(3, Some(set_min(Some(6), None, None)), Some(&token));
    assert_eq!(config(&mut h, ok), 0);
    assert_eq!(min_pin_length(&mut h), 6);
}

#[test]
fn set_min_pin_length_raises_the_minimum_and_forces_a_change() {
    let (mut h, mut p) = with_pin(1);
    let token = p.must_token(&mut h, perm::ACFG, None);
    let set = |len, ids, force| request(3, Some(set_min(len, ids, force)), Some(&token));
    assert_eq!(config(&mut h, set(Some(6), None, None)), 0);
    assert_eq!(min_pin_length(&mut h), 6);
    // The 4-digit PIN is now too short: a change is forced.
    assert!(force_pin_change(&mut h));
    assert_eq!(
        config(&mut h, set(Some(5), None, None)),
        0x37,
        "never lower"
    );
    assert_eq!(config(&mut h, set(Some(64), None, None)), 0x37);
    let five: Vec<&str> = vec!["a.example"; 5];
    assert_eq!(
        config(&mut h, set(None, Some(&five), None)),
        0x37,
        "more RP IDs than kept"
    );
    let long = "a".repeat(129);
    assert_eq!(
        config(&mut h, set(None, Some(&[long.as_str()]), None)),
        0x37
    );

    // Tokens are refused until the PIN is changed; the PIN itself is right.
    assert_eq!(p.token(&mut h, PIN, None, None).err(), Some(0x31));
    assert_eq!(p.token(&mut h, PIN, Some(perm::MC), None).err(), Some(0x37));
    assert_eq!(p.retries(&mut h), Ok((8, false)));
    assert_eq!(p.change_pin(&mut h, PIN, "12345"), 0x37, "too short");
    assert_eq!(p.change_pin(&mut h, PIN, "123456"), 0);
    assert!(!force_pin_change(&mut h));
    assert!(p.token(&mut h, "123456", Some(perm::MC), None).is_ok());
    let mut h = h.reopen();
    assert_eq!(min_pin_length(&mut h), 6, "persistent");

    // forceChangePin alone, and RP IDs for the minPinLength extension.
    let token = p.token(&mut h, "123456", Some(perm::ACFG), None).unwrap();
    let req = request(
        3,
        Some(set_min(None, Some(&[RP]), Some(true))),
        Some(&token),
    );
    assert_eq!(config(&mut h, req), 0);
    assert!(force_pin_change(&mut h));
    assert_eq!(min_pin_length(&mut h), 6);
    let ids: Vec<String> = h
        .auth
        .pin
        .min_pin_length_rp_ids()
        .iter()
        .map(|s| s.as_str().into())
        .collect();
    assert_eq!(ids, vec![String::from(RP)]);
    assert_eq!(
        p.change_pin(&mut h, "123456", "123456"),
        0x37,
        "must differ"
    );
    assert_eq!(p.change_pin(&mut h, "123456", "654321"), 0);
    assert!(!force_pin_change(&mut h));
}

#[test]
fn force_change_pin_needs_a_pin() {
    let mut h = Harness::new();
    let req = request(3, Some(set_min(None, None, Some(true))), None);
    assert_eq!(config(&mut h, req), 0x35);
    // A longer minimum applies to the first PIN.
    assert_eq!(
        config(&mut h, request(3, Some(set_min(Some(8), None, None)), None)),
        0
    );
    assert!(!force_pin_change(&mut h));
    let mut p = Platform::new(2);
    assert_eq!(p.set_pin(&mut h, "1234567"), 0x37);
    assert_eq!(p.set_pin(&mut h, "12345678"), 0);
}

#[test]
fn reset_restores_the_default_config() {
    let (mut h, mut p) = with_pin(2);
    let token = p.must_token(&mut h, perm::ACFG, None);
    assert_eq!(config(&mut h, request(2, None, Some(&token))), 0);
    let req = request(3, Some(set_min(Some(10), None, None)), Some(&token));
    assert_eq!(config(&mut h, req), 0);
    assert_eq!(h.ctap2(0x07, None).0, 0);
    let i = info(&mut h);
    assert_eq!(option(&i, "alwaysUv"), Some(false));
    assert_eq!(option(&i, "makeCredUvNotRqd"), Some(true));
    assert_eq!(option(&i, "clientPin"), Some(false));
    assert_eq!(map_int(&i, 0x0D), Some(&int(4)));
    assert_eq!(map_int(&i, 0x0C), Some(&Value::Bool(false)));
}

#[test]
fn always_uv_turns_u2f_off() {
    use crate::app::App;
    let (mut h, mut p) = with_pin(2);
    assert!(h.auth.supports_ctap1());
    assert_eq!(h.u2f(&[0, 3, 0, 0, 0]).1, 0x9000);
    let token = p.must_token(&mut h, perm::ACFG, None);
    assert_eq!(config(&mut h, request(2, None, Some(&token))), 0);
    assert!(!h.auth.supports_ctap1(), "INIT reports NMSG");
    assert_eq!(h.u2f(&[0, 3, 0, 0, 0]), (vec![], 0x6D00));
    let register = [vec![0, 1, 3, 0, 64], vec![0x11; 64]].concat();
    assert_eq!(h.u2f(&register), (vec![], 0x6D00));
    let token = p.must_token(&mut h, perm::ACFG, None);
    assert_eq!(config(&mut h, request(2, None, Some(&token))), 0);
    assert!(h.auth.supports_ctap1());
    assert_eq!(h.u2f(&[0, 3, 0, 0, 0]).1, 0x9000);
}
