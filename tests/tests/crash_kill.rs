//! kill -9 at random moments (issue 10 §3, "the real thing"): the real
//! `ferrokey` process does random operations (makeCredential resident and
//! not, getAssertion, getNextAssertion, setPIN, changePIN, wrong PINs, PIN
//! tokens, credentialManagement delete, reset) while another thread sends it
//! SIGKILL after a random delay; it is restarted on the same state directory
//! and checked against everything it acknowledged (see `crash_model`).
//!
//! `FERROKEY_KILL_ROUNDS` rounds (default 30), seed `FERROKEY_KILL_SEED`,
//! kill delays up to `FERROKEY_KILL_MAX_DELAY_MS` (default 1200) after the check.
//! Needs `target/<profile>/ferrokey` (`cargo build -p firmware-sim`) or
//! `FERROKEY_BIN`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod crash_model;

use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicU64, Ordering};

use crash_model::{Fail, Model, Resending};
use ferrokey_tests::process::{connect, kill, Served, SIGKILL};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn kill_9_rounds_keep_every_acknowledged_state() {
    let rounds = env_u64("FERROKEY_KILL_ROUNDS", 30);
    let seed = env_u64("FERROKEY_KILL_SEED", 0x6b696c6c);
    let mut rng = StdRng::seed_from_u64(seed);
    let max_delay_ms = env_u64("FERROKEY_KILL_MAX_DELAY_MS", 1200).max(1);
    let tmp = tempfile::tempdir().unwrap();
    let mut model = Model::new("kill.example", true);
    let mut violations = Vec::new();
    let mut ops_done = 0u64;
    let mut cut_off = 0u64;
    let mut by_op = std::collections::BTreeMap::new();
    let msg_timeouts = AtomicU64::new(0);
    let started = Instant::now();
    for round in 0..rounds {
        let mut served = Served::start(tmp.path(), &["--presence", "auto"]);
        let mut client = connect(served.addr, "1-1");
        model.power_cycled();
        let mut link = Resending {
            hid: &mut client,
            timeouts: &msg_timeouts,
        };
        match model.check(&mut link) {
            Ok(found) => {
                violations.extend(found.into_iter().map(|v| format!("round {round}: {v}")))
            }
            Err(e) => panic!("round {round}: check failed: {e:?}"),
        }
        // Kill at a random moment of the operations that follow.
        let pid = served.child.id();
        let delay = Duration::from_millis(rng.gen_range(0..max_delay_ms));
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            kill(pid, SIGKILL);
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(
                Instant::now() < deadline,
                "round {round}: the key outlived its kill"
            );
            let mut link = Resending {
                hid: &mut client,
                timeouts: &msg_timeouts,
            };
            match model.random_op(&mut link, &mut rng) {
                Ok(name) => {
                    ops_done += 1;
                    *by_op.entry(name).or_insert(0u64) += 1;
                }
                Err(Fail::Transport(_)) => break,
                Err(Fail::Violation(v)) => {
                    violations.push(format!("round {round}: {v}"));
                    model.pending = None;
                }
            }
        }
        if model.pending.is_some() {
            cut_off += 1;
        }
        killer.join().unwrap();
        let status = served.wait_exit();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(SIGKILL),
            "round {round}: transport failed but the key was not killed ({status:?})"
        );
        drop(client);
        drop(served);
    }
    // A last clean start, checked.
    let served = Served::start(tmp.path(), &["--presence", "auto"]);
    let mut client = connect(served.addr, "1-1");
    model.power_cycled();
    let mut link = Resending {
        hid: &mut client,
        timeouts: &msg_timeouts,
    };
    violations.extend(model.check(&mut link).unwrap());
    drop(client);
    served.stop();
    println!(
        "kill -9 rounds: {rounds}, operations acknowledged: {ops_done}, cut off by the kill: {cut_off}, \
         credentials at the end: {}, CTAPHID MSG_TIMEOUT resends: {}, violations: {}; {:.1} s (seed {seed})",
        model.creds.len(),
        msg_timeouts.load(Ordering::Relaxed),
        violations.len(),
        started.elapsed().as_secs_f64()
    );
    println!("operations: {by_op:?}");
    for v in &violations {
        println!("VIOLATION {v}");
    }
    assert!(ops_done >= rounds, "too few operations: {ops_done}");
    assert!(violations.is_empty(), "{} violations", violations.len());
}
