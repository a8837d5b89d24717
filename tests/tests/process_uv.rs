//! Built-in user verification of the real `ferrokey` binary (`serve --uv`):
//! getInfo, makeCredential with `uv: true`, the control API's UV override, and
//! uvRetries kept across a restart.
//!
//! Needs `target/<profile>/ferrokey`: run `cargo build -p firmware-sim` first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod process_support;

use ferrokey_tests::pin::ClientPin;
use process_support::*;

const CTAP2_ERR_UV_BLOCKED: u8 = status::UV_BLOCKED;
const CTAP2_ERR_UV_INVALID: u8 = status::UV_INVALID;
const CTAP2_ERR_INVALID_OPTION: u8 = status::INVALID_OPTION;
/// Authenticator data flags.
const UP: u8 = ctap2::flags::UP;
const UV: u8 = ctap2::flags::UV;

/// getInfo `options.uv`, if present.
fn info_uv(client: &mut Client) -> Option<bool> {
    let info = ctap2::get_info(client).unwrap();
    get_text(get(&info, 4).unwrap(), "uv").map(|v| v.as_bool().unwrap())
}

/// clientPIN getUVRetries.
fn uv_retries(client: &mut Client) -> u8 {
    ClientPin::new(2).uv_retries(client).unwrap()
}

/// makeCredential (ES256, non-discoverable) with `uv: true`: the authData
/// flags, or the CTAP status.
fn make_credential_with_uv(client: &mut Client, user: &str) -> Result<u8, u8> {
    make_credential_with_options(client, "example.com", user, &[("uv", true)])
        .map(|registration| registration.auth_data.flags)
}

#[test]
fn without_built_in_uv_the_uv_option_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (served, _control) = Served::start_with_control(tmp.path(), &[]);
    let mut client = connect(served.addr, "1-1");
    assert_eq!(info_uv(&mut client), None);
    assert_eq!(
        make_credential_with_uv(&mut client, "ann"),
        Err(CTAP2_ERR_INVALID_OPTION)
    );
    drop(client);
    served.stop();
}

#[test]
fn built_in_uv_is_scriptable_and_its_retries_persist() {
    let tmp = tempfile::tempdir().unwrap();
    // Presence is denied: a verified finger is the touch.
    let (served, control) =
        Served::start_with_control(tmp.path(), &["--uv", "auto", "--presence", "deny"]);
    let mut client = connect(served.addr, "1-1");
    assert_eq!(info_uv(&mut client), Some(true));
    assert_eq!(uv_retries(&mut client), 8);
    let flags = make_credential_with_uv(&mut client, "bob").unwrap();
    assert_eq!(flags & (UP | UV), UP | UV, "flags {flags:#04x}");

    // A wrong finger: UV_INVALID, one attempt spent.
    let (code, body) = control_post(control, "/usb1/uv/deny");
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        make_credential_with_uv(&mut client, "bob"),
        Err(CTAP2_ERR_UV_INVALID)
    );
    assert_eq!(
        make_credential_with_uv(&mut client, "bob"),
        Err(CTAP2_ERR_UV_INVALID)
    );
    assert_eq!(uv_retries(&mut client), 6);
    drop(client);
    served.stop();

    // uvRetries survive a restart; --uv deny fails until the last attempt blocks.
    let (served, control) = Served::start_with_control(tmp.path(), &["--uv", "deny"]);
    let mut client = connect(served.addr, "1-1");
    assert_eq!(uv_retries(&mut client), 6);
    for _ in 0..5 {
        assert_eq!(
            make_credential_with_uv(&mut client, "bob"),
            Err(CTAP2_ERR_UV_INVALID)
        );
    }
    assert_eq!(
        make_credential_with_uv(&mut client, "bob"),
        Err(CTAP2_ERR_UV_BLOCKED)
    );
    // Blocked: even a matching finger is no longer asked.
    assert_eq!(control_post(control, "/usb1/uv/approve").0, 200);
    assert_eq!(
        make_credential_with_uv(&mut client, "bob"),
        Err(CTAP2_ERR_UV_BLOCKED)
    );
    assert_eq!(uv_retries(&mut client), 0);
    drop(client);
    served.stop();
}
