//! `ferrokey serve` as a child process: start it on a free port with a state
//! directory, read its log line by line, signal it, and talk to it over
//! USB/IP + CTAPHID or its control API.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::ctaphid_client::CtapHidClient;
use crate::usbip_client::{ImportError, UsbipClient};

/// SIGTERM.
pub const SIGTERM: i32 = libc::SIGTERM;
/// SIGINT.
pub const SIGINT: i32 = libc::SIGINT;
/// SIGKILL.
pub const SIGKILL: i32 = libc::SIGKILL;

/// How long to wait for a log line or an exit.
pub const WAIT: Duration = Duration::from_secs(30);

/// The `ferrokey` binary: `$FERROKEY_BIN`, else `target/<profile>/ferrokey`
/// beside the running test executable (`target/<profile>/deps/...`), which
/// `cargo build -p firmware-sim` makes.
pub fn ferrokey_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("FERROKEY_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("ferrokey"))
        .unwrap_or_default();
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p firmware-sim` before these tests",
        bin.display()
    );
    bin
}

/// Runs `ferrokey ARGS` to completion (no state-dir environment leaks in).
pub fn ferrokey(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env_remove("FERROKEY_STATE_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()))
}

/// Sends `signal` to process `pid` (a stale pid only yields ESRCH).
pub fn kill(pid: u32, signal: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) takes plain integers.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// A running `ferrokey serve`; its stderr is collected line by line. Dropping
/// it kills the process.
pub struct Served {
    /// The process.
    pub child: Child,
    /// The USB/IP address (0.0.0.0:0 until known).
    pub addr: SocketAddr,
    lines: mpsc::Receiver<String>,
    /// Every log line read so far.
    pub log: Vec<String>,
}

impl Served {
    /// Starts `ferrokey serve --listen 127.0.0.1:0 --state-dir STATE EXTRA`
    /// (the binary of [`ferrokey_bin`]) and waits until key 1 is ready.
    pub fn start(state: &Path, extra: &[&str]) -> Served {
        Served::start_bin(&ferrokey_bin(), state, extra)
    }

    /// [`Served::start`] with a given binary.
    pub fn start_bin(bin: &Path, state: &Path, extra: &[&str]) -> Served {
        let mut served = Served::spawn(bin, state, extra, Stdio::null());
        served.wait_ready();
        served
    }

    /// Like [`Served::start`], with `--control 127.0.0.1:0` too; returns the
    /// server and the control API's address.
    pub fn start_with_control(state: &Path, extra: &[&str]) -> (Served, SocketAddr) {
        let mut args = vec!["--control", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut served = Served::start(state, &args);
        let line = served.wait_for("control API on http://");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no control address in {line:?}"));
        (served, addr)
    }

    /// Like [`Served::start`], with the server's stdin piped to the returned writer.
    pub fn start_with_stdin(state: &Path, extra: &[&str]) -> (Served, ChildStdin) {
        let mut served = Served::spawn(&ferrokey_bin(), state, extra, Stdio::piped());
        let stdin = served.child.stdin.take().unwrap_or_else(|| unreachable!());
        served.wait_ready();
        (served, stdin)
    }

    /// Spawns `BIN serve --listen 127.0.0.1:0 --state-dir STATE EXTRA` and
    /// returns at once (see [`Served::wait_ready`]).
    pub fn spawn(bin: &Path, state: &Path, extra: &[&str], stdin: Stdio) -> Served {
        let mut child = Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(state)
            .args(extra)
            .env_remove("FERROKEY_STATE_DIR")
            .env("RUST_LOG", "info")
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let stderr = child.stderr.take().unwrap_or_else(|| unreachable!());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Served {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            lines,
            log: Vec::new(),
        }
    }

    /// Waits for "listening on ADDR" (recorded in `addr`) and "key-1 ready".
    pub fn wait_ready(&mut self) {
        let line = self.wait_for("listening on ");
        self.addr = line
            .rsplit("listening on ")
            .next()
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        self.wait_for("key-1 ready");
    }

    /// Waits for a log line containing `needle`; returns it.
    pub fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
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
        kill(self.child.id(), signal);
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the server to exit; collects the rest of its log.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
                    self.log.push(line);
                }
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

    /// Imports key `busid`, enumerates it and opens a CTAPHID channel.
    pub fn connect(&self, busid: &str) -> CtapHidClient<UsbipClient> {
        connect(self.addr, busid)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Imports key `busid` at `addr` (retrying for a moment while a connection that
/// just closed still holds it), enumerates it and opens a CTAPHID channel;
/// panics with the reason when that fails (see [`try_connect`]).
pub fn connect(addr: SocketAddr, busid: &str) -> CtapHidClient<UsbipClient> {
    try_connect(addr, busid).unwrap_or_else(|e| panic!("{e}"))
}

/// [`connect`], returning what failed instead of panicking (for programs such
/// as the benchmarks).
pub fn try_connect(addr: SocketAddr, busid: &str) -> Result<CtapHidClient<UsbipClient>, String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut usb = loop {
        match UsbipClient::import(addr, busid) {
            Ok(usb) => break usb,
            Err(ImportError::Refused(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("import {busid} from {addr}: {e:?}")),
        }
    };
    usb.enumerate()
        .map_err(|e| format!("enumerate {busid}: {e}"))?;
    let mut client = CtapHidClient::new(usb);
    client.set_timeout(Duration::from_secs(20));
    client
        .init()
        .map_err(|e| format!("CTAPHID INIT on {busid}: {e}"))?;
    Ok(client)
}

/// An HTTP request to a control API: (status code, body).
pub fn control_request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    http(addr, method, path, None)
}

/// A JSON request to a control API (`body` sent as application/json when
/// given): the status code and the answer parsed as JSON (`Null` when the
/// answer is empty or not JSON, so a test compares it with what it expected).
pub fn control_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    let body = body.map(serde_json::Value::to_string);
    let (code, answer) = http(addr, method, path, body.as_deref());
    (
        code,
        serde_json::from_str(&answer).unwrap_or(serde_json::Value::Null),
    )
}

/// One HTTP/1.1 exchange on a fresh connection (Connection: close); a JSON
/// `body` when given. Panics when there is no answer (see [`try_http`]).
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    try_http(addr, method, path, body).unwrap_or_else(|e| panic!("{e}"))
}

/// One HTTP/1.1 exchange that may find no server (a test that kills the
/// server on purpose): (status code, body), or why there was no answer.
pub fn try_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("control {addr}: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let content_type = if body.is_some() {
        "Content-Type: application/json\r\n"
    } else {
        ""
    };
    let body = body.unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{content_type}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("control {path}: {e}"))?;
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP response to {path}: {text:?}"))?;
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {head:?}"))?;
    Ok((code, body.to_string()))
}

/// GET `path` on a control API: (status code, body).
pub fn control_get(addr: SocketAddr, path: &str) -> (u16, String) {
    control_request(addr, "GET", path)
}

/// POST `path` (no body) on a control API: (status code, body).
pub fn control_post(addr: SocketAddr, path: &str) -> (u16, String) {
    control_request(addr, "POST", path)
}

/// Copies a directory tree (for fixtures: a state directory to a temporary
/// place), creating directories 0700 and files 0600 as ferrokey keeps them.
pub fn copy_private_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to)?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700))?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_private_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}
