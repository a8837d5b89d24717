//! Measurements over USB/IP on loopback (ignored: run them explicitly, in release):
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/target-usb cargo test --release -p ferrokey-tests \
//!     --test usbip_latency -- --ignored --nocapture --test-threads 1
//! ```
//!
//! - `get_assertion_latency`: makeCredential once, then 1000 getAssertion round
//!   trips (CTAPHID over USB/IP, real authenticator, automatic presence); prints
//!   median, p90 and max.
//! - `idle_wakeups_with_client_attached`: a client imports and configures the key
//!   and leaves an interrupt IN URB pending; prints the context switches of the
//!   server's threads over 10 s.

mod usbip_support;

use std::time::{Duration, Instant};

use ferrokey_tests::cbor::encode;
use ferrokey_tests::ctap2::{GetAssertion, MakeCredential};
use ferrokey_tests::ctaphid_client::CtapHidClient;
use ferrokey_tests::usbip_client::UsbipClient;
use usbip_support::*;

#[test]
#[ignore = "measurement; run explicitly in release"]
fn get_assertion_latency() {
    let dir = tempfile::tempdir().unwrap();
    let server = authenticator_server(dir.path());
    let mut usb = UsbipClient::import(server.local_addr(), "1-1").unwrap();
    usb.enumerate().unwrap();
    let mut client = CtapHidClient::new(usb);
    client.set_timeout(TIMEOUT);
    client.init().unwrap();

    let reg = MakeCredential::new("example.com", &[7; 16])
        .cdh([1; 32])
        .must(&mut client);
    let get = encode(
        &GetAssertion::new("example.com")
            .cdh([2; 32])
            .allow(&reg.credential_id)
            .build(),
    );
    // Warm up.
    for _ in 0..20 {
        assert_eq!(client.cbor(0x02, &get).unwrap().0, 0);
    }
    let mut times = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let start = Instant::now();
        let (status, _) = client.cbor(0x02, &get).unwrap();
        times.push(start.elapsed());
        assert_eq!(status, 0);
    }
    report("getAssertion over USB/IP", &mut times);

    let mut pings = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let start = Instant::now();
        client.ping(&[0x55; 32]).unwrap();
        pings.push(start.elapsed());
    }
    report("CTAPHID PING (32 bytes) over USB/IP", &mut pings);
}

fn report(what: &str, times: &mut [Duration]) {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{what}: n={} median={:?} p90={:?} p99={:?} max={:?}",
        times.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        times[times.len() - 1]
    );
}

/// (thread name, voluntary + involuntary context switches) of this process.
fn switches() -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
        let count: u64 = status
            .lines()
            .filter(|l| l.contains("ctxt_switches"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum();
        out.push((
            format!("{} ({})", name.trim(), task.file_name().to_string_lossy()),
            count,
        ));
    }
    out
}

#[test]
#[ignore = "measurement; run explicitly"]
fn idle_wakeups_with_client_attached() {
    let dir = tempfile::tempdir().unwrap();
    let server = authenticator_server(dir.path());
    let mut client = UsbipClient::import(server.local_addr(), "1-1").unwrap();
    client.enumerate().unwrap();
    init_and_ping(&mut client);
    let seq = client.arm_in().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let before = switches();
    std::thread::sleep(Duration::from_secs(10));
    let after = switches();
    assert!(!client.poll_done(seq, Duration::from_millis(10)).unwrap());
    println!("context switches over 10 s with a client attached and an IN URB pending:");
    for (name, count) in &after {
        let old = before
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, c)| *c);
        if name.starts_with("ferrokey") {
            println!("  {name}: {}", count - old);
        }
    }
    // The key still answers afterwards.
    init_and_ping(&mut client);
}
