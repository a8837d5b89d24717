//! The control API of the real `ferrokey` binary (`serve --control`): unplug
//! and replug a key over HTTP while a USB/IP client uses it, with the state
//! kept across the power cycle, and `--presence touch` driven by the button.
//!
//! Needs `target/<profile>/ferrokey`: run `cargo build -p firmware-sim` first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod process_support;

use std::io::{ErrorKind, Read};
use std::time::Duration;

use ferrokey_tests::usbip_client::UsbipClient;
use process_support::*;

/// CTAP2_ERR_OPERATION_DENIED.
const OPERATION_DENIED: u8 = 0x27;

/// Whether the server closed the client's USB/IP connection.
fn closed(client: &mut CtapHidClientUsb) -> bool {
    let stream = client.transport_mut().stream();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

type CtapHidClientUsb = Client;

#[test]
fn power_cycle_unplugs_refuses_imports_and_keeps_state() {
    let tmp = tempfile::tempdir().unwrap();
    let (served, control) = Served::start_with_control(tmp.path(), &[]);
    let (code, body) = control_get(control, "/");
    assert_eq!(code, 200);
    assert!(body.contains(r#""busid":"1-1""#), "{body}");
    assert!(body.contains(r#""power":"on""#), "{body}");

    let mut client = connect(served.addr, "1-1");
    let reg = make_credential(&mut client, "example.com", "hana").unwrap();
    let before = get_assertion(&mut client, "example.com", &reg).unwrap();

    let (code, body) = control_get(control, "/usb1/power/off");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""power":"off""#), "{body}");
    assert!(
        closed(&mut client),
        "the USB/IP connection survived power-off"
    );
    assert!(
        UsbipClient::import(served.addr, "1-1").is_err(),
        "import accepted while powered off"
    );

    let (code, body) = control_get(control, "/usb1/power/on");
    assert_eq!(code, 200, "{body}");
    let mut client = connect(served.addr, "1-1");
    let after = get_assertion(&mut client, "example.com", &reg).unwrap();
    assert!(after > before, "counter {after} after {before}");
    let (_, body) = control_get(control, "/usb1");
    assert!(body.contains(r#""attached":true"#), "{body}");
    drop(client);
    served.stop();
}

#[test]
fn touch_mode_approves_only_while_the_button_is_held() {
    let tmp = tempfile::tempdir().unwrap();
    let (served, control) = Served::start_with_control(tmp.path(), &["--presence", "touch"]);
    let addr = served.addr;
    // A request waits until the button is pressed.
    let worker = std::thread::spawn(move || {
        let mut client = connect(addr, "1-1");
        make_credential(&mut client, "example.com", "ivan").map(|_| ())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(!worker.is_finished(), "approved without a touch");
    assert_eq!(control_get(control, "/usb1/touch/on").0, 200);
    assert_eq!(worker.join().unwrap(), Ok(()));

    // An override beats the button; "default" goes back to touch mode.
    let mut client = connect(served.addr, "1-1");
    let (_, body) = control_post(control, "/usb1/presence/deny");
    assert!(body.contains(r#""presence":"deny""#), "{body}");
    assert_eq!(
        make_credential(&mut client, "example.com", "jill").err(),
        Some(OPERATION_DENIED)
    );
    let (_, body) = control_post(control, "/usb1/presence/default");
    assert!(body.contains(r#""presence":"touch""#), "{body}");
    assert!(body.contains(r#""touch":"on""#), "{body}");
    assert!(make_credential(&mut client, "example.com", "jill").is_ok());
    assert_eq!(control_get(control, "/usb1/touch/off").0, 200);
    assert_eq!(control_get(control, "/usb7/touch/on").0, 404);
    drop(client);
    served.stop();
}
