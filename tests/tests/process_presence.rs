//! User presence policies of the real `ferrokey` binary, over USB/IP:
//! `--presence deny`, `--presence prompt` (answers on stdin) and
//! `--presence-file` (answers scripted at runtime).
//!
//! Needs `target/<profile>/ferrokey`: run `cargo build -p firmware-sim` first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod process_support;

use std::io::Write;

use process_support::*;

/// CTAP2_ERR_OPERATION_DENIED.
const OPERATION_DENIED: u8 = 0x27;

#[test]
fn deny_refuses_registration() {
    let tmp = tempfile::tempdir().unwrap();
    let served = Served::start(tmp.path(), &["--presence", "deny"]);
    let mut client = connect(served.addr, "1-1");
    assert_eq!(
        make_credential(&mut client, "example.com", "dan").err(),
        Some(OPERATION_DENIED)
    );
    drop(client);
    served.stop();
}

#[test]
fn prompt_is_answered_on_stdin() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut served, mut stdin) = Served::start_with_stdin(tmp.path(), &["--presence", "prompt"]);
    let addr = served.addr;
    let worker = std::thread::spawn(move || {
        let mut client = connect(addr, "1-1");
        let first = make_credential(&mut client, "example.com", "erin").map(|_| ());
        let second = make_credential(&mut client, "example.com", "frank").map(|_| ());
        (first, second)
    });
    let prompt = served.wait_for("touch requested");
    assert!(
        prompt.contains("ferrokey 1-1: touch requested — press Enter to approve, n+Enter to deny"),
        "{prompt}"
    );
    stdin.write_all(b"\n").unwrap();
    served.wait_for("1-1: approved");
    served.wait_for("touch requested");
    stdin.write_all(b"n\n").unwrap();
    served.wait_for("1-1: denied");
    let (first, second) = worker.join().unwrap();
    assert_eq!(first, Ok(()));
    assert_eq!(second, Err(OPERATION_DENIED));
    served.stop();
}

#[test]
fn presence_file_scripts_answers_at_runtime() {
    let tmp = tempfile::tempdir().unwrap();
    let answer = tmp.path().join("presence");
    std::fs::write(&answer, "deny\n").unwrap();
    let state = tmp.path().join("state");
    let served = Served::start(&state, &["--presence-file", answer.to_str().unwrap()]);
    let mut client = connect(served.addr, "1-1");
    assert_eq!(
        make_credential(&mut client, "example.com", "gina").err(),
        Some(OPERATION_DENIED)
    );
    std::fs::write(&answer, "approve\n").unwrap();
    assert!(make_credential(&mut client, "example.com", "gina").is_ok());
    drop(client);
    served.stop();
}
