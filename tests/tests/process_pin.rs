//! PIN/UV state through the control API of the real `ferrokey` binary, each
//! state checked with real CTAP clientPIN requests over USB/IP: `serve
//! --pin-file --pin-state`, `GET/POST .../pin`, `.../pin/retries`,
//! `.../pin/state`, `ferrokey:pin` and `ferrokey:pinState` at Add Virtual
//! Authenticator; the pinSet/pinChanged/pinCleared/pinBlocked/uvBlocked/
//! forcePinChange events from both sides (`source` api or ctap), with no PIN
//! in any event or log line; and `ferrokey events` ending with status 0 when
//! the server stops.
//!
//! Needs `target/<profile>/ferrokey`: run `cargo build -p firmware-sim` first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod process_support;

use std::net::SocketAddr;
use std::time::Duration;

use ferrokey_tests::events_cli::EventsCli;
use ferrokey_tests::pin::ClientPin;
use process_support::*;
use serde_json::{json, Value};

const FIRST_PIN: &str = "pin-one-13579";
const SECOND_PIN: &str = "pin-two-24680";
const THIRD_PIN: &str = "pin-three-97531";
const ADDED_PIN: &str = "pin-added-86420";

fn call(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    control_json(addr, method, path, body)
}

/// `GET .../pin` of authenticator `id`.
fn pin_status(control: SocketAddr, id: &str) -> Value {
    let (status, body) = call(
        control,
        "GET",
        &format!("/webauthn/authenticator/{id}/pin"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    body["value"].clone()
}

/// `POST .../pin{suffix}` of authenticator `id`, expecting 200; the new state.
fn post_pin(control: SocketAddr, id: &str, suffix: &str, body: Value) -> Value {
    let (status, answer) = call(
        control,
        "POST",
        &format!("/webauthn/authenticator/{id}/pin{suffix}"),
        Some(&body),
    );
    assert_eq!(status, 200, "POST .../pin{suffix} {body}: {answer}");
    answer["value"].clone()
}

/// getInfo's forcePINChange (0x0C) and options.clientPin.
fn info_pin(client: &mut Client) -> (bool, Option<bool>) {
    let info = ctap2::get_info(client).unwrap();
    let force = get(&info, 0x0C).and_then(|v| v.as_bool()).unwrap_or(false);
    let client_pin = get(&info, 4)
        .and_then(|o| get_text(o, "clientPin"))
        .and_then(|v| v.as_bool());
    (force, client_pin)
}

#[test]
fn the_pin_state_set_through_the_api_is_what_ctap_clients_see() {
    let tmp = tempfile::tempdir().unwrap();
    let pin_file = tmp.path().join("pin");
    std::fs::write(&pin_file, format!("{FIRST_PIN}\n")).unwrap();
    let (mut served, control) = Served::start_with_control(
        &tmp.path().join("state"),
        &[
            "--uv",
            "auto",
            "--pin-file",
            pin_file.to_str().unwrap(),
            "--pin-state",
            "forcePinChange",
        ],
    );
    let mut events = EventsCli::start(control);
    std::thread::sleep(Duration::from_millis(500));
    let pin = ClientPin::new(2);
    let mut client = connect(served.addr, "1-1");

    // Started by serve into forcePinChange, with the PIN of the file.
    let state = pin_status(control, "1");
    assert_eq!(state["state"], "forcePinChange", "{state}");
    assert_eq!(
        (state["isSet"].clone(), state["retries"].clone()),
        (json!(true), json!(8))
    );
    assert_eq!(info_pin(&mut client), (true, Some(true)));
    assert_eq!(pin.retries(&mut client).unwrap().0, 8);
    assert_eq!(
        pin.token(&mut client, FIRST_PIN, Some(0x01), Some("example.com"))
            .err(),
        Some(status::PIN_POLICY_VIOLATION),
        "a token was issued while a PIN change is forced"
    );

    // blocked: pinRetries 0, PIN_BLOCKED for the right PIN too.
    let state = post_pin(control, "1", "/state", json!({"state": "blocked"}));
    assert_eq!(
        (state["state"].clone(), state["retries"].clone()),
        (json!("blocked"), json!(0))
    );
    let blocked = events.pin_event("pinBlocked", "api");
    assert_eq!(blocked["pin"]["retries"], 0);
    assert_eq!(pin.retries(&mut client).unwrap().0, 0);
    assert_eq!(
        pin.token(&mut client, FIRST_PIN, Some(0x01), Some("example.com"))
            .err(),
        Some(status::PIN_BLOCKED)
    );

    // uvBlocked: uvRetries 0 (UV_BLOCKED), the PIN usable again with full retries.
    let state = post_pin(control, "1", "/state", json!({"state": "uvBlocked"}));
    assert_eq!(state["uvRetries"], 0, "{state}");
    events.pin_event("uvBlocked", "api");
    assert_eq!(pin.uv_retries(&mut client).unwrap(), 0);
    assert_eq!(
        pin.uv_token(&mut client, 0x01, Some("example.com")).err(),
        Some(status::UV_BLOCKED)
    );
    assert_eq!(pin.retries(&mut client).unwrap().0, 8);
    assert!(pin
        .token(&mut client, FIRST_PIN, Some(0x01), Some("example.com"))
        .is_ok());
    // uvRetries back through .../pin/retries.
    let state = post_pin(control, "1", "/retries", json!({"uvRetries": 8}));
    assert_eq!(state["state"], "set", "{state}");
    assert!(pin.uv_token(&mut client, 0x01, Some("example.com")).is_ok());

    // Cleared through the API: the key has no PIN for CTAP either.
    let state = post_pin(control, "1", "", json!({"pin": null}));
    assert_eq!(state["isSet"], false);
    events.pin_event("pinCleared", "api");
    assert_eq!(pin.retries(&mut client).err(), Some(status::PIN_NOT_SET));
    assert_eq!(info_pin(&mut client).1, Some(false));

    // Set and changed through CTAP: the API sees it, and says where it came from.
    assert_eq!(pin.set_pin(&mut client, SECOND_PIN).unwrap(), status::OK);
    let set = events.pin_event("pinSet", "ctap");
    assert_eq!(set["pin"]["state"], "set");
    assert_eq!(pin_status(control, "1")["isSet"], true);
    assert_eq!(
        pin.change_pin(&mut client, SECOND_PIN, THIRD_PIN).unwrap(),
        status::OK
    );
    events.pin_event("pinChanged", "ctap");

    // Retries from the API, spent through CTAP: blocked by the client.
    let state = post_pin(control, "1", "/retries", json!({"retries": 1}));
    assert_eq!(state["retries"], 1);
    assert_eq!(pin.retries(&mut client).unwrap().0, 1);
    let wrong = pin.token(&mut client, "not-the-pin", Some(0x01), Some("example.com"));
    assert!(
        matches!(wrong.err(), Some(status::PIN_BLOCKED | status::PIN_INVALID)),
        "a wrong PIN was accepted"
    );
    let blocked = events.pin_event("pinBlocked", "ctap");
    assert_eq!(blocked["pin"]["retries"], 0);
    assert_eq!(pin_status(control, "1")["state"], "blocked");

    // Replaced through the API: the new PIN works for CTAP, the old does not.
    let state = post_pin(control, "1", "", json!({"pin": FIRST_PIN}));
    assert_eq!(
        (state["state"].clone(), state["retries"].clone()),
        (json!("set"), json!(8))
    );
    events.pin_event("pinChanged", "api");
    assert_eq!(
        pin.token(&mut client, THIRD_PIN, Some(0x01), Some("example.com"))
            .err(),
        Some(status::PIN_INVALID)
    );
    assert!(pin
        .token(&mut client, FIRST_PIN, Some(0x01), Some("example.com"))
        .is_ok());
    // forcePinChange from the API, seen in getInfo.
    post_pin(control, "1", "/state", json!({"state": "forcePinChange"}));
    events.pin_event("forcePinChange", "api");
    assert!(info_pin(&mut client).0);

    // Refusals, in WebDriver's shape, change nothing.
    for (suffix, body, code) in [
        ("", json!({"pin": "12"}), 400),
        ("", json!({}), 400),
        ("/retries", json!({"retries": 9}), 400),
        ("/retries", json!({}), 400),
        ("/state", json!({"state": "locked"}), 400),
        ("/state", json!({"state": "unset", "pin": "1234"}), 400),
    ] {
        let (status, answer) = call(
            control,
            "POST",
            &format!("/webauthn/authenticator/1/pin{suffix}"),
            Some(&body),
        );
        assert_eq!(status, code, "{suffix} {body}: {answer}");
        assert_eq!(answer["value"]["error"], "invalid argument", "{answer}");
    }
    let (status, answer) = call(control, "GET", "/webauthn/authenticator/99/pin", None);
    assert_eq!(
        (status, answer["value"]["error"].as_str()),
        (404, Some("no such authenticator"))
    );
    assert_eq!(pin_status(control, "1")["state"], "forcePinChange");

    // The session form of the paths works too.
    let (status, answer) = call(
        control,
        "GET",
        "/session/any/webauthn/authenticator/1/pin",
        None,
    );
    assert_eq!(
        (status, answer["value"]["isSet"].clone()),
        (200, json!(true))
    );

    drop(client);
    served.signal(SIGTERM);
    let exit = served.wait_exit();
    assert_eq!(exit.code(), Some(0), "{}", served.log.join("\n"));
    // `ferrokey events` ends on its own, with status 0, when the server stops.
    let status = events
        .wait_exit(Duration::from_secs(15))
        .expect("ferrokey events still runs after the server stopped");
    assert_eq!(status.code(), Some(0), "ferrokey events: {status}");
    // No PIN anywhere: not in an event, not in the server's log.
    // (Every line it printed: the raw lines include those parsed above.)
    let printed = events.raw_lines().join("\n");
    let log = served.log.join("\n");
    for secret in [FIRST_PIN, SECOND_PIN, THIRD_PIN] {
        assert!(!printed.contains(secret), "an event shows a PIN");
        assert!(!log.contains(secret), "the log shows a PIN");
    }
}

#[test]
fn an_added_authenticator_starts_in_the_state_it_is_given() {
    let tmp = tempfile::tempdir().unwrap();
    let (served, control) = Served::start_with_control(&tmp.path().join("state"), &[]);
    // Key 1 has no built-in UV: uvBlocked is refused plainly.
    let (status, answer) = call(
        control,
        "POST",
        "/webauthn/authenticator/1/pin/state",
        Some(&json!({"state": "uvBlocked"})),
    );
    assert_eq!(
        (status, answer["value"]["error"].as_str()),
        (409, Some("unsupported operation")),
        "{answer}"
    );
    // set without a PIN on a key that has none.
    let (status, _) = call(
        control,
        "POST",
        "/webauthn/authenticator/1/pin/state",
        Some(&json!({"state": "set"})),
    );
    assert_eq!(status, 409);

    let config = json!({
        "protocol": "ctap2_1", "transport": "usb", "hasResidentKey": true,
        "hasUserVerification": true, "isUserVerified": true,
        "ferrokey:pin": ADDED_PIN, "ferrokey:pinState": "blocked",
    });
    let (status, answer) = call(control, "POST", "/webauthn/authenticator", Some(&config));
    assert_eq!(status, 200, "{answer}");
    let id = answer["value"].as_str().unwrap().to_string();
    let state = pin_status(control, &id);
    assert_eq!(state["state"], "blocked", "{state}");
    assert_eq!(state["builtinUv"], true);
    let (_, described) = call(
        control,
        "GET",
        &format!("/webauthn/authenticator/{id}"),
        None,
    );
    let described = described["value"].clone();
    assert!(
        !described.to_string().contains(ADDED_PIN),
        "the PIN is shown: {described}"
    );
    assert_eq!(described["options"]["pinState"], "blocked");
    // Not attached by a host on this machine: no hidraw node.
    assert_eq!(described["hidraw"], Value::Null);
    let busid = described["busid"].as_str().unwrap().to_string();
    let mut client = connect(served.addr, &busid);
    let pin = ClientPin::new(1);
    assert_eq!(pin.retries(&mut client).unwrap().0, 0);
    assert_eq!(
        pin.token(&mut client, ADDED_PIN, None, None).err(),
        Some(status::PIN_BLOCKED)
    );
    // Back to set: the PIN given at the start works.
    post_pin(control, &id, "/state", json!({"state": "set"}));
    assert!(pin.token(&mut client, ADDED_PIN, None, None).is_ok());

    // A state that needs a PIN, without one, is refused at add.
    let bad =
        json!({"protocol": "ctap2_1", "transport": "usb", "ferrokey:pinState": "forcePinChange"});
    let (status, answer) = call(control, "POST", "/webauthn/authenticator", Some(&bad));
    assert_eq!(
        (status, answer["value"]["error"].as_str()),
        (400, Some("invalid argument")),
        "{answer}"
    );
    drop(client);
    let mut served = served;
    served.signal(SIGTERM);
    assert_eq!(served.wait_exit().code(), Some(0));
    assert!(
        !served.log.join("\n").contains(ADDED_PIN),
        "the log shows a PIN"
    );
}
