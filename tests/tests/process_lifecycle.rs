//! The lifecycle scenarios over the wire, against the real `ferrokey` binary
//! (`serve --control`): clone, CXF export and import, device-bound keys.
//! Every assertion is a CTAP getAssertion over USB/IP whose signature is
//! verified with the public key of the original registration.
//!
//! Needs `target/<profile>/ferrokey`: run `cargo build -p firmware-sim` first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod process_support;

use process_support::*;
use serde_json::{json, Value};

/// authData flag bits.
const BE: u8 = 0x08;
const BS: u8 = 0x10;

fn ok(control: std::net::SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Value {
    let (code, answer) = control_json(control, method, path, body);
    assert_eq!(code, 200, "{method} {path}: {answer}");
    answer["value"].clone()
}

/// A discoverable getAssertion (empty allowList) on `client`, verified with
/// `reg`'s public key.
fn discoverable(client: &mut Client, rp: &str, reg: &Registration) -> Assertion {
    let assertion = GetAssertion::new(rp)
        .send(client)
        .unwrap()
        .unwrap_or_else(|status| panic!("getAssertion: status {status:#04x}"));
    assert_eq!(assertion.credential_id, reg.credential_id);
    assertion.verify(&reg.public_key).unwrap();
    assertion
}

#[test]
fn a_clone_has_the_same_credentials_and_counters_and_its_own_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let (served, control) = Served::start_with_control(tmp.path(), &[]);
    let mut original = connect(served.addr, "1-1");
    let resident = make_credential(&mut original, "example.com", "ada").unwrap();
    let other = make_credential_with_options(&mut original, "example.com", "bob", &[("rk", false)])
        .unwrap();
    let first = get_assertion(&mut original, "example.com", &resident).unwrap();

    let clone = ok(control, "POST", "/webauthn/authenticator/1/clone", None);
    let me = ok(control, "GET", "/webauthn/authenticator/1", None);
    assert_ne!(clone["serial"], me["serial"]);
    assert_ne!(clone["busid"], me["busid"]);
    assert_eq!(clone["aaguid"], me["aaguid"]);
    let mut copy = connect(served.addr, clone["busid"].as_str().unwrap());
    // The same counter continues on both: they diverge from here.
    let on_copy = get_assertion(&mut copy, "example.com", &resident).unwrap();
    let on_original = get_assertion(&mut original, "example.com", &resident).unwrap();
    assert_eq!(on_copy, first + 1);
    assert_eq!(on_original, first + 1);
    // The non-resident credential ID opens on the clone (same device secret).
    assert!(get_assertion(&mut copy, "example.com", &other).is_ok());
    discoverable(&mut copy, "example.com", &resident);
    drop((original, copy));
    served.stop();
}

#[test]
fn an_exported_passkey_signs_in_from_the_key_it_was_imported_into() {
    let tmp = tempfile::tempdir().unwrap();
    let (served, control) = Served::start_with_control(tmp.path(), &[]);
    let mut source = connect(served.addr, "1-1");
    let reg = make_credential(&mut source, "example.com", "cleo").unwrap();
    let document = ok(control, "GET", "/webauthn/authenticator/1/export", None);
    let target = ok(
        control,
        "POST",
        "/webauthn/authenticator",
        Some(&json!({"protocol": "ctap2_1", "transport": "usb",
                     "defaultBackupEligibility": true, "defaultBackupState": true})),
    );
    let target = target.as_str().unwrap().to_string();
    let path = format!("/webauthn/authenticator/{target}/import");

    // A broken copy: nothing is imported.
    let mut broken = document.clone();
    broken["accounts"][0]["items"][0]["credentials"][0]["rpId"] = json!("EXAMPLE com");
    let (code, answer) = control_json(control, "POST", &path, Some(&broken));
    assert_eq!(code, 400, "{answer}");
    assert!(
        answer["value"]["message"]
            .as_str()
            .unwrap()
            .contains("accounts[0].items[0].credentials[0]: rpId"),
        "{answer}"
    );
    let listed = format!("/webauthn/authenticator/{target}/credentials");
    assert_eq!(ok(control, "GET", &listed, None), json!([]));

    let imported = ok(control, "POST", &path, Some(&document));
    assert_eq!(imported["imported"].as_array().unwrap().len(), 1);
    let busid = ok(
        control,
        "GET",
        &format!("/webauthn/authenticator/{target}"),
        None,
    )["busid"]
        .as_str()
        .unwrap()
        .to_string();
    let mut moved = connect(served.addr, &busid);
    let assertion = discoverable(&mut moved, "example.com", &reg);
    assert_eq!(assertion.auth_data.sign_count, 1);
    assert_eq!(assertion.auth_data.flags & (BE | BS), BE | BS);
    assert_eq!(assertion.user_id().unwrap(), b"cleo");
    // The same document again: the credential is there already, nothing changes.
    let (code, answer) = control_json(control, "POST", &path, Some(&document));
    assert_eq!(code, 400, "{answer}");
    assert_eq!(
        ok(control, "GET", &listed, None).as_array().unwrap().len(),
        1
    );
    drop((source, moved));
    served.stop();
}

#[test]
fn no_export_refuses_export_and_clone_and_survives_a_restart_without_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let (served, control) = Served::start_with_control(tmp.path(), &["--no-export"]);
    let mut key = connect(served.addr, "1-1");
    make_credential(&mut key, "example.com", "dan").unwrap();
    drop(key);
    let (code, answer) = control_json(control, "GET", "/webauthn/authenticator/1/export", None);
    assert_eq!(code, 403, "{answer}");
    assert_eq!(answer["value"]["error"], "unsupported operation");
    served.stop();

    let (served, control) = Served::start_with_control(tmp.path(), &[]);
    for (method, path) in [
        ("GET", "/webauthn/authenticator/1/export"),
        ("POST", "/webauthn/authenticator/1/clone"),
    ] {
        let (code, answer) = control_json(control, method, path, None);
        assert_eq!(code, 403, "{path}: {answer}");
        assert!(
            answer["value"]["message"]
                .as_str()
                .unwrap()
                .contains("device-bound"),
            "{answer}"
        );
    }
    let me = ok(control, "GET", "/webauthn/authenticator/1", None);
    assert_eq!(me["options"]["exportable"], false, "{me}");
    let listed = ok(
        control,
        "GET",
        "/webauthn/authenticator/1/credentials",
        None,
    );
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(listed[0].get("privateKey").is_none(), "{listed}");
    assert_eq!(
        ok(control, "GET", "/webauthn/authenticators", None)
            .as_array()
            .unwrap()
            .len(),
        1
    );
    served.stop();
}
