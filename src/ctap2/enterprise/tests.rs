//! Enterprise attestation through `App::handle`: getInfo `ep`,
//! authenticatorConfig enableEnterpriseAttestation, makeCredential's
//! enterpriseAttestation (both modes, the errors) and `epAtt`, persistence
//! and reset.

use std::vec;

use ciborium::Value;

use crate::authenticator::testkit::*;
use crate::authenticator::{Attestation, Config, EnterpriseAttestation};
use crate::ctap2::pin_uv::platform::*;
use crate::platform::{RecordKey, Storage};

const INVALID_PARAMETER: u8 = 0x02;
const INVALID_OPTION: u8 = 0x2C;
const LISTED_RP: &str = "corp.example";

/// A second key pair and a distinct dummy certificate: the device's own.
fn device_attestation() -> (Attestation, p256::ecdsa::VerifyingKey) {
    let sk = p256::ecdsa::SigningKey::from_slice(&[0x24; 32]).unwrap();
    let vk = *sk.verifying_key();
    let mut certificate = heapless::Vec::new();
    certificate
        .extend_from_slice(b"\x30\x14\x02\x01\x02dummy-device-cert")
        .unwrap();
    (
        Attestation {
            private_key: sk.to_bytes().into(),
            certificate,
            intermediate: None,
        },
        vk,
    )
}

fn enterprise_config() -> (Config, p256::ecdsa::VerifyingKey, p256::ecdsa::VerifyingKey) {
    let (batch, batch_vk) = batch_attestation();
    let (device, device_vk) = device_attestation();
    let mut rp_ids = heapless::Vec::new();
    rp_ids
        .push(heapless::String::try_from(LISTED_RP).unwrap())
        .unwrap();
    let config = Config {
        aaguid: AAGUID,
        attestation: Some(batch),
        enterprise: Some(EnterpriseAttestation {
            attestation: device,
            rp_ids,
        }),
        ..Config::default()
    };
    (config, batch_vk, device_vk)
}

fn ep(h: &mut Harness) -> Option<bool> {
    let (status, info, _) = h.ctap2(0x04, None);
    assert_eq!(status, 0);
    map_text(map_int(&info.unwrap(), 4).unwrap(), "ep").map(|v| v.as_bool().unwrap())
}

/// enableEnterpriseAttestation, authenticated with `token` when given.
fn enable(h: &mut Harness, token: Option<&Token>) -> u8 {
    let mut m = vec![(int(1), int(1))];
    if let Some(t) = token {
        m.push((int(3), int(t.protocol.into())));
        m.push((int(4), bytes(&t.mac(&[&[0xFF; 32], &[0x0D, 0x01]]))));
    }
    let (status, value, needed) = h.ctap2(0x0D, Some(Value::Map(m)));
    assert!(!needed && value.is_none());
    status
}

/// makeCredential with enterpriseAttestation `mode`: (status, the response).
fn mc(h: &mut Harness, rp: &str, mode: Option<i64>) -> (u8, Option<Value>) {
    let mut request = Mc::new(rp, b"user");
    if let Some(mode) = mode {
        request = request.with(0x0A, int(mode));
    }
    let (status, value, _) = h.ctap2(0x01, Some(request.build()));
    (status, value)
}

/// The x5c[0] of a packed statement, its signature checked with `vk`.
fn certificate_checked(value: &Value, vk: &p256::ecdsa::VerifyingKey) -> std::vec::Vec<u8> {
    let made = MadeCredential::parse(value, &client_data_hash("make-credential"));
    assert_eq!(made.fmt, "packed");
    let sig = map_text(&made.att_stmt, "sig").unwrap().as_bytes().unwrap();
    verify(
        vk,
        &[&made.raw_auth_data, &client_data_hash("make-credential")],
        sig,
    );
    let x5c = map_text(&made.att_stmt, "x5c").unwrap().as_array().unwrap();
    x5c[0].as_bytes().unwrap().clone()
}

#[test]
fn ep_is_absent_without_enterprise_attestation_and_enabling_is_refused() {
    let mut h = Harness::new();
    assert_eq!(ep(&mut h), None);
    assert_eq!(enable(&mut h, None), INVALID_PARAMETER);
    assert_eq!(mc(&mut h, "example.com", Some(2)).0, INVALID_PARAMETER);
}

#[test]
fn enterprise_attestation_is_refused_until_enabled_then_given_by_mode() {
    let (config, batch_vk, device_vk) = enterprise_config();
    let mut h = Harness::with_config(config);
    assert_eq!(ep(&mut h), Some(false));
    for mode in [1, 2, 3] {
        assert_eq!(
            mc(&mut h, LISTED_RP, Some(mode)).0,
            INVALID_PARAMETER,
            "{mode}"
        );
    }
    assert_eq!(enable(&mut h, None), 0);
    assert_eq!(ep(&mut h), Some(true));

    // An unknown mode.
    assert_eq!(mc(&mut h, LISTED_RP, Some(3)).0, INVALID_OPTION);
    assert_eq!(mc(&mut h, LISTED_RP, Some(0)).0, INVALID_OPTION);

    // No request: the batch certificate, no epAtt.
    let (status, value) = mc(&mut h, "example.com", None);
    assert_eq!(status, 0);
    let value = value.unwrap();
    assert!(map_int(&value, 4).is_none());
    let batch_cert = certificate_checked(&value, &batch_vk);
    assert_eq!(batch_cert, b"\x30\x13\x02\x01\x01dummy-batch-cert");

    // Platform-managed: any RP, the device's own certificate, epAtt true.
    let (status, value) = mc(&mut h, "example.com", Some(2));
    assert_eq!(status, 0);
    let value = value.unwrap();
    assert_eq!(map_int(&value, 4), Some(&Value::Bool(true)));
    assert_eq!(
        certificate_checked(&value, &device_vk),
        b"\x30\x14\x02\x01\x02dummy-device-cert"
    );

    // Vendor-facilitated: only for a listed RP.
    let (status, value) = mc(&mut h, LISTED_RP, Some(1));
    assert_eq!(status, 0);
    let value = value.unwrap();
    assert_eq!(map_int(&value, 4), Some(&Value::Bool(true)));
    certificate_checked(&value, &device_vk);
    let (status, value) = mc(&mut h, "other.example", Some(1));
    assert_eq!(status, 0);
    let value = value.unwrap();
    assert!(map_int(&value, 4).is_none(), "no epAtt for an unlisted RP");
    assert_eq!(certificate_checked(&value, &batch_vk), batch_cert);
}

#[test]
fn enabling_needs_acfg_once_a_pin_is_set_survives_restart_and_reset_disables_it() {
    let (config, _, _) = enterprise_config();
    let mut h = Harness::with_config(config);
    let mut p = Platform::new(1);
    assert_eq!(p.set_pin(&mut h, PIN), 0);
    assert_eq!(enable(&mut h, None), 0x36, "PUAT_REQUIRED");
    let cm = p.must_token(&mut h, perm::CM, None);
    assert_eq!(
        enable(&mut h, Some(&cm)),
        0x33,
        "PIN_AUTH_INVALID without acfg"
    );
    assert_eq!(ep(&mut h), Some(false));
    let acfg = p.must_token(&mut h, perm::ACFG, None);
    assert_eq!(enable(&mut h, Some(&acfg)), 0);
    let mut h = h.crash();
    assert_eq!(ep(&mut h), Some(true), "persisted");
    assert_eq!(h.ctap2(0x07, None).0, 0);
    assert_eq!(ep(&mut h), Some(false));
    let mut buf = [0u8; 16];
    assert_eq!(
        h.storage
            .clone()
            .read(RecordKey::EnterpriseAttestation, &mut buf)
            .unwrap(),
        None
    );
    let mut h = h.reopen();
    assert_eq!(ep(&mut h), Some(false));
}

#[test]
fn a_failed_write_leaves_it_disabled() {
    let (config, _, _) = enterprise_config();
    let mut h = Harness::with_config(config);
    h.storage
        .set_fail_writes(Some(crate::platform::StorageError::Io));
    assert_ne!(enable(&mut h, None), 0);
    h.storage.set_fail_writes(None);
    assert_eq!(ep(&mut h), Some(false));
}

#[test]
fn a_none_attestation_asked_for_carries_no_enterprise_attestation() {
    let (config, _, _) = enterprise_config();
    let mut h = Harness::with_config(config);
    assert_eq!(enable(&mut h, None), 0);
    for mode in [1, 2] {
        let request = Mc::new(LISTED_RP, b"user")
            .with(0x0A, int(mode))
            .with(0x0B, Value::Array(vec![text("none")]));
        let (status, value, _) = h.ctap2(0x01, Some(request.build()));
        assert_eq!(status, 0);
        let value = value.unwrap();
        let made = MadeCredential::parse(&value, &client_data_hash("make-credential"));
        assert_eq!(made.fmt, "none");
        assert_eq!(made.att_stmt, Value::Map(vec![]));
        assert!(
            map_int(&value, 4).is_none(),
            "epAtt with fmt none (mode {mode})"
        );
    }
}
