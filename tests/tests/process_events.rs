//! The control API's authenticators and events against the real `ferrokey`
//! binary: a key added with WebDriver's Add Virtual Authenticator is a new
//! USB/IP device; a USB/IP client registers and signs in with it; `ferrokey
//! events` prints the decoded CTAP requests and the DevTools events
//! (credentialAdded, credentialAsserted) with the credential id and counter
//! the client saw; `--transcript` has the same lines; Remove Virtual
//! Authenticator unplugs it.
//!
//! Needs `target/<profile>/ferrokey`: run `cargo build -p firmware-sim` first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod process_support;

use std::net::SocketAddr;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ferrokey_tests::events_cli::EventsCli;
use process_support::*;
use serde_json::{json, Value};

/// One JSON request on the control API: (status, body).
fn call(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    control_json(addr, method, path, body)
}

#[test]
fn added_keys_are_usable_and_their_ceremonies_are_events() {
    let tmp = tempfile::tempdir().unwrap();
    let transcript = tmp.path().join("transcript.jsonl");
    let transcript_arg = transcript.to_str().unwrap().to_string();
    let (served, control) = Served::start_with_control(
        &tmp.path().join("state"),
        &["--transcript", &transcript_arg],
    );
    let mut events = EventsCli::start(control);
    // The subscription is live once the first key's events would show:
    // give the CLI a moment to connect.
    std::thread::sleep(Duration::from_millis(500));

    // Add Virtual Authenticator: a new USB device.
    let config = json!({"protocol": "ctap2_1", "transport": "usb", "hasResidentKey": true});
    let (status, added) = call(
        control,
        "POST",
        "/session/abc/webauthn/authenticator",
        Some(&config),
    );
    assert_eq!(status, 200, "{added}");
    let id = added["value"].as_str().unwrap().to_string();
    let (status, described) = call(
        control,
        "GET",
        &format!("/webauthn/authenticator/{id}"),
        None,
    );
    assert_eq!(status, 200, "{described}");
    let busid = described["value"]["busid"].as_str().unwrap().to_string();
    assert_ne!(busid, "1-1", "the new key reused key 1's busid");
    let (_, listed) = call(control, "GET", "/webauthn/authenticators", None);
    assert_eq!(listed["value"].as_array().unwrap().len(), 2);
    events.find("plugged", |v| {
        v["event"] == "plugged" && v["authenticatorId"] == id.as_str()
    });

    // A client registers and signs in with it.
    let mut client = connect(served.addr, &busid);
    let registration = make_credential(&mut client, "example.com", "dora").unwrap();
    let counter = get_assertion(&mut client, "example.com", &registration).unwrap();
    let credential_id = URL_SAFE_NO_PAD.encode(&registration.credential_id);

    let ctap = events.find("makeCredential", |v| {
        v["event"] == "ctap" && v["data"]["command"] == "makeCredential"
    });
    assert_eq!(ctap["authenticatorId"], id.as_str());
    assert_eq!(ctap["data"]["status"], "CTAP2_OK");
    assert_eq!(ctap["data"]["params"]["rp"]["id"], "example.com");
    assert_eq!(ctap["data"]["params"]["user"]["name"], "dora");
    assert_eq!(
        ctap["data"]["params"]["clientDataHash"],
        URL_SAFE_NO_PAD.encode(registration.cdh)
    );
    assert!(ctap["data"]["latencyMs"].as_f64().unwrap() > 0.0);
    let added = events.find("credentialAdded", |v| v["event"] == "credentialAdded");
    assert_eq!(added["data"]["authenticatorId"], id.as_str());
    assert_eq!(
        added["data"]["credential"]["credentialId"],
        credential_id.as_str()
    );
    assert_eq!(added["data"]["credential"]["isResidentCredential"], true);
    assert_eq!(added["data"]["credential"]["rpId"], "example.com");
    assert!(added["data"]["credential"].get("privateKey").is_none());
    let asserted = events.find("credentialAsserted", |v| v["event"] == "credentialAsserted");
    assert_eq!(
        asserted["data"]["credential"]["credentialId"],
        credential_id.as_str()
    );
    assert_eq!(asserted["data"]["credential"]["signCount"], counter);

    // Power off through the WebDriver path: the client's import is gone.
    let (status, off) = call(
        control,
        "POST",
        &format!("/webauthn/authenticator/{id}/power"),
        Some(&json!({"on": false})),
    );
    assert_eq!(status, 200, "{off}");
    assert_eq!(off["value"]["power"], "off");
    events.find("powerOff", |v| {
        v["event"] == "powerOff" && v["authenticatorId"] == id.as_str()
    });
    drop(client);

    // Remove Virtual Authenticator.
    let (status, _) = call(
        control,
        "DELETE",
        &format!("/webauthn/authenticator/{id}"),
        None,
    );
    assert_eq!(status, 200);
    let (status, gone) = call(
        control,
        "GET",
        &format!("/webauthn/authenticator/{id}"),
        None,
    );
    assert_eq!(
        (status, gone["value"]["error"].as_str()),
        (404, Some("no such authenticator"))
    );
    let (_, listed) = call(control, "GET", "/webauthn/authenticators", None);
    assert_eq!(listed["value"].as_array().unwrap().len(), 1);

    served.stop();
    // The transcript has the same lines, and is private.
    let text = std::fs::read_to_string(&transcript).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.iter().any(|v| v == &added),
        "credentialAdded missing from the transcript"
    );
    assert!(lines.iter().any(|v| v == &asserted));
    assert!(lines
        .iter()
        .any(|v| v["event"] == "ctap" && v["data"]["command"] == "getAssertion"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&transcript).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// getAssertion for `rp` with an empty allowList, parsed by the shared strict
/// parser (rpIdHash, structure); its signature is left to the caller.
fn discoverable_assertion(client: &mut Client, rp: &str) -> Assertion {
    match GetAssertion::new(rp).send(client).unwrap() {
        Ok(assertion) => assertion,
        Err(status) => panic!("getAssertion status {status:#04x}"),
    }
}

#[test]
fn a_seeded_credential_signs_for_real_and_overrides_break_what_they_say() {
    use p256::pkcs8::EncodePrivateKey;

    let tmp = tempfile::tempdir().unwrap();
    let (served, control) = Served::start_with_control(&tmp.path().join("state"), &[]);
    let mut events = EventsCli::start(control);
    std::thread::sleep(Duration::from_millis(500));

    // The test's own key pair; only the private key goes to the key.
    let secret = p256::SecretKey::random(&mut rand::thread_rng());
    let public = PublicKey::Es256(p256::ecdsa::VerifyingKey::from(secret.public_key()));
    let pkcs8 = secret.to_pkcs8_der().unwrap();
    let credential_id = b"seeded-by-the-test-0001".to_vec();
    let seed = json!({
        "credentialId": URL_SAFE_NO_PAD.encode(&credential_id),
        "isResidentCredential": true,
        "rpId": "localhost",
        "privateKey": URL_SAFE_NO_PAD.encode(pkcs8.as_bytes()),
        "userHandle": URL_SAFE_NO_PAD.encode(b"user-7"),
        "signCount": 10,
        "userName": "alice",
    });
    let (status, answer) = call(
        control,
        "POST",
        "/webauthn/authenticator/1/credential",
        Some(&seed),
    );
    assert_eq!(status, 200, "{answer}");
    events.find("credentialAdded", |v| v["event"] == "credentialAdded");
    let (status, again) = call(
        control,
        "POST",
        "/webauthn/authenticator/1/credential",
        Some(&seed),
    );
    assert_eq!(
        (status, again["value"]["error"].as_str()),
        (400, Some("invalid argument")),
        "a duplicate id was accepted"
    );

    // Signed in through CTAP with an empty allowList: the seeded credential
    // answers, and the test's public key verifies its signature.
    let mut client = connect(served.addr, "1-1");
    let assertion = discoverable_assertion(&mut client, "localhost");
    assert_eq!(assertion.credential_id, credential_id);
    assert_eq!(assertion.user_id().as_deref(), Some(&b"user-7"[..]));
    assert_eq!(
        assertion.auth_data.flags & ctap2::flags::UP,
        ctap2::flags::UP
    );
    let count = assertion.auth_data.sign_count;
    assert!(
        count > 10,
        "counter {count} did not move past the seeded 10"
    );
    if let Err(e) = assertion.verify(&public) {
        panic!("the seeded key's signature does not verify: {e}");
    }
    let asserted = events.find("credentialAsserted", |v| v["event"] == "credentialAsserted");
    assert_eq!(
        asserted["data"]["credential"]["credentialId"],
        URL_SAFE_NO_PAD.encode(&credential_id)
    );
    assert_eq!(asserted["data"]["credential"]["signCount"], count);

    // Get Credentials: the counter moved, and the private key is the test's.
    let (_, listed) = call(
        control,
        "GET",
        "/webauthn/authenticator/1/credentials",
        None,
    );
    let listed = listed["value"].as_array().unwrap();
    let seeded = listed
        .iter()
        .find(|c| c["credentialId"] == URL_SAFE_NO_PAD.encode(&credential_id))
        .unwrap();
    assert_eq!(seeded["signCount"], count);
    assert_eq!(seeded["rpId"], "localhost");
    assert_eq!(seeded["isResidentCredential"], true);
    let exported = URL_SAFE_NO_PAD
        .decode(seeded["privateKey"].as_str().unwrap())
        .unwrap();
    use p256::pkcs8::DecodePrivateKey;
    assert_eq!(p256::SecretKey::from_pkcs8_der(&exported).unwrap(), secret);

    // isBogusSignature: a well-formed signature that does not verify.
    let (status, _) = call(
        control,
        "POST",
        "/webauthn/authenticator/1/response-override",
        Some(&json!({"isBogusSignature": true})),
    );
    assert_eq!(status, 200);
    let bogus = discoverable_assertion(&mut client, "localhost");
    assert!(
        p256::ecdsa::Signature::from_der(&bogus.signature).is_ok(),
        "the bogus signature is not well-formed DER"
    );
    assert!(bogus.verify(&public).is_err(), "a bogus signature verified");
    // isBadUP: UP=0 (and the bogus bit is reset, as CDP does).
    call(
        control,
        "POST",
        "/webauthn/authenticator/1/response-override",
        Some(&json!({"isBadUP": true})),
    );
    let bad_up = discoverable_assertion(&mut client, "localhost");
    assert_eq!(bad_up.auth_data.flags & ctap2::flags::UP, 0, "UP still set");
    bad_up.verify(&public).unwrap();

    // Properties, then deletion.
    let path = format!(
        "/webauthn/authenticator/1/credentials/{}",
        URL_SAFE_NO_PAD.encode(&credential_id)
    );
    let (status, _) = call(
        control,
        "POST",
        &format!("{path}/props"),
        Some(&json!({"signCount": 500})),
    );
    assert_eq!(status, 200);
    let (_, listed) = call(
        control,
        "GET",
        "/webauthn/authenticator/1/credentials",
        None,
    );
    assert!(listed["value"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["signCount"] == 500));
    let (status, _) = call(control, "DELETE", &path, None);
    assert_eq!(status, 200);
    events.find("credentialDeleted", |v| v["event"] == "credentialDeleted");
    let (status, gone) = call(control, "DELETE", &path, None);
    assert_eq!(
        (status, gone["value"]["error"].as_str()),
        (404, Some("no such credential"))
    );
    drop(client);
    served.stop();
}
