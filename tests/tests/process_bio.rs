//! Biometrics and enterprise attestation of the real `ferrokey` binary
//! (`serve --bio`, `--enterprise --enterprise-rp`, and `ferrokey:bio`,
//! `ferrokey:enterpriseAttestation` through the control API): fingers
//! enrolled through the control API's bio/finger, a match and a forced
//! failure, enrollments listed and kept across a restart; enterprise
//! attestation enabled through authenticatorConfig, its per-key certificate
//! checked against the `ferrokey ca` root.
//!
//! Needs `target/<profile>/ferrokey`: run `cargo build -p firmware-sim` first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod process_support;

use std::net::SocketAddr;
use std::process::Command;

use ciborium::Value;
use ferrokey_tests::pin::{ClientPin, Token};
use firmware_sim::attestation::check::{check_issued_by, parse_strict, StrictCertificate};
use process_support::*;
use serde_json::json;
use x509_cert::der::oid::db::rfc4519::COMMON_NAME;

const PIN: &str = "1234";
/// Permissions: mc, be, acfg.
const MC: u8 = 0x01;
const BE: u8 = 0x08;
const ACFG: u8 = 0x20;
const ENTERPRISE_RP: &str = "corp.example";

fn option(client: &mut Client, name: &str) -> Option<bool> {
    let info = ctap2::get_info(client).unwrap();
    get_text(get(&info, 4).unwrap(), name).map(|v| v.as_bool().unwrap())
}

/// The first key's WebDriver authenticator id.
fn first_id(control: SocketAddr) -> String {
    let (code, listed) = control_json(control, "GET", "/webauthn/authenticators", None);
    assert_eq!(code, 200, "{listed}");
    listed["value"][0]["authenticatorId"]
        .as_str()
        .unwrap()
        .to_string()
}

fn place_finger(control: SocketAddr, id: &str, finger: u8) {
    let path = format!("/webauthn/authenticator/{id}/bio/finger");
    let (code, body) = control_json(control, "POST", &path, Some(&json!({"finger": finger})));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["value"]["finger"], finger);
}

fn bio_status(control: SocketAddr, id: &str) -> serde_json::Value {
    let (code, body) = control_json(
        control,
        "GET",
        &format!("/webauthn/authenticator/{id}/bio"),
        None,
    );
    assert_eq!(code, 200, "{body}");
    body["value"].clone()
}

/// An authenticatorBioEnrollment request with a pinUvAuthParam from `token`.
fn bio_request(sub: u8, params: Option<Value>, token: &Token) -> Value {
    let mut raw = vec![];
    if let Some(p) = &params {
        raw = encode(p);
    }
    let mut m = vec![(int(1), int(1)), (int(2), int(sub.into()))];
    if let Some(p) = params {
        m.push((int(3), p));
    }
    m.push((int(4), int(token.protocol.into())));
    m.push((int(5), bytes(&token.mac(&[&[1, sub], &raw]))));
    Value::Map(m)
}

#[test]
fn fingers_placed_through_the_control_api_enroll_and_verify() {
    let tmp = tempfile::tempdir().unwrap();
    // Presence is denied: only a placed finger answers the sensor.
    let (served, control) =
        Served::start_with_control(tmp.path(), &["--bio", "--presence", "deny"]);
    let id = first_id(control);
    let mut client = connect(served.addr, "1-1");
    assert_eq!(option(&mut client, "bioEnroll"), Some(false));
    assert_eq!(option(&mut client, "uv"), Some(false));
    let pin = ClientPin::new(2);
    assert_eq!(pin.set_pin(&mut client, PIN).unwrap(), 0);
    let token = pin.token(&mut client, PIN, Some(BE), None).unwrap();
    assert_eq!(bio_status(control, &id)["enrollments"], json!([]));

    // Four samples of finger 3, each placed through the control API.
    place_finger(control, &id, 3);
    let reply = client
        .ctap2(0x09, Some(&bio_request(1, None, &token)))
        .unwrap();
    let value = reply.ok().unwrap();
    let template = get_bytes(&value, 4).unwrap().to_vec();
    assert_eq!(get(&value, 5), Some(&int(0)), "FP_GOOD");
    assert_eq!(get(&value, 6), Some(&int(3)));
    let params = Value::Map(vec![(int(1), bytes(&template))]);
    for left in [2, 1, 0] {
        place_finger(control, &id, 3);
        let reply = client
            .ctap2(0x09, Some(&bio_request(2, Some(params.clone()), &token)))
            .unwrap();
        assert_eq!(get(&reply.ok().unwrap(), 6), Some(&int(left)));
    }
    assert_eq!(option(&mut client, "bioEnroll"), Some(true));
    assert_eq!(option(&mut client, "uv"), Some(true));
    let listed = bio_status(control, &id);
    assert_eq!(listed["enrollments"].as_array().unwrap().len(), 1);
    assert_eq!(listed["enrollments"][0]["friendlyName"], "");
    assert_eq!(listed["failNextMatch"], false);

    // The enrolled finger verifies; another does not; a forced failure fails once.
    place_finger(control, &id, 3);
    assert!(pin.uv_token(&mut client, MC, Some("example.com")).is_ok());
    place_finger(control, &id, 4);
    assert_eq!(
        pin.uv_token(&mut client, MC, None).err(),
        Some(status::UV_INVALID)
    );
    let path = format!("/webauthn/authenticator/{id}/bio/fail-next-match");
    let (code, body) = control_json(control, "POST", &path, None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(bio_status(control, &id)["failNextMatch"], true);
    place_finger(control, &id, 3);
    assert_eq!(
        pin.uv_token(&mut client, MC, None).err(),
        Some(status::UV_INVALID)
    );
    let after = bio_status(control, &id);
    assert_eq!(after["failNextMatch"], false);
    assert_eq!(after["uvRetries"], 6);
    place_finger(control, &id, 3);
    assert!(pin.uv_token(&mut client, MC, None).is_ok());

    // Bad requests.
    let finger = format!("/webauthn/authenticator/{id}/bio/finger");
    let (code, _) = control_json(control, "POST", &finger, Some(&json!({"finger": 10})));
    assert_eq!(code, 400);
    let (code, _) = control_json(control, "POST", &finger, Some(&json!({"fingers": 1})));
    assert_eq!(code, 400);
    drop(client);
    served.stop();

    // The template survives a restart.
    let (served, control) = Served::start_with_control(tmp.path(), &["--bio"]);
    let id = first_id(control);
    assert_eq!(
        bio_status(control, &id)["enrollments"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let mut client = connect(served.addr, "1-1");
    assert_eq!(option(&mut client, "uv"), Some(true));
    drop(client);
    served.stop();
}

#[test]
fn a_key_without_a_sensor_refuses_the_bio_routes() {
    let tmp = tempfile::tempdir().unwrap();
    let (served, control) = Served::start_with_control(tmp.path(), &[]);
    let id = first_id(control);
    for (method, path, body) in [
        ("GET", format!("/webauthn/authenticator/{id}/bio"), None),
        (
            "POST",
            format!("/webauthn/authenticator/{id}/bio/finger"),
            Some(json!({"finger": 1})),
        ),
        (
            "POST",
            format!("/webauthn/authenticator/{id}/bio/fail-next-match"),
            None,
        ),
    ] {
        let (code, answer) = control_json(control, method, &path, body.as_ref());
        assert_eq!(code, 409, "{path}: {answer}");
        assert!(answer["value"]["message"]
            .as_str()
            .unwrap()
            .contains("fingerprint"));
    }
    // A key added with ferrokey:bio has the routes.
    let config = json!({"protocol": "ctap2_1", "transport": "usb", "ferrokey:bio": true});
    let (code, added) = control_json(control, "POST", "/webauthn/authenticator", Some(&config));
    assert_eq!(code, 200, "{added}");
    let added = added["value"].as_str().unwrap().to_string();
    assert_eq!(bio_status(control, &added)["enrollments"], json!([]));
    // bio excludes built-in uv.
    let both = json!({"protocol": "ctap2_1", "transport": "usb", "ferrokey:bio": true, "ferrokey:uv": "auto"});
    let (code, _) = control_json(control, "POST", "/webauthn/authenticator", Some(&both));
    assert_eq!(code, 400);
    served.stop();
}

/// The root certificate `ferrokey ca` prints for this state directory.
fn ferrokey_ca_root(state: &std::path::Path) -> StrictCertificate {
    let out = Command::new(ferrokey_bin())
        .args(["ca", "--state-dir"])
        .arg(state)
        .output()
        .unwrap();
    assert!(out.status.success());
    parse_strict(pem::parse(&out.stdout).unwrap().contents()).unwrap()
}

/// enableEnterpriseAttestation with an `acfg` token.
fn enable_ep(client: &mut Client, token: &Token) -> u8 {
    let request = Value::Map(vec![
        (int(1), int(1)),
        (int(3), int(token.protocol.into())),
        (int(4), bytes(&token.mac(&[&[0xFF; 32], &[0x0D, 0x01]]))),
    ]);
    client.ctap2(0x0D, Some(&request)).unwrap().status
}

/// makeCredential with enterpriseAttestation `mode`: the registration,
/// its x5c[0] (signature checked with it) and epAtt.
fn ep_registration(client: &mut Client, rp: &str, mode: i64) -> (Vec<u8>, Option<Value>) {
    let request = ctap2::MakeCredential::new(rp, b"user").with(0x0A, int(mode));
    let reply = client.ctap2(0x01, Some(&request.build())).unwrap();
    let value = reply.ok().unwrap();
    let reg = ctap2::Registration::parse(&value, &request.cdh, rp).unwrap();
    let x5c = reg.x5c().unwrap().unwrap();
    let cert = parse_strict(&x5c[0]).unwrap();
    reg.verify_packed_with(&ctap2::PublicKey::Es256(
        p256::ecdsa::VerifyingKey::from_sec1_bytes(cert.public_key()).unwrap(),
    ))
    .unwrap();
    (x5c[0].clone(), get(&value, 4).cloned())
}

#[test]
fn enterprise_attestation_is_a_per_key_certificate_from_the_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let (served, _control) = Served::start_with_control(
        tmp.path(),
        &[
            "--enterprise",
            "--enterprise-rp",
            ENTERPRISE_RP,
            "--keys",
            "2",
        ],
    );
    let root = ferrokey_ca_root(tmp.path());
    let mut certs = vec![];
    for busid in ["1-1", "1-2"] {
        let mut client = connect(served.addr, busid);
        assert_eq!(option(&mut client, "ep"), Some(false));
        let pin = ClientPin::new(1);
        assert_eq!(pin.set_pin(&mut client, PIN).unwrap(), 0);
        let acfg = pin.token(&mut client, PIN, Some(ACFG), None).unwrap();
        assert_eq!(enable_ep(&mut client, &acfg), 0);
        assert_eq!(option(&mut client, "ep"), Some(true));
        // The batch certificate without enterpriseAttestation.
        let plain = ctap2::MakeCredential::new("example.com", b"user").must(&mut client);
        let batch = plain.x5c().unwrap().unwrap()[0].clone();
        // Platform-managed (2), and vendor-facilitated (1) for a listed RP.
        let (platform, ep_att) = ep_registration(&mut client, "example.com", 2);
        assert_eq!(ep_att, Some(Value::Bool(true)));
        let (vendor, ep_att) = ep_registration(&mut client, ENTERPRISE_RP, 1);
        assert_eq!(ep_att, Some(Value::Bool(true)));
        assert_eq!(platform, vendor);
        assert_ne!(
            platform, batch,
            "the enterprise certificate is not the batch one"
        );
        // An unlisted RP with 1: the batch certificate, no epAtt.
        let (unlisted, ep_att) = ep_registration(&mut client, "other.example", 1);
        assert_eq!((unlisted, ep_att), (batch, None));
        let cert = parse_strict(&platform).unwrap();
        check_issued_by(&cert, &root).unwrap();
        let cn = cert.subject_attribute(COMMON_NAME).unwrap();
        assert!(
            cn[0].starts_with("ferrokey Enterprise Attestation "),
            "{cn:?}"
        );
        certs.push((platform, cn[0].clone()));
    }
    assert_ne!(certs[0], certs[1], "each key has its own certificate");
    served.stop();
    // The same certificate after a restart.
    let (served, _control) = Served::start_with_control(
        tmp.path(),
        &[
            "--enterprise",
            "--enterprise-rp",
            ENTERPRISE_RP,
            "--keys",
            "2",
        ],
    );
    let mut client = connect(served.addr, "1-1");
    assert_eq!(option(&mut client, "ep"), Some(true));
    let (again, _) = ep_registration(&mut client, "example.com", 2);
    assert_eq!(again, certs[0].0);
    drop(client);
    served.stop();
}
