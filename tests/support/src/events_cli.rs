//! `ferrokey events --control URL` run as a child process: its stdout lines
//! parsed as JSON, and waits for the event a test expects.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::process::ferrokey_bin;

/// How long a wait for one event lasts before the test fails.
const EVENT_PATIENCE: Duration = Duration::from_secs(30);

/// A running `ferrokey events`; killed when dropped.
pub struct EventsCli {
    child: Child,
    lines: mpsc::Receiver<Value>,
    raw: mpsc::Receiver<String>,
    seen: Vec<Value>,
}

impl EventsCli {
    /// Starts `ferrokey events` against the control API at `control`.
    pub fn start(control: SocketAddr) -> EventsCli {
        let mut child = Command::new(ferrokey_bin())
            .args(["events", "--control", &format!("http://{control}/")])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("ferrokey events: {e}"));
        let Some(stdout) = child.stdout.take() else {
            panic!("ferrokey events: no stdout pipe");
        };
        let (tx, lines) = mpsc::channel();
        let (raw_tx, raw) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("ferrokey events printed a non-JSON line: {e}"));
                let _ = raw_tx.send(line);
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        EventsCli {
            child,
            lines,
            raw,
            seen: Vec::new(),
        }
    }

    /// A line for which `matches` holds, among those seen so far or the next
    /// ones (so one line can answer several waits).
    pub fn find(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        if let Some(found) = self.seen.iter().find(|v| matches(v)) {
            return found.clone();
        }
        self.next_matching(what, matches)
    }

    /// The next line for which `matches` holds, after every line an earlier
    /// wait has read (so an event that happens twice is waited for twice).
    pub fn next_matching(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + EVENT_PATIENCE;
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

    /// The next PIN event `name` from `source` (`api` or `ctap`): its data.
    pub fn pin_event(&mut self, name: &str, source: &str) -> Value {
        let line = self.next_matching(&format!("{name} ({source})"), |v| {
            v["event"] == name && v["data"]["source"] == source
        });
        line["data"].clone()
    }

    /// Waits up to `patience` for the process to end on its own.
    pub fn wait_exit(&mut self, patience: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Every raw line printed since the last call.
    pub fn raw_lines(&self) -> Vec<String> {
        self.raw.try_iter().collect()
    }
}

impl Drop for EventsCli {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
