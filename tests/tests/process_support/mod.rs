//! Helpers for the process-level tests (`process_*.rs`): run the real `ferrokey`
//! binary and speak CTAP2 to it over USB/IP with the independent test clients.
//!
//! The binary is found next to the test executable's directory
//! (`target/<profile>/ferrokey`, from `target/<profile>/deps/process_*`): run
//! `cargo build -p firmware-sim` first (the project's test script does).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ciborium::value::Value;
use ferrokey_tests::ctaphid_client::{CtapHidClient, ReportTransport, REPORT_LEN};
use ferrokey_tests::usbip_client::UsbipClient;

/// CTAP2 command bytes.
pub const MAKE_CREDENTIAL: u8 = 0x01;
/// authenticatorGetAssertion.
pub const GET_ASSERTION: u8 = 0x02;

/// The `ferrokey` binary built by `cargo build -p firmware-sim`.
pub fn ferrokey_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join("ferrokey");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p firmware-sim` before these tests",
        bin.display()
    );
    bin
}

/// A running `ferrokey serve`, its stderr collected line by line.
pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
    lines: mpsc::Receiver<String>,
    pub log: Vec<String>,
}

impl Served {
    /// Starts `ferrokey serve --listen 127.0.0.1:0 --state-dir <state> <extra>` and
    /// waits until every key is announced.
    pub fn start(state: &Path, extra: &[&str]) -> Served {
        Served::spawn(state, extra, Stdio::null())
    }

    /// Like [`Served::start`], with `--control 127.0.0.1:0` too; returns the
    /// server and the control API's address (see [`control_get`]).
    pub fn start_with_control(state: &Path, extra: &[&str]) -> (Served, SocketAddr) {
        let mut args = vec!["--control", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut served = Served::start(state, &args);
        let line = served.wait_for("control API on http://");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap()
            .parse()
            .unwrap();
        (served, addr)
    }

    /// Like [`Served::start`], with the server's stdin piped to the returned writer.
    pub fn start_with_stdin(state: &Path, extra: &[&str]) -> (Served, ChildStdin) {
        let mut served = Served::spawn(state, extra, Stdio::piped());
        let stdin = served.child.stdin.take().unwrap();
        (served, stdin)
    }

    fn spawn(state: &Path, extra: &[&str], stdin: Stdio) -> Served {
        let mut child = Command::new(ferrokey_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(state)
            .args(extra)
            .env_remove("FERROKEY_STATE_DIR")
            .env("RUST_LOG", "info")
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut served = Served {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
            lines,
            log: Vec::new(),
        };
        let line = served.wait_for("listening on ");
        served.addr = line
            .rsplit("listening on ")
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        served.wait_for("key-1 ready");
        served
    }

    /// Waits for a log line containing `needle`.
    pub fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no {needle:?} in the log:\n{}", self.log.join("\n")),
            }
        }
    }

    /// Sends `signal` to the server.
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: signalling our own child.
        assert_eq!(unsafe { libc_kill(pid, signal) }, 0);
    }

    /// Waits for the server to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "ferrokey did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, and check the exit is clean.
    pub fn stop(mut self) {
        self.signal(SIGTERM);
        let status = self.wait_exit();
        assert_eq!(status.code(), Some(0), "{}", self.log.join("\n"));
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SIGTERM.
pub const SIGTERM: i32 = 15;
/// SIGKILL.
pub const SIGKILL: i32 = 9;

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// Sends `signal` to process `pid` (e.g. [`SIGKILL`] from another thread).
pub fn kill(pid: u32, signal: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) takes plain integers; a stale pid only yields ESRCH.
        unsafe {
            libc_kill(pid, signal);
        }
    }
}

/// The USB/IP client as the CTAPHID client's report transport.
pub struct Usb(pub UsbipClient);

impl ReportTransport for Usb {
    fn send_report(&mut self, report: &[u8; REPORT_LEN]) -> std::io::Result<()> {
        self.0.send_report(report)
    }

    fn recv_report(&mut self, timeout: Duration) -> std::io::Result<Option<[u8; REPORT_LEN]>> {
        self.0.recv_report(timeout)
    }
}

/// Imports key `busid`, enumerates it and opens a CTAPHID channel.
pub fn connect(addr: SocketAddr, busid: &str) -> CtapHidClient<Usb> {
    let mut usb = UsbipClient::import(addr, busid).unwrap();
    usb.enumerate().unwrap();
    let mut client = CtapHidClient::new(Usb(usb));
    client.set_timeout(Duration::from_secs(20));
    client.init().unwrap();
    client
}

/// A CBOR text string.
pub fn text(s: &str) -> Value {
    Value::Text(s.into())
}

/// A CBOR integer.
pub fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

/// Encodes a CBOR value.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).unwrap();
    out
}

/// GET `path` on a control API: (status code, body).
pub fn control_get(addr: SocketAddr, path: &str) -> (u16, String) {
    control_request(addr, "GET", path)
}

/// POST `path` (no body) on a control API: (status code, body).
pub fn control_post(addr: SocketAddr, path: &str) -> (u16, String) {
    control_request(addr, "POST", path)
}

fn control_request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, body.to_string())
}

/// Looks up integer key `k` of a CBOR map.
pub fn map_get(map: &Value, k: i64) -> Option<&Value> {
    map.as_map()?
        .iter()
        .find(|(key, _)| key.as_integer() == Some(k.into()))
        .map(|(_, v)| v)
}

/// Looks up text key `k` of a CBOR map.
pub fn map_get_text<'a>(map: &'a Value, k: &str) -> Option<&'a Value> {
    map.as_map()?
        .iter()
        .find(|(key, _)| key.as_text() == Some(k))
        .map(|(_, v)| v)
}

/// The result of a makeCredential.
pub struct Registration {
    pub credential_id: Vec<u8>,
    pub aaguid: [u8; 16],
    pub auth_data: Vec<u8>,
    pub fmt: String,
    pub att_stmt: Value,
    pub client_data_hash: [u8; 32],
}

/// authenticatorMakeCredential with a discoverable credential, ES256.
pub fn make_credential(
    client: &mut CtapHidClient<Usb>,
    rp: &str,
    user: &str,
) -> Result<Registration, u8> {
    make_credential_with_options(client, rp, user, &[("rk", true)])
}

/// authenticatorMakeCredential, ES256, with these `options` (e.g. rk, uv).
pub fn make_credential_with_options(
    client: &mut CtapHidClient<Usb>,
    rp: &str,
    user: &str,
    options: &[(&str, bool)],
) -> Result<Registration, u8> {
    let client_data_hash: [u8; 32] = rand::random();
    let options = options
        .iter()
        .map(|&(name, on)| (text(name), Value::Bool(on)))
        .collect();
    let request = Value::Map(vec![
        (int(1), Value::Bytes(client_data_hash.to_vec())),
        (
            int(2),
            Value::Map(vec![(text("id"), text(rp)), (text("name"), text(rp))]),
        ),
        (
            int(3),
            Value::Map(vec![
                (text("id"), Value::Bytes(user.as_bytes().to_vec())),
                (text("name"), text(user)),
                (text("displayName"), text(user)),
            ]),
        ),
        (
            int(4),
            Value::Array(vec![Value::Map(vec![
                (text("alg"), int(-7)),
                (text("type"), text("public-key")),
            ])]),
        ),
        (int(7), Value::Map(options)),
    ]);
    let (status, body) = client.cbor(MAKE_CREDENTIAL, &encode(&request)).unwrap();
    if status != 0 {
        return Err(status);
    }
    let response: Value = ciborium::from_reader(body.as_slice()).unwrap();
    let fmt = map_get(&response, 1)
        .unwrap()
        .as_text()
        .unwrap()
        .to_string();
    let auth_data = map_get(&response, 2).unwrap().as_bytes().unwrap().clone();
    let att_stmt = map_get(&response, 3).unwrap().clone();
    assert!(auth_data[32] & 0x40 != 0, "AT flag");
    let aaguid: [u8; 16] = auth_data[37..53].try_into().unwrap();
    let id_len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    let credential_id = auth_data[55..55 + id_len].to_vec();
    Ok(Registration {
        credential_id,
        aaguid,
        auth_data,
        fmt,
        att_stmt,
        client_data_hash,
    })
}

/// authenticatorGetAssertion for `credential_id`; returns the signature counter.
pub fn get_assertion(
    client: &mut CtapHidClient<Usb>,
    rp: &str,
    credential_id: &[u8],
) -> Result<u32, String> {
    let client_data_hash: [u8; 32] = rand::random();
    let request = Value::Map(vec![
        (int(1), text(rp)),
        (int(2), Value::Bytes(client_data_hash.to_vec())),
        (
            int(3),
            Value::Array(vec![Value::Map(vec![
                (text("id"), Value::Bytes(credential_id.to_vec())),
                (text("type"), text("public-key")),
            ])]),
        ),
    ]);
    let (status, body) = client
        .cbor(GET_ASSERTION, &encode(&request))
        .map_err(|e| e.to_string())?;
    if status != 0 {
        return Err(format!("status {status:#04x}"));
    }
    let response: Value = ciborium::from_reader(body.as_slice()).map_err(|e| e.to_string())?;
    let auth_data = map_get(&response, 2)
        .and_then(Value::as_bytes)
        .ok_or("no authData")?;
    Ok(u32::from_be_bytes(auth_data[33..37].try_into().unwrap()))
}
