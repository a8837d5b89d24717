//! Process-level tests of `ferrokey serve`: start-up log, USB/IP device list,
//! clean shutdown on SIGTERM/SIGINT, lock and listen errors, persistent identity.

// Test code: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use ferrokey_test_support::process::Served;
use ferrokey_test_support::usbip_client::list_devices;

const BIN: &str = env!("CARGO_BIN_EXE_ferrokey");

/// `ferrokey serve` as a child process: the shared harness of
/// ferrokey-test-support (tests/support/src/process.rs), on this crate's binary.
struct Server(Served);

impl Server {
    fn start(state: &Path, extra: &[&str]) -> Server {
        Server(Served::spawn(Path::new(BIN), state, extra, Stdio::null()))
    }

    /// Waits for a log line containing `needle`; returns it.
    fn wait_for(&mut self, needle: &str) -> String {
        self.0.wait_for(needle)
    }

    /// The bound address, from the "listening on" line.
    fn addr(&mut self) -> SocketAddr {
        let line = self.wait_for("listening on ");
        let addr = line.rsplit("listening on ").next().unwrap().trim();
        addr.parse().unwrap()
    }

    fn signal(&self, signal: i32) {
        self.0.signal(signal);
    }

    fn wait_exit(&mut self) -> ExitStatus {
        self.0.wait_exit()
    }

    fn log(&self) -> String {
        self.0.log.join("\n")
    }
}

/// OP_REQ_DEVLIST (the shared USB/IP client, which also checks the record
/// layout and that the server closes after the list): (busid, idVendor,
/// idProduct) of the exported devices.
fn devlist(addr: SocketAddr) -> Vec<(String, u16, u16)> {
    list_devices(addr)
        .unwrap()
        .into_iter()
        .map(|d| (d.busid, d.vendor_id, d.product_id))
        .collect()
}

fn serial_of(line: &str) -> String {
    line.split("serial ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn serve_logs_busids_exports_keys_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let mut server = Server::start(&state, &["--keys", "2", "--vid", "0x1050", "--pid", "0407"]);
    let addr = server.addr();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0);
    let key1 = server.wait_for("key-1 ready");
    let key2 = server.wait_for("key-2 ready");
    assert!(key1.contains("busid 1-1"), "{key1}");
    assert!(key2.contains("busid 1-2"), "{key2}");
    let attach = format!(
        "usbip --tcp-port {} attach -r 127.0.0.1 -b 1-1",
        addr.port()
    );
    assert!(key1.contains(&attach), "{key1}");
    assert_ne!(serial_of(&key1), serial_of(&key2));

    let devices = devlist(addr);
    assert_eq!(
        devices,
        vec![
            ("1-1".to_string(), 0x1050, 0x0407),
            ("1-2".to_string(), 0x1050, 0x0407)
        ]
    );

    // A second server on the same state directory is refused.
    let second = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(&state)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("in use by another ferrokey process"), "{err}");

    server.signal(libc::SIGTERM);
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", server.log());
    let log = server.log();
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("stopped"), "{log}");

    // The locks are released: a reset can take them now.
    let reset = Command::new(BIN)
        .args(["reset", "--all", "--yes", "--state-dir"])
        .arg(&state)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
}

#[test]
fn sigint_stops_cleanly_and_identity_persists() {
    let tmp = tempfile::tempdir().unwrap();
    let mut first = Server::start(tmp.path(), &[]);
    let serial = serial_of(&first.wait_for("key-1 ready"));
    first.signal(libc::SIGINT);
    assert_eq!(first.wait_exit().code(), Some(0));
    assert!(first.log().contains("SIGINT received"));

    let mut second = Server::start(tmp.path(), &[]);
    assert_eq!(serial_of(&second.wait_for("key-1 ready")), serial);
    second.signal(libc::SIGTERM);
    assert_eq!(second.wait_exit().code(), Some(0));
}

#[test]
fn an_address_in_use_is_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", &addr, "--state-dir"])
        .arg(tmp.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

#[test]
fn logs_hold_no_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(tmp.path(), &[]);
    server.wait_for("key-1 ready");
    server.signal(libc::SIGTERM);
    server.wait_exit();
    let log = server.log();
    let key_pem = std::fs::read_to_string(tmp.path().join("ca").join("batch-key.pem")).unwrap();
    let key_body: String = key_pem.lines().nth(1).unwrap().chars().take(24).collect();
    assert!(!log.contains(&key_body), "{log}");
    assert!(!log.contains("PRIVATE KEY"), "{log}");
}
