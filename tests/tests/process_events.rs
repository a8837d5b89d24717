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

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use process_support::*;
use serde_json::{json, Value};

/// One JSON request on the control API: (status, body).
fn call(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// `ferrokey events --control URL`, its stdout lines as JSON.
struct EventsCli {
    child: Child,
    lines: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl EventsCli {
    fn start(control: SocketAddr) -> EventsCli {
        let mut child = Command::new(ferrokey_bin())
            .args(["events", "--control", &format!("http://{control}/")])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value =
                    serde_json::from_str(&line).expect("ferrokey events printed a non-JSON line");
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        EventsCli {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line for which `matches` holds.
    fn wait(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        if let Some(found) = self.seen.iter().find(|v| matches(v)) {
            return found.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no {what} event; saw {:#?}", self.seen),
            }
        }
    }
}

impl Drop for EventsCli {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    events.wait("plugged", |v| {
        v["event"] == "plugged" && v["authenticatorId"] == id.as_str()
    });

    // A client registers and signs in with it.
    let mut client = connect(served.addr, &busid);
    let registration = make_credential(&mut client, "example.com", "dora").unwrap();
    let counter = get_assertion(&mut client, "example.com", &registration.credential_id).unwrap();
    let credential_id = URL_SAFE_NO_PAD.encode(&registration.credential_id);

    let ctap = events.wait("makeCredential", |v| {
        v["event"] == "ctap" && v["data"]["command"] == "makeCredential"
    });
    assert_eq!(ctap["authenticatorId"], id.as_str());
    assert_eq!(ctap["data"]["status"], "CTAP2_OK");
    assert_eq!(ctap["data"]["params"]["rp"]["id"], "example.com");
    assert_eq!(ctap["data"]["params"]["user"]["name"], "dora");
    assert_eq!(
        ctap["data"]["params"]["clientDataHash"],
        URL_SAFE_NO_PAD.encode(registration.client_data_hash)
    );
    assert!(ctap["data"]["latencyMs"].as_f64().unwrap() > 0.0);
    let added = events.wait("credentialAdded", |v| v["event"] == "credentialAdded");
    assert_eq!(added["data"]["authenticatorId"], id.as_str());
    assert_eq!(
        added["data"]["credential"]["credentialId"],
        credential_id.as_str()
    );
    assert_eq!(added["data"]["credential"]["isResidentCredential"], true);
    assert_eq!(added["data"]["credential"]["rpId"], "example.com");
    assert!(added["data"]["credential"].get("privateKey").is_none());
    let asserted = events.wait("credentialAsserted", |v| v["event"] == "credentialAsserted");
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
    events.wait("powerOff", |v| {
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
