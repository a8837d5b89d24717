//! The idle figure of the README, asserted: a `ferrokey serve` whose key is
//! imported and configured by a client that keeps an interrupt IN URB pending
//! (as the kernel does) makes no context switch at all while nothing happens.
//! Counted, not timed: every thread's voluntary and involuntary context
//! switches from /proc over a quiet window must not change.
//!
//! Needs `target/<profile>/ferrokey`: run `cargo build -p firmware-sim` first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use ferrokey_tests::process::Served;
use ferrokey_tests::usbip_client::UsbipClient;

/// Context switches (voluntary + involuntary) of every thread of `pid`.
fn switches(pid: u32) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let status = std::fs::read_to_string(task.join("status")).unwrap();
        let name = status.lines().next().unwrap_or_default().to_string();
        let n: u64 = status
            .lines()
            .filter(|l| l.contains("ctxt_switches"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .sum();
        out.insert(
            format!("{} {name}", task.file_name().unwrap().to_string_lossy()),
            n,
        );
    }
    out
}

#[test]
fn an_idle_key_with_a_pending_in_urb_makes_no_context_switch() {
    let tmp = tempfile::tempdir().unwrap();
    let served = Served::start(tmp.path(), &[]);
    let mut usb = UsbipClient::import(served.addr, "1-1").unwrap();
    usb.enumerate().unwrap();
    usb.arm_in().unwrap();
    // Let start-up work (the log, the first URBs) settle.
    std::thread::sleep(Duration::from_millis(500));
    let pid = served.child.id();
    let before = switches(pid);
    std::thread::sleep(Duration::from_secs(3));
    let after = switches(pid);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "threads changed"
    );
    let woke: Vec<String> = before
        .iter()
        .filter(|(t, n)| after[*t] != **n)
        .map(|(t, n)| format!("{t}: {} switches", after[t] - n))
        .collect();
    assert!(woke.is_empty(), "idle key woke up: {woke:?}");
    // The probe sees work when there is some: one CTAPHID INIT wakes the key.
    let mut client = ferrokey_tests::ctaphid_client::CtapHidClient::new(usb);
    client.init().unwrap();
    let busy = switches(pid);
    let total = |m: &BTreeMap<String, u64>| m.values().sum::<u64>();
    assert!(
        total(&busy) > total(&after),
        "the probe counts no switches at all"
    );
    drop(client);
    served.stop();
}
