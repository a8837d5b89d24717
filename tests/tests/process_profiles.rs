//! Profiles of the real `ferrokey` binary (`serve --profile`, `--profile-file`,
//! `--counter-mode`, `--quirk`, the control API's `ferrokey:profile` and
//! WebDriver `protocol`), seen over the wire by a CTAPHID client: INIT
//! capabilities, getInfo decoded, commands refused as such a key refuses them.
//!
//! Needs `target/<profile>/ferrokey`: run `cargo build -p firmware-sim` first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod process_support;

use ciborium::Value;
use process_support::*;
use serde_json::json;

/// CTAPHID ERR_INVALID_CMD.
const HID_INVALID_CMD: u8 = 0x01;
/// CTAP1_ERR_INVALID_COMMAND.
const INVALID_COMMAND: u8 = 0x01;

fn texts(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_text().unwrap().to_string())
        .collect()
}

fn option(info: &Value, name: &str) -> Option<bool> {
    get_text(get(info, 4).unwrap(), name).map(|v| v.as_bool().unwrap())
}

fn int_list(value: &Value) -> Vec<i128> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_integer().unwrap().into())
        .collect()
}

/// U2F VERSION over CTAPHID_MSG.
fn u2f_version(client: &mut Client) -> Vec<u8> {
    client
        .msg(&[0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00])
        .unwrap()
}

#[test]
fn ctap2_0_profile_reports_a_2_0_key_and_refuses_2_1_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let served = Served::start(tmp.path(), &["--profile", "ctap2.0"]);
    let mut client = served.connect("1-1");
    let init = client.info().unwrap();
    assert!(init.has_cbor() && init.has_msg());
    let info = ctap2::get_info(&mut client).unwrap();
    assert_eq!(texts(get(&info, 1).unwrap()), ["U2F_V2", "FIDO_2_0"]);
    assert_eq!(texts(get(&info, 2).unwrap()), ["hmac-secret"]);
    assert_eq!(get(&info, 5).unwrap().as_integer().unwrap(), 1200.into());
    assert_eq!(int_list(get(&info, 6).unwrap()), [1]);
    assert_eq!(option(&info, "credMgmt"), None);
    assert_eq!(option(&info, "largeBlobs"), None);
    assert_eq!(option(&info, "clientPin"), Some(false));
    for key in [7, 8, 9, 10, 0x0C, 0x0D, 0x14] {
        assert!(get(&info, key).is_none(), "getInfo key {key:#x}");
    }
    for command in [
        cmd::CREDENTIAL_MANAGEMENT,
        cmd::SELECTION,
        cmd::LARGE_BLOBS,
        cmd::CONFIG,
    ] {
        let (status, body) = client.cbor(command, &[0xA1, 0x01, 0x01]).unwrap();
        assert_eq!((status, body.len()), (INVALID_COMMAND, 0), "{command:#x}");
    }
    // Registration still works, and U2F too.
    let reg = make_credential(&mut client, "example.com", "ann").unwrap();
    assert!(get_assertion(&mut client, "example.com", &reg).is_ok());
    assert_eq!(u2f_version(&mut client), b"U2F_V2\x90\x00");
    drop(client);
    served.stop();
}

#[test]
fn u2f_profile_has_no_cbor_capability_and_refuses_cbor() {
    let tmp = tempfile::tempdir().unwrap();
    let served = Served::start(tmp.path(), &["--profile", "u2f"]);
    let mut client = served.connect("1-1");
    let init = client.info().unwrap();
    assert!(!init.has_cbor(), "INIT capabilities without CBOR");
    assert!(init.has_msg());
    match client.cbor(cmd::GET_INFO, &[]) {
        Err(ClientError::Device(code)) => assert_eq!(code, HID_INVALID_CMD),
        other => panic!("CTAPHID_CBOR answered {other:?}"),
    }
    assert_eq!(u2f_version(&mut client), b"U2F_V2\x90\x00");
    drop(client);
    served.stop();
}

#[test]
fn synced_passkey_profile_backs_up_and_never_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let served = Served::start(tmp.path(), &["--profile", "synced-passkey"]);
    let mut client = served.connect("1-1");
    let init = client.info().unwrap();
    assert!(!init.has_msg(), "no U2F: NMSG");
    let info = ctap2::get_info(&mut client).unwrap();
    assert_eq!(texts(get(&info, 1).unwrap()), ["FIDO_2_0", "FIDO_2_1"]);
    assert_eq!(get(&info, 3).unwrap().as_bytes().unwrap(), &[0u8; 16]);
    assert_eq!(option(&info, "uv"), Some(true));
    let reg =
        make_credential_with_options(&mut client, "example.com", "bob", &[("uv", true)]).unwrap();
    assert_eq!(reg.fmt, "none");
    let flags = reg.auth_data.flags;
    assert_eq!(flags & 0x1D, 0x1D, "UP UV BE BS: {flags:#x}");
    assert_eq!(reg.auth_data.sign_count, 0);
    for _ in 0..3 {
        // Discoverable although rk was not asked for: found without an allowList.
        let assertion = GetAssertion::new("example.com")
            .send(&mut client)
            .unwrap()
            .unwrap();
        assertion.verify(&reg.public_key).unwrap();
        assert_eq!(assertion.credential_id, reg.credential_id);
        assert_eq!(assertion.auth_data.sign_count, 0);
        assert_eq!(assertion.auth_data.flags & 0x18, 0x18);
    }
    drop(client);
    served.stop();
}

#[test]
fn quirks_and_counter_mode_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let served = Served::start(
        tmp.path(),
        &[
            "--quirk",
            "one-credential-per-list",
            "--quirk",
            "reject-silent-authentication",
            "--counter-mode",
            "global",
        ],
    );
    let mut client = served.connect("1-1");
    let info = ctap2::get_info(&mut client).unwrap();
    assert_eq!(get(&info, 7).unwrap().as_integer().unwrap(), 1.into());
    let a = make_credential(&mut client, "example.com", "a").unwrap();
    let b = make_credential(&mut client, "example.com", "b").unwrap();
    let two = GetAssertion::new("example.com")
        .allow(&a.credential_id)
        .allow(&b.credential_id)
        .send(&mut client)
        .unwrap();
    assert_eq!(two.err(), Some(0x15), "LIMIT_EXCEEDED");
    let silent = GetAssertion::new("example.com")
        .allow(&a.credential_id)
        .option("up", false)
        .send(&mut client)
        .unwrap();
    assert_eq!(silent.err(), Some(status::UNSUPPORTED_OPTION));
    // One global counter: a's and b's signatures take turns on it.
    let mut last = 0;
    for reg in [&a, &b, &a, &b] {
        let count = get_assertion(&mut client, "example.com", reg).unwrap();
        assert!(count > last, "{count} after {last}");
        last = count;
    }
    drop(client);
    served.stop();
}

#[test]
fn bad_profiles_are_refused_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = ferrokey_bin();
    let state = tmp.path().join("state");
    let state = state.to_str().unwrap();
    let file = tmp.path().join("old-key.toml");
    std::fs::write(&file, "base = \"ctap2.0\"\n[options]\ncredMgmt = true\n").unwrap();
    let out = ferrokey(
        &bin,
        &[
            "serve",
            "--state-dir",
            state,
            "--listen",
            "127.0.0.1:0",
            "--profile-file",
            file.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("old-key.toml"), "{stderr}");
    assert!(stderr.contains("options.credMgmt: is CTAP 2.1"), "{stderr}");

    std::fs::write(&file, "maxMsgSize = \"big\"\n").unwrap();
    let out = ferrokey(
        &bin,
        &[
            "serve",
            "--state-dir",
            state,
            "--listen",
            "127.0.0.1:0",
            "--profile-file",
            file.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("maxMsgSize") && stderr.contains("line 1"),
        "{stderr}"
    );

    let out = ferrokey(
        &bin,
        &["serve", "--state-dir", state, "--profile", "yubikey"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a usage error: {stderr}");
    assert!(stderr.contains("unknown profile \"yubikey\""), "{stderr}");
    assert!(
        !std::path::Path::new(state).join("key-1").exists(),
        "no key made"
    );
}

#[test]
fn control_api_profiles_and_the_webdriver_protocol() {
    let tmp = tempfile::tempdir().unwrap();
    let (served, control) = Served::start_with_control(tmp.path(), &["--profile", "strict"]);
    let (code, key) = control_json(control, "GET", "/webauthn/authenticator/1", None);
    assert_eq!(code, 200, "{key}");
    assert_eq!(key["value"]["profile"], "strict");
    assert_eq!(
        key["value"]["profileDetails"]["maxCredentialCountInList"],
        1
    );

    let add = |config: serde_json::Value| {
        let (code, answer) =
            control_json(control, "POST", "/webauthn/authenticator", Some(&config));
        assert_eq!(code, 200, "{answer}");
        let id = answer["value"].as_str().unwrap().to_string();
        let (code, key) = control_json(
            control,
            "GET",
            &format!("/webauthn/authenticator/{id}"),
            None,
        );
        assert_eq!(code, 200);
        key["value"].clone()
    };
    let u2f = add(json!({"protocol": "ctap1/u2f", "transport": "usb"}));
    assert_eq!(u2f["profile"], "u2f");
    let mut client = connect(served.addr, u2f["busid"].as_str().unwrap());
    assert!(!client.info().unwrap().has_cbor());
    assert_eq!(u2f_version(&mut client), b"U2F_V2\x90\x00");
    drop(client);

    let old = add(json!({"protocol": "ctap2", "transport": "usb"}));
    assert_eq!(old["profile"], "ctap2.0");
    let mut client = connect(served.addr, old["busid"].as_str().unwrap());
    let info = ctap2::get_info(&mut client).unwrap();
    assert_eq!(texts(get(&info, 1).unwrap()), ["U2F_V2", "FIDO_2_0"]);
    drop(client);

    let synced = add(json!({"protocol": "ctap2_1", "transport": "usb",
                            "ferrokey:profile": "synced-passkey"}));
    assert_eq!(synced["profileDetails"]["counterMode"], "zero");
    let custom = add(json!({"protocol": "ctap2_1", "transport": "usb",
                            "ferrokey:profileSpec": {"base": "security-key", "maxMsgSize": 2048},
                            "ferrokey:counterMode": "random"}));
    assert_eq!(custom["profile"], "custom (base security-key)");
    let mut client = connect(served.addr, custom["busid"].as_str().unwrap());
    let info = ctap2::get_info(&mut client).unwrap();
    assert_eq!(get(&info, 5).unwrap().as_integer().unwrap(), 2048.into());
    drop(client);

    let (code, refused) = control_json(
        control,
        "POST",
        "/webauthn/authenticator",
        Some(&json!({"protocol": "ctap2_1", "transport": "usb",
                     "ferrokey:profileSpec": {"versions": ["FIDO_3"]}})),
    );
    assert_eq!(code, 400, "{refused}");
    assert!(refused["value"]["message"]
        .as_str()
        .unwrap()
        .contains("versions: unknown value"));
    served.stop();
}
